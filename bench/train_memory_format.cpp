// Benchmark: training the image zoo models with 4-D tensors in the standard NCHW layout against
// channels-last (NHWC, TrainRecipe::channels_last, the default), side by side in one run.
// Prints seconds per training pass over the same slice for both, the ratio (channels-last /
// NCHW, below 1 is faster) and both final losses. The layouts sum in different orders, so
// the two runs drift apart by float rounding step by step and their losses differ slightly
// after a pass (tests/train checks agreement within 1e-4 after four steps).
//
//   build/train_memory_format [--samples 3840] [--reps 3] [--threads 2] [--json out.json]
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <string>

#include "bench_util.h"
#include "edgeforge/task.h"
#include "edgeforge/train.h"
#include "edgeforge/zoo.h"

using namespace edgeforge;

int main(int argc, char** argv) {
  int64_t samples = 3840;
  int reps = 3, threads = 2;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "train_memory_format: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--samples") samples = std::stoll(value());
    else if (a == "--reps") reps = std::stoi(value());
    else if (a == "--threads") threads = std::stoi(value());
    else if (a == "--json") json_path = value();
    else {
      std::fprintf(stderr, "usage: train_memory_format [--samples N] [--reps N] [--threads N] "
                           "[--json FILE]\n");
      return 2;
    }
  }
  TaskDataOptions data_opts;
  data_opts.limit = samples;
  const TaskData data = load_task_data(kDatasetFashionMnist, "train", data_opts);
  std::printf("train_memory_format: commit %s, %s, %d threads, %lld samples per pass, "
              "batch 128\n",
              bench::git_commit().c_str(), bench::cpu_model().c_str(), threads,
              static_cast<long long>(samples));
  std::printf("%-14s %10s %10s %8s %12s %12s\n", "model", "NCHW s", "NHWC s", "ratio",
              "NCHW loss", "NHWC loss");
  nlohmann::json rows = nlohmann::json::array();
  for (const ZooModelSpec& spec : zoo_models()) {
    if (spec.modality != "image") continue;
    TrainRecipe recipe = default_recipe(spec.name);
    recipe.epochs = 1;
    recipe.threads = threads;
    double loss[2] = {0, 0};
    // Each pass trains a fresh copy of the same initial weights.
    auto pass = [&](bool channels_last) {
      Graph g = build_zoo_model(spec.name);
      TrainRecipe r = recipe;
      r.channels_last = channels_last;
      loss[channels_last ? 1 : 0] = train_graph(g, data, r).final_loss;
    };
    auto [nchw, nhwc] = bench::time_side_by_side([&] { pass(false); }, [&] { pass(true); },
                                                 /*warmup=*/1, reps);
    const double ratio = nhwc.median() / nchw.median();
    std::printf("%-14s %10.2f %10.2f %8.3f %12.4f %12.4f\n", spec.name.c_str(),
                nchw.median() / 1000, nhwc.median() / 1000, ratio, loss[0], loss[1]);
    rows.push_back({{"model", spec.name},
                    {"nchw_seconds", nchw.median() / 1000},
                    {"channels_last_seconds", nhwc.median() / 1000},
                    {"ratio", ratio},
                    {"nchw_final_loss", loss[0]},
                    {"channels_last_final_loss", loss[1]}});
  }
  if (!json_path.empty()) {
    std::FILE* f = std::fopen(json_path.c_str(), "w");
    if (f == nullptr) {
      std::fprintf(stderr, "train_memory_format: cannot write %s\n", json_path.c_str());
      return 1;
    }
    const std::string text =
        nlohmann::json{{"commit", bench::git_commit()}, {"cpu", bench::cpu_model()},
                       {"threads", threads}, {"samples", samples}, {"models", rows}}
            .dump(2);
    std::fputs(text.c_str(), f);
    std::fclose(f);
  }
  return 0;
}
