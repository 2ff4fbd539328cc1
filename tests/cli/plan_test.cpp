// A study as a plan of jobs (edgeforge/study_plan.h, docs/scale-out.md), end to end through
// the program: jobs run in another order give the local study's cells; faults (a job before
// its inputs, a killed job, a foreign folder, a result of another plan, two merges at once)
// are named on one line and never taken as done. The real Slurm cluster is in
// tests/slurm/study_test.sh.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "edgeforge/graph.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/process.h"
#include "edgeforge/study_schema.h"
#include "edgeforge/util.h"
#include "edgeforge/zoo.h"
#include "../../src/study/store.h"

namespace fs = std::filesystem;
using namespace edgeforge;

namespace {

const std::string kFixtures = std::string(EDGEFORGE_TEST_DATA_DIR) + "/fixtures";

struct Outcome {
  int exit_code = -1;
  std::string out, err;
};

class PlannedStudy : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("edgeforge-plan-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    Graph g = build_zoo_model("resnet-small");
    g.metadata().erase(kMetaModel);  // not a zoo teacher: distill has no default student
    g.metadata()[kMetaDataset] = "fashion-mnist";
    save_onnx(g, path("m.onnx"));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string env() const {
    return "EDGEFORGE_CACHE_DIR='" + path("cache") + "' EDGEFORGE_FASHION_MNIST_DIR='" + kFixtures +
           "/fashion-mnist' EDGEFORGE_PROGRAM='" + EDGEFORGE_BINARY + "'";
  }
  Outcome run(const std::string& args, const std::string& extra_env = "") {
    const std::string out = path("stdout"), err = path("stderr");
    const std::string cmd = "env " + env() + " " + extra_env + " '" + EDGEFORGE_BINARY + "' " + args +
                            " >'" + out + "' 2>'" + err + "' </dev/null";
    const int status = std::system(cmd.c_str());
    Outcome o;
    o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    o.out = read_file(out);
    o.err = read_file(err);
    return o;
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  // A study of the model file: `strategies` on edge and mobile-edge, few inputs and samples.
  void write_study(const std::string& name, const std::string& strategies, const std::string& extras = "",
                   const std::string& extra = "") {
    std::ofstream(path(name)) << extra << "name = \"tiny\"\nstrategies = [" << strategies << "]\n"
                              << "extras = [" << extras << "]\n"
                              << "deployments = [\"edge\", \"mobile-edge\"]\n"
                              << "inputs = 3\nruns = 2\naccuracy_limit = 12\ntrain_limit = 24\n"
                              << "sweep_mbps = [1, 100]\n[[model]]\nname = \"tiny\"\nfile = \""
                              << path("m.onnx") << "\"\n";
  }
  static void expect_one_line_error(const Outcome& o, std::initializer_list<std::string> needles) {
    EXPECT_NE(o.exit_code, 0) << "out: " << o.out << "\nerr: " << o.err;
    EXPECT_NE(o.exit_code, -1) << "crashed: " << o.err;
    const std::string last = o.err.substr(o.err.rfind('\n', o.err.size() - 2) + 1);
    EXPECT_EQ(o.err.find("edgeforge: error: "), o.err.rfind("edgeforge: error: ")) << o.err;
    EXPECT_EQ(last.rfind("edgeforge: error: ", 0), 0u) << o.err;
    EXPECT_EQ(std::count(last.begin(), last.end(), '\n'), 1) << o.err;
    for (const std::string& n : needles) EXPECT_NE(last.find(n), std::string::npos) << o.err;
  }
  nlohmann::json plan_of(const std::string& dir) { return nlohmann::json::parse(read_file(path(dir) + "/plan.json")); }
  nlohmann::json status_of(const std::string& dir) {
    const Outcome o = run("study status " + path(dir) + " --json");
    EXPECT_EQ(o.exit_code, 0) << o.err;
    return nlohmann::json::parse(o.out);
  }
  fs::path dir_;
};

std::string key(const study::CellRecord& c) {
  return c.kind + " " + c.model + "/" + c.strategy + (c.deploy.empty() ? "" : "/" + c.deploy);
}

}  // namespace

TEST_F(PlannedStudy, JobsInAnotherOrderGiveTheLocalStudysCells) {
  // distill fails (the file names no zoo teacher) and distill+sptq fails with it, as locally.
  write_study("tiny.toml", "\"identity\", \"sptq\", \"distill\", \"distill+sptq\", \"sptq+partition\"",
              "\"auto-partition\"");
  const Outcome local = run("study " + path("tiny.toml") + " --out " + path("local") + " --no-report");
  ASSERT_EQ(local.exit_code, 0) << local.err;
  const Outcome plan = run("study plan " + path("tiny.toml") + " --out " + path("p"));
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  EXPECT_NE(plan.out.find("latency"), std::string::npos) << plan.out;
  const nlohmann::json p = plan_of("p");
  // The jobs in another order than the plan's that still respects it: each time the last job
  // whose inputs are done.
  std::set<int64_t> done;
  const size_t n = p["jobs"].size();
  while (done.size() < n) {
    int64_t next = -1;
    for (const auto& j : p["jobs"]) {
      const int64_t k = j["index"];
      if (done.count(k)) continue;
      bool ready = true;
      for (const auto& a : j["after"]) ready = ready && done.count(a.get<int64_t>());
      if (ready) next = k;
    }
    ASSERT_GE(next, 0);
    const Outcome o = run("study job " + path("p") + " --index " + std::to_string(next));
    ASSERT_EQ(o.exit_code, 0) << "job " << next << ": " << o.err;
    done.insert(next);
  }
  // Again: a done job is not run again, its result untouched.
  const std::string before = read_file(path("p/results/job-0001.json"));
  const Outcome again = run("study job " + path("p") + " --index 1");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("already done"), std::string::npos) << again.out;
  EXPECT_EQ(read_file(path("p/results/job-0001.json")), before);
  // One tier's cells as if measured on another machine: the report must say its comparisons
  // across tiers mix machines.
  for (const auto& j : p["jobs"])
    if (j["name"] == "latency tiny from mobile") {
      char name[32];
      std::snprintf(name, sizeof name, "job-%04lld", static_cast<long long>(j["index"].get<int64_t>()));
      nlohmann::json r = nlohmann::json::parse(read_file(path("p/results/") + name + ".json"));
      for (auto& c : r["cells"]) c["environment"]["host"] = "node-b";
      std::ofstream(path("p/results/") + name + ".json") << r.dump();
    }
  const Outcome merge = run("study merge " + path("p"));
  ASSERT_EQ(merge.exit_code, 0) << merge.err;
  EXPECT_NE(merge.out.find("report: "), std::string::npos) << merge.out;
  const std::string report = read_file(path("p/report.md"));
  EXPECT_NE(report.find("measured on 2 machines"), std::string::npos) << report;
  EXPECT_NE(report.find("node-b"), std::string::npos) << report;
  EXPECT_NE(report.find("The tiers of tiny (edge on "), std::string::npos) << report;

  std::map<std::string, study::CellRecord> want, got;
  for (const study::CellRecord& c : study::Store(path("local/study.sqlite")).all()) want[key(c)] = c;
  for (const study::CellRecord& c : study::Store(path("p/study.sqlite")).all()) got[key(c)] = c;
  ASSERT_EQ(want.size(), got.size());
  int failed = 0, accuracy = 0, latency = 0;
  for (const auto& [k, w] : want) {
    ASSERT_TRUE(got.count(k)) << k;
    const study::CellRecord& g = got[k];
    EXPECT_EQ(g.status, w.status) << k;
    EXPECT_EQ(g.reason, w.reason) << k;
    failed += w.status == "failed";
    if (w.kind == "accuracy" && w.status == "done") {
      ++accuracy;
      EXPECT_EQ(g.correct, w.correct) << k << ": every test sample right or wrong alike";
      EXPECT_EQ(g.data.at("value"), w.data.at("value")) << k;
    }
    if (w.kind == "latency" && w.status == "done") {
      ++latency;
      EXPECT_FALSE(g.warm_ms.empty()) << k;
      EXPECT_FALSE(g.environment.host.empty()) << k << ": the machine it ran on";
      EXPECT_EQ(g.environment.cpu, w.environment.cpu) << k;
      EXPECT_EQ(g.mode, "simulated") << k;
    }
    if (w.kind == "model" && w.status == "done") {
      const std::string file = model_cell_from_json(g.data).file;
      EXPECT_TRUE(fs::path(file).is_absolute() && fs::exists(file)) << k << ": " << file;
    }
  }
  EXPECT_GT(failed, 0) << "distill's failure and what follows from it";
  EXPECT_GT(accuracy, 0);
  EXPECT_GT(latency, 0);
  const nlohmann::json summary = nlohmann::json::parse(read_file(path("p/export/summary.json")));
  EXPECT_FALSE(summary["stats"]["latency_tests"].empty());
}

TEST_F(PlannedStudy, FaultsAreNamedAndNeverTakenAsDone) {
  write_study("tiny.toml", "\"identity\", \"sptq\"");
  ASSERT_EQ(run("study plan " + path("tiny.toml") + " --out " + path("p")).exit_code, 0);
  const nlohmann::json p = plan_of("p");
  int64_t sptq = -1, accuracy = -1;
  for (const auto& j : p["jobs"]) {
    if (j["name"] == "model tiny/sptq") sptq = j["index"];
    if (j["name"] == "accuracy tiny/sptq") accuracy = j["index"];
  }
  ASSERT_GE(sptq, 0);
  ASSERT_GE(accuracy, 0);

  // A job before its inputs: refused on one line, recorded for status, not a result.
  expect_one_line_error(run("study job " + path("p") + " --index " + std::to_string(accuracy)),
                        {"accuracy tiny/sptq", "reads job", "has no result yet"});
  char name[32];
  std::snprintf(name, sizeof name, "job-%04lld", static_cast<long long>(accuracy));
  EXPECT_FALSE(fs::exists(path("p/results/") + name + ".json"));
  EXPECT_TRUE(fs::exists(path("p/results/") + name + ".error"));
  const nlohmann::json st = status_of("p");
  EXPECT_EQ(st[accuracy]["state"], "failed");
  EXPECT_NE(st[accuracy]["detail"].get<std::string>().find("has no result yet"), std::string::npos);

  // Indices: out of range, from the environment, within a stage.
  expect_one_line_error(run("study job " + path("p") + " --index 999"), {"--index 999", "0 to"});
  expect_one_line_error(run("study job " + path("p"), "SLURM_ARRAY_TASK_ID=x1"), {"$SLURM_ARRAY_TASK_ID", "x1"});
  expect_one_line_error(run("study job " + path("p")), {"no job index"});
  expect_one_line_error(run("study job " + path("p") + " --stage nowhere --index 0"), {"no stage 'nowhere'", "models-0"});
  const Outcome k8s = run("study job " + path("p") + " --stage models-0", "JOB_COMPLETION_INDEX=0");
  ASSERT_EQ(k8s.exit_code, 0) << k8s.err;
  EXPECT_NE(k8s.out.find("model tiny/identity"), std::string::npos) << k8s.out;

  // A job killed mid-way: no result, status says interrupted, merge names it and exits 1; run
  // again, it completes.
  {
    const std::string running = path("p/running");
    ChildProcess job({EDGEFORGE_BINARY, "study", "job", path("p"), "--index", std::to_string(sptq)},
                     path("killed.out"), path("killed.err"),
                     {"EDGEFORGE_CACHE_DIR=" + path("cache"), "EDGEFORGE_FASHION_MNIST_DIR=" + kFixtures + "/fashion-mnist",
                      "EDGEFORGE_PROGRAM=" + std::string(EDGEFORGE_BINARY)});
    bool started = false;
    for (int i = 0; i < 4000 && !started; ++i) {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(running, ec)) started = started || e.path().filename().string().rfind(
                                                                                 "job-", 0) == 0;
      if (!started) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_TRUE(started) << read_file(path("killed.err"));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    job.kill();
  }
  std::snprintf(name, sizeof name, "job-%04lld", static_cast<long long>(sptq));
  ASSERT_FALSE(fs::exists(path("p/results/") + name + ".json")) << "killed before it could finish";
  const nlohmann::json st2 = status_of("p");
  EXPECT_EQ(st2[sptq]["state"], "interrupted") << st2[sptq].dump();
  const Outcome partial = run("study merge " + path("p") + " --no-report");
  EXPECT_EQ(partial.exit_code, 1) << partial.err;
  EXPECT_NE(partial.err.find(std::to_string(sptq) + " (model tiny/sptq)"), std::string::npos) << partial.err;
  EXPECT_EQ(run("study merge " + path("p") + " --no-report --partial").exit_code, 0);
  for (const auto& j : p["jobs"]) {
    const Outcome o = run("study job " + path("p") + " --index " + std::to_string(j["index"].get<int64_t>()));
    ASSERT_EQ(o.exit_code, 0) << j["name"] << ": " << o.err;
  }
  EXPECT_FALSE(fs::exists(path("p/results/") + name + ".error"));
  const Outcome full = run("study merge " + path("p") + " --no-report");
  ASSERT_EQ(full.exit_code, 0) << full.err;
  for (const auto& s : status_of("p")) EXPECT_EQ(s["state"], "done") << s.dump();

  // Foreign folders and files.
  const Outcome same = run("study plan " + path("tiny.toml") + " --out " + path("p"));
  ASSERT_EQ(same.exit_code, 0) << same.err;
  EXPECT_NE(same.err.find("already holds this plan"), std::string::npos) << same.err;
  write_study("other.toml", "\"identity\", \"sptq\"", "", "seed = 7\n");
  expect_one_line_error(run("study plan " + path("other.toml") + " --out " + path("p")), {"holds another plan"});
  ASSERT_EQ(run("study plan " + path("other.toml") + " --out " + path("q")).exit_code, 0);
  ASSERT_EQ(run("study job " + path("q") + " --index 0").exit_code, 0);
  fs::copy_file(path("q/results/job-0000.json"), path("p/results/job-0000.json"), fs::copy_options::overwrite_existing);
  expect_one_line_error(run("study merge " + path("p")), {"job-0000.json", "a result of another plan"});
  fs::remove(path("p/results/job-0000.json"));
  ASSERT_EQ(run("study job " + path("p") + " --index 0").exit_code, 0);
  // A local study's folder, a plan edited by hand, a plan of another build.
  fs::create_directories(path("local"));
  study::Store(path("local/study.sqlite"), "tiny", nlohmann::json{{"seed", 1}});  // a local study's
  expect_one_line_error(run("study plan " + path("tiny.toml") + " --out " + path("local")), {"a local study"});
  fs::copy_file(path("local/study.sqlite"), path("q/study.sqlite"));
  expect_one_line_error(run("study merge " + path("q")), {"study.sqlite", "not a merge of this folder's plan"});
  nlohmann::json edited = plan_of("p");
  edited["jobs"][1]["what"] = "prune";
  std::ofstream(path("p/plan.json")) << edited.dump(1);
  expect_one_line_error(run("study merge " + path("p")), {"plan.json", "does not match its contents"});
  nlohmann::json other_build = plan_of("q");
  other_build["edgeforge"]["build"] = "0123456789abcdef";
  std::ofstream(path("q/plan.json")) << other_build.dump(1);
  expect_one_line_error(run("study job " + path("q") + " --index 0"), {"planned by edgeforge", "build 0123456789ab"});
  expect_one_line_error(run("study status " + path("nowhere")), {"no study plan here"});
}

TEST_F(PlannedStudy, MergesOfOneFolderWaitForEachOther) {
  write_study("tiny.toml", "\"identity\"");
  ASSERT_EQ(run("study plan " + path("tiny.toml") + " --out " + path("p")).exit_code, 0);
  const nlohmann::json p = plan_of("p");
  for (const auto& j : p["jobs"])
    ASSERT_EQ(run("study job " + path("p") + " --index " + std::to_string(j["index"].get<int64_t>())).exit_code, 0);
  // Another merge holds the lock: this one waits, says so, and finishes once it is let go.
  const int fd = ::open(path("p/merge.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  ChildProcess waiting({EDGEFORGE_BINARY, "study", "merge", path("p"), "--no-report"}, path("m.out"), path("m.err"));
  bool said = false;
  for (int i = 0; i < 2000 && !said; ++i) {
    said = read_file(path("m.err")).find("waiting for it") != std::string::npos;
    if (!said) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(said) << read_file(path("m.err"));
  EXPECT_FALSE(waiting.poll().has_value()) << "it waits while the lock is held";
  EXPECT_FALSE(fs::exists(path("p/study.sqlite")));
  ::close(fd);
  EXPECT_EQ(waiting.wait(), 0) << read_file(path("m.err"));
  // Four at once: each ends well and the database holds every cell once.
  std::vector<ChildProcess> merges;
  for (int i = 0; i < 4; ++i)
    merges.emplace_back(std::vector<std::string>{EDGEFORGE_BINARY, "study", "merge", path("p"), "--no-report"},
                        path("m" + std::to_string(i) + ".out"), path("m" + std::to_string(i) + ".err"));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(merges[i].wait(), 0) << read_file(path("m" + std::to_string(i) + ".err"));
  const std::vector<study::CellRecord> cells = study::Store(path("p/study.sqlite")).all();
  std::set<std::string> keys;
  for (const study::CellRecord& c : cells) keys.insert(key(c));
  EXPECT_EQ(keys.size(), cells.size());
  EXPECT_EQ(cells.size(), 3u) << "the model, its accuracy and its latency on edge";
  for (const auto& e : fs::directory_iterator(path("p")))
    EXPECT_EQ(e.path().filename().string().find(".merge."), std::string::npos) << "no temporary left: " << e.path();
}

TEST_F(PlannedStudy, SubmitMakesOneArrayPerStage) {
  write_study("tiny.toml", "\"identity\", \"sptq\"", "\"auto-partition\"");
  ASSERT_EQ(run("study plan " + path("tiny.toml") + " --out " + path("p") + " --threads 2 --model-threads 1").exit_code, 0);
  const Outcome dry = run("study submit " + path("p") + " --slurm --dry-run --partition edge --time 10 "
                          "--sbatch-arg=--qos=low");
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  std::vector<std::string> lines;
  std::stringstream in(dry.out);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 5u) << dry.out << "models-0, models-1, placement, accuracy, latency";
  EXPECT_NE(lines[0].find("--array=0"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("--cpus-per-task=1"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[0].find("--dependency"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("--dependency=afterok:{models-0}"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("--exclusive"), std::string::npos) << "placement measures: " << lines[2];
  EXPECT_NE(lines[3].find("--array=0-2"), std::string::npos) << "accuracy of 3 strategies: " << lines[3];
  EXPECT_EQ(lines[3].find("--exclusive"), std::string::npos) << lines[3];
  EXPECT_NE(lines[4].find("--exclusive"), std::string::npos) << lines[4];
  EXPECT_NE(lines[4].find("--cpus-per-task=2"), std::string::npos) << lines[4];
  for (const std::string& l : lines) {
    EXPECT_NE(l.find("--partition=edge --time=10"), std::string::npos) << l;
    EXPECT_NE(l.find("--qos=low"), std::string::npos) << l;
  }
  const std::string script = read_file(path("p/slurm/latency.sh"));
  EXPECT_NE(script.find("study job '" + path("p") + "' --stage latency"), std::string::npos) << script;
  expect_one_line_error(run("study submit " + path("p") + " --slurm", "PATH=/nonexistent"), {"sbatch was not found"});
  EXPECT_NE(run("study submit " + path("p")).exit_code, 0) << "--slurm is required";
}
