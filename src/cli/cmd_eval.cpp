#include <cstdio>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "edgeforge/dataset.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/train.h"

namespace edgeforge::cli {

nlohmann::json eval_json(const EvalResult& r) {
  nlohmann::json j = {{"dataset", r.dataset}, {"split", r.split},   {"samples", r.samples},
                      {"metric", r.metric},   {"value", r.value},   {"seconds", r.seconds}};
  if (r.labelled) j["accuracy"] = r.accuracy;
  if (r.has_top5) j["top5"] = r.top5;
  if (r.has_f1) {
    j["f1"] = r.f1;
    j["precision"] = r.precision;
    j["recall"] = r.recall;
  }
  if (r.has_f1_macro) j["f1_macro"] = r.f1_macro;
  if (r.has_agreement) {
    j["agreement"] = r.agreement;
    j["kl"] = r.kl;
  }
  return j;
}

std::string eval_summary(const nlohmann::json& eval) {
  char buf[192];
  std::snprintf(buf, sizeof buf, "%s %.4f on %lld %s samples",
                metric_label(eval.at("metric").get<std::string>()).c_str(),
                eval.at("value").get<double>(), eval.at("samples").get<long long>(),
                eval.at("split").get<std::string>().c_str());
  std::string out = buf;
  if (eval.contains("agreement") && eval.at("metric") != "agreement") {
    std::snprintf(buf, sizeof buf, ", agreement %.4f", eval.at("agreement").get<double>());
    out += buf;
  }
  return out;
}

// "top-1 accuracy 0.9128  top-5 0.9950": every metric measured, the data set's own first.
std::string eval_line(const EvalResult& r) {
  char buf[96];
  std::string out;
  auto add = [&](const char* name, double v) {
    std::snprintf(buf, sizeof buf, "%s%s %.4f", out.empty() ? "" : "  ", name, v);
    out += buf;
  };
  if (r.labelled) {
    if (r.has_f1) {
      add("f1", r.f1);
      add("precision", r.precision);
      add("recall", r.recall);
    }
    add(r.has_f1 ? "accuracy" : "top-1 accuracy", r.accuracy);
    if (r.has_top5) add("top-5", r.top5);
    if (r.has_f1_macro) add("macro-f1", r.f1_macro);
  }
  if (r.has_agreement) {
    add("agreement", r.agreement);
    add("kl", r.kl);
  }
  return out;
}

Action add_eval(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "eval", "Measure a model's accuracy on a held-out split (never the training data).\n"
              "The data set's metric: top-1 (and top-5 with more than 5 classes) for images,\n"
              "F1 of class 1 with precision and recall for two classes, accuracy and macro F1\n"
              "for more. With --reference, also the agreement with that model (top-1 agreement\n"
              "and mean KL of its softmax to this one's): all a data set without labels gives.");
  struct Args {
    std::string model, data, reference, split = "test";
    int64_t limit = 0, batch_size = 256;
    int threads = default_threads();
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--model", args->model, "model .onnx file")->required();
  add_data_option(cmd, args->data);
  cmd->add_option("--reference", args->reference,
                  "the original model: report agreement with it (needed for unlabelled data)");
  cmd->add_option("--split", args->split, "validation | test")
      ->check(CLI::IsMember({"validation", "test"}))
      ->capture_default_str();
  cmd->add_option("--limit", args->limit, "only the first N samples (0 = all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--batch-size", args->batch_size, "samples per run")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, "intra-op threads")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "print the result as JSON on stdout");
  return [args]() {
    Graph graph = load_model(args->model, args->data);
    std::optional<Graph> reference;
    if (!args->reference.empty()) reference = load_onnx(args->reference);
    EvalOptions opts;
    opts.split = args->split;
    opts.limit = args->limit;
    opts.batch_size = args->batch_size;
    opts.threads = args->threads;
    opts.reference = reference ? &*reference : nullptr;
    EvalResult r = evaluate(graph, opts);
    if (args->json) {
      nlohmann::json j = eval_json(r);
      j["model"] = args->model;
      j["threads"] = args->threads;
      if (reference) j["reference"] = args->reference;
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::printf("%s  %s/%s  n=%lld  %s\n", args->model.c_str(), r.dataset.c_str(),
                  r.split.c_str(), static_cast<long long>(r.samples), eval_line(r).c_str());
    }
    return 0;
  };
}

}  // namespace edgeforge::cli
