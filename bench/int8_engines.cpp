// Benchmark: LibTorch's two quantized engines in Debian's build, ONEDNN and QNNPACK (there is
// no FBGEMM), on the int8 convolution and linear shapes of the zoo, batch 1, one thread, side
// by side in one run; and float (at::conv2d / at::linear) for reference. Prints medians and
// the QNNPACK / ONEDNN ratio: why edgeforge's int8 kernels (edgeforge/int8.h) use ONEDNN.
//
//   build/int8_engines [--reps 200]
#include <ATen/ATen.h>
#include <ATen/native/quantized/PackedParams.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "bench_util.h"

using namespace edgeforge;

namespace {

struct Shape {
  std::string name;
  bool conv;
  int64_t in, out, size, kernel, groups;  // linear: size = rows
};

// Time one engine on one shape: weights prepacked once, input quantized once.
bench::Timing time_engine(at::QEngine engine, const Shape& s, int reps) {
  at::globalContext().setQEngine(engine);
  at::manual_seed(0);
  const double in_scale = 4.0 / 255, out_scale = 8.0 / 255;
  std::function<void()> run;
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
    run = [packed, x, out_scale] { packed->apply_relu(x, out_scale, 0); };
  } else {
    const at::Tensor w = at::randn({s.out, s.in}) * 0.1;
    const at::Tensor qw = at::quantize_per_channel(w, (w.abs().amax(1) / 127).to(at::kDouble),
                                                   at::zeros({s.out}, at::kLong), 0, at::kQInt8);
    static const auto prepack =
        c10::Dispatcher::singleton()
            .findSchemaOrThrow("quantized::linear_prepack", "")
            .typed<c10::intrusive_ptr<LinearPackedParamsBase>(at::Tensor, c10::optional<at::Tensor>)>();
    auto packed = prepack.call(qw, at::zeros({s.out}));
    const at::Tensor x = at::quantize_per_tensor(at::rand({s.size, s.in}), in_scale, 0, at::kQUInt8);
    run = [packed, x, out_scale] { packed->apply(x, out_scale, 0); };
  }
  for (int i = 0; i < 20; ++i) run();
  bench::Timing t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    t.samples_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return t;
}

bench::Timing time_float(const Shape& s, int reps) {
  at::manual_seed(0);
  std::function<void()> run;
  if (s.conv) {
    const at::Tensor w = at::randn({s.out, s.in / s.groups, s.kernel, s.kernel}) * 0.1;
    const at::Tensor x = at::rand({1, s.in, s.size, s.size});
    run = [=] { at::relu(at::conv2d(x, w, {}, 1, s.kernel / 2, 1, s.groups)); };
  } else {
    const at::Tensor w = at::randn({s.out, s.in}) * 0.1;
    const at::Tensor x = at::rand({s.size, s.in});
    run = [=] { at::linear(x, w); };
  }
  for (int i = 0; i < 20; ++i) run();
  bench::Timing t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    t.samples_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 200;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = std::stoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: int8_engines [--reps N]\n");
      return 2;
    }
  }
  at::set_num_threads(1);
  const Shape shapes[] = {
      {"conv 16->16 3x3 28x28 (resnet stage 1)", true, 16, 16, 28, 3, 1},
      {"conv 64->64 3x3 7x7 (resnet stage 3)", true, 64, 64, 7, 3, 1},
      {"conv 64->64 3x3 g8 7x7 (resnext)", true, 64, 64, 7, 3, 8},
      {"conv 64->64 3x3 56x56", true, 64, 64, 56, 3, 1},
      {"linear 128->256, 128 rows (bert ffn)", false, 128, 256, 128, 0, 1},
      {"linear 768->3072, 1 row", false, 768, 3072, 1, 0, 1},
  };
  std::printf("int8 engines, batch 1, 1 thread, median of %d runs (commit %s, %s)\n", reps,
              bench::git_commit().c_str(), bench::cpu_model().c_str());
  std::printf("%-42s %10s %10s %10s %9s\n", "shape", "float", "ONEDNN", "QNNPACK", "QNN/ONE");
  for (const Shape& s : shapes) {
    const double f = time_float(s, reps).median();
    const double one = time_engine(at::QEngine::ONEDNN, s, reps).median();
    const double qnn = time_engine(at::QEngine::QNNPACK, s, reps).median();
    std::printf("%-42s %8.3fms %8.3fms %8.3fms %8.1fx\n", s.name.c_str(), f, one, qnn, qnn / one);
  }
  return 0;
}
