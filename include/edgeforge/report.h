// edgeforge/report.h: the study report, rendered from the study runner's summary document.
//
// A study (docs/study.md) measures a grid of models x deployment strategies x
// deployments. The runner writes what it measured as one summary JSON document (format below);
// this component turns it into what people and other tools read:
//   - plain sentences with the numbers behind them (study_findings),
//   - one HTML file that opens offline, with Vega charts and the statistics tables,
//   - the same findings and tables as Markdown,
//   - CSV exports for spreadsheets and plotting tools.
// Every latency figure carries its mode: "(simulated)" while tiers and links are simulated.
//
//   nlohmann::json summary = study_summary("out/study");  // edgeforge/study.h
//   for (const std::string& f : study_findings(summary)) std::cout << "- " << f << "\n";
//   std::ofstream("out/study/report.html") << render_report_html(summary);
//   std::ofstream("out/study/report.md") << render_report_markdown(summary);
//   write_report_exports(summary, "out/study/export");  // summary.json, cells.csv, ...
//
// ## The summary document (format "edgeforge.study-summary/1")
// Fields marked [optional] may be absent (or null); every other field is required. A missing
// or mistyped field, or a name that the lists do not declare, is an edgeforge::Error naming its
// path, e.g. "study summary: cells[3].latency.warm.median_ms is missing".
//
//   format        "edgeforge.study-summary/1"
//   study         name, created_utc, finished_utc [optional], mode ("simulated", "emulated" or
//                 "remote": how latency was obtained), quick [optional, false], inputs, runs,
//                 environment: {commit, version, cpu, host_cores, threads, seed,
//                               libraries: {library: version}}  (each [optional]),
//                 topology: {name, tiers: [{name, cores, memory_gb, speed}],
//                            links: [{from, to, bandwidth_mbps, rtt_ms}]}
//   models        [{name, dataset, metric ("top-1", "f1"), student [optional]}]
//   strategies    [{name, extra}]   extra: an edgeforge addition, not in the reference study
//   deployments   [name]            a tier ("edge") or a split ("mobile-edge")
//   cells         at most one per (model, strategy, deployment); the grid may be sparse
//                 (partition strategies run only on splits):
//                 {model, strategy, deploy, status ("done", or why not: "failed", "skipped"),
//                  reason [optional] (why it is not done), mode (as study.mode; [optional]
//                  unless done), cut [optional]
//                  (the partition cut: a value name, or any JSON),
//                  latency (status "done" only): {
//                    warm: {samples, median_ms, p90_ms, p99_ms, median_ci95_ms: [lo, hi],
//                           samples_ms: [every warm sample]},
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
//                 wilcoxon: [{strategy, n, statistic, p, alpha, threshold, significant,
//                             measure [optional, "accuracy"]: "accuracy" (paired with
//                             identity's over the models) or "latency" (paired warm medians
//                             over model/deployment pairs)}]  (against identity)
//                 speedups: [{strategy, deploy, baseline_deploy [optional, deploy], mean_ratio,
//                             per_model: {model: ratio}}]
//                   (ratio: identity's warm median on baseline_deploy over the strategy's on
//                   deploy; > 1 is faster)
//   pareto        [{model, points: [{strategy, deploy, latency_ms, accuracy, on_front}]}]
// Statistics that could not be computed may be null (shown as "n/a"; they must still be present):
// t, p, p_holm, cliffs_delta, h, statistic, mean_ratio and the per-model ratios. Fields the
// report does not read (a cell's placement, a Wilcoxon test's exact) are ignored.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace edgeforge {

inline constexpr const char* kStudySummaryFormat = "edgeforge.study-summary/1";
// Where Debian's libjs-vega installs Vega 5 (one UMD file per module, e.g. vega-view.min.js).
inline constexpr const char* kVegaDir = "/usr/share/javascript/vega";
inline constexpr const char* kVegaPackage = "libjs-vega";
// The level below which a p value counts as significant where the summary gives no alpha
// (Kruskal-Wallis and the Holm-adjusted Conover pairs).
inline constexpr double kReportAlpha = 0.05;

struct ReportOptions {
  std::string vega_dir = kVegaDir;  // the HTML inlines Vega's modules from here
};

// ---- The summary, validated and typed (parse_study_summary). Field meanings as above. ----
struct SummaryTier {
  std::string name;
  int64_t cores = 0;
  double memory_gb = 0, speed = 0;
};
struct SummaryLink {
  std::string from, to;
  double bandwidth_mbps = 0, rtt_ms = 0;
  std::string name() const { return from + "-" + to; }
};
struct SummaryStudy {
  std::string name, created_utc, finished_utc, mode;
  bool quick = false;
  int64_t inputs = 0, runs = 0;
  std::string commit, version, cpu;
  int64_t host_cores = 0, threads = 0, seed = 0;  // 0: not given
  std::map<std::string, std::string> libraries;
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
struct SummaryCell {
  std::string model, strategy, deploy, status, reason, mode, cut;
  bool done() const { return status == "done"; }
  // The rest is set when done().
  int64_t warm_samples = 0, cold_samples = 0;
  double warm_median_ms = 0, warm_p90_ms = 0, warm_p99_ms = 0;
  double warm_ci_lo_ms = 0, warm_ci_hi_ms = 0, cold_median_ms = 0;
  std::vector<double> warm_samples_ms;
  std::map<std::string, double> breakdown_median_ms;
  std::vector<SummarySweepPoint> sweep;
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
};
struct SummarySpeedup {
  std::string strategy, deploy, baseline_deploy;
  double mean_ratio = 0;
  std::map<std::string, double> per_model;
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
};

// Checks every field the report reads and returns them typed; Error naming the field path for
// a missing or mistyped field, a wrong format, or a model, strategy or deployment that the
// summary's lists do not declare.
StudySummary parse_study_summary(const nlohmann::json& summary);

// "(simulated)" for a figure made of cells in mode simulated; "(emulated, simulated)" when the
// modes differ; "" for no mode.
std::string mode_mark(const std::vector<std::string>& modes);
// How the report writes numbers, so that findings and tables agree: milliseconds with three
// significant digits below 100 (0.480, 6.97, 13.5) and whole from 100 (1247); p values with two
// decimals down to 0.01, then three (0.003), then in exponent form (7.2e-12); NaN as "n/a".
std::string format_ms(double ms);
std::string format_p(double p);

// Plain sentences with the numbers behind them, in this order: the fastest deployment per model
// (and identity's latency on each), the largest mean speedup per deployment, bandwidth
// sensitivity per link and model, accuracy changes with McNemar, the Pareto fronts, Wilcoxon
// against its Bonferroni threshold, Kruskal-Wallis/Conover counts, and what failed, with the
// reasons. Sentences about latency end with their mode mark ("(simulated)"). The second form
// takes a summary parse_study_summary already read.
std::vector<std::string> study_findings(const nlohmann::json& summary);
std::vector<std::string> study_findings(const StudySummary& summary);

// One self-contained HTML file (UTF-8) that opens offline: Vega (from `options.vega_dir`,
// Error naming kVegaPackage when missing) and every chart's data are inlined. When opened, a
// script renders the charts as SVG and records on <body> data-charts-expected (set in the
// file), data-charts-rendered (after every chart settled), data-errors and data-warnings
// (Vega's messages and script errors, one a line; empty when all went well).
std::string render_report_html(const nlohmann::json& summary, const ReportOptions& options = {});
// The findings and the tables of the HTML report, without charts, as GitHub Markdown.
std::string render_report_markdown(const nlohmann::json& summary);

// Writes into `dir` (created when missing): summary.json (the input, indented), cells.csv (a row
// per cell: model,strategy,deploy,status,mode,warm_median_ms,warm_p90_ms,warm_p99_ms,
// warm_ci_lo_ms,warm_ci_hi_ms,cold_median_ms,accuracy,accuracy_drop_pt, then breakdown_<part>_ms
// for every part of any cell, then reason), samples.csv (model,strategy,deploy,sample,latency_ms:
// every warm sample, sample counting from 0), accuracy.csv, stats.csv (the pairwise tests with
// their group's Kruskal-Wallis), speedups.csv and sweep.csv. Empty fields where a value does
// not apply. Error naming the file when one cannot be written.
void write_report_exports(const nlohmann::json& summary, const std::string& dir);

}  // namespace edgeforge
