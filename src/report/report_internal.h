// What the parts of the report share (src/report/): number formats, tables and their
// renderers, lookups in the summary, and the charts. Not a public interface.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "edgeforge/study_schema.h"

namespace edgeforge::report_detail {

// ---- Numbers (format.cpp; format_ms and format_p are in edgeforge/report.h) ----
std::string printf_string(const char* format, double x);
std::string fixed(double x, int decimals);  // "n/a" for NaN
std::string general(double x);              // %g: 1, 0.5, 150 (bandwidths, memory, speeds)
std::string ratio_text(double r);           // "1.23x"
// The accuracy change in points to two decimals, as +0.07 or -0.04; never "-0.00".
double change_pt(double drop_pt);
// "a", "a and b", "a, b and c".
std::string words(const std::vector<std::string>& items);

// ---- Tables, rendered as HTML or Markdown (tables.cpp). Cells are plain text; the renderers
// escape them. ----
struct Table {
  std::string id, caption, note;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<bool> numeric;  // per column: right-aligned
};
std::string html_escape(const std::string& s);
std::string markdown_escape(const std::string& s);
std::string table_html(const Table& t);
std::string table_markdown(const Table& t);
// The environment, tiers and links tables of the report's head.
std::vector<Table> environment_tables(const StudySummary& s);
// The tables of the report, in order (both formats show the same).
std::vector<Table> result_tables(const StudySummary& s);
// A comparison's verdict (SummaryComparison) in words: "faster (practical)", "no practical
// difference", ...
std::string verdict_text(const std::string& verdict);

// ---- Lookups in the summary (tables.cpp) ----
// Modes of the done cells that match; empty strings match anything.
std::vector<std::string> cell_modes(const StudySummary& s, const std::string& model,
                                    const std::string& strategy, const std::string& deploy);
std::string with_mark(const std::string& text, const std::string& mark);
const SummaryCell* find_cell(const StudySummary& s, const std::string& model,
                             const std::string& strategy, const std::string& deploy);
const SummaryAccuracy* find_accuracy(const StudySummary& s, const std::string& model,
                                     const std::string& strategy);
const SummaryMcNemar* find_mcnemar(const StudySummary& s, const std::string& model,
                                   const std::string& strategy);
// What a latency mode means, for the banner; every mode the summary's cells used.
std::string mode_description(const std::string& mode);
std::vector<std::string> all_modes(const StudySummary& s);

// ---- Charts: full Vega 5 specs with inline data (charts.cpp) ----
struct Chart {
  std::string id, heading, caption;  // heading: "latency", "pareto", "speedup" or "sweep"
  nlohmann::json spec;
};
std::vector<Chart> charts(const StudySummary& s);

}  // namespace edgeforge::report_detail
