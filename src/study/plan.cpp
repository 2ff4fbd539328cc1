// A study as a plan of jobs over a shared folder (edgeforge/study_plan.h, docs/scale-out.md):
// the plan, one job's run, and the merge into the study database.
#include "edgeforge/study_plan.h"

#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "edgeforge/build_info.h"
#include "edgeforge/error.h"
#include "../common/numbers.h"
#include "edgeforge/study_schema.h"
#include "edgeforge/strategy.h"
#include "edgeforge/tiers.h"
#include "edgeforge/util.h"
#include "runner.h"
#include "store.h"

namespace fs = std::filesystem;

namespace edgeforge {
namespace {

using json = nlohmann::json;
using study::CellRecord;

std::string plan_path(const std::string& dir) { return dir + "/plan.json"; }

// The cells of a job result document (discarded JSON included), every field checked.
std::vector<CellRecord> job_result_cells(const json& j, const std::string& what) {
  EF_CHECK(!j.is_discarded() && j.is_object(), what, ": not a JSON job result");
  EF_CHECK(j.value("format", "") == kStudyJobFormat, what, ": not an edgeforge job result (format '",
           j.value("format", ""), "')");
  EF_CHECK(j.contains("cells") && j["cells"].is_array(), what, ": cells is missing");
  std::vector<CellRecord> cells;
  for (const json& c : j["cells"]) cells.push_back(study::cell_from_json(c, what));
  return cells;
}

// ---- building the plan ----

struct PlanBuilder {
  const StudyConfig& c;
  StudyPlan plan;
  std::map<std::string, int64_t> index;  // kind|model|what -> job
  std::map<std::string, int> depth;      // model|pipeline -> its model stage

  int64_t add(const std::string& kind, const std::string& model, const std::string& what,
              const std::string& stage, std::vector<int64_t> after, int threads, bool exclusive) {
    PlanJob j;
    j.index = static_cast<int64_t>(plan.jobs.size());
    j.kind = kind;
    j.model = model;
    j.what = what;
    j.stage = stage;
    std::sort(after.begin(), after.end());
    after.erase(std::unique(after.begin(), after.end()), after.end());
    j.after = after;
    j.threads = threads;
    j.exclusive = exclusive;
    plan.jobs.push_back(j);
    index[kind + "|" + model + "|" + what] = j.index;
    return j.index;
  }
  int64_t job(const std::string& kind, const std::string& model, const std::string& what) const {
    return index.at(kind + "|" + model + "|" + what);
  }
  // The model stage of a pipeline: one after the stage of the model it starts from.
  int model_depth(const std::string& model, const std::string& p) {
    if (p == "identity") return 0;
    const auto it = depth.find(model + "|" + p);
    if (it != depth.end()) return it->second;
    const int d = 1 + model_depth(model, study::pipeline_start(c, p).first);
    depth[model + "|" + p] = d;
    return d;
  }

  void build() {
    const int mt = plan.model_threads, ct = plan.threads;
    std::vector<std::string> bases;  // in strategy order, once each
    for (const std::string& s : c.all_strategies()) {
      const std::string b = study::base_pipeline(s);
      if (b != "identity" && std::find(bases.begin(), bases.end(), b) == bases.end()) bases.push_back(b);
    }
    // Models: each model itself, then pipelines by the depth of what they start from.
    int max_depth = 0;
    for (const StudyModel& m : c.models)
      for (const std::string& b : bases) max_depth = std::max(max_depth, model_depth(m.name, b));
    for (int d = 0; d <= max_depth; ++d)
      for (const StudyModel& m : c.models) {
        if (d == 0) {
          add("model", m.name, "identity", "models-0", {}, mt, false);
          continue;
        }
        for (const std::string& b : bases)
          if (model_depth(m.name, b) == d)
            add("model", m.name, b, "models-" + std::to_string(d),
                {job("model", m.name, study::pipeline_start(c, b).first)}, mt, false);
      }
    // Auto-partition's placements: measured, so alone on their machine.
    for (const StudyModel& m : c.models)
      for (const std::string& s : c.all_strategies())
        if (parse_study_strategy(s).automatic())
          add("placement", m.name, s, "placement", {job("model", m.name, study::base_pipeline(s))}, ct, true);
    auto reads = [&](const StudyModel& m, const std::string& s) {
      std::vector<int64_t> after = {job("model", m.name, "identity"), job("model", m.name, study::base_pipeline(s))};
      if (parse_study_strategy(s).automatic()) after.push_back(job("placement", m.name, s));
      return after;
    };
    if (!c.latency_only)
      for (const StudyModel& m : c.models)
        for (const std::string& s : c.all_strategies()) add("accuracy", m.name, s, "accuracy", reads(m, s), ct, false);
    // Latency: one job per model and first tier. Auto-partition's cell joins the job of the
    // tier its placement starts on, known only once it is chosen: a study with auto-partition
    // has a job for every tier.
    for (const StudyModel& m : c.models) {
      std::set<std::string> firsts;
      std::vector<int64_t> after;
      bool automatic = false;
      for (const std::string& s : c.all_strategies()) {
        const std::vector<int64_t> r = reads(m, s);
        after.insert(after.end(), r.begin(), r.end());
        for (const std::string& d : study::deployments_of(c, s)) {
          if (d == kAutoDeployment) automatic = true;
          else firsts.insert(study::first_tier(d));
        }
      }
      for (const TierProfile& t : c.topology.tiers)
        if (automatic || firsts.count(t.name)) add("latency", m.name, t.name, "latency", after, ct, true);
    }
    // Stages, in the order their jobs were added; each after the stages its jobs read.
    for (const PlanJob& j : plan.jobs) {
      auto it = std::find_if(plan.stages.begin(), plan.stages.end(),
                             [&](const PlanStage& s) { return s.name == j.stage; });
      if (it == plan.stages.end()) {
        plan.stages.push_back(PlanStage{j.stage, {}, {}, j.exclusive, j.threads});
        it = plan.stages.end() - 1;
      }
      it->jobs.push_back(j.index);
      it->threads = std::max(it->threads, j.threads);
      for (int64_t a : j.after) {
        const std::string& s = plan.jobs[static_cast<size_t>(a)].stage;
        if (std::find(it->after.begin(), it->after.end(), s) == it->after.end()) it->after.push_back(s);
      }
    }
  }
};

json plan_json(const StudyPlan& p) {
  json jobs = json::array();
  for (const PlanJob& j : p.jobs)
    jobs.push_back({{"index", j.index}, {"kind", j.kind}, {"model", j.model}, {"what", j.what},
                    {"stage", j.stage}, {"after", j.after}, {"threads", j.threads},
                    {"exclusive", j.exclusive}, {"name", j.name()}});
  json stages = json::array();
  for (const PlanStage& s : p.stages)
    stages.push_back({{"name", s.name}, {"jobs", s.jobs}, {"after", s.after},
                      {"exclusive", s.exclusive}, {"threads", s.threads}});
  return {{"format", kStudyPlanFormat}, {"id", p.id},
          {"study", p.study},           {"edgeforge", {{"version", p.version}, {"build", p.build}, {"commit", p.commit}}},
          {"created_utc", p.created_utc}, {"source", p.source},
          {"settings", p.settings},     {"threads", p.threads},
          {"model_threads", p.model_threads}, {"stages", stages},
          {"jobs", jobs}};
}

// Reads a plan document, every field checked (a plan is read by every job).
StudyPlan plan_from_json(const json& j, const std::string& what) {
  auto need = [&](const json& o, const char* key, const std::string& where) -> const json& {
    EF_CHECK(o.is_object() && o.contains(key), what, ": ", where, key, " is missing");
    return o.at(key);
  };
  auto str = [&](const json& o, const char* key, const std::string& where = "") {
    const json& v = need(o, key, where);
    EF_CHECK(v.is_string(), what, ": ", where, key, " is not a string");
    return v.get<std::string>();
  };
  auto integer = [&](const json& o, const char* key, const std::string& where = "") {
    const json& v = need(o, key, where);
    EF_CHECK(v.is_number_integer(), what, ": ", where, key, " is not an integer");
    return v.get<int64_t>();
  };
  auto boolean = [&](const json& o, const char* key, const std::string& where) {
    const json& v = need(o, key, where);
    EF_CHECK(v.is_boolean(), what, ": ", where, key, " is not true or false");
    return v.get<bool>();
  };
  EF_CHECK(j.is_object(), what, ": not a JSON object");
  const std::string format = j.value("format", "");
  EF_CHECK(format == kStudyPlanFormat, what, ": not an edgeforge study plan (format '", format,
           "', expected '", kStudyPlanFormat, "')");
  StudyPlan p;
  p.id = str(j, "id");
  p.study = str(j, "study");
  p.version = str(need(j, "edgeforge", ""), "version", "edgeforge.");
  p.build = str(need(j, "edgeforge", ""), "build", "edgeforge.");
  p.commit = str(need(j, "edgeforge", ""), "commit", "edgeforge.");
  p.created_utc = str(j, "created_utc");
  p.source = need(j, "source", "");
  p.settings = need(j, "settings", "");
  p.threads = static_cast<int>(integer(j, "threads"));
  p.model_threads = static_cast<int>(integer(j, "model_threads"));
  const json& jobs = need(j, "jobs", "");
  EF_CHECK(jobs.is_array(), what, ": jobs is not a list");
  for (const json& x : jobs) {
    const std::string where = "jobs[" + std::to_string(p.jobs.size()) + "].";
    PlanJob k;
    k.index = integer(x, "index", where);
    EF_CHECK(k.index == static_cast<int64_t>(p.jobs.size()), what, ": ", where, "index is ", k.index);
    k.kind = str(x, "kind", where);
    k.model = str(x, "model", where);
    k.what = str(x, "what", where);
    k.stage = str(x, "stage", where);
    k.threads = static_cast<int>(integer(x, "threads", where));
    k.exclusive = boolean(x, "exclusive", where);
    const json& after = need(x, "after", where);
    EF_CHECK(after.is_array(), what, ": ", where, "after is not a list");
    for (const json& a : after) {
      EF_CHECK(a.is_number_integer() && a.get<int64_t>() >= 0 && a.get<int64_t>() < k.index, what,
               ": ", where, "after names a job that does not come before it");
      k.after.push_back(a.get<int64_t>());
    }
    p.jobs.push_back(k);
  }
  const json& stages = need(j, "stages", "");
  EF_CHECK(stages.is_array(), what, ": stages is not a list");
  for (const json& x : stages) {
    const std::string where = "stages[" + std::to_string(p.stages.size()) + "].";
    PlanStage s;
    s.name = str(x, "name", where);
    s.exclusive = boolean(x, "exclusive", where);
    s.threads = static_cast<int>(integer(x, "threads", where));
    for (const json& a : need(x, "jobs", where)) {
      EF_CHECK(a.is_number_integer() && a.get<int64_t>() >= 0 &&
                   a.get<int64_t>() < static_cast<int64_t>(p.jobs.size()) &&
                   p.jobs[static_cast<size_t>(a.get<int64_t>())].stage == s.name,
               what, ": ", where, "jobs names a job of another stage");
      s.jobs.push_back(a.get<int64_t>());
    }
    for (const json& a : need(x, "after", where)) {
      EF_CHECK(a.is_string(), what, ": ", where, "after is not a list of stage names");
      s.after.push_back(a.get<std::string>());
    }
    p.stages.push_back(s);
  }
  return p;
}

// The plan's identity: everything in it but its id and when it was made (the study's settings
// and source, the build, the threads, the jobs and stages), so that the same plan made again has
// the same id and one edited by hand does not.
std::string plan_id(const StudyPlan& p) {
  json j = plan_json(p);
  j.erase("id");
  j.erase("created_utc");
  return hex64(fnv1a64(j.dump()));
}

json source_json(const PlanSource& s) {
  json j = json::object();
  if (!s.file.empty()) {
    j["file"] = fs::absolute(s.file).lexically_normal().string();
    j["text"] = numbers::read_settings_file(s.file, "study");
  } else {
    j["preset"] = !s.preset.empty() ? s.preset : s.quick ? "quick" : "default";
  }
  if (!s.mode.empty()) j["mode"] = s.mode;
  if (s.jobs > 0) j["jobs"] = s.jobs;
  return j;
}

// The study of a plan, as every job reads it: from the plan's copy of the study file (read as
// if from where it was, so its relative paths mean what they meant) or the built-in study.
StudyConfig plan_study_config(const StudyPlan& p, const std::string& dir) {
  const json& s = p.source;
  StudyConfig c;
  if (s.contains("file")) {
    c = parse_study(s.at("text").get<std::string>(), s.at("file").get<std::string>());
  } else {
    const std::string preset = s.value("preset", "default");
    c = preset == "quick" ? default_study(true) : preset_study(preset);
  }
  if (s.contains("mode")) c.mode = s.at("mode").get<std::string>();
  if (s.contains("jobs")) c.jobs = s.at("jobs").get<int>();
  const json now = study::settings_json(c);
  if (now != p.settings)
    throw Error(plan_path(dir) + ": the study reads differently here than when it was planned (" +
                study::differing_keys(p.settings, now) + "); a file it names may have changed");
  return c;
}

// A job's result: its cells, and whether every one is done.
struct JobResult {
  bool ok = false;
  std::vector<CellRecord> cells;
};

// Reads results/job-K.json of plan `p`; nullopt when there is none. Error for a file that is
// not a result of this plan's job K.
std::optional<JobResult> read_result(const std::string& dir, const StudyPlan& p, int64_t k) {
  const std::string path = plan_result_path(dir, k, ".json");
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  const json j = json::parse(read_file(path), nullptr, false);
  JobResult r;
  r.cells = job_result_cells(j, path);
  EF_CHECK(j.value("plan", "") == p.id, path, ": a result of another plan (", j.value("plan", ""),
           ", this folder's is ", p.id, "); remove it or plan into a new folder");
  EF_CHECK(j.contains("job") && j["job"].is_number_integer() && j["job"].get<int64_t>() == k, path,
           ": the result of another job");
  const PlanJob& job = p.jobs[static_cast<size_t>(k)];
  for (const CellRecord& cell : r.cells)
    EF_CHECK(cell.model == job.model, path, ": holds a cell of model '", cell.model, "', not '",
             job.model, "'");
  r.ok = std::all_of(r.cells.begin(), r.cells.end(), [](const CellRecord& c) { return c.status == "done"; });
  return r;
}

// The cells a job reads (its dependencies' results) and the ones it writes.
class JobCells : public study::CellSink {
 public:
  std::optional<CellRecord> find(const std::string& kind, const std::string& model,
                                 const std::string& strategy, const std::string& deploy) const override {
    const auto it = cells_.find(key(kind, model, strategy, deploy));
    if (it == cells_.end()) return std::nullopt;
    return it->second;
  }
  void put(const CellRecord& c) override {
    CellRecord r = c;
    if (r.finished_utc.empty()) r.finished_utc = study::utc_now();
    read(r);
    written.push_back(r);
  }
  void read(const CellRecord& c) { cells_[key(c.kind, c.model, c.strategy, c.deploy)] = c; }
  std::vector<CellRecord> written;

 private:
  static std::string key(const std::string& kind, const std::string& model, const std::string& strategy,
                         const std::string& deploy) {
    return kind + "|" + model + "|" + strategy + "|" + deploy;
  }
  std::map<std::string, CellRecord> cells_;
};

// An advisory lock on a file, held while it lives; waits for another holder, saying so.
class FileLock {
 public:
  FileLock(const std::string& path, const std::string& waiting_message) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    EF_CHECK(fd_ >= 0, path, ": cannot be opened to lock: ", std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
    EF_CHECK(errno == EWOULDBLOCK, path, ": cannot be locked: ", std::strerror(errno));
    std::fprintf(stderr, "%s\n", waiting_message.c_str());
    while (::flock(fd_, LOCK_EX) != 0) EF_CHECK(errno == EINTR, path, ": cannot be locked: ", std::strerror(errno));
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

// A cell's model files as absolute paths on this machine (a job records those inside the folder
// relative to it).
void absolute_files(CellRecord& c, const std::string& dir) {
  if (c.data.contains("file") && c.data["file"].is_string())
    c.data["file"] = study::resolve_model_path(dir, c.data["file"].get<std::string>());
  if (c.data.contains("auto_choice") && c.data["auto_choice"].is_object() &&
      c.data["auto_choice"].contains("file") && c.data["auto_choice"]["file"].is_string())
    c.data["auto_choice"]["file"] =
        study::resolve_model_path(dir, c.data["auto_choice"]["file"].get<std::string>());
}

}  // namespace

std::string plan_result_path(const std::string& dir, int64_t job, const std::string& ext) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "job-%04lld", static_cast<long long>(job));
  return dir + "/results/" + buf + ext;
}

std::string PlanJob::name() const {
  if (kind == "latency") return "latency " + model + " from " + what;
  return kind + " " + model + "/" + what;
}

const PlanStage& StudyPlan::stage(const std::string& name) const {
  std::string known;
  for (const PlanStage& s : stages) {
    if (s.name == name) return s;
    known += (known.empty() ? "" : ", ") + s.name;
  }
  throw Error("the plan has no stage '" + name + "'; its stages: " + known);
}

StudyConfig plan_source_study(const PlanSource& s) {
  EF_CHECK(!(s.quick && !s.file.empty()), "--quick is the built-in quick study; a study file says "
           "quick = true instead");
  EF_CHECK(s.preset.empty() || (s.file.empty() && !s.quick),
           "--preset names a built-in study; give it without a study file or --quick");
  StudyConfig c = !s.preset.empty() ? preset_study(s.preset)
                  : s.file.empty()  ? default_study(s.quick)
                                    : load_study(s.file);
  if (s.jobs > 0) c.jobs = s.jobs;
  if (!s.mode.empty()) c.mode = s.mode;
  return c;
}

StudyPlan plan_study(const StudyConfig& config, const PlanSource& source, const std::string& dir) {
  PlanBuilder b{config, {}, {}, {}};
  StudyPlan& p = b.plan;
  p.study = config.name;
  p.version = version();
  p.build = build_id();
  p.commit = git_commit();
  p.created_utc = study::utc_now();
  p.source = source_json(source);
  p.settings = study::settings_json(config);
  p.threads = source.threads > 0 ? source.threads : host_cores();
  p.model_threads = source.model_threads > 0 ? source.model_threads : study::model_job_threads(config);
  b.build();
  p.id = plan_id(p);
  std::error_code ec;
  if (fs::exists(plan_path(dir), ec)) {
    const json was = json::parse(read_file(plan_path(dir)), nullptr, false);
    EF_CHECK(!was.is_discarded() && was.is_object(), plan_path(dir), ": not an edgeforge study plan");
    const std::string id = was.value("id", "");
    EF_CHECK(id == p.id, dir, ": holds another plan (study '", was.value("study", "?"), "', made ",
             was.value("created_utc", "?"), "; another study, settings or edgeforge build); choose "
             "another --out or remove the folder");
    std::fprintf(stderr, "%s already holds this plan; nothing changed\n", dir.c_str());
    return plan_from_json(was, plan_path(dir));
  }
  EF_CHECK(!fs::exists(study_database(dir), ec), dir, ": holds a study database but no plan (a local "
           "study's folder); choose another --out");
  fs::create_directories(dir + "/results");
  fs::create_directories(dir + "/running");
  write_file_atomic(plan_path(dir), plan_json(p).dump(1) + "\n");
  return p;
}

StudyPlan parse_plan(const std::string& text, const std::string& what) {
  const json j = json::parse(text, nullptr, false);
  EF_CHECK(!j.is_discarded(), what, ": not JSON");
  return plan_from_json(j, what);
}

std::vector<study::CellRecord> study::parse_job_result(const std::string& text, const std::string& what) {
  return job_result_cells(json::parse(text, nullptr, false), what);
}

StudyPlan read_plan(const std::string& dir) {
  std::error_code ec;
  EF_CHECK(fs::is_regular_file(plan_path(dir), ec), dir, ": no study plan here (plan.json is missing; "
           "edgeforge study plan writes one)");
  StudyPlan p = parse_plan(read_file(plan_path(dir)), plan_path(dir));
  EF_CHECK(p.version == version() && p.build == build_id(), dir, ": planned by edgeforge ", p.version,
           " (build ", p.build.substr(0, 12), ", commit ", p.commit, "), and this is edgeforge ",
           version(), " (build ", build_id().substr(0, 12),
           "); run the jobs with the build that planned them, or plan again into a new folder");
  EF_CHECK(p.id == plan_id(p), plan_path(dir), ": its id does not match its contents (edited by hand?)");
  return p;
}

int64_t plan_jobs(const std::string& dir) { return static_cast<int64_t>(read_plan(dir).jobs.size()); }

int64_t plan_job_index(const StudyPlan& plan, std::optional<int64_t> index, const std::string& stage) {
  std::string from = "--index";
  if (!index) {
    for (const char* var : {"SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"}) {
      const char* v = std::getenv(var);
      if (v == nullptr || *v == '\0') continue;
      std::string text = v;
      const std::optional<int64_t> k = numbers::parse_integer(text);
      EF_CHECK(k.has_value(), "$", var, " is '", v, "', not a whole number");
      index = *k;
      from = std::string("$") + var;
      break;
    }
  }
  EF_CHECK(index.has_value(), "no job index: give --index, or run as a Slurm array task "
           "($SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job ($JOB_COMPLETION_INDEX)");
  if (!stage.empty()) {
    const PlanStage& s = plan.stage(stage);
    EF_CHECK(*index >= 0 && *index < static_cast<int64_t>(s.jobs.size()), from, " ", *index,
             " is not a job of stage ", stage, " (it has ", s.jobs.size(), ": 0 to ", s.jobs.size() - 1, ")");
    return s.jobs[static_cast<size_t>(*index)];
  }
  EF_CHECK(*index >= 0 && *index < static_cast<int64_t>(plan.jobs.size()), from, " ", *index,
           " is not a job of the plan (it has ", plan.jobs.size(), ": 0 to ", plan.jobs.size() - 1, ")");
  return *index;
}

JobOutcome run_plan_job(const std::string& dir, int64_t k, const StudyRunOptions& options) {
  const StudyPlan plan = read_plan(dir);
  EF_CHECK(k >= 0 && k < static_cast<int64_t>(plan.jobs.size()), "job ", k, " is not a job of the plan");
  const PlanJob& job = plan.jobs[static_cast<size_t>(k)];
  JobOutcome out;
  if (const std::optional<JobResult> r = read_result(dir, plan, k); r && r->ok) {
    out.already_done = true;
    out.cells = static_cast<int64_t>(r->cells.size());
    return out;
  }
  const std::string host = study::host_name();
  const std::string marker = dir + "/running/" + fs::path(plan_result_path(dir, k, "")).filename().string() +
                             "." + host + "." + std::to_string(::getpid());
  const std::string error_path = plan_result_path(dir, k, ".error");
  const std::string started = study::utc_now();
  const auto t0 = std::chrono::steady_clock::now();
  json attempt = {{"job", k}, {"host", host}, {"pid", ::getpid()}, {"started_utc", started}};
  if (const char* id = std::getenv("SLURM_JOB_ID")) attempt["slurm_job"] = id;
  try {
    fs::create_directories(dir + "/running");
    write_file_atomic(marker, attempt.dump() + "\n");
    const StudyConfig config = plan_study_config(plan, dir);
    JobCells cells;
    for (int64_t a : job.after) {
      const std::optional<JobResult> r = read_result(dir, plan, a);
      EF_CHECK(r.has_value(), "job ", k, " (", job.name(), ") reads job ", a, " (",
               plan.jobs[static_cast<size_t>(a)].name(), "), which has no result yet");
      for (const CellRecord& c : r->cells) cells.read(c);
    }
    StudyRunOptions o = options;
    o.threads = job.threads;
    o.model_threads = plan.model_threads;
    study::run_planned_job(config, dir, {job.kind, job.model, job.what}, cells, o);
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    json doc = {{"format", kStudyJobFormat}, {"plan", plan.id},        {"job", k},
                {"name", job.name()},        {"host", host},            {"started_utc", started},
                {"finished_utc", study::utc_now()}, {"seconds", out.seconds}};
    if (attempt.contains("slurm_job")) doc["slurm_job"] = attempt["slurm_job"];
    doc["cells"] = json::array();
    for (const CellRecord& c : cells.written) {
      doc["cells"].push_back(study::cell_to_json(c));
      ++out.cells;
      if (c.status != "done") {
        ++out.failed;
        if (out.first_failure.empty())
          out.first_failure = c.kind + " " + c.model + "/" + c.strategy +
                              (c.deploy.empty() ? "" : "/" + c.deploy) + ": " + c.reason;
      }
    }
    write_file_atomic(plan_result_path(dir, k, ".json"), doc.dump() + "\n");
    std::error_code ec;
    fs::remove(error_path, ec);
    fs::remove(marker, ec);
  } catch (const std::exception& e) {
    // Why the job could not run, for `study status`; the result, if an earlier attempt left
    // one, stays as it was.
    std::error_code ec;
    try {
      write_file_atomic(error_path, error_line(e) + "\n");
    } catch (const std::exception&) {
    }
    fs::remove(marker, ec);
    throw;
  }
  return out;
}

MergeOutcome merge_plan(const std::string& dir) {
  const StudyPlan plan = read_plan(dir);
  FileLock lock(dir + "/merge.lock", "study merge: another merge of " + dir + " is running; waiting for it");
  MergeOutcome out;
  out.jobs = static_cast<int64_t>(plan.jobs.size());
  out.database = study_database(dir);
  std::vector<CellRecord> cells;
  for (const PlanJob& j : plan.jobs) {
    std::optional<JobResult> r = read_result(dir, plan, j.index);
    if (!r) {
      out.missing.push_back(j.index);
      continue;
    }
    ++out.merged_jobs;
    for (CellRecord& c : r->cells) {
      absolute_files(c, dir);
      if (c.status != "done") ++out.failed_cells;
      cells.push_back(std::move(c));
    }
  }
  out.cells = static_cast<int64_t>(cells.size());
  std::error_code ec;
  if (fs::exists(out.database, ec)) {
    const study::Store was(out.database);
    EF_CHECK(was.meta("plan") == plan.id, out.database, ": not a merge of this folder's plan (",
             was.meta("plan").empty() ? std::string("a local study's database") : "plan " + was.meta("plan"),
             "); move it away to merge here");
  }
  // The database is written whole beside the old one and renamed over it: a reader sees the
  // old or the new, and a merge killed half way leaves the old.
  const std::string tmp = out.database + ".merge." + study::host_name() + "." + std::to_string(::getpid());
  fs::remove(tmp, ec);
  try {
    {
      study::Store store(tmp, plan.study, plan.settings);
      store.set_meta("plan", plan.id);
      store.set_meta("created_utc", plan.created_utc);
      store.put_all(cells);
    }
    fs::rename(tmp, out.database);
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  return out;
}

}  // namespace edgeforge
