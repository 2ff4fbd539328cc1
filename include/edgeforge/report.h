// edgeforge/report.h: the study report, rendered from a study's summary.
//
// A study (docs/study.md) measures a grid of models x deployment strategies x
// deployments. Its summary (StudySummary, edgeforge/study_schema.h: the cells, the accuracy,
// the statistics) is what this component turns into what people and other tools read:
//   - plain sentences with the numbers behind them (study_findings),
//   - one HTML file that opens offline, with Vega charts and the statistics tables,
//   - the same findings and tables as Markdown,
//   - CSV exports for spreadsheets and plotting tools.
// Every latency figure carries its mode: "(simulated)" while tiers and links are simulated.
//
//   StudySummary summary = summarize_study("out/study");  // edgeforge/study.h
//   for (const std::string& f : study_findings(summary)) std::cout << "- " << f << "\n";
//   std::ofstream("out/study/report.html") << render_report_html(summary);
//   std::ofstream("out/study/report.md") << render_report_markdown(summary);
//   write_report_exports(summary, "out/study/export");  // summary.json, cells.csv, ...
//   write_study_reports(summary, "out/study");          // all three, as `edgeforge study` does
//
// A summary document written by another run or tool is read with parse_study_summary().
#pragma once

#include <string>
#include <vector>

#include "edgeforge/study_schema.h"

namespace edgeforge {

// Where Debian's libjs-vega installs Vega 5 (one UMD file per module, e.g. vega-view.min.js).
inline constexpr const char* kVegaDir = "/usr/share/javascript/vega";
inline constexpr const char* kVegaPackage = "libjs-vega";
// The level below which a p value counts as significant where the summary gives no alpha
// (Kruskal-Wallis and the Holm-adjusted Conover pairs).
inline constexpr double kReportAlpha = 0.05;

struct ReportOptions {
  std::string vega_dir = kVegaDir;  // the HTML inlines Vega's modules from here
};

// "(simulated)" for a figure made of cells in mode simulated; "(emulated, simulated)" when the
// modes differ; "" for no mode.
std::string mode_mark(const std::vector<std::string>& modes);
// How the report writes numbers, so that findings and tables agree: milliseconds with three
// significant digits below 100 (0.480, 6.97, 13.5) and whole from 100 (1247); p values with two
// decimals down to 0.01, then three (0.003), then in exponent form (7.2e-12); NaN as "n/a".
std::string format_ms(double ms);
std::string format_p(double p);

// The answer the report opens with, as plain sentences: the budgets; per model, the
// recommended strategy and deployment (the fastest cell within the study's budgets, or why
// none is) with its latency, accuracy change and how sure the difference to the runner-up is
// (practical, none, or unclear; edgeforge/study_schema.h SummaryComparison); then, per
// strategy, how its cells compare with identity (faster, slower, no practical difference,
// unclear) against the noise floor.
struct StudyAnswer {
  std::string budget;                // "accuracy drop at most 1 pt, no latency budget"
  std::vector<std::string> models;   // one sentence per model
  std::vector<std::string> compared; // one sentence per strategy, then the noise floor
};
StudyAnswer study_answer(const StudySummary& summary);

// Plain sentences with the numbers behind them, in this order: the fastest deployment per model
// (and identity's latency on each), the largest mean speedup per deployment, bandwidth
// sensitivity per link and model, accuracy changes with McNemar, the Pareto fronts, Wilcoxon
// against its Bonferroni threshold, Kruskal-Wallis/Conover counts, and what failed, with the
// reasons. Sentences about latency end with their mode mark ("(simulated)").
std::vector<std::string> study_findings(const StudySummary& summary);

// One self-contained HTML file (UTF-8) that opens offline: Vega (from `options.vega_dir`,
// Error naming kVegaPackage when missing) and every chart's data are inlined. When opened, a
// script renders the charts as SVG and records on <body> data-charts-expected (set in the
// file), data-charts-rendered (after every chart settled), data-errors and data-warnings
// (Vega's messages and script errors, one a line; empty when all went well).
std::string render_report_html(const StudySummary& summary, const ReportOptions& options = {});
// The findings and the tables of the HTML report, without charts, as GitHub Markdown.
std::string render_report_markdown(const StudySummary& summary);

// Writes into `dir` (created when missing): summary.json (study_summary_json, indented),
// cells.csv (a row per cell: model,strategy,deploy,status,mode,warm_median_ms,warm_p90_ms,
// warm_p99_ms,warm_ci_lo_ms,warm_ci_hi_ms,cold_median_ms,accuracy,accuracy_drop_pt, then breakdown_<part>_ms
// for every part of any cell, then reason), samples.csv (model,strategy,deploy,sample,latency_ms:
// every warm sample, sample counting from 0), accuracy.csv, stats.csv (the pairwise tests with
// their group's Kruskal-Wallis), speedups.csv, comparisons.csv (every cell against identity,
// with its verdict) and sweep.csv. Empty fields where a value does
// not apply. Error naming the file when one cannot be written.
void write_report_exports(const StudySummary& summary, const std::string& dir);

// What `edgeforge study` writes into a study folder `dir`: report.html, report.md (each
// replaced atomically) and the exports in dir/export. Returns the HTML report's path.
std::string write_study_reports(const StudySummary& summary, const std::string& dir,
                                const ReportOptions& options = {});

}  // namespace edgeforge
