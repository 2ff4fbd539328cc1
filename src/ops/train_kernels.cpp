// Training-time kernels in one vectorised pass each (train_kernels.h).
#include "train_kernels.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdint>
#include <mutex>

#include "edgeforge/error.h"

namespace edgeforge {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kGrain = 1 << 16;  // elements per parallel chunk

// The loops are compiled twice, for AVX2 and for the baseline x86-64, and the loader picks one
// for the CPU (GCC's target_clones). They are written without branches so both vectorise.

// y = (clamp(rint(x * inv_s) + z, lo, hi) - z) * s and, when `m` is given (a gradient is
// wanted), m = (lo <= rint(x * inv_s) + z <= hi); GCC unswitches the loop on `m`, so both
// versions vectorise.
// rint rounds half to even, as ATen's nearbyint does in the default rounding mode; the
// integers involved are far below 2^24, so float holds them exactly, and (q - z) * s rounded
// once from float equals ATen's double product rounded to float.
__attribute__((target_clones("avx2", "default"))) void fake_quant_loop(
    const float* __restrict x, float* __restrict y, bool* __restrict m, int64_t n, float inv_s,
    float s, float z, float lo, float hi) {
  for (int64_t i = 0; i < n; ++i) {
    const float q = __builtin_rintf(x[i] * inv_s) + z;
    const float c = q < lo ? lo : (q > hi ? hi : q);
    y[i] = (c - z) * s;
    if (m != nullptr) m[i] = (q >= lo) & (q <= hi);
  }
}

// Element i is kept when a hash of (i, seed) is at least `threshold` (p * 2^32): two rounds of
// a 32-bit integer finaliser (Chris Wellons' lowbias32), the second keyed by the seed's high
// half, so streams of different seeds do not overlap.
__attribute__((target_clones("avx2", "default"))) void dropout_loop(
    const float* __restrict x, float* __restrict y, bool* __restrict m, int64_t begin, int64_t end,
    uint32_t seed_lo, uint32_t seed_hi, uint32_t threshold, float scale) {
  for (int64_t i = begin; i < end; ++i) {
    uint32_t h = static_cast<uint32_t>(i) * 0x9E3779B9u + seed_lo;
    h ^= h >> 16, h *= 0x7feb352du, h ^= h >> 15, h *= 0x846ca68bu, h ^= h >> 16;
    h ^= seed_hi;
    h ^= h >> 16, h *= 0x7feb352du, h ^= h >> 15, h *= 0x846ca68bu, h ^= h >> 16;
    const bool keep = h >= threshold;
    y[i] = x[i] * (keep ? scale : 0.0f);
    m[i] = keep;
  }
}

void check_float(const at::Tensor& x, const char* what) {
  EF_CHECK(x.scalar_type() == at::kFloat && x.device().is_cpu(), what, ": expected a float CPU tensor, got ",
           x.toString());
}

bool needs_grad(const at::Tensor& x) { return at::GradMode::is_enabled() && x.requires_grad(); }

// The straight-through gradient: the incoming one where the mask is set, 0 elsewhere.
struct FakeQuantGrad : public torch::autograd::Function<FakeQuantGrad> {
  // `y` and `mask` are computed before (no graph is recorded for them); this only attaches
  // the gradient to `x`.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& y,
                            const at::Tensor& mask) {
    ctx->save_for_backward({mask});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor mask = ctx->get_saved_variables()[0];
    return {grads[0] * mask, at::Tensor(), at::Tensor()};
  }
};

struct DropoutGrad : public torch::autograd::Function<DropoutGrad> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& y,
                            const at::Tensor& mask, double scale) {
    ctx->save_for_backward({mask});
    ctx->saved_data["scale"] = scale;
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor mask = ctx->get_saved_variables()[0];
    const double scale = ctx->saved_data["scale"].toDouble();
    return {at::native_dropout_backward(grads[0], mask, scale), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor fake_quantize(const at::Tensor& x, float scale, float zero_point, float lo, float hi) {
  check_float(x, "fake quantization");
  const at::Tensor xc = x.detach().contiguous();
  at::Tensor y = at::empty_like(xc);
  const bool grad = needs_grad(x);
  at::Tensor mask = grad ? at::empty_like(xc, xc.options().dtype(at::kBool)) : at::Tensor();
  const float inv = 1.0f / scale;
  const float* px = xc.data_ptr<float>();
  float* py = y.data_ptr<float>();
  bool* pm = grad ? mask.data_ptr<bool>() : nullptr;
  at::parallel_for(0, xc.numel(), kGrain, [&](int64_t b, int64_t e) {
    fake_quant_loop(px + b, py + b, pm ? pm + b : nullptr, e - b, inv, scale, zero_point, lo, hi);
  });
  return grad ? FakeQuantGrad::apply(x, y, mask) : y;
}

at::Tensor fake_quantize_per_channel(const at::Tensor& x, const at::Tensor& scales, int64_t axis,
                                     float lo, float hi) {
  check_float(x, "per-channel fake quantization");
  EF_CHECK(axis >= 0 && axis < x.dim(), "per-channel fake quantization: axis ", axis,
           " is outside a tensor of rank ", x.dim());
  EF_CHECK(scales.dim() == 1 && scales.size(0) == x.size(axis), "per-channel fake quantization: ",
           scales.numel(), " scales for ", x.size(axis), " channels");
  // Channels first, each a contiguous run.
  const at::Tensor xc = x.detach().movedim(axis, 0).contiguous();
  const at::Tensor sc = scales.detach().to(at::kFloat).contiguous();
  at::Tensor y = at::empty_like(xc);
  const bool grad = needs_grad(x);
  at::Tensor mask = grad ? at::empty_like(xc, xc.options().dtype(at::kBool)) : at::Tensor();
  const int64_t channels = xc.size(0), inner = channels == 0 ? 0 : xc.numel() / channels;
  const float* px = xc.data_ptr<float>();
  const float* ps = sc.data_ptr<float>();
  float* py = y.data_ptr<float>();
  bool* pm = grad ? mask.data_ptr<bool>() : nullptr;
  at::parallel_for(0, channels, std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1)),
                   [&](int64_t b, int64_t e) {
                     for (int64_t c = b; c < e; ++c)
                       fake_quant_loop(px + c * inner, py + c * inner, pm ? pm + c * inner : nullptr,
                                       inner, 1.0f / ps[c], ps[c], 0.0f, lo, hi);
                   });
  y = y.movedim(0, axis);
  if (!grad) return y;
  return FakeQuantGrad::apply(x, y, mask.movedim(0, axis));
}

DropoutResult dropout(const at::Tensor& x, double p) {
  check_float(x, "dropout");
  EF_CHECK(p >= 0.0 && p < 1.0, "dropout: ratio ", p, " is outside [0, 1)");
  uint64_t seed = 0;
  {
    auto* gen = at::get_generator_or_default<at::CPUGeneratorImpl>(c10::nullopt,
                                                                   at::detail::getDefaultCPUGenerator());
    std::lock_guard<std::mutex> lock(gen->mutex_);
    seed = gen->random64();
  }
  const at::Tensor xc = x.detach().contiguous();
  at::Tensor y = at::empty_like(xc);
  at::Tensor mask = at::empty_like(xc, xc.options().dtype(at::kBool));
  const double scale = 1.0 / (1.0 - p);
  const auto threshold = static_cast<uint32_t>(std::min(p * 4294967296.0, 4294967295.0));
  const float* px = xc.data_ptr<float>();
  float* py = y.data_ptr<float>();
  bool* pm = mask.data_ptr<bool>();
  at::parallel_for(0, xc.numel(), kGrain, [&](int64_t b, int64_t e) {
    dropout_loop(px, py, pm, b, e, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                 threshold, static_cast<float>(scale));
  });
  if (needs_grad(x)) y = DropoutGrad::apply(x, y, mask, scale);
  return {y, mask};
}

}  // namespace edgeforge
