// The SQLite results store of a study (src/study/store.h).
#include "store.h"

#include <cstring>
#include <ctime>
#include <filesystem>

#include "edgeforge/error.h"
#include "edgeforge/util.h"

namespace edgeforge::study {
namespace {

const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
  kind TEXT NOT NULL,
  model TEXT NOT NULL,
  strategy TEXT NOT NULL,
  deploy TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  mode TEXT NOT NULL DEFAULT '',
  data TEXT NOT NULL DEFAULT '{}',
  warm_ms BLOB,
  cold_ms BLOB,
  correct BLOB,
  environment TEXT NOT NULL DEFAULT '{}',
  seconds REAL NOT NULL DEFAULT 0,
  finished_utc TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (kind, model, strategy, deploy)
);
)sql";

// A prepared statement, finalized on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql, const std::string& path) : db_(db), path_(path) {
    EF_CHECK(sqlite3_prepare_v2(db, sql.c_str(), -1, &s_, nullptr) == SQLITE_OK, path, ": ",
             sqlite3_errmsg(db));
  }
  ~Statement() { sqlite3_finalize(s_); }
  Statement& text(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& real(int i, double v) {
    sqlite3_bind_double(s_, i, v);
    return *this;
  }
  Statement& blob(int i, const void* p, size_t n) {
    if (n == 0) sqlite3_bind_null(s_, i);
    else sqlite3_bind_blob(s_, i, p, static_cast<int>(n), SQLITE_TRANSIENT);
    return *this;
  }
  bool step() {
    const int rc = sqlite3_step(s_);
    EF_CHECK(rc == SQLITE_ROW || rc == SQLITE_DONE, path_, ": ", sqlite3_errmsg(db_));
    return rc == SQLITE_ROW;
  }
  std::string column_text(int i) const {
    const auto* p = sqlite3_column_text(s_, i);
    return p == nullptr ? "" : reinterpret_cast<const char*>(p);
  }
  double column_real(int i) const { return sqlite3_column_double(s_, i); }
  template <class T>
  std::vector<T> column_blob(int i) const {
    const void* p = sqlite3_column_blob(s_, i);
    const int n = sqlite3_column_bytes(s_, i);
    std::vector<T> out(static_cast<size_t>(n) / sizeof(T));
    if (p != nullptr && !out.empty()) std::memcpy(out.data(), p, out.size() * sizeof(T));
    return out;
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
  std::string path_;
};

}  // namespace

std::string differing_keys(const nlohmann::json& want, const nlohmann::json& got) {
  std::string diff;
  for (const auto& [k, v] : want.items())
    if (!got.is_object() || !got.contains(k) || got[k] != v) diff += (diff.empty() ? "" : ", ") + k;
  return diff;
}

std::string utc_now() {
  char buf[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return buf;
}

void Store::exec(const std::string& sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string message = err != nullptr ? err : "unknown error";
    sqlite3_free(err);
    throw Error(path_ + ": " + message);
  }
}

void Store::open(bool create) {
  const int flags = create ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
  if (sqlite3_open_v2(path_.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    const std::string message = db_ != nullptr ? sqlite3_errmsg(db_) : "cannot open";
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(path_ + ": " + message);
  }
  sqlite3_busy_timeout(db_, 5000);
  // A file that is not SQLite fails on its first read: say so in the user's words.
  char* err = nullptr;
  if (sqlite3_exec(db_, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string message = err != nullptr ? err : "unreadable";
    sqlite3_free(err);
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(path_ + ": not an edgeforge study database (" + message + ")");
  }
}

Store::Store(const std::string& path, const std::string& study, const nlohmann::json& settings)
    : path_(path) {
  const bool existed = std::filesystem::exists(path);
  open(true);
  try {
    if (existed) {
      Statement has(db_, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'", path_);
      has.step();
      EF_CHECK(has.column_real(0) == 1, path_, ": not an edgeforge study database (no meta table)");
      EF_CHECK(meta("format") == kStoreFormat, path_, ": not an edgeforge study database (format '",
               meta("format"), "', expected '", kStoreFormat, "')");
      EF_CHECK(meta("study") == study, path_, ": holds study '", meta("study"), "', not '", study,
               "'; choose another --out");
      const nlohmann::json was = nlohmann::json::parse(meta("settings"), nullptr, false);
      if (was != settings)
        throw Error(path_ + ": study '" + study + "' was run with other settings (" +
                    differing_keys(settings, was) + "); choose another --out or remove the folder");
    } else {
      exec(kSchema);
      exec("BEGIN");
      set_meta("format", kStoreFormat);
      set_meta("study", study);
      set_meta("settings", settings.dump());
      set_meta("created_utc", utc_now());
      exec("COMMIT");
    }
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

Store::Store(const std::string& path) : path_(path) {
  EF_CHECK(std::filesystem::exists(path), path, ": no study database here (run edgeforge study first)");
  open(false);
  Statement has(db_, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'", path_);
  has.step();
  const bool ok = has.column_real(0) == 1 && meta("format") == kStoreFormat;
  if (!ok) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(path + ": not an edgeforge study database");
  }
}

Store::~Store() { sqlite3_close(db_); }

void Store::set_meta(const std::string& key, const std::string& value) {
  Statement s(db_, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", path_);
  s.text(1, key).text(2, value).step();
}

std::string Store::meta(const std::string& key) const {
  Statement s(db_, "SELECT value FROM meta WHERE key = ?", path_);
  s.text(1, key);
  return s.step() ? s.column_text(0) : "";
}

std::string CellSink::status(const std::string& kind, const std::string& model,
                             const std::string& strategy, const std::string& deploy) const {
  const std::optional<CellRecord> c = find(kind, model, strategy, deploy);
  return c ? c->status : "";
}

std::optional<CellRecord> Store::find(const std::string& kind, const std::string& model,
                                      const std::string& strategy, const std::string& deploy) const {
  Statement s(db_,
              "SELECT status, reason, data FROM cells WHERE kind=? AND model=? AND strategy=? AND "
              "deploy=?",
              path_);
  s.text(1, kind).text(2, model).text(3, strategy).text(4, deploy);
  if (!s.step()) return std::nullopt;
  CellRecord c;
  c.kind = kind;
  c.model = model;
  c.strategy = strategy;
  c.deploy = deploy;
  c.status = s.column_text(0);
  c.reason = s.column_text(1);
  c.data = nlohmann::json::parse(s.column_text(2), nullptr, false);
  EF_CHECK(!c.data.is_discarded(), path_, ": cell ", kind, "/", model, "/", strategy,
           " has malformed data");
  return c;
}

void Store::put(const CellRecord& c) { put_all({c}); }

void Store::put_all(const std::vector<CellRecord>& cells) {
  exec("BEGIN IMMEDIATE");
  try {
    for (const CellRecord& c : cells) insert(c);
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void Store::insert(const CellRecord& c) {
  {
    Statement s(db_,
                "INSERT OR REPLACE INTO cells (kind, model, strategy, deploy, status, reason, mode, "
                "data, warm_ms, cold_ms, correct, environment, seconds, finished_utc) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                path_);
    s.text(1, c.kind).text(2, c.model).text(3, c.strategy).text(4, c.deploy).text(5, c.status);
    s.text(6, c.reason).text(7, c.mode).text(8, c.data.dump());
    s.blob(9, c.warm_ms.data(), c.warm_ms.size() * sizeof(double));
    s.blob(10, c.cold_ms.data(), c.cold_ms.size() * sizeof(double));
    s.blob(11, c.correct.data(), c.correct.size());
    s.text(12, to_json(c.environment).dump()).real(13, c.seconds);
    s.text(14, c.finished_utc.empty() ? utc_now() : c.finished_utc);
    s.step();
  }
}

std::vector<CellRecord> Store::all() const {
  Statement s(db_,
              "SELECT kind, model, strategy, deploy, status, reason, mode, data, warm_ms, cold_ms, "
              "correct, environment, seconds, finished_utc FROM cells ORDER BY rowid",
              path_);
  std::vector<CellRecord> out;
  while (s.step()) {
    CellRecord c;
    c.kind = s.column_text(0);
    c.model = s.column_text(1);
    c.strategy = s.column_text(2);
    c.deploy = s.column_text(3);
    c.status = s.column_text(4);
    c.reason = s.column_text(5);
    c.mode = s.column_text(6);
    c.data = nlohmann::json::parse(s.column_text(7), nullptr, false);
    EF_CHECK(!c.data.is_discarded(), path_, ": cell ", c.kind, "/", c.model, "/", c.strategy,
             " has malformed data");
    c.warm_ms = s.column_blob<double>(8);
    c.cold_ms = s.column_blob<double>(9);
    c.correct = s.column_blob<uint8_t>(10);
    c.environment = environment_from_json(nlohmann::json::parse(s.column_text(11), nullptr, false));
    c.seconds = s.column_real(12);
    c.finished_utc = s.column_text(13);
    out.push_back(std::move(c));
  }
  return out;
}

namespace {

template <class T>
std::string bytes_of(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

template <class T>
std::vector<T> vector_of(const std::string& bytes, const std::string& what) {
  EF_CHECK(bytes.size() % sizeof(T) == 0, what, ": ", bytes.size(), " bytes are not whole ",
           sizeof(T), "-byte values");
  std::vector<T> out(bytes.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

}  // namespace

nlohmann::json cell_to_json(const CellRecord& c) {
  return {{"kind", c.kind},
          {"model", c.model},
          {"strategy", c.strategy},
          {"deploy", c.deploy},
          {"status", c.status},
          {"reason", c.reason},
          {"mode", c.mode},
          {"data", c.data},
          {"warm_ms", base64_encode(bytes_of(c.warm_ms))},
          {"cold_ms", base64_encode(bytes_of(c.cold_ms))},
          {"correct", base64_encode(bytes_of(c.correct))},
          {"environment", to_json(c.environment)},
          {"seconds", c.seconds},
          {"finished_utc", c.finished_utc}};
}

CellRecord cell_from_json(const nlohmann::json& j, const std::string& what) {
  EF_CHECK(j.is_object(), what, ": a cell is not a JSON object");
  auto text = [&](const char* key) {
    EF_CHECK(j.contains(key) && j[key].is_string(), what, ": cell field '", key,
             "' is missing or not a string");
    return j[key].get<std::string>();
  };
  CellRecord c;
  c.kind = text("kind");
  EF_CHECK(c.kind == "model" || c.kind == "accuracy" || c.kind == "latency", what, ": cell kind '",
           c.kind, "' is not model, accuracy or latency");
  c.model = text("model");
  c.strategy = text("strategy");
  c.deploy = text("deploy");
  c.status = text("status");
  EF_CHECK(c.status == "done" || c.status == "failed", what, ": cell status '", c.status,
           "' is not done or failed");
  c.reason = text("reason");
  c.mode = text("mode");
  c.finished_utc = text("finished_utc");
  EF_CHECK(j.contains("data") && j["data"].is_object(), what, ": cell field 'data' is missing");
  c.data = j["data"];
  const std::string where = what + ": cell " + c.kind + "/" + c.model + "/" + c.strategy;
  c.warm_ms = vector_of<double>(base64_decode(text("warm_ms"), where + " warm_ms"), where + " warm_ms");
  c.cold_ms = vector_of<double>(base64_decode(text("cold_ms"), where + " cold_ms"), where + " cold_ms");
  c.correct = vector_of<uint8_t>(base64_decode(text("correct"), where + " correct"), where + " correct");
  EF_CHECK(j.contains("environment") && j["environment"].is_object(), where,
           ": field 'environment' is missing");
  c.environment = environment_from_json(j["environment"]);
  EF_CHECK(j.contains("seconds") && j["seconds"].is_number(), where, ": field 'seconds' is missing");
  c.seconds = j["seconds"].get<double>();
  return c;
}

}  // namespace edgeforge::study
