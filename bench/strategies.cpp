// Benchmark: every deployment strategy on each zoo teacher, side by side in one run. For each
// teacher it makes (or reuses) the strategy's model, then times all of them in turns at batch 1
// on one thread, warm (blocks of 10 consecutive runs in alternating order, bench_util.h's
// time_side_by_side; median of --reps runs each, rounded up to whole blocks), and reports
// test accuracy (spam F1 for text), size on disk, the share of MACs that run in int8, and
// speedup over identity. Every model runs on the inference plan (oneDNN, edgeforge/lower.h).
// Latency and accuracy are both measured on the deployed model: QDQ files run on the int8
// kernels (edgeforge/lower.h), exactly as `edgeforge eval` runs them.
//
//   build/strategies --zoo-dir out/zoo --out-dir out/strategies [--models resnet,bert]
//                    [--strategies identity,sptq,...] [--reps 200] [--eval-limit N]
//                    [--json out.json]
// The zoo models come from `edgeforge zoo --train --out-dir out/zoo`.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>

#include "bench_util.h"
#include "edgeforge/dataset.h"
#include "edgeforge/error.h"
#include "edgeforge/lower.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/strategy.h"
#include "edgeforge/summary.h"
#include "edgeforge/train.h"
#include "edgeforge/zoo.h"

using namespace edgeforge;

namespace {


// The strategies the study times for a teacher of this modality.
std::vector<std::string> default_strategies(const std::string& modality) {
  std::vector<std::string> s = {"identity", "sptq"};
  if (modality == "text") s.push_back("dynamic");
  for (const char* name : {"qat", "prune", "prune-structured", "distill", "distill+sptq"})
    s.push_back(name);
  return s;
}

struct Row {
  std::string strategy, path;
  std::unique_ptr<InferenceSession> session;
  bench::Timing timing;
  EvalResult eval;
  double bytes = 0;
  double int8_share = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::string zoo_dir = "out/zoo", out_dir = "out/strategies", json_path;
  std::vector<std::string> models = {"resnet", "resnext", "bert", "roberta"};
  std::vector<std::string> strategies;
  int reps = 200;
  int64_t eval_limit = 0;
  int threads = 1;
  bool profile = false;
  for (int i = 1; i < argc; ++i) {
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "strategies: %s needs a value\n", argv[i]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--zoo-dir")) zoo_dir = next();
    else if (!std::strcmp(argv[i], "--out-dir")) out_dir = next();
    else if (!std::strcmp(argv[i], "--models")) models = bench::split_list(next());
    else if (!std::strcmp(argv[i], "--strategies")) strategies = bench::split_list(next());
    else if (!std::strcmp(argv[i], "--reps")) reps = std::stoi(next());
    else if (!std::strcmp(argv[i], "--eval-limit")) eval_limit = std::stoll(next());
    else if (!std::strcmp(argv[i], "--threads")) threads = std::stoi(next());
    else if (!std::strcmp(argv[i], "--json")) json_path = next();
    else if (!std::strcmp(argv[i], "--profile")) profile = true;
    else {
      std::fprintf(stderr,
                   "usage: strategies [--zoo-dir DIR] [--out-dir DIR] [--models a,b] "
                   "[--strategies a,b] [--reps N] [--eval-limit N] [--threads N] [--json F]\n");
      return 2;
    }
  }
  std::filesystem::create_directories(out_dir);
  nlohmann::json all = nlohmann::json::array();
  try {
    for (const std::string& model : models) {
      const std::string in_path = zoo_dir + "/" + model + ".onnx";
      const Graph teacher = load_onnx(in_path);
      const std::string modality = open_dataset(teacher)->modality();
      std::vector<Row> rows;
      for (const std::string& s : strategies.empty() ? default_strategies(modality) : strategies) {
        Row r;
        r.strategy = s;
        r.path = s == "identity" ? in_path : out_dir + "/" + model + "." + s + ".onnx";
        if (!std::filesystem::exists(r.path)) {
          std::fprintf(stderr, "%s: making %s\n", model.c_str(), s.c_str());
          StrategyContext ctx;
          ctx.threads = threads;
          ctx.log = [](const std::string& line) { std::fprintf(stderr, "  %s\n", line.c_str()); };
          PipelineResult p = run_pipeline(teacher, s, {}, ctx);
          save_onnx(p.graph, r.path);
        }
        const Graph g = load_onnx(r.path);
        r.bytes = static_cast<double>(std::filesystem::file_size(r.path));
        const ModelSummary sum = summarize(g);
        r.int8_share = sum.macs > 0 ? double(sum.int8_macs + sum.dynamic_int8_macs) / double(sum.macs) : 0;
        EvalOptions eo;
        eo.threads = threads;
        eo.limit = eval_limit;
        r.eval = evaluate(g, eo);
        r.session = std::make_unique<InferenceSession>(g);
        rows.push_back(std::move(r));
      }
      // One real test sample, batch 1.
      const TaskData sample = open_dataset(teacher)->load("test", 1);
      RunOptions run;
      run.threads = 1;
      at::NoGradGuard no_grad;
      std::vector<std::vector<at::Tensor>> inputs;
      for (Row& r : rows) inputs.push_back(sample.batch_inputs(r.session->graph(), at::zeros({1}, at::kLong)));
      // Warm, as a deployed model serving requests: blocks of consecutive runs of one model
      // (the first of each block, which refills the caches after the other models, is not
      // recorded), the models taking turns block by block, in alternating order.
      constexpr int kBlock = 10;
      std::vector<bench::Contender> contenders;
      for (size_t k = 0; k < rows.size(); ++k)
        contenders.push_back({bench::timed([&, k] { rows[k].session->run(inputs[k], run); })});
      std::vector<bench::Timing> timings = bench::time_side_by_side(
          contenders, {/*rounds=*/(reps + kBlock - 1) / kBlock, kBlock, /*settle=*/1, /*warmup=*/20});
      for (size_t k = 0; k < rows.size(); ++k) rows[k].timing = std::move(timings[k]);
      const double base = rows[0].timing.median();
      const double base_acc = modality == "text" ? rows[0].eval.f1 : rows[0].eval.accuracy;
      std::printf("\n%s (%s, batch 1, 1 thread, median of %zu runs in blocks of %d)\n",
                  model.c_str(), modality.c_str(), rows[0].timing.samples_ms.size(), kBlock);
      std::printf("%-18s %10s %8s %9s %8s %9s %8s\n", "strategy", "latency", "speedup",
                  modality == "text" ? "F1" : "top-1", "delta", "size MB", "int8");
      for (Row& r : rows) {
        const double acc = modality == "text" ? r.eval.f1 : r.eval.accuracy;
        std::printf("%-18s %8.3fms %7.2fx %9.4f %+8.4f %9.2f %7.0f%%\n", r.strategy.c_str(),
                    r.timing.median(), base / r.timing.median(), acc, acc - base_acc,
                    r.bytes / 1e6, 100 * r.int8_share);
        all.push_back({{"model", model},
                       {"strategy", r.strategy},
                       {"file", r.path},
                       {"latency_ms_median", r.timing.median()},
                       {"latency_ms_p90", r.timing.percentile(0.9)},
                       {"speedup", base / r.timing.median()},
                       {"accuracy", r.eval.accuracy},
                       {"f1", r.eval.f1},
                       {"test_samples", r.eval.samples},
                       {"bytes", r.bytes},
                       {"int8_mac_share", r.int8_share}});
      }
      if (profile) {  // where the time goes, by op type (after the timed runs)
        for (size_t k = 0; k < rows.size(); ++k) {
          NodeProfile prof;
          RunOptions pr = run;
          pr.profile = &prof;
          for (int i = 0; i < 50; ++i) rows[k].session->run(inputs[k], pr);
          std::map<std::string, double> by_op;
          for (size_t n = 0; n < prof.nodes.size(); ++n) by_op[prof.op_types[n]] += prof.ms[n] / prof.runs;
          std::vector<std::pair<double, std::string>> sorted;
          for (auto& [op, ms] : by_op) sorted.emplace_back(ms, op);
          std::sort(sorted.rbegin(), sorted.rend());
          std::printf("  %s:", rows[k].strategy.c_str());
          for (auto& [ms, op] : sorted) std::printf(" %s %.3f", op.c_str(), ms);
          std::printf("\n");
        }
      }
      std::fflush(stdout);
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "strategies: error: %s\n", e.what());
    return 1;
  }
  if (!json_path.empty()) {
    std::FILE* f = std::fopen(json_path.c_str(), "w");
    if (f == nullptr) {
      std::fprintf(stderr, "strategies: cannot write %s\n", json_path.c_str());
      return 1;
    }
    nlohmann::json doc = {{"commit", bench::git_commit()}, {"cpu", bench::cpu_model()},
                          {"threads", 1}, {"reps", reps}, {"rows", all}};
    std::fprintf(f, "%s\n", doc.dump(2).c_str());
    std::fclose(f);
  }
  return 0;
}
