// Benchmark: the float convolution engines Debian offers, on the zoo's convolution shapes at
// batch 1, one thread, side by side in one run (alternating): oneDNN 2.6 as the inference plan
// uses it (layouts of its choice, weights reordered once, ReLU as a post-op) and XNNPACK
// (libxnnpack-dev, the engine of mobile runtimes; NHWC, weights packed once, ReLU as its output
// clamp). Prints medians and the XNNPACK / oneDNN ratio: why the plan uses oneDNN.
//
//   build/float_engines [--reps 500]
#include <dnnl.hpp>
#include <xnnpack.h>

#include <ATen/ATen.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.h"

using namespace edgeforge;

namespace {

struct Shape {
  std::string name;
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

}  // namespace

int main(int argc, char** argv) {
  int reps = 500;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = std::stoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: float_engines [--reps N]\n");
      return 2;
    }
  }
  at::set_num_threads(1);  // OpenMP's thread count, which oneDNN follows
  if (xnn_initialize(nullptr) != xnn_status_success) {
    std::fprintf(stderr, "float_engines: XNNPACK does not initialise on this CPU\n");
    return 1;
  }
  const Shape shapes[] = {
      {"conv 1->16 3x3 28x28 (stem)", 1, 16, 28, 3, 1, 1},
      {"conv 16->16 3x3 14x14 (stage 1)", 16, 16, 14, 3, 1, 1},
      {"conv 16->32 3x3 /2 14x14", 16, 32, 14, 3, 2, 1},
      {"conv 32->32 3x3 7x7 (stage 2)", 32, 32, 7, 3, 1, 1},
      {"conv 64->64 3x3 4x4 (stage 3)", 64, 64, 4, 3, 1, 1},
      {"conv 128->128 3x3 2x2 (stage 4)", 128, 128, 2, 3, 1, 1},
      {"conv 64->64 3x3 g8 7x7 (resnext)", 64, 64, 7, 3, 1, 8},
      {"conv 32->64 1x1 7x7 (shortcut)", 32, 64, 7, 1, 1, 1},
      {"conv 64->64 3x3 56x56", 64, 64, 56, 3, 1, 1},
  };
  std::printf("float convolution engines, batch 1, 1 thread, ReLU fused, median of %d runs "
              "(commit %s, %s)\n",
              reps, bench::git_commit().c_str(), bench::cpu_model().c_str());
  std::printf("%-36s %10s %10s %9s  %s\n", "shape", "oneDNN", "XNNPACK", "XNN/DNNL", "oneDNN kernel");
  const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  using tag = dnnl::memory::format_tag;
  const auto f32 = dnnl::memory::data_type::f32;
  for (const Shape& s : shapes) {
    const int64_t pad = s.kernel / 2;
    const int64_t out_size = (s.size + 2 * pad - s.kernel) / s.stride + 1;
    const int64_t gi = s.in / s.groups, go = s.out / s.groups;
    // Weights [out, in / groups, k, k] and bias, the same numbers for both engines.
    const std::vector<float> w = random_floats(static_cast<size_t>(s.out * gi * s.kernel * s.kernel), 1);
    const std::vector<float> b = random_floats(static_cast<size_t>(s.out), 2);
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
    dnnl::memory src(pd.src_desc(), eng), wei(pd.weights_desc(), eng), bias(pd.bias_desc(), eng),
        dst(pd.dst_desc(), eng);
    {
      dnnl::memory user_w(dnnl::memory::desc(w_d, f32, s.groups > 1 ? tag::goihw : tag::oihw), eng,
                          const_cast<float*>(w.data()));
      dnnl::reorder(user_w, wei).execute(strm, user_w, wei);
      dnnl::memory user_x(dnnl::memory::desc(src_d, f32, tag::nchw), eng, const_cast<float*>(x.data()));
      dnnl::reorder(user_x, src).execute(strm, user_x, src);
      std::memcpy(bias.get_data_handle(), b.data(), b.size() * sizeof(float));
    }
    dnnl::convolution_forward conv(pd);
    auto run_dnnl = [&] {
      conv.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_BIAS, bias},
                          {DNNL_ARG_DST, dst}});
    };

    // XNNPACK: NHWC, weights [groups, out / groups, k, k, in / groups].
    std::vector<float> w_ohwi(w.size());
    for (int64_t o = 0; o < s.out; ++o)
      for (int64_t c = 0; c < gi; ++c)
        for (int64_t kh = 0; kh < s.kernel; ++kh)
          for (int64_t kw = 0; kw < s.kernel; ++kw)
            w_ohwi[((o * s.kernel + kh) * s.kernel + kw) * gi + c] =
                w[((o * gi + c) * s.kernel + kh) * s.kernel + kw];
    std::vector<float> x_nhwc(x.size()), y_nhwc(static_cast<size_t>(s.out * out_size * out_size));
    for (int64_t c = 0; c < s.in; ++c)
      for (int64_t p = 0; p < s.size * s.size; ++p) x_nhwc[p * s.in + c] = x[c * s.size * s.size + p];
    xnn_operator_t op = nullptr;
    if (xnn_create_convolution2d_nhwc_f32(
            pad, pad, pad, pad, s.kernel, s.kernel, s.stride, s.stride, 1, 1, s.groups, gi, go,
            s.in, s.out, w_ohwi.data(), b.data(), 0.0f, INFINITY, 0, &op) != xnn_status_success ||
        xnn_setup_convolution2d_nhwc_f32(op, 1, s.size, s.size, x_nhwc.data(), y_nhwc.data(),
                                         nullptr) != xnn_status_success) {
      std::fprintf(stderr, "float_engines: XNNPACK rejects %s\n", s.name.c_str());
      return 1;
    }
    auto run_xnn = [&] { xnn_run_operator(op, nullptr); };

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
    if (diff > 1e-4f * std::max(1.0f, mag)) {
      std::fprintf(stderr, "float_engines: %s: the engines disagree by %g\n", s.name.c_str(), diff);
      return 1;
    }
    const auto [t_dnnl, t_xnn] = bench::time_side_by_side(run_dnnl, run_xnn, 50, reps);
    std::printf("%-36s %8.4fms %8.4fms %8.2fx  %s\n", s.name.c_str(), t_dnnl.median(), t_xnn.median(),
                t_xnn.median() / t_dnnl.median(), pd.impl_info_str());
    xnn_delete_operator(op);
  }
  return 0;
}
