// Typed, checked access to a data spec's fields, shared by the data-set kinds (src/data/kind_*.cpp).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "edgeforge/dataset.h"

namespace edgeforge::data {

// Reads a spec's fields with one-line errors naming the spec and the field, writes each value
// back in canonical form (paths absolute, defaults filled in), and refuses keys nobody read.
class Fields {
 public:
  Fields(DataSpec& spec, std::string base_dir) : spec_(spec), base_dir_(std::move(base_dir)) {}

  bool has(const std::string& key) const { return spec_.fields.contains(key); }
  std::string text(const std::string& key, const std::string& fallback);
  std::string choice(const std::string& key, const std::string& fallback,
                     const std::vector<std::string>& allowed);
  int64_t integer(const std::string& key, int64_t fallback, int64_t lo, int64_t hi);
  double number(const std::string& key, double fallback, double lo, double hi);
  bool boolean(const std::string& key, bool fallback);
  std::vector<double> numbers(const std::string& key, const std::vector<double>& fallback,
                              size_t count, double lo, double hi);
  std::vector<std::string> texts(const std::string& key, const std::vector<std::string>& fallback);
  // A path resolved against the spec's folder and made absolute; "" when absent. `must_exist`:
  // Error when nothing is there.
  std::string path(const std::string& key, bool must_exist);
  // Error naming the first key no read asked for.
  void done() const;

  [[noreturn]] void fail(const std::string& key, const std::string& problem) const;
  const std::string& base_dir() const { return base_dir_; }

 private:
  const nlohmann::json* get(const std::string& key);
  DataSpec& spec_;
  std::string base_dir_;
  std::set<std::string> read_;
};

// Where a data set's splits come from: one `path` split by a stable hash of each item's key, or
// a path per split (`train`, `validation`, `test`; any may be missing).
struct SplitSources {
  std::string path;                         // one set, hash-split; "" when given per split
  std::map<std::string, std::string> paths;  // per split
  int train_percent = 80, validation_percent = 10;

  // Reads path/train/validation/test/split_percent. `must_exist`: files or folders must exist.
  static SplitSources read(Fields& f, bool must_exist);
  // The same from a spec `read` has checked already (the fields a bound spec carries).
  static SplitSources of(const nlohmann::json& fields);
  bool hashed() const { return !path.empty(); }
  // The file or folder holding `split` (the shared one when hashed). Error naming the spec when
  // the split has none.
  const std::string& source_for(const std::string& split, const std::string& spec_name) const;
  // Whether the item with stable key `key` belongs to `split` (always true per split).
  bool keeps(const std::string& key, const std::string& split) const;
};

// The model input a single-tensor kind feeds: `asked` when given (Error when the model has no
// such input), else the model's only input that is not an initializer.
const ValueInfo& pick_model_input(const Graph& model, const std::string& asked,
                                  const std::string& spec_name);

// Labels as given (names or integers) -> class indices. Names are ordered by `classes` when
// given, else sorted; integers are used as they are, and the classes stay unknown (empty) unless
// `classes` names them: the model's output count then says how many there are.
struct LabelMap {
  std::vector<std::string> classes;  // index = label
  bool named = false;
  // The index of a label as written; Error naming `where` for an unknown name or a bad integer.
  int64_t index_of(const std::string& label, const std::string& where) const;
};
LabelMap make_label_map(const std::vector<std::string>& seen, const std::vector<std::string>& classes,
                        const std::string& spec_name);

}  // namespace edgeforge::data
