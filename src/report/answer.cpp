// The report's opening (edgeforge/report.h): the answer per model, then how each strategy
// compares with identity once the noise floor is taken into account.
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "edgeforge/report.h"
#include "report_internal.h"

namespace edgeforge {

using namespace report_detail;

namespace {

// Other processes' share of the CPU from which the answer warns that the host was busy.
constexpr double kBusyHostPct = 20;

std::string ms(double x) { return format_ms(x) + " ms"; }

std::string change_text(double pt) {
  if (!std::isfinite(pt)) return "";
  const double shown = std::round(pt * 100) / 100 + 0.0;  // never "-0.00"
  return printf_string("%+.2f pt", shown);
}

std::string interval(double lo, double hi) {
  return std::isfinite(lo) && std::isfinite(hi) ? ratio_text(lo) + "-" + ratio_text(hi) : "n/a";
}

// "edge", or for auto-partition "auto (mobile-edge)": where it chose to run.
std::string where(const StudySummary& s, const std::string& model, const std::string& strategy,
                  const std::string& deploy) {
  const SummaryCell* c = find_cell(s, model, strategy, deploy);
  return c != nullptr && !c->placement.empty() && c->placement != deploy ? deploy + " (" + c->placement + ")"
                                                                         : deploy;
}

// The sentence about the best cell against the runner-up.
std::string against_runner_up(const StudySummary& s, const SummaryAnswer& a) {
  if (a.runner_up_strategy.empty()) return "; no other cell meets the budget";
  std::string text = "; the runner-up, " + a.runner_up_strategy + " on " +
                     where(s, a.model, a.runner_up_strategy, a.runner_up_deploy) + ", takes " +
                     ms(a.runner_up_latency_ms);
  if (!a.versus_runner_up) return text;
  const SummaryComparison& c = *a.versus_runner_up;
  const std::string ci = "95% CI " + interval(c.ci95_lo, c.ci95_hi) + ", margin " +
                         fixed(c.margin_pct, 1) + "%";
  if (c.verdict == "faster")
    return text + ": " + ratio_text(c.speedup) + " slower, a practical difference (" + ci + ")";
  if (c.verdict == "same")
    return text + ": no practical difference (90% CI " + interval(c.ci90_lo, c.ci90_hi) +
           " within the " + fixed(c.margin_pct, 1) + "% margin), so either will do";
  return text + ": " + ratio_text(c.speedup) + " slower, but not clearly beyond the noise (" + ci + ")";
}

}  // namespace

StudyAnswer study_answer(const StudySummary& s) {
  StudyAnswer out;
  const SummaryStudy& st = s.study;
  out.budget = st.latency_only ? "latency only (untrained weights): the fastest cell"
                               : "accuracy drop at most " + general(st.max_accuracy_drop_pt) + " pt";
  out.budget += st.max_latency_ms > 0 ? ", warm median at most " + ms(st.max_latency_ms)
                                      : ", no latency budget";
  out.budget += "; differences count as practical beyond the larger of the measured noise floor "
                "and " + general(st.min_effect_pct) + "%";
  for (const SummaryAnswer& a : s.answers) {
    const std::string mark = with_mark("", mode_mark(cell_modes(s, a.model, "", "")));
    if (!a.met) {
      std::string text = a.model + ": no cell meets the budget";
      for (const SummaryPareto& f : s.pareto) {
        if (f.model != a.model) continue;
        std::vector<std::string> front;
        for (const SummaryParetoPoint& p : f.points)
          if (p.on_front) front.push_back(p.strategy + " on " + p.deploy + " (" + ms(p.latency_ms) + ", " + fixed(p.accuracy, 4) + ")");
        if (!front.empty()) text += "; the Pareto front is " + words(front);
      }
      out.models.push_back(text + mark + ".");
      continue;
    }
    std::string text = a.model + ": " + a.strategy + " on " + where(s, a.model, a.strategy, a.deploy) +
                       ", " + ms(a.latency_ms) + " warm median";
    if (std::isfinite(a.accuracy_change_pt)) text += ", accuracy " + change_text(a.accuracy_change_pt);
    text += against_runner_up(s, a) +
            (st.latency_only ? " (the fastest of " + std::to_string(a.within_budget) + " cells)"
                             : " (" + std::to_string(a.within_budget) + " of the model's cells meet the budget)");
    out.models.push_back(text + mark + ".");
  }
  // Per strategy: how its cells compare with identity.
  for (const SummaryStrategy& strategy : s.strategies) {
    std::map<std::string, std::vector<std::string>> by;
    const SummaryComparison* largest = nullptr;
    for (const SummaryComparison& c : s.comparisons) {
      if (c.strategy != strategy.name) continue;
      by[c.verdict].push_back(c.model + " on " + c.deploy);
      if (c.verdict == "faster" && (!largest || c.speedup > largest->speedup)) largest = &c;
    }
    size_t total = 0;
    for (const auto& [v, cells] : by) total += cells.size();
    if (total == 0) continue;
    std::vector<std::string> parts;
    auto count = [&](const char* verdict, const std::string& label) {
      auto it = by.find(verdict);
      if (it != by.end()) parts.push_back(label + " on " + std::to_string(it->second.size()));
    };
    count("faster", "practically faster");
    count("same", "no practical difference");
    count("slower", "practically slower");
    count("unclear", "unclear");
    std::string text = strategy.name + " against identity, over " + std::to_string(total) +
                       " model/deployment cells: " + words(parts);
    if (largest != nullptr)
      text += "; the largest practical speedup " + ratio_text(largest->speedup) + " (" + largest->model +
              " on " + largest->deploy + ", 95% CI " + interval(largest->ci95_lo, largest->ci95_hi) + ")";
    auto slower = by.find("slower");
    if (slower != by.end() && slower->second.size() <= 3) text += "; slower on " + words(slower->second);
    out.compared.push_back(text + with_mark("", mode_mark(cell_modes(s, "", strategy.name, ""))) + ".");
  }
  // A busy host is a slower device: compute-bound cells lose against link-bound ones, which
  // interleaving cannot undo. Say so when other processes took a large share of the CPU.
  double busiest = 0;
  size_t unstable = 0, measured = 0;
  for (const SummaryCell& c : s.cells) {
    if (!c.done() || !c.conditions) continue;
    ++measured;
    unstable += c.conditions->unstable ? 1 : 0;
    if (std::isfinite(c.conditions->others_busy_pct)) busiest = std::max(busiest, c.conditions->others_busy_pct);
  }
  if (busiest >= kBusyHostPct)
    out.compared.push_back("Caution: other processes used up to " + fixed(busiest, 0) +
                           "% of the CPU while cells were measured (conditions table). Interleaving "
                           "keeps that from favouring one strategy by chance, but a busy host is a "
                           "slower device: compute-bound cells lose against link-bound ones. Measure "
                           "on an idle machine to describe the tiers as configured.");
  if (unstable > 0)
    out.compared.push_back(std::to_string(unstable) + " of " + std::to_string(measured) +
                           " cells were measured while the machine's speed kept changing (flagged "
                           "unstable in the conditions table).");
  if (!s.noise_floors.empty()) {
    double lo = 1e300, hi = 0;
    for (const SummaryNoiseFloor& f : s.noise_floors) lo = std::min(lo, f.pct), hi = std::max(hi, f.pct);
    out.compared.push_back("Noise floor (identity measured twice in the same rounds, A/A): " +
                           fixed(lo, 1) + "-" + fixed(hi, 1) + "% over " +
                           std::to_string(s.noise_floors.size()) +
                           " model/deployment pairs; a difference below the margin is not called one.");
  }
  return out;
}

}  // namespace edgeforge
