// The int8 convolution against its float reference: the QDQ form (input and weights quantized
// and dequantized, float convolution, output quantized), on the zoo's convolution shapes.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "edgeforge/error.h"
#include "edgeforge/int8.h"
#include "edgeforge/lower.h"

using namespace edgeforge;

namespace {

// The kernel accumulates exactly in int32 and requantizes once; the reference rounds the float
// result once. They may land on neighbouring steps where a value sits near a rounding edge (the
// bias is also rounded to int32 inside the kernel), never further apart.
constexpr int64_t kMaxStepDifference = 1;

QuantParams uint8_params(double lo, double hi) {
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  QuantParams p;
  p.scale = (hi - lo) / 255.0;
  p.zero_point = static_cast<int64_t>(std::nearbyint(-lo / p.scale));
  return p;
}

// The weight quantized as the kernels multiply it exactly on this CPU: 8-bit where it has
// VNNI, 7-bit elsewhere (edgeforge/lower.h; tests/runtime/saturation_test.cpp covers the rest).
at::Tensor int8_weight_of(const at::Tensor& w) {
  const int64_t qmax = exact_int8_weight_limit() >= 127 ? 127 : 63;
  return at::quantize_per_channel(w, symmetric_channel_scales(w, qmax),
                                  at::zeros({w.size(0)}, at::kLong), 0, at::kQInt8);
}

// The weight as the int8 kernels hold it, back in float: the QDQ reference's weight.
at::Tensor qdq_weight(const at::Tensor& w) { return int8_weight_of(w).dequantize(); }

struct ConvCase {
  std::string name;
  int64_t batch, in_ch, out_ch, size, kernel, stride, pad, groups;
  bool relu;
};

class Int8Conv : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Int8Conv, MatchesTheQdqReferenceWithinOneStep) {
  const ConvCase& c = GetParam();
  at::manual_seed(0);
  const at::Tensor x = at::rand({c.batch, c.in_ch, c.size, c.size}) * 4.0 - 1.0;
  const at::Tensor w = at::randn({c.out_ch, c.in_ch / c.groups, c.kernel, c.kernel}) * 0.2;
  const at::Tensor b = at::randn({c.out_ch}) * 0.1;
  const QuantParams in = uint8_params(-1.0, 3.0);
  const at::Tensor xq = at::quantize_per_tensor(x, in.scale, in.zero_point, at::kQUInt8);
  const std::vector<int64_t> stride{c.stride, c.stride}, pad{c.pad, c.pad}, dil{1, 1};

  // The QDQ reference in float.
  const at::Tensor w_dq = qdq_weight(w);
  at::Tensor ref = at::conv2d(xq.dequantize(), w_dq, b, stride, pad, dil, c.groups);
  if (c.relu) ref = at::relu(ref);
  const QuantParams out = uint8_params(ref.min().item<double>(), ref.max().item<double>());
  const at::Tensor ref_q =
      at::quantize_per_tensor(ref, out.scale, out.zero_point, at::kQUInt8).int_repr();

  Int8Conv2d conv(int8_weight_of(w), b, stride, pad, dil, c.groups, out, c.relu);
  const at::Tensor y = conv.run(xq);
  ASSERT_EQ(y.sizes(), ref.sizes());
  EXPECT_EQ(y.q_scale(), out.scale);
  EXPECT_EQ(y.q_zero_point(), out.zero_point);
  const at::Tensor diff = (y.int_repr().to(at::kInt) - ref_q.to(at::kInt)).abs();
  EXPECT_LE(diff.max().item<int>(), kMaxStepDifference)
      << diff.gt(0).sum().item<int64_t>() << " of " << diff.numel() << " values differ";
  // And the same answer on a second run: the prepacked weights are not consumed.
  EXPECT_TRUE(at::equal(conv.run(xq).int_repr(), y.int_repr()));
}

INSTANTIATE_TEST_SUITE_P(
    ZooShapes, Int8Conv,
    ::testing::Values(
        ConvCase{"stem", 1, 1, 16, 28, 3, 2, 1, 1, true},
        ConvCase{"basic3x3", 1, 16, 16, 14, 3, 1, 1, 1, true},
        ConvCase{"downsample3x3", 4, 16, 32, 14, 3, 2, 1, 1, false},
        ConvCase{"shortcut1x1", 4, 32, 64, 7, 1, 2, 0, 1, false},
        ConvCase{"grouped3x3", 2, 32, 32, 14, 3, 1, 1, 8, true},
        ConvCase{"wide3x3", 1, 64, 64, 56, 3, 1, 1, 1, true}),
    [](const ::testing::TestParamInfo<ConvCase>& info) { return info.param.name; });

struct LinearCase {
  std::string name;
  int64_t rows, in, out;
  bool relu;
};

class Int8LinearTest : public ::testing::TestWithParam<LinearCase> {};

TEST_P(Int8LinearTest, StaticMatchesTheQdqReferenceWithinOneStep) {
  const LinearCase& c = GetParam();
  at::manual_seed(1);
  const at::Tensor x = at::randn({c.rows, c.in});
  const at::Tensor w = at::randn({c.out, c.in}) * 0.1;
  const at::Tensor b = at::randn({c.out}) * 0.1;
  const QuantParams in = uint8_params(x.min().item<double>(), x.max().item<double>());
  const at::Tensor xq = at::quantize_per_tensor(x, in.scale, in.zero_point, at::kQUInt8);
  const at::Tensor w_dq = qdq_weight(w);
  at::Tensor ref = at::linear(xq.dequantize(), w_dq, b);
  if (c.relu) ref = at::relu(ref);
  const QuantParams out = uint8_params(ref.min().item<double>(), ref.max().item<double>());
  const at::Tensor ref_q =
      at::quantize_per_tensor(ref, out.scale, out.zero_point, at::kQUInt8).int_repr();
  Int8Linear linear(int8_weight_of(w), b, out, c.relu);
  const at::Tensor y = linear.run(xq);
  ASSERT_EQ(y.sizes(), ref.sizes());
  const at::Tensor diff = (y.int_repr().to(at::kInt) - ref_q.to(at::kInt)).abs();
  EXPECT_LE(diff.max().item<int>(), kMaxStepDifference)
      << diff.gt(0).sum().item<int64_t>() << " of " << diff.numel() << " values differ";
}

// Dynamic: the input is quantized at run time with its own range (uint8, 0 included), so the
// reference is DynamicQuantizeLinear's quantization of x, then float with dequantized weights.
TEST_P(Int8LinearTest, DynamicMatchesItsReference) {
  const LinearCase& c = GetParam();  // without the ReLU: the dynamic strategy fuses none
  at::manual_seed(2);
  const at::Tensor x = at::randn({c.rows, c.in});
  const at::Tensor w = at::randn({c.out, c.in}) * 0.1;
  const at::Tensor b = at::randn({c.out}) * 0.1;
  const QuantParams in = uint8_params(x.min().item<double>(), x.max().item<double>());
  const at::Tensor x_dq =
      at::quantize_per_tensor(x, in.scale, in.zero_point, at::kQUInt8).dequantize();
  const at::Tensor w_dq = qdq_weight(w);
  const at::Tensor ref = at::linear(x_dq, w_dq, b);
  Int8Linear linear(int8_weight_of(w), b, QuantParams{1.0, 0}, false);
  const at::Tensor y = linear.run_dynamic(x);
  ASSERT_EQ(y.scalar_type(), at::kFloat);
  // Only the rounding of the input's range may differ: a small share of one input step
  // through the weights, against outputs of order one.
  constexpr double kDynamicTolerance = 1e-2;
  EXPECT_LE((y - ref).abs().max().item<double>(),
            kDynamicTolerance * ref.abs().max().item<double>());
  // The outputs are not trivially small, so the tolerance means something.
  EXPECT_GT(ref.abs().max().item<double>(), 0.5);
}

INSTANTIATE_TEST_SUITE_P(
    ZooShapes, Int8LinearTest,
    ::testing::Values(LinearCase{"head", 1, 128, 10, false},
                      LinearCase{"projection", 128, 128, 128, false},
                      LinearCase{"ffn_in", 128, 128, 256, true},
                      LinearCase{"ffn_out", 128, 256, 128, false}),
    [](const ::testing::TestParamInfo<LinearCase>& info) { return info.param.name; });

TEST(Int8ConvErrors, WrongInputTypeAndBadParametersAreNamed) {
  const at::Tensor w = at::randn({4, 2, 3, 3});
  QuantParams out;
  out.scale = 0.1;
  Int8Conv2d conv(w, at::Tensor(), {1, 1}, {1, 1}, {1, 1}, 1, out, false);
  try {
    conv.run(at::rand({1, 2, 5, 5}));
    ADD_FAILURE() << "a float input was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected quint8"), std::string::npos) << e.what();
  }
  out.scale = 0;
  EXPECT_THROW(Int8Conv2d(w, at::Tensor(), {1, 1}, {1, 1}, {1, 1}, 1, out, false), Error);
  EXPECT_THROW(Int8Conv2d(at::randn({4, 2}), at::Tensor(), {1, 1}, {1, 1}, {1, 1}, 1,
                          QuantParams{0.1, 0}, false),
               Error);
}

TEST(Int8Scales, SymmetricPerChannel) {
  const at::Tensor w = at::tensor({1.0f, -2.54f, 0.5f, 0.0f, 0.0f, 0.0f}).reshape({3, 2});
  const at::Tensor s = symmetric_channel_scales(w);
  constexpr double kFloatScale = 1e-8;  // the scale is computed in float32
  EXPECT_NEAR(s[0].item<double>(), 2.54 / 127.0, kFloatScale);
  EXPECT_NEAR(s[1].item<double>(), 0.5 / 127.0, kFloatScale);
  EXPECT_GT(s[2].item<double>(), 0.0);  // an all-zero channel still has a valid scale
}

}  // namespace
