// The study report (edgeforge/report.h): the summary checked and typed, the HTML report with
// its Vega charts, the Markdown report and the CSV exports. The findings are in findings.cpp.
#include "edgeforge/report.h"
#include "edgeforge/stats.h"
#include "edgeforge/tier_modes.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <strings.h>

#include "edgeforge/error.h"

namespace edgeforge {

using nlohmann::json;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---------------------------------------------------------------------------------------------
// Reading the summary: every access names the field's path in its error.

class Field {
 public:
  Field(const json& value, std::string path) : value_(value), path_(std::move(path)) {}

  const json& value() const { return value_; }

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(detail::concat("study summary: ", path_.empty() ? "the document" : path_, " ",
                               what));
  }

  bool has(const std::string& key) const {
    object();
    auto it = value_.find(key);
    return it != value_.end() && !it->is_null();
  }
  // The member `key`; Error when it is missing or null.
  Field at(const std::string& key) const {
    object();
    auto it = value_.find(key);
    const std::string path = path_.empty() ? key : path_ + "." + key;
    if (it == value_.end() || it->is_null()) throw Error("study summary: " + path + " is missing");
    return Field(*it, path);
  }
  // The member `key` when present and not null, else the document's null with that path.
  Field get(const std::string& key) const {
    static const json kNull;
    object();
    auto it = value_.find(key);
    const std::string path = path_.empty() ? key : path_ + "." + key;
    return (it == value_.end()) ? Field(kNull, path) : Field(*it, path);
  }
  bool is_null() const { return value_.is_null(); }

  std::vector<Field> items() const {
    if (!value_.is_array()) mistyped("an array");
    std::vector<Field> out;
    for (size_t i = 0; i < value_.size(); ++i)
      out.emplace_back(value_[i], path_ + "[" + std::to_string(i) + "]");
    return out;
  }
  std::vector<std::pair<std::string, Field>> members() const {
    object();
    std::vector<std::pair<std::string, Field>> out;
    for (auto it = value_.begin(); it != value_.end(); ++it)
      out.emplace_back(it.key(), Field(it.value(), path_ + "." + it.key()));
    return out;
  }
  std::string str() const {
    if (!value_.is_string()) mistyped("a string");
    return value_.get<std::string>();
  }
  double num() const {
    if (!value_.is_number()) mistyped("a number");
    return value_.get<double>();
  }
  double num_or_nan() const { return value_.is_null() ? kNaN : num(); }
  // The member `key`, which must be present but may be null (a statistic that could not be
  // computed): NaN for null.
  double nullable(const std::string& key) const {
    object();
    if (value_.find(key) == value_.end())
      throw Error("study summary: " + (path_.empty() ? key : path_ + "." + key) + " is missing");
    return get(key).num_or_nan();
  }
  int64_t integer() const {
    if (value_.is_number_integer()) return value_.get<int64_t>();
    if (value_.is_number_float()) {
      const double v = value_.get<double>();
      if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9e15)
        return static_cast<int64_t>(v);
    }
    mistyped("an integer");
  }
  bool boolean() const {
    if (!value_.is_boolean()) mistyped("true or false");
    return value_.get<bool>();
  }

 private:
  void object() const {
    if (!value_.is_object()) mistyped("an object");
  }
  [[noreturn]] void mistyped(const char* expected) const {
    const std::string type = value_.type_name();
    const bool vowel = type == "array" || type == "object";
    fail(detail::concat("must be ", expected, ", not ",
                        value_.is_null() ? "null" : (vowel ? "an " : "a ") + type));
  }

  const json& value_;
  std::string path_;
};

std::string str_or(const Field& parent, const std::string& key, const std::string& fallback) {
  Field f = parent.get(key);
  return f.is_null() ? fallback : f.str();
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

// Error unless `name` (at `f`) is one of `known`, which the summary declares at `list`.
void check_declared(const Field& f, const std::string& name, const std::vector<std::string>& known,
                    const char* list) {
  if (std::find(known.begin(), known.end(), name) != known.end()) return;
  f.fail(detail::concat("'", name, "' is not one of ", list, " (", join(known, ", "), ")"));
}

void unique_names(const Field& list, const std::vector<std::string>& names) {
  std::set<std::string> seen;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty()) list.items()[i].fail("has an empty name");
    if (!seen.insert(names[i]).second) list.items()[i].fail("repeats the name '" + names[i] + "'");
  }
}

SummaryStudy read_study(const Field& s) {
  SummaryStudy info;
  info.name = s.at("name").str();
  info.created_utc = s.at("created_utc").str();
  info.finished_utc = str_or(s, "finished_utc", "");
  info.mode = s.at("mode").str();
  if (info.mode.empty()) s.at("mode").fail("is empty");
  info.quick = s.has("quick") && s.at("quick").boolean();
  info.inputs = s.at("inputs").integer();
  info.runs = s.at("runs").integer();
  const Field env = s.at("environment");
  // Descriptive only, and empty when no cell finished: every field may be absent.
  info.commit = str_or(env, "commit", "");
  info.version = str_or(env, "version", "");
  info.cpu = str_or(env, "cpu", "");
  info.host_cores = env.has("host_cores") ? env.at("host_cores").integer() : 0;
  info.threads = env.has("threads") ? env.at("threads").integer() : 0;
  info.seed = env.has("seed") ? env.at("seed").integer() : 0;
  if (env.has("libraries"))
    for (const auto& [name, version] : env.at("libraries").members())
      info.libraries[name] = version.str();
  const Field topo = s.at("topology");
  info.topology = topo.at("name").str();
  for (const Field& t : topo.at("tiers").items())
    info.tiers.push_back({t.at("name").str(), t.at("cores").integer(), t.at("memory_gb").num(),
                          t.at("speed").num()});
  for (const Field& l : topo.at("links").items())
    info.links.push_back({l.at("from").str(), l.at("to").str(), l.at("bandwidth_mbps").num(),
                          l.at("rtt_ms").num()});
  return info;
}

SummaryCell read_cell(const Field& c, const StudySummary& s,
                       const std::vector<std::string>& model_names,
                       const std::vector<std::string>& strategy_names,
                       const std::vector<std::string>& link_names) {
  SummaryCell cell;
  cell.model = c.at("model").str();
  check_declared(c.at("model"), cell.model, model_names, "models");
  cell.strategy = c.at("strategy").str();
  check_declared(c.at("strategy"), cell.strategy, strategy_names, "strategies");
  cell.deploy = c.at("deploy").str();
  check_declared(c.at("deploy"), cell.deploy, s.deployments, "deployments");
  cell.status = c.at("status").str();
  cell.reason = str_or(c, "reason", "");
  cell.mode = cell.done() ? c.at("mode").str() : str_or(c, "mode", "");
  if (cell.done() && cell.mode.empty()) c.at("mode").fail("is empty");
  const Field cut = c.get("cut");
  if (!cut.is_null()) cell.cut = cut.value().is_string() ? cut.str() : cut.value().dump();
  if (!cell.done()) return cell;

  const Field latency = c.at("latency");
  const Field warm = latency.at("warm");
  cell.warm_samples = warm.at("samples").integer();
  cell.warm_median_ms = warm.at("median_ms").num();
  cell.warm_p90_ms = warm.at("p90_ms").num();
  cell.warm_p99_ms = warm.at("p99_ms").num();
  const Field ci = warm.at("median_ci95_ms");
  const std::vector<Field> bounds = ci.items();
  if (bounds.size() != 2) ci.fail(detail::concat("must be [lo, hi], not ", bounds.size(), " numbers"));
  cell.warm_ci_lo_ms = bounds[0].num();
  cell.warm_ci_hi_ms = bounds[1].num();
  for (const Field& x : warm.at("samples_ms").items()) cell.warm_samples_ms.push_back(x.num());
  const Field cold = latency.at("cold");
  cell.cold_samples = cold.at("samples").integer();
  cell.cold_median_ms = cold.at("median_ms").num();
  if (latency.has("breakdown_median_ms"))
    for (const auto& [part, ms] : latency.at("breakdown_median_ms").members())
      cell.breakdown_median_ms[part] = ms.num();
  if (c.has("sweep")) {
    for (const Field& p : c.at("sweep").items()) {
      SummarySweepPoint point{p.at("link").str(), p.at("bandwidth_mbps").num(),
                       p.at("warm_median_ms").num()};
      check_declared(p.at("link"), point.link, link_names, "study.topology.links");
      if (!(point.bandwidth_mbps > 0)) p.at("bandwidth_mbps").fail("must be positive");
      cell.sweep.push_back(point);
    }
  }
  return cell;
}

}  // namespace

StudySummary parse_study_summary(const json& summary) {
  const Field root(summary, "");
  const std::string format = root.at("format").str();
  if (format != kStudySummaryFormat)
    root.at("format").fail(detail::concat("is '", format, "', expected '", kStudySummaryFormat,
                                          "'"));
  StudySummary s;
  s.study = read_study(root.at("study"));

  const Field models = root.at("models");
  std::vector<std::string> model_names;
  for (const Field& m : models.items()) {
    s.models.push_back({m.at("name").str(), m.at("dataset").str(), m.at("metric").str(),
                        str_or(m, "student", "")});
    model_names.push_back(s.models.back().name);
  }
  unique_names(models, model_names);
  const Field strategies = root.at("strategies");
  std::vector<std::string> strategy_names;
  for (const Field& st : strategies.items()) {
    s.strategies.push_back({st.at("name").str(), st.at("extra").boolean()});
    strategy_names.push_back(s.strategies.back().name);
  }
  unique_names(strategies, strategy_names);
  const Field deployments = root.at("deployments");
  for (const Field& d : deployments.items()) s.deployments.push_back(d.str());
  unique_names(deployments, s.deployments);
  std::vector<std::string> link_names;
  for (const SummaryLink& l : s.study.links) link_names.push_back(l.name());

  std::map<std::string, size_t> cell_index;
  for (const Field& c : root.at("cells").items()) {
    SummaryCell cell = read_cell(c, s, model_names, strategy_names, link_names);
    const std::string key = cell.model + "|" + cell.strategy + "|" + cell.deploy;
    if (!cell_index.emplace(key, s.cells.size()).second)
      c.fail(detail::concat("repeats (", cell.model, ", ", cell.strategy, ", ", cell.deploy,
                            ") of cells[", cell_index[key], "]"));
    s.cells.push_back(std::move(cell));
  }

  for (const Field& a : root.at("accuracy").items()) {
    SummaryAccuracy r;
    r.model = a.at("model").str();
    check_declared(a.at("model"), r.model, model_names, "models");
    r.strategy = a.at("strategy").str();
    check_declared(a.at("strategy"), r.strategy, strategy_names, "strategies");
    r.status = a.at("status").str();
    r.reason = str_or(a, "reason", "");
    std::string model_metric;
    for (const SummaryModel& m : s.models)
      if (m.name == r.model) model_metric = m.metric;
    r.metric = r.done() ? a.at("metric").str() : str_or(a, "metric", model_metric);
    r.samples = r.done() || a.has("samples") ? a.at("samples").integer() : 0;
    if (r.done()) {
      r.value = a.at("value").num();
      // Without identity's value (when it failed) there is no baseline to compare with.
      r.baseline = a.has("baseline") ? a.at("baseline").num() : kNaN;
      r.drop_pt = a.has("drop_pt") ? a.at("drop_pt").num() : kNaN;
    }
    s.accuracy.push_back(r);
  }

  const Field stats = root.at("stats");
  for (const Field& t : stats.at("latency_tests").items()) {
    SummaryLatencyTest test;
    test.model = t.at("model").str();
    check_declared(t.at("model"), test.model, model_names, "models");
    test.deploy = t.at("deploy").str();
    check_declared(t.at("deploy"), test.deploy, s.deployments, "deployments");
    for (const Field& st : t.at("strategies").items()) {
      test.strategies.push_back(st.str());
      check_declared(st, test.strategies.back(), strategy_names, "strategies");
    }
    const Field kw = t.at("kruskal");
    test.h = kw.nullable("h");
    test.df = kw.at("df").integer();
    test.p = kw.nullable("p");
    for (const Field& p : t.at("pairs").items()) {
      SummaryPair pair;
      pair.a = p.at("a").str();
      check_declared(p.at("a"), pair.a, strategy_names, "strategies");
      pair.b = p.at("b").str();
      check_declared(p.at("b"), pair.b, strategy_names, "strategies");
      pair.t = p.nullable("t");
      pair.p = p.nullable("p");
      pair.p_holm = p.nullable("p_holm");
      pair.cliffs_delta = p.nullable("cliffs_delta");
      pair.magnitude = str_or(p, "magnitude", "");
      test.pairs.push_back(pair);
    }
    s.latency_tests.push_back(test);
  }
  for (const Field& m : stats.at("mcnemar").items()) {
    SummaryMcNemar test;
    test.model = m.at("model").str();
    check_declared(m.at("model"), test.model, model_names, "models");
    test.strategy = m.at("strategy").str();
    check_declared(m.at("strategy"), test.strategy, strategy_names, "strategies");
    test.b = m.at("b").integer();
    test.c = m.at("c").integer();
    test.p = m.nullable("p");
    test.significant = m.at("significant").boolean();
    test.alpha = m.has("alpha") ? m.at("alpha").num() : kNaN;
    test.threshold = m.has("threshold") ? m.at("threshold").num() : kNaN;
    s.mcnemar.push_back(test);
  }
  for (const Field& w : stats.at("wilcoxon").items()) {
    SummaryWilcoxon test;
    test.strategy = w.at("strategy").str();
    check_declared(w.at("strategy"), test.strategy, strategy_names, "strategies");
    test.measure = str_or(w, "measure", "accuracy");
    if (test.measure != "latency" && test.measure != "accuracy")
      w.at("measure").fail("is '" + test.measure + "', expected 'latency' or 'accuracy'");
    test.n = w.at("n").integer();
    test.pairs = w.has("pairs") ? w.at("pairs").integer() : -1;
    test.statistic = w.nullable("statistic");
    test.p = w.nullable("p");
    test.alpha = w.at("alpha").num();
    test.threshold = w.at("threshold").num();
    test.significant = w.at("significant").boolean();
    s.wilcoxon.push_back(test);
  }
  for (const Field& sp : stats.at("speedups").items()) {
    SummarySpeedup speedup;
    speedup.strategy = sp.at("strategy").str();
    check_declared(sp.at("strategy"), speedup.strategy, strategy_names, "strategies");
    speedup.deploy = sp.at("deploy").str();
    check_declared(sp.at("deploy"), speedup.deploy, s.deployments, "deployments");
    speedup.mean_ratio = sp.nullable("mean_ratio");
    speedup.baseline_deploy = str_or(sp, "baseline_deploy", speedup.deploy);
    check_declared(sp.get("baseline_deploy"), speedup.baseline_deploy, s.deployments,
                   "deployments");
    for (const auto& [model, ratio] : sp.at("per_model").members()) {
      check_declared(ratio, model, model_names, "models");
      speedup.per_model[model] = ratio.num_or_nan();
    }
    s.speedups.push_back(speedup);
  }
  for (const Field& f : root.at("pareto").items()) {
    SummaryPareto front;
    front.model = f.at("model").str();
    check_declared(f.at("model"), front.model, model_names, "models");
    for (const Field& p : f.at("points").items()) {
      SummaryParetoPoint point{p.at("strategy").str(), p.at("deploy").str(), p.at("latency_ms").num(),
                        p.at("accuracy").num(), p.at("on_front").boolean()};
      check_declared(p.at("strategy"), point.strategy, strategy_names, "strategies");
      check_declared(p.at("deploy"), point.deploy, s.deployments, "deployments");
      front.points.push_back(point);
    }
    s.pareto.push_back(front);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Numbers and marks.

std::string mode_mark(const std::vector<std::string>& modes) {
  std::set<std::string> unique(modes.begin(), modes.end());
  unique.erase("");
  if (unique.empty()) return "";
  return "(" + join(std::vector<std::string>(unique.begin(), unique.end()), ", ") + ")";
}

namespace {

std::string printf_string(const char* format, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, x);
  return buf;
}

}  // namespace

std::string format_ms(double ms) {
  if (!std::isfinite(ms)) return "n/a";
  const double a = std::fabs(ms);
  if (a >= 99.95) return printf_string("%.0f", ms);
  if (a >= 9.995) return printf_string("%.1f", ms);
  if (a >= 0.9995) return printf_string("%.2f", ms);
  return printf_string("%.3f", ms);
}

std::string format_p(double p) {
  if (!std::isfinite(p)) return "n/a";
  if (p <= 0) return "0";
  if (p >= 0.00995) return printf_string("%.2f", p);
  if (p >= 0.000995) return printf_string("%.3f", p);
  return printf_string("%.1e", p);
}

namespace {

std::string fixed(double x, int decimals) {
  if (!std::isfinite(x)) return "n/a";
  char format[16];
  std::snprintf(format, sizeof format, "%%.%df", decimals);
  return printf_string(format, x);
}
std::string general(double x) {  // 1, 0.5, 150: bandwidths, memory, speeds
  if (!std::isfinite(x)) return "n/a";
  return printf_string("%g", x);
}
std::string ratio_text(double r) { return std::isfinite(r) ? fixed(r, 2) + "x" : "n/a"; }
// The accuracy change in points to two decimals, as +0.07 or -0.04; never "-0.00".
double change_pt(double drop_pt) { return std::round(-drop_pt * 100) / 100 + 0.0; }

// ---------------------------------------------------------------------------------------------
// Tables, rendered as HTML or Markdown. Cells are plain text; the renderers escape them.

struct Table {
  std::string id, caption, note;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<bool> numeric;  // per column: right-aligned
};

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string markdown_escape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\n' || c == '\r') {
      out += ' ';
      continue;
    }
    // '<' only where it could open an HTML tag (before a letter, '/', '!' or '?').
    const char next = i + 1 < s.size() ? s[i + 1] : '\0';
    const bool tag = c == '<' && (std::isalpha(static_cast<unsigned char>(next)) ||
                                  next == '/' || next == '!' || next == '?');
    if (c == '\\' || c == '|' || tag || c == '*' || c == '`' || c == '[' || c == ']' || c == '_')
      out += '\\';
    out += c;
  }
  return out;
}

std::string table_html(const Table& t) {
  std::ostringstream out;
  out << "<table id=\"" << html_escape(t.id) << "\">\n<caption>" << html_escape(t.caption)
      << "</caption>\n<thead><tr>";
  for (const std::string& h : t.header) out << "<th>" << html_escape(h) << "</th>";
  out << "</tr></thead>\n<tbody>\n";
  for (const auto& row : t.rows) {
    out << "<tr>";
    for (size_t i = 0; i < row.size(); ++i)
      out << (i < t.numeric.size() && t.numeric[i] ? "<td class=\"num\">" : "<td>")
          << html_escape(row[i]) << "</td>";
    out << "</tr>\n";
  }
  if (t.rows.empty())
    out << "<tr><td colspan=\"" << t.header.size() << "\">none</td></tr>\n";
  out << "</tbody>\n</table>\n";
  if (!t.note.empty()) out << "<p class=\"note\">" << html_escape(t.note) << "</p>\n";
  return out.str();
}

std::string table_markdown(const Table& t) {
  std::ostringstream out;
  out << "**" << markdown_escape(t.caption) << "**\n\n";
  if (t.rows.empty()) {
    out << "None.\n\n";
    return out.str();
  }
  out << "|";
  for (const std::string& h : t.header) out << " " << markdown_escape(h) << " |";
  out << "\n|";
  for (size_t i = 0; i < t.header.size(); ++i)
    out << (i < t.numeric.size() && t.numeric[i] ? "---:|" : "---|");
  out << "\n";
  for (const auto& row : t.rows) {
    out << "|";
    for (const std::string& c : row) out << " " << markdown_escape(c) << " |";
    out << "\n";
  }
  out << "\n";
  if (!t.note.empty()) out << markdown_escape(t.note) << "\n\n";
  return out.str();
}

// Modes of the done cells that match; empty strings match anything.
std::vector<std::string> cell_modes(const StudySummary& s, const std::string& model,
                                    const std::string& strategy, const std::string& deploy) {
  std::vector<std::string> modes;
  for (const SummaryCell& c : s.cells)
    if ((model.empty() || c.model == model) && (strategy.empty() || c.strategy == strategy) &&
        (deploy.empty() || c.deploy == deploy) && c.done())
      modes.push_back(c.mode);
  return modes;
}

std::string with_mark(const std::string& text, const std::string& mark) {
  return mark.empty() ? text : text + " " + mark;
}

const SummaryCell* find_cell(const StudySummary& s, const std::string& model,
                             const std::string& strategy, const std::string& deploy) {
  for (const SummaryCell& c : s.cells)
    if (c.model == model && c.strategy == strategy && c.deploy == deploy) return &c;
  return nullptr;
}
const SummaryAccuracy* find_accuracy(const StudySummary& s, const std::string& model,
                                    const std::string& strategy) {
  for (const SummaryAccuracy& a : s.accuracy)
    if (a.model == model && a.strategy == strategy) return &a;
  return nullptr;
}
const SummaryMcNemar* find_mcnemar(const StudySummary& s, const std::string& model,
                                const std::string& strategy) {
  for (const SummaryMcNemar& m : s.mcnemar)
    if (m.model == model && m.strategy == strategy) return &m;
  return nullptr;
}

std::string breakdown_text(const SummaryCell& c) {
  std::vector<std::string> parts;
  for (const auto& [part, ms] : c.breakdown_median_ms) parts.push_back(part + " " + format_ms(ms));
  return join(parts, "; ");
}

std::vector<Table> environment_tables(const StudySummary& s) {
  const SummaryStudy& st = s.study;
  Table env{"environment-table", "Environment", "", {"item", "value"}, {}, {}};
  env.rows = {{"study", st.name},
              {"created (UTC)", st.created_utc},
              {"finished (UTC)", st.finished_utc.empty() ? "n/a" : st.finished_utc},
              {"mode", st.mode},
              {"inputs x runs", detail::concat(st.inputs, " x ", st.runs,
                                               st.quick ? " (quick study)" : "")},
              {"edgeforge", st.version + (st.commit.empty() ? "" : " (commit " + st.commit + ")")},
              {"CPU", st.cpu},
              {"host cores", st.host_cores ? std::to_string(st.host_cores) : "n/a"},
              {"threads", st.threads ? std::to_string(st.threads) : "n/a"},
              {"seed", std::to_string(st.seed)}};
  for (const auto& [lib, version] : st.libraries) env.rows.push_back({lib, version});
  std::vector<std::string> names;
  for (const SummaryModel& m : s.models)
    names.push_back(m.name + " (" + m.dataset + ", " + m.metric +
                    (m.student.empty() ? "" : ", student " + m.student) + ")");
  env.rows.push_back({"models", join(names, "; ")});
  names.clear();
  std::vector<std::string> extras;
  for (const SummaryStrategy& x : s.strategies) (x.extra ? extras : names).push_back(x.name);
  env.rows.push_back({"strategies", join(names, ", ")});
  if (!extras.empty())
    env.rows.push_back({"extra strategies (not in the reference study)", join(extras, ", ")});
  env.rows.push_back({"deployments", join(s.deployments, ", ")});

  Table tiers{"tiers", "Tiers of topology '" + st.topology + "'", "",
              {"tier", "cores", "memory (GB)", "speed (relative to this host)"}, {},
              {false, true, true, true}};
  for (const SummaryTier& t : st.tiers)
    tiers.rows.push_back(
        {t.name, std::to_string(t.cores), general(t.memory_gb), general(t.speed)});
  Table links{"links", "Links of topology '" + st.topology + "'", "",
              {"link", "bandwidth (Mbit/s)", "RTT (ms)"}, {}, {false, true, true}};
  for (const SummaryLink& l : st.links)
    links.rows.push_back({l.name(), general(l.bandwidth_mbps), general(l.rtt_ms)});
  return {env, tiers, links};
}

// The tables of the report, in order (both formats show the same).
std::vector<Table> result_tables(const StudySummary& s) {
  std::vector<Table> out;
  const std::string all_mark = mode_mark(cell_modes(s, "", "", ""));

  Table cells{"latency-table", with_mark("Warm and cold latency per cell", all_mark),
              "Warm: runs after the first; the CI is the 95% interval of the median. Cold: the "
              "model loaded inside the request. Breakdown: median ms per part of the request.",
              {"model", "strategy", "deploy", "mode", "warm n", "warm median (ms)", "p90 (ms)",
               "p99 (ms)", "median 95% CI (ms)", "cold median (ms)", "cut", "breakdown (median ms)"},
              {}, {false, false, false, false, true, true, true, true, true, true, false, false}};
  for (const SummaryCell& c : s.cells) {
    if (!c.done()) continue;
    cells.rows.push_back({c.model, c.strategy, c.deploy, c.mode, std::to_string(c.warm_samples),
                          format_ms(c.warm_median_ms), format_ms(c.warm_p90_ms),
                          format_ms(c.warm_p99_ms),
                          format_ms(c.warm_ci_lo_ms) + " - " + format_ms(c.warm_ci_hi_ms),
                          format_ms(c.cold_median_ms), c.cut, breakdown_text(c)});
  }
  out.push_back(cells);

  Table acc{"accuracy-table", "Accuracy and McNemar tests against identity",
            "Change: value minus identity's, in percentage points. McNemar b / c: the two kinds "
            "of discordant samples (one model right, the other wrong).",
            {"model", "strategy", "metric", "value", "identity", "change (pt)", "samples",
             "McNemar b / c", "McNemar p", "threshold", "significant"},
            {}, {false, false, false, true, true, true, true, true, true, true, false}};
  for (const SummaryAccuracy& a : s.accuracy) {
    if (!a.done()) {
      acc.rows.push_back({a.model, a.strategy, a.metric, a.status, "", "", "", "", "", "", ""});
      continue;
    }
    const SummaryMcNemar* m = find_mcnemar(s, a.model, a.strategy);
    acc.rows.push_back(
        {a.model, a.strategy, a.metric, fixed(a.value, 4), fixed(a.baseline, 4),
         std::isfinite(a.drop_pt) ? printf_string("%+.2f", change_pt(a.drop_pt)) : "n/a",
         std::to_string(a.samples), m ? detail::concat(m->b, " / ", m->c) : "",
         m ? format_p(m->p) : "",
         m && std::isfinite(m->threshold) ? printf_string("%.3g", m->threshold) : "",
         m ? (m->significant ? "yes" : "no") : ""});
  }
  out.push_back(acc);

  Table pareto{"pareto-table", with_mark("Pareto front: latency against accuracy", all_mark),
               "Points no other configuration beats in both warm median latency and accuracy.",
               {"model", "strategy", "deploy", "warm median (ms)", "accuracy"}, {},
               {false, false, false, true, true}};
  for (const SummaryPareto& f : s.pareto)
    for (const SummaryParetoPoint& p : f.points)
      if (p.on_front)
        pareto.rows.push_back(
            {f.model, p.strategy, p.deploy, format_ms(p.latency_ms), fixed(p.accuracy, 4)});
  out.push_back(pareto);

  Table speed{"speedup-table",
              with_mark("Speedup over identity: identity's warm median over the strategy's",
                        all_mark),
              "Mean over models of the per-model ratio; above 1 is faster than identity.",
              {"strategy", "deploy", "identity on", "mean"}, {}, {false, false, false, true}};
  for (const SummaryModel& m : s.models) {
    speed.header.push_back(m.name);
    speed.numeric.push_back(true);
  }
  for (const SummarySpeedup& sp : s.speedups) {
    std::vector<std::string> row = {sp.strategy, sp.deploy, sp.baseline_deploy,
                                    ratio_text(sp.mean_ratio)};
    for (const SummaryModel& m : s.models) {
      auto it = sp.per_model.find(m.name);
      row.push_back(it == sp.per_model.end() ? "" : ratio_text(it->second));
    }
    speed.rows.push_back(row);
  }
  out.push_back(speed);

  Table kw{"kruskal-table",
           with_mark("Kruskal-Wallis tests: do the strategies' warm latencies differ?", all_mark),
           "", {"model", "deploy", "strategies", "H", "df", "p", "significant (p < 0.05)"}, {},
           {false, false, true, true, true, true, false}};
  Table pairs{"pairs-table",
              with_mark("Conover pairwise tests (Holm-adjusted) and Cliff's delta", all_mark),
              "Cliff's delta > 0: a is slower than b. Magnitude: negligible < 0.147 <= small < "
              "0.33 <= medium < 0.474 <= large.",
              {"model", "deploy", "a", "b", "t", "p", "p (Holm)", "Cliff's delta", "magnitude"},
              {}, {false, false, false, false, true, true, true, true, false}};
  for (const SummaryLatencyTest& t : s.latency_tests) {
    const std::string mark = mode_mark(cell_modes(s, t.model, "", t.deploy));
    kw.rows.push_back({t.model, t.deploy, std::to_string(t.strategies.size()), fixed(t.h, 2),
                       std::to_string(t.df), format_p(t.p),
                       std::isfinite(t.p) ? (t.p < kReportAlpha ? "yes" : "no") : "n/a"});
    for (const SummaryPair& p : t.pairs)
      pairs.rows.push_back({t.model, t.deploy, p.a, p.b, fixed(p.t, 2), format_p(p.p),
                            format_p(p.p_holm), fixed(p.cliffs_delta, 3), p.magnitude});
  }
  out.push_back(kw);
  out.push_back(pairs);

  std::vector<std::string> wilcoxon_modes;
  for (const SummaryWilcoxon& w : s.wilcoxon)
    if (w.measure == "latency") {
      auto m = cell_modes(s, "", w.strategy, "");
      wilcoxon_modes.insert(wilcoxon_modes.end(), m.begin(), m.end());
    }
  Table wil{"wilcoxon-table",
            with_mark("Wilcoxon signed-rank tests against identity, Bonferroni threshold",
                      mode_mark(wilcoxon_modes)),
            "Accuracy: the strategy's values paired with identity's over the models; latency: "
            "paired warm medians over model/deployment pairs. Significant when p is below the "
            "threshold (alpha over the number of tests).",
            {"strategy", "measure", "n", "statistic", "p", "alpha", "threshold", "significant"},
            {}, {false, false, true, true, true, true, true, false}};
  for (const SummaryWilcoxon& w : s.wilcoxon)
    wil.rows.push_back({w.strategy, w.measure, std::to_string(w.n), fixed(w.statistic, 1),
                        format_p(w.p), general(w.alpha), printf_string("%.3g", w.threshold),
                        w.significant ? "yes" : "no"});
  out.push_back(wil);

  // One sweep table per link: a row per cell, a column per bandwidth.
  for (const SummaryLink& link : s.study.links) {
    std::set<double> bandwidths;
    for (const SummaryCell& c : s.cells)
      for (const SummarySweepPoint& p : c.sweep)
        if (p.link == link.name()) bandwidths.insert(p.bandwidth_mbps);
    if (bandwidths.empty()) continue;
    Table sw{"sweep-table-" + link.name(),
             with_mark("Warm median (ms) against the bandwidth of " + link.name(), all_mark),
             "The other links keep the topology's bandwidth (" + link.name() + ": " +
                 general(link.bandwidth_mbps) + " Mbit/s).",
             {"model", "strategy", "deploy"}, {}, {false, false, false}};
    for (double b : bandwidths) {
      sw.header.push_back(general(b) + " Mbit/s");
      sw.numeric.push_back(true);
    }
    for (const SummaryCell& c : s.cells) {
      std::vector<std::string> row = {c.model, c.strategy, c.deploy};
      bool any = false;
      for (double b : bandwidths) {
        std::string v;
        for (const SummarySweepPoint& p : c.sweep)
          if (p.link == link.name() && p.bandwidth_mbps == b) v = format_ms(p.warm_median_ms);
        any = any || !v.empty();
        row.push_back(v);
      }
      if (any) sw.rows.push_back(row);
    }
    out.push_back(sw);
  }

  Table failed{"failed-table", "Cells and evaluations that did not finish", "",
               {"model", "strategy", "deploy", "status", "reason"}, {}, {}};
  for (const SummaryCell& c : s.cells)
    if (!c.done()) failed.rows.push_back({c.model, c.strategy, c.deploy, c.status, c.reason});
  for (const SummaryAccuracy& a : s.accuracy)
    if (!a.done())
      failed.rows.push_back({a.model, a.strategy, "(accuracy)", a.status, a.reason});
  out.push_back(failed);
  return out;
}

// What each mode means, for the banner.
std::string mode_description(const std::string& mode) {
  for (const TierMode& m : tier_modes())
    if (m.name == mode) return m.description;
  return mode + ": latency obtained in mode '" + mode + "'";  // a mode of another version
}

std::vector<std::string> all_modes(const StudySummary& s) {
  std::set<std::string> modes = {s.study.mode};
  for (const SummaryCell& c : s.cells) modes.insert(c.mode);
  return {modes.begin(), modes.end()};
}

// ---------------------------------------------------------------------------------------------
// Charts: full Vega 5 specs with inline data.

struct Chart {
  std::string id, heading, caption;
  json spec;
};

// Log scales need positive values; a chart with a zero or a negative value falls back to symlog.
std::string positive_scale(const std::vector<double>& values) {
  for (double v : values)
    if (!(v > 0)) return "symlog";
  return "log";
}

json names_of(const std::vector<std::string>& names) { return json(names); }

// Line dashes for strategies and point shapes for deployments, reused in order when there are more.
json dashes() { return json::parse(R"([[1,0],[6,3],[2,2],[8,3,2,3],[1,4],[12,4],[4,2,1,2]])"); }
json shapes() {
  return json::parse(R"(["circle","square","triangle-up","diamond","cross","triangle-down",
                          "triangle-right","wedge"])");
}

// One panel per deployment, each with its own linear y scale: the deployments of one model
// differ by up to three orders of magnitude, which would flatten every box on a shared axis.
json latency_box_spec(const StudySummary& s, const SummaryModel& m, const std::string& title) {
  json rows = json::array();
  size_t panels = 0;
  for (size_t di = 0; di < s.deployments.size(); ++di) {
    // The grid may be sparse (partitions run on splits only): each panel shows its strategies.
    size_t in_panel = 0;
    for (const SummaryStrategy& st : s.strategies) {
      const SummaryCell* c = find_cell(s, m.name, st.name, s.deployments[di]);
      in_panel += c != nullptr && c->done() ? 1 : 0;
    }
    const int64_t panel_width = static_cast<int64_t>(std::max<size_t>(90, in_panel * 34));
    for (const SummaryStrategy& st : s.strategies) {
      const SummaryCell* c = find_cell(s, m.name, st.name, s.deployments[di]);
      if (c == nullptr || !c->done()) continue;
      std::vector<double> x = c->warm_samples_ms;
      if (x.empty()) x = {c->warm_median_ms};
      std::sort(x.begin(), x.end());
      rows.push_back({{"strategy", st.name}, {"deploy", s.deployments[di]},
                      {"order", static_cast<int64_t>(di)}, {"panel_width", panel_width},
                      {"min", x.front()},
                      {"q1", stats::percentile(x, 0.25)}, {"median", c->warm_median_ms},
                      {"q3", stats::percentile(x, 0.75)}, {"max", x.back()}, {"p99", c->warm_p99_ms},
                      {"n", static_cast<int64_t>(c->warm_samples_ms.size())}, {"mode", c->mode}});
    }
    panels += in_panel > 0 ? 1 : 0;
  }
  json spec = json::parse(R"json({
    "padding": 5, "autosize": "pad",
    "title": {"anchor": "start", "fontSize": 13},
    "layout": {"padding": {"row": 20, "column": 25}, "bounds": "full", "align": "none"},
    "data": [{"name": "boxes"}],
    "scales": [{"name": "color", "type": "ordinal", "range": "category"}],
    "legends": [{"fill": "color", "title": "strategy"}],
    "marks": [{
      "type": "group",
      "from": {"facet": {"name": "panel", "data": "boxes", "groupby": "deploy",
                         "aggregate": {"fields": ["order", "panel_width"], "ops": ["min", "max"],
                                       "as": ["order", "panel_width"]}}},
      "sort": {"field": "datum.order"},
      "title": {"text": {"signal": "parent.deploy"}, "fontSize": 12, "frame": "group"},
      "signals": [{"name": "height", "value": 220}],
      "encode": {"enter": {"width": {"field": "panel_width"}, "height": {"value": 220}}},
      "scales": [
        {"name": "x", "type": "band", "domain": {"data": "panel", "field": "strategy"},
         "range": {"signal": "[0, parent.panel_width]"}, "paddingInner": 0.3, "paddingOuter": 0.2},
        {"name": "y", "type": "linear", "domain": {"data": "panel", "fields": ["min", "max"]},
         "range": "height", "nice": true, "zero": false}
      ],
      "axes": [
        {"orient": "bottom", "scale": "x", "labelAngle": -30, "labelAlign": "right"},
        {"orient": "left", "scale": "y", "title": "warm latency (ms)", "grid": true, "tickCount": 6}
      ],
      "marks": [
        {"type": "rule", "from": {"data": "panel"}, "encode": {"enter": {
          "x": {"scale": "x", "field": "strategy", "band": 0.5},
          "y": {"scale": "y", "field": "min"}, "y2": {"scale": "y", "field": "max"},
          "stroke": {"scale": "color", "field": "strategy"}, "strokeWidth": {"value": 1.5}}}},
        {"type": "rect", "from": {"data": "panel"}, "encode": {"enter": {
          "x": {"scale": "x", "field": "strategy"}, "width": {"scale": "x", "band": 1},
          "y": {"scale": "y", "field": "q3"}, "y2": {"scale": "y", "field": "q1"},
          "fill": {"scale": "color", "field": "strategy"}, "fillOpacity": {"value": 0.45},
          "stroke": {"scale": "color", "field": "strategy"},
          "tooltip": {"signal": "{'strategy': datum.strategy, 'deployment': datum.deploy, 'median (ms)': format(datum.median, '.4~r'), 'q1 - q3 (ms)': format(datum.q1, '.4~r') + ' - ' + format(datum.q3, '.4~r'), 'min - max (ms)': format(datum.min, '.4~r') + ' - ' + format(datum.max, '.4~r'), 'p99 (ms)': format(datum.p99, '.4~r'), 'samples': datum.n, 'mode': datum.mode}"}}}},
        {"type": "rect", "from": {"data": "panel"}, "encode": {"enter": {
          "x": {"scale": "x", "field": "strategy"}, "width": {"scale": "x", "band": 1},
          "yc": {"scale": "y", "field": "median"}, "height": {"value": 2},
          "fill": {"value": "#222"}}}}
      ]
    }]})json");
  spec["title"]["text"] = title;
  spec["layout"]["columns"] = std::max<size_t>(1, panels);
  spec["data"][0]["values"] = rows;
  // Colours by every strategy of the study, so that a strategy has one colour in every chart.
  std::vector<std::string> all;
  for (const SummaryStrategy& st : s.strategies) all.push_back(st.name);
  spec["scales"][0]["domain"] = names_of(all);
  return spec;
}

json pareto_spec(const StudySummary& s, const SummaryPareto& f, const SummaryModel* m,
                 const std::string& title) {
  json points = json::array();
  std::vector<double> latencies;
  std::vector<std::string> strategies;
  for (const SummaryStrategy& st : s.strategies) strategies.push_back(st.name);
  std::vector<SummaryParetoPoint> sorted = f.points;
  std::stable_sort(sorted.begin(), sorted.end(), [](const SummaryParetoPoint& a, const SummaryParetoPoint& b) {
    return a.latency_ms < b.latency_ms;
  });
  for (const SummaryParetoPoint& p : sorted) {
    points.push_back({{"strategy", p.strategy}, {"deploy", p.deploy},
                      {"latency_ms", p.latency_ms}, {"accuracy", p.accuracy},
                      {"on_front", p.on_front}});
    latencies.push_back(p.latency_ms);
  }
  json spec = json::parse(R"json({
    "padding": 5, "autosize": "pad", "width": 440, "height": 260,
    "title": {"anchor": "start", "fontSize": 13},
    "data": [
      {"name": "points"},
      {"name": "front", "source": "points", "transform": [{"type": "filter", "expr": "datum.on_front"}]}
    ],
    "scales": [
      {"name": "x", "domain": {"data": "points", "field": "latency_ms"}, "range": "width",
       "nice": false, "zero": false, "padding": 14},
      {"name": "y", "type": "linear", "domain": {"data": "points", "field": "accuracy"},
       "range": "height", "nice": true, "zero": false, "padding": 8},
      {"name": "color", "type": "ordinal", "range": "category"},
      {"name": "shape", "type": "ordinal"}
    ],
    "axes": [
      {"orient": "bottom", "scale": "x", "title": "warm median latency (ms, log scale)", "grid": true},
      {"orient": "left", "scale": "y", "grid": true}
    ],
    "legends": [{"fill": "color", "title": "strategy"}, {"shape": "shape", "title": "deployment"}],
    "marks": [
      {"type": "line", "from": {"data": "front"}, "encode": {"enter": {
        "x": {"scale": "x", "field": "latency_ms"}, "y": {"scale": "y", "field": "accuracy"},
        "stroke": {"value": "#555"}, "strokeDash": {"value": [5, 3]}, "strokeWidth": {"value": 1.5}}}},
      {"type": "symbol", "from": {"data": "points"}, "encode": {"enter": {
        "x": {"scale": "x", "field": "latency_ms"}, "y": {"scale": "y", "field": "accuracy"},
        "shape": {"scale": "shape", "field": "deploy"}, "size": {"value": 80},
        "fill": {"scale": "color", "field": "strategy"}, "fillOpacity": {"value": 0.85},
        "stroke": {"signal": "datum.on_front ? '#000' : null"}, "strokeWidth": {"value": 1.5},
        "tooltip": {"signal": "{'strategy': datum.strategy, 'deployment': datum.deploy, 'warm median (ms)': format(datum.latency_ms, '.4~r'), 'accuracy': format(datum.accuracy, '.4f'), 'on the front': datum.on_front}"}}}},
      {"type": "text", "from": {"data": "front"}, "encode": {"enter": {
        "x": {"scale": "x", "field": "latency_ms"}, "y": {"scale": "y", "field": "accuracy"},
        "dx": {"value": 7}, "dy": {"value": -7}, "fontSize": {"value": 10},
        "text": {"signal": "datum.strategy + ' on ' + datum.deploy"}}}}
    ]})json");
  spec["title"]["text"] = title;
  spec["data"][0]["values"] = points;
  spec["scales"][0]["type"] = positive_scale(latencies);
  spec["scales"][2]["domain"] = names_of(strategies);
  spec["scales"][3]["domain"] = names_of(s.deployments);
  spec["scales"][3]["range"] = shapes();
  spec["axes"][1]["title"] = m ? m->metric : "accuracy";
  if (spec["scales"][0]["type"] != "log")
    spec["axes"][0]["title"] = "warm median latency (ms, symlog scale)";
  return spec;
}

json speedup_spec(const StudySummary& s, const std::string& title) {
  json rows = json::array();
  std::vector<std::string> strategies;
  double log_max = std::log(1.1);
  for (const SummarySpeedup& sp : s.speedups)
    if (std::isfinite(sp.mean_ratio) && sp.mean_ratio > 0)
      log_max = std::max(log_max, std::fabs(std::log(sp.mean_ratio)));
  for (const SummaryStrategy& st : s.strategies)
    for (const SummarySpeedup& sp : s.speedups) {
      if (sp.strategy != st.name || !std::isfinite(sp.mean_ratio) || !(sp.mean_ratio > 0))
        continue;
      if (std::find(strategies.begin(), strategies.end(), st.name) == strategies.end())
        strategies.push_back(st.name);
      rows.push_back({{"strategy", sp.strategy}, {"deploy", sp.deploy},
                      {"ratio", sp.mean_ratio}, {"label", ratio_text(sp.mean_ratio)},
                      {"models", static_cast<int64_t>(sp.per_model.size())},
                      {"dark", std::fabs(std::log(sp.mean_ratio)) > 0.6 * log_max}});
    }
  json spec = json::parse(R"json({
    "padding": 5, "autosize": "pad",
    "title": {"anchor": "start", "fontSize": 13},
    "data": [{"name": "speedups"}],
    "scales": [
      {"name": "x", "type": "band", "range": "width", "padding": 0.04},
      {"name": "y", "type": "band", "range": "height", "padding": 0.04},
      {"name": "color", "type": "log", "range": {"scheme": "redblue"}, "clamp": true}
    ],
    "axes": [
      {"orient": "top", "scale": "x", "title": "deployment", "domain": false, "ticks": false},
      {"orient": "left", "scale": "y", "title": "strategy", "domain": false, "ticks": false}
    ],
    "legends": [{"fill": "color", "type": "gradient", "title": "speedup (x)", "format": ".2~f"}],
    "marks": [
      {"type": "rect", "from": {"data": "speedups"}, "encode": {"enter": {
        "x": {"scale": "x", "field": "deploy"}, "width": {"scale": "x", "band": 1},
        "y": {"scale": "y", "field": "strategy"}, "height": {"scale": "y", "band": 1},
        "fill": {"scale": "color", "field": "ratio"},
        "tooltip": {"signal": "{'strategy': datum.strategy, 'deployment': datum.deploy, 'mean speedup': datum.label, 'models': datum.models}"}}}},
      {"type": "text", "from": {"data": "speedups"}, "encode": {"enter": {
        "x": {"scale": "x", "field": "deploy", "band": 0.5},
        "y": {"scale": "y", "field": "strategy", "band": 0.5},
        "align": {"value": "center"}, "baseline": {"value": "middle"}, "fontSize": {"value": 12},
        "text": {"field": "label"},
        "fill": {"signal": "datum.dark ? 'white' : 'black'"}}}}
    ]})json");
  spec["title"]["text"] = title;
  spec["width"] = std::max<size_t>(200, s.deployments.size() * 90);
  spec["height"] = std::max<size_t>(60, strategies.size() * 30);
  spec["data"][0]["values"] = rows;
  spec["scales"][0]["domain"] = names_of(s.deployments);
  spec["scales"][1]["domain"] = names_of(strategies);
  spec["scales"][2]["domain"] = {std::exp(-log_max), std::exp(log_max)};
  return spec;
}

json sweep_spec(const StudySummary& s, const SummaryModel& m, const SummaryLink& link,
                const std::string& title) {
  json rows = json::array();
  std::vector<double> values;
  std::vector<std::string> strategies;
  for (const SummaryStrategy& st : s.strategies)
    for (const std::string& d : s.deployments) {
      const SummaryCell* c = find_cell(s, m.name, st.name, d);
      if (c == nullptr || !c->done()) continue;
      std::vector<SummarySweepPoint> pts;
      for (const SummarySweepPoint& p : c->sweep)
        if (p.link == link.name()) pts.push_back(p);
      if (pts.empty()) continue;
      std::sort(pts.begin(), pts.end(), [](const SummarySweepPoint& a, const SummarySweepPoint& b) {
        return a.bandwidth_mbps < b.bandwidth_mbps;
      });
      if (std::find(strategies.begin(), strategies.end(), st.name) == strategies.end())
        strategies.push_back(st.name);
      for (const SummarySweepPoint& p : pts) {
        rows.push_back({{"strategy", st.name}, {"deploy", d},
                        {"bandwidth_mbps", p.bandwidth_mbps},
                        {"warm_median_ms", p.warm_median_ms}});
        values.push_back(p.warm_median_ms);
      }
    }
  json spec = json::parse(R"json({
    "padding": 5, "autosize": "pad", "width": 440, "height": 260,
    "title": {"anchor": "start", "fontSize": 13},
    "data": [{"name": "sweep"}, {"name": "study"}],
    "scales": [
      {"name": "x", "type": "log", "domain": {"data": "sweep", "field": "bandwidth_mbps"},
       "range": "width", "nice": false, "zero": false},
      {"name": "y", "domain": {"data": "sweep", "field": "warm_median_ms"}, "range": "height",
       "nice": false, "zero": false, "padding": 10},
      {"name": "color", "type": "ordinal", "range": {"scheme": "dark2"}},
      {"name": "dash", "type": "ordinal"}
    ],
    "axes": [
      {"orient": "bottom", "scale": "x", "title": "bandwidth (Mbit/s, log scale)", "grid": true},
      {"orient": "left", "scale": "y", "title": "warm median (ms, log scale)", "grid": true}
    ],
    "legends": [
      {"stroke": "color", "title": "deployment", "symbolType": "stroke"},
      {"strokeDash": "dash", "title": "strategy", "symbolType": "stroke"}
    ],
    "marks": [
      {"type": "group", "from": {"facet": {"name": "series", "data": "sweep", "groupby": ["strategy", "deploy"]}},
       "marks": [{"type": "line", "from": {"data": "series"}, "encode": {"enter": {
         "x": {"scale": "x", "field": "bandwidth_mbps"}, "y": {"scale": "y", "field": "warm_median_ms"},
         "stroke": {"scale": "color", "field": "deploy"}, "strokeDash": {"scale": "dash", "field": "strategy"},
         "strokeWidth": {"value": 1.8}}}}]},
      {"type": "symbol", "from": {"data": "sweep"}, "encode": {"enter": {
        "x": {"scale": "x", "field": "bandwidth_mbps"}, "y": {"scale": "y", "field": "warm_median_ms"},
        "fill": {"scale": "color", "field": "deploy"}, "size": {"value": 18},
        "tooltip": {"signal": "{'strategy': datum.strategy, 'deployment': datum.deploy, 'bandwidth (Mbit/s)': datum.bandwidth_mbps, 'warm median (ms)': format(datum.warm_median_ms, '.4~r')}"}}}},
      {"type": "rule", "from": {"data": "study"}, "encode": {"enter": {
        "x": {"scale": "x", "field": "bandwidth_mbps"}, "y": {"value": 0}, "y2": {"signal": "height"},
        "stroke": {"value": "#999"}, "strokeDash": {"value": [2, 2]}}}},
      {"type": "text", "from": {"data": "study"}, "encode": {"enter": {
        "x": {"scale": "x", "field": "bandwidth_mbps"}, "y": {"value": 0},
        "dx": {"signal": "scale('x', datum.bandwidth_mbps) > width / 2 ? -3 : 3"},
        "align": {"signal": "scale('x', datum.bandwidth_mbps) > width / 2 ? 'right' : 'left'"},
        "baseline": {"value": "top"}, "fontSize": {"value": 10}, "fill": {"value": "#666"},
        "text": {"signal": "'topology: ' + datum.bandwidth_mbps + ' Mbit/s'"}}}}
    ]})json");
  spec["title"]["text"] = title;
  spec["data"][0]["values"] = rows;
  // The topology's own bandwidth, marked when the sweep's range includes it.
  double lo = std::numeric_limits<double>::infinity(), hi = 0;
  for (const json& r : rows) {
    lo = std::min(lo, r["bandwidth_mbps"].get<double>());
    hi = std::max(hi, r["bandwidth_mbps"].get<double>());
  }
  spec["data"][1]["values"] = json::array();
  if (link.bandwidth_mbps >= lo && link.bandwidth_mbps <= hi)
    spec["data"][1]["values"].push_back({{"bandwidth_mbps", link.bandwidth_mbps}});
  spec["scales"][1]["type"] = positive_scale(values);
  spec["scales"][2]["domain"] = names_of(s.deployments);
  spec["scales"][3]["domain"] = names_of(strategies);
  spec["scales"][3]["range"] = dashes();
  if (spec["scales"][1]["type"] != "log") spec["axes"][1]["title"] = "warm median (ms, symlog scale)";
  return spec;
}

std::vector<Chart> charts(const StudySummary& s) {
  std::vector<Chart> out;
  auto add = [&](const std::string& heading, const std::string& caption, json spec) {
    out.push_back({"chart-" + std::to_string(out.size() + 1), heading, caption, std::move(spec)});
  };
  for (const SummaryModel& m : s.models) {
    bool any = false;
    for (const SummaryCell& c : s.cells) any = any || (c.model == m.name && c.done());
    if (!any) continue;
    const std::string title = with_mark(m.name + ": warm latency per deployment and strategy",
                                        mode_mark(cell_modes(s, m.name, "", "")));
    add("latency", "Box: the middle half of the warm samples; bar: the median; whiskers: the "
        "fastest and slowest sample.",
        latency_box_spec(s, m, title));
  }
  for (const SummaryPareto& f : s.pareto) {
    if (f.points.empty()) continue;
    const SummaryModel* model = nullptr;
    for (const SummaryModel& m : s.models)
      if (m.name == f.model) model = &m;
    const std::string metric = model ? model->metric : "accuracy";
    const std::string title =
        with_mark(f.model + ": " + metric + " against warm median latency, Pareto front",
                  mode_mark(cell_modes(s, f.model, "", "")));
    add("pareto", "Outlined and labelled points form the Pareto front (dashed): no other "
        "configuration is both faster and more accurate. Accuracy is measured, not simulated.",
        pareto_spec(s, f, model, title));
  }
  bool any_speedup = false;
  for (const SummarySpeedup& sp : s.speedups) any_speedup = any_speedup || std::isfinite(sp.mean_ratio);
  if (any_speedup)
    add("speedup", "Blue: faster than identity; red: slower. Each cell is the mean over models "
        "of identity's warm median over the strategy's.",
        speedup_spec(s, with_mark("Speedup over identity, strategy against deployment (mean "
                                  "over models)",
                                  mode_mark(cell_modes(s, "", "", "")))));
  for (const SummaryLink& link : s.study.links)
    for (const SummaryModel& m : s.models) {
      bool any = false;
      for (const SummaryCell& c : s.cells)
        for (const SummarySweepPoint& p : c.sweep)
          any = any || (c.model == m.name && c.done() && p.link == link.name());
      if (!any) continue;
      const std::string title =
          with_mark(m.name + ": warm median against the bandwidth of " + link.name(),
                    mode_mark(cell_modes(s, m.name, "", "")));
      add("sweep", "Only " + link.name() + " changes; the other links keep the topology's "
          "bandwidth. Colour: deployment; dash: strategy.",
          sweep_spec(s, m, link, title));
    }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The HTML file.

// The Vega modules libjs-vega installs, in an order where each follows what it requires. The
// Debian build ships no single vega.js: the umbrella module's work (registering the transforms
// with the dataflow) is done by kVegaGlue below.
const char* const kVegaModules[] = {
    "vega-util",   "vega-time",      "vega-format",     "vega-loader",          "vega-dataflow",
    "vega-statistics", "vega-scale", "vega-canvas",     "vega-scenegraph",      "vega-expression",
    "vega-selection",  "vega-functions", "vega-event-selector", "vega-parser",   "vega-runtime",
    "vega-view",   "vega-transforms", "vega-view-transforms", "vega-encode"};

// A minimal CommonJS loader: each UMD module sees `module`, `exports` and a `require` that
// returns the modules loaded before it (vega-functions asks for "vega-selections").
const char* const kVegaLoader =
    "var edgeforgeVega = {};\n"
    "function edgeforgeRequire(name) {\n"
    "  if (name === 'vega-selections') name = 'vega-selection';\n"
    "  if (!(name in edgeforgeVega)) throw new Error('Vega module ' + name + ' is not loaded');\n"
    "  return edgeforgeVega[name];\n"
    "}\n";

const char* const kVegaGlue =
    "var vega = {};\n"
    "Object.keys(edgeforgeVega).forEach(function (name) {\n"
    "  Object.assign(vega, edgeforgeVega[name]);\n"
    "});\n"
    "Object.assign(edgeforgeVega['vega-dataflow'].transforms, edgeforgeVega['vega-transforms'],\n"
    "              edgeforgeVega['vega-view-transforms'], edgeforgeVega['vega-encode']);\n";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::string vega_script(const std::string& dir) {
  std::string out = kVegaLoader;
  for (const char* module : kVegaModules) {
    const std::string path = dir + "/" + module + ".min.js";
    std::string js = read_file(path);
    EF_CHECK(!js.empty(), "report: Vega's ", module, " is missing (", path,
             "): install the Debian package ", kVegaPackage, " (scripts/setup)");
    // The source map is a separate file: drop the reference so the page asks for nothing.
    const auto map = js.find("//# sourceMappingURL=");
    if (map != std::string::npos) js.erase(map, js.find('\n', map) - map);
    // Inside a <script> element "</script" would end it and "<!--" changes how it is parsed.
    EF_CHECK(js.find("<!--") == std::string::npos, "report: ", path,
             " contains '<!--' and cannot be inlined in a <script>");
    // Minified code has "</script" only inside strings, where "<\/script" means the same.
    for (size_t at = 0; (at = js.find("</", at)) != std::string::npos; at += 2)
      if (at + 8 <= js.size() && strncasecmp(js.c_str() + at + 2, "script", 6) == 0)
        js.replace(at, 2, "<\\/");
    out += "(function () {\nvar module = {exports: {}}, exports = module.exports, "
           "require = edgeforgeRequire;\n";
    out += js;
    out += "\n;edgeforgeVega['" + std::string(module) + "'] = module.exports;\n})();\n";
  }
  return out + kVegaGlue;
}

// JSON inside a <script> element: '<', '>' and '&' (only ever inside strings) as \u escapes, so
// that no text of the summary appears unescaped in the file.
std::string script_json(const json& value) {
  const std::string text = value.dump();
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '<') out += "\\u003c";
    else if (c == '>') out += "\\u003e";
    else if (c == '&') out += "\\u0026";
    else out += c;
  }
  return out;
}

const char* const kStyle = R"(
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 78em; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; }
.banner { background: #fff4d6; border: 1px solid #e0b84a; padding: 0.6em 1em; margin: 1em 0; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
caption { text-align: left; font-weight: 600; padding: 0.3em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0 2em; }
figcaption, .note { color: #555; font-size: 0.85em; }
.findings li { margin: 0.3em 0; }
nav a { margin-right: 1em; }
.environment { display: flex; flex-wrap: wrap; gap: 0 2em; align-items: flex-start; }
)";

// Installed before Vega loads, so that its errors are recorded too.
const char* const kErrorHook = R"(
window.edgeforgeNote = function (key, message) {
  var body = document.body, old = body.getAttribute('data-' + key) || '';
  body.setAttribute('data-' + key, old ? old + '\n' + message : String(message));
};
window.onerror = function (message, source, line) {
  window.edgeforgeNote('errors', 'script error: ' + message + ' (line ' + line + ')');
};
window.addEventListener('unhandledrejection', function (event) {
  window.edgeforgeNote('errors', 'unhandled rejection: ' + event.reason);
});
)";

// Renders every chart; a chart counts as rendered when its view ran without an error.
const char* const kRenderScript = R"(
(function () {
  var note = window.edgeforgeNote, body = document.body, rendered = 0;
  var charts = JSON.parse(document.getElementById('edgeforge-charts').textContent);
  if (typeof vega === 'undefined' || !vega.View) {
    note('errors', 'Vega did not load');
    body.dataset.chartsRendered = '0';
    return;
  }
  Promise.all(charts.map(function (chart) {
    var failed = false;
    var logger = vega.logger(vega.Warn, undefined, function (method, level, input) {
      var text = chart.id + ': ' + Array.prototype.join.call(input, ' ');
      if (method === 'error') { failed = true; note('errors', text); } else { note('warnings', text); }
    });
    try {
      var view = new vega.View(vega.parse(chart.spec), {
        renderer: 'svg', container: '#' + chart.id, hover: true, logger: logger});
      return view.runAsync().then(function () {
        if (!failed) rendered += 1;
      }, function (error) {
        note('errors', chart.id + ': ' + error);
      });
    } catch (error) {
      note('errors', chart.id + ': ' + error);
      return Promise.resolve();
    }
  })).then(function () {
    body.dataset.chartsRendered = String(rendered);
  });
})();
)";

}  // namespace

std::string render_report_html(const json& summary, const ReportOptions& options) {
  const StudySummary s = parse_study_summary(summary);
  const std::string vega = vega_script(options.vega_dir);
  const std::vector<Chart> chart_list = charts(s);
  const std::vector<Table> env = environment_tables(s);
  const std::vector<Table> tables = result_tables(s);

  std::ostringstream out;
  out << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      << "<meta name=\"generator\" content=\"edgeforge report (" << kStudySummaryFormat
      << ")\">\n<title>edgeforge study " << html_escape(s.study.name) << "</title>\n<style>"
      << kStyle << "</style>\n</head>\n"
      << "<body data-charts-expected=\"" << chart_list.size()
      << "\" data-errors=\"\" data-warnings=\"\">\n"
      << "<script>" << kErrorHook << "</script>\n";

  out << "<header>\n<h1>edgeforge study &#8220;" << html_escape(s.study.name)
      << "&#8221;</h1>\n<p>" << html_escape(s.study.created_utc)
      << (s.study.finished_utc.empty() ? "" : " to " + html_escape(s.study.finished_utc))
      << " &middot; " << s.models.size() << " models &times; " << s.strategies.size()
      << " strategies &times; " << s.deployments.size() << " deployments &middot; "
      << s.study.inputs << " inputs &times; " << s.study.runs << " runs"
      << (s.study.quick ? " &middot; quick study" : "") << "</p>\n";
  for (const std::string& mode : all_modes(s))
    out << "<p class=\"banner mode-" << html_escape(mode) << "\"><strong>Latency mode</strong> "
        << html_escape(mode_description(mode)) << ". Figures from this mode are marked ("
        << html_escape(mode) << ").</p>\n";
  out << "<div id=\"environment\" class=\"environment\">\n";
  for (const Table& t : env) out << "<div>\n" << table_html(t) << "</div>\n";
  out << "</div>\n<nav><a href=\"#findings\">Findings</a><a href=\"#charts\">Charts</a>"
      << "<a href=\"#tables\">Tables</a></nav>\n</header>\n";

  out << "<section id=\"findings\">\n<h2>Findings</h2>\n<ul class=\"findings\">\n";
  for (const std::string& f : study_findings(s)) out << "<li>" << html_escape(f) << "</li>\n";
  out << "</ul>\n</section>\n";

  out << "<section id=\"charts\">\n<h2>Charts</h2>\n";
  const std::map<std::string, std::string> headings = {
      {"latency", "Latency distributions per deployment"},
      {"pareto", "Accuracy against latency"},
      {"speedup", "Speedup of each strategy on each deployment"},
      {"sweep", "Bandwidth sweep"}};
  std::string last;
  for (const Chart& c : chart_list) {
    if (c.heading != last) out << "<h3>" << html_escape(headings.at(c.heading)) << "</h3>\n";
    last = c.heading;
    out << "<figure>\n<div id=\"" << c.id << "\" class=\"chart\"></div>\n<figcaption>"
        << html_escape(c.spec["title"]["text"].get<std::string>()) << ". "
        << html_escape(c.caption) << "</figcaption>\n</figure>\n";
  }
  if (chart_list.empty()) out << "<p>No chart: no cell finished.</p>\n";
  out << "</section>\n";

  out << "<section id=\"tables\">\n<h2>Tables</h2>\n";
  for (const Table& t : tables) out << table_html(t);
  out << "</section>\n";

  json specs = json::array();
  for (const Chart& c : chart_list) specs.push_back({{"id", c.id}, {"spec", c.spec}});
  out << "<script>\n" << vega << "</script>\n"
      << "<script type=\"application/json\" id=\"edgeforge-charts\">" << script_json(specs)
      << "</script>\n<script>" << kRenderScript << "</script>\n</body>\n</html>\n";
  return out.str();
}

std::string render_report_markdown(const json& summary) {
  const StudySummary s = parse_study_summary(summary);
  std::ostringstream out;
  out << "# edgeforge study \"" << markdown_escape(s.study.name) << "\"\n\n"
      << markdown_escape(s.study.created_utc)
      << (s.study.finished_utc.empty() ? "" : " to " + markdown_escape(s.study.finished_utc))
      << ": " << s.models.size() << " models x " << s.strategies.size() << " strategies x "
      << s.deployments.size() << " deployments, " << s.study.inputs << " inputs x "
      << s.study.runs << " runs" << (s.study.quick ? " (quick study)" : "") << ".\n\n";
  for (const std::string& mode : all_modes(s))
    out << "> **Latency mode** " << markdown_escape(mode_description(mode))
        << ". Figures from this mode are marked (" << markdown_escape(mode) << ").\n\n";
  for (const Table& t : environment_tables(s)) out << table_markdown(t);
  out << "## Findings\n\n";
  for (const std::string& f : study_findings(s)) out << "- " << markdown_escape(f) << "\n";
  out << "\n## Tables\n\n";
  for (const Table& t : result_tables(s)) out << table_markdown(t);
  return out.str();
}

// ---------------------------------------------------------------------------------------------
// CSV exports.

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

void write_report_exports(const json& summary, const std::string& dir) {
  const StudySummary s = parse_study_summary(summary);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  EF_CHECK(!ec && std::filesystem::is_directory(dir), "report: cannot create the folder ", dir,
           ec ? ": " + ec.message() : "");

  {
    std::ofstream out(dir + "/summary.json", std::ios::binary);
    out << summary.dump(2) << "\n";
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

  CsvFile sweep(dir, "sweep.csv");
  sweep.row({"model", "strategy", "deploy", "link", "bandwidth_mbps", "warm_median_ms"});
  for (const SummaryCell& c : s.cells)
    for (const SummarySweepPoint& p : c.sweep)
      sweep.row({c.model, c.strategy, c.deploy, p.link, csv_number(p.bandwidth_mbps),
                 csv_number(p.warm_median_ms)});
  sweep.close();
}

}  // namespace edgeforge
