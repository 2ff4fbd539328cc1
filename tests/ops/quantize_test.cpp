// QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear against values worked out by hand
// from the ONNX operator definitions (the uint8 and dynamic cases are the spec's own examples).
#include <gtest/gtest.h>

#include "op_test_util.h"

using namespace edgeforge;
using namespace edgeforge::testing;

namespace {

using OpQuantizeLinear = SeededTest;
using OpDequantizeLinear = SeededTest;
using OpDynamicQuantizeLinear = SeededTest;

at::Tensor u8(std::vector<int64_t> v) { return at::tensor(v, at::kLong).to(at::kByte); }
at::Tensor i8(std::vector<int64_t> v) { return at::tensor(v, at::kLong).to(at::kChar); }

TEST_F(OpQuantizeLinear, PerTensorUint8RoundsHalfToEvenAndSaturates) {
  at::Tensor y = OneNode("QuantizeLinear")
                     .input(tensor_of({0, 2, 3, 1000, -254, -1000}, {6}))
                     .constant(at::full({}, 2.0f))
                     .constant(u8({128}).reshape({}))
                     .run();
  // 3 / 2 = 1.5 rounds to 2, not 1; 1000 / 2 + 128 saturates at 255, -1000 / 2 + 128 at 0.
  expect_equal(y, u8({128, 129, 130, 255, 1, 0}));
}

TEST_F(OpQuantizeLinear, OmittedZeroPointMeansUint8Zero) {
  at::Tensor y = OneNode("QuantizeLinear")
                     .input(tensor_of({-1, 0.5f, 2.5f, 300}, {4}))
                     .constant(at::full({}, 1.0f))
                     .run();
  expect_equal(y, u8({0, 0, 2, 255}));
}

TEST_F(OpQuantizeLinear, PerAxisInt8) {
  at::Tensor y = OneNode("QuantizeLinear")
                     .input(tensor_of({1.5f, 3, -9, 200, -300, 2}, {2, 3}))
                     .constant(tensor_of({1, 2, 4}, {3}))
                     .constant(i8({0, 1, -1}))
                     .attr("axis", int64_t{1})
                     .run();
  // x / scale = [[1.5, 1.5, -2.25], [200, -150, 0.5]] -> round -> + zero point -> saturate.
  expect_equal(y, i8({2, 3, -3, 127, -128, -1}).reshape({2, 3}));
}

TEST_F(OpQuantizeLinear, NegativeAxisCountsFromTheEnd) {
  at::Tensor y = OneNode("QuantizeLinear")
                     .input(tensor_of({4, 4, 4, 4}, {2, 2}))
                     .constant(tensor_of({1, 4}, {2}))
                     .constant(i8({0, 0}))
                     .attr("axis", int64_t{-1})
                     .run();
  expect_equal(y, i8({4, 1, 4, 1}).reshape({2, 2}));
}

TEST_F(OpQuantizeLinear, BadZeroPointTypeAndScaleLengthAreNamed) {
  expect_error(
      [] {
        OneNode("QuantizeLinear")
            .input(tensor_of({1, 2}, {2}))
            .constant(at::full({}, 1.0f))
            .constant(at::zeros({}, at::kInt))
            .run();
      },
      {"QuantizeLinear", "node", "Int", "uint8 or int8"});
  expect_error(
      [] {
        OneNode("QuantizeLinear")
            .input(at::ones({2, 3}))
            .constant(tensor_of({1, 2}, {2}))
            .constant(i8({0, 0}))
            .run();
      },
      {"scale has 2 elements", "3 along axis 1"});
}

TEST_F(OpDequantizeLinear, PerTensorUint8AndInt32) {
  at::Tensor y = OneNode("DequantizeLinear")
                     .input(u8({0, 3, 128, 255}))
                     .constant(at::full({}, 2.0f))
                     .constant(u8({128}).reshape({}))
                     .run();
  expect_close(y, tensor_of({-256, -250, 0, 254}, {4}), 0);
  at::Tensor z = OneNode("DequantizeLinear")
                     .input(at::tensor(std::vector<int64_t>{-5, 7}, at::kLong).to(at::kInt))
                     .constant(at::full({}, 0.5f))
                     .run();
  expect_close(z, tensor_of({-2.5f, 3.5f}, {2}), 0);
}

TEST_F(OpDequantizeLinear, PerAxisInt8) {
  at::Tensor y = OneNode("DequantizeLinear")
                     .input(i8({2, 3, -3, 127, -128, -1}).reshape({2, 3}))
                     .constant(tensor_of({1, 2, 4}, {3}))
                     .constant(i8({0, 1, -1}))
                     .run();  // axis defaults to 1
  expect_close(y, tensor_of({2, 4, -8, 127, -258, 0}, {2, 3}), 0);
}

TEST_F(OpDequantizeLinear, FloatInputAndMismatchedZeroPointAreNamed) {
  expect_error(
      [] { OneNode("DequantizeLinear").input(at::ones({2})).constant(at::full({}, 1.0f)).run(); },
      {"DequantizeLinear", "Float", "uint8, int8 or int32"});
  expect_error(
      [] {
        OneNode("DequantizeLinear")
            .input(u8({1, 2}))
            .constant(at::full({}, 1.0f))
            .constant(i8({0}).reshape({}))
            .run();
      },
      {"zero point has type Char", "Byte"});
}

// Quantize then dequantize is within half a step of the input wherever it is in range.
TEST_F(OpQuantizeLinear, RoundTripIsWithinHalfAStep) {
  constexpr float kScale = 0.05f;
  at::Tensor x = at::rand({1000}) * 12.0f - 6.0f;  // inside [-128, 127] * 0.05
  at::Tensor q = OneNode("QuantizeLinear")
                     .input(x)
                     .constant(at::full({}, kScale))
                     .constant(i8({0}).reshape({}))
                     .run();
  at::Tensor back = OneNode("DequantizeLinear")
                        .input(q)
                        .constant(at::full({}, kScale))
                        .constant(i8({0}).reshape({}))
                        .run();
  EXPECT_LE((back - x).abs().max().item<float>(), kScale / 2 + 1e-6f);
}

TEST_F(OpDynamicQuantizeLinear, SpecExample) {
  std::vector<at::Tensor> out = OneNode("DynamicQuantizeLinear")
                                    .input(tensor_of({0, 2, -3, -2.5f, 1.34f, 0.5f}, {6}))
                                    .outputs(3)
                                    .run_all();
  // Range [-3, 2]: scale 5 / 255, zero point round(3 / scale) = 153.
  expect_close(out[1], at::full({}, 5.0f / 255.0f), 1e-7);
  expect_equal(out[2], u8({153}).reshape({}));
  expect_equal(out[0], u8({153, 255, 0, 26, 221, 179}));
}

TEST_F(OpDynamicQuantizeLinear, RangeAlwaysHoldsZero) {
  // All positive: min(0, min x) = 0, so the zero point is 0 and the top maps to 255.
  std::vector<at::Tensor> out =
      OneNode("DynamicQuantizeLinear").input(tensor_of({1, 3, 4}, {3})).outputs(3).run_all();
  expect_equal(out[2], u8({0}).reshape({}));
  expect_equal(out[0], u8({64, 191, 255}));  // 63.75, 191.25 and 255 steps of 4 / 255
}

TEST_F(OpDynamicQuantizeLinear, AllZeroInputGivesZeros) {
  std::vector<at::Tensor> out =
      OneNode("DynamicQuantizeLinear").input(at::zeros({4})).outputs(3).run_all();
  expect_equal(out[0], u8({0, 0, 0, 0}));
  EXPECT_EQ(out[1].item<float>(), 0.0f);
  expect_equal(out[2], u8({0}).reshape({}));
}

}  // namespace
