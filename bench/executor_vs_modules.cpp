// Benchmark: the reference graph executor against the same network written directly as LibTorch
// modules, batch 1, one thread, warm, timed side by side in one run. Prints the latency ratio
// (executor / modules) per model; the target is <= 1.10. Both paths get the same weights and
// the same input, and their outputs are compared so the two really are the same network.
//
//   build/executor_vs_modules [--reps 300] [--json out.json]
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <algorithm>
#include <cstring>

#include "bench_util.h"
#include "edgeforge/runtime.h"
#include "edgeforge/zoo.h"

using namespace edgeforge;

namespace {

at::Tensor init(const Graph& g, const std::string& name) {
  auto it = g.initializers().find(name);
  if (it == g.initializers().end()) {
    std::fprintf(stderr, "executor_vs_modules: the zoo graph has no initializer '%s'\n", name.c_str());
    std::exit(1);
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

}  // namespace

int main(int argc, char** argv) {
  int reps = 300;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    else {
      std::fprintf(stderr, "usage: executor_vs_modules [--reps N] [--json FILE]\n");
      return 2;
    }
  }
  at::set_num_threads(1);
  torch::NoGradGuard no_grad;
  nlohmann::json records = nlohmann::json::array();
  std::printf("%-14s %12s %12s %12s %12s %8s %10s\n", "model", "exec p50 ms", "exec p90 ms",
              "torch p50 ms", "torch p90 ms", "ratio", "max |diff|");
  for (const char* name : {"resnet", "resnet-small"}) {
    ZooBuildOptions bo;
    bo.seed = 1;
    Graph g = build_zoo_model(name, bo);
    // Non-trivial batch-norm statistics, so a mismatch in either path shows in the outputs.
    for (auto& [k, t] : g.initializers())
      if (k.find("bn") != std::string::npos && t.dim() == 1) t.uniform_(0.5, 1.5);
    Executor exec(g);
    ResNetModule module(g);
    at::Tensor x = at::randn({1, 1, 28, 28});
    RunOptions opts;
    opts.threads = 1;
    const double diff = (exec.run({x}, opts)[0] - module.forward(x)).abs().max().item<double>();
    auto [te, tm] = bench::time_side_by_side([&] { exec.run({x}, opts); }, [&] { module.forward(x); },
                                      20, reps);
    const double ratio = te.median() / tm.median();
    std::printf("%-14s %12.3f %12.3f %12.3f %12.3f %8.3f %10.2e\n", name, te.median(),
                te.percentile(0.9), tm.median(), tm.percentile(0.9), ratio, diff);
    nlohmann::json rec;
    rec["model"] = name;
    rec["executor_p50_ms"] = te.median();
    rec["executor_p90_ms"] = te.percentile(0.9);
    rec["modules_p50_ms"] = tm.median();
    rec["modules_p90_ms"] = tm.percentile(0.9);
    rec["ratio"] = ratio;
    rec["max_abs_diff"] = diff;
    records.push_back(rec);
  }
  nlohmann::json out = {{"benchmark", "executor_vs_modules"}, {"commit", bench::git_commit()},
                        {"cpu", bench::cpu_model()}, {"threads", 1}, {"batch", 1},
                        {"reps", reps}, {"seed", 1}, {"results", records}};
  std::printf("commit %s, cpu %s, 1 thread, batch 1, %d reps each, interleaved\n",
              out["commit"].get<std::string>().c_str(), out["cpu"].get<std::string>().c_str(), reps);
  if (!json_path.empty()) {
    std::ofstream(json_path) << out.dump(2) << "\n";
  }
  return 0;
}
