// `edgeforge optimize` applies a strategy (or a pipeline "a+b") to a model; `edgeforge
// strategies` lists them with what they need and their options.
#include <cstdio>
#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "edgeforge/error.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/strategy.h"

namespace edgeforge::cli {

Action add_optimize(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "optimize",
      "Apply a deployment strategy to a model and write the result as ONNX.\n"
      "Strategies chain with '+' (distill+sptq runs distill, then sptq on the student).\n"
      "Options are NAME=VALUE; prefix one with its step (sptq.method=entropy) to set it\n"
      "for that step only. `edgeforge strategies` lists every strategy and option.\n"
      "The output runs in edgeforge as deployed: `edgeforge eval` on it measures its\n"
      "accuracy with the int8 kernels a quantized model runs on.");
  struct Args {
    std::string model, strategy, out, data;
    std::vector<std::string> options;
    int threads = default_threads();
    uint64_t seed = 0;
    int64_t limit = 0;
    bool json = false, eval = false;
    int64_t eval_limit = 0;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--model", args->model, "input model .onnx file")->required();
  cmd->add_option("--strategy", args->strategy,
                  "strategy (" + StrategyRegistry::global().names() +
                      ") or a pipeline of them joined by '+', e.g. distill+sptq")
      ->required();
  cmd->add_option("-o,--option", args->options, "NAME=VALUE (repeatable); see `edgeforge strategies`");
  cmd->add_option("--out", args->out, "output .onnx file")->required();
  add_data_option(cmd, args->data);
  cmd->add_option("--threads", args->threads, "intra-op threads")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "random seed (sample choice, fine-tuning order)")
      ->capture_default_str();
  cmd->add_option("--limit", args->limit,
                  "use at most N training samples in every step (0 = as the strategy says)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_flag("--eval", args->eval,
                "evaluate the input and the output on the test split (the output's agreement\n"
                "with the input too)");
  cmd->add_option("--eval-limit", args->eval_limit, "with --eval: only the first N test samples")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", args->json, "print the report as JSON on stdout");
  return [args]() {
    const std::vector<const Strategy*> steps = parse_pipeline(args->strategy);
    resolve_options(steps, args->options);  // every option checked before the model is read
    Graph model = load_model(args->model, args->data);
    StrategyContext ctx;
    ctx.threads = args->threads;
    ctx.seed = args->seed;
    ctx.train_limit = args->limit;
    ctx.eval_limit = args->eval_limit;
    ctx.log = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
    ProgressLine line("optimize " + args->strategy);
    ctx.progress = train_progress(line);
    if (args->eval) {  // before the strategy's minutes, not after
      const std::unique_ptr<Dataset> data = open_dataset(model);
      EF_CHECK(data->split_size("test") > 0, "--eval: the test split of ", data->spec().name(),
               " has no samples");
    }
    PipelineResult r = run_pipeline(model, args->strategy, args->options, ctx);
    save_onnx(r.graph, args->out);
    const auto bytes = static_cast<double>(std::filesystem::file_size(args->out));
    r.report["model"] = args->model;
    r.report["out"] = args->out;
    r.report["out_bytes"] = bytes;
    r.report["in_bytes"] = static_cast<double>(std::filesystem::file_size(args->model));
    std::fprintf(stderr, "wrote %s (%.2f MB, input %.2f MB)\n", args->out.c_str(), bytes / 1e6,
                 r.report["in_bytes"].get<double>() / 1e6);
    if (args->eval) {
      EvalOptions eo;
      eo.limit = args->eval_limit;
      eo.threads = args->threads;
      // Without labels the input is measured against itself (agreement 1), so both lines read alike.
      if (!open_dataset(model)->has_labels()) eo.reference = &model;
      const nlohmann::json before = eval_json(evaluate(model, eo));
      eo.reference = &model;  // agreement with the input, beside accuracy
      const nlohmann::json after = eval_json(evaluate(r.graph, eo));
      std::fprintf(stderr, "input:  %s\noutput: %s\n", eval_summary(before).c_str(),
                   eval_summary(after).c_str());
      r.report["eval_in"] = before;
      r.report["eval_out"] = after;
    }
    if (args->json) std::printf("%s\n", r.report.dump(2).c_str());
    return 0;
  };
}

Action add_strategies(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "strategies", "List the deployment strategies, what each needs, and its options with\n"
                    "their defaults (set them with `optimize -o NAME=VALUE`).");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "print as JSON on stdout");
  return [json]() {
    nlohmann::json all = nlohmann::json::array();
    for (const Strategy* s : StrategyRegistry::global().all()) {
      nlohmann::json j = {{"name", s->name()}, {"summary", s->summary()}, {"needs", s->needs()}};
      j["options"] = nlohmann::json::array();
      for (const OptionSpec& o : s->options())
        j["options"].push_back({{"name", o.name}, {"default", o.default_value}, {"help", o.help}});
      all.push_back(j);
    }
    if (*json) {
      std::printf("%s\n", all.dump(2).c_str());
      return 0;
    }
    for (const nlohmann::json& s : all) {
      std::printf("%s\n  %s\n  needs: %s\n", s["name"].get<std::string>().c_str(),
                  s["summary"].get<std::string>().c_str(), s["needs"].get<std::string>().c_str());
      for (const nlohmann::json& o : s["options"]) {
        const std::string def = o["default"].get<std::string>();
        std::printf("    %-18s %s%s\n", o["name"].get<std::string>().c_str(),
                    o["help"].get<std::string>().c_str(),
                    def.empty() ? "" : (" (default: " + def + ")").c_str());
      }
      std::printf("\n");
    }
    std::printf("Combine strategies with '+', e.g. distill+sptq or prune+sptq.\n");
    return 0;
  };
}

}  // namespace edgeforge::cli
