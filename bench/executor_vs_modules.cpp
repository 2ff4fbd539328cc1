// Benchmark: the reference graph executor against the same network written directly as LibTorch
// modules, batch 1, one thread, warm; Google Benchmark, the cases' repetitions randomly
// interleaved in one run. Prints the latency ratio executor / modules per model; the target is
// <= 1.10. Both paths get the same weights and the same input, and their outputs are compared
// first (printed, and in the report's context) so the two really are the same network.
//
//   build/executor_vs_modules [Google Benchmark flags: --json out.json ...]
// Cases: executor/<model> and modules/<model>; counters inferences/s and MACs/s.
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <stdexcept>

#include "bench_util.h"
#include "edgeforge/runtime.h"
#include "edgeforge/summary.h"
#include "edgeforge/zoo.h"

using namespace edgeforge;

namespace {

at::Tensor init(const Graph& g, const std::string& name) {
  auto it = g.initializers().find(name);
  if (it == g.initializers().end()) {
    throw std::runtime_error("the zoo graph has no initializer '" + name + "'");
  }
  return it->second;
}

// LibTorch submodule names may not contain dots: "stage1.block1.conv1" -> "stage1_block1_conv1".
std::string module_name(std::string name) {
  std::replace(name.begin(), name.end(), '.', '_');
  return name;
}

// A torch::nn Conv2d + BatchNorm2d pair loaded from the graph's "<prefix>.weight" etc.
struct ConvBn {
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  ConvBn(torch::nn::Module& parent, const Graph& g, const std::string& conv_name,
         const std::string& bn_name, int64_t stride, int64_t pad, int64_t groups = 1) {
    at::Tensor w = init(g, conv_name + ".weight");
    conv = parent.register_module(
        module_name(conv_name), torch::nn::Conv2d(torch::nn::Conv2dOptions(w.size(1) * groups, w.size(0), w.size(2))
                                        .stride(stride).padding(pad).groups(groups).bias(false)));
    bn = parent.register_module(module_name(bn_name), torch::nn::BatchNorm2d(w.size(0)));
    torch::NoGradGuard ng;
    conv->weight.copy_(w);
    bn->weight.copy_(init(g, bn_name + ".weight"));
    bn->bias.copy_(init(g, bn_name + ".bias"));
    bn->running_mean.copy_(init(g, bn_name + ".running_mean"));
    bn->running_var.copy_(init(g, bn_name + ".running_var"));
  }
  at::Tensor operator()(const at::Tensor& x) { return bn->forward(conv->forward(x)); }
};

// The zoo's resnet (basic blocks) as a plain LibTorch module.
struct ResNetModule : torch::nn::Module {
  struct Block {
    std::unique_ptr<ConvBn> c1, c2, sc;
  };
  std::unique_ptr<ConvBn> stem;
  std::vector<Block> blocks;
  torch::nn::Linear fc{nullptr};

  explicit ResNetModule(const Graph& g) {
    const int64_t stem_stride = g.find_node("stem.conv")->attr_ints("strides", {1, 1})[0];
    stem = std::make_unique<ConvBn>(*this, g, "stem.conv", "stem.bn", stem_stride, 1);
    for (int s = 1; s <= 8; ++s)
      for (int b = 1; b <= 8; ++b) {
        const std::string p = "stage" + std::to_string(s) + ".block" + std::to_string(b);
        if (g.find_node(p + ".conv1") == nullptr) continue;
        const int64_t stride = g.find_node(p + ".conv1")->attr_ints("strides", {1, 1})[0];
        Block blk;
        blk.c1 = std::make_unique<ConvBn>(*this, g, p + ".conv1", p + ".bn1", stride, 1);
        blk.c2 = std::make_unique<ConvBn>(*this, g, p + ".conv2", p + ".bn2", 1, 1);
        if (g.find_node(p + ".shortcut.conv") != nullptr)
          blk.sc = std::make_unique<ConvBn>(*this, g, p + ".shortcut.conv", p + ".shortcut.bn", stride, 0);
        blocks.push_back(std::move(blk));
      }
    at::Tensor w = init(g, "head.fc.weight");
    fc = register_module("fc", torch::nn::Linear(w.size(1), w.size(0)));
    torch::NoGradGuard ng;
    fc->weight.copy_(w);
    fc->bias.copy_(init(g, "head.fc.bias"));
    eval();
  }
  at::Tensor forward(at::Tensor x) {
    x = torch::relu((*stem)(x));
    for (Block& b : blocks) {
      at::Tensor y = torch::relu((*b.c1)(x));
      y = (*b.c2)(y);
      x = torch::relu(y + (b.sc ? (*b.sc)(x) : x));
    }
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    return fc->forward(x);
  }
};

// One model both ways, with its input.
struct Case {
  Graph graph;
  std::unique_ptr<Executor> exec;
  std::unique_ptr<ResNetModule> module;
  at::Tensor x;
  RunOptions opts;
  double macs = 0;
};

std::vector<std::unique_ptr<Case>> cases;  // alive until the run ends

void register_cases() {
  at::set_num_threads(1);
  benchmark::AddCustomContext("threads", "1");
  benchmark::AddCustomContext("batch", "1");
  benchmark::AddCustomContext("seed", "1");
  for (const char* name : {"resnet", "resnet-small"}) {
    auto c = std::make_unique<Case>();
    ZooBuildOptions bo;
    bo.seed = 1;
    c->graph = build_zoo_model(name, bo);
    // Non-trivial batch-norm statistics, so a mismatch in either path shows in the outputs.
    for (auto& [k, t] : c->graph.initializers())
      if (k.find("bn") != std::string::npos && t.dim() == 1) t.uniform_(0.5, 1.5);
    c->exec = std::make_unique<Executor>(c->graph);
    c->module = std::make_unique<ResNetModule>(c->graph);
    c->x = at::randn({1, 1, 28, 28});
    c->opts.threads = 1;
    c->macs = static_cast<double>(summarize(c->graph).macs);
    torch::NoGradGuard no_grad;
    const double diff =
        (c->exec->run({c->x}, c->opts)[0] - c->module->forward(c->x)).abs().max().item<double>();
    char text[64];
    std::snprintf(text, sizeof text, "%.2e", diff);
    std::fprintf(bench::notes(), "%s: executor and modules agree to max |diff| %s\n", name, text);
    benchmark::AddCustomContext(std::string("max_abs_diff ") + name, text);
    Case* p = c.get();
    cases.push_back(std::move(c));
    for (const bool executor : {true, false}) {
      benchmark::RegisterBenchmark((std::string(executor ? "executor/" : "modules/") + name).c_str(),
                                   [p, executor](benchmark::State& state) {
        torch::NoGradGuard no_grad;
        auto once = [&] {
          if (executor) benchmark::DoNotOptimize(p->exec->run({p->x}, p->opts));
          else benchmark::DoNotOptimize(p->module->forward(p->x));
        };
        for (int i = 0; i < 5; ++i) once();  // caches refilled after the other cases
        for (auto _ : state) once();
        state.counters["inferences"] = benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate);
        state.counters["MACs"] = benchmark::Counter(p->macs, benchmark::Counter::kIsIterationInvariantRate);
      })->UseRealTime()->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bench::Suite suite;
  suite.name = "executor_vs_modules";
  suite.comparisons = {{"executor", "modules"}};
  suite.setup = register_cases;
  const int status = bench::run_benchmarks(argc, argv, suite);
  cases.clear();
  return status;
}
