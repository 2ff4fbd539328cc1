#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/train.h"
#include "edgeforge/util.h"
#include "edgeforge/zoo.h"

namespace edgeforge::cli {

namespace {
std::string zoo_names() {
  std::string names;
  for (const ZooModelSpec& s : zoo_models()) names += (names.empty() ? "" : ", ") + s.name;
  return names;
}
}  // namespace

Action add_train(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "train", "Train a zoo model on its data set and write it as ONNX.\n"
               "Defaults come from the model's recipe (image: SGD, text: AdamW); trained\n"
               "models are cached by a hash of the recipe and reused.");
  struct Args {
    std::string model, out;
    bool quick = false, no_cache = false, json = false;
    std::optional<int> epochs;
    std::optional<int64_t> batch_size, limit;
    std::optional<double> lr;
    std::optional<uint64_t> seed;
    int threads = default_threads();
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--model", args->model, "zoo model: " + zoo_names())->required();
  cmd->add_option("--out", args->out, "output .onnx file")->required();
  cmd->add_flag("--quick", args->quick, "a seconds-long recipe on a small slice (for tests)");
  cmd->add_option("--epochs", args->epochs, "epochs (default: the model's recipe)");
  cmd->add_option("--batch-size", args->batch_size, "samples per step (default: the recipe)");
  cmd->add_option("--lr", args->lr, "peak learning rate (default: the recipe)");
  cmd->add_option("--seed", args->seed, "random seed (default 0)");
  cmd->add_option("--limit", args->limit, "use only the first N training samples (default all)");
  cmd->add_option("--threads", args->threads, "intra-op threads")->capture_default_str();
  cmd->add_flag("--no-cache", args->no_cache, "train even when a cached model matches");
  cmd->add_flag("--json", args->json, "print the training report as JSON on stdout");
  return [args]() {
    TrainRecipe recipe = default_recipe(args->model, args->quick);
    if (args->epochs) recipe.epochs = *args->epochs;
    if (args->batch_size) recipe.batch_size = *args->batch_size;
    if (args->lr) recipe.lr = *args->lr;
    if (args->seed) recipe.seed = *args->seed;
    if (args->limit) recipe.train_limit = *args->limit;
    recipe.threads = args->threads;
    ProgressLine line("train " + args->model);
    TrainZooResult r = train_zoo_model(args->model, recipe, !args->no_cache, train_progress(line));
    save_onnx(r.graph, args->out);
    if (r.from_cache) {
      std::fprintf(stderr, "train %s: reused cached model %s\n", args->model.c_str(),
                   r.cache_path.c_str());
    } else {
      char detail[160];
      std::snprintf(detail, sizeof detail, "loss %.4f -> %.4f, %lld samples", r.report.first_loss,
                    r.report.final_loss, static_cast<long long>(r.report.samples_seen));
      line.finish(detail);
    }
    std::fprintf(stderr, "wrote %s\n", args->out.c_str());
    if (args->json) {
      nlohmann::json j = {{"model", args->model},
                          {"out", args->out},
                          {"recipe", nlohmann::json::parse(recipe.to_json())},
                          {"threads", recipe.threads},
                          {"from_cache", r.from_cache},
                          {"first_loss", r.report.first_loss},
                          {"final_loss", r.report.final_loss},
                          {"train_seconds", r.report.seconds}};
      std::printf("%s\n", j.dump(2).c_str());
    }
    return 0;
  };
}

}  // namespace edgeforge::cli
