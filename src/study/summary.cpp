// The summary of a study folder, with its statistics (edgeforge/study.h), and the
// recommendation for a budget.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "edgeforge/error.h"
#include "edgeforge/stats.h"
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
std::string baseline_deploy(const std::string& deploy, const nlohmann::json& tiers) {
  if (deploy.find('-') == std::string::npos && deploy != "auto") return deploy;
  return tiers.at(0).at("name").get<std::string>();
}

}  // namespace

nlohmann::json study_summary(const std::string& out_dir) {
  study::Store store(study_database(out_dir));
  const nlohmann::json settings = nlohmann::json::parse(store.meta("settings"), nullptr, false);
  EF_CHECK(settings.is_object(), store.path(), ": its settings are not JSON");
  const std::vector<CellRecord> cells = store.all();

  nlohmann::json s;
  s["format"] = "edgeforge.study-summary/1";
  std::string finished;
  nlohmann::json env = nlohmann::json::object();
  for (const CellRecord& c : cells) {
    finished = std::max(finished, c.finished_utc);
    if (c.kind == "latency" && c.status == "done") env = c.environment;
  }
  s["study"] = {{"name", store.meta("study")},
                {"created_utc", store.meta("created_utc")},
                {"finished_utc", finished},
                {"mode", settings.value("mode", "simulated")},
                {"quick", settings.value("quick", false)},
                {"inputs", settings.value("inputs", 0)},
                {"runs", settings.value("runs", 0)},
                {"environment", env},
                {"topology", settings.at("topology")}};

  // Accuracy cells by (model, strategy).
  std::map<std::pair<std::string, std::string>, const CellRecord*> acc;
  for (const CellRecord& c : cells)
    if (c.kind == "accuracy") acc[{c.model, c.strategy}] = &c;

  s["models"] = nlohmann::json::array();
  for (const auto& m : settings.at("models")) {
    const std::string name = m.at("name");
    std::string dataset, metric;
    if (auto it = acc.find({name, "identity"}); it != acc.end() && it->second->status == "done") {
      dataset = it->second->data.value("dataset", "");
      metric = it->second->data.value("metric", "");
    }
    s["models"].push_back({{"name", name}, {"dataset", dataset}, {"metric", metric},
                           {"student", m.at("file").get<std::string>().empty() ? student_of(name) : ""}});
  }
  s["strategies"] = nlohmann::json::array();
  for (const auto& st : settings.at("strategies")) s["strategies"].push_back({{"name", st}, {"extra", false}});
  bool has_auto = false;
  for (const auto& st : settings.at("extras")) {
    s["strategies"].push_back({{"name", st}, {"extra", true}});
    has_auto = has_auto || st == "auto-partition";
  }
  s["deployments"] = settings.at("deployments");
  if (has_auto) s["deployments"].push_back("auto");

  // Latency cells.
  s["cells"] = nlohmann::json::array();
  std::map<std::tuple<std::string, std::string, std::string>, const CellRecord*> lat;
  for (const CellRecord& c : cells) {
    if (c.kind != "latency") continue;
    lat[{c.model, c.strategy, c.deploy}] = &c;
    nlohmann::json j = {{"model", c.model},   {"strategy", c.strategy}, {"deploy", c.deploy},
                        {"status", c.status}, {"reason", c.reason},     {"mode", c.mode}};
    if (c.status == "done" && c.warm_ms.empty()) {  // cannot happen from the runner; never report it done
      j["status"] = "failed";
      j["reason"] = "no latency samples were recorded";
    }
    if (c.status == "done" && !c.warm_ms.empty()) {
      const stats::Interval ci = stats::bootstrap_median_ci(c.warm_ms, 0.95, 2000, 1);
      j["cut"] = c.data.value("cut", "");
      j["placement"] = c.data.value("placement", c.deploy);
      j["latency"] = {
          {"warm",
           {{"samples", c.warm_ms.size()},
            {"median_ms", stats::median(c.warm_ms)},
            {"p90_ms", stats::percentile(c.warm_ms, 0.9)},
            {"p99_ms", stats::percentile(c.warm_ms, 0.99)},
            {"median_ci95_ms", {ci.lo, ci.hi}},
            {"samples_ms", c.warm_ms}}},
          {"cold",
           {{"samples", c.cold_ms.size()},
            {"median_ms", c.cold_ms.empty() ? 0.0 : stats::median(c.cold_ms)}}},
          {"breakdown_median_ms", c.data.value("breakdown_median_ms", nlohmann::json::object())}};
      j["sweep"] = c.data.value("sweep", nlohmann::json::array());
    }
    s["cells"].push_back(j);
  }

  // Accuracy, against identity's.
  s["accuracy"] = nlohmann::json::array();
  for (const CellRecord& c : cells) {
    if (c.kind != "accuracy") continue;
    nlohmann::json j = {{"model", c.model}, {"strategy", c.strategy}, {"status", c.status},
                        {"reason", c.reason}};
    if (c.status == "done") {
      j["metric"] = c.data.value("metric", "");
      j["value"] = c.data.value("value", 0.0);
      j["samples"] = c.data.value("samples", 0);
      auto base = acc.find({c.model, "identity"});
      if (base != acc.end() && base->second->status == "done") {
        const double b = base->second->data.value("value", 0.0);
        j["baseline"] = b;
        j["drop_pt"] = (b - c.data.value("value", 0.0)) * 100.0;
      }
    }
    s["accuracy"].push_back(j);
  }

  // Statistics.
  nlohmann::json st = {{"latency_tests", nlohmann::json::array()},
                       {"mcnemar", nlohmann::json::array()},
                       {"wilcoxon", nlohmann::json::array()},
                       {"speedups", nlohmann::json::array()}};
  std::vector<std::string> strategies;
  for (const auto& x : s["strategies"]) strategies.push_back(x.at("name"));
  for (const auto& m : settings.at("models")) {
    const std::string model = m.at("name");
    for (const auto& d : s["deployments"]) {
      std::vector<std::string> names;
      std::vector<std::vector<double>> groups;
      for (const std::string& strategy : strategies) {
        auto it = lat.find({model, strategy, d.get<std::string>()});
        if (it == lat.end() || it->second->status != "done" || it->second->warm_ms.size() < 2) continue;
        names.push_back(strategy);
        groups.push_back(it->second->warm_ms);
      }
      if (groups.size() < 2) continue;
      const stats::KruskalResult k = stats::kruskal_wallis(groups);
      nlohmann::json t = {{"model", model}, {"deploy", d}, {"strategies", names},
                          {"kruskal", {{"h", k.h}, {"df", k.df}, {"p", k.p}}},
                          {"pairs", nlohmann::json::array()}};
      for (const stats::PairwiseResult& p : stats::conover(groups)) {
        const double delta = stats::cliffs_delta(groups[p.a], groups[p.b]);
        t["pairs"].push_back({{"a", names[p.a]}, {"b", names[p.b]}, {"t", p.t}, {"p", p.p},
                              {"p_holm", p.p_holm}, {"cliffs_delta", delta},
                              {"magnitude", stats::cliffs_magnitude(delta)}});
      }
      st["latency_tests"].push_back(t);
    }
  }
  // McNemar per model and strategy against identity, Bonferroni over all of them.
  std::vector<nlohmann::json> mc;
  for (const auto& [key, c] : acc) {
    if (key.second == "identity" || c->status != "done") continue;
    auto base = acc.find({key.first, "identity"});
    if (base == acc.end() || base->second->status != "done" ||
        base->second->correct.size() != c->correct.size())
      continue;
    const stats::McNemarResult r = stats::mcnemar(base->second->correct, c->correct);
    mc.push_back({{"model", key.first}, {"strategy", key.second}, {"b", r.b}, {"c", r.c}, {"p", r.p}});
  }
  for (nlohmann::json& j : mc) {
    const double threshold = kAlpha / static_cast<double>(mc.size());
    j["alpha"] = kAlpha;
    j["threshold"] = threshold;
    j["significant"] = j["p"].get<double>() < threshold;
    st["mcnemar"].push_back(j);
  }
  // Wilcoxon per strategy across models (paired with identity's accuracy), Bonferroni over the
  // strategies tested.
  std::vector<nlohmann::json> wx;
  for (const std::string& strategy : strategies) {
    if (strategy == "identity") continue;
    std::vector<double> base, with;
    for (const auto& m : settings.at("models")) {
      auto a = acc.find({m.at("name").get<std::string>(), "identity"});
      auto b = acc.find({m.at("name").get<std::string>(), strategy});
      if (a == acc.end() || b == acc.end() || a->second->status != "done" || b->second->status != "done")
        continue;
      base.push_back(a->second->data.value("value", 0.0));
      with.push_back(b->second->data.value("value", 0.0));
    }
    if (base.size() < 2) continue;
    const stats::WilcoxonResult w = stats::wilcoxon_signed_rank(base, with);
    wx.push_back({{"strategy", strategy}, {"measure", "accuracy"}, {"n", w.n}, {"pairs", base.size()},
                  {"statistic", w.statistic}, {"p", w.p}, {"exact", w.exact}});
  }
  for (nlohmann::json& j : wx) {
    j["alpha"] = kAlpha;
    j["threshold"] = kAlpha / static_cast<double>(wx.size());
    j["significant"] = j["p"].get<double>() < j["threshold"].get<double>();
    st["wilcoxon"].push_back(j);
  }
  // Speedups: the mean over models of identity's median over the strategy's.
  const nlohmann::json& tiers = settings.at("topology").at("tiers");
  for (const std::string& strategy : strategies) {
    if (strategy == "identity") continue;
    for (const auto& d : s["deployments"]) {
      const std::string deploy = d;
      const std::string base_deploy = baseline_deploy(deploy, tiers);
      nlohmann::json per_model = nlohmann::json::object();
      double sum = 0;
      int n = 0;
      for (const auto& m : settings.at("models")) {
        const std::string model = m.at("name");
        auto a = lat.find({model, "identity", base_deploy});
        auto b = lat.find({model, strategy, deploy});
        if (a == lat.end() || b == lat.end() || a->second->status != "done" ||
            b->second->status != "done" || a->second->warm_ms.empty() || b->second->warm_ms.empty())
          continue;
        const double ratio = stats::median(a->second->warm_ms) / stats::median(b->second->warm_ms);
        per_model[model] = ratio;
        sum += ratio;
        ++n;
      }
      if (n == 0) continue;
      st["speedups"].push_back({{"strategy", strategy}, {"deploy", deploy},
                                {"baseline_deploy", base_deploy}, {"mean_ratio", sum / n},
                                {"per_model", per_model}});
    }
  }
  s["stats"] = st;

  // Pareto fronts: lower latency and higher accuracy.
  s["pareto"] = nlohmann::json::array();
  for (const auto& m : settings.at("models")) {
    const std::string model = m.at("name");
    std::vector<nlohmann::json> points;
    for (const auto& [key, c] : lat) {
      if (std::get<0>(key) != model || c->status != "done" || c->warm_ms.empty()) continue;
      auto a = acc.find({model, std::get<1>(key)});
      if (a == acc.end() || a->second->status != "done") continue;
      points.push_back({{"strategy", std::get<1>(key)}, {"deploy", std::get<2>(key)},
                        {"latency_ms", stats::median(c->warm_ms)},
                        {"accuracy", a->second->data.value("value", 0.0)}});
    }
    for (nlohmann::json& p : points) {
      bool dominated = false;
      for (const nlohmann::json& q : points) {
        const double pl = p["latency_ms"], ql = q["latency_ms"], pa = p["accuracy"], qa = q["accuracy"];
        dominated = dominated || (ql <= pl && qa >= pa && (ql < pl || qa > pa));
      }
      p["on_front"] = !dominated;
    }
    std::sort(points.begin(), points.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
      return a["latency_ms"].get<double>() < b["latency_ms"].get<double>();
    });
    s["pareto"].push_back({{"model", model}, {"points", points}});
  }
  return s;
}

nlohmann::json recommend(const nlohmann::json& summary, const Budget& budget) {
  // Candidates: every done latency cell with a done accuracy cell.
  std::map<std::pair<std::string, std::string>, nlohmann::json> acc;
  for (const auto& a : summary.at("accuracy"))
    if (a.at("status") == "done") acc[{a.at("model"), a.at("strategy")}] = a;
  std::set<std::string> models;
  for (const auto& m : summary.at("models")) models.insert(m.at("name").get<std::string>());
  if (!budget.model.empty())
    EF_CHECK(models.count(budget.model), "--model '", budget.model, "': the study has no such model");
  nlohmann::json out = {{"budget",
                         {{"max_latency_ms", budget.max_latency_ms},
                          {"max_accuracy_drop_pt", budget.max_accuracy_drop_pt},
                          {"deploy", budget.deploy}}},
                        {"mode", summary.at("study").value("mode", "simulated")},
                        {"models", nlohmann::json::array()}};
  bool deploy_seen = budget.deploy.empty();
  for (const auto& m : summary.at("models")) {
    const std::string model = m.at("name");
    if (!budget.model.empty() && model != budget.model) continue;
    std::vector<nlohmann::json> cands;
    for (const auto& c : summary.at("cells")) {
      if (c.at("model") != model || c.at("status") != "done" || !c.contains("latency")) continue;
      if (!budget.deploy.empty() && c.at("deploy") != budget.deploy) continue;
      deploy_seen = true;
      auto a = acc.find({model, c.at("strategy")});
      if (a == acc.end() || !a->second.contains("drop_pt")) continue;
      cands.push_back({{"strategy", c.at("strategy")}, {"deploy", c.at("deploy")},
                       {"latency_ms", c.at("latency").at("warm").at("median_ms")},
                       {"latency_p90_ms", c.at("latency").at("warm").at("p90_ms")},
                       {"accuracy", a->second.at("value")}, {"metric", a->second.at("metric")},
                       {"accuracy_drop_pt", a->second.at("drop_pt")}});
    }
    nlohmann::json r = {{"model", model}, {"candidates", cands.size()}};
    auto fits = [&](const nlohmann::json& c) {
      return (budget.max_latency_ms <= 0 || c["latency_ms"].get<double>() <= budget.max_latency_ms) &&
             (budget.max_accuracy_drop_pt < 0 ||
              c["accuracy_drop_pt"].get<double>() <= budget.max_accuracy_drop_pt);
    };
    std::vector<nlohmann::json> ok;
    for (const auto& c : cands)
      if (fits(c)) ok.push_back(c);
    if (!ok.empty()) {
      std::sort(ok.begin(), ok.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
        const double la = a["latency_ms"], lb = b["latency_ms"];
        return la != lb ? la < lb : a["accuracy"].get<double>() > b["accuracy"].get<double>();
      });
      r["met"] = true;
      r["best"] = ok.front();
      r["also_within_budget"] = ok.size() - 1;
    } else {
      r["met"] = false;
      std::vector<nlohmann::json> front;
      for (const auto& c : cands) {
        bool dominated = false;
        for (const auto& q : cands)
          dominated = dominated || (q["latency_ms"] <= c["latency_ms"] && q["accuracy"] >= c["accuracy"] &&
                                    (q["latency_ms"] < c["latency_ms"] || q["accuracy"] > c["accuracy"]));
        if (!dominated) front.push_back(c);
      }
      std::sort(front.begin(), front.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
        return a["latency_ms"].get<double>() < b["latency_ms"].get<double>();
      });
      r["pareto"] = front;
      // Nearest miss: the smallest sum of relative excesses over the budgets.
      double best = 1e300;
      for (const auto& c : cands) {
        double miss = 0;
        if (budget.max_latency_ms > 0)
          miss += std::max(0.0, c["latency_ms"].get<double>() / budget.max_latency_ms - 1.0);
        if (budget.max_accuracy_drop_pt >= 0)
          miss += std::max(0.0, (c["accuracy_drop_pt"].get<double>() - budget.max_accuracy_drop_pt) /
                                    std::max(budget.max_accuracy_drop_pt, 0.1));
        if (miss < best) {
          best = miss;
          nlohmann::json n = c;
          n["over_latency_ms"] = budget.max_latency_ms > 0
                                     ? std::max(0.0, c["latency_ms"].get<double>() - budget.max_latency_ms)
                                     : 0.0;
          n["over_accuracy_drop_pt"] =
              budget.max_accuracy_drop_pt >= 0
                  ? std::max(0.0, c["accuracy_drop_pt"].get<double>() - budget.max_accuracy_drop_pt)
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
