// The study's data, typed (edgeforge/study_schema.h): the summary document read with every field
// checked and written back, and the figures of each kind of cell in the study database.
#include "edgeforge/study_schema.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "edgeforge/error.h"
#include "edgeforge/util.h"

namespace edgeforge {

using nlohmann::json;

bool StudyEnvironment::empty() const {
  return commit.empty() && version.empty() && cpu.empty() && host.empty() && host_cores == 0 &&
         threads == 0 &&
         seed == 0 && libraries.empty();
}

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Measurement conditions: descriptive, so read tolerantly (absent or null figures are NaN).
json conditions_json(const MeasureConditions& c) {
  auto num = [](double x) { return std::isfinite(x) ? json(x) : json(nullptr); };
  return {{"load_avg", num(c.load_avg)},
          {"cpu_mhz", num(c.cpu_mhz)},
          {"steal_pct", num(c.steal_pct)},
          {"others_busy_pct", num(c.others_busy_pct)},
          {"reference_before_ms", num(c.reference_before_ms)},
          {"reference_after_ms", num(c.reference_after_ms)},
          {"drift_pct", num(c.drift_pct)},
          {"attempts", c.attempts},
          {"unstable", c.unstable},
          {"group_cells", c.group_cells},
          {"shared_preprocessing", c.shared_preprocessing}};
}
MeasureConditions conditions_from_json(const json& j) {
  MeasureConditions c;
  auto num = [&](const char* key) {
    return j.contains(key) && j[key].is_number() ? j[key].get<double>() : kNaN;
  };
  c.load_avg = num("load_avg");
  c.cpu_mhz = num("cpu_mhz");
  c.steal_pct = num("steal_pct");
  c.others_busy_pct = num("others_busy_pct");
  c.reference_before_ms = num("reference_before_ms");
  c.reference_after_ms = num("reference_after_ms");
  c.drift_pct = num("drift_pct");
  c.attempts = j.value("attempts", int64_t{1});
  c.unstable = j.value("unstable", false);
  c.group_cells = j.value("group_cells", int64_t{0});
  c.shared_preprocessing = j.value("shared_preprocessing", false);
  return c;
}
std::vector<int64_t> integers(const json& j, const char* key) {
  std::vector<int64_t> out;
  if (j.contains(key) && j[key].is_array())
    for (const json& x : j[key])
      if (x.is_number_integer()) out.push_back(x.get<int64_t>());
  return out;
}

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
double num_or(const Field& parent, const std::string& key, double fallback) {
  Field f = parent.get(key);
  return f.is_null() ? fallback : f.num();
}

// Error unless `name` (at `f`) is one of `known`, which the summary declares at `list`.
void check_declared(const Field& f, const std::string& name, const std::vector<std::string>& known,
                    const char* list) {
  if (std::find(known.begin(), known.end(), name) != known.end()) return;
  f.fail(detail::concat("'", name, "' is not one of ", list, " (", join(known, ", "), ")"));
}

// The string member `key` of `parent`, which must be one of `known` (declared at `list`).
std::string declared(const Field& parent, const std::string& key,
                     const std::vector<std::string>& known, const char* list) {
  const Field f = parent.at(key);
  const std::string name = f.str();
  check_declared(f, name, known, list);
  return name;
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
  info.latency_only = s.has("latency_only") && s.at("latency_only").boolean();
  info.note = str_or(s, "note", "");
  info.min_effect_pct = num_or(s, "min_effect_pct", 5);
  info.max_accuracy_drop_pt = num_or(s, "max_accuracy_drop_pt", 1);
  info.max_latency_ms = num_or(s, "max_latency_ms", 0);
  const Field env = s.at("environment");
  // Descriptive only, and empty when no cell finished: every field may be absent.
  StudyEnvironment& e = info.environment;
  e.commit = str_or(env, "commit", "");
  e.version = str_or(env, "version", "");
  e.cpu = str_or(env, "cpu", "");
  e.host = str_or(env, "host", "");
  e.host_cores = env.has("host_cores") ? env.at("host_cores").integer() : 0;
  e.threads = env.has("threads") ? env.at("threads").integer() : 0;
  e.seed = env.has("seed") ? env.at("seed").integer() : 0;
  if (env.has("libraries"))
    for (const auto& [name, version] : env.at("libraries").members())
      e.libraries[name] = version.str();
  const Field topo = s.at("topology");
  info.topology = topo.at("name").str();
  for (const Field& t : topo.at("tiers").items())
    info.tiers.push_back({t.at("name").str(), t.at("cores").integer(), t.at("memory_gb").num(),
                          t.at("speed").num(), num_or(t, "reference_ms", 0)});
  for (const Field& l : topo.at("links").items())
    info.links.push_back({l.at("from").str(), l.at("to").str(), l.at("bandwidth_mbps").num(),
                          l.at("rtt_ms").num(), num_or(l, "jitter_ms", 0), num_or(l, "loss", 0)});
  return info;
}

SummaryCell read_cell(const Field& c, const StudySummary& s,
                       const std::vector<std::string>& model_names,
                       const std::vector<std::string>& strategy_names,
                       const std::vector<std::string>& link_names) {
  SummaryCell cell;
  cell.model = declared(c, "model", model_names, "models");
  cell.strategy = declared(c, "strategy", strategy_names, "strategies");
  cell.deploy = declared(c, "deploy", s.deployments, "deployments");
  cell.status = c.at("status").str();
  cell.reason = str_or(c, "reason", "");
  cell.mode = cell.done() ? c.at("mode").str() : str_or(c, "mode", "");
  if (cell.done() && cell.mode.empty()) c.at("mode").fail("is empty");
  const Field cut = c.get("cut");
  if (!cut.is_null()) cell.cut = cut.value().is_string() ? cut.str() : cut.value().dump();
  cell.placement = str_or(c, "placement", "");
  cell.host = str_or(c, "host", "");
  cell.cpu = str_or(c, "cpu", "");
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
  if (warm.has("rounds")) {
    int64_t sum = 0;
    for (const Field& x : warm.at("rounds").items()) {
      cell.warm_rounds.push_back(x.integer());
      if (cell.warm_rounds.back() < 0) x.fail("is negative");
      sum += cell.warm_rounds.back();
    }
    if (sum != static_cast<int64_t>(cell.warm_samples_ms.size()))
      warm.at("rounds").fail(detail::concat("add up to ", sum, " samples, not ", cell.warm_samples_ms.size()));
  }
  cell.outliers = warm.has("outliers") ? warm.at("outliers").integer() : 0;
  if (latency.has("conditions")) cell.conditions = conditions_from_json(latency.at("conditions").value());
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
    r.model = declared(a, "model", model_names, "models");
    r.strategy = declared(a, "strategy", strategy_names, "strategies");
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
    test.model = declared(t, "model", model_names, "models");
    test.deploy = declared(t, "deploy", s.deployments, "deployments");
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
      pair.a = declared(p, "a", strategy_names, "strategies");
      pair.b = declared(p, "b", strategy_names, "strategies");
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
    test.model = declared(m, "model", model_names, "models");
    test.strategy = declared(m, "strategy", strategy_names, "strategies");
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
    test.strategy = declared(w, "strategy", strategy_names, "strategies");
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
    if (w.has("exact")) test.exact = w.at("exact").boolean();
    s.wilcoxon.push_back(test);
  }
  for (const Field& sp : stats.at("speedups").items()) {
    SummarySpeedup speedup;
    speedup.strategy = declared(sp, "strategy", strategy_names, "strategies");
    speedup.deploy = declared(sp, "deploy", s.deployments, "deployments");
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
  auto read_comparison = [&](const Field& c) {
    SummaryComparison x;
    x.model = declared(c, "model", model_names, "models");
    x.strategy = declared(c, "strategy", strategy_names, "strategies");
    x.deploy = declared(c, "deploy", s.deployments, "deployments");
    x.baseline = declared(c, "baseline", strategy_names, "strategies");
    x.baseline_deploy = declared(c, "baseline_deploy", s.deployments, "deployments");
    x.speedup = c.nullable("speedup");
    const std::vector<Field> ci90 = c.at("ci90").items(), ci95 = c.at("ci95").items();
    if (ci90.size() != 2) c.at("ci90").fail("must be [lo, hi]");
    if (ci95.size() != 2) c.at("ci95").fail("must be [lo, hi]");
    x.ci90_lo = ci90[0].num_or_nan();
    x.ci90_hi = ci90[1].num_or_nan();
    x.ci95_lo = ci95[0].num_or_nan();
    x.ci95_hi = ci95[1].num_or_nan();
    x.noise_floor_pct = c.nullable("noise_floor_pct");
    x.margin_pct = c.at("margin_pct").num();
    x.p_holm = c.nullable("p_holm");
    x.verdict = c.at("verdict").str();
    if (x.verdict != "faster" && x.verdict != "slower" && x.verdict != "same" && x.verdict != "unclear")
      c.at("verdict").fail("is '" + x.verdict + "', expected faster, slower, same or unclear");
    x.cross_machine = c.has("cross_machine") && c.at("cross_machine").boolean();
    return x;
  };
  if (stats.has("noise_floors"))
    for (const Field& f : stats.at("noise_floors").items())
      s.noise_floors.push_back({declared(f, "model", model_names, "models"),
                                declared(f, "deploy", s.deployments, "deployments"),
                                f.at("aa_ratio").num(), f.at("pct").num(), f.at("rounds").integer()});
  if (stats.has("comparisons"))
    for (const Field& c : stats.at("comparisons").items()) s.comparisons.push_back(read_comparison(c));
  if (root.has("answers"))
    for (const Field& a : root.at("answers").items()) {
      SummaryAnswer x;
      x.model = declared(a, "model", model_names, "models");
      x.met = a.at("met").boolean();
      x.within_budget = a.at("within_budget").integer();
      if (x.met) {
        x.strategy = declared(a, "strategy", strategy_names, "strategies");
        x.deploy = declared(a, "deploy", s.deployments, "deployments");
        x.latency_ms = a.at("latency_ms").num();
        x.accuracy_change_pt = a.nullable("accuracy_change_pt");
      }
      if (a.has("runner_up")) {
        const Field r = a.at("runner_up");
        x.runner_up_strategy = declared(r, "strategy", strategy_names, "strategies");
        x.runner_up_deploy = declared(r, "deploy", s.deployments, "deployments");
        x.runner_up_latency_ms = r.at("latency_ms").num();
        x.runner_up_accuracy_change_pt = r.nullable("accuracy_change_pt");
        if (r.has("versus")) x.versus_runner_up = read_comparison(r.at("versus"));
      }
      s.answers.push_back(x);
    }
  for (const Field& f : root.at("pareto").items()) {
    SummaryPareto front;
    front.model = declared(f, "model", model_names, "models");
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
// Writing the summary document.

namespace {

// A field that is absent where the value is not known (NaN).
void finite_or_absent(json& object, const char* key, double x) {
  if (std::isfinite(x)) object[key] = x;
}

json study_json(const SummaryStudy& st) {
  json tiers = json::array(), links = json::array();
  for (const SummaryTier& t : st.tiers)
    tiers.push_back({{"name", t.name}, {"cores", t.cores}, {"memory_gb", t.memory_gb},
                     {"speed", t.speed}, {"reference_ms", t.reference_ms}});
  for (const SummaryLink& l : st.links)
    links.push_back({{"from", l.from}, {"to", l.to}, {"bandwidth_mbps", l.bandwidth_mbps},
                     {"rtt_ms", l.rtt_ms}, {"jitter_ms", l.jitter_ms}, {"loss", l.loss}});
  return {{"name", st.name},
          {"created_utc", st.created_utc},
          {"finished_utc", st.finished_utc},
          {"mode", st.mode},
          {"quick", st.quick},
          {"inputs", st.inputs},
          {"runs", st.runs},
          {"latency_only", st.latency_only},
          {"note", st.note},
          {"min_effect_pct", st.min_effect_pct},
          {"max_accuracy_drop_pt", st.max_accuracy_drop_pt},
          {"max_latency_ms", st.max_latency_ms},
          {"environment", to_json(st.environment)},
          {"topology", {{"name", st.topology}, {"tiers", tiers}, {"links", links}}}};
}

json sweep_json(const std::vector<SummarySweepPoint>& sweep) {
  json out = json::array();
  for (const SummarySweepPoint& p : sweep)
    out.push_back({{"link", p.link}, {"bandwidth_mbps", p.bandwidth_mbps},
                   {"warm_median_ms", p.warm_median_ms}});
  return out;
}

json cell_json(const SummaryCell& c) {
  json j = {{"model", c.model},   {"strategy", c.strategy}, {"deploy", c.deploy},
            {"status", c.status}, {"reason", c.reason},     {"mode", c.mode}};
  if (!c.host.empty()) j["host"] = c.host;
  if (!c.cpu.empty()) j["cpu"] = c.cpu;
  if (!c.done()) return j;
  j["cut"] = c.cut;
  j["placement"] = c.placement;
  j["latency"] = {{"warm",
                   {{"samples", c.warm_samples},
                    {"median_ms", c.warm_median_ms},
                    {"p90_ms", c.warm_p90_ms},
                    {"p99_ms", c.warm_p99_ms},
                    {"median_ci95_ms", {c.warm_ci_lo_ms, c.warm_ci_hi_ms}},
                    {"samples_ms", c.warm_samples_ms},
                    {"outliers", c.outliers}}},
                  {"cold", {{"samples", c.cold_samples}, {"median_ms", c.cold_median_ms}}},
                  {"breakdown_median_ms", c.breakdown_median_ms}};
  if (!c.warm_rounds.empty()) j["latency"]["warm"]["rounds"] = c.warm_rounds;
  if (c.conditions) j["latency"]["conditions"] = conditions_json(*c.conditions);
  j["sweep"] = sweep_json(c.sweep);
  return j;
}

json accuracy_json(const SummaryAccuracy& a) {
  json j = {{"model", a.model}, {"strategy", a.strategy}, {"status", a.status}, {"reason", a.reason}};
  if (!a.done()) return j;
  j["metric"] = a.metric;
  j["value"] = a.value;
  j["samples"] = a.samples;
  finite_or_absent(j, "baseline", a.baseline);
  finite_or_absent(j, "drop_pt", a.drop_pt);
  return j;
}

json comparison_json(const SummaryComparison& c) {
  auto num = [](double x) { return std::isfinite(x) ? json(x) : json(nullptr); };
  json j = {{"model", c.model},
          {"strategy", c.strategy},
          {"deploy", c.deploy},
          {"baseline", c.baseline},
          {"baseline_deploy", c.baseline_deploy},
          {"speedup", num(c.speedup)},
          {"ci90", {num(c.ci90_lo), num(c.ci90_hi)}},
          {"ci95", {num(c.ci95_lo), num(c.ci95_hi)}},
          {"noise_floor_pct", num(c.noise_floor_pct)},
          {"margin_pct", c.margin_pct},
          {"p_holm", num(c.p_holm)},
          {"verdict", c.verdict}};
  if (c.cross_machine) j["cross_machine"] = true;
  return j;
}

json stats_json(const StudySummary& s) {
  json st = {{"latency_tests", json::array()},
             {"mcnemar", json::array()},
             {"wilcoxon", json::array()},
             {"speedups", json::array()}};
  for (const SummaryLatencyTest& t : s.latency_tests) {
    json pairs = json::array();
    for (const SummaryPair& p : t.pairs)
      pairs.push_back({{"a", p.a}, {"b", p.b}, {"t", p.t}, {"p", p.p}, {"p_holm", p.p_holm},
                       {"cliffs_delta", p.cliffs_delta}, {"magnitude", p.magnitude}});
    st["latency_tests"].push_back({{"model", t.model}, {"deploy", t.deploy},
                                   {"strategies", t.strategies},
                                   {"kruskal", {{"h", t.h}, {"df", t.df}, {"p", t.p}}},
                                   {"pairs", pairs}});
  }
  for (const SummaryMcNemar& m : s.mcnemar) {
    json j = {{"model", m.model}, {"strategy", m.strategy}, {"b", m.b}, {"c", m.c}, {"p", m.p},
              {"significant", m.significant}};
    finite_or_absent(j, "alpha", m.alpha);
    finite_or_absent(j, "threshold", m.threshold);
    st["mcnemar"].push_back(j);
  }
  for (const SummaryWilcoxon& w : s.wilcoxon) {
    json j = {{"strategy", w.strategy}, {"measure", w.measure}, {"n", w.n},
              {"statistic", w.statistic}, {"p", w.p}, {"alpha", w.alpha},
              {"threshold", w.threshold}, {"significant", w.significant}};
    if (w.pairs >= 0) j["pairs"] = w.pairs;
    if (w.exact) j["exact"] = *w.exact;
    st["wilcoxon"].push_back(j);
  }
  for (const SummarySpeedup& sp : s.speedups) {
    json per_model = json::object();
    for (const auto& [model, ratio] : sp.per_model) per_model[model] = ratio;
    st["speedups"].push_back({{"strategy", sp.strategy}, {"deploy", sp.deploy},
                              {"baseline_deploy", sp.baseline_deploy},
                              {"mean_ratio", sp.mean_ratio}, {"per_model", per_model}});
  }
  st["noise_floors"] = json::array();
  for (const SummaryNoiseFloor& f : s.noise_floors)
    st["noise_floors"].push_back({{"model", f.model}, {"deploy", f.deploy}, {"aa_ratio", f.aa_ratio},
                                  {"pct", f.pct}, {"rounds", f.rounds}});
  st["comparisons"] = json::array();
  for (const SummaryComparison& c : s.comparisons) st["comparisons"].push_back(comparison_json(c));
  return st;
}

}  // namespace

json study_summary_json(const StudySummary& s) {
  json j;
  j["format"] = kStudySummaryFormat;
  j["study"] = study_json(s.study);
  j["models"] = json::array();
  for (const SummaryModel& m : s.models)
    j["models"].push_back({{"name", m.name}, {"dataset", m.dataset}, {"metric", m.metric},
                           {"student", m.student}});
  j["strategies"] = json::array();
  for (const SummaryStrategy& st : s.strategies)
    j["strategies"].push_back({{"name", st.name}, {"extra", st.extra}});
  j["deployments"] = s.deployments;
  j["cells"] = json::array();
  for (const SummaryCell& c : s.cells) j["cells"].push_back(cell_json(c));
  j["accuracy"] = json::array();
  for (const SummaryAccuracy& a : s.accuracy) j["accuracy"].push_back(accuracy_json(a));
  j["stats"] = stats_json(s);
  j["answers"] = json::array();
  for (const SummaryAnswer& a : s.answers) {
    json x = {{"model", a.model}, {"met", a.met}, {"within_budget", a.within_budget}};
    if (a.met) {
      x["strategy"] = a.strategy;
      x["deploy"] = a.deploy;
      x["latency_ms"] = a.latency_ms;
      x["accuracy_change_pt"] = std::isfinite(a.accuracy_change_pt) ? json(a.accuracy_change_pt) : json(nullptr);
    }
    if (!a.runner_up_strategy.empty()) {
      x["runner_up"] = {{"strategy", a.runner_up_strategy},
                        {"deploy", a.runner_up_deploy},
                        {"latency_ms", a.runner_up_latency_ms},
                        {"accuracy_change_pt", std::isfinite(a.runner_up_accuracy_change_pt)
                                                   ? json(a.runner_up_accuracy_change_pt)
                                                   : json(nullptr)}};
      if (a.versus_runner_up) x["runner_up"]["versus"] = comparison_json(*a.versus_runner_up);
    }
    j["answers"].push_back(x);
  }
  j["pareto"] = json::array();
  for (const SummaryPareto& f : s.pareto) {
    json points = json::array();
    for (const SummaryParetoPoint& p : f.points)
      points.push_back({{"strategy", p.strategy}, {"deploy", p.deploy},
                        {"latency_ms", p.latency_ms}, {"accuracy", p.accuracy},
                        {"on_front", p.on_front}});
    j["pareto"].push_back({{"model", f.model}, {"points", points}});
  }
  return j;
}

// ---------------------------------------------------------------------------------------------
// The cells' figures in the database.

json to_json(const StudyEnvironment& e) {
  if (e.empty()) return json::object();
  json j = {{"commit", e.commit},         {"version", e.version}, {"cpu", e.cpu},
            {"host_cores", e.host_cores}, {"threads", e.threads}, {"seed", e.seed},
            {"libraries", e.libraries}};
  if (!e.host.empty()) j["host"] = e.host;
  return j;
}

StudyEnvironment environment_from_json(const json& j) {
  StudyEnvironment e;
  if (!j.is_object()) return e;
  e.commit = j.value("commit", "");
  e.version = j.value("version", "");
  e.cpu = j.value("cpu", "");
  e.host = j.value("host", "");
  e.host_cores = j.value("host_cores", int64_t{0});
  e.threads = j.value("threads", int64_t{0});
  e.seed = j.value("seed", int64_t{0});
  if (j.contains("libraries") && j["libraries"].is_object())
    for (auto it = j["libraries"].begin(); it != j["libraries"].end(); ++it)
      if (it->is_string()) e.libraries[it.key()] = it->get<std::string>();
  return e;
}

json to_json(const ModelCellData& d) {
  json j = {{"file", d.file}, {"from_cache", d.from_cache}};
  if (!d.report.is_null()) j["report"] = d.report;
  return j;
}

ModelCellData model_cell_from_json(const json& j) {
  ModelCellData d;
  d.file = j.value("file", "");
  d.from_cache = j.value("from_cache", false);
  if (j.contains("report")) d.report = j["report"];
  return d;
}

json to_json(const AutoPlacementData& d) {
  return {{"file", d.file}, {"deploy", d.deploy}, {"cut", d.cut}, {"estimate_ms", d.estimate_ms},
          {"why", d.why}};
}

AutoPlacementData auto_placement_from_json(const json& j) {
  AutoPlacementData d;
  d.file = j.value("file", "");
  d.deploy = j.value("deploy", "");
  d.cut = j.value("cut", "");
  d.estimate_ms = j.value("estimate_ms", 0.0);
  d.why = j.value("why", "");
  return d;
}

json to_json(const AccuracyCellData& d) {
  json j = {{"metric", d.metric},   {"value", d.value},     {"top1", d.top1},
            {"samples", d.samples}, {"dataset", d.dataset}, {"cut", d.cut}};
  if (d.f1) j["f1"] = *d.f1;
  return j;
}

AccuracyCellData accuracy_cell_from_json(const json& j) {
  AccuracyCellData d;
  d.metric = j.value("metric", "");
  d.value = j.value("value", 0.0);
  d.top1 = j.value("top1", 0.0);
  d.samples = j.value("samples", int64_t{0});
  d.dataset = j.value("dataset", "");
  d.cut = j.value("cut", "");
  if (j.contains("f1") && j["f1"].is_number()) d.f1 = j["f1"].get<double>();
  return d;
}

json to_json(const LatencyCellData& d) {
  json j = {{"placement", d.placement},
            {"cut", d.cut},
            {"crossing_bytes", d.crossing_bytes},
            {"payload_bytes", d.payload_bytes},
            {"breakdown_median_ms", d.breakdown_median_ms},
            {"sweep", sweep_json(d.sweep)},
            {"tier_threads", d.tier_threads},
            {"measure_seconds", d.measure_seconds}};
  if (d.auto_choice) j["auto"] = to_json(*d.auto_choice);
  if (!d.round_sizes.empty()) j["round_sizes"] = d.round_sizes;
  if (!d.aa_warm_ms.empty()) {
    j["aa_warm_ms"] = d.aa_warm_ms;
    j["aa_round_sizes"] = d.aa_round_sizes;
  }
  if (d.conditions) j["conditions"] = conditions_json(*d.conditions);
  return j;
}

LatencyCellData latency_cell_from_json(const json& j) {
  LatencyCellData d;
  d.placement = j.value("placement", "");
  d.cut = j.value("cut", "");
  d.crossing_bytes = j.value("crossing_bytes", int64_t{0});
  d.payload_bytes = j.value("payload_bytes", int64_t{0});
  if (j.contains("breakdown_median_ms") && j["breakdown_median_ms"].is_object())
    for (auto it = j["breakdown_median_ms"].begin(); it != j["breakdown_median_ms"].end(); ++it)
      if (it->is_number()) d.breakdown_median_ms[it.key()] = it->get<double>();
  if (j.contains("sweep") && j["sweep"].is_array())
    for (const json& p : j["sweep"])
      d.sweep.push_back({p.value("link", ""), p.value("bandwidth_mbps", 0.0),
                         p.value("warm_median_ms", 0.0)});
  if (j.contains("tier_threads") && j["tier_threads"].is_object())
    for (auto it = j["tier_threads"].begin(); it != j["tier_threads"].end(); ++it)
      if (it->is_number_integer()) d.tier_threads[it.key()] = it->get<int64_t>();
  d.measure_seconds = j.value("measure_seconds", 0.0);
  if (j.contains("auto") && j["auto"].is_object()) d.auto_choice = auto_placement_from_json(j["auto"]);
  d.round_sizes = integers(j, "round_sizes");
  d.aa_round_sizes = integers(j, "aa_round_sizes");
  if (j.contains("aa_warm_ms") && j["aa_warm_ms"].is_array())
    for (const json& x : j["aa_warm_ms"])
      if (x.is_number()) d.aa_warm_ms.push_back(x.get<double>());
  if (j.contains("conditions") && j["conditions"].is_object()) d.conditions = conditions_from_json(j["conditions"]);
  return d;
}

}  // namespace edgeforge
