#include <chrono>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/train.h"
#include "edgeforge/util.h"
#include "edgeforge/zoo.h"

namespace edgeforge::cli {

Action add_zoo(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "zoo", "List the default model zoo; with --train, train every model with its default\n"
             "recipe (cached), evaluate each on its test split and print a table.");
  struct Args {
    bool train = false, quick = false, json = false;
    std::string out_dir = "out/zoo";
    int threads = default_threads();
  };
  auto args = std::make_shared<Args>();
  cmd->add_flag("--train", args->train, "train and evaluate the whole zoo");
  cmd->add_option("--out-dir", args->out_dir, "where trained models and summary.json go")
      ->capture_default_str();
  cmd->add_flag("--quick", args->quick, "seconds-long recipes and small evaluation slices");
  cmd->add_option("--threads", args->threads, "intra-op threads")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "print the summary as JSON on stdout");
  return [args]() {
    if (!args->train) {
      std::printf("%-14s %-8s %-6s %-14s %-14s %s\n", "model", "family", "kind", "data set",
                  "teacher", "description");
      for (const ZooModelSpec& s : zoo_models())
        std::printf("%-14s %-8s %-6s %-14s %-14s %s\n", s.name.c_str(), s.family.c_str(),
                    s.modality.c_str(), s.dataset.c_str(), s.teacher.empty() ? "-" : s.teacher.c_str(),
                    s.description.c_str());
      return 0;
    }
    std::filesystem::create_directories(args->out_dir);
    const auto start = std::chrono::steady_clock::now();
    nlohmann::json summary = nlohmann::json::array();
    for (const ZooModelSpec& spec : zoo_models()) {
      TrainRecipe recipe = default_recipe(spec.name, args->quick);
      recipe.threads = args->threads;
      ProgressLine line("train " + spec.name);
      TrainZooResult r = train_zoo_model(spec.name, recipe, true, train_progress(line));
      if (r.from_cache)
        std::fprintf(stderr, "train %s: cached (%s)\n", spec.name.c_str(), r.cache_path.c_str());
      else
        line.finish("");
      const std::string path = args->out_dir + "/" + spec.name + ".onnx";
      save_onnx(r.graph, path);
      EvalOptions eo;
      eo.threads = args->threads;
      if (args->quick) eo.limit = 256;
      EvalResult e = evaluate(r.graph, eo);
      nlohmann::json row = {{"model", spec.name},
                            {"teacher", spec.teacher},
                            {"dataset", e.dataset},
                            {"split", e.split},
                            {"samples", e.samples},
                            {"accuracy", e.accuracy},
                            {"parameters", r.graph.parameter_count()},
                            {"train_seconds", r.report.seconds},
                            {"from_cache", r.from_cache},
                            {"file", path}};
      if (e.has_f1) row["f1"] = e.f1;
      summary.push_back(row);
      std::fprintf(stderr, "eval %s: %s %.4f on %lld %s samples\n", spec.name.c_str(),
                   e.has_f1 ? "spam F1" : "top-1", e.has_f1 ? e.f1 : e.accuracy,
                   static_cast<long long>(e.samples), e.split.c_str());
    }
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    write_file_atomic(args->out_dir + "/summary.json",
                      nlohmann::json{{"models", summary}, {"wall_seconds", wall},
                                     {"threads", args->threads}, {"quick", args->quick}}
                          .dump(2));
    if (args->json) {
      std::printf("%s\n", summary.dump(2).c_str());
      return 0;
    }
    std::printf("%-14s %-14s %-9s %8s %10s %9s\n", "model", "teacher", "metric", "value",
                "params", "train s");
    for (const auto& row : summary) {
      const bool text = row.contains("f1");
      const std::string teacher = row["teacher"].get<std::string>();
      char train_s[32];
      if (row["from_cache"].get<bool>())
        std::snprintf(train_s, sizeof train_s, "cached");
      else
        std::snprintf(train_s, sizeof train_s, "%.1f", row["train_seconds"].get<double>());
      std::printf("%-14s %-14s %-9s %8.4f %10lld %9s\n", row["model"].get<std::string>().c_str(),
                  teacher.empty() ? "-" : teacher.c_str(), text ? "spam F1" : "top-1",
                  text ? row["f1"].get<double>() : row["accuracy"].get<double>(),
                  row["parameters"].get<long long>(), train_s);
    }
    std::printf("wall time %.1f s (%d threads); models and summary.json in %s\n", wall,
                args->threads, args->out_dir.c_str());
    return 0;
  };
}

}  // namespace edgeforge::cli
