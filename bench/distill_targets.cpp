// Benchmark: distillation fine-tuning (what prune, prune-structured and distill do) with the
// teacher run on every training batch against the teacher's outputs computed once on the
// inference plan (strategies::teacher_logits, the default); Google Benchmark, one fine-tuning
// per iteration, the cases' repetitions randomly interleaved in one run (3 by default). Each
// zoo teacher distils into a fresh copy of itself, as pruning does, for --epochs passes over
// the same slice of its training split. Prints the ratio once / per_batch per teacher (below 1
// is faster); counters samples/s and final_loss, which differs between the two only by float
// rounding (the plan's fused kernels against the reference executor; tests/strategies checks
// the targets within 1e-4).
//
//   build/distill_targets [--samples 2000] [--epochs 2] [--threads 1] [--models resnet,bert]
//                         [Google Benchmark flags: --benchmark_repetitions=3 --json out.json ...]
// Cases: distill/per_batch/<teacher> and distill/once/<teacher>. The teachers are the zoo's
// quick recipe (seconds to train, cached; trained when a teacher's first case runs, untimed);
// time does not depend on how well they are trained.
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>

#include "../src/strategies/common.h"
#include "bench_util.h"
#include "edgeforge/runtime.h"
#include "edgeforge/strategy.h"
#include "edgeforge/train.h"
#include "edgeforge/zoo.h"

using namespace edgeforge;

namespace {

int64_t samples = 2000;
int epochs = 2, threads = 1;
std::string models = "resnet,resnext,bert,roberta";

struct Teacher {
  Graph graph;
  TaskData data;
  strategies::KdSettings kd;
};

// Trained (or read from the cache) when the teacher's first case runs.
const Teacher& teacher(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Teacher>> teachers;
  std::unique_ptr<Teacher>& t = teachers[name];
  if (!t) {
    TrainRecipe quick = default_recipe(name, /*quick=*/true);
    quick.threads = threads;
    Graph g = train_zoo_model(name, quick).graph;
    TaskData data = strategy_training_data(g, "", samples, 0);
    const strategies::KdSettings kd = strategies::default_kd(strategies::model_modality(g));
    t = std::make_unique<Teacher>(Teacher{std::move(g), std::move(data), kd});
  }
  return *t;
}

// One fine-tuning of a fresh copy of the teacher.
TrainReport distill(const std::string& name, const Teacher& t, bool once) {
  TrainRecipe recipe = default_recipe(name);
  recipe.epochs = epochs;
  recipe.threads = threads;
  Graph student = t.graph.clone();
  TrainHooks hooks;
  if (once) {
    hooks.loss = strategies::distillation_hook(strategies::teacher_logits(t.graph, t.data, threads), t.kd);
  } else {  // the teacher on every batch, on the reference executor (the former hook)
    auto exec = std::make_shared<Executor>(t.graph);
    hooks.loss = [exec, kd = t.kd](const at::Tensor& logits, const at::Tensor& labels,
                                   const std::vector<at::Tensor>& inputs, const at::Tensor&) {
      at::Tensor target;
      {
        at::NoGradGuard no_grad;
        RunOptions run;
        run.threads = threads;
        target = exec->run(inputs, run)[0];
      }
      return distillation_loss(logits, target, labels, kd.alpha, kd.temperature);
    };
  }
  return train_graph(student, t.data, recipe, {}, hooks);
}

void register_cases() {
  benchmark::AddCustomContext("threads", std::to_string(threads));
  benchmark::AddCustomContext("samples", std::to_string(samples));
  benchmark::AddCustomContext("epochs", std::to_string(epochs));
  for (const std::string& name : bench::split_list(models)) {
    for (const bool once : {false, true}) {
      const std::string bm = std::string(once ? "distill/once/" : "distill/per_batch/") + name;
      benchmark::RegisterBenchmark(bm.c_str(), [name, once](benchmark::State& state) {
        const Teacher* t = nullptr;
        try {
          t = &teacher(name);
        } catch (const std::exception& e) {
          state.SkipWithError(e.what());
          for (auto _ : state) {
          }
          return;
        }
        TrainReport result;
        for (auto _ : state) result = distill(name, *t, once);
        bench::training_counters(state, result.samples_seen, result.final_loss);
      })->Iterations(1)->UseRealTime()->Unit(benchmark::kSecond);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bench::Suite suite;
  suite.name = "distill_targets";
  suite.usage =
      "distill_targets options: [--samples N] [--epochs N] [--threads N] [--models a,b]";
  suite.parse_options = [](const std::vector<std::string>& args) {
    return bench::each_option(args, [](const std::string& name, const std::string& value) {
      if (name == "--samples") samples = std::stoll(value);
      else if (name == "--epochs") epochs = std::stoi(value);
      else if (name == "--threads") threads = std::stoi(value);
      else if (name == "--models") models = value;
      else return false;
      return true;
    });
  };
  suite.default_flags = {"--benchmark_repetitions=3"};
  suite.comparisons = {{"once", "per_batch"}};
  suite.setup = register_cases;
  return bench::run_benchmarks(argc, argv, suite);
}
