// Studies (edgeforge/study.h): the built-in studies, study files and their errors, the results
// store and its refusals, and the recommendation for a budget. The whole run (and kill -9 and
// resume) is tested through the program in tests/cli/cli_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include <sys/stat.h>

#include "edgeforge/error.h"
#include "edgeforge/strategy.h"
#include "edgeforge/study.h"
#include "edgeforge/study_plan.h"
#include "edgeforge/util.h"
#include "../../src/study/runner.h"
#include "../../src/study/store.h"
#include "../common/test_util.h"

using namespace edgeforge;
using edgeforge::test_util::error_of;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("edgeforge-study-" + std::to_string(::getpid()) + "-" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST(StudyConfig, TheDefaultStudyIsTheStudys) {
  const StudyConfig c = default_study(false);
  ASSERT_EQ(c.models.size(), 4u);
  EXPECT_EQ(c.strategies, (std::vector<std::string>{"identity", "sptq", "qat", "prune", "distill",
                                                    "distill+sptq", "partition", "sptq+partition"}));
  EXPECT_EQ(c.extras, (std::vector<std::string>{"dynamic", "prune-structured", "auto-partition"}));
  EXPECT_EQ(c.deployments, (std::vector<std::string>{"mobile", "edge", "cloud", "mobile-edge"}));
  EXPECT_EQ(c.inputs, 100);
  EXPECT_EQ(c.runs, 6);
  EXPECT_EQ(c.accuracy_limit, 0) << "the whole test split";
  EXPECT_EQ(c.sweep_mbps, (std::vector<double>{1, 10, 50, 100, 150, 200}));
  const StudyConfig q = default_study(true);
  EXPECT_TRUE(q.quick);
  EXPECT_LT(q.inputs * q.runs, c.inputs * c.runs);
}

TEST(StudyConfig, ModelFilesTakeTheirDataAndStrategiesRunOnce) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "edgeforge-study-config-data";
  fs::remove_all(dir);
  fs::create_directories(dir / "arrays");
  std::ofstream(dir / "m.onnx") << "not read here";
  const std::string text = R"(
strategies = ["identity", "dynamic"]
[[model]]
name = "mine"
file = "m.onnx"
data = "npy:arrays"
[[model]]
name = "other"
file = "m.onnx"
[model.data]
kind = "tensors"
path = "arrays"
)";
  const StudyConfig c = parse_study(text, (dir / "s.toml").string());
  ASSERT_EQ(c.models.size(), 2u);
  ASSERT_TRUE(c.models[0].data.has_value());
  EXPECT_EQ(c.models[0].data->kind, "tensors");
  EXPECT_EQ(c.models[0].data->fields["path"], (dir / "arrays").string());  // beside the file
  ASSERT_TRUE(c.models[1].data.has_value());
  EXPECT_EQ(c.models[1].data->fields["path"], (dir / "arrays").string());
  // dynamic, one of the default extras, runs once.
  const std::vector<std::string> all = c.all_strategies();
  EXPECT_EQ(std::count(all.begin(), all.end(), "dynamic"), 1);
  EXPECT_NE(error_of([&] { parse_study("strategies = [\"sptq\", \"sptq\"]\n", "d.toml"); })
                .find("listed twice"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              parse_study("[[model]]\nname = \"m\"\nfile = \"" + (dir / "m.onnx").string() +
                              "\"\ndeployments = [\"edge\"]\n",
                          "e.toml");
            }).find("go above the first [[model]]"),
            std::string::npos);
}

// Cells are keyed by model name, so two models of one name are refused as the file is read
// (issue 22: a [[model]] named like a zoo model showed its cells as resumed and failed at the end).
TEST(StudyConfig, TwoModelsOfOneNameAreRefused) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "edgeforge-study-config-names";
  fs::create_directories(dir);
  std::ofstream(dir / "m.onnx") << "not read here";
  const std::string file = "file = \"" + (dir / "m.onnx").string() + "\"\n";
  for (const std::string& text :
       {"models = [\"resnet\"]\n[[model]]\nname = \"resnet\"\n" + file,
        "[[model]]\nname = \"a\"\n" + file + "[[model]]\nname = \"a\"\n" + file,
        std::string("models = [\"bert\", \"bert\"]\n")}) {
    const std::string e = error_of([&] { parse_study(text, "dup.toml"); });
    EXPECT_NE(e.find("dup.toml: model '"), std::string::npos) << e;
    EXPECT_NE(e.find("is named twice"), std::string::npos) << e;
  }
  fs::remove_all(dir);
}

TEST(StudyConfig, AFileOverridesTheDefaults) {
  const StudyConfig c = parse_study(R"(
name = "mine"
models = ["resnet-small"]
strategies = ["identity", "sptq", "distill+sptq+partition"]
extras = []
deployments = ["edge", "mobile-edge"]
inputs = 10
runs = 3
sweep_mbps = [1, 20]
[options]
sptq = ["method=entropy"]
)", "mine.toml");
  EXPECT_EQ(c.name, "mine");
  ASSERT_EQ(c.models.size(), 1u);
  EXPECT_EQ(c.models[0].name, "resnet-small");
  EXPECT_EQ(c.strategies.size(), 3u);
  EXPECT_TRUE(c.extras.empty());
  EXPECT_EQ(c.inputs, 10);
  EXPECT_EQ(c.options.at("sptq"), (std::vector<std::string>{"method=entropy"}));
  // The default study's options for prune-structured go with it when the file drops it ...
  EXPECT_EQ(c.options.size(), 1u);
  EXPECT_EQ(default_study(false).options.at("prune-structured"), (std::vector<std::string>{"epochs=1"}));
  // ... and a file's own options for it replace them.
  const StudyConfig d = parse_study("[options]\nprune-structured = [\"ratio=0.25\"]\n", "d.toml");
  EXPECT_EQ(d.options.at("prune-structured"), (std::vector<std::string>{"ratio=0.25"}));
}

TEST(StudyConfig, BadFilesNameTheKeyAndLine) {
  auto e = [](const std::string& text) { return error_of([&] { parse_study(text, "s.toml"); }); };
  EXPECT_NE(e("name = \"x\"\nmodls = [\"resnet\"]\n").find("s.toml:2: unknown key 'modls'"), std::string::npos);
  EXPECT_NE(e("models = [\"resnet-huge\"]\n").find("s.toml:1: models: unknown model 'resnet-huge'"),
            std::string::npos);
  EXPECT_NE(e("\n\nstrategies = [\"sptq\", \"squash\"]\n").find("s.toml:3: strategy 'squash'"),
            std::string::npos);
  EXPECT_NE(e("deployments = [\"edge\", \"moon\"]\n").find("'moon' names no tier"), std::string::npos);
  EXPECT_NE(e("inputs = -3\n").find("s.toml:1: 'inputs' -3 must be a whole number in 1..1000000"), std::string::npos);
  EXPECT_NE(e("runs = 1\n").find("'runs' 1 must be a whole number in 2..100000"), std::string::npos);
  // Numbers that used to pass their checks by overflowing (issue 22): refused before any
  // conversion, naming the key.
  EXPECT_NE(e("inputs = 1e30\n").find("'inputs' 1e+30 must be a whole number in 1..1000000"), std::string::npos);
  EXPECT_NE(e("runs = 4294967297\n").find("'runs' 4294967297 must be a whole number in 2..100000"), std::string::npos);
  EXPECT_NE(e("jobs = 2147483648\n").find("'jobs' 2147483648 must be a whole number in 0..1024"), std::string::npos);
  EXPECT_NE(e("seed = 1e300\n").find("'seed' 1e+300 must be a whole number >= 0"), std::string::npos);
  EXPECT_NE(e("inputs = inf\n").find("'inputs' inf must be a whole number"), std::string::npos);
  EXPECT_NE(e("sweep_mbps = [nan]\n").find("'sweep_mbps' nan must be > 0"), std::string::npos);
  EXPECT_EQ(parse_study("seed = 9223372036854775807\n", "s.toml").seed, 9223372036854775807ULL);
  EXPECT_NE(e("inputs = \"many\"\n").find("'inputs' must be a number"), std::string::npos);
  EXPECT_NE(e("sweep_mbps = [1, 0]\n").find("must be > 0"), std::string::npos);
  EXPECT_NE(e("\nmode = \"fast\"\n").find("s.toml:2: 'mode' must be"), std::string::npos);
  EXPECT_EQ(parse_study("mode = \"emulated\"\n", "m.toml").mode, "emulated");
  EXPECT_EQ(default_study(false).mode, "simulated");
  EXPECT_NE(e("strategies = [\"sptq\"]\n[options]\nqat = [\"epochs=1\"]\n").find("does not run"),
            std::string::npos);
  EXPECT_NE(e("inputs = [\n").find("s.toml:"), std::string::npos) << "a TOML syntax error has its line";
  EXPECT_NE(e("[[model]]\nname = \"m\"\nfile = \"/nonexistent.onnx\"\n").find("not found"), std::string::npos);
}

// A study strategy is a pipeline's model and a placement from the strategy registry.
TEST(StudyConfig, PlacementsAreStrategyRegistryEntries) {
  const StudyStrategy split = parse_study_strategy("sptq+partition");
  EXPECT_EQ(split.pipeline, "sptq");
  EXPECT_TRUE(split.split());
  EXPECT_EQ(parse_study_strategy("partition").pipeline, "identity");
  EXPECT_TRUE(parse_study_strategy("auto-partition").automatic());
  EXPECT_EQ(parse_study_strategy("distill+sptq").pipeline, "distill+sptq");
  EXPECT_EQ(parse_study_strategy("distill+sptq").rule, PlacementRule::whole);
  // auto-partition places only the model itself; an unknown step names the valid forms.
  EXPECT_NE(error_of([] { parse_study_strategy("sptq+auto-partition"); })
                .find("(or identity, partition, auto-partition, P+partition)"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_study_strategy("partition+sptq"); }).find("unknown strategy 'partition'"),
            std::string::npos);
  // A new placement is one registry entry: a study file may name it, alone or after a pipeline.
  StrategyRegistry::global().add_placement({"edge-split", "test", PlacementRule::split, true});
  EXPECT_TRUE(parse_study_strategy("qat+edge-split").split());
  EXPECT_EQ(parse_study_strategy("qat+edge-split").pipeline, "qat");
  const StudyConfig c = parse_study("strategies = [\"identity\", \"edge-split\"]\n", "t.toml");
  EXPECT_EQ(c.strategies, (std::vector<std::string>{"identity", "edge-split"}));
}

TEST(StudyStore, CellsPersistAndForeignFilesAreRefused) {
  const fs::path d = temp_dir("store");
  const std::string db = (d / "study.sqlite").string();
  const nlohmann::json settings = {{"inputs", 10}};
  {
    study::Store s(db, "mine", settings);
    EXPECT_EQ(s.status("latency", "m", "sptq", "edge"), "");
    study::CellRecord c;
    c.kind = "latency";
    c.model = "m";
    c.strategy = "sptq";
    c.deploy = "edge";
    c.warm_ms = {1.5, 2.5};
    c.data = {{"x", 1}};
    s.put(c);
    c.status = "failed";
    c.reason = "boom";
    c.strategy = "qat";
    s.put(c);
  }
  {
    study::Store s(db, "mine", settings);  // reopened: same study, same settings
    EXPECT_EQ(s.status("latency", "m", "sptq", "edge"), "done");
    EXPECT_EQ(s.status("latency", "m", "qat", "edge"), "failed");
    const auto all = s.all();
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].warm_ms, (std::vector<double>{1.5, 2.5}));
    EXPECT_EQ(all[1].reason, "boom");
  }
  EXPECT_NE(error_of([&] { study::Store(db, "other", settings); }).find("holds study 'mine'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { study::Store(db, "mine", {{"inputs", 20}}); }).find("other settings (inputs)"),
            std::string::npos);
  // A file that is not SQLite, and an SQLite file of something else.
  const std::string junk = (d / "junk.sqlite").string();
  std::ofstream(junk) << "this is not a database, just some text that is long enough to matter";
  EXPECT_NE(error_of([&] { study::Store(junk, "mine", settings); }).find("not an edgeforge study database"),
            std::string::npos);
  EXPECT_NE(error_of([&] { study::Store{junk}; }).find("not an edgeforge study database"), std::string::npos);
  const std::string foreign = (d / "foreign.sqlite").string();
  ASSERT_EQ(std::system(("sqlite3 '" + foreign + "' 'CREATE TABLE t (x INTEGER);' 2>/dev/null || "
                         "python3 -c \"import sqlite3; sqlite3.connect('" + foreign +
                         "').execute('CREATE TABLE t (x INTEGER)')\"").c_str()),
            0);
  EXPECT_NE(error_of([&] { study::Store(foreign, "mine", settings); }).find("no meta table"),
            std::string::npos);
  EXPECT_NE(error_of([&] { summarize_study((d / "nowhere").string()); }).find("no study database"),
            std::string::npos);
  fs::remove_all(d);
}

namespace {

// Two models, three strategies, two deployments; latency in ms and accuracy (drop in points).
StudySummary constructed_summary() {
  StudySummary s;
  s.study.mode = "simulated";
  s.models = {{"a", "", "top-1", ""}, {"b", "", "top-1", ""}};
  auto cell = [&](const char* m, const char* st, const char* d, double ms) {
    SummaryCell c;
    c.model = m;
    c.strategy = st;
    c.deploy = d;
    c.status = "done";
    c.warm_median_ms = ms;
    c.warm_p90_ms = ms * 1.1;
    s.cells.push_back(c);
  };
  auto acc = [&](const char* m, const char* st, double value, double drop) {
    SummaryAccuracy a;
    a.model = m;
    a.strategy = st;
    a.status = "done";
    a.metric = "top-1";
    a.value = value;
    a.drop_pt = drop;
    s.accuracy.push_back(a);
  };
  cell("a", "identity", "edge", 10);
  cell("a", "sptq", "edge", 6);
  cell("a", "prune", "edge", 4);
  cell("a", "identity", "mobile", 20);
  cell("a", "sptq", "mobile", 12);
  cell("a", "prune", "mobile", 8);
  acc("a", "identity", 0.90, 0);
  acc("a", "sptq", 0.895, 0.5);
  acc("a", "prune", 0.85, 5.0);
  cell("b", "identity", "edge", 30);
  cell("b", "sptq", "edge", 25);
  SummaryCell failed;
  failed.model = "b";
  failed.strategy = "prune";
  failed.deploy = "edge";
  failed.status = "failed";
  s.cells.push_back(failed);
  acc("b", "identity", 0.7, 0);
  acc("b", "sptq", 0.69, 1.0);
  return s;
}

}  // namespace

TEST(Recommend, TheFastestCellWithinBothBudgets) {
  Budget b;
  b.max_latency_ms = 9;
  b.max_accuracy_drop_pt = 1;
  const nlohmann::json r = recommend(constructed_summary(), b);
  ASSERT_EQ(r["models"].size(), 2u);
  // a: prune is faster but drops 5 pt; sptq on edge (6 ms, 0.5 pt) is the best within both.
  EXPECT_TRUE(r["models"][0]["met"].get<bool>());
  EXPECT_EQ(r["models"][0]["best"]["strategy"], "sptq");
  EXPECT_EQ(r["models"][0]["best"]["deploy"], "edge");
  // b: nothing under 9 ms: the Pareto set and the nearest miss (sptq, 25 ms).
  EXPECT_FALSE(r["models"][1]["met"].get<bool>());
  EXPECT_EQ(r["models"][1]["nearest_miss"]["strategy"], "sptq");
  EXPECT_DOUBLE_EQ(r["models"][1]["nearest_miss"]["over_latency_ms"].get<double>(), 16.0);
  ASSERT_EQ(r["models"][1]["pareto"].size(), 2u) << "identity is more accurate, sptq faster";
  // Only the latency budget; only one deployment; one model.
  Budget fast;
  fast.max_latency_ms = 5;
  fast.model = "a";
  const nlohmann::json f = recommend(constructed_summary(), fast);
  ASSERT_EQ(f["models"].size(), 1u);
  EXPECT_EQ(f["models"][0]["best"]["strategy"], "prune");
  Budget mobile;
  mobile.max_accuracy_drop_pt = 1;
  mobile.deploy = "mobile";
  mobile.model = "a";
  EXPECT_EQ(recommend(constructed_summary(), mobile)["models"][0]["best"]["strategy"], "sptq");
  Budget bad;
  bad.max_latency_ms = 1;
  bad.model = "c";
  EXPECT_NE(error_of([&] { recommend(constructed_summary(), bad); }).find("no such model"), std::string::npos);
  bad.model = "";
  bad.deploy = "cloud";
  EXPECT_NE(error_of([&] { recommend(constructed_summary(), bad); }).find("no cells on that deployment"),
            std::string::npos);
}

// ---- Practical differences: the summary's noise floor, comparisons and answer ----

namespace {

// A study folder with one model on one tier whose latency cells are made, not measured: five
// rounds of ten samples, each round at its own level (the machine's moment), which the cells
// of one round share. identity is measured twice (A/A); "fast" takes half its time, "same" 1%
// more, "noisy" about as long but at levels of its own.
fs::path practical_study(const std::string& name, double min_effect_pct) {
  const fs::path d = temp_dir(name);
  nlohmann::json settings = {
      {"models", {{{"name", "m"}, {"file", ""}}}},
      {"strategies", {"identity", "fast", "same", "noisy"}},
      {"extras", nlohmann::json::array()},
      {"deployments", {"edge"}},
      {"topology",
       {{"name", "t"},
        {"tiers", {{{"name", "edge"}, {"cores", 2}, {"memory_gb", 4.0}, {"speed", 1.0}}}},
        {"links", nlohmann::json::array()}}},
      {"inputs", 10},
      {"runs", 6}};
  if (min_effect_pct != 5) settings["min_effect_pct"] = min_effect_pct;
  study::Store store(study_database(d.string()), name, settings);
  std::mt19937_64 rng(3);
  std::normal_distribution<double> noise(0, 0.01);
  const std::vector<double> level = {1.0, 1.3, 0.9, 1.1, 1.2};
  const std::vector<double> own = {1.25, 0.8, 1.3, 0.9, 1.05};
  auto samples = [&](double ms, const std::vector<double>& levels) {
    std::vector<double> x;
    for (double l : levels)
      for (int i = 0; i < 10; ++i) x.push_back(ms * l * (1 + noise(rng)));
    return x;
  };
  auto put = [&](const std::string& strategy, std::vector<double> warm, bool twin, double accuracy) {
    study::CellRecord c;
    c.kind = "latency";
    c.model = "m";
    c.strategy = strategy;
    c.deploy = "edge";
    c.mode = "simulated";
    c.warm_ms = std::move(warm);
    c.cold_ms = {50};
    LatencyCellData data;
    data.placement = "edge";
    data.round_sizes = {10, 10, 10, 10, 10};
    if (twin) {
      data.aa_warm_ms = samples(10, level);
      data.aa_round_sizes = data.round_sizes;
    }
    c.data = to_json(data);
    store.put(c);
    study::CellRecord a;
    a.kind = "accuracy";
    a.model = "m";
    a.strategy = strategy;
    a.data = to_json(AccuracyCellData{"top-1", "fashion-mnist", "", accuracy, accuracy, 1000, {}});
    for (int i = 0; i < 1000; ++i) a.correct.push_back(i < accuracy * 1000 ? 1 : 0);
    store.put(a);
  };
  put("identity", samples(10, level), true, 0.90);
  put("fast", samples(5, level), false, 0.899);
  put("same", samples(10.1, level), false, 0.90);
  std::vector<double> noisy_levels;
  for (size_t k = 0; k < level.size(); ++k) noisy_levels.push_back(level[k] * own[k]);
  put("noisy", samples(10, noisy_levels), false, 0.90);
  return d;
}

const SummaryComparison& comparison_of(const StudySummary& s, const std::string& strategy) {
  for (const SummaryComparison& c : s.comparisons)
    if (c.strategy == strategy) return c;
  throw Error("no comparison for " + strategy);
}

}  // namespace

TEST(StudySummary, ADifferenceIsPracticalOnlyBeyondTheNoiseFloorAndTheMinimumEffect) {
  const fs::path d = practical_study("practical", 5);
  const StudySummary s = summarize_study(d.string());
  ASSERT_EQ(s.noise_floors.size(), 1u);
  EXPECT_EQ(s.noise_floors[0].rounds, 5);
  EXPECT_LT(s.noise_floors[0].pct, 3.0) << "paired rounds cancel the rounds' levels";
  const SummaryComparison& fast = comparison_of(s, "fast");
  EXPECT_NEAR(fast.speedup, 2.0, 0.05);
  EXPECT_EQ(fast.verdict, "faster");
  EXPECT_EQ(fast.margin_pct, 5.0);
  EXPECT_EQ(comparison_of(s, "same").verdict, "same") << "1% is within the 5% margin";
  const SummaryComparison& noisy = comparison_of(s, "noisy");
  EXPECT_EQ(noisy.verdict, "unclear") << noisy.ci95_lo << "-" << noisy.ci95_hi;
  EXPECT_GT(noisy.ci95_hi / noisy.ci95_lo, 1.2);
  // identity's interval resamples rounds: it spans the rounds' levels.
  for (const SummaryCell& c : s.cells)
    if (c.strategy == "identity") {
      EXPECT_EQ(c.warm_rounds, (std::vector<int64_t>{10, 10, 10, 10, 10}));
      EXPECT_GT(c.warm_ci_hi_ms / c.warm_ci_lo_ms, 1.1);
    }
  // The answer: fast within the 1-point budget, practically faster than the runner-up.
  ASSERT_EQ(s.answers.size(), 1u);
  EXPECT_TRUE(s.answers[0].met);
  EXPECT_EQ(s.answers[0].strategy, "fast");
  EXPECT_NEAR(s.answers[0].accuracy_change_pt, -0.1, 1e-9);
  ASSERT_TRUE(s.answers[0].versus_runner_up.has_value());
  EXPECT_EQ(s.answers[0].versus_runner_up->verdict, "faster");
  // The summary document carries all of it.
  const StudySummary again = parse_study_summary(study_summary_json(s));
  EXPECT_EQ(study_summary_json(again), study_summary_json(s));
  fs::remove_all(d);
}

TEST(StudySummary, TheMinimumEffectIsTheUsers) {
  // With min_effect_pct 150, halving the latency (a speedup of 2, 100% faster) is not a
  // practical difference, and its interval lies within the margin: no practical difference.
  const fs::path d = practical_study("practical-150", 150);
  const StudySummary s = summarize_study(d.string());
  EXPECT_EQ(s.study.min_effect_pct, 150);
  EXPECT_EQ(comparison_of(s, "fast").margin_pct, 150);
  EXPECT_EQ(comparison_of(s, "fast").verdict, "same");
  fs::remove_all(d);
}

TEST(StudyConfig, OnlyARegularNonEmptyFileIsAStudyFile) {
  // Issue 22: a directory or an empty file given as the study file ran the whole default study.
  const fs::path d = temp_dir("not-a-file");
  std::ofstream(d / "empty.toml") << "  \n";
  EXPECT_NE(error_of([&] { load_study(d.string()); }).find(": not a regular file"), std::string::npos);
  EXPECT_NE(error_of([&] { load_study((d / "empty.toml").string()); }).find("empty.toml: the file is empty"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_study("/dev/zero"); }).find("study /dev/zero: not a regular file"),
            std::string::npos);
  ASSERT_EQ(::mkfifo((d / "fifo").c_str(), 0600), 0);  // refused before anything is read: no hang
  EXPECT_NE(error_of([&] { load_study((d / "fifo").string()); }).find("not a regular file"), std::string::npos);
  std::ofstream(d / "big.toml") << std::string(2 << 20, '#');
  EXPECT_NE(error_of([&] { load_study((d / "big.toml").string()); }).find("more than a study file may have"),
            std::string::npos);
  fs::remove_all(d);
}

// A study as a plan of jobs (edgeforge/study_plan.h): the quick study's jobs and their inputs,
// and the plan's and results' files read back, every malformed one refused naming the field.
TEST(StudyPlan, JobsFollowTheirInputsAndMalformedFilesAreNamed) {
  const fs::path d = temp_dir("plan");
  PlanSource source;
  source.quick = true;
  source.threads = 2;
  source.model_threads = 1;
  const StudyConfig c = plan_source_study(source);
  const StudyPlan p = plan_study(c, source, (d / "p").string());
  // Every job reads only jobs before it, in stages that come before its own.
  std::map<std::string, size_t> stage_at;
  for (size_t i = 0; i < p.stages.size(); ++i) stage_at[p.stages[i].name] = i;
  size_t latency = 0, accuracy = 0;
  for (const PlanJob& j : p.jobs) {
    for (int64_t a : j.after) {
      EXPECT_LT(a, j.index) << j.name();
      EXPECT_LT(stage_at.at(p.jobs[static_cast<size_t>(a)].stage), stage_at.at(j.stage)) << j.name();
    }
    latency += j.kind == "latency";
    accuracy += j.kind == "accuracy";
    EXPECT_EQ(j.exclusive, j.kind == "latency" || j.kind == "placement") << j.name();
    EXPECT_EQ(j.threads, j.kind == "model" ? 1 : 2) << j.name();
  }
  EXPECT_EQ(accuracy, c.models.size() * c.all_strategies().size());
  EXPECT_EQ(latency, c.models.size() * c.topology.tiers.size()) << "auto-partition: a job for every tier";
  EXPECT_EQ(p.stages.front().name, "models-0");
  EXPECT_EQ(p.jobs[static_cast<size_t>(p.stage("models-1").jobs[0])].after.size(), 1u);
  EXPECT_NE(error_of([&] { (void)p.stage("nowhere"); }).find("its stages: models-0"), std::string::npos);

  // Read back: the same plan; the same plan made again is the same.
  const std::string text = read_file((d / "p" / "plan.json").string());
  const StudyPlan again = parse_plan(text, "plan.json");
  EXPECT_EQ(again.id, p.id);
  ASSERT_EQ(again.jobs.size(), p.jobs.size());
  EXPECT_EQ(again.jobs.back().name(), p.jobs.back().name());
  EXPECT_EQ(read_plan((d / "p").string()).id, p.id);
  EXPECT_EQ(plan_study(c, source, (d / "p").string()).id, p.id) << "idempotent";
  source.threads = 1;
  EXPECT_NE(error_of([&] { plan_study(c, source, (d / "p").string()); }).find("holds another plan"), std::string::npos);

  // Malformed plans: each named with its field.
  auto refusal = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = nlohmann::json::parse(text);
    edit(j);
    return error_of([&] { parse_plan(j.dump(), "plan.json"); });
  };
  EXPECT_NE(error_of([&] { parse_plan("{", "plan.json"); }).find("plan.json: not JSON"), std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& j) { j["format"] = "x"; }).find("not an edgeforge study plan"), std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& j) { j.erase("settings"); }).find("settings is missing"), std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& j) { j["jobs"][3]["after"] = {7}; }).find("jobs[3].after names a job that does not come before it"),
            std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& j) { j["jobs"][2]["index"] = 9; }).find("jobs[2].index is 9"), std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& j) { j["jobs"][0]["kind"] = 3; }).find("jobs[0].kind is not a string"), std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& j) { j["stages"][0]["jobs"] = {5}; }).find("stages[0].jobs names a job of another stage"),
            std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& j) { j["threads"] = "2"; }).find("threads is not an integer"), std::string::npos);

  // Job indices: --index, $SLURM_ARRAY_TASK_ID, $JOB_COMPLETION_INDEX, within a stage.
  const int64_t first_latency = p.stage("latency").jobs[0];
  EXPECT_EQ(plan_job_index(p, 3, ""), 3);
  EXPECT_EQ(plan_job_index(p, 0, "latency"), first_latency);
  ::setenv("JOB_COMPLETION_INDEX", "1", 1);
  EXPECT_EQ(plan_job_index(p, std::nullopt, "latency"), p.stage("latency").jobs[1]);
  ::setenv("SLURM_ARRAY_TASK_ID", "2", 1);
  EXPECT_EQ(plan_job_index(p, std::nullopt, ""), 2) << "Slurm's first";
  ::setenv("SLURM_ARRAY_TASK_ID", "99999999999999999999", 1);
  EXPECT_NE(error_of([&] { plan_job_index(p, std::nullopt, ""); }).find("$SLURM_ARRAY_TASK_ID is '99999999999999999999'"),
            std::string::npos);
  ::unsetenv("SLURM_ARRAY_TASK_ID");
  ::unsetenv("JOB_COMPLETION_INDEX");
  EXPECT_NE(error_of([&] { plan_job_index(p, std::nullopt, ""); }).find("no job index"), std::string::npos);
  EXPECT_NE(error_of([&] { plan_job_index(p, -1, ""); }).find("--index -1 is not a job"), std::string::npos);
  EXPECT_NE(error_of([&] { plan_job_index(p, 6, "latency"); }).find("is not a job of stage latency"), std::string::npos);
}

TEST(StudyPlan, CellsTravelAsJsonWithTheirSamples) {
  study::CellRecord c;
  c.kind = "latency";
  c.model = "m";
  c.strategy = "sptq";
  c.deploy = "mobile-edge";
  c.mode = "simulated";
  c.data = {{"placement", "mobile-edge"}};
  c.warm_ms = {1.5, 2.25, 1e-300};
  c.cold_ms = {9.0};
  c.correct = {0, 1, 1};
  c.environment.host = "node7";
  c.environment.cpu = "AMD EPYC";
  c.seconds = 3.5;
  c.finished_utc = "2026-12-07T00:00:00Z";
  const study::CellRecord back = study::cell_from_json(study::cell_to_json(c), "job.json");
  EXPECT_EQ(back.warm_ms, c.warm_ms);
  EXPECT_EQ(back.cold_ms, c.cold_ms);
  EXPECT_EQ(back.correct, c.correct);
  EXPECT_EQ(back.environment.host, "node7");
  EXPECT_EQ(back.data, c.data);
  EXPECT_EQ(back.deploy, c.deploy);
  auto refusal = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = study::cell_to_json(c);
    edit(j);
    return error_of([&] { study::cell_from_json(j, "job.json"); });
  };
  EXPECT_NE(refusal([](nlohmann::json& j) { j["warm_ms"] = "AAA"; }).find("job.json"), std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& j) { j["warm_ms"] = "AAAA"; }).find("not whole 8-byte values"), std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& j) { j["status"] = "maybe"; }).find("status 'maybe'"), std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& j) { j["kind"] = "x"; }).find("kind 'x'"), std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& j) { j.erase("data"); }).find("'data' is missing"), std::string::npos);
  EXPECT_NE(refusal([](nlohmann::json& j) { j["seconds"] = "1"; }).find("'seconds' is missing"), std::string::npos);
  EXPECT_NE(error_of([&] { study::parse_job_result("{\"format\": \"edgeforge-study-job/1\"}", "r.json"); })
                .find("r.json: cells is missing"),
            std::string::npos);
  EXPECT_NE(error_of([&] { study::parse_job_result("[]", "r.json"); }).find("not a JSON job result"), std::string::npos);
}
