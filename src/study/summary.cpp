// The summary of a study folder, with its statistics (edgeforge/study.h), and the
// recommendation for a budget.
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <tuple>
#include <set>

#include "edgeforge/error.h"
#include "edgeforge/stats.h"
#include "edgeforge/strategy.h"
#include "edgeforge/study.h"
#include "edgeforge/zoo.h"
#include "store.h"

namespace edgeforge {
namespace {

using study::CellRecord;

constexpr double kAlpha = 0.05;

std::string student_of(const std::string& model) {
  for (const ZooModelSpec& s : zoo_models())
    if (s.teacher == model) return s.name;
  return "";
}

// The baseline deployment a strategy's speedup is measured against: the same deployment, or for
// a split (a partition) the tier where the request starts, where the model would otherwise run.
std::string baseline_deploy(const std::string& deploy, const std::vector<SummaryTier>& tiers) {
  if (deploy.find('-') == std::string::npos && deploy != kAutoDeployment) return deploy;
  return tiers.at(0).name;
}

// The verdict of a comparison (edgeforge/study_schema.h, SummaryComparison).
std::string practical_verdict(const SummaryComparison& c) {
  const double up = 1.0 + c.margin_pct / 100.0, down = 1.0 / up;
  const bool test = std::isnan(c.p_holm) || c.p_holm < kAlpha;
  if (c.ci95_lo > 1.0 && c.speedup > up && test) return "faster";
  if (c.ci95_hi < 1.0 && c.speedup < down && test) return "slower";
  if (c.ci90_lo >= down && c.ci90_hi <= up) return "same";
  return "unclear";
}

// Bonferroni over a family of tests: each is significant when p < alpha / the family's size.
template <typename Test>
void bonferroni(std::vector<Test>& tests) {
  for (Test& t : tests) {
    t.alpha = kAlpha;
    t.threshold = kAlpha / static_cast<double>(tests.size());
    t.significant = t.p < t.threshold;
  }
}

SummaryStudy study_of(const study::Store& store, const nlohmann::json& settings,
                      const std::vector<CellRecord>& cells) {
  SummaryStudy st;
  st.name = store.meta("study");
  st.created_utc = store.meta("created_utc");
  for (const CellRecord& c : cells) {
    st.finished_utc = std::max(st.finished_utc, c.finished_utc);
    if (c.kind == "latency" && c.status == "done") st.environment = c.environment;
  }
  st.mode = settings.value("mode", "simulated");
  st.quick = settings.value("quick", false);
  st.inputs = settings.value("inputs", int64_t{0});
  st.runs = settings.value("runs", int64_t{0});
  st.latency_only = settings.value("latency_only", false);
  st.note = settings.value("note", "");
  st.min_effect_pct = settings.value("min_effect_pct", 5.0);
  st.max_accuracy_drop_pt = settings.value("max_accuracy_drop_pt", 1.0);
  st.max_latency_ms = settings.value("max_latency_ms", 0.0);
  const nlohmann::json& topo = settings.at("topology");
  st.topology = topo.at("name").get<std::string>();
  for (const nlohmann::json& t : topo.at("tiers"))
    st.tiers.push_back({t.at("name").get<std::string>(), t.at("cores").get<int64_t>(),
                        t.at("memory_gb").get<double>(), t.at("speed").get<double>(),
                        t.value("reference_ms", 0.0)});
  for (const nlohmann::json& l : topo.at("links"))
    st.links.push_back({l.at("from").get<std::string>(), l.at("to").get<std::string>(),
                        l.at("bandwidth_mbps").get<double>(), l.at("rtt_ms").get<double>(),
                        l.value("jitter_ms", 0.0), l.value("loss", 0.0)});
  return st;
}

// Whether `sizes` are the rounds of `samples` (a cell measured before rounds has none).
bool in_rounds(const std::vector<double>& samples, const std::vector<int64_t>& sizes) {
  int64_t n = 0;
  for (int64_t k : sizes) n += k;
  return !sizes.empty() && n == static_cast<int64_t>(samples.size());
}

// `samples` as its rounds, or as one block when it has none.
stats::Blocks rounds_of(const std::vector<double>& samples, const std::vector<int64_t>& sizes) {
  return in_rounds(samples, sizes) ? stats::split_blocks(samples, sizes) : stats::Blocks{samples};
}

SummaryCell latency_cell(const CellRecord& c) {
  SummaryCell j;
  j.model = c.model;
  j.strategy = c.strategy;
  j.deploy = c.deploy;
  j.status = c.status;
  j.reason = c.reason;
  j.mode = c.mode;
  j.host = c.environment.host;
  j.cpu = c.environment.cpu;
  if (c.status == "done" && c.warm_ms.empty()) {  // cannot happen from the runner; never report it done
    j.status = "failed";
    j.reason = "no latency samples were recorded";
  }
  if (!j.done()) return j;
  const LatencyCellData d = latency_cell_from_json(c.data);
  if (in_rounds(c.warm_ms, d.round_sizes)) j.warm_rounds = d.round_sizes;
  // Samples of one round share its moment: the interval resamples rounds where there are some.
  const stats::Interval ci = j.warm_rounds.size() >= 2
                                 ? stats::block_bootstrap_median_ci(stats::split_blocks(c.warm_ms, j.warm_rounds), 0.95, 2000, 1)
                                 : stats::bootstrap_median_ci(c.warm_ms, 0.95, 2000, 1);
  {
    const double q1 = stats::percentile(c.warm_ms, 0.25), q3 = stats::percentile(c.warm_ms, 0.75);
    const double lo = q1 - 1.5 * (q3 - q1), hi = q3 + 1.5 * (q3 - q1);
    for (double x : c.warm_ms) j.outliers += (x < lo || x > hi) ? 1 : 0;
  }
  j.conditions = d.conditions;
  j.cut = d.cut;
  j.placement = c.data.contains("placement") ? d.placement : c.deploy;
  j.warm_samples = static_cast<int64_t>(c.warm_ms.size());
  j.warm_median_ms = stats::median(c.warm_ms);
  j.warm_p90_ms = stats::percentile(c.warm_ms, 0.9);
  j.warm_p99_ms = stats::percentile(c.warm_ms, 0.99);
  j.warm_ci_lo_ms = ci.lo;
  j.warm_ci_hi_ms = ci.hi;
  j.warm_samples_ms = c.warm_ms;
  j.cold_samples = static_cast<int64_t>(c.cold_ms.size());
  j.cold_median_ms = c.cold_ms.empty() ? 0.0 : stats::median(c.cold_ms);
  j.breakdown_median_ms = d.breakdown_median_ms;
  j.sweep = d.sweep;
  return j;
}

}  // namespace

StudySummary summarize_study(const std::string& out_dir) {
  study::Store store(study_database(out_dir));
  const nlohmann::json settings = nlohmann::json::parse(store.meta("settings"), nullptr, false);
  EF_CHECK(settings.is_object(), store.path(), ": its settings are not JSON");
  const std::vector<CellRecord> cells = store.all();

  StudySummary s;
  s.study = study_of(store, settings, cells);

  // Accuracy cells by (model, strategy), with their figures.
  std::map<std::pair<std::string, std::string>, const CellRecord*> acc;
  std::map<std::pair<std::string, std::string>, AccuracyCellData> acc_data;
  for (const CellRecord& c : cells)
    if (c.kind == "accuracy") {
      acc[{c.model, c.strategy}] = &c;
      acc_data[{c.model, c.strategy}] = accuracy_cell_from_json(c.data);
    }
  auto done_accuracy = [&](const std::string& model, const std::string& strategy) -> const AccuracyCellData* {
    auto it = acc.find({model, strategy});
    return it != acc.end() && it->second->status == "done" ? &acc_data.at({model, strategy}) : nullptr;
  };

  std::vector<std::string> models;
  for (const auto& m : settings.at("models")) {
    const std::string name = m.at("name");
    models.push_back(name);
    SummaryModel sm{name, "", "", m.at("file").get<std::string>().empty() ? student_of(name) : ""};
    if (const AccuracyCellData* a = done_accuracy(name, "identity")) {
      sm.dataset = a->dataset;
      sm.metric = a->metric;
    }
    s.models.push_back(sm);
  }
  bool has_auto = false;
  for (const auto& st : settings.at("strategies")) s.strategies.push_back({st.get<std::string>(), false});
  for (const auto& st : settings.at("extras")) {
    s.strategies.push_back({st.get<std::string>(), true});
    try {
      has_auto = has_auto || parse_study_strategy(st.get<std::string>()).automatic();
    } catch (const Error&) {  // a strategy this version does not know: not placed automatically
    }
  }
  s.deployments = settings.at("deployments").get<std::vector<std::string>>();
  if (has_auto) s.deployments.push_back(kAutoDeployment);

  // Latency cells.
  std::map<std::tuple<std::string, std::string, std::string>, const CellRecord*> lat;
  for (const CellRecord& c : cells) {
    if (c.kind != "latency") continue;
    lat[{c.model, c.strategy, c.deploy}] = &c;
    s.cells.push_back(latency_cell(c));
  }
  auto done_latency = [&](const std::string& model, const std::string& strategy,
                          const std::string& deploy) -> const std::vector<double>* {
    auto it = lat.find({model, strategy, deploy});
    return it != lat.end() && it->second->status == "done" && !it->second->warm_ms.empty()
               ? &it->second->warm_ms
               : nullptr;
  };

  // Accuracy, against identity's.
  for (const CellRecord& c : cells) {
    if (c.kind != "accuracy") continue;
    SummaryAccuracy a;
    a.model = c.model;
    a.strategy = c.strategy;
    a.status = c.status;
    a.reason = c.reason;
    a.baseline = a.drop_pt = std::nan("");
    if (c.status == "done") {
      const AccuracyCellData& d = acc_data.at({c.model, c.strategy});
      a.metric = d.metric;
      a.value = d.value;
      a.samples = d.samples;
      if (const AccuracyCellData* base = done_accuracy(c.model, "identity")) {
        a.baseline = base->value;
        a.drop_pt = (base->value - d.value) * 100.0;
      }
    }
    s.accuracy.push_back(a);
  }

  // Statistics.
  std::vector<std::string> strategies;
  for (const SummaryStrategy& x : s.strategies) strategies.push_back(x.name);
  for (const std::string& model : models) {
    for (const std::string& deploy : s.deployments) {
      std::vector<std::string> names;
      std::vector<std::vector<double>> groups;
      for (const std::string& strategy : strategies) {
        auto it = lat.find({model, strategy, deploy});
        if (it == lat.end() || it->second->status != "done" || it->second->warm_ms.size() < 2) continue;
        names.push_back(strategy);
        groups.push_back(it->second->warm_ms);
      }
      if (groups.size() < 2) continue;
      const stats::KruskalResult k = stats::kruskal_wallis(groups);
      SummaryLatencyTest t{model, deploy, names, k.h, k.p, static_cast<int64_t>(k.df), {}};
      for (const stats::PairwiseResult& p : stats::conover(groups)) {
        const double delta = stats::cliffs_delta(groups[p.a], groups[p.b]);
        t.pairs.push_back({names[p.a], names[p.b], stats::cliffs_magnitude(delta), p.t, p.p,
                           p.p_holm, delta});
      }
      s.latency_tests.push_back(t);
    }
  }
  // McNemar per model and strategy against identity, Bonferroni over all of them.
  for (const auto& [key, c] : acc) {
    if (key.second == "identity" || c->status != "done") continue;
    auto base = acc.find({key.first, "identity"});
    if (base == acc.end() || base->second->status != "done" ||
        base->second->correct.size() != c->correct.size())
      continue;
    const stats::McNemarResult r = stats::mcnemar(base->second->correct, c->correct);
    SummaryMcNemar m;
    m.model = key.first;
    m.strategy = key.second;
    m.b = r.b;
    m.c = r.c;
    m.p = r.p;
    s.mcnemar.push_back(m);
  }
  bonferroni(s.mcnemar);
  // Wilcoxon per strategy across models (paired with identity's accuracy), Bonferroni over the
  // strategies tested.
  for (const std::string& strategy : strategies) {
    if (strategy == "identity") continue;
    std::vector<double> base, with;
    for (const std::string& model : models) {
      const AccuracyCellData* a = done_accuracy(model, "identity");
      const AccuracyCellData* b = done_accuracy(model, strategy);
      if (a == nullptr || b == nullptr) continue;
      base.push_back(a->value);
      with.push_back(b->value);
    }
    if (base.size() < 2) continue;
    const stats::WilcoxonResult w = stats::wilcoxon_signed_rank(base, with);
    SummaryWilcoxon x;
    x.strategy = strategy;
    x.measure = "accuracy";
    x.n = w.n;
    x.pairs = static_cast<int64_t>(base.size());
    x.statistic = w.statistic;
    x.p = w.p;
    x.exact = w.exact;
    s.wilcoxon.push_back(x);
  }
  bonferroni(s.wilcoxon);
  // Speedups: the mean over models of identity's median over the strategy's.
  for (const std::string& strategy : strategies) {
    if (strategy == "identity") continue;
    for (const std::string& deploy : s.deployments) {
      SummarySpeedup sp{strategy, deploy, baseline_deploy(deploy, s.study.tiers), 0, {}};
      double sum = 0;
      for (const std::string& model : models) {
        const std::vector<double>* a = done_latency(model, "identity", sp.baseline_deploy);
        const std::vector<double>* b = done_latency(model, strategy, deploy);
        if (a == nullptr || b == nullptr) continue;
        const double ratio = stats::median(*a) / stats::median(*b);
        sp.per_model[model] = ratio;
        sum += ratio;
      }
      if (sp.per_model.empty()) continue;
      sp.mean_ratio = sum / static_cast<double>(sp.per_model.size());
      s.speedups.push_back(sp);
    }
  }

  // Practical significance: the rounds of each done cell as blocks, identity's A/A noise
  // floors, every cell against identity, and the answer per model.
  std::map<std::tuple<std::string, std::string, std::string>, stats::Blocks> blocks;
  for (const auto& [key, c] : lat) {
    if (c->status != "done" || c->warm_ms.empty()) continue;
    const LatencyCellData d = latency_cell_from_json(c->data);
    blocks[key] = rounds_of(c->warm_ms, d.round_sizes);
    if (std::get<1>(key) != "identity" || !in_rounds(d.aa_warm_ms, d.aa_round_sizes)) continue;
    const stats::Blocks twin = stats::split_blocks(d.aa_warm_ms, d.aa_round_sizes);
    const std::vector<double> draws = stats::paired_block_bootstrap_ratio(twin, blocks[key], 2000, 7);
    if (draws.empty()) continue;
    std::vector<double> spread;
    for (double r : draws) spread.push_back(std::fabs(std::log(r)));
    std::sort(spread.begin(), spread.end());
    s.noise_floors.push_back({std::get<0>(key), std::get<2>(key),
                              stats::median(d.aa_warm_ms) / stats::median(c->warm_ms),
                              100.0 * (std::exp(stats::quantile_of_sorted(spread, 0.95)) - 1.0),
                              static_cast<int64_t>(std::min(twin.size(), blocks[key].size()))});
  }
  auto floor_of = [&](const std::string& model, const std::string& deploy) {
    for (const SummaryNoiseFloor& f : s.noise_floors)
      if (f.model == model && f.deploy == deploy) return f.pct;
    return std::nan("");
  };
  auto p_holm_of = [&](const std::string& model, const std::string& deploy, const std::string& a,
                       const std::string& b) {
    for (const SummaryLatencyTest& t : s.latency_tests)
      if (t.model == model && t.deploy == deploy)
        for (const SummaryPair& p : t.pairs)
          if ((p.a == a && p.b == b) || (p.a == b && p.b == a)) return p.p_holm;
    return std::nan("");
  };
  // `strategy` on `deploy` against `baseline` on `baseline_deploy`; nullopt when either is not done.
  auto compare = [&](const std::string& model, const std::string& strategy, const std::string& deploy,
                     const std::string& baseline, const std::string& base_deploy) -> std::optional<SummaryComparison> {
    auto a = blocks.find({model, baseline, base_deploy});
    auto b = blocks.find({model, strategy, deploy});
    if (a == blocks.end() || b == blocks.end()) return std::nullopt;
    SummaryComparison c;
    c.model = model;
    c.strategy = strategy;
    c.deploy = deploy;
    c.baseline = baseline;
    c.baseline_deploy = base_deploy;
    c.speedup = stats::median(*done_latency(model, baseline, base_deploy)) /
                stats::median(*done_latency(model, strategy, deploy));
    const std::vector<double> draws = stats::paired_block_bootstrap_ratio(a->second, b->second, 2000, 11);
    const double nan = std::nan("");
    c.ci90_lo = draws.empty() ? nan : stats::quantile_of_sorted(draws, 0.05);
    c.ci90_hi = draws.empty() ? nan : stats::quantile_of_sorted(draws, 0.95);
    c.ci95_lo = draws.empty() ? nan : stats::quantile_of_sorted(draws, 0.025);
    c.ci95_hi = draws.empty() ? nan : stats::quantile_of_sorted(draws, 0.975);
    c.noise_floor_pct = floor_of(model, base_deploy);
    if (deploy != base_deploy && std::isfinite(floor_of(model, deploy)))
      c.noise_floor_pct = std::isfinite(c.noise_floor_pct) ? std::max(c.noise_floor_pct, floor_of(model, deploy))
                                                           : floor_of(model, deploy);
    c.margin_pct = std::max(s.study.min_effect_pct, std::isfinite(c.noise_floor_pct) ? c.noise_floor_pct : 0.0);
    c.p_holm = deploy == base_deploy ? p_holm_of(model, deploy, strategy, baseline) : nan;
    c.verdict = practical_verdict(c);
    // Cells of a planned study may come from different machines (docs/scale-out.md).
    const CellRecord* x = lat.at({model, baseline, base_deploy});
    const CellRecord* y = lat.at({model, strategy, deploy});
    c.cross_machine = !x->environment.host.empty() && !y->environment.host.empty() &&
                      (x->environment.host != y->environment.host || x->environment.cpu != y->environment.cpu);
    return c;
  };
  for (const std::string& model : models)
    for (const std::string& strategy : strategies) {
      if (strategy == "identity") continue;
      for (const std::string& deploy : s.deployments)
        if (auto c = compare(model, strategy, deploy, "identity", baseline_deploy(deploy, s.study.tiers)))
          s.comparisons.push_back(*c);
    }
  for (const std::string& model : models) {
    struct Cand {
      std::string strategy, deploy;
      double ms = 0, change = 0;
    };
    std::vector<Cand> fit;
    for (const auto& [key, c] : lat) {
      if (std::get<0>(key) != model || !done_latency(model, std::get<1>(key), std::get<2>(key))) continue;
      Cand x{std::get<1>(key), std::get<2>(key), stats::median(c->warm_ms), std::nan("")};
      if (!s.study.latency_only) {
        const AccuracyCellData* a = done_accuracy(model, x.strategy);
        const AccuracyCellData* base = done_accuracy(model, "identity");
        if (a == nullptr || base == nullptr) continue;
        x.change = (a->value - base->value) * 100.0;
        if (-x.change > s.study.max_accuracy_drop_pt + 1e-9) continue;
      }
      if (s.study.max_latency_ms > 0 && x.ms > s.study.max_latency_ms) continue;
      fit.push_back(x);
    }
    std::sort(fit.begin(), fit.end(), [](const Cand& a, const Cand& b) { return a.ms < b.ms; });
    SummaryAnswer ans;
    ans.model = model;
    ans.met = !fit.empty();
    ans.within_budget = static_cast<int64_t>(fit.size());
    if (ans.met) {
      ans.strategy = fit[0].strategy;
      ans.deploy = fit[0].deploy;
      ans.latency_ms = fit[0].ms;
      ans.accuracy_change_pt = fit[0].change;
    }
    if (fit.size() >= 2) {
      ans.runner_up_strategy = fit[1].strategy;
      ans.runner_up_deploy = fit[1].deploy;
      ans.runner_up_latency_ms = fit[1].ms;
      ans.runner_up_accuracy_change_pt = fit[1].change;
      ans.versus_runner_up = compare(model, fit[0].strategy, fit[0].deploy, fit[1].strategy, fit[1].deploy);
    }
    s.answers.push_back(ans);
  }

  // Pareto fronts: lower latency and higher accuracy.
  for (const std::string& model : models) {
    SummaryPareto front{model, {}};
    for (const auto& [key, c] : lat) {
      if (std::get<0>(key) != model || c->status != "done" || c->warm_ms.empty()) continue;
      const AccuracyCellData* a = done_accuracy(model, std::get<1>(key));
      if (a == nullptr) continue;
      front.points.push_back({std::get<1>(key), std::get<2>(key), stats::median(c->warm_ms), a->value, false});
    }
    for (SummaryParetoPoint& p : front.points) {
      bool dominated = false;
      for (const SummaryParetoPoint& q : front.points)
        dominated = dominated || (q.latency_ms <= p.latency_ms && q.accuracy >= p.accuracy &&
                                  (q.latency_ms < p.latency_ms || q.accuracy > p.accuracy));
      p.on_front = !dominated;
    }
    std::sort(front.points.begin(), front.points.end(),
              [](const SummaryParetoPoint& a, const SummaryParetoPoint& b) { return a.latency_ms < b.latency_ms; });
    s.pareto.push_back(front);
  }
  return s;
}

namespace {

// A cell that could be recommended: done, with a done accuracy against identity's.
struct Candidate {
  std::string strategy, deploy, metric;
  double latency_ms = 0, latency_p90_ms = 0, accuracy = 0, accuracy_drop_pt = 0;
  nlohmann::json to_json() const {
    return {{"strategy", strategy},     {"deploy", deploy},
            {"latency_ms", latency_ms}, {"latency_p90_ms", latency_p90_ms},
            {"accuracy", accuracy},     {"metric", metric},
            {"accuracy_drop_pt", accuracy_drop_pt}};
  }
};

}  // namespace

nlohmann::json recommend(const StudySummary& summary, const Budget& budget) {
  std::map<std::pair<std::string, std::string>, const SummaryAccuracy*> acc;
  for (const SummaryAccuracy& a : summary.accuracy)
    if (a.done()) acc[{a.model, a.strategy}] = &a;
  std::set<std::string> models;
  for (const SummaryModel& m : summary.models) models.insert(m.name);
  if (!budget.model.empty())
    EF_CHECK(models.count(budget.model), "--model '", budget.model, "': the study has no such model");
  nlohmann::json out = {{"budget",
                         {{"max_latency_ms", budget.max_latency_ms},
                          {"max_accuracy_drop_pt", budget.max_accuracy_drop_pt},
                          {"deploy", budget.deploy}}},
                        {"mode", summary.study.mode},
                        {"models", nlohmann::json::array()}};
  bool deploy_seen = budget.deploy.empty();
  for (const SummaryModel& m : summary.models) {
    if (!budget.model.empty() && m.name != budget.model) continue;
    std::vector<Candidate> cands;
    for (const SummaryCell& c : summary.cells) {
      if (c.model != m.name || !c.done()) continue;
      if (!budget.deploy.empty() && c.deploy != budget.deploy) continue;
      deploy_seen = true;
      auto a = acc.find({m.name, c.strategy});
      if (a == acc.end() || !std::isfinite(a->second->drop_pt)) continue;
      cands.push_back({c.strategy, c.deploy, a->second->metric, c.warm_median_ms, c.warm_p90_ms,
                       a->second->value, a->second->drop_pt});
    }
    nlohmann::json r = {{"model", m.name}, {"candidates", cands.size()}};
    auto fits = [&](const Candidate& c) {
      return (budget.max_latency_ms <= 0 || c.latency_ms <= budget.max_latency_ms) &&
             (budget.max_accuracy_drop_pt < 0 || c.accuracy_drop_pt <= budget.max_accuracy_drop_pt);
    };
    std::vector<Candidate> ok;
    for (const Candidate& c : cands)
      if (fits(c)) ok.push_back(c);
    if (!ok.empty()) {
      std::sort(ok.begin(), ok.end(), [](const Candidate& a, const Candidate& b) {
        return a.latency_ms != b.latency_ms ? a.latency_ms < b.latency_ms : a.accuracy > b.accuracy;
      });
      r["met"] = true;
      r["best"] = ok.front().to_json();
      r["also_within_budget"] = ok.size() - 1;
    } else {
      r["met"] = false;
      std::vector<Candidate> front;
      for (const Candidate& c : cands) {
        bool dominated = false;
        for (const Candidate& q : cands)
          dominated = dominated || (q.latency_ms <= c.latency_ms && q.accuracy >= c.accuracy &&
                                    (q.latency_ms < c.latency_ms || q.accuracy > c.accuracy));
        if (!dominated) front.push_back(c);
      }
      std::sort(front.begin(), front.end(),
                [](const Candidate& a, const Candidate& b) { return a.latency_ms < b.latency_ms; });
      r["pareto"] = nlohmann::json::array();
      for (const Candidate& c : front) r["pareto"].push_back(c.to_json());
      // Nearest miss: the smallest sum of relative excesses over the budgets.
      double best = 1e300;
      for (const Candidate& c : cands) {
        double miss = 0;
        if (budget.max_latency_ms > 0) miss += std::max(0.0, c.latency_ms / budget.max_latency_ms - 1.0);
        if (budget.max_accuracy_drop_pt >= 0)
          miss += std::max(0.0, (c.accuracy_drop_pt - budget.max_accuracy_drop_pt) /
                                    std::max(budget.max_accuracy_drop_pt, 0.1));
        if (miss < best) {
          best = miss;
          nlohmann::json n = c.to_json();
          n["over_latency_ms"] =
              budget.max_latency_ms > 0 ? std::max(0.0, c.latency_ms - budget.max_latency_ms) : 0.0;
          n["over_accuracy_drop_pt"] =
              budget.max_accuracy_drop_pt >= 0
                  ? std::max(0.0, c.accuracy_drop_pt - budget.max_accuracy_drop_pt)
                  : 0.0;
          r["nearest_miss"] = n;
        }
      }
    }
    out["models"].push_back(r);
  }
  EF_CHECK(deploy_seen, "--deploy '", budget.deploy, "': the study has no cells on that deployment");
  return out;
}

}  // namespace edgeforge
