// The strategy registry, option handling and pipelines (edgeforge/strategy.h).
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <set>

#include "edgeforge/dataset.h"
#include "edgeforge/error.h"
#include "edgeforge/strategy.h"
#include "edgeforge/util.h"

namespace edgeforge {

std::function<void(const std::string&)> check_int(int64_t lo, int64_t hi) {
  return [lo, hi](const std::string& v) {
    size_t used = 0;
    int64_t x = 0;
    try {
      x = std::stoll(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    EF_CHECK(used == v.size() && !v.empty(), "'", v, "' is not an integer");
    EF_CHECK(x >= lo && x <= hi, x, " is outside [", lo, ", ", hi, "]");
  };
}

std::function<void(const std::string&)> check_double(double lo, double hi, bool lo_open,
                                                     bool hi_open) {
  return [=](const std::string& v) {
    size_t used = 0;
    double x = 0;
    try {
      x = std::stod(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    EF_CHECK(used == v.size() && !v.empty() && std::isfinite(x), "'", v, "' is not a number");
    const bool ok = (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
    EF_CHECK(ok, v, " is outside ", lo_open ? "(" : "[", lo, ", ", hi, hi_open ? ")" : "]");
  };
}

std::function<void(const std::string&)> check_choice(std::vector<std::string> choices) {
  return [choices](const std::string& v) {
    if (std::find(choices.begin(), choices.end(), v) != choices.end()) return;
    std::string list;
    for (const std::string& c : choices) list += (list.empty() ? "" : ", ") + c;
    throw Error("'" + v + "' is not one of: " + list);
  };
}

std::function<void(const std::string&)> check_auto_or(std::function<void(const std::string&)> check) {
  return [check = std::move(check)](const std::string& v) {
    if (v != "auto") check(v);
  };
}

std::function<void(const std::string&)> check_dataset() {
  return [](const std::string& v) {
    if (!v.empty()) parse_data_spec(v);  // Error naming what is wrong with it
  };
}

StrategyOptions::StrategyOptions(std::string strategy, const std::vector<OptionSpec>& specs,
                                 std::map<std::string, std::string> values)
    : strategy_(std::move(strategy)) {
  for (const OptionSpec& s : specs) defaults_[s.name] = s.default_value;
  for (const auto& [name, value] : values) {
    const std::string& key = name;  // a lambda may not capture a structured binding in C++17
    auto spec = std::find_if(specs.begin(), specs.end(),
                             [&](const OptionSpec& s) { return s.name == key; });
    EF_ASSERT(spec != specs.end(), "option ", name, " was not resolved against ", strategy_);
    if (spec->check) {
      try {
        spec->check(value);
      } catch (const Error& e) {
        throw Error("option " + strategy_ + "." + name + ": " + e.what());
      }
    }
  }
  values_ = defaults_;
  for (auto& [name, value] : values) values_[name] = value;
}

const std::string& StrategyOptions::text(const std::string& name) const {
  auto it = values_.find(name);
  EF_ASSERT(it != values_.end(), strategy_, " has no option ", name);
  return it->second;
}

int64_t StrategyOptions::integer(const std::string& name) const { return std::stoll(text(name)); }
double StrategyOptions::number(const std::string& name) const { return std::stod(text(name)); }
bool StrategyOptions::flag(const std::string& name) const {
  const std::string& v = text(name);
  return v == "true" || v == "1" || v == "yes";
}
bool StrategyOptions::is_default(const std::string& name) const {
  return text(name) == defaults_.at(name);
}

StrategyRegistry& StrategyRegistry::global() {
  static StrategyRegistry registry;
  return registry;
}

void StrategyRegistry::add(std::unique_ptr<Strategy> strategy) {
  EF_ASSERT(find(strategy->name()) == nullptr, "strategy registered twice: ", strategy->name());
  strategies_.push_back(std::move(strategy));
}

const Strategy* StrategyRegistry::find(const std::string& name) const {
  for (const auto& s : strategies_)
    if (s->name() == name) return s.get();
  return nullptr;
}

std::vector<const Strategy*> StrategyRegistry::all() const {
  std::vector<const Strategy*> out;
  for (const auto& s : strategies_) out.push_back(s.get());
  std::sort(out.begin(), out.end(),
            [](const Strategy* a, const Strategy* b) { return a->name() < b->name(); });
  return out;
}

std::string StrategyRegistry::names() const {
  std::string list;
  for (const Strategy* s : all()) list += (list.empty() ? "" : ", ") + s->name();
  return list;
}

void StrategyRegistry::add_placement(PlacementStrategy placement) {
  EF_ASSERT(find_placement(placement.name) == nullptr, "placement registered twice: ", placement.name);
  placements_.push_back(std::move(placement));
}

const PlacementStrategy* StrategyRegistry::find_placement(const std::string& name) const {
  for (const PlacementStrategy& p : placements_)
    if (p.name == name) return &p;
  return nullptr;
}

std::string study_strategy_forms() {
  std::vector<std::string> forms = {"identity"};
  for (const PlacementStrategy& p : StrategyRegistry::global().placements()) forms.push_back(p.name);
  for (const PlacementStrategy& p : StrategyRegistry::global().placements())
    if (p.composable) forms.push_back("P+" + p.name);
  return join(forms, ", ");
}

StudyStrategy parse_study_strategy(const std::string& name) {
  const StrategyRegistry& registry = StrategyRegistry::global();
  if (const PlacementStrategy* p = registry.find_placement(name)) return {"identity", p->rule};
  StudyStrategy out{name, PlacementRule::whole};
  const size_t plus = name.rfind('+');
  if (plus != std::string::npos && plus > 0) {
    const PlacementStrategy* p = registry.find_placement(name.substr(plus + 1));
    if (p != nullptr && p->composable) out = {name.substr(0, plus), p->rule};
  }
  try {
    parse_pipeline(out.pipeline);
  } catch (const Error& e) {
    throw Error("strategy '" + name + "': " + e.what() + " (or " + study_strategy_forms() + ")");
  }
  return out;
}

std::vector<const Strategy*> parse_pipeline(const std::string& pipeline) {
  std::vector<const Strategy*> steps;
  size_t start = 0;
  while (true) {
    const size_t plus = pipeline.find('+', start);
    const std::string name = pipeline.substr(start, plus == std::string::npos ? plus : plus - start);
    const Strategy* s = StrategyRegistry::global().find(name);
    if (s == nullptr)
      throw Error("unknown strategy '" + name + "'" +
                  (name == pipeline ? "" : " in '" + pipeline + "'") +
                  "; valid strategies: " + StrategyRegistry::global().names() +
                  " (combine them with '+', e.g. distill+sptq)");
    steps.push_back(s);
    if (plus == std::string::npos) break;
    start = plus + 1;
  }
  return steps;
}

std::vector<StrategyOptions> resolve_options(const std::vector<const Strategy*>& steps,
                                             const std::vector<std::string>& assignments) {
  std::vector<std::map<std::string, std::string>> values(steps.size());
  auto has_option = [](const Strategy* s, const std::string& name) {
    for (const OptionSpec& o : s->options())
      if (o.name == name) return true;
    return false;
  };
  auto valid_list = [&](const std::vector<size_t>& which) {
    std::set<std::string> names;
    for (size_t i : which)
      for (const OptionSpec& o : steps[i]->options()) names.insert(o.name);
    std::string list;
    for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
    return list.empty() ? std::string("none") : list;
  };
  std::vector<size_t> all_steps(steps.size());
  for (size_t i = 0; i < steps.size(); ++i) all_steps[i] = i;
  for (const std::string& a : assignments) {
    const size_t eq = a.find('=');
    EF_CHECK(eq != std::string::npos && eq > 0, "option '", a, "' is not of the form name=value");
    std::string name = a.substr(0, eq);
    const std::string value = a.substr(eq + 1);
    std::vector<size_t> targets = all_steps;
    const size_t dot = name.find('.');
    if (dot != std::string::npos) {
      const std::string step = name.substr(0, dot);
      name = name.substr(dot + 1);
      targets.clear();
      for (size_t i = 0; i < steps.size(); ++i)
        if (steps[i]->name() == step) targets.push_back(i);
      EF_CHECK(!targets.empty(), "option '", a, "' names step '", step,
               "', which is not in this pipeline");
    }
    bool used = false;
    for (size_t i : targets)
      if (has_option(steps[i], name)) {
        values[i][name] = value;
        used = true;
      }
    if (!used) {
      std::string pipeline;
      for (size_t i : targets) pipeline += (pipeline.empty() ? "" : "+") + steps[i]->name();
      throw Error("option '" + name + "' is not an option of " + pipeline +
                  " (valid: " + valid_list(targets) + ")");
    }
  }
  std::vector<StrategyOptions> out;
  for (size_t i = 0; i < steps.size(); ++i)
    out.emplace_back(steps[i]->name(), steps[i]->options(), values[i]);
  return out;
}

PipelineResult run_pipeline(const Graph& model, const std::string& pipeline,
                            const std::vector<std::string>& assignments, StrategyContext& ctx) {
  const std::vector<const Strategy*> steps = parse_pipeline(pipeline);
  const std::vector<StrategyOptions> options = resolve_options(steps, assignments);
  PipelineResult result{model, nlohmann::json::object()};
  result.report["pipeline"] = pipeline;
  result.report["steps"] = nlohmann::json::array();
  nlohmann::json all_options = nlohmann::json::object();
  for (size_t i = 0; i < steps.size(); ++i) {
    if (ctx.log && steps.size() > 1)
      ctx.log("step " + std::to_string(i + 1) + "/" + std::to_string(steps.size()) + ": " +
              steps[i]->name());
    const auto start = std::chrono::steady_clock::now();
    nlohmann::json step = nlohmann::json::object();
    Graph out = steps[i]->apply(result.graph, options[i], ctx, step);
    step["strategy"] = steps[i]->name();
    step["options"] = options[i].values();
    step["seconds"] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.report["steps"].push_back(step);
    all_options[steps[i]->name()] = options[i].values();
    result.graph = std::move(out);
  }
  const auto previous = model.metadata().find(kMetaStrategy);
  const bool chained = previous != model.metadata().end() && previous->second != "identity";
  result.graph.metadata()[kMetaStrategy] = chained ? previous->second + "+" + pipeline : pipeline;
  result.graph.metadata()[kMetaStrategyOptions] = all_options.dump();
  return result;
}

TaskData strategy_training_data(const Graph& model, const std::string& dataset, int64_t count,
                                uint64_t seed) {
  EF_CHECK(count >= 0, "training samples: ", count, " is negative");
  TaskData data = open_dataset(model, dataset)->load("train", 0);
  if (count == 0 || count >= data.size()) return data;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed + 7);
  const at::Tensor idx = at::randperm(data.size(), gen, at::kLong).slice(0, 0, count);
  return data.subset(idx);
}

std::vector<std::vector<at::Tensor>> input_batches(const Graph& model, const TaskData& data,
                                                   int64_t batch_size) {
  std::vector<std::vector<at::Tensor>> batches;
  for (int64_t lo = 0; lo < data.size(); lo += batch_size)
    batches.push_back(
        data.batch_inputs(model, at::arange(lo, std::min(data.size(), lo + batch_size), at::kLong)));
  return batches;
}

}  // namespace edgeforge
