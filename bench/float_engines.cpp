// Benchmark: the float convolution engines Debian offers, on the zoo's convolution shapes at
// batch 1, one thread: oneDNN 2.6 as the inference plan uses it (layouts of its choice, weights
// reordered once, ReLU as a post-op) and XNNPACK (libxnnpack-dev, the engine of mobile
// runtimes; NHWC, weights packed once, ReLU as its output clamp); Google Benchmark, the cases'
// repetitions randomly interleaved in one run. Both engines' outputs are checked against each
// other first. Prints the ratio XNNPACK / oneDNN per shape: why the plan uses oneDNN.
//
//   build/float_engines [Google Benchmark flags: --benchmark_filter=hw:56 --json out.json ...]
// Cases: conv/<engine>/in:/out:/hw:/k:/stride:/groups:, engine oneDNN or XNNPACK; counter
// MACs/s; the label names the shape and, for oneDNN, the kernel it chose.
#include <dnnl.hpp>
#include <xnnpack.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_util.h"

using namespace edgeforge;

namespace {

struct Shape {
  std::string note;
  int64_t in, out, size, kernel, stride, groups;
};

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    v[i] = static_cast<float>(seed >> 8) / static_cast<float>(1u << 24) - 0.5f;
  }
  return v;
}

// Both engines set up on one shape, with the same weights, bias and input.
struct Case {
  Shape s;
  int64_t out_size = 0;
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::convolution_forward conv;
  dnnl::memory src, wei, bias, dst;
  std::string dnnl_kernel;
  std::vector<float> x_nhwc, y_nhwc, w_ohwi, b;
  xnn_operator_t op = nullptr;

  explicit Case(const Shape& shape) : s(shape) {
    using tag = dnnl::memory::format_tag;
    const auto f32 = dnnl::memory::data_type::f32;
    const int64_t pad = s.kernel / 2;
    out_size = (s.size + 2 * pad - s.kernel) / s.stride + 1;
    const int64_t gi = s.in / s.groups, go = s.out / s.groups;
    // Weights [out, in / groups, k, k] and bias, the same numbers for both engines.
    const std::vector<float> w = random_floats(static_cast<size_t>(s.out * gi * s.kernel * s.kernel), 1);
    b = random_floats(static_cast<size_t>(s.out), 2);
    const std::vector<float> x = random_floats(static_cast<size_t>(s.in * s.size * s.size), 3);

    // oneDNN, as the plan builds it.
    const dnnl::memory::dims src_d{1, s.in, s.size, s.size}, dst_d{1, s.out, out_size, out_size};
    const dnnl::memory::dims w_d = s.groups > 1
                                       ? dnnl::memory::dims{s.groups, go, gi, s.kernel, s.kernel}
                                       : dnnl::memory::dims{s.out, s.in, s.kernel, s.kernel};
    dnnl::convolution_forward::desc d(
        dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
        dnnl::memory::desc(src_d, f32, tag::any), dnnl::memory::desc(w_d, f32, tag::any),
        dnnl::memory::desc({s.out}, f32, tag::x), dnnl::memory::desc(dst_d, f32, tag::any),
        {s.stride, s.stride}, {pad, pad}, {pad, pad});
    dnnl::post_ops ops;
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    dnnl::convolution_forward::primitive_desc pd(d, attr, eng);
    src = dnnl::memory(pd.src_desc(), eng);
    wei = dnnl::memory(pd.weights_desc(), eng);
    bias = dnnl::memory(pd.bias_desc(), eng);
    dst = dnnl::memory(pd.dst_desc(), eng);
    {
      dnnl::memory user_w(dnnl::memory::desc(w_d, f32, s.groups > 1 ? tag::goihw : tag::oihw), eng,
                          const_cast<float*>(w.data()));
      dnnl::reorder(user_w, wei).execute(strm, user_w, wei);
      dnnl::memory user_x(dnnl::memory::desc(src_d, f32, tag::nchw), eng, const_cast<float*>(x.data()));
      dnnl::reorder(user_x, src).execute(strm, user_x, src);
      std::memcpy(bias.get_data_handle(), b.data(), b.size() * sizeof(float));
    }
    conv = dnnl::convolution_forward(pd);
    dnnl_kernel = pd.impl_info_str();

    // XNNPACK: NHWC, weights [groups, out / groups, k, k, in / groups].
    w_ohwi.resize(w.size());
    for (int64_t o = 0; o < s.out; ++o)
      for (int64_t c = 0; c < gi; ++c)
        for (int64_t kh = 0; kh < s.kernel; ++kh)
          for (int64_t kw = 0; kw < s.kernel; ++kw)
            w_ohwi[((o * s.kernel + kh) * s.kernel + kw) * gi + c] =
                w[((o * gi + c) * s.kernel + kh) * s.kernel + kw];
    x_nhwc.resize(x.size());
    y_nhwc.resize(static_cast<size_t>(s.out * out_size * out_size));
    for (int64_t c = 0; c < s.in; ++c)
      for (int64_t p = 0; p < s.size * s.size; ++p) x_nhwc[p * s.in + c] = x[c * s.size * s.size + p];
    if (xnn_create_convolution2d_nhwc_f32(
            pad, pad, pad, pad, s.kernel, s.kernel, s.stride, s.stride, 1, 1, s.groups, gi, go,
            s.in, s.out, w_ohwi.data(), b.data(), 0.0f, INFINITY, 0, &op) != xnn_status_success ||
        xnn_setup_convolution2d_nhwc_f32(op, 1, s.size, s.size, x_nhwc.data(), y_nhwc.data(),
                                         nullptr) != xnn_status_success)
      throw std::runtime_error("XNNPACK rejects " + s.note);

    // Same numbers from both (a wrong setup would make the comparison meaningless).
    run_dnnl();
    run_xnn();
    std::vector<float> y_dnnl(y_nhwc.size());
    {
      dnnl::memory out(dnnl::memory::desc(dst_d, f32, tag::nhwc), eng, y_dnnl.data());
      dnnl::reorder(dst, out).execute(strm, dst, out);
      strm.wait();
    }
    float diff = 0, mag = 0;
    for (size_t i = 0; i < y_dnnl.size(); ++i) {
      diff = std::max(diff, std::abs(y_dnnl[i] - y_nhwc[i]));
      mag = std::max(mag, std::abs(y_dnnl[i]));
    }
    if (diff > 1e-4f * std::max(1.0f, mag))
      throw std::runtime_error(s.note + ": the engines disagree by " + std::to_string(diff));
  }
  ~Case() {
    if (op != nullptr) xnn_delete_operator(op);
  }
  Case(const Case&) = delete;
  Case& operator=(const Case&) = delete;

  void run_dnnl() {
    conv.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_BIAS, bias},
                        {DNNL_ARG_DST, dst}});
  }
  void run_xnn() { xnn_run_operator(op, nullptr); }
  double macs() const {
    return double(s.out) * out_size * out_size * (s.in / s.groups) * s.kernel * s.kernel;
  }
};

std::vector<std::unique_ptr<Case>> cases;  // alive until the run ends

void register_cases() {
  at::set_num_threads(1);  // OpenMP's thread count, which oneDNN follows
  benchmark::AddCustomContext("threads", "1");
  benchmark::AddCustomContext("batch", "1");
  if (xnn_initialize(nullptr) != xnn_status_success)
    throw std::runtime_error("XNNPACK does not initialise on this CPU");
  const Shape shapes[] = {
      {"stem", 1, 16, 28, 3, 1, 1},
      {"stage 1", 16, 16, 14, 3, 1, 1},
      {"stage 1 -> 2", 16, 32, 14, 3, 2, 1},
      {"stage 2", 32, 32, 7, 3, 1, 1},
      {"stage 3", 64, 64, 4, 3, 1, 1},
      {"stage 4", 128, 128, 2, 3, 1, 1},
      {"resnext", 64, 64, 7, 3, 1, 8},
      {"shortcut", 32, 64, 7, 1, 1, 1},
      {"large map", 64, 64, 56, 3, 1, 1},
  };
  for (const Shape& s : shapes) {
    cases.push_back(std::make_unique<Case>(s));
    Case* c = cases.back().get();
    for (const bool xnn : {false, true}) {
      auto* b = benchmark::RegisterBenchmark(xnn ? "conv/XNNPACK" : "conv/oneDNN",
                                             [c, xnn](benchmark::State& state) {
        for (int i = 0; i < 5; ++i) xnn ? c->run_xnn() : c->run_dnnl();  // caches refilled
        if (xnn) {
          for (auto _ : state) c->run_xnn();
        } else {
          for (auto _ : state) c->run_dnnl();
        }
        state.counters["MACs"] = benchmark::Counter(c->macs(), benchmark::Counter::kIsIterationInvariantRate);
        state.SetLabel(xnn ? c->s.note : c->s.note + ", " + c->dnnl_kernel);
      });
      b->ArgNames({"in", "out", "hw", "k", "stride", "groups"})
          ->Args({s.in, s.out, s.size, s.kernel, s.stride, s.groups})
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bench::Suite suite;
  suite.name = "float_engines";
  suite.comparisons = {{"XNNPACK", "oneDNN"}};
  suite.setup = register_cases;
  const int status = bench::run_benchmarks(argc, argv, suite);
  cases.clear();
  return status;
}
