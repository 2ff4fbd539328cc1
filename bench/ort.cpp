// Benchmark: edgeforge against ONNX Runtime on the same ONNX files. For every zoo model
// (teachers and students) and its sptq int8 file, both runtimes run the same real test sample
// at batch 1 on one thread, warm, in rounds (ONNX Runtime's block in a Node.js process,
// bench/ort/run.mjs, edgeforge's in this one and edgeforge's without its inference plan, in
// alternating order: bench_util.h's time_side_by_side; the first 20 runs of each block are not
// recorded), and the table gives each runtime's median, the latency ratio (the median over
// rounds of the two runtimes' ratio in that round, as this shared machine's speed shifts
// between rounds) and the largest output difference; and edgeforge without its inference plan
// (the reference ATen kernels), to show what the plan gains.
//
//   build/ort --zoo-dir out/zoo --int8-dir out/strategies [--models resnet,bert]
//             [--rounds 3] [--reps 100] [--threads 1] [--json out.json]
//   build/ort --files resnet50.onnx,bert.onnx [--threads 4] ...   # any ONNX files
//
// With --files, each file runs as it is (no int8 variant is made) on inputs made from its
// declared inputs: batch 1, other symbolic sizes 128; floats from a seeded normal, int64
// inputs named like ids from 3..999, masks all ones, anything else zeros. --threads sets both
// runtimes' intra-op threads.
//
// A second table gives each model's load cost in a process of its own: the time to read,
// optimise, lower and prepack it and its first run, and the process's peak resident memory
// (edgeforge: `ort --load-only FILE`, a child of this program; ORT: bench/ort/run.mjs). The
// header names the CPU and the instruction set oneDNN dispatches to (VNNI, AMX).
// `ort --load-only FILE [--threads N]` prints edgeforge's load cost of FILE alone.
//
// ONNX Runtime is npm's onnxruntime-node 1.30, installed by scripts/setup under
// bench/ort/node_modules. Its figure is the wall time of `await session.run()` in Node, less
// the same call's time on a one-node model (the JavaScript and binding overhead, measured in
// the same run and printed), so the ratio is not flattered by Node's overhead. Missing sptq
// files of students are made with the sptq strategy's defaults.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "bench_util.h"
#include "edgeforge/dataset.h"
#include "edgeforge/error.h"
#include "edgeforge/graph_builder.h"
#include "edgeforge/lower.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/process.h"
#include "edgeforge/strategy.h"
#include "edgeforge/train.h"
#include "edgeforge/zoo.h"

using namespace edgeforge;
namespace fs = std::filesystem;

namespace {

// Named tolerances of the output comparison (logits). Float: both runtimes compute the same
// float graph, differing only in summation order and fused kernels. int8: both follow QDQ
// arithmetic, but a requantization that rounds the other way moves a value by one step, and
// steps add up over layers: the logits may be a few output steps apart, with the same class.
constexpr double kFloatLogitTolerance = 1e-3;
constexpr double kInt8OutputSteps = 3.0;  // as tests/runtime/plan_test.cpp, in output steps

// The quantization step of a QDQ model's output (the scale of the DequantizeLinear that
// produces it), or 0 when the output is not dequantized.
double output_step(const Graph& g) {
  const Node* dq = g.producer(g.outputs()[0].name);
  if (dq == nullptr || !dq->is("DequantizeLinear") || dq->inputs.size() < 2) return 0.0;
  const at::Tensor s = constant_input(g, dq->inputs[1]);
  return s.defined() && s.numel() == 1 ? s.item<double>() : 0.0;
}


std::string dtype_name(at::ScalarType t) {
  if (t == at::kFloat) return "float32";
  if (t == at::kLong) return "int64";
  throw Error(edgeforge::detail::concat("ort bench: input type ", c10::toString(t), " is not supported"));
}

void write_raw(const at::Tensor& t, const std::string& path) {
  const at::Tensor c = t.contiguous();
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
  EF_CHECK(out.good(), "ort bench: cannot write ", path);
}

// The cost of getting a model ready, in a process of its own: creating the session (read,
// optimise, lower, prepack) and its first run; resident memory before the model was read (the
// runtime's libraries) and at its peak.
struct LoadCost {
  double load_ms = 0, first_run_ms = 0, rss_before_mb = 0, peak_rss_mb = 0;
};

struct OrtRun {
  std::vector<double> ms;
  at::Tensor output;  // the first output, float
  LoadCost load;
};

// One Node.js process: loads `model` in ONNX Runtime and times `reps` runs (the first ones,
// which warm up, are dropped by time_side_by_side's settle).
OrtRun run_ort(const std::string& model, const Graph& g, const std::vector<at::Tensor>& inputs,
               int reps, const std::string& work, const std::string& ort_dir,
               const std::string& script, int threads) {
  nlohmann::json spec = {{"model", fs::absolute(model).string()},
                         {"warmup", 0},
                         {"reps", reps},
                         {"threads", threads},
                         {"outputs_dir", work}};
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string file = work + "/input" + std::to_string(i) + ".bin";
    write_raw(inputs[i], file);
    spec["inputs"].push_back({{"name", g.inputs()[i].name},
                              {"dtype", dtype_name(inputs[i].scalar_type())},
                              {"shape", inputs[i].sizes().vec()},
                              {"file", file}});
  }
  const std::string spec_path = work + "/spec.json", out_path = work + "/ort.json",
                    err_path = work + "/ort.err";
  std::ofstream(spec_path) << spec.dump();
  ChildProcess node({"/usr/bin/node", script, spec_path}, out_path, err_path,
                    {"EDGEFORGE_ORT_DIR=" + ort_dir});
  const int status = node.wait();
  if (status != 0) {
    std::ifstream err(err_path);
    std::string first;
    std::getline(err, first);
    throw Error(edgeforge::detail::concat("ort bench: ONNX Runtime failed on ", model, " (exit ", status,
                               "): ", first));
  }
  const nlohmann::json r = nlohmann::json::parse(std::ifstream(out_path));
  OrtRun run;
  run.ms = r["ms"].get<std::vector<double>>();
  run.load = {r["load_ms"].get<double>(), r["first_run_ms"].get<double>(),
              r["rss_before_mb"].get<double>(), r["peak_rss_mb"].get<double>()};
  const auto& o = r["outputs"][0];
  std::ifstream in(o["file"].get<std::string>(), std::ios::binary);
  std::vector<int64_t> shape = o["shape"].get<std::vector<int64_t>>();
  run.output = at::empty(shape, at::kFloat);
  in.read(static_cast<char*>(run.output.data_ptr()), static_cast<std::streamsize>(run.output.nbytes()));
  EF_CHECK(in.good(), "ort bench: truncated output from ONNX Runtime for ", model);
  return run;
}

// Inputs for a file without a data set, from its declared inputs (see the top of this file).
std::vector<at::Tensor> synthetic_inputs(const Graph& g) {
  at::manual_seed(0);
  std::vector<at::Tensor> out;
  for (const ValueInfo& v : g.inputs()) {
    std::vector<int64_t> shape;
    for (size_t d = 0; d < v.shape.size(); ++d)
      shape.push_back(v.shape[d].is_fixed() ? v.shape[d].size : (d == 0 ? 1 : 128));
    std::string name = v.name;
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    if (v.dtype == at::kFloat) out.push_back(at::randn(shape));
    else if (v.dtype == at::kLong && name.find("mask") != std::string::npos) out.push_back(at::ones(shape, at::kLong));
    else if (v.dtype == at::kLong && name.find("ids") != std::string::npos && name.find("type") == std::string::npos)
      out.push_back(at::randint(3, 1000, shape, at::kLong));
    else out.push_back(at::zeros(shape, at::TensorOptions().dtype(v.dtype)));
  }
  return out;
}

// A figure of this process's memory from /proc/self/status, in MiB: VmRSS (resident now) or
// VmHWM (its peak; getrusage's ru_maxrss would carry the parent's peak across execve).
double status_mb(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) / 1024.0;
  return 0.0;
}

// `ort --load-only FILE --threads N`: edgeforge's LoadCost of FILE, one JSON line on stdout.
int load_only(const std::string& path, int threads) {
  LoadCost c;
  c.rss_before_mb = status_mb("VmRSS");
  const auto t0 = std::chrono::steady_clock::now();
  const Graph g = load_onnx(path);
  InferenceSession session(g);
  const auto t1 = std::chrono::steady_clock::now();
  const std::vector<at::Tensor> inputs = synthetic_inputs(g);
  RunOptions run;
  run.threads = threads;
  at::NoGradGuard no_grad;
  const auto t2 = std::chrono::steady_clock::now();
  session.run(inputs, run);
  const auto t3 = std::chrono::steady_clock::now();
  c.load_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  c.first_run_ms = std::chrono::duration<double, std::milli>(t3 - t2).count();
  c.peak_rss_mb = status_mb("VmHWM");
  std::printf("%s\n", nlohmann::json({{"load_ms", c.load_ms},
                                      {"first_run_ms", c.first_run_ms},
                                      {"rss_before_mb", c.rss_before_mb},
                                      {"peak_rss_mb", c.peak_rss_mb}})
                          .dump()
                          .c_str());
  return 0;
}

// edgeforge's LoadCost of `path`, measured by this program in a child process.
LoadCost edgeforge_load(const std::string& self, const std::string& path, int threads,
                        const std::string& work) {
  const std::string out = work + "/load.json", err = work + "/load.err";
  ChildProcess child({self, "--load-only", path, "--threads", std::to_string(threads)}, out, err);
  const int status = child.wait();
  if (status != 0) {
    std::ifstream in(err);
    std::string first;
    std::getline(in, first);
    throw Error(edgeforge::detail::concat("ort bench: loading ", path, " in a child failed (exit ",
                                          status, "): ", first));
  }
  const nlohmann::json r = nlohmann::json::parse(std::ifstream(out));
  return {r["load_ms"].get<double>(), r["first_run_ms"].get<double>(),
          r["rss_before_mb"].get<double>(), r["peak_rss_mb"].get<double>()};
}

struct Entry {
  std::string model, variant, path;
  bench::Timing ours, ort, reference;
  std::vector<double> round_ratios;  // edgeforge / ORT per round
  double max_diff = 0;
  bool same_class = true;
  LoadCost ours_load, ort_load;
};

// Runs not recorded at the start of each runtime's block in a round: they warm it up again
// after the other runtime ran.
constexpr int kSettle = 20;

}  // namespace

int main(int argc, char** argv) {
  std::string zoo_dir = "out/zoo", int8_dir = "out/strategies", json_path;
  std::vector<std::string> files;
  std::string load_only_path;
  int threads = 1;
  std::vector<std::string> models = {"resnet",       "resnext",       "bert",       "roberta",
                                     "resnet-small", "resnext-small", "bert-small", "roberta-small"};
  int rounds = 3, reps = 100;
  const std::string src = source_dir();
  std::string ort_dir = src + "/bench/ort", script = src + "/bench/ort/run.mjs";
  for (int i = 1; i < argc; ++i) {
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "ort: %s needs a value\n", argv[i]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--zoo-dir")) zoo_dir = next();
    else if (!std::strcmp(argv[i], "--int8-dir")) int8_dir = next();
    else if (!std::strcmp(argv[i], "--models")) models = bench::split_list(next());
    else if (!std::strcmp(argv[i], "--rounds")) rounds = std::stoi(next());
    else if (!std::strcmp(argv[i], "--reps")) reps = std::stoi(next());
    else if (!std::strcmp(argv[i], "--ort-dir")) ort_dir = next();
    else if (!std::strcmp(argv[i], "--json")) json_path = next();
    else if (!std::strcmp(argv[i], "--files")) files = bench::split_list(next());
    else if (!std::strcmp(argv[i], "--threads")) threads = std::stoi(next());
    else if (!std::strcmp(argv[i], "--load-only")) load_only_path = next();
    else {
      std::fprintf(stderr,
                   "usage: ort [--zoo-dir DIR] [--int8-dir DIR] [--models a,b | --files a.onnx,b.onnx] "
                   "[--rounds N] [--reps N] [--threads N] [--ort-dir DIR] [--json F]\n"
                   "       ort --load-only FILE [--threads N]   # edgeforge's load cost of FILE, "
                   "one JSON line\n");
      return 2;
    }
  }
  if (!load_only_path.empty()) {
    try {
      return load_only(load_only_path, threads);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ort: error: %s\n", e.what());
      return 1;
    }
  }
  if (!fs::exists(ort_dir + "/node_modules/onnxruntime-node")) {
    std::fprintf(stderr, "ort: %s/node_modules/onnxruntime-node is missing (scripts/setup installs it)\n",
                 ort_dir.c_str());
    return 1;
  }
  const std::string work = (fs::temp_directory_path() / ("edgeforge-ort-" + std::to_string(getpid()))).string();
  fs::create_directories(work);
  std::vector<Entry> entries;
  nlohmann::json rows = nlohmann::json::array();
  try {
    // The floor: session.run() on a one-node model, the cost of the call from JavaScript.
    Graph floor_graph("identity");
    {
      GraphBuilder fb(floor_graph, at::make_generator<at::CPUGeneratorImpl>(0));
      const std::string x = fb.input("x", at::kFloat, {1, 1});
      fb.output(fb.op("Identity", "identity", {x}).outputs[0], at::kFloat, {1, 1});
    }
    save_onnx(floor_graph, work + "/floor.onnx");
    const bench::Timing floor_t =
        bench::time_side_by_side({{[&](int n) {
                                   return run_ort(work + "/floor.onnx", floor_graph, {at::ones({1, 1})},
                                                  n, work, ort_dir, script, threads).ms;
                                 }}},
                                 {rounds, reps, kSettle})[0];
    const double floor_ms = floor_t.median();
    std::printf("CPU %s; oneDNN ISA %s\n", bench::cpu_model().c_str(), plan_cpu_isa().c_str());
    std::printf("ONNX Runtime call overhead from Node.js (one Identity node): %.4f ms, subtracted below\n",
                floor_ms);
    std::printf("\n%-15s %-6s %11s %11s %8s %11s%-13s %-5s %11s %7s\n", "model", "file",
                "edgeforge", "ORT", "ratio", "max |diff|", "", "class", "no plan", "gain");
    // What to measure: (label, variant, file); a zoo model's float file and its sptq file, or
    // each file given.
    struct Job {
      std::string model, variant, path;
      std::optional<TaskData> sample;  // a zoo model's test sample; none: synthetic inputs
    };
    std::vector<Job> jobs;
    if (!files.empty()) {
      for (const std::string& f : files) jobs.push_back({fs::path(f).filename().string(), "file", f, {}});
    } else {
      for (const std::string& model : models) {
        const std::string float_path = zoo_dir + "/" + model + ".onnx";
        const Graph teacher = load_onnx(float_path);
        std::string int8_path = int8_dir + "/" + model + ".sptq.onnx";
        if (!fs::exists(int8_path)) {
          std::fprintf(stderr, "ort: making %s with sptq\n", int8_path.c_str());
          StrategyContext ctx;
          ctx.threads = 1;
          fs::create_directories(int8_dir);
          save_onnx(run_pipeline(teacher, "sptq", {}, ctx).graph, int8_path);
        }
        const TaskData sample = open_dataset(teacher)->load("test", 1);
        jobs.push_back({model, "float", float_path, sample});
        jobs.push_back({model, "int8", int8_path, sample});
      }
    }
    for (const Job& job : jobs) {
      const std::string& model = job.model;
      const std::string& variant = job.variant;
      const std::string& path = job.path;
      {
        const Graph g = load_onnx(path);
        InferenceSession session(g);
        InferenceSession reference(g, SessionOptions{false});  // no plan: the ATen kernels
        const std::vector<at::Tensor> inputs =
            job.sample ? job.sample->batch_inputs(g, at::zeros({1}, at::kLong)) : synthetic_inputs(g);
        RunOptions run;
        run.threads = threads;
        at::NoGradGuard no_grad;
        Entry e{model, variant, path};
        e.ours_load = edgeforge_load(self_executable(), path, threads, work);
        // Rounds of ORT's block (a Node.js process), edgeforge's and edgeforge's without the
        // plan (a quarter of the runs), in alternating order.
        std::vector<at::Tensor> ort_outputs;
        at::Tensor ours_out;
        const bench::Runs ort_runs = [&](int n) {
          OrtRun o = run_ort(path, g, inputs, n, work, ort_dir, script, threads);
          if (ort_outputs.empty()) e.ort_load = o.load;
          ort_outputs.push_back(o.output);
          std::vector<double> ms;
          for (double t : o.ms) ms.push_back(std::max(t - floor_ms, 0.0));
          return ms;
        };
        std::vector<bench::Timing> t = bench::time_side_by_side(
            {{ort_runs},
             {bench::timed([&] { ours_out = session.run(inputs, run)[0]; })},
             {bench::timed([&] { reference.run(inputs, run); }), std::max(reps / 4, 1)}},
            {rounds, reps, kSettle});
        e.ort = std::move(t[0]);
        e.ours = std::move(t[1]);
        e.reference = std::move(t[2]);
        for (size_t r = 0; r < e.ours.round_medians_ms.size(); ++r)
          e.round_ratios.push_back(e.ours.round_medians_ms[r] / e.ort.round_medians_ms[r]);
        ours_out = ours_out.clone();
        for (const at::Tensor& o : ort_outputs) {
          e.max_diff = std::max(e.max_diff, (ours_out - o).abs().max().item<double>());
          e.same_class = e.same_class && ours_out.argmax(-1).equal(o.argmax(-1));
        }
        // The ratio of each round's medians: adjacent blocks share the machine's state, which
        // on a shared host can change between rounds by 2x for both runtimes alike.
        const double ratio = bench::round_ratio(e.ours, e.ort);
        const double step = output_step(g);
        const double tolerance = variant == "float" || step == 0 ? kFloatLogitTolerance
                                                                 : kInt8OutputSteps * step;
        const bool ok = e.max_diff <= tolerance + 1e-6 && e.same_class;
        char steps[32] = "";
        if (step > 0) std::snprintf(steps, sizeof steps, " (%.1f steps)", e.max_diff / step);
        std::printf("%-15s %-6s %9.3fms %9.3fms %8.2f %11.2e%-13s %-5s %9.3fms %6.1fx%s\n",
                    model.c_str(), variant.c_str(), e.ours.median(), e.ort.median(), ratio,
                    e.max_diff, steps, e.same_class ? "same" : "DIFF", e.reference.median(),
                    e.reference.median() / e.ours.median(), ok ? "" : "  (outside tolerance)");
        std::fflush(stdout);
        rows.push_back({{"model", model},
                        {"file", path},
                        {"variant", variant},
                        {"edgeforge_ms_median", e.ours.median()},
                        {"edgeforge_ms_p90", e.ours.percentile(0.9)},
                        {"ort_ms_median", e.ort.median()},
                        {"ort_ms_p90", e.ort.percentile(0.9)},
                        {"reference_ms_median", e.reference.median()},
                        {"ratio", ratio},
                        {"round_ratios", e.round_ratios},
                        {"max_abs_diff", e.max_diff},
                        {"same_class", e.same_class},
                        {"output_step", step},
                        {"tolerance", tolerance},
                        {"within_tolerance", ok},
                        {"edgeforge_load_ms", e.ours_load.load_ms},
                        {"edgeforge_first_run_ms", e.ours_load.first_run_ms},
                        {"edgeforge_rss_before_mb", e.ours_load.rss_before_mb},
                        {"edgeforge_peak_rss_mb", e.ours_load.peak_rss_mb},
                        {"ort_load_ms", e.ort_load.load_ms},
                        {"ort_first_run_ms", e.ort_load.first_run_ms},
                        {"ort_rss_before_mb", e.ort_load.rss_before_mb},
                        {"ort_peak_rss_mb", e.ort_load.peak_rss_mb}});
        entries.push_back(std::move(e));
      }
    }
    std::printf("\n%-15s %-6s %21s %21s %23s %23s\n", "model", "file", "load + 1st run ef",
                "load + 1st run ORT", "peak MB (before) ef", "peak MB (before) ORT");
    for (const Entry& e : entries)
      std::printf("%-15s %-6s %9.0f + %7.0fms %9.0f + %7.0fms %13.0f (%5.0f) %15.0f (%5.0f)\n",
                  e.model.c_str(), e.variant.c_str(), e.ours_load.load_ms,
                  e.ours_load.first_run_ms, e.ort_load.load_ms, e.ort_load.first_run_ms,
                  e.ours_load.peak_rss_mb, e.ours_load.rss_before_mb, e.ort_load.peak_rss_mb,
                  e.ort_load.rss_before_mb);
    std::printf("\nratio: the median over rounds of edgeforge / ORT in that round (< 1: edgeforge is "
                "faster); 'no plan' is edgeforge without its "
                "inference plan (the reference ATen kernels, a quarter of the runs) and 'gain' the "
                "plan's speedup over it. Batch 1, %d thread(s), median of "
                "%d runs each in %d rounds, in alternating order. float tolerance %.0e on the logits; int8: "
                "%.0f steps of the output's quantization, and the same predicted class.\n",
                threads, rounds * reps, rounds, kFloatLogitTolerance, kInt8OutputSteps);
    std::printf("load: reading, optimising, lowering and prepacking the model (edgeforge: load_onnx "
                "and InferenceSession; ORT: InferenceSession.create), then its first run; each "
                "in a process of its own. peak MB: the process's peak resident memory, with the "
                "memory it held before reading the model (the runtime's libraries; Node.js for "
                "ORT) in brackets.\n");
    if (!json_path.empty()) {
      nlohmann::json doc = {{"commit", bench::git_commit()}, {"cpu", bench::cpu_model()},
                            {"cpu_isa", plan_cpu_isa()},
                            {"threads", threads}, {"rounds", rounds}, {"reps", reps},
                            {"ort_call_overhead_ms", floor_ms}, {"rows", rows}};
      std::ofstream(json_path) << doc.dump(2) << "\n";
    }
  } catch (const std::exception& e) {  // edgeforge's errors and the file system's
    std::fprintf(stderr, "ort: error: %s\n", e.what());
    fs::remove_all(work);
    return 1;
  }
  fs::remove_all(work);
  return 0;
}
