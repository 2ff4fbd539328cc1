// The results store of a study: one SQLite database per study folder (docs/study.md gives the
// schema). Every finished cell is written in its own transaction, so a study killed at any
// moment keeps every cell it finished and resumes after them.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edgeforge/study_schema.h"

namespace edgeforge::study {

inline constexpr const char* kStoreFormat = "edgeforge-study/1";

struct CellRecord {
  std::string kind;  // "model", "accuracy" or "latency"
  std::string model, strategy, deploy;  // deploy "" for model and accuracy cells
  std::string status = "done";          // "done" or "failed"
  std::string reason;                   // why it failed
  std::string mode;                     // latency: "simulated"
  // The cell's figures: to_json() of its kind's ModelCellData (or AutoPlacementData),
  // AccuracyCellData or LatencyCellData (edgeforge/study_schema.h).
  nlohmann::json data = nlohmann::json::object();
  std::vector<double> warm_ms, cold_ms;            // latency samples
  std::vector<uint8_t> correct;                    // accuracy: per test sample
  StudyEnvironment environment;
  double seconds = 0;
  std::string finished_utc;
};

// Where a study's runner reads the cells it builds on and writes the ones it finishes: the
// study database (Store), or, for one job of a planned study (edgeforge/study_plan.h), the
// results of the jobs it depends on and its own result file.
class CellSink {
 public:
  virtual ~CellSink() = default;
  // The cell's figures (kind, model, strategy, deploy), without its samples, when it exists.
  virtual std::optional<CellRecord> find(const std::string& kind, const std::string& model,
                                         const std::string& strategy,
                                         const std::string& deploy = "") const = 0;
  // Writes (or replaces) one cell.
  virtual void put(const CellRecord& cell) = 0;
  // The status of a cell ("done", "failed"), or "" when it has not run.
  std::string status(const std::string& kind, const std::string& model, const std::string& strategy,
                     const std::string& deploy = "") const;
};

class Store : public CellSink {
 public:
  // Opens or creates `path`. A new database records `study` and `settings`; an existing one must
  // be an edgeforge study database of the same study with the same settings (Error otherwise,
  // naming the file and what differs).
  Store(const std::string& path, const std::string& study, const nlohmann::json& settings);
  // Opens an existing database to read; Error when it is missing or not a study database.
  explicit Store(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // The cell's figures, without its samples, when it exists: status, reason and data.
  std::optional<CellRecord> find(const std::string& kind, const std::string& model,
                                 const std::string& strategy,
                                 const std::string& deploy = "") const override;
  // Writes (or replaces) one cell in its own transaction.
  void put(const CellRecord& cell) override;
  // Writes many cells in one transaction (a merge of a planned study's results).
  void put_all(const std::vector<CellRecord>& cells);
  std::vector<CellRecord> all() const;
  std::string meta(const std::string& key) const;  // "" when absent
  void set_meta(const std::string& key, const std::string& value);
  const std::string& path() const { return path_; }

 private:
  void open(bool create);
  void exec(const std::string& sql) const;
  void insert(const CellRecord& cell);
  std::string path_;
  sqlite3* db_ = nullptr;
};

std::string utc_now();  // "2026-11-27T01:02:03Z"

// The keys of `want` whose values `got` lacks or differs in, "seed, inputs": what differs
// between two studies' settings.
std::string differing_keys(const nlohmann::json& want, const nlohmann::json& got);

// A cell as JSON with its samples (base64 of the little-endian doubles and bytes the database
// keeps), the form a planned study's job writes its cells in; and back, Error naming `what`
// for a malformed one.
nlohmann::json cell_to_json(const CellRecord& cell);
CellRecord cell_from_json(const nlohmann::json& j, const std::string& what);

}  // namespace edgeforge::study
