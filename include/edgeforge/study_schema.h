// edgeforge/study_schema.h: the study's data, typed, with one reading and one writing of each.
//
// A study (docs/study.md) keeps its cells in an SQLite database (src/study/store.h); each cell's
// figures are a JSON document in its `data` column, written by the runner from the *CellData
// structs below and read back through them by the summary. The summary of a study (statistics
// included) is one StudySummary; study_summary_json() writes it as the document below and
// parse_study_summary() reads such a document back, checking every field, so that the report,
// `edgeforge report` and other tools read exactly what the study wrote.
//
//   StudySummary s = summarize_study("out/study");               // edgeforge/study.h
//   std::string text = study_summary_json(s).dump(2);            // the export's summary.json
//   StudySummary again = parse_study_summary(nlohmann::json::parse(text));  // the same
//
// ## The summary document (format "edgeforge.study-summary/1")
// Fields marked [optional] may be absent (or null); every other field is required. A missing
// or mistyped field, or a name that the lists do not declare, is an edgeforge::Error naming its
// path, e.g. "study summary: cells[3].latency.warm.median_ms is missing".
//
//   format        "edgeforge.study-summary/1"
//   study         name, created_utc, finished_utc [optional], mode ("simulated", "emulated" or
//                 "remote": how latency was obtained), quick [optional, false], inputs, runs,
//                 latency_only [optional, false], note [optional], min_effect_pct [optional, 5],
//                 max_accuracy_drop_pt [optional, 1], max_latency_ms [optional, 0: none],
//                 environment: {commit, version, cpu, host [optional], host_cores, threads, seed,
//                               libraries: {library: version}}  (each [optional]),
//                 topology: {name, tiers: [{name, cores, memory_gb, speed, reference_ms
//                                          [optional]}],
//                            links: [{from, to, bandwidth_mbps, rtt_ms, jitter_ms [optional],
//                                     loss [optional]}]}
//   models        [{name, dataset, metric ("top-1", "f1"), student [optional]}]
//   strategies    [{name, extra}]   extra: an edgeforge addition, not in the reference study
//   deployments   [name]            a tier ("edge") or a split ("mobile-edge")
//   cells         at most one per (model, strategy, deployment); the grid may be sparse
//                 (partition strategies run only on splits):
//                 {model, strategy, deploy, status ("done", or why not: "failed", "skipped"),
//                  reason [optional] (why it is not done), mode (as study.mode; [optional]
//                  unless done), cut [optional] (the partition cut: a value name),
//                  placement [optional] (where it ran: the deployment, or auto's choice),
//                  host [optional], cpu [optional] (the machine it was measured on),
//                  latency (status "done" only): {
//                    warm: {samples, median_ms, p90_ms, p99_ms, median_ci95_ms: [lo, hi],
//                           samples_ms: [every warm sample], rounds [optional]: [samples per
//                           round], outliers [optional]: count beyond the Tukey fences},
//                    conditions [optional]: {load_avg, cpu_mhz, steal_pct, others_busy_pct,
//                           reference_before_ms, reference_after_ms, drift_pct, attempts,
//                           unstable, group_cells, shared_preprocessing} (NaN as null),
//                    cold: {samples, median_ms},
//                    breakdown_median_ms [optional]: {part: ms}  ("preprocess", "compute.edge",
//                                                                 "link.mobile-edge", ...)},
//                  sweep [optional]: [{link ("edge-cloud"), bandwidth_mbps, warm_median_ms}]}
//   accuracy      [{model, strategy, status, reason [optional], and when done: metric, samples,
//                   value, baseline [optional] (identity's value), drop_pt [optional]
//                   ((baseline - value) * 100)}]
//   stats         latency_tests: [{model, deploy, strategies: [name],
//                                  kruskal: {h, df, p},
//                                  pairs: [{a, b, t, p, p_holm, cliffs_delta,
//                                           magnitude [optional]}]}]
//                   (Kruskal-Wallis over the strategies' warm samples, then Conover pairs with
//                   Holm-adjusted p; cliffs_delta > 0: a is slower than b)
//                 mcnemar: [{model, strategy, b, c, p, significant, alpha [optional],
//                            threshold [optional]}]  (against identity; b, c: the discordant
//                   samples; threshold: Bonferroni, alpha over the number of tests)
//                 wilcoxon: [{strategy, n, pairs [optional], statistic, p, exact [optional],
//                             alpha, threshold, significant,
//                             measure [optional, "accuracy"]: "accuracy" (paired with
//                             identity's over the models) or "latency" (paired warm medians
//                             over model/deployment pairs)}]  (against identity)
//                 speedups: [{strategy, deploy, baseline_deploy [optional, deploy], mean_ratio,
//                             per_model: {model: ratio}}]
//                   (ratio: identity's warm median on baseline_deploy over the strategy's on
//                   deploy; > 1 is faster)
//                 noise_floors [optional]: [{model, deploy, aa_ratio, pct, rounds}]
//                 comparisons [optional]: [{model, strategy, deploy, baseline, baseline_deploy,
//                   speedup, ci90: [lo, hi], ci95: [lo, hi], noise_floor_pct, margin_pct,
//                   p_holm, verdict ("faster", "slower", "same", "unclear"),
//                   cross_machine [optional, false]: the two cells ran on different machines}]
//   answers       [optional] [{model, met, strategy, deploy, latency_ms, accuracy_change_pt,
//                   within_budget, runner_up [optional]: {strategy, deploy, latency_ms,
//                   accuracy_change_pt, versus: comparison}}]
//   pareto        [{model, points: [{strategy, deploy, latency_ms, accuracy, on_front}]}]
// Statistics that could not be computed may be null (shown as "n/a"; they must still be present):
// t, p, p_holm, cliffs_delta, h, statistic, mean_ratio and the per-model ratios. Other fields
// are ignored.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace edgeforge {

inline constexpr const char* kStudySummaryFormat = "edgeforge.study-summary/1";

// The machine a cell was measured on (a cell's `environment` column, the summary's
// study.environment). Descriptive only: every field may be absent (empty, 0).
struct StudyEnvironment {
  std::string commit, version, cpu;
  std::string host;  // the machine's name (a planned study's cells may come from many)
  int64_t host_cores = 0, threads = 0, seed = 0;  // 0: not given
  std::map<std::string, std::string> libraries;   // library -> version
  bool empty() const;
};

struct SummaryTier {
  std::string name;
  int64_t cores = 0;
  double memory_gb = 0, speed = 0;
  double reference_ms = 0;  // [optional] as the topology gave it; 0: measured
};
struct SummaryLink {
  std::string from, to;
  double bandwidth_mbps = 0, rtt_ms = 0;
  double jitter_ms = 0, loss = 0;  // [optional]
  std::string name() const { return from + "-" + to; }
};
struct SummaryStudy {
  std::string name, created_utc, finished_utc, mode;
  bool quick = false;
  int64_t inputs = 0, runs = 0;
  bool latency_only = false;  // [optional] untrained weights: latency, no accuracy
  std::string note;           // [optional] how the study was scaled, for the report
  double min_effect_pct = 5, max_accuracy_drop_pt = 1, max_latency_ms = 0;  // [optional]
  StudyEnvironment environment;
  std::string topology;
  std::vector<SummaryTier> tiers;
  std::vector<SummaryLink> links;
};
struct SummaryModel {
  std::string name, dataset, metric, student;
};
struct SummaryStrategy {
  std::string name;
  bool extra = false;
};
struct SummarySweepPoint {
  std::string link;
  double bandwidth_mbps = 0, warm_median_ms = 0;
};
// How a latency cell was measured: side by side with the other cells of its model in
// interleaved rounds (measure_interleaved, edgeforge/deploy.h), what else the host was doing
// (HostConditions; NaN where it could not be read), the reference workload measured before
// and after the cells' rounds, and the drift of the group's reference cell (identity).
struct MeasureConditions {
  double load_avg = 0, cpu_mhz = 0, steal_pct = 0, others_busy_pct = 0;
  double reference_before_ms = 0, reference_after_ms = 0;
  double drift_pct = 0;          // identity's host time, second half of the rounds against the first, in %
  int64_t attempts = 1;          // measurements of the group (again while the reference drifted)
  bool unstable = false;         // the reference still drifted beyond the limit on the last one
  int64_t group_cells = 0;       // cells measured side by side (A/A twin included)
  bool shared_preprocessing = false;  // preprocessing measured once per round for the group
};

struct SummaryCell {
  std::string model, strategy, deploy, status, reason, mode, cut;
  std::string placement;  // [optional] where it ran: the deployment, or auto's choice
  std::string host, cpu;  // [optional] the machine it was measured on (its environment)
  bool done() const { return status == "done"; }
  // The rest is set when done().
  int64_t warm_samples = 0, cold_samples = 0;
  double warm_median_ms = 0, warm_p90_ms = 0, warm_p99_ms = 0;
  double warm_ci_lo_ms = 0, warm_ci_hi_ms = 0, cold_median_ms = 0;
  std::vector<double> warm_samples_ms;
  // [optional] warm samples per measured round, in order (their sum is warm_samples): the
  // blocks its interval resamples; empty for a cell measured in one block (older studies).
  std::vector<int64_t> warm_rounds;
  int64_t outliers = 0;  // warm samples beyond the Tukey fences (1.5 IQR past the quartiles)
  std::map<std::string, double> breakdown_median_ms;
  std::vector<SummarySweepPoint> sweep;
  std::optional<MeasureConditions> conditions;  // [optional]
};
struct SummaryAccuracy {
  std::string model, strategy, status, reason, metric;
  int64_t samples = 0;
  double value = 0, baseline = 0, drop_pt = 0;  // when done(); baseline, drop_pt may be NaN
  bool done() const { return status == "done"; }
};
struct SummaryPair {
  std::string a, b, magnitude;
  double t = 0, p = 0, p_holm = 0, cliffs_delta = 0;  // NaN when the summary has null
};
struct SummaryLatencyTest {
  std::string model, deploy;
  std::vector<std::string> strategies;
  double h = 0, p = 0;
  int64_t df = 0;
  std::vector<SummaryPair> pairs;
};
struct SummaryMcNemar {
  std::string model, strategy;
  int64_t b = 0, c = 0;
  double p = 0, alpha = 0, threshold = 0;  // alpha, threshold: NaN when not given
  bool significant = false;
};
struct SummaryWilcoxon {
  std::string strategy, measure;
  int64_t n = 0;      // pairs with a difference (zero differences are left out)
  int64_t pairs = -1; // pairs compared; -1 when the summary does not say
  double statistic = 0, p = 0, alpha = 0, threshold = 0;
  bool significant = false;
  std::optional<bool> exact;  // [optional] the p value is exact, not the normal approximation
};
struct SummarySpeedup {
  std::string strategy, deploy, baseline_deploy;
  double mean_ratio = 0;
  std::map<std::string, double> per_model;
};
// The noise floor of a model on a deployment: identity measured twice (A/A) in separate slots
// of the same rounds. `pct` is the 95th percentile of |ratio - 1| over a paired block bootstrap
// of the A/A ratio of medians, in %: differences below it are what measuring twice gives.
struct SummaryNoiseFloor {
  std::string model, deploy;
  double aa_ratio = 0, pct = 0;
  int64_t rounds = 0;
};
// One strategy's cell against another's (a speedup): `speedup` is the baseline's warm median
// over the cell's (> 1: faster), with paired block-bootstrap intervals. The margin is the
// larger of the deployment's noise floor and the study's min_effect_pct. Verdict:
//   "faster" / "slower": the 95% interval excludes 1, the Conover pair (where both are in one
//       test group) is significant after Holm, and the speedup is beyond the margin;
//   "same": no practical difference, the 90% interval lies within the margin (two one-sided
//       tests at 5%, TOST);
//   "unclear": neither.
struct SummaryComparison {
  std::string model, strategy, deploy, baseline, baseline_deploy;
  double speedup = 0, ci90_lo = 0, ci90_hi = 0, ci95_lo = 0, ci95_hi = 0;
  double noise_floor_pct = 0, margin_pct = 0;  // noise_floor_pct NaN: no A/A for it
  double p_holm = 0;                           // NaN: no Conover pair for the two
  std::string verdict;
  bool cross_machine = false;  // [optional] the two cells were measured on different machines
};
// The answer for one model: the fastest cell within the study's budgets (latency and accuracy
// drop) and the runner-up, with the comparison of the two (baseline: the runner-up).
struct SummaryAnswer {
  std::string model;
  bool met = false;  // some cell meets the budgets
  std::string strategy, deploy;
  double latency_ms = 0, accuracy_change_pt = 0;  // NaN: no accuracy (latency only)
  int64_t within_budget = 0;  // cells that meet it
  std::string runner_up_strategy, runner_up_deploy;  // "" when no other cell meets it
  double runner_up_latency_ms = 0, runner_up_accuracy_change_pt = 0;
  std::optional<SummaryComparison> versus_runner_up;
};

struct SummaryParetoPoint {
  std::string strategy, deploy;
  double latency_ms = 0, accuracy = 0;
  bool on_front = false;
};
struct SummaryPareto {
  std::string model;
  std::vector<SummaryParetoPoint> points;
};
struct StudySummary {
  SummaryStudy study;
  std::vector<SummaryModel> models;
  std::vector<SummaryStrategy> strategies;
  std::vector<std::string> deployments;
  std::vector<SummaryCell> cells;
  std::vector<SummaryAccuracy> accuracy;
  std::vector<SummaryLatencyTest> latency_tests;
  std::vector<SummaryMcNemar> mcnemar;
  std::vector<SummaryWilcoxon> wilcoxon;
  std::vector<SummarySpeedup> speedups;
  std::vector<SummaryPareto> pareto;
  std::vector<SummaryNoiseFloor> noise_floors;   // [optional]
  std::vector<SummaryComparison> comparisons;    // [optional] every cell against identity
  std::vector<SummaryAnswer> answers;            // [optional] per model
};


// ---- Reading and writing the summary document. ----

// Checks every field the report reads and returns them typed; Error naming the field path for
// a missing or mistyped field, a wrong format, or a model, strategy or deployment that the
// summary's lists do not declare.
StudySummary parse_study_summary(const nlohmann::json& summary);
// The document above; parse_study_summary(study_summary_json(s)) gives `s` back, and a document
// the study wrote reads back to the same text. NaN statistics are written as null.
nlohmann::json study_summary_json(const StudySummary& summary);

// ---- The figures of each kind of cell in the study database (its `data` column, JSON). ----
// Reading tolerates absent fields (databases of older versions): they take the defaults.

// A model cell ("model" kind): a strategy pipeline's output file.
struct ModelCellData {
  std::string file;
  bool from_cache = false;            // found in the model cache, not made by this study
  nlohmann::json report;              // [optional] the making command's --json report
};
// The auto-partition placement chosen for a model, kept as a model cell of that strategy.
struct AutoPlacementData {
  std::string file, deploy, cut;  // the model; its placement ("mobile-edge", "cloud"); its cut
  double estimate_ms = 0;         // the placement's estimated latency
  std::string why;                // the choice, explained
};
// An accuracy cell: the strategy's model scored on the test split.
struct AccuracyCellData {
  std::string metric, dataset, cut;  // cut: where a partition strategy's model was split
  double value = 0, top1 = 0;        // value: the metric's; top1: the share of right answers
  int64_t samples = 0;
  std::optional<double> f1;
};
// A latency cell's figures besides its samples (the warm_ms and cold_ms columns).
struct LatencyCellData {
  std::string placement, cut;
  int64_t crossing_bytes = 0, payload_bytes = 0;
  std::map<std::string, double> breakdown_median_ms;  // part ("compute.edge") -> median ms
  std::vector<SummarySweepPoint> sweep;
  std::map<std::string, int64_t> tier_threads;        // tier -> threads it ran with
  double measure_seconds = 0;
  std::optional<AutoPlacementData> auto_choice;       // an auto-partition cell's placement
  std::vector<int64_t> round_sizes;                   // warm samples per kept round
  // identity only: the A/A twin, identity measured again in its own slot of the same rounds
  std::vector<double> aa_warm_ms;
  std::vector<int64_t> aa_round_sizes;
  std::optional<MeasureConditions> conditions;
};

nlohmann::json to_json(const StudyEnvironment& e);
nlohmann::json to_json(const ModelCellData& d);
nlohmann::json to_json(const AutoPlacementData& d);
nlohmann::json to_json(const AccuracyCellData& d);
nlohmann::json to_json(const LatencyCellData& d);
StudyEnvironment environment_from_json(const nlohmann::json& j);
ModelCellData model_cell_from_json(const nlohmann::json& j);
AutoPlacementData auto_placement_from_json(const nlohmann::json& j);
AccuracyCellData accuracy_cell_from_json(const nlohmann::json& j);
LatencyCellData latency_cell_from_json(const nlohmann::json& j);

}  // namespace edgeforge
