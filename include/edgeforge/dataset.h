// edgeforge/dataset.h: data sets as declared things, bound to a model.
//
// A user describes a data set once, as a DataSpec: a built-in name (`fashion-mnist`, `spam`), a
// shorthand (`imagefolder:DIR`, `jsonl:FILE`, `csv:FILE`, `npy:DIR`) or a TOML file
// (`kind = "imagefolder"`, `path = ...`, preprocessing, splits, metric; docs/your-model.md).
// Opened against a model, a spec becomes a Dataset: its splits as tensors keyed by the model's
// input names (TaskData), its samples as a device captures them (Payload: a frame, an encoded
// image file, a text, raw tensors) and the preprocessing that turns one payload into the model's
// inputs. The spec, completed for the model (crop size, sequence length, tokenizer), travels in
// the model's metadata (kMetaDataset), so every output of `optimize` carries it.
//
//   DataSpec spec = parse_data_spec("imagefolder:/data/val");   // or a .toml path
//   attach_data_spec(model, spec);                              // completes it for the model
//   std::unique_ptr<Dataset> data = open_dataset(model);       // reads no data file yet
//   TaskData test = data->load("test", 0);                      // decoded per batch on use
//   std::vector<Payload> payloads = data->payloads("test", 10); // the JPEG files' bytes
//   std::vector<at::Tensor> inputs = data->preprocess(payloads[0]);
//
// Kinds register in one line (EF_REGISTER_DATA_KIND) from their own file in src/data/. A kind
// reads no data file before load(), payloads() or split_size(), so a tier agent can preprocess
// with nothing but the model's metadata. Every bad file or field throws Error naming it.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edgeforge/graph.h"
#include "edgeforge/task.h"

namespace edgeforge {

// What the first tier receives: the input as captured, before preprocessing.
struct Payload {
  // "frame": raw RGB, height * width * 3 bytes, row-major (the built-in image set);
  // "image": an encoded image file's bytes (JPEG or PNG) as stored;
  // "text": UTF-8 (a sentence pair as text, kPairSeparator, text_pair);
  // "tensors": encode_tensors() of the raw arrays, one per model input in order.
  std::string kind;
  std::string bytes;
  int64_t height = 0, width = 0;  // frame only
  int64_t label = -1;             // the sample's label, for checks; -1 when unlabelled
};

// Joins a sentence pair in a text payload (ASCII unit separator; never part of a text a
// tokenizer is given, since the text kind rejects it in the data).
inline constexpr char kPairSeparator = '\x1f';

// A data set as declared. `fields` holds the kind's settings, completed and checked by the kind
// (absolute paths, defaults written out), so two equal specs have equal to_json().
struct DataSpec {
  std::string kind;                                     // a registered kind
  nlohmann::json fields = nlohmann::json::object();     // the kind's settings
  std::string source;  // where it was declared, for errors: "data.toml", "--data imagefolder:x"

  // The built-in's name, or "<kind>:<path>" for a user's data.
  std::string name() const;
  // The spec as stored in model metadata: a built-in's bare name, else a JSON object.
  std::string to_metadata() const;
};

// "fashion-mnist", "spam", a shorthand "imagefolder:DIR", "jsonl:FILE", "csv:FILE", "npy:DIR"
// ("npz:FILE" too), or a path to a .toml data spec. Relative paths in a TOML file are relative
// to the file's folder. Error naming the argument or the file and key on anything else.
DataSpec parse_data_spec(const std::string& arg);
// A data spec from a TOML table (`[model.data]` in a study file); `where` names it in errors
// ("study.toml:12"), `base_dir` resolves relative paths.
DataSpec data_spec_from_toml_text(const std::string& toml_text, const std::string& where,
                                  const std::string& base_dir);
// The spec stored in model metadata (to_metadata()); Error naming `what`.
DataSpec data_spec_from_metadata(const std::string& text, const std::string& what);

// One metric's value on a split. `name` is "top1", "top5", "accuracy", "f1" (binary, of class
// 1), "f1_macro", "agreement" (top-1 agreement with a reference model) or "kl" (mean KL of the
// reference's softmax to the model's, nats).
struct MetricValue {
  std::string name;
  double value = 0.0;
};

// How a report names a metric: "top-1", "top-5", "accuracy", "F1", "macro F1", "agreement".
std::string metric_label(const std::string& metric);

// The metric to report: `asked` unless "auto"; then agreement without labels, else for text F1
// of class 1 with two classes and accuracy with more, for images and tensors top-1.
// `num_classes` 0 means unknown (integer labels; the model's output count decides). Error when
// a metric that needs labels is asked of unlabelled data.
std::string resolve_metric(const std::string& asked, const std::string& modality, bool labelled,
                           int64_t num_classes);

// A data set bound to a model.
class Dataset {
 public:
  virtual ~Dataset() = default;
  const DataSpec& spec() const { return spec_; }

  virtual std::string modality() const = 0;  // "image", "text" or "tensor"
  // Class names in label order; empty when the data set has no labels or names none.
  virtual std::vector<std::string> class_names() const = 0;
  virtual bool has_labels() const = 0;
  // The metric the spec asks for: "auto" or one of the names of MetricValue.
  virtual std::string metric_setting() const { return spec_.fields.value("metric", std::string("auto")); }
  // The metric, resolved with the classes the data set knows (resolve_metric).
  std::string metric() const;

  // Samples in `split` ("train", "validation", "test"); reads the folder or file.
  virtual int64_t split_size(const std::string& split) const = 0;
  // A split (its first `limit` samples; 0 all) as tensors keyed by the model's input names,
  // materialised per batch for large sets. Labels are undefined when the set has none.
  virtual TaskData load(const std::string& split, int64_t limit) const = 0;
  // The split's first `limit` samples as captured (see Payload).
  virtual std::vector<Payload> payloads(const std::string& split, int64_t limit) const = 0;
  // One payload -> the model's inputs, batch 1, in the model's input order.
  virtual std::vector<at::Tensor> preprocess(const Payload& payload) const = 0;
  // What `edgeforge data` prints beyond the counts: e.g. the preprocessing, the tokenizer.
  virtual nlohmann::json describe() const = 0;

 protected:
  DataSpec spec_;
};

// A kind of data set: one file under src/data/ registers it.
struct DataKind {
  std::string name;      // "imagefolder"
  std::string summary;   // one line for --help and `edgeforge data --kinds`
  std::string modality;  // "image", "text", "tensor"
  // Checks a declared spec's fields and completes what needs no model (absolute paths, the
  // defaults that do not depend on the model). `base_dir` resolves relative paths; errors name
  // `spec.source` and the field.
  std::function<void(DataSpec& spec, const std::string& base_dir)> check;
  // Binds a checked spec to a model: fills in what depends on it (crop size, sequence length,
  // the tokenizer) into the returned Dataset's spec(). Reads no data file.
  // `model_path` (may be empty) is where the model was read from: a tokenizer beside it is found.
  std::function<std::unique_ptr<Dataset>(const DataSpec& spec, const Graph& model,
                                          const std::string& model_path)>
      open;
};

void register_data_kind(DataKind kind);
const DataKind* find_data_kind(const std::string& name);
std::vector<const DataKind*> data_kinds();  // sorted by name

#define EF_DATA_KIND_CONCAT2(a, b) a##b
#define EF_DATA_KIND_CONCAT(a, b) EF_DATA_KIND_CONCAT2(a, b)
// At namespace scope in the kind's file: EF_REGISTER_DATA_KIND(make_imagefolder_kind());
#define EF_REGISTER_DATA_KIND(expr)                                                      \
  static const bool EF_DATA_KIND_CONCAT(ef_data_kind_registered_, __LINE__) = [] {       \
    ::edgeforge::register_data_kind(expr);                                               \
    return true;                                                                         \
  }()

// Completes `spec` for `model` and stores it in the model's metadata (kMetaDataset, plus what
// the kind embeds, such as a tokenizer), replacing any spec it had. Error when the spec cannot
// feed the model (an input it does not provide, a tensor of another shape: both named).
// `model_path`, when known, is where the model was read from.
void attach_data_spec(Graph& model, const DataSpec& spec, const std::string& model_path = "");
// The data set the model carries (kMetaDataset). Error when it carries none, with the hint to
// pass --data.
std::unique_ptr<Dataset> open_dataset(const Graph& model);
// The data set `data_arg` (parse_data_spec) bound to the model, or the model's own when empty.
std::unique_ptr<Dataset> open_dataset(const Graph& model, const std::string& data_arg);
// The spec the model carries, or nullopt.
std::optional<DataSpec> model_data_spec(const Graph& model);

// --- helpers shared by the kinds ------------------------------------------------------------

// The split of an item by a stable hash of its key: FNV-1a 64 of the key modulo 100 against the
// percentages (train, validation; the rest test). The same on every machine.
std::string hash_split_of(const std::string& key, int train_percent = 80,
                          int validation_percent = 10);
// Checks a split name ("train", "validation", "test").
void check_split_name(const std::string& split);

}  // namespace edgeforge
