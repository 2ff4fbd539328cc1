// edgeforge/study.h: a study, the grid of models x strategies x deployments the published study
// ran (docs/study.md), as one resumable command.
//
// A study makes every strategy's model of every model (child processes of edgeforge, two at a
// time on two cores, cached by content), scores each one's accuracy on the test split, measures
// each deployment's latency (inputs x runs, the first run dropped) with a sweep of the links'
// bandwidth, and keeps every finished cell in an SQLite database in its output folder, one
// transaction per cell. Running it again resumes: finished cells are skipped.
//
//   StudyConfig config = default_study(/*quick=*/false);      // or load_study("mine.toml")
//   run_study(config, "out/study");                            // out/study/study.sqlite
//   StudySummary summary = summarize_study("out/study");       // statistics included
//
// Strategies are edgeforge optimize pipelines ("sptq", "distill+sptq"), "identity" (the model
// itself), "partition" and "P+partition" (the model, or P's model, on each split deployment at
// the study's cut) and "auto-partition" (the placement and cut `--at auto` chooses). The other
// strategies run on each single-tier deployment.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edgeforge/dataset.h"
#include "edgeforge/study_schema.h"
#include "edgeforge/tiers.h"

namespace edgeforge {

struct StudyModel {
  std::string name;  // a zoo name, or the name the report uses for `file`
  std::string file;  // "" for a zoo model (trained through the model cache)
  std::optional<DataSpec> data;  // a file's data set (`data` of its [[model]]); none: its own
  // A latency-only study: the (untrained) student architecture "distill" deploys.
  std::string student_file;
};

struct StudyConfig {
  std::string name = "default";
  std::string source;  // the study file, "" for a built-in study
  bool quick = false;
  std::vector<StudyModel> models;  // default: the zoo teachers resnet, resnext, bert, roberta
  std::vector<std::string> strategies;  // the study's, in report order
  std::vector<std::string> extras;      // edgeforge's own, reported in their own section
  std::vector<std::string> deployments = {"mobile", "edge", "cloud", "mobile-edge"};
  std::map<std::string, std::vector<std::string>> options;  // strategy -> NAME=VALUE
  std::string topology_file;  // "" for the built-in default
  Topology topology;
  int64_t inputs = 100;     // latency samples per run
  int runs = 6;             // runs; the first is dropped
  int64_t accuracy_limit = 0;  // test samples scored; 0 = the whole test split
  int64_t train_limit = 0;     // training samples a strategy may use; 0 = as it says
  std::vector<double> sweep_mbps = {1, 10, 50, 100, 150, 200};
  uint64_t seed = 1;
  int jobs = 0;  // model-making processes at once; 0 = this machine's cores
  // How latency is measured: "simulated" (on this host), "emulated" (agents in namespaces
  // behind shaped links; root) or "remote" (the topology's agents). Real modes skip the sweep.
  std::string mode = "simulated";
  // Findings and the answer: a latency difference is practical only beyond both this and the
  // deployment's measured noise floor; the answer's budgets (0 latency: none).
  double min_effect_pct = 5;
  double max_accuracy_drop_pt = 1;
  double max_latency_ms = 0;
  // A latency-only study (untrained weights): no accuracy cells, and "distill" deploys each
  // model's student_file instead of training one.
  bool latency_only = false;
  std::string note;        // how the study was scaled, printed at the top of its report
  int64_t frame_size = 0;  // side of an image payload's frame (RGB, 8 bits); 0 = 224

  // Every strategy, the study's then the extras.
  std::vector<std::string> all_strategies() const;
};

// The study's defaults; `quick` is a small version that runs in minutes: resnet and bert
// trained with a seconds-long recipe, fewer strategies, 20 inputs x 3 runs, 2,000 test samples.
StudyConfig default_study(bool quick);

// The built-in studies `edgeforge study --preset NAME` runs: "default", "quick" and
// "paper-scale" (the study's four architectures at their real sizes with untrained weights,
// latency only; docs/study.md). Its models are built on first use into the cache (minutes,
// about 2 GB) and read from there after. Error naming the presets for another name.
std::vector<std::string> study_presets();
StudyConfig preset_study(const std::string& name);

// A study file (TOML; docs/study.md). Every unknown key, model, strategy or deployment and every
// bad number is an Error naming the key and its line.
StudyConfig load_study(const std::string& path);
StudyConfig parse_study(const std::string& toml_text, const std::string& source);

struct StudyProgress {
  int64_t done = 0, total = 0;
  std::string current;  // the cell being measured
};

struct StudyRunOptions {
  int threads = 0;  // for accuracy and latency; 0 = this machine's cores
  // Threads of each model-making job; 0 = this machine's cores over the jobs run at once.
  int model_threads = 0;
  bool retry_failed = false;  // run cells recorded as failed again
  // The edgeforge program the model jobs run (`train`, `optimize`); "" = this executable, or
  // $EDGEFORGE_PROGRAM when set (tests run the study from their own binary).
  std::string program;
};

// Runs every cell of `config` not yet in `out_dir`/study.sqlite, committing each as it finishes.
// A cell that fails (a strategy that does not apply to a model) is recorded as failed with its
// reason and the study goes on. Error when out_dir holds a database of another study or a file
// that is not an edgeforge study database.
void run_study(const StudyConfig& config, const std::string& out_dir,
               const StudyRunOptions& options = {});

// The summary of a study folder (edgeforge/study_schema.h): every cell with its samples,
// accuracy, statistics (Kruskal-Wallis, Conover with Holm, Cliff's delta; McNemar; Wilcoxon with
// Bonferroni; speedups; bootstrap intervals) and the Pareto fronts. Error when `out_dir` holds
// no study database.
StudySummary summarize_study(const std::string& out_dir);

// The study database's path in `out_dir`.
std::string study_database(const std::string& out_dir);

struct Budget {
  double max_latency_ms = 0;      // 0 = no latency budget
  double max_accuracy_drop_pt = -1;  // < 0 = no accuracy budget
  std::string deploy, model;      // "" = every one
};

// The best strategy and deployment per model within the budget (the lowest warm median among
// the cells that meet both), or, when none does, the Pareto set and the nearest miss, as the
// document `edgeforge recommend --json` prints.
nlohmann::json recommend(const StudySummary& summary, const Budget& budget);

}  // namespace edgeforge
