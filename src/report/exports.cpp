// The report's exports (edgeforge/report.h): the summary as JSON and CSV files for other tools,
// and the set of files a study folder gets.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

#include "edgeforge/error.h"
#include "edgeforge/report.h"
#include "edgeforge/util.h"
#include "report_internal.h"
#include <filesystem>
#include <fstream>

namespace edgeforge {

using nlohmann::json;
using namespace report_detail;

namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += (c == '"') ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}
// Shortest text that reads back as the same double; empty for NaN.
std::string csv_number(double x) { return std::isfinite(x) ? json(x).dump() : ""; }

class CsvFile {
 public:
  CsvFile(const std::string& dir, const std::string& name)
      : path_(dir + "/" + name), out_(path_, std::ios::binary) {
    EF_CHECK(out_.good(), "report: cannot write ", path_);
  }
  void row(const std::vector<std::string>& fields) {
    for (size_t i = 0; i < fields.size(); ++i) out_ << (i ? "," : "") << csv_field(fields[i]);
    out_ << "\n";
  }
  ~CsvFile() = default;
  void close() {
    out_.close();
    EF_CHECK(!out_.fail(), "report: cannot write ", path_);
  }

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace

void write_report_exports(const StudySummary& s, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  EF_CHECK(!ec && std::filesystem::is_directory(dir), "report: cannot create the folder ", dir,
           ec ? ": " + ec.message() : "");

  {
    std::ofstream out(dir + "/summary.json", std::ios::binary);
    out << study_summary_json(s).dump(2) << "\n";
    out.close();
    EF_CHECK(!out.fail(), "report: cannot write ", dir, "/summary.json");
  }

  std::set<std::string> parts;
  for (const SummaryCell& c : s.cells)
    for (const auto& [part, ms] : c.breakdown_median_ms) parts.insert(part);
  CsvFile cells(dir, "cells.csv");
  std::vector<std::string> header = {
      "model",          "strategy",       "deploy",        "status",        "mode",
      "warm_median_ms", "warm_p90_ms",    "warm_p99_ms",   "warm_ci_lo_ms", "warm_ci_hi_ms",
      "cold_median_ms", "accuracy",       "accuracy_drop_pt"};
  for (const std::string& part : parts) header.push_back("breakdown_" + part + "_ms");
  header.push_back("reason");
  cells.row(header);
  for (const SummaryCell& c : s.cells) {
    const SummaryAccuracy* a = find_accuracy(s, c.model, c.strategy);
    const bool acc = a != nullptr && a->done();
    std::vector<std::string> row = {c.model, c.strategy, c.deploy, c.status, c.mode};
    for (double x : {c.warm_median_ms, c.warm_p90_ms, c.warm_p99_ms, c.warm_ci_lo_ms,
                     c.warm_ci_hi_ms, c.cold_median_ms})
      row.push_back(c.done() ? csv_number(x) : "");
    row.push_back(acc ? csv_number(a->value) : "");
    row.push_back(acc ? csv_number(a->drop_pt) : "");
    for (const std::string& part : parts) {
      auto it = c.breakdown_median_ms.find(part);
      row.push_back(it == c.breakdown_median_ms.end() ? "" : csv_number(it->second));
    }
    row.push_back(c.reason);
    cells.row(row);
  }
  cells.close();

  CsvFile samples(dir, "samples.csv");
  samples.row({"model", "strategy", "deploy", "sample", "latency_ms"});
  for (const SummaryCell& c : s.cells)
    for (size_t i = 0; i < c.warm_samples_ms.size(); ++i)
      samples.row({c.model, c.strategy, c.deploy, std::to_string(i),
                   csv_number(c.warm_samples_ms[i])});
  samples.close();

  CsvFile accuracy(dir, "accuracy.csv");
  accuracy.row({"model", "strategy", "status", "metric", "value", "baseline", "drop_pt",
                "samples", "mcnemar_b", "mcnemar_c", "mcnemar_p", "mcnemar_threshold",
                "mcnemar_significant", "reason"});
  for (const SummaryAccuracy& a : s.accuracy) {
    const SummaryMcNemar* m = find_mcnemar(s, a.model, a.strategy);
    accuracy.row({a.model, a.strategy, a.status, a.metric, a.done() ? csv_number(a.value) : "",
                  a.done() ? csv_number(a.baseline) : "", a.done() ? csv_number(a.drop_pt) : "",
                  std::to_string(a.samples), m ? std::to_string(m->b) : "",
                  m ? std::to_string(m->c) : "", m ? csv_number(m->p) : "",
                  m ? csv_number(m->threshold) : "", m ? (m->significant ? "true" : "false") : "",
                  a.reason});
  }
  accuracy.close();

  CsvFile stats(dir, "stats.csv");
  stats.row({"model", "deploy", "a", "b", "t", "p", "p_holm", "cliffs_delta", "magnitude",
             "kruskal_h", "kruskal_df", "kruskal_p"});
  for (const SummaryLatencyTest& t : s.latency_tests)
    for (const SummaryPair& p : t.pairs)
      stats.row({t.model, t.deploy, p.a, p.b, csv_number(p.t), csv_number(p.p),
                 csv_number(p.p_holm), csv_number(p.cliffs_delta), p.magnitude, csv_number(t.h),
                 std::to_string(t.df), csv_number(t.p)});
  stats.close();

  CsvFile speedups(dir, "speedups.csv");
  speedups.row({"strategy", "deploy", "baseline_deploy", "model", "ratio"});
  for (const SummarySpeedup& sp : s.speedups) {
    speedups.row({sp.strategy, sp.deploy, sp.baseline_deploy, "(mean)",
                  csv_number(sp.mean_ratio)});
    for (const auto& [model, ratio] : sp.per_model)
      speedups.row({sp.strategy, sp.deploy, sp.baseline_deploy, model, csv_number(ratio)});
  }
  speedups.close();

  CsvFile comparisons(dir, "comparisons.csv");
  comparisons.row({"model", "strategy", "deploy", "baseline", "baseline_deploy", "speedup",
                   "ci90_lo", "ci90_hi", "ci95_lo", "ci95_hi", "noise_floor_pct", "margin_pct",
                   "p_holm", "verdict"});
  for (const SummaryComparison& c : s.comparisons)
    comparisons.row({c.model, c.strategy, c.deploy, c.baseline, c.baseline_deploy,
                     csv_number(c.speedup), csv_number(c.ci90_lo), csv_number(c.ci90_hi),
                     csv_number(c.ci95_lo), csv_number(c.ci95_hi), csv_number(c.noise_floor_pct),
                     csv_number(c.margin_pct), csv_number(c.p_holm), c.verdict});
  comparisons.close();

  CsvFile sweep(dir, "sweep.csv");
  sweep.row({"model", "strategy", "deploy", "link", "bandwidth_mbps", "warm_median_ms"});
  for (const SummaryCell& c : s.cells)
    for (const SummarySweepPoint& p : c.sweep)
      sweep.row({c.model, c.strategy, c.deploy, p.link, csv_number(p.bandwidth_mbps),
                 csv_number(p.warm_median_ms)});
  sweep.close();
}

std::string write_study_reports(const StudySummary& summary, const std::string& dir,
                                const ReportOptions& options) {
  const std::string html = dir + "/report.html";
  write_file_atomic(html, render_report_html(summary, options));
  write_file_atomic(dir + "/report.md", render_report_markdown(summary));
  write_report_exports(summary, dir + "/export");
  return html;
}

}  // namespace edgeforge
