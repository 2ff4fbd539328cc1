// Benchmark: LibTorch's two quantized engines in Debian's build, ONEDNN and QNNPACK (there is
// no FBGEMM), on the int8 convolution and linear shapes of the zoo, batch 1, one thread, with
// float (at::conv2d + ReLU / at::linear) for reference; Google Benchmark, the cases' repetitions
// randomly interleaved in one run. Prints the ratios QNNPACK / ONEDNN (why edgeforge's int8
// kernels, edgeforge/int8.h, use ONEDNN) and ONEDNN / float per shape.
//
//   build/int8_engines [Google Benchmark flags: --benchmark_filter=conv/ --json out.json ...]
// Cases: conv/<engine>/in:/out:/hw:/k:/groups: and linear/<engine>/in:/out:/rows:, engine
// float, ONEDNN or QNNPACK; counter MACs/s.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/native/quantized/PackedParams.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <string>

#include "bench_util.h"

using namespace edgeforge;

namespace {

struct Shape {
  std::string note;  // where the zoo has it
  bool conv;
  int64_t in, out, size, kernel, groups;  // linear: size = rows

  double macs() const {
    return conv ? double(out) * size * size * (in / groups) * kernel * kernel
                : double(size) * in * out;
  }
};

// One engine's kernel on one shape, ready to run: weights prepacked once, input quantized once.
std::function<void()> prepare_int8(at::QEngine engine, const Shape& s) {
  at::globalContext().setQEngine(engine);
  at::manual_seed(0);
  const double in_scale = 4.0 / 255, out_scale = 8.0 / 255;
  if (s.conv) {
    const at::Tensor w = at::randn({s.out, s.in / s.groups, s.kernel, s.kernel}) * 0.1;
    const at::Tensor qw = at::quantize_per_channel(w, (w.abs().reshape({s.out, -1}).amax(1) / 127).to(at::kDouble),
                                                   at::zeros({s.out}, at::kLong), 0, at::kQInt8);
    static const auto prepack =
        c10::Dispatcher::singleton()
            .findSchemaOrThrow("quantized::conv2d_prepack", "")
            .typed<c10::intrusive_ptr<ConvPackedParamsBase<2>>(
                at::Tensor, c10::optional<at::Tensor>, torch::List<int64_t>, torch::List<int64_t>,
                torch::List<int64_t>, int64_t)>();
    auto packed = prepack.call(qw, at::zeros({s.out}), torch::List<int64_t>({1, 1}),
                               torch::List<int64_t>({s.kernel / 2, s.kernel / 2}),
                               torch::List<int64_t>({1, 1}), s.groups);
    const at::Tensor x = at::quantize_per_tensor(at::rand({1, s.in, s.size, s.size}), in_scale, 0, at::kQUInt8)
                             .contiguous(at::MemoryFormat::ChannelsLast);
    return [packed, x, out_scale] { packed->apply_relu(x, out_scale, 0); };
  }
  const at::Tensor w = at::randn({s.out, s.in}) * 0.1;
  const at::Tensor qw = at::quantize_per_channel(w, (w.abs().amax(1) / 127).to(at::kDouble),
                                                 at::zeros({s.out}, at::kLong), 0, at::kQInt8);
  static const auto prepack =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("quantized::linear_prepack", "")
          .typed<c10::intrusive_ptr<LinearPackedParamsBase>(at::Tensor, c10::optional<at::Tensor>)>();
  auto packed = prepack.call(qw, at::zeros({s.out}));
  const at::Tensor x = at::quantize_per_tensor(at::rand({s.size, s.in}), in_scale, 0, at::kQUInt8);
  return [packed, x, out_scale] { packed->apply(x, out_scale, 0); };
}

std::function<void()> prepare_float(const Shape& s) {
  at::manual_seed(0);
  if (s.conv) {
    const at::Tensor w = at::randn({s.out, s.in / s.groups, s.kernel, s.kernel}) * 0.1;
    const at::Tensor x = at::rand({1, s.in, s.size, s.size});
    return [=] { at::relu(at::conv2d(x, w, {}, 1, s.kernel / 2, 1, s.groups)); };
  }
  const at::Tensor w = at::randn({s.out, s.in}) * 0.1;
  const at::Tensor x = at::rand({s.size, s.in});
  return [=] { at::linear(x, w); };
}

void register_cases() {
  at::set_num_threads(1);
  benchmark::AddCustomContext("threads", "1");
  benchmark::AddCustomContext("batch", "1");
  const Shape shapes[] = {
      {"resnet stage 1", true, 16, 16, 28, 3, 1},
      {"resnet stage 3", true, 64, 64, 7, 3, 1},
      {"resnext", true, 64, 64, 7, 3, 8},
      {"large map", true, 64, 64, 56, 3, 1},
      {"bert ffn", false, 128, 256, 128, 0, 1},
      {"one row", false, 768, 3072, 1, 0, 1},
  };
  const std::pair<const char*, int> engines[] = {
      {"float", -1}, {"ONEDNN", int(at::QEngine::ONEDNN)}, {"QNNPACK", int(at::QEngine::QNNPACK)}};
  for (const Shape& s : shapes) {
    for (const auto& [engine, id] : engines) {
      const std::string name = std::string(s.conv ? "conv/" : "linear/") + engine;
      auto* b = benchmark::RegisterBenchmark(name.c_str(), [s, id = id](benchmark::State& state) {
        const std::function<void()> run =
            id < 0 ? prepare_float(s) : prepare_int8(static_cast<at::QEngine>(id), s);
        for (int i = 0; i < 5; ++i) run();  // caches refilled after the other cases
        for (auto _ : state) run();
        state.counters["MACs"] = benchmark::Counter(s.macs(), benchmark::Counter::kIsIterationInvariantRate);
        state.SetLabel(s.note);
      });
      if (s.conv)
        b->ArgNames({"in", "out", "hw", "k", "groups"})->Args({s.in, s.out, s.size, s.kernel, s.groups});
      else
        b->ArgNames({"in", "out", "rows"})->Args({s.in, s.out, s.size});
      b->UseRealTime()->Unit(benchmark::kMicrosecond);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bench::Suite suite;
  suite.name = "int8_engines";
  suite.comparisons = {{"QNNPACK", "ONEDNN"}, {"ONEDNN", "float"}};
  suite.setup = register_cases;
  return bench::run_benchmarks(argc, argv, suite);
}
