#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/train.h"

namespace edgeforge::cli {

nlohmann::json eval_json(const EvalResult& r) {
  nlohmann::json j = {{"dataset", r.dataset}, {"split", r.split},     {"samples", r.samples},
                      {"accuracy", r.accuracy}, {"seconds", r.seconds}};
  if (r.has_f1) {
    j["f1"] = r.f1;
    j["precision"] = r.precision;
    j["recall"] = r.recall;
  }
  return j;
}

std::string eval_summary(const nlohmann::json& eval) {
  const bool text = eval.contains("f1");
  char buf[128];
  std::snprintf(buf, sizeof buf, "%s %.4f on %lld %s samples", text ? "spam F1" : "top-1",
                eval.at(text ? "f1" : "accuracy").get<double>(),
                eval.at("samples").get<long long>(), eval.at("split").get<std::string>().c_str());
  return buf;
}

Action add_eval(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "eval", "Measure a model's accuracy on a held-out split (never the training data).\n"
              "Images: top-1 accuracy. Text: F1 of the spam class, precision, recall, accuracy.");
  struct Args {
    std::string model, data, split = "test";
    int64_t limit = 0, batch_size = 256;
    int threads = default_threads();
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--model", args->model, "model .onnx file")->required();
  cmd->add_option("--data", args->data, "fashion-mnist | spam (default: the model's own)")
      ->check(CLI::IsMember({"fashion-mnist", "spam"}));
  cmd->add_option("--split", args->split, "validation | test")
      ->check(CLI::IsMember({"validation", "test"}))
      ->capture_default_str();
  cmd->add_option("--limit", args->limit, "only the first N samples (0 = all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--batch-size", args->batch_size, "samples per run")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, "intra-op threads")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "print the result as JSON on stdout");
  return [args]() {
    Graph graph = load_onnx(args->model);
    EvalOptions opts;
    opts.dataset = args->data;
    opts.split = args->split;
    opts.limit = args->limit;
    opts.batch_size = args->batch_size;
    opts.threads = args->threads;
    EvalResult r = evaluate(graph, opts);
    if (args->json) {
      nlohmann::json j = eval_json(r);
      j["model"] = args->model;
      j["threads"] = args->threads;
      std::printf("%s\n", j.dump(2).c_str());
    } else if (r.has_f1) {
      std::printf("%s  %s/%s  n=%lld  f1 %.4f  precision %.4f  recall %.4f  accuracy %.4f\n",
                  args->model.c_str(), r.dataset.c_str(), r.split.c_str(),
                  static_cast<long long>(r.samples), r.f1, r.precision, r.recall, r.accuracy);
    } else {
      std::printf("%s  %s/%s  n=%lld  top-1 accuracy %.4f\n", args->model.c_str(),
                  r.dataset.c_str(), r.split.c_str(), static_cast<long long>(r.samples),
                  r.accuracy);
    }
    return 0;
  };
}

}  // namespace edgeforge::cli
