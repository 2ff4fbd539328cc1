// edgeforge's training kernels (src/ops/train_kernels.h) against ATen's: fake quantization bit
// for bit, values and gradients; dropout by what it must satisfy (ATen draws other masks).
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include "../../src/ops/train_kernels.h"
#include "edgeforge/error.h"
#include "op_test_util.h"

using namespace edgeforge;
using edgeforge::testing::SeededTest;

namespace {

using TrainKernels = SeededTest;

// Values spread over and beyond the range, plus exact halves (x / scale = k + 0.5), where
// rounding half to even matters, and the range's edges.
at::Tensor probe_values(float scale, float zero_point, float lo, float hi, at::IntArrayRef shape) {
  at::Tensor x = at::randn(shape) * (hi - lo) * scale * 0.4f;
  at::Tensor flat = x.view({-1});
  const int64_t n = flat.numel();
  for (int64_t i = 0; i < n; i += 7) {
    const float k = static_cast<float>((i / 7) % static_cast<int64_t>(hi - lo + 6)) + lo - zero_point - 3;
    flat[i] = (k + 0.5f) * scale;
  }
  return x;
}

// The gradient of sum(f(x) * g) with respect to x, g fixed and random.
at::Tensor grad_of(const std::function<at::Tensor(const at::Tensor&)>& f, const at::Tensor& x,
                   const at::Tensor& g) {
  at::Tensor leaf = x.detach().clone().requires_grad_(true);
  (f(leaf) * g).sum().backward();
  return leaf.grad();
}

}  // namespace

TEST_F(TrainKernels, PerTensorFakeQuantizationIsAtensBitForBitWithTheSameGradient) {
  struct Case {
    float scale, zero_point, lo, hi;
  };
  for (const Case c : {Case{0.02f, 128, 0, 255}, Case{0.0173f, 3, 0, 255}, Case{0.05f, 0, -127, 127},
                       Case{1.5f, 250, 0, 255}}) {
    // Sizes below, at and above a vector's width and the parallel grain.
    for (int64_t n : {int64_t{5}, int64_t{64}, int64_t{1000}, int64_t{70001}}) {
      const at::Tensor x = probe_values(c.scale, c.zero_point, c.lo, c.hi, {n});
      const at::Tensor ref = at::fake_quantize_per_tensor_affine(
          x, c.scale, static_cast<int64_t>(c.zero_point), static_cast<int64_t>(c.lo),
          static_cast<int64_t>(c.hi));
      const at::Tensor got = fake_quantize(x, c.scale, c.zero_point, c.lo, c.hi);
      ASSERT_TRUE(at::equal(got, ref)) << "scale " << c.scale << ", n " << n << ": "
                                       << (got - ref).abs().max().item<float>();
      const at::Tensor g = at::randn({n});
      const at::Tensor gref = grad_of(
          [&](const at::Tensor& v) {
            return at::fake_quantize_per_tensor_affine(v, c.scale, static_cast<int64_t>(c.zero_point),
                                                       static_cast<int64_t>(c.lo), static_cast<int64_t>(c.hi));
          },
          x, g);
      const at::Tensor ggot =
          grad_of([&](const at::Tensor& v) { return fake_quantize(v, c.scale, c.zero_point, c.lo, c.hi); }, x, g);
      ASSERT_TRUE(at::equal(ggot, gref)) << "gradient, scale " << c.scale << ", n " << n;
      // The masked-out share is not trivial, so the gradient test means something.
      const double zeroed = (gref == 0).to(at::kFloat).mean().item<double>();
      if (n >= 1000) EXPECT_GT(zeroed, 0.01);
    }
  }
}

TEST_F(TrainKernels, PerChannelFakeQuantizationIsAtensBitForBitOnEveryAxis) {
  const at::Tensor w = at::randn({6, 9, 5}) * 0.3f;
  for (int64_t axis : {int64_t{0}, int64_t{1}, int64_t{2}}) {
    const at::Tensor scales = w.abs().amax(at::IntArrayRef(
                                  axis == 0 ? std::vector<int64_t>{1, 2}
                                            : axis == 1 ? std::vector<int64_t>{0, 2} : std::vector<int64_t>{0, 1})) /
                              127.0f * 0.7f;  // 0.7: some values fall outside the range
    const at::Tensor zeros = at::zeros({scales.size(0)}, at::kInt);
    const at::Tensor ref = at::fake_quantize_per_channel_affine(w, scales, zeros, axis, -127, 127);
    const at::Tensor got = fake_quantize_per_channel(w, scales, axis, -127, 127);
    ASSERT_TRUE(at::equal(got, ref)) << "axis " << axis;
    const at::Tensor g = at::randn(w.sizes());
    const at::Tensor gref = grad_of(
        [&](const at::Tensor& v) { return at::fake_quantize_per_channel_affine(v, scales, zeros, axis, -127, 127); },
        w, g);
    const at::Tensor ggot =
        grad_of([&](const at::Tensor& v) { return fake_quantize_per_channel(v, scales, axis, -127, 127); }, w, g);
    ASSERT_TRUE(at::equal(ggot, gref)) << "gradient, axis " << axis;
    EXPECT_GT((gref == 0).to(at::kFloat).mean().item<double>(), 0.0) << "axis " << axis;
  }
  // Wrong shapes and types are one-line errors.
  EXPECT_THROW(fake_quantize_per_channel(w, at::ones({5}), 0, -127, 127), Error);
  EXPECT_THROW(fake_quantize_per_channel(w, at::ones({6}), 3, -127, 127), Error);
  EXPECT_THROW(fake_quantize(w.to(at::kDouble), 0.1f, 0, 0, 255), Error);
}

TEST_F(TrainKernels, DropoutKeepsOneMinusPRescalesAndPassesTheGradientThroughTheMask) {
  const int64_t n = 1 << 20;
  const at::Tensor x = at::randn({n});
  for (double p : {0.1, 0.5, 0.9}) {
    at::Tensor leaf = x.clone().requires_grad_(true);
    const DropoutResult r = dropout(leaf, p);
    const at::Tensor kept = r.mask.to(at::kFloat);
    // The keep rate: 6 standard deviations of a binomial share at n = 2^20 is under 0.003.
    EXPECT_NEAR(kept.mean().item<double>(), 1.0 - p, 0.003) << "p " << p;
    const float scale = static_cast<float>(1.0 / (1.0 - p));
    EXPECT_TRUE(at::equal(r.output.detach(), x * (kept * scale))) << "p " << p;
    // Neighbours are independent: the share of kept pairs is (1 - p)^2.
    const double pairs = (kept.slice(0, 0, n - 1) * kept.slice(0, 1, n)).mean().item<double>();
    EXPECT_NEAR(pairs, (1.0 - p) * (1.0 - p), 0.004) << "p " << p;
    const at::Tensor g = at::randn({n});
    (r.output * g).sum().backward();
    EXPECT_TRUE(at::allclose(leaf.grad(), g * kept * scale, 1e-6, 0)) << "p " << p;
  }
  // Seeded runs repeat; successive calls draw new masks.
  at::manual_seed(7);
  const at::Tensor a = dropout(x, 0.5).mask;
  const at::Tensor b = dropout(x, 0.5).mask;
  at::manual_seed(7);
  const at::Tensor a2 = dropout(x, 0.5).mask;
  EXPECT_TRUE(at::equal(a, a2));
  EXPECT_FALSE(at::equal(a, b));
  EXPECT_NEAR((a == b).to(at::kFloat).mean().item<double>(), 0.5, 0.003);
  // p = 0 keeps everything; a ratio outside [0, 1) is refused.
  EXPECT_TRUE(at::equal(dropout(x, 0.0).output, x));
  EXPECT_THROW(dropout(x, 1.0), Error);
  EXPECT_THROW(dropout(x, -0.1), Error);
}
