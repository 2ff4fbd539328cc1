// The study's findings (edgeforge/report.h): plain sentences, each with the numbers behind it,
// derived only from the summary.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <set>

#include "edgeforge/error.h"
#include "edgeforge/report.h"
#include "report_internal.h"

namespace edgeforge {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Below this ratio between the slowest and the fastest point of a sweep, a deployment's latency
// is said not to depend on the link.
constexpr double kSweepFlatRatio = 1.05;

using report_detail::general;
using report_detail::words;
std::string number(double x, int decimals) { return report_detail::fixed(x, decimals); }
std::string ratio(double r) { return report_detail::ratio_text(r); }
std::string ms(double x) { return format_ms(x) + " ms"; }
std::string threshold_text(double t) {  // 0.0167, 0.01, 0.00714
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", t);
  return buf;
}

std::string plural(int64_t n, const std::string& one, const std::string& many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// " (simulated)" for the done cells that match (empty strings match anything).
std::string mark(const StudySummary& s, const std::string& model, const std::string& strategy,
                 const std::string& deploy) {
  std::vector<std::string> modes;
  for (const SummaryCell& c : s.cells)
    if (c.done() && (model.empty() || c.model == model) &&
        (strategy.empty() || c.strategy == strategy) && (deploy.empty() || c.deploy == deploy))
      modes.push_back(c.mode);
  const std::string m = mode_mark(modes);
  return m.empty() ? "" : " " + m;
}

const SummaryCell* done_cell(const StudySummary& s, const std::string& model,
                             const std::string& strategy, const std::string& deploy) {
  for (const SummaryCell& c : s.cells)
    if (c.model == model && c.strategy == strategy && c.deploy == deploy && c.done()) return &c;
  return nullptr;
}

void fastest_per_model(const StudySummary& s, std::vector<std::string>& out) {
  for (const SummaryModel& m : s.models) {
    const SummaryCell* best = nullptr;
    for (const SummaryCell& c : s.cells)
      if (c.model == m.name && c.done() && (!best || c.warm_median_ms < best->warm_median_ms))
        best = &c;
    if (best == nullptr) continue;
    std::string text = "For " + m.name + " the fastest deployment is " + best->deploy + ": " +
                       ms(best->warm_median_ms) + " warm median with " + best->strategy +
                       " (95% CI " + format_ms(best->warm_ci_lo_ms) + "-" +
                       ms(best->warm_ci_hi_ms) + ")";
    std::vector<std::string> identity;
    for (const std::string& d : s.deployments)
      if (const SummaryCell* c = done_cell(s, m.name, "identity", d))
        identity.push_back(ms(c->warm_median_ms) + " on " + d);
    if (!identity.empty()) text += "; unmodified (identity) it takes " + words(identity);
    out.push_back(text + mark(s, m.name, "", "") + ".");
  }
}

void speedup_per_deployment(const StudySummary& s, std::vector<std::string>& out) {
  for (const std::string& d : s.deployments) {
    const SummarySpeedup* best = nullptr;
    for (const SummarySpeedup& sp : s.speedups)
      if (sp.deploy == d && sp.strategy != "identity" && std::isfinite(sp.mean_ratio) &&
          (!best || sp.mean_ratio > best->mean_ratio))
        best = &sp;
    if (best == nullptr) continue;
    std::vector<std::string> per_model;
    for (const SummaryModel& m : s.models) {
      auto it = best->per_model.find(m.name);
      if (it != best->per_model.end()) per_model.push_back(m.name + " " + ratio(it->second));
    }
    const std::string over = "mean over " + plural(best->per_model.size(), "model", "models") +
                             (per_model.empty() ? "" : " (" + words(per_model) + ")");
    // The ratio is made of the strategy's cells on this deployment and identity's on the baseline.
    const std::string& base = best->baseline_deploy;
    std::vector<std::string> modes;
    for (const SummaryCell& c : s.cells)
      if (c.done() && ((c.deploy == d && c.strategy == best->strategy) ||
                       (c.deploy == base && c.strategy == "identity")))
        modes.push_back(c.mode);
    const std::string mode = mode_mark(modes).empty() ? "" : " " + mode_mark(modes);
    const std::string against = base == d ? "identity on " + d : "identity on " + base;
    if (best->mean_ratio > 1)
      out.push_back(best->strategy + " is " + ratio(best->mean_ratio) + " faster" +
                    (base == d ? "" : " on " + d) + " than " + against + ", " + over +
                    ", the largest mean speedup " + (base == d ? "there" : "on " + d) + mode +
                    ".");
    else
      out.push_back("No strategy on " + d + " is faster than " + against + ": the best, " +
                    best->strategy + ", runs at " + ratio(best->mean_ratio) + ", " + over + mode +
                    ".");
  }
}

// For one link and one model: which deployment wins at each swept bandwidth.
void bandwidth_sensitivity(const StudySummary& s, const SummaryLink& link, const SummaryModel& m,
                           std::vector<std::string>& out) {
  std::set<double> bandwidths;
  for (const SummaryCell& c : s.cells)
    if (c.model == m.name && c.done())
      for (const SummarySweepPoint& p : c.sweep)
        if (p.link == link.name()) bandwidths.insert(p.bandwidth_mbps);
  if (bandwidths.size() < 2) return;

  struct Best {
    double ms = kInf;
    std::string strategy;
  };
  // Per deployment and bandwidth, its fastest strategy. A cell without points for this link
  // does not depend on it: its warm median holds at every bandwidth.
  std::map<std::string, std::map<double, Best>> best;
  for (const std::string& d : s.deployments)
    for (const SummaryStrategy& st : s.strategies) {
      const SummaryCell* c = done_cell(s, m.name, st.name, d);
      if (c == nullptr) continue;
      bool on_link = false;
      for (const SummarySweepPoint& p : c->sweep) on_link = on_link || p.link == link.name();
      for (double b : bandwidths) {
        double v = on_link ? kInf : c->warm_median_ms;
        for (const SummarySweepPoint& p : c->sweep)
          if (p.link == link.name() && p.bandwidth_mbps == b) v = p.warm_median_ms;
        if (!std::isfinite(v)) continue;
        auto [it, fresh] = best[d].try_emplace(b, Best{v, st.name});
        if (!fresh && v < it->second.ms) it->second = {v, st.name};
      }
    }
  // Compare only deployments known at every swept bandwidth.
  for (auto it = best.begin(); it != best.end();)
    it = it->second.size() == bandwidths.size() ? std::next(it) : best.erase(it);
  if (best.size() < 2) return;
  // The deployment the link matters most to: the largest ratio of its slowest to fastest point.
  std::string sensitive;
  double largest = 0;
  for (const auto& [d, points] : best) {
    double lo = kInf, hi = 0;
    for (const auto& [b, v] : points) lo = std::min(lo, v.ms), hi = std::max(hi, v.ms);
    if (lo > 0 && std::isfinite(lo) && hi / lo > largest) largest = hi / lo, sensitive = d;
  }
  if (sensitive.empty()) return;
  const double b0 = *bandwidths.begin(), b_max = *bandwidths.rbegin();
  const std::string range = general(b0) + " and " + general(b_max) + " Mbit/s";
  const std::string mode = mark(s, m.name, "", "");
  if (largest < kSweepFlatRatio) {
    out.push_back(m.name + "'s latency hardly depends on the bandwidth of " + link.name() +
                  ": no deployment changes by more than " +
                  number((kSweepFlatRatio - 1) * 100, 0) + "% between " + range + mode + ".");
    return;
  }
  // The fastest deployment at `b`, leaving out `except` (there are two or more).
  auto fastest = [&](double b, const std::string& except) {
    std::string who;
    double v = kInf;
    for (const auto& [d, points] : best)
      if (d != except && (who.empty() || points.at(b).ms < v)) v = points.at(b).ms, who = d;
    return who;
  };
  auto point = [&](const std::string& d, double b) { return best.at(d).at(b); };
  auto with = [&](const std::string& d, double b) {
    return ms(point(d, b).ms) + " on " + d + " (" + point(d, b).strategy + ")";
  };

  const std::string first = fastest(b0, "");
  std::string text = "At " + general(b0) + " Mbit/s on " + link.name() + ", ";
  if (first == sensitive) {
    bool always = true;
    for (double b : bandwidths) always = always && fastest(b, "") == sensitive;
    text += sensitive + " is already the fastest deployment for " + m.name + " (" +
            ms(point(sensitive, b0).ms) + ", " + point(sensitive, b0).strategy + ", against " +
            with(fastest(b0, sensitive), b0) + ")" +
            (always ? "; it stays fastest up to " + general(b_max) + " Mbit/s"
                    : "; it is not the fastest at every bandwidth of the sweep");
  } else {
    text += sensitive + " takes " + ms(point(sensitive, b0).ms) + " for " + m.name + " (" +
            point(sensitive, b0).strategy + ") against " + with(first, b0) + "; ";
    // The lowest bandwidth from which the sensitive deployment wins at every swept one.
    double from = kInf;
    for (auto it = bandwidths.rbegin(); it != bandwidths.rend(); ++it) {
      if (fastest(*it, "") != sensitive) break;
      from = *it;
    }
    if (std::isfinite(from))
      text += sensitive + " becomes fastest from " + general(from) + " Mbit/s (" +
              ms(point(sensitive, from).ms) + " against " + with(fastest(from, sensitive), from) +
              ")";
    else
      text += sensitive + " never becomes fastest within the sweep (at " + general(b_max) +
              " Mbit/s it takes " + ms(point(sensitive, b_max).ms) + " against " +
              with(fastest(b_max, sensitive), b_max) + ")";
  }
  out.push_back(text + mode + ".");
}

void accuracy_changes(const StudySummary& s, std::vector<std::string>& out) {
  for (const SummaryModel& m : s.models)
    for (const SummaryStrategy& st : s.strategies) {
      if (st.name == "identity") continue;
      for (const SummaryAccuracy& a : s.accuracy) {
        if (a.model != m.name || a.strategy != st.name || !a.done()) continue;
        if (!std::isfinite(a.drop_pt) || !std::isfinite(a.baseline)) {
          out.push_back(st.name + "'s " + a.metric + " for " + m.name + " is " +
                        number(a.value, 4) + " (" + std::to_string(a.samples) +
                        " samples; identity has no value to compare with).");
          continue;
        }
        // To the two decimals shown; + 0.0 turns -0 into 0.
        const double change = std::round(-a.drop_pt * 100) / 100 + 0.0;
        char pt[32];
        std::snprintf(pt, sizeof pt, "%+.2f pt", change);
        std::string text = st.name + (change == 0 ? " leaves " + m.name + "'s " + a.metric +
                                                        " unchanged"
                                                  : " changes " + m.name + "'s " + a.metric +
                                                        " by " + pt);
        text += " (" + number(a.baseline, 4) + " to " + number(a.value, 4) + "; ";
        const SummaryMcNemar* test = nullptr;
        for (const SummaryMcNemar& t : s.mcnemar)
          if (t.model == m.name && t.strategy == st.name) test = &t;
        if (test != nullptr)
          text += std::to_string(test->b) + " vs " + std::to_string(test->c) +
                  " discordant samples, McNemar p = " + format_p(test->p) + ", " +
                  (test->significant ? "significant" : "not significant") +
                  (std::isfinite(test->threshold)
                       ? " at the Bonferroni threshold " + threshold_text(test->threshold)
                       : std::string()) +
                  ").";
        else
          text += std::to_string(a.samples) + " samples, no McNemar test in the summary).";
        out.push_back(text);
      }
    }
}

void pareto_fronts(const StudySummary& s, std::vector<std::string>& out) {
  for (const SummaryPareto& f : s.pareto) {
    std::vector<SummaryParetoPoint> front;
    for (const SummaryParetoPoint& p : f.points)
      if (p.on_front) front.push_back(p);
    if (front.empty()) continue;
    std::stable_sort(front.begin(), front.end(), [](const SummaryParetoPoint& a, const SummaryParetoPoint& b) {
      return a.latency_ms < b.latency_ms;
    });
    std::string metric = "accuracy";
    for (const SummaryModel& m : s.models)
      if (m.name == f.model) metric = m.metric;
    std::vector<std::string> points;
    for (const SummaryParetoPoint& p : front)
      points.push_back(p.strategy + " on " + p.deploy + " (" + ms(p.latency_ms) + ", " +
                       number(p.accuracy, 4) + ")");
    out.push_back(f.model + "'s Pareto front of " + metric + " against warm median latency has " +
                  plural(front.size(), "point", "points") + " of " +
                  std::to_string(f.points.size()) + ": " + words(points) +
                  mark(s, f.model, "", "") + ".");
  }
}

void wilcoxon_tests(const StudySummary& s, std::vector<std::string>& out) {
  for (const SummaryWilcoxon& w : s.wilcoxon) {
    const bool latency = w.measure == "latency";
    const std::string unit = latency ? "model/deployment pair" : "model";
    if (w.n == 0 && w.pairs > 0) {  // every difference zero: nothing to rank
      out.push_back(w.strategy + "'s " + (latency ? "warm medians equal" : "accuracy equals") +
                    " identity's on all " + plural(static_cast<size_t>(w.pairs), unit, unit + "s") +
                    ", so the Wilcoxon signed-rank test has nothing to test" +
                    (latency ? mark(s, "", w.strategy, "") : "") + ".");
      continue;
    }
    const std::string left_out =
        w.pairs > w.n ? " (" + std::to_string(w.pairs - w.n) + " with no change left out)" : "";
    std::string text = "Wilcoxon signed-rank test of " + w.strategy +
                       (latency ? "'s warm medians against identity's over " +
                                      plural(w.n, "model/deployment pair", "model/deployment pairs")
                                : "'s accuracy against identity's over " +
                                      plural(w.n, "model", "models")) +
                       left_out + ": W = " + number(w.statistic, 1) + ", p = " + format_p(w.p) + ", " +
                       (w.significant ? "significant" : "not significant") +
                       " at the Bonferroni threshold " + threshold_text(w.threshold);
    if (w.threshold > 0 && std::isfinite(w.alpha / w.threshold))
      text += " (alpha " + general(w.alpha) + " over " +
              plural(static_cast<size_t>(std::lround(w.alpha / w.threshold)), "test", "tests") +
              ")";
    out.push_back(text + (latency ? mark(s, "", w.strategy, "") : "") + ".");
  }
}

void kruskal_counts(const StudySummary& s, std::vector<std::string>& out) {
  if (s.latency_tests.empty()) return;
  size_t groups_differ = 0, pairs = 0, pairs_differ = 0, large = 0;
  for (const SummaryLatencyTest& t : s.latency_tests) {
    if (t.p < kReportAlpha) ++groups_differ;
    for (const SummaryPair& p : t.pairs) {
      ++pairs;
      if (p.p_holm < kReportAlpha) {
        ++pairs_differ;
        if (p.magnitude == "large") ++large;
      }
    }
  }
  std::string practical;
  if (!s.comparisons.empty()) {
    size_t beyond = 0, same = 0;
    for (const SummaryComparison& c : s.comparisons) {
      beyond += c.verdict == "faster" || c.verdict == "slower";
      same += c.verdict == "same";
    }
    practical = "; against identity, " + std::to_string(beyond) + " of " +
                plural(s.comparisons.size(), "cell", "cells") +
                " differ by more than the noise floor and the minimum effect, and " +
                std::to_string(same) + " show no practical difference (Answer, and the practical "
                "differences table)";
  }
  out.push_back("Kruskal-Wallis finds that the strategies' warm latencies differ (p < " +
                general(kReportAlpha) + ") in " + std::to_string(groups_differ) + " of " +
                plural(s.latency_tests.size(), "model/deployment group", "model/deployment groups") +
                "; of " + plural(pairs, "Conover pair", "Conover pairs") + ", " +
                std::to_string(pairs_differ) + " differ after Holm adjustment, " +
                std::to_string(large) + " of them with a large Cliff's delta" + practical +
                mark(s, "", "", "") + ".");
}

// Latency cells measured on more than one machine (a planned study's jobs, docs/scale-out.md).
// A job measures every cell of one model that starts on one tier, so comparisons within a tier
// stay on one machine; the comparisons across tiers (a model's fastest deployment, its Pareto
// front) may not, and comparisons whose two cells ran apart are counted.
void machines(const StudySummary& s, std::vector<std::string>& out) {
  std::map<std::string, std::string> seen;  // host -> cpu
  std::map<std::string, std::map<std::string, std::set<std::string>>> placed;  // model -> tier -> hosts
  for (const SummaryCell& c : s.cells)
    if (c.done() && !c.host.empty()) {
      seen[c.host] = c.cpu;
      const std::string& where = c.placement.empty() ? c.deploy : c.placement;
      placed[c.model][where.substr(0, where.find('-'))].insert(c.host);
    }
  if (seen.size() < 2) return;
  std::string list;
  for (const auto& [host, cpu] : seen) list += (list.empty() ? "" : "; ") + host + " (" + cpu + ")";
  std::string apart;
  for (const auto& [model, tiers] : placed) {
    std::set<std::string> hosts;
    std::string where;
    for (const auto& [tier, h] : tiers) {
      hosts.insert(h.begin(), h.end());
      std::string names;
      for (const std::string& x : h) names += (names.empty() ? "" : "+") + x;
      where += (where.empty() ? "" : ", ") + tier + " on " + names;
    }
    if (hosts.size() > 1) apart += (apart.empty() ? "" : "; ") + model + " (" + where + ")";
  }
  size_t crossing = 0;
  for (const SummaryComparison& c : s.comparisons) crossing += c.cross_machine;
  std::string text = "The latency cells were measured on " + std::to_string(seen.size()) + " machines (" + list + ").";
  if (!apart.empty())
    text += " The tiers of " + apart + " ran on different machines, so each such model's fastest "
            "deployment and Pareto front compare cells across machines: their differences include "
            "the machines', beyond any noise floor measured";
  text += apart.empty() ? " " : "; ";
  text += std::to_string(crossing) + " of " + plural(s.comparisons.size(), "comparison", "comparisons") +
          " against identity set cells from different machines side by side.";
  out.push_back(text);
}

void failures(const StudySummary& s, std::vector<std::string>& out) {
  struct Failure {
    std::string model, strategy, status, reason;
    std::vector<std::string> deploys;
    bool accuracy = false;
  };
  std::vector<Failure> list;
  auto entry = [&](const std::string& model, const std::string& strategy,
                   const std::string& status, const std::string& reason) -> Failure& {
    for (Failure& f : list)
      if (f.model == model && f.strategy == strategy && f.status == status && f.reason == reason)
        return f;
    list.push_back({model, strategy, status, reason, {}, false});
    return list.back();
  };
  for (const SummaryCell& c : s.cells)
    if (!c.done()) entry(c.model, c.strategy, c.status, c.reason).deploys.push_back(c.deploy);
  for (const SummaryAccuracy& a : s.accuracy)
    if (!a.done()) entry(a.model, a.strategy, a.status, a.reason).accuracy = true;
  for (const Failure& f : list) {
    std::vector<std::string> what;
    if (!f.deploys.empty()) what.push_back("latency on " + words(f.deploys));
    if (f.accuracy) what.push_back("accuracy");
    const std::string verb = f.status == "failed" ? "failed" : "was " + f.status;
    out.push_back(f.strategy + " " + verb + " for " + f.model + " (" + words(what) + "): " +
                  (f.reason.empty() ? "no reason given" : f.reason));
  }
}

}  // namespace

std::vector<std::string> study_findings(const StudySummary& s) {
  std::vector<std::string> out;
  fastest_per_model(s, out);
  speedup_per_deployment(s, out);
  for (const SummaryLink& link : s.study.links)
    for (const SummaryModel& m : s.models) bandwidth_sensitivity(s, link, m, out);
  accuracy_changes(s, out);
  pareto_fronts(s, out);
  wilcoxon_tests(s, out);
  kruskal_counts(s, out);
  machines(s, out);
  failures(s, out);
  return out;
}

}  // namespace edgeforge
