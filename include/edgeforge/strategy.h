// edgeforge/strategy.h: deployment strategies, their registry and their composition.
//
// A strategy transforms a model (Graph -> Graph) with typed options and declares what it needs
// (calibration data, training data, a teacher). Each lives in one file under src/strategies/
// and registers itself by name; "a+b" runs a, then b on a's result, with no code of its own.
// Options are text "name=value"; an unprefixed name applies to every step of a pipeline that
// has that option, "step.name=value" to one step. Every value is checked before any step runs.
//
//   StrategyContext ctx;  ctx.threads = 2;
//   PipelineResult r = run_pipeline(load_onnx("bert.onnx"), "distill+sptq",
//                                   {"sptq.method=entropy"}, ctx);
//   save_onnx(r.graph, "bert.dsptq.onnx");
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edgeforge/graph.h"
#include "edgeforge/task.h"
#include "edgeforge/train.h"

namespace edgeforge {

struct OptionSpec {
  std::string name;
  std::string default_value;  // as text; documented special values such as "auto"
  std::string help;
  // Throws Error (message without the option name) when `value` is not valid.
  std::function<void(const std::string& value)> check;
};

// Checkers for OptionSpec::check.
std::function<void(const std::string&)> check_int(int64_t lo, int64_t hi);
std::function<void(const std::string&)> check_double(double lo, double hi, bool lo_open = false,
                                                     bool hi_open = false);
std::function<void(const std::string&)> check_choice(std::vector<std::string> choices);
std::function<void(const std::string&)> check_dataset();  // "" or a known data set
// "auto" (a default chosen per model), or a value `check` accepts.
std::function<void(const std::string&)> check_auto_or(std::function<void(const std::string&)> check);

// The options of one step: validated text values, read typed.
class StrategyOptions {
 public:
  StrategyOptions(std::string strategy, const std::vector<OptionSpec>& specs,
                  std::map<std::string, std::string> values);
  const std::string& text(const std::string& name) const;
  int64_t integer(const std::string& name) const;
  double number(const std::string& name) const;
  bool flag(const std::string& name) const;  // "true"/"false"/"1"/"0"
  bool is_default(const std::string& name) const;
  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  std::string strategy_;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::string> defaults_;
};

// What every strategy may use besides its options.
struct StrategyContext {
  int threads = 1;
  uint64_t seed = 0;
  // Caps training and calibration samples (0 = what the strategy asks for); tests use slices.
  int64_t train_limit = 0;
  // Caps evaluation samples when a strategy scores an intermediate model (0 = whole split).
  int64_t eval_limit = 0;
  std::function<void(const std::string&)> log;  // one line of progress per call
  ProgressFn progress;                          // training steps
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::string name() const = 0;
  virtual std::string summary() const = 0;  // one sentence
  virtual std::string needs() const = 0;    // "the model only", "training data", ...
  virtual std::vector<OptionSpec> options() const = 0;
  // Returns the transformed model; writes what it did (figures) into `report`.
  virtual Graph apply(const Graph& model, const StrategyOptions& options, StrategyContext& ctx,
                      nlohmann::json& report) const = 0;
};

// How a study deploys a strategy's model. A study strategy is a pipeline's model (its name:
// "sptq", "distill+sptq"; "identity" for the model itself) on each single-tier deployment,
// unless a placement strategy says otherwise: "partition" splits the model at the study's cut
// over each split deployment ("mobile-edge"), "auto-partition" deploys it where the placement
// estimate ranks first (`bench --at auto`). A composable placement also places a pipeline's
// model: "sptq+partition" is sptq's model, split.
enum class PlacementRule {
  whole,      // on each single-tier deployment
  split,      // split at the study's cut, on each split deployment
  automatic,  // the best estimated placement and cut, on the deployment kAutoDeployment
};
inline constexpr const char* kAutoDeployment = "auto";

struct PlacementStrategy {
  std::string name;
  std::string summary;  // one sentence
  PlacementRule rule = PlacementRule::whole;
  bool composable = false;  // "P+name" places P's model
};

class StrategyRegistry {
 public:
  static StrategyRegistry& global();
  void add(std::unique_ptr<Strategy> strategy);
  const Strategy* find(const std::string& name) const;
  std::vector<const Strategy*> all() const;  // sorted by name
  std::string names() const;                 // "distill, dynamic, ..."

  void add_placement(PlacementStrategy placement);
  const PlacementStrategy* find_placement(const std::string& name) const;
  const std::vector<PlacementStrategy>& placements() const { return placements_; }

 private:
  std::vector<std::unique_ptr<Strategy>> strategies_;
  std::vector<PlacementStrategy> placements_;
};

namespace detail {
template <typename T>
struct StrategyRegistrar {
  StrategyRegistrar() { StrategyRegistry::global().add(std::make_unique<T>()); }
};
}  // namespace detail
#define EF_REGISTER_STRATEGY(T) static const ::edgeforge::detail::StrategyRegistrar<T> ef_strategy_##T

namespace detail {
struct PlacementRegistrar {
  explicit PlacementRegistrar(PlacementStrategy p) {
    StrategyRegistry::global().add_placement(std::move(p));
  }
};
}  // namespace detail
#define EF_REGISTER_PLACEMENT(id, ...) \
  static const ::edgeforge::detail::PlacementRegistrar ef_placement_##id{__VA_ARGS__}

// A study strategy's name read as what it deploys and how.
struct StudyStrategy {
  std::string pipeline;  // the model it deploys: a pipeline, or "identity"
  PlacementRule rule = PlacementRule::whole;
  bool split() const { return rule == PlacementRule::split; }
  bool automatic() const { return rule == PlacementRule::automatic; }
};
// Error naming an unknown step, listing the strategies and the placements.
StudyStrategy parse_study_strategy(const std::string& name);
// The forms parse_study_strategy accepts besides pipelines: "identity, partition,
// auto-partition, P+partition".
std::string study_strategy_forms();

// The steps of "a+b+c"; Error naming an unknown step and listing the valid ones.
std::vector<const Strategy*> parse_pipeline(const std::string& pipeline);

// Splits "name=value" / "step.name=value" assignments over the steps and checks them all.
// Error for a malformed assignment, an option no step has, or a value out of range.
std::vector<StrategyOptions> resolve_options(const std::vector<const Strategy*>& steps,
                                             const std::vector<std::string>& assignments);

struct PipelineResult {
  Graph graph;
  nlohmann::json report;  // {"pipeline", "steps": [{"strategy", "options", "seconds", ...}]}
};

// Runs the steps in order; the output records the pipeline in its metadata
// (kMetaStrategy, kMetaStrategyOptions).
PipelineResult run_pipeline(const Graph& model, const std::string& pipeline,
                            const std::vector<std::string>& assignments, StrategyContext& ctx);

inline constexpr const char* kMetaStrategy = "edgeforge.strategy";  // e.g. "distill+sptq"
inline constexpr const char* kMetaStrategyOptions = "edgeforge.strategy_options";  // JSON

// ---- data helpers for strategies ----

// Samples of the model's training split (its data set from metadata, or `dataset` when
// given): the first `count` of a seeded shuffle, or all of them when count is 0.
TaskData strategy_training_data(const Graph& model, const std::string& dataset, int64_t count,
                                uint64_t seed);
// Input batches (the graph's inputs in order) over all of `data`.
std::vector<std::vector<at::Tensor>> input_batches(const Graph& model, const TaskData& data,
                                                   int64_t batch_size);

}  // namespace edgeforge
