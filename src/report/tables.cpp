// The report's tables (report_internal.h): built from the summary, rendered as HTML or Markdown.
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
#include "edgeforge/tier_modes.h"

namespace edgeforge::report_detail {

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

namespace {

std::string breakdown_text(const SummaryCell& c) {
  std::vector<std::string> parts;
  for (const auto& [part, ms] : c.breakdown_median_ms) parts.push_back(part + " " + format_ms(ms));
  return join(parts, "; ");
}

}  // namespace

std::vector<Table> environment_tables(const StudySummary& s) {
  const SummaryStudy& st = s.study;
  const StudyEnvironment& e = st.environment;
  Table env{"environment-table", "Environment", "", {"item", "value"}, {}, {}};
  env.rows = {{"study", st.name},
              {"created (UTC)", st.created_utc},
              {"finished (UTC)", st.finished_utc.empty() ? "n/a" : st.finished_utc},
              {"mode", st.mode},
              {"inputs x runs", detail::concat(st.inputs, " x ", st.runs,
                                               st.quick ? " (quick study)" : "")},
              {"edgeforge", e.version + (e.commit.empty() ? "" : " (commit " + e.commit + ")")},
              {"CPU", e.cpu},
              {"host cores", e.host_cores ? std::to_string(e.host_cores) : "n/a"},
              {"threads", e.threads ? std::to_string(e.threads) : "n/a"},
              {"seed", std::to_string(e.seed)}};
  for (const auto& [lib, version] : e.libraries) env.rows.push_back({lib, version});
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

std::string verdict_text(const std::string& verdict) {
  if (verdict == "faster") return "faster (practical)";
  if (verdict == "slower") return "slower (practical)";
  if (verdict == "same") return "no practical difference";
  return "unclear";
}

std::vector<Table> result_tables(const StudySummary& s) {
  std::vector<Table> out;
  const std::string all_mark = mode_mark(cell_modes(s, "", "", ""));

  Table cells{"latency-table", with_mark("Warm and cold latency per cell", all_mark),
              "Warm: runs after the first; the CI is the 95% interval of the median (resampling "
              "whole rounds where the cell was measured in rounds). Outliers: samples beyond 1.5 "
              "IQR of the quartiles. Cold: the model loaded inside the request. Breakdown: median "
              "ms per part of the request.",
              {"model", "strategy", "deploy", "mode", "warm n", "warm median (ms)", "p90 (ms)",
               "p99 (ms)", "median 95% CI (ms)", "outliers", "cold median (ms)", "cut",
               "breakdown (median ms)"},
              {}, {false, false, false, false, true, true, true, true, true, true, true, false, false}};
  for (const SummaryCell& c : s.cells) {
    if (!c.done()) continue;
    cells.rows.push_back({c.model, c.strategy, c.deploy, c.mode, std::to_string(c.warm_samples),
                          format_ms(c.warm_median_ms), format_ms(c.warm_p90_ms),
                          format_ms(c.warm_p99_ms),
                          format_ms(c.warm_ci_lo_ms) + " - " + format_ms(c.warm_ci_hi_ms),
                          c.warm_samples > 0
                              ? detail::concat(c.outliers, " (",
                                               fixed(100.0 * static_cast<double>(c.outliers) /
                                                         static_cast<double>(c.warm_samples), 1),
                                               "%)")
                              : "",
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

  if (!s.comparisons.empty()) {
    Table cmp{"comparisons-table",
              with_mark("Practical differences from identity", all_mark),
              "Speedup: identity's warm median over the strategy's, with paired block-bootstrap "
              "intervals over the measurement rounds. Margin: the larger of the noise floor "
              "(identity measured twice, A/A) and min_effect_pct. faster/slower: the 95% interval "
              "excludes 1, the Conover pair (same deployment) is significant after Holm, and the "
              "speedup is beyond the margin; same: the 90% interval lies within the margin "
              "(TOST); unclear: neither.",
              {"model", "strategy", "deploy", "identity on", "speedup", "95% CI", "noise floor",
               "margin", "p (Holm)", "verdict"},
              {},
              {false, false, false, false, true, true, true, true, true, false}};
    for (const SummaryComparison& c : s.comparisons)
      cmp.rows.push_back({c.model, c.strategy, c.deploy, c.baseline_deploy, ratio_text(c.speedup),
                          ratio_text(c.ci95_lo) + " - " + ratio_text(c.ci95_hi),
                          std::isfinite(c.noise_floor_pct) ? fixed(c.noise_floor_pct, 1) + "%" : "n/a",
                          fixed(c.margin_pct, 1) + "%", std::isfinite(c.p_holm) ? format_p(c.p_holm) : "",
                          verdict_text(c.verdict)});
    out.push_back(cmp);
  }
  if (!s.noise_floors.empty()) {
    Table noise{"noise-table", with_mark("Noise floor: identity against itself (A/A)", all_mark),
                "Identity measured twice in separate slots of the same rounds. A/A ratio: the "
                "second's warm median over the first's; floor: the 95th percentile of |ratio - 1| "
                "over a paired block bootstrap.",
                {"model", "deploy", "rounds", "A/A ratio", "floor"}, {},
                {false, false, true, true, true}};
    for (const SummaryNoiseFloor& f : s.noise_floors)
      noise.rows.push_back({f.model, f.deploy, std::to_string(f.rounds), fixed(f.aa_ratio, 4),
                            fixed(f.pct, 1) + "%"});
    out.push_back(noise);
  }
  {
    Table cond{"conditions-table", "Measurement conditions per group of cells measured side by side",
               "Load: 1-minute load average at the end; others: CPU time other processes used and "
               "steal: time the hypervisor gave away, both in % of all CPU time during the group; "
               "reference: the reference workload before and after the group (ms, for the "
               "record). Drift: identity's host time in the second half of the rounds against the "
               "first; a group that drifted more than 10% is measured again, at most three times "
               "in all; unstable: it still drifted.",
               {"model", "first cell", "cells", "load", "others busy", "steal", "CPU MHz",
                "reference (ms)", "drift", "attempts", "unstable"},
               {},
               {false, false, true, true, true, true, true, true, true, true, false}};
    std::set<std::string> seen;
    for (const SummaryCell& c : s.cells) {
      if (!c.done() || !c.conditions) continue;
      const MeasureConditions& m = *c.conditions;
      const std::string key = c.model + "|" + fixed(m.reference_before_ms, 6) + "|" + fixed(m.reference_after_ms, 6);
      if (!seen.insert(key).second) continue;
      auto pct = [](double x) { return std::isfinite(x) ? fixed(x, 1) + "%" : std::string("n/a"); };
      cond.rows.push_back({c.model, c.strategy + " on " + c.deploy, std::to_string(m.group_cells),
                           fixed(m.load_avg, 2), pct(m.others_busy_pct), pct(m.steal_pct),
                           fixed(m.cpu_mhz, 0),
                           format_ms(m.reference_before_ms) + " -> " + format_ms(m.reference_after_ms),
                           pct(m.drift_pct), std::to_string(m.attempts), m.unstable ? "yes" : "no"});
    }
    if (!cond.rows.empty()) out.push_back(cond);
  }

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

}  // namespace edgeforge::report_detail
