// Benchmark: distillation fine-tuning (what prune, prune-structured and distill do) with the
// teacher run on every training batch against the teacher's outputs computed once on the
// inference plan (strategies::teacher_logits, the default), side by side in one run. Each zoo
// teacher distils into a fresh copy of itself, as pruning does, for --epochs passes over the
// same slice of its training split. Prints seconds for both, the ratio (once / per batch, below
// 1 is faster) and both final losses, which differ only by float rounding (the plan's fused
// kernels against the reference executor; tests/strategies checks the targets within 1e-4).
//
//   build/distill_targets [--samples 2000] [--epochs 2] [--reps 3] [--threads 1]
//                         [--models resnet,bert] [--json out.json]
// The teachers are the zoo's quick recipe (seconds to train, cached); time does not depend on
// how well they are trained.
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <string>

#include "../src/strategies/common.h"
#include "bench_util.h"
#include "edgeforge/runtime.h"
#include "edgeforge/strategy.h"
#include "edgeforge/train.h"
#include "edgeforge/zoo.h"

using namespace edgeforge;

int main(int argc, char** argv) {
  int64_t samples = 2000;
  int epochs = 2, reps = 3, threads = 1;
  std::string models = "resnet,resnext,bert,roberta", json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "distill_targets: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--samples") samples = std::stoll(value());
    else if (a == "--epochs") epochs = std::stoi(value());
    else if (a == "--reps") reps = std::stoi(value());
    else if (a == "--threads") threads = std::stoi(value());
    else if (a == "--models") models = value();
    else if (a == "--json") json_path = value();
    else {
      std::fprintf(stderr, "usage: distill_targets [--samples N] [--epochs N] [--reps N] "
                           "[--threads N] [--models LIST] [--json FILE]\n");
      return 2;
    }
  }
  std::printf("distill_targets: commit %s, %s, %d threads, %lld samples x %d epochs\n",
              bench::git_commit().c_str(), bench::cpu_model().c_str(), threads,
              static_cast<long long>(samples), epochs);
  std::printf("%-10s %14s %12s %8s %14s %12s\n", "teacher", "per batch s", "once s", "ratio",
              "per batch loss", "once loss");
  nlohmann::json rows = nlohmann::json::array();
  for (const std::string& name : bench::split_list(models)) {
    TrainRecipe quick = default_recipe(name, /*quick=*/true);
    quick.threads = threads;
    const Graph teacher = train_zoo_model(name, quick).graph;
    const std::string modality = strategies::model_modality(teacher);
    const TaskData data = strategy_training_data(teacher, "", samples, 0);
    const strategies::KdSettings kd = strategies::default_kd(modality);
    TrainRecipe recipe = default_recipe(name);
    recipe.epochs = epochs;
    recipe.threads = threads;
    double loss[2] = {0, 0};
    auto pass = [&](bool once) {
      Graph student = teacher.clone();
      TrainHooks hooks;
      if (once) {
        hooks.loss = strategies::distillation_hook(
            strategies::teacher_logits(teacher, data, threads), kd);
      } else {  // the teacher on every batch, on the reference executor (the former hook)
        auto exec = std::make_shared<Executor>(teacher);
        hooks.loss = [exec, kd, threads](const at::Tensor& logits, const at::Tensor& labels,
                                         const std::vector<at::Tensor>& inputs,
                                         const at::Tensor&) {
          at::Tensor t;
          {
            at::NoGradGuard no_grad;
            RunOptions run;
            run.threads = threads;
            t = exec->run(inputs, run)[0];
          }
          return distillation_loss(logits, t, labels, kd.alpha, kd.temperature);
        };
      }
      loss[once ? 1 : 0] = train_graph(student, data, recipe, {}, hooks).final_loss;
    };
    auto [per_batch, once] = bench::time_side_by_side([&] { pass(false); }, [&] { pass(true); },
                                                      /*warmup=*/0, reps);
    const double ratio = once.median() / per_batch.median();
    std::printf("%-10s %14.2f %12.2f %8.3f %14.4f %12.4f\n", name.c_str(),
                per_batch.median() / 1000, once.median() / 1000, ratio, loss[0], loss[1]);
    std::fflush(stdout);
    rows.push_back({{"teacher", name},
                    {"per_batch_seconds", per_batch.median() / 1000},
                    {"once_seconds", once.median() / 1000},
                    {"ratio", ratio},
                    {"per_batch_final_loss", loss[0]},
                    {"once_final_loss", loss[1]}});
  }
  if (!json_path.empty()) {
    std::FILE* f = std::fopen(json_path.c_str(), "w");
    if (f == nullptr) {
      std::fprintf(stderr, "distill_targets: cannot write %s\n", json_path.c_str());
      return 1;
    }
    const std::string text =
        nlohmann::json{{"commit", bench::git_commit()}, {"cpu", bench::cpu_model()},
                       {"threads", threads}, {"samples", samples}, {"epochs", epochs},
                       {"teachers", rows}}
            .dump(2);
    std::fputs(text.c_str(), f);
    std::fclose(f);
  }
  return 0;
}
