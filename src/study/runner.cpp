// Running a study (edgeforge/study.h): the models, then accuracy, then latency, each cell
// committed to the store as it finishes.
#include <ATen/ATen.h>
#include <oneapi/dnnl/dnnl.hpp>
#include <sqlite3.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <optional>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include <unistd.h>

#include "edgeforge/build_info.h"
#include "edgeforge/deploy.h"
#include "edgeforge/dataset.h"
#include "edgeforge/tier_modes.h"
#include "edgeforge/error.h"
#include "edgeforge/lower.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/partition.h"
#include "edgeforge/process.h"
#include "edgeforge/stats.h"
#include "edgeforge/strategy.h"
#include "edgeforge/study.h"
#include "edgeforge/task.h"
#include "edgeforge/agent.h"
#include "edgeforge/emulate.h"
#include "edgeforge/train.h"
#include "edgeforge/util.h"
#include "edgeforge/zoo.h"
#include "runner.h"
#include "store.h"

namespace fs = std::filesystem;

namespace edgeforge {
namespace study {

std::string base_pipeline(const std::string& strategy) { return parse_study_strategy(strategy).pipeline; }

std::vector<std::string> deployments_of(const StudyConfig& c, const std::string& strategy) {
  const StudyStrategy s = parse_study_strategy(strategy);
  if (s.automatic()) return {kAutoDeployment};
  std::vector<std::string> out;
  for (const std::string& d : c.deployments)
    if ((d.find('-') != std::string::npos) == s.split()) out.push_back(d);
  return out;
}

std::string first_tier(const std::string& deploy) { return deploy.substr(0, deploy.find('-')); }

int model_job_slots(const StudyConfig& c) {
  return std::max(1, std::min(c.jobs > 0 ? c.jobs : host_cores(), host_cores()));
}

int model_job_threads(const StudyConfig& c) { return std::max(1, host_cores() / model_job_slots(c)); }

std::pair<std::string, std::string> pipeline_start(const StudyConfig& c, const std::string& p) {
  if (c.options.count(p)) return {"identity", p};
  std::set<std::string> bases;
  for (const std::string& s : c.all_strategies()) bases.insert(base_pipeline(s));
  for (size_t plus = p.rfind('+'); plus != std::string::npos && plus > 0; plus = p.rfind('+', plus - 1)) {
    const std::string prefix = p.substr(0, plus);
    if (bases.count(prefix)) return {prefix, p.substr(plus + 1)};
  }
  return {"identity", p};
}

nlohmann::json settings_json(const StudyConfig& c) {
  nlohmann::json models = nlohmann::json::array();
  for (const StudyModel& m : c.models) models.push_back({{"name", m.name}, {"file", m.file}});
  nlohmann::json topo = {{"name", c.topology.name}};
  for (const TierProfile& t : c.topology.tiers)
    topo["tiers"].push_back({{"name", t.name}, {"cores", t.cores}, {"memory_gb", t.memory_gb},
                             {"speed", t.speed}, {"reference_ms", t.reference_ms}});
  for (const Link& l : c.topology.links)
    topo["links"].push_back({{"from", l.from}, {"to", l.to}, {"bandwidth_mbps", l.bandwidth_mbps},
                             {"rtt_ms", l.rtt_ms}, {"jitter_ms", l.jitter_ms}, {"loss", l.loss}});
  nlohmann::json j = {{"quick", c.quick},          {"models", models},
          {"strategies", c.strategies}, {"extras", c.extras},
          {"deployments", c.deployments}, {"options", c.options},
          {"topology", topo},          {"inputs", c.inputs},
          {"runs", c.runs},            {"accuracy_limit", c.accuracy_limit},
          {"train_limit", c.train_limit}, {"sweep_mbps", c.sweep_mbps},
          {"seed", c.seed}};
  if (tier_mode(c.mode).real) j["mode"] = c.mode;  // (older simulated studies have no key)
  // Settings newer than the first studies are written only when they differ from their
  // defaults, so an older study folder still resumes.
  if (c.min_effect_pct != 5) j["min_effect_pct"] = c.min_effect_pct;
  if (c.max_accuracy_drop_pt != 1) j["max_accuracy_drop_pt"] = c.max_accuracy_drop_pt;
  if (c.max_latency_ms != 0) j["max_latency_ms"] = c.max_latency_ms;
  if (c.latency_only) j["latency_only"] = true;
  if (!c.note.empty()) j["note"] = c.note;
  if (c.frame_size != 0) j["frame_size"] = c.frame_size;
  for (size_t k = 0; k < c.models.size(); ++k)
    if (!c.models[k].student_file.empty()) j["models"][k]["student_file"] = c.models[k].student_file;
  return j;
}

}  // namespace study

namespace {

using study::base_pipeline;
using study::CellRecord;
using study::CellSink;
using study::deployments_of;
using study::settings_json;
using study::Store;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

StudyEnvironment environment(int threads, uint64_t seed) {
  const dnnl_version_t* dv = dnnl_version();
  StudyEnvironment e;
  e.commit = git_commit();
  e.version = version();
  e.cpu = cpu_model();
  e.host = study::host_name();
  e.host_cores = host_cores();
  e.threads = threads;
  e.seed = static_cast<int64_t>(seed);
  e.libraries = {{"libtorch", TORCH_VERSION},
                 {"onednn", std::to_string(dv->major) + "." + std::to_string(dv->minor) + "." +
                                std::to_string(dv->patch)},
                 {"sqlite", sqlite3_libversion()}};
  return e;
}

// The last non-empty line of a log: a failed child's one-line error.
std::string last_line(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    const auto cr = line.rfind('\r');  // progress lines redrawn in place
    if (cr != std::string::npos) line = line.substr(cr + 1);
    if (!line.empty()) last = line;
  }
  return last.empty() ? "no output (see " + path + ")" : last;
}

// The latency phase's guard against a machine whose speed changes: the reference workload's
// repetitions per probe, the drift of a group's reference cell that sends the group to be
// measured again, and the attempts. (The reference workload itself, measured around a group,
// is recorded but decides nothing: after a real-size model's rounds it read up to 79% slower
// on an idle machine, its own caches and allocations disturbed, not the machine.)
constexpr int kProbeReps = 150;
constexpr double kDriftLimitPct = 10.0;
constexpr int kMaxAttempts = 3;

class Runner {
 public:
  // A local study: its cells in out_dir/study.sqlite.
  Runner(const StudyConfig& c, const std::string& out_dir, const StudyRunOptions& o)
      : c_(c), out_(out_dir), opts_(o) {
    fs::create_directories(out_ + "/logs");
    fs::create_directories(out_ + "/models");
    threads_ = o.threads > 0 ? o.threads : host_cores();
    store_ = std::make_unique<Store>(study_database(out_), c_.name, settings_json(c_));
    cells_ = store_.get();
    resolve_speeds(c_.topology);
  }
  // One job of a planned study: its cells in `cells`.
  Runner(const StudyConfig& c, const std::string& dir, const StudyRunOptions& o, CellSink& cells)
      : c_(c), out_(dir), opts_(o), cells_(&cells), planned_(true) {
    fs::create_directories(out_ + "/logs");
    fs::create_directories(out_ + "/models");
    threads_ = o.threads > 0 ? o.threads : host_cores();
    resolve_speeds(c_.topology);
  }

  void run_job(const study::PlannedJob& job) {
    progress_ = std::make_unique<ProgressLine>("study " + c_.name + " job", /*show_eta=*/false);
    started_ = Clock::now();
    const auto model = std::find_if(c_.models.begin(), c_.models.end(),
                                    [&](const StudyModel& m) { return m.name == job.model; });
    EF_CHECK(model != c_.models.end(), "the plan's job names model '", job.model,
             "', which the study does not have");
    if (job.kind == "model") {
      ModelStep step;
      if (job.what == "identity") {
        step = teacher_step(*model, model_threads());
      } else {
        const std::string from = study::pipeline_start(c_, job.what).first;
        EF_CHECK(!cells_->status("model", job.model, from).empty(), "model ", job.model, "/",
                 job.what, " starts from ", job.model, "/", from, ", which has no result yet");
        step = pipeline_step(job.model, job.what, model_threads());
      }
      if (!step.now) {
        const ModelJob& j = step.job;
        show("making " + j.model + "/" + j.pipeline);
        const auto t0 = Clock::now();
        ChildProcess child(j.argv, j.log + ".json", j.log,
                           {"EDGEFORGE_PARENT_PID=" + std::to_string(::getpid())});
        const int status = child.wait();
        step.now = model_result(j, status, seconds_since(t0));
      }
      finished(*step.now);
    } else if (job.kind == "placement") {
      CellRecord r = cell("model", job.model, job.what);
      const auto t0 = Clock::now();
      try {
        const std::string file = model_file(job.model, base_pipeline(job.what));
        EF_CHECK(!file.empty(), "no model: ", model_failure(job.model, base_pipeline(job.what)));
        show("placing " + job.model + "/" + job.what);
        AutoPlacementData d = auto_choice(*model, job.what, file, /*choose=*/true);
        d.file = recorded_path(d.file);
        r.data = to_json(d);
      } catch (const std::exception& e) {
        r.status = "failed";
        r.reason = e.what();
      }
      r.seconds = seconds_since(t0);
      finished(r);
    } else if (job.kind == "accuracy") {
      accuracy_cell(*model, job.what);
    } else if (job.kind == "latency") {
      latency_cells(*model, &job.what);
    } else {
      throw Error("the plan's job is of kind '" + job.kind + "', not model, placement, accuracy or latency");
    }
    progress_->finish(std::to_string(done_) + " cells (" + std::to_string(failed_) + " failed)");
  }

  void run() {
    std::string strategies;
    for (const std::string& x : c_.all_strategies()) strategies += (strategies.empty() ? "" : ", ") + x;
    std::fprintf(stderr, "study %s: %zu models x %zu strategies (%s) on %zu deployments -> %s\n",
                 c_.name.c_str(), c_.models.size(), c_.all_strategies().size(), strategies.c_str(),
                 c_.deployments.size(), out_.c_str());
    count_cells();
    progress_ = std::make_unique<ProgressLine>("study " + c_.name);
    make_models();
    if (!c_.latency_only)
      for (const StudyModel& m : c_.models)
        for (const std::string& s : c_.all_strategies()) accuracy_cell(m, s);
    for (const StudyModel& m : c_.models) latency_cells(m);
    progress_->finish(std::to_string(done_) + " cells (" + std::to_string(failed_) + " failed)");
  }

 private:
  // ---- bookkeeping ----
  bool pending(const std::string& kind, const std::string& model, const std::string& strategy,
               const std::string& deploy = "") const {
    const std::string s = cells_->status(kind, model, strategy, deploy);
    return s.empty() || (s == "failed" && opts_.retry_failed);
  }
  void count_cells() {
    total_ = 0;
    for (size_t m = 0; m < c_.models.size(); ++m) {
      std::set<std::string> bases;
      for (const std::string& s : c_.all_strategies()) {
        bases.insert(base_pipeline(s));
        if (!c_.latency_only) remaining_["accuracy"] += 1;
        remaining_["latency"] += static_cast<int64_t>(deployments_of(c_, s).size());
      }
      remaining_["model"] += static_cast<int64_t>(bases.size());
    }
    for (const auto& [kind, n] : remaining_) total_ += n;
    started_ = Clock::now();
  }
  // The progress line: cells done of all, and an ETA from the time each kind of cell has taken
  // so far (a model job takes minutes, a latency cell seconds), before any, from rough priors.
  void show(const std::string& detail) {
    const std::map<std::string, double> prior = {{"model", 120.0}, {"accuracy", 5.0}, {"latency", 4.0}};
    const double jobs = study::model_job_slots(c_);
    double left_s = 0;
    for (const auto& [kind, n] : remaining_) {
      const auto sp = spent_.find(kind);
      double each = sp != spent_.end() && sp->second.second > 0 ? sp->second.first / sp->second.second
                                                                 : prior.at(kind);
      if (kind == "model") each /= jobs;  // model jobs run side by side
      left_s += each * static_cast<double>(n);
    }
    const double elapsed_s = std::max(1e-3, seconds_since(started_));
    // (one job of a plan does not know how long its cells will take: no counts, no ETA)
    if (planned_) return progress_->update(0, 1, detail);
    progress_->update(static_cast<int64_t>(elapsed_s * 10), static_cast<int64_t>((elapsed_s + left_s) * 10),
                      std::to_string(done_) + "/" + std::to_string(total_) + " cells  " + detail);
  }
  void finished(const CellRecord& cell) {
    cells_->put(cell);
    ++done_;
    --remaining_[cell.kind];
    if (cell.seconds > 0) {
      spent_[cell.kind].first += cell.seconds;
      spent_[cell.kind].second += 1;
    }
    if (cell.status == "failed") {
      ++failed_;
      std::fprintf(stderr, "\nstudy: %s %s/%s%s failed: %s\n", cell.kind.c_str(), cell.model.c_str(),
                   cell.strategy.c_str(), cell.deploy.empty() ? "" : ("/" + cell.deploy).c_str(),
                   cell.reason.c_str());
    }
    show(cell.kind + " " + cell.model + "/" + cell.strategy + (cell.deploy.empty() ? "" : "/" + cell.deploy));
  }
  void skipped(const std::string& kind) {
    ++done_;
    --remaining_[kind];
    show("resumed");
  }
  CellRecord cell(const std::string& kind, const std::string& model, const std::string& strategy,
                  const std::string& deploy = "") const {
    CellRecord r;
    r.kind = kind;
    r.model = model;
    r.strategy = strategy;
    r.deploy = deploy;
    r.environment = environment(threads_, c_.seed);
    return r;
  }
  // The file of a model cell that is done, or "".
  std::string model_file(const std::string& model, const std::string& pipeline) {
    const std::optional<CellRecord> r = cells_->find("model", model, pipeline);
    return r && r->status == "done" ? study::resolve_model_path(out_, model_cell_from_json(r->data).file) : "";
  }
  // How a model cell records a file: absolute, or, in a planned study, relative to its folder
  // when it is inside (the folder may be mounted at another path on another machine).
  std::string recorded_path(const std::string& file) const {
    const fs::path abs = fs::absolute(file).lexically_normal();
    if (!planned_) return abs.string();
    const fs::path rel = abs.lexically_relative(fs::absolute(out_).lexically_normal());
    return !rel.empty() && *rel.begin() != ".." ? rel.string() : abs.string();
  }
  std::string model_failure(const std::string& model, const std::string& pipeline) {
    const std::optional<CellRecord> r = cells_->find("model", model, pipeline);
    if (!r) return "its model was not made";
    return r->status == "failed" ? r->reason : "";
  }

  // ---- models: child processes, teachers first, then each teacher's pipelines ----
  // A model job: making one pipeline's model (or training a zoo teacher) in a child process.
  struct ModelJob {
    std::string model, pipeline, out, log;
    std::string part;  // the file the child writes, renamed to `out` when it succeeds
    std::vector<std::string> argv;
  };

  // The cache path of a pipeline's output: a hash of the input file and everything that makes it.
  std::string pipeline_cache(const std::string& teacher_file, const std::string& pipeline) const {
    const auto opts = c_.options.find(pipeline);
    std::string key = hex64(fnv1a64(read_file(teacher_file)));
    key += pipeline + "|" + std::to_string(c_.train_limit) + "|" + std::to_string(c_.seed);
    if (opts != c_.options.end())
      for (const std::string& o : opts->second) key += "|" + o;
    fs::create_directories(cache_dir() + "/strategies");
    return cache_dir() + "/strategies/" + hex64(fnv1a64(key)) + ".onnx";
  }

  // The edgeforge program the model jobs run.
  std::string program() const {
    if (!opts_.program.empty()) return opts_.program;
    const char* env = std::getenv("EDGEFORGE_PROGRAM");
    return env != nullptr && *env != '\0' ? env : self_executable();
  }

  // How making a model goes: a cell recorded at once (a model file, one found in the cache, a
  // failure upstream) or a child process to run.
  struct ModelStep {
    std::optional<CellRecord> now;
    ModelJob job;
  };

  // A model's own cell: a model file (bound to its data set), or its zoo training.
  ModelStep teacher_step(const StudyModel& m, int job_threads) {
    ModelStep step;
    if (!m.file.empty()) {
      CellRecord r = cell("model", m.name, "identity");
      ModelCellData d{fs::absolute(m.file).string(), true, {}};
      try {
        Graph g = load_onnx(m.file);
        if (m.data) {
          // The model as the study reads it: its data set in its metadata, so every job on
          // it and on what the strategies make of it reads the same data.
          attach_data_spec(g, *m.data, m.file);
          const std::string bound = out_ + "/models/" + m.name + ".onnx";
          fs::create_directories(out_ + "/models");
          save_onnx(g, bound);
          d.file = recorded_path(bound);
        } else {
          open_dataset(g);  // says, in the cell, that the model needs a data set
        }
      } catch (const std::exception& e) {
        r.status = "failed";
        r.reason = e.what();
      }
      r.data = to_json(d);
      step.now = r;
      return step;
    }
    ModelJob& j = step.job;
    j.model = m.name;
    j.pipeline = "identity";
    j.out = out_ + "/models/" + m.name + ".onnx";
    j.part = j.out;  // train writes its file whole (write_file_atomic)
    j.log = out_ + "/logs/" + m.name + ".train.log";
    j.argv = {program(), "train", "--model", m.name, "--out", j.out, "--threads",
              std::to_string(job_threads), "--json"};
    if (c_.quick) j.argv.push_back("--quick");
    return step;
  }

  // A strategy pipeline's model, once the model it starts from (pipeline_start) has a cell.
  ModelStep pipeline_step(const std::string& model, const std::string& p, int job_threads) {
    ModelStep step;
    const auto [from, rest] = study::pipeline_start(c_, p);
    const std::string input = model_file(model, from);
    // A latency-only study deploys the untrained student architecture as "distill".
    if (c_.latency_only && p == "distill") {
      CellRecord r = cell("model", model, p);
      const StudyModel& sm = *std::find_if(c_.models.begin(), c_.models.end(),
                                           [&](const StudyModel& x) { return x.name == model; });
      if (sm.student_file.empty()) {
        r.status = "failed";
        r.reason = "a latency-only study has no student for '" + model + "' to deploy as distill";
      } else {
        r.data = to_json(ModelCellData{fs::absolute(sm.student_file).string(), true, {}});
      }
      step.now = r;
      return step;
    }
    if (input.empty()) {
      CellRecord r = cell("model", model, p);
      r.status = "failed";
      r.reason = (from == "identity" ? "the model itself failed: " : from + " failed: ") +
                 model_failure(model, from);
      step.now = r;
      return step;
    }
    ModelJob& j = step.job;
    j.model = model;
    j.pipeline = p;
    j.log = out_ + "/logs/" + model + "." + p + ".log";
    if (planned_) {
      // A planned study's models live in its folder, which every machine shares; each attempt
      // writes its own part file (two attempts of one job may overlap) and renames it.
      j.out = out_ + "/models/" + model + "." + p + ".onnx";
      j.part = j.out + "." + study::host_name() + "." + std::to_string(::getpid()) + ".part.onnx";
    } else {
      j.out = pipeline_cache(input, rest);
      j.part = j.out + ".part.onnx";
      if (fs::exists(j.out)) {
        CellRecord r = cell("model", model, p);
        r.data = to_json(ModelCellData{j.out, true, {}});
        step.now = r;
        return step;
      }
    }
    j.argv = {program(), "optimize", "--model", input, "--strategy", rest, "--out", j.part,
              "--threads", std::to_string(job_threads), "--seed", std::to_string(c_.seed),
              "--json"};
    if (c_.train_limit > 0) {
      j.argv.push_back("--limit");
      j.argv.push_back(std::to_string(c_.train_limit));
    }
    if (auto o = c_.options.find(p); o != c_.options.end())
      for (const std::string& v : o->second) j.argv.insert(j.argv.end(), {"-o", v});
    return step;
  }

  // The cell of a model job that ended with `status` after `seconds`.
  CellRecord model_result(const ModelJob& j, int status, double seconds) {
    CellRecord r = cell("model", j.model, j.pipeline);
    r.seconds = seconds;
    if (status == 0) {
      if (j.part != j.out) fs::rename(j.part, j.out);
      ModelCellData d{recorded_path(j.out), false, {}};
      const nlohmann::json report = nlohmann::json::parse(read_file(j.log + ".json"), nullptr, false);
      if (!report.is_discarded()) d.report = report;
      r.data = to_json(d);
    } else {
      r.status = "failed";
      r.reason = last_line(j.log);
      std::error_code ec;
      if (j.part != j.out) fs::remove(j.part, ec);
    }
    return r;
  }

  // Threads of each model job: the options', else as many as this machine gives each.
  int model_threads() const {
    return opts_.model_threads > 0 ? opts_.model_threads : study::model_job_threads(c_);
  }

  void make_models() {
    const int jobs = study::model_job_slots(c_);
    const int job_threads = model_threads();
    JobPool pool(jobs);
    std::set<std::string> in_flight;  // model|pipeline of the jobs queued or running
    std::function<void(const std::string&)> enqueue_pipelines;
    // Queues a model job; when it ends, its cell is written and what starts from it is queued.
    auto enqueue = [&](const ModelJob& j) {
      in_flight.insert(j.model + "|" + j.pipeline);
      Job job;
      job.name = j.model + "/" + j.pipeline;
      job.argv = j.argv;
      job.stdout_path = j.log + ".json";
      job.stderr_path = j.log;
      job.env = {"EDGEFORGE_PARENT_PID=" + std::to_string(::getpid())};
      job.started = [this, j] { show("making " + j.model + "/" + j.pipeline); };
      job.ended = [this, j, &in_flight, &enqueue_pipelines](int status, double seconds) {
        const CellRecord r = model_result(j, status, seconds);
        in_flight.erase(j.model + "|" + j.pipeline);
        finished(r);
        enqueue_pipelines(j.model);  // what starts from this model can go now
      };
      pool.add(std::move(job));
    };
    // Teachers.
    for (const StudyModel& m : c_.models) {
      if (!pending("model", m.name, "identity")) {
        skipped("model");
        continue;
      }
      ModelStep step = teacher_step(m, job_threads);
      if (step.now) finished(*step.now);
      else enqueue(step.job);
    }
    std::set<std::string> queued_pipelines;
    enqueue_pipelines = [&](const std::string& model) {
      for (const std::string& s : c_.all_strategies()) {
        const std::string p = base_pipeline(s);
        if (p == "identity" || queued_pipelines.count(model + "|" + p)) continue;
        const std::string from = study::pipeline_start(c_, p).first;
        // Wait for the model it starts from while it is being made (or retried).
        if (model_file(model, from).empty() &&
            (cells_->status("model", model, from).empty() || in_flight.count(model + "|" + from)))
          continue;
        queued_pipelines.insert(model + "|" + p);
        if (!pending("model", model, p)) {
          skipped("model");
          continue;
        }
        ModelStep step = pipeline_step(model, p, job_threads);
        if (step.now) finished(*step.now);
        else enqueue(step.job);
      }
    };
    // Models given as files (or resumed) can start their pipelines at once.
    for (const StudyModel& m : c_.models)
      if (!model_file(m.name, "identity").empty()) enqueue_pipelines(m.name);
    pool.run();
    // Models whose teacher ended before its pipelines were queued (all resumed) are covered by
    // enqueue_pipelines above; failed teachers mark their pipelines failed there too.
    for (const StudyModel& m : c_.models) enqueue_pipelines(m.name);
    EF_ASSERT(pool.queued() == 0, "study: model jobs left after the model phase");
  }

  // ---- accuracy ----
  EvalResult evaluate_parts(const Graph& model, const std::string& cut, const Graph* reference) {
    const Partition p = partition_graph(model, cut, model_seq_len(model));
    auto one = std::make_shared<InferenceSession>(p.part1);
    auto two = std::make_shared<InferenceSession>(p.part2);
    RunOptions ro;
    ro.threads = threads_;
    EvalOptions eo;
    eo.limit = c_.accuracy_limit;
    eo.threads = threads_;
    eo.reference = reference;
    eo.run = [&model, &p, one, two, ro](const std::vector<at::Tensor>& in) {
      std::map<std::string, at::Tensor> values;
      for (size_t i = 0; i < in.size(); ++i) values[model.inputs()[i].name] = in[i];
      std::vector<at::Tensor> x1;
      for (const ValueInfo& v : p.part1.inputs()) x1.push_back(values.at(v.name));
      const std::vector<at::Tensor> y1 = one->run(x1, ro);
      for (size_t i = 0; i < y1.size(); ++i) values[p.part1.outputs()[i].name] = y1[i];
      std::vector<at::Tensor> x2;
      for (const ValueInfo& v : p.part2.inputs()) x2.push_back(values.at(v.name));
      return two->run(x2, ro)[0].clone();  // the session reuses its output buffers
    };
    return evaluate(model, eo);
  }

  // The automatic placement of a model, chosen once and kept as a model cell of the strategy.
  // A planned study chooses it only in its placement job (`choose`); the jobs after it read it.
  AutoPlacementData auto_choice(const StudyModel& m, const std::string& strategy, const std::string& file,
                                bool choose = false) {
    if (const std::optional<CellRecord> r = cells_->find("model", m.name, strategy)) {
      if (r->status == "done") {
        AutoPlacementData d = auto_placement_from_json(r->data);
        d.file = study::resolve_model_path(out_, d.file);
        return d;
      }
      // (a local study keeps only chosen placements; a plan's placement job records failures)
      throw Error("its placement failed: " + r->reason);
    }
    EF_CHECK(!planned_ || choose, "auto-partition's placement of ", m.name, " has no result yet");
    const Graph g = load_onnx(file);
    PayloadOptions po;
    po.inputs = 1;
    const std::vector<PlacementEstimate> ranked =
        rank_placements(measure_placement_inputs(g, c_.topology, make_payloads(g, po).at(0)));
    const AutoPlacementData choice{file, ranked.at(0).placement.label(), ranked.at(0).placement.cut,
                                   ranked.at(0).total_ms, explain_choice(ranked)};
    if (!planned_) {
      CellRecord r = cell("model", m.name, strategy);
      r.data = to_json(choice);
      cells_->put(r);
    }
    return choice;
  }

  void accuracy_cell(const StudyModel& m, const std::string& strategy) {
    if (!pending("accuracy", m.name, strategy)) return skipped("accuracy");
    CellRecord r = cell("accuracy", m.name, strategy);
    const auto t0 = Clock::now();
    try {
      const std::string file = model_file(m.name, base_pipeline(strategy));
      EF_CHECK(!file.empty(), "no model: ", model_failure(m.name, base_pipeline(strategy)));
      show("accuracy " + m.name + "/" + strategy);
      const Graph g = load_onnx(file);
      // A data set without labels: every strategy is scored by its agreement with the model's
      // own (identity) predictions.
      std::optional<Graph> reference;
      if (!open_dataset(g)->has_labels()) {
        const std::string original = model_file(m.name, "identity");
        EF_CHECK(!original.empty(), "no original model to measure agreement with: ",
                 model_failure(m.name, "identity"));
        reference = load_onnx(original);
      }
      EvalResult e;
      std::string cut;
      const StudyStrategy placed = parse_study_strategy(strategy);
      if (placed.split()) {
        std::string why;
        cut = study_cut_point(g, model_seq_len(g), &why);
        EF_CHECK(!cut.empty(), "model '", m.name, "' has no study cut point: ", why);
      } else if (placed.automatic()) {
        cut = auto_choice(m, strategy, file).cut;
      }
      if (cut.empty()) {
        EvalOptions eo;
        eo.limit = c_.accuracy_limit;
        eo.threads = threads_;
        eo.reference = reference ? &*reference : nullptr;
        e = evaluate(g, eo);
      } else {
        e = evaluate_parts(g, cut, reference ? &*reference : nullptr);
      }
      r.correct = e.correct;
      AccuracyCellData d;
      d.metric = metric_label(e.metric);
      d.value = e.value;
      d.top1 = e.accuracy;
      d.samples = e.samples;
      d.dataset = e.dataset;
      d.cut = cut;
      if (e.has_f1) d.f1 = e.f1;
      r.data = to_json(d);
    } catch (const std::exception& e) {
      r.status = "failed";
      r.reason = e.what();
    }
    r.seconds = seconds_since(t0);
    finished(r);
  }

  // ---- latency ----
  // A cell to measure: its deployment is set up before the group's rounds.
  struct LatencyJob {
    std::string strategy, deploy;
    CellRecord record;
    LatencyCellData data;
    std::shared_ptr<Graph> graph;
    Placement where;
    std::unique_ptr<Deployment> local;  // simulated; else for the cut and threads
    std::unique_ptr<RemoteDeployment> remote;
    DeploymentRunner* runner = nullptr;
    bool ready() const { return runner != nullptr; }
    bool placed() const { return graph != nullptr; }
  };

  // Sets up one cell's deployment; a cell that cannot run is recorded failed in job.record.
  void prepare_latency(const StudyModel& m, LatencyJob& job,
                       std::map<std::string, std::shared_ptr<Graph>>& graphs) {
    job.record = cell("latency", m.name, job.strategy, job.deploy);
    job.record.mode = c_.mode;
    try {
      const std::string file = model_file(m.name, base_pipeline(job.strategy));
      EF_CHECK(!file.empty(), "no model: ", model_failure(m.name, base_pipeline(job.strategy)));
      auto& g = graphs[file];
      if (!g) g = std::make_shared<Graph>(load_onnx(file));
      job.graph = g;
      if (job.deploy == kAutoDeployment) {
        job.data.auto_choice = auto_choice(m, job.strategy, file);
        job.where = parse_placement(job.data.auto_choice->deploy, c_.topology);
        job.where.cut = job.data.auto_choice->cut;
      } else {
        job.where = parse_placement(job.deploy, c_.topology);
        if (job.where.split()) {
          std::string why;
          job.where.cut = study_cut_point(*g, model_seq_len(*g), &why);
          EF_CHECK(!job.where.cut.empty(), "model '", m.name, "' has no study cut point: ", why);
        }
      }
    } catch (const std::exception& e) {
      job.record.status = "failed";
      job.record.reason = e.what();
      job.graph.reset();
    }
  }

  // Loads a prepared cell's deployment (a failure is recorded in job.record).
  void set_up(LatencyJob& job) {
    try {
      job.local = std::make_unique<Deployment>(*job.graph, c_.topology, job.where);
      if (tier_mode(c_.mode).real)
        job.remote = std::make_unique<RemoteDeployment>(*job.graph, c_.topology, job.where, agents());
      job.runner = job.remote ? static_cast<DeploymentRunner*>(job.remote.get()) : job.local.get();
    } catch (const std::exception& e) {
      job.record.status = "failed";
      job.record.reason = e.what();
      job.runner = nullptr;
    }
  }

  // The cell's figures from its samples: totals with the links simulated, the breakdown, the
  // sweep, the rounds.
  void fill_latency(LatencyJob& job, const DeploymentSamples& s) {
    CellRecord& r = job.record;
    LatencyCellData& d = job.data;
    std::mt19937_64 rng(c_.seed);
    std::map<std::string, std::vector<double>> parts;
    const Placement& where = job.where;
    for (const MeasuredRequest& q : s.warm) {
      const RequestTiming t = simulate(q, c_.topology, rng);
      r.warm_ms.push_back(t.total_ms);
      parts["preprocess"].push_back(t.preprocess_ms);
      parts["serialise"].push_back(t.serialise_ms);
      for (size_t k = 0; k < c_.topology.tiers.size(); ++k)
        if (c_.topology.tiers[k].name == where.first || c_.topology.tiers[k].name == where.second)
          parts["compute." + c_.topology.tiers[k].name].push_back(t.compute_ms[k]);
      for (size_t k = 0; k < c_.topology.links.size(); ++k)
        if (t.link_ms[k] > 0)
          parts["link." + c_.topology.links[k].from + "-" + c_.topology.links[k].to].push_back(t.link_ms[k]);
    }
    for (const MeasuredRequest& q : s.cold) r.cold_ms.push_back(simulate(q, c_.topology, rng).total_ms);
    for (const auto& [k, v] : parts)
      d.breakdown_median_ms[k] = v.size() == s.warm.size() ? stats::median(v) : 0.0;
    d.round_sizes = round_sizes(s);
    // The sweep: each link at each bandwidth, the others as configured (simulated only: a
    // real request's links were measured as they were).
    for (size_t k = 0; k < c_.topology.links.size() && !job.remote; ++k)
      for (double bw : c_.sweep_mbps) {
        Topology t = c_.topology;
        t.links[k].bandwidth_mbps = bw;
        std::mt19937_64 g2(c_.seed);
        std::vector<double> totals;
        for (const MeasuredRequest& q : s.warm) totals.push_back(simulate(q, t, g2).total_ms);
        d.sweep.push_back({t.links[k].from + "-" + t.links[k].to, bw, stats::median(totals)});
      }
    for (size_t k = 0; k < c_.topology.tiers.size(); ++k)
      if (c_.topology.tiers[k].name == where.first || c_.topology.tiers[k].name == where.second)
        d.tier_threads[c_.topology.tiers[k].name] = job.runner->threads_of(k);
    d.placement = where.label();
    d.cut = where.cut;
    d.crossing_bytes = where.split() ? job.local->cut().bytes : 0;
    d.measure_seconds = s.seconds;
  }

  static std::vector<int64_t> round_sizes(const DeploymentSamples& s) {
    std::vector<int64_t> sizes;
    int last = -1;
    for (const auto& [run, input] : s.warm_at) {
      if (run != last) sizes.push_back(0), last = run;
      ++sizes.back();
    }
    return sizes;
  }

  // How much the machine's speed moved while a group was measured: the median host time
  // (preprocessing, compute, serialisation) of the reference cell's requests in the second half
  // of the rounds against the first half, in % (NaN with fewer than two rounds).
  static double trend_pct(const DeploymentSamples& s) {
    std::map<int, std::vector<double>> by_round;
    for (size_t i = 0; i < s.warm.size(); ++i) {
      const MeasuredRequest& q = s.warm[i];
      double host = q.preprocess_ms + q.serialise_ms;
      for (double c : q.compute_ms) host += c;
      by_round[s.warm_at[i].first].push_back(host);
    }
    if (by_round.size() < 2) return std::nan("");
    std::vector<double> first, second;
    size_t k = 0;
    const size_t n = by_round.size();
    for (const auto& [round, v] : by_round) {
      if (2 * k + 1 < n) first.insert(first.end(), v.begin(), v.end());
      if (2 * k + 1 > n) second.insert(second.end(), v.begin(), v.end());  // an odd middle round is in neither
      ++k;
    }
    return 100.0 * std::fabs(stats::median(second) / stats::median(first) - 1.0);
  }

  // The reference workload (edgeforge/deploy.h), kept loaded and measured around each group's
  // rounds: the same work at the start, the middle and the end of the latency phase.
  double reference_probe_ms() {
    if (!probe_) probe_ = std::make_unique<ReferenceWorkload>();
    return probe_->measure_ms(kProbeReps, threads_);
  }

  // Every pending latency cell of model `m` whose request starts on tier `first`, measured
  // side by side in interleaved rounds (measure_interleaved): its single-tier cells, the splits
  // that start there, auto-partition when its choice does, and identity's A/A twin (identity's
  // deployment measured again in its own slot of each round). identity is the group's
  // reference cell: when its host time in the second half of the rounds moved more than
  // kDriftLimitPct from the first half (trend_pct), the group is measured again (at most
  // kMaxAttempts in all; the steadiest attempt is kept) and, if it still moves, its cells are
  // flagged unstable. The reference workload is measured before and after, for the record.
  void latency_group(const StudyModel& m, const std::string& first, std::vector<LatencyJob>& jobs) {
    std::vector<LatencyJob*> ready;
    for (LatencyJob& j : jobs)
      if (j.ready()) ready.push_back(&j);
    if (ready.empty()) return;
    std::vector<DeploymentRunner*> runners;
    for (LatencyJob* j : ready) runners.push_back(j->runner);
    std::vector<size_t> twin_of;  // runner index -> job index for A/A twins
    for (size_t k = 0; k < ready.size(); ++k)
      if (ready[k]->strategy == "identity" && !ready[k]->where.split() && ready[k]->deploy != kAutoDeployment) {
        runners.push_back(ready[k]->runner);
        twin_of.push_back(k);
      }
    std::vector<Payload> payloads;
    try {
      PayloadOptions po;
      po.inputs = c_.inputs;
      if (c_.frame_size > 0) po.frame_height = po.frame_width = c_.frame_size;
      payloads = make_payloads(*ready.front()->graph, po);
    } catch (const std::exception& e) {
      for (LatencyJob* j : ready) {
        j->record.status = "failed";
        j->record.reason = e.what();
        j->runner = nullptr;
      }
      return;
    }
    for (LatencyJob* j : ready) j->data.payload_bytes = j->local->payload_bytes(payloads[0]);
    const std::string what = "latency " + m.name + " from " + first + " (" +
                             std::to_string(runners.size()) + " side by side)";
    struct Attempt {
      InterleavedSamples samples;
      HostConditions host;
      double before = 0, after = 0, drift = 0;
    };
    // The group's reference cell: identity, measured in every round.
    int reference = -1;
    for (size_t k = 0; k < twin_of.size() && reference < 0; ++k) reference = static_cast<int>(twin_of[k]);
    std::optional<Attempt> best;
    int attempts = 0;
    for (int a = 0; a < kMaxAttempts; ++a) {
      ++attempts;
      Attempt at;
      show(what + ": reference workload");
      at.before = reference_probe_ms();
      const HostConditionsMeter meter;
      at.samples = measure_interleaved(runners, payloads, c_.runs, c_.seed + static_cast<uint64_t>(a),
                                       [&](int64_t d, int64_t t) {
                                         show(what + " " + std::to_string(100 * d / t) + "%");
                                       });
      at.host = meter.finish();
      at.after = reference_probe_ms();
      at.drift = reference >= 0 ? trend_pct(at.samples.samples[reference]) : std::nan("");
      if (!std::isfinite(at.drift)) at.drift = 100.0 * std::fabs(at.after / at.before - 1.0);
      const bool better = !best || at.drift < best->drift;
      const double drift = at.drift;
      if (better) best = std::move(at);
      if (drift <= kDriftLimitPct) break;
      if (a + 1 < kMaxAttempts)
        std::fprintf(stderr, "\nstudy: the machine's speed moved %.1f%% while %s was measured; measuring it again\n",
                     drift, what.c_str());
    }
    MeasureConditions cond;
    cond.load_avg = best->host.load_avg;
    cond.cpu_mhz = best->host.cpu_mhz;
    cond.steal_pct = best->host.steal_pct;
    cond.others_busy_pct = best->host.others_busy_pct;
    cond.reference_before_ms = best->before;
    cond.reference_after_ms = best->after;
    cond.drift_pct = best->drift;
    cond.attempts = attempts;
    cond.unstable = best->drift > kDriftLimitPct;
    cond.group_cells = static_cast<int64_t>(runners.size());
    const InterleavedSamples& got = best->samples;
    for (size_t k = 0; k < ready.size(); ++k) {
      LatencyJob& j = *ready[k];
      if (!got.errors[k].empty()) {
        j.record.status = "failed";
        j.record.reason = got.errors[k];
        continue;
      }
      fill_latency(j, got.samples[k]);
      j.data.conditions = cond;
      j.data.conditions->shared_preprocessing = got.shared_preprocessing[k];
    }
    for (size_t t = 0; t < twin_of.size(); ++t) {
      const size_t r = ready.size() + t;
      LatencyJob& j = *ready[twin_of[t]];
      if (!got.errors[r].empty() || j.record.status != "done") continue;
      std::mt19937_64 rng(c_.seed + 1);
      for (const MeasuredRequest& q : got.samples[r].warm)
        j.data.aa_warm_ms.push_back(simulate(q, c_.topology, rng).total_ms);
      j.data.aa_round_sizes = round_sizes(got.samples[r]);
    }
  }

  // A model's latency cells, grouped by the tier their requests start on (latency_group). With
  // `only_tier` (a planned study's latency job), only that tier's group: a cell that cannot be
  // placed is recorded by the job of its deployment's first tier (auto-partition's, by the
  // first tier's job, which the plan always has when the study has auto-partition).
  void latency_cells(const StudyModel& m, const std::string* only_tier = nullptr) {
    std::vector<LatencyJob> jobs;
    for (const std::string& s : c_.all_strategies())
      for (const std::string& d : deployments_of(c_, s)) {
        if (!pending("latency", m.name, s, d)) {
          skipped("latency");
          continue;
        }
        LatencyJob j;
        j.strategy = s;
        j.deploy = d;
        jobs.push_back(std::move(j));
      }
    if (jobs.empty()) return;
    const auto t0 = Clock::now();
    std::map<std::string, std::shared_ptr<Graph>> graphs;
    for (LatencyJob& j : jobs) {
      show("latency " + m.name + ": placing " + j.strategy + "/" + j.deploy);
      prepare_latency(m, j, graphs);
      if (!j.placed()) {
        const std::string owner =
            j.deploy == kAutoDeployment ? c_.topology.tiers.at(0).name : study::first_tier(j.deploy);
        if (only_tier != nullptr && owner != *only_tier) continue;
        j.record.seconds = seconds_since(t0);
        finished(j.record);
      }
    }
    // Groups by the first tier, in the topology's order; each group's deployments are set up
    // only while it is measured (a real-size model's deployments do not all fit at once).
    for (const TierProfile& tier : c_.topology.tiers) {
      if (only_tier != nullptr && tier.name != *only_tier) continue;
      std::vector<LatencyJob> group;
      for (LatencyJob& j : jobs)
        if (j.placed() && j.where.first == tier.name) group.push_back(std::move(j));
      if (group.empty()) continue;
      const auto g0 = Clock::now();
      for (LatencyJob& j : group) {
        show("latency " + m.name + ": setting up " + j.strategy + "/" + j.deploy);
        set_up(j);
      }
      latency_group(m, tier.name, group);
      const double each = seconds_since(g0) / static_cast<double>(group.size());
      for (LatencyJob& j : group) {
        if (j.record.status == "done") j.record.data = to_json(j.data);
        j.record.seconds = each;
        j.local.reset();
        j.remote.reset();
        j.runner = nullptr;
        finished(j.record);
      }
    }
  }

  // The agents of an emulated (set up at the first latency cell, kept for the study) or remote
  // study.
  const std::vector<AgentEndpoint>& agents() {
    if (agents_.empty()) {
      EmulationOptions eo;
      eo.program = opts_.program;
      eo.log_dir = out_ + "/logs/agents";
      agents_ = tier_mode_agents(tier_mode(c_.mode), c_.topology, eo, emulation_);
    }
    return agents_;
  }

  StudyConfig c_;
  std::unique_ptr<Emulation> emulation_;
  std::unique_ptr<ReferenceWorkload> probe_;
  std::vector<AgentEndpoint> agents_;
  std::string out_;
  StudyRunOptions opts_;
  int threads_ = 1;
  std::unique_ptr<Store> store_;  // a local study's database
  CellSink* cells_ = nullptr;     // where cells are read and written: store_, or a job's
  bool planned_ = false;          // one job of a planned study
  std::unique_ptr<ProgressLine> progress_;
  int64_t done_ = 0, total_ = 0, failed_ = 0;
  std::map<std::string, int64_t> remaining_;                  // cells left, by kind
  std::map<std::string, std::pair<double, int>> spent_;       // seconds and cells run, by kind
  Clock::time_point started_ = Clock::now();
};

}  // namespace

std::string study_database(const std::string& out_dir) { return out_dir + "/study.sqlite"; }

void run_study(const StudyConfig& config, const std::string& out_dir, const StudyRunOptions& options) {
  Runner(config, out_dir, options).run();
}

namespace study {

void run_planned_job(const StudyConfig& config, const std::string& dir, const PlannedJob& job,
                     CellSink& cells, const StudyRunOptions& options) {
  Runner(config, dir, options, cells).run_job(job);
}

std::string resolve_model_path(const std::string& dir, const std::string& file) {
  if (file.empty() || fs::path(file).is_absolute()) return file;
  return (fs::absolute(dir) / file).lexically_normal().string();
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

}  // namespace study

}  // namespace edgeforge
