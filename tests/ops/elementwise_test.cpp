// Element-wise ops against values worked out by hand (or with <cmath>, never the ATen call the
// kernel makes).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "op_test_util.h"

using namespace edgeforge;
using namespace edgeforge::testing;

namespace {

using OpRelu = SeededTest;
using OpLeakyRelu = SeededTest;
using OpSigmoid = SeededTest;
using OpTanh = SeededTest;
using OpErf = SeededTest;
using OpExp = SeededTest;
using OpLog = SeededTest;
using OpNeg = SeededTest;
using OpAbs = SeededTest;
using OpSqrt = SeededTest;
using OpPow = SeededTest;
using OpAdd = SeededTest;
using OpSub = SeededTest;
using OpMul = SeededTest;
using OpDiv = SeededTest;
using OpEqual = SeededTest;
using OpLess = SeededTest;
using OpGreater = SeededTest;
using OpNot = SeededTest;
using OpAnd = SeededTest;
using OpWhere = SeededTest;
using OpCast = SeededTest;
using OpClip = SeededTest;

at::Tensor bools(std::vector<int> values) {
  std::vector<int64_t> v(values.begin(), values.end());
  return at::tensor(v, at::kLong).to(at::kBool);
}

TEST_F(OpRelu, ZeroesNegatives) {
  at::Tensor y = OneNode("Relu").input(tensor_of({-1.5f, 0.0f, 2.0f, -0.1f}, {2, 2})).run();
  expect_close(y, tensor_of({0.0f, 0.0f, 2.0f, 0.0f}, {2, 2}));
}

TEST_F(OpRelu, GradientIsOneWherePositive) {
  at::Tensor x = tensor_of({-1.0f, 2.0f, 3.0f}, {3}).requires_grad_(true);
  at::Tensor y = OneNode("Relu").input(x).run(true);
  y.sum().backward();
  expect_close(x.grad(), tensor_of({0.0f, 1.0f, 1.0f}, {3}));
}

TEST_F(OpLeakyRelu, DefaultAlphaIsOneHundredth) {
  at::Tensor y = OneNode("LeakyRelu").input(tensor_of({-2.0f, 3.0f}, {2})).run();
  expect_close(y, tensor_of({-0.02f, 3.0f}, {2}));
}

TEST_F(OpLeakyRelu, AlphaAttribute) {
  at::Tensor y =
      OneNode("LeakyRelu").input(tensor_of({-2.0f, 3.0f}, {2})).attr("alpha", 0.5f).run();
  expect_close(y, tensor_of({-1.0f, 3.0f}, {2}));
}

TEST_F(OpSigmoid, KnownValues) {
  // sigmoid(ln 3) = 1 / (1 + 1/3) = 0.75; sigmoid(-ln 3) = 0.25.
  const float ln3 = std::log(3.0f);
  at::Tensor y = OneNode("Sigmoid").input(tensor_of({0.0f, ln3, -ln3}, {3})).run();
  expect_close(y, tensor_of({0.5f, 0.75f, 0.25f}, {3}));
}

TEST_F(OpTanh, KnownValues) {
  // tanh(ln 2) = (2 - 1/2) / (2 + 1/2) = 0.6.
  const float ln2 = std::log(2.0f);
  at::Tensor y = OneNode("Tanh").input(tensor_of({0.0f, ln2, -ln2}, {3})).run();
  expect_close(y, tensor_of({0.0f, 0.6f, -0.6f}, {3}));
}

TEST_F(OpErf, MatchesCmath) {
  at::Tensor y = OneNode("Erf").input(tensor_of({0.0f, 1.0f, -0.5f}, {3})).run();
  expect_close(y, tensor_of({0.0f, 0.8427007929f, -0.5204998778f}, {3}));
}

TEST_F(OpExp, KnownValues) {
  at::Tensor y = OneNode("Exp").input(tensor_of({0.0f, std::log(5.0f)}, {2})).run();
  expect_close(y, tensor_of({1.0f, 5.0f}, {2}));
}

TEST_F(OpLog, KnownValuesAndZero) {
  at::Tensor y = OneNode("Log").input(tensor_of({1.0f, std::exp(2.0f), 0.0f}, {3})).run();
  EXPECT_NEAR(y[0].item<float>(), 0.0f, 1e-6);
  EXPECT_NEAR(y[1].item<float>(), 2.0f, 1e-5);
  EXPECT_EQ(y[2].item<float>(), -std::numeric_limits<float>::infinity());
}

TEST_F(OpNeg, FloatAndInt) {
  expect_close(OneNode("Neg").input(tensor_of({1.0f, -2.0f}, {2})).run(),
               tensor_of({-1.0f, 2.0f}, {2}));
  expect_equal(OneNode("Neg").input(ints_of({3, -4})).run(), ints_of({-3, 4}));
}

TEST_F(OpAbs, FloatAndInt) {
  expect_close(OneNode("Abs").input(tensor_of({-3.0f, 2.0f}, {2})).run(),
               tensor_of({3.0f, 2.0f}, {2}));
  expect_equal(OneNode("Abs").input(ints_of({-5, 0})).run(), ints_of({5, 0}));
}

TEST_F(OpSqrt, KnownValues) {
  at::Tensor y = OneNode("Sqrt").input(tensor_of({4.0f, 0.25f, 0.0f}, {3})).run();
  expect_close(y, tensor_of({2.0f, 0.5f, 0.0f}, {3}));
}

TEST_F(OpPow, ElementwiseTensors) {
  at::Tensor y =
      OneNode("Pow").input(tensor_of({2.0f, 3.0f}, {2})).input(tensor_of({3.0f, 2.0f}, {2})).run();
  expect_close(y, tensor_of({8.0f, 9.0f}, {2}));
}

TEST_F(OpPow, ConstantScalarExponent) {
  at::Tensor y = OneNode("Pow")
                     .input(tensor_of({1.0f, -2.0f, 3.0f, 0.5f}, {2, 2}))
                     .constant(at::scalar_tensor(2.0, at::kFloat))
                     .run();
  expect_close(y, tensor_of({1.0f, 4.0f, 9.0f, 0.25f}, {2, 2}));
}

TEST_F(OpPow, ConstantExponentOfHigherRankBroadcastsTheBase) {
  at::Tensor y = OneNode("Pow")
                     .input(at::scalar_tensor(3.0, at::kFloat))
                     .constant(tensor_of({2.0f}, {1, 1}))
                     .run();
  expect_close(y, tensor_of({9.0f}, {1, 1}));
}

TEST_F(OpPow, OutputKeepsTheBaseType) {
  // ONNX: the result has the type of X, even for a float exponent.
  at::Tensor y = OneNode("Pow").input(ints_of({4, 9})).input(at::scalar_tensor(0.5)).run();
  expect_equal(y, ints_of({2, 3}));
}

TEST_F(OpAdd, Broadcasts) {
  at::Tensor y = OneNode("Add")
                     .input(tensor_of({1.0f, 2.0f}, {2, 1}))
                     .input(tensor_of({10.0f, 20.0f, 30.0f}, {3}))
                     .run();
  expect_close(y, tensor_of({11.0f, 21.0f, 31.0f, 12.0f, 22.0f, 32.0f}, {2, 3}));
}

TEST_F(OpAdd, Int64Shapes) {
  expect_equal(OneNode("Add").input(ints_of({2, 3})).constant(ints_of({1})).run(), ints_of({3, 4}));
}

TEST_F(OpSub, OrderAndBroadcast) {
  at::Tensor y = OneNode("Sub")
                     .input(tensor_of({5.0f, 7.0f}, {2}))
                     .constant(at::scalar_tensor(1.5, at::kFloat))
                     .run();
  expect_close(y, tensor_of({3.5f, 5.5f}, {2}));
}

TEST_F(OpMul, BroadcastsBothWays) {
  at::Tensor y = OneNode("Mul")
                     .input(tensor_of({1.0f, 2.0f}, {1, 2}))
                     .input(tensor_of({3.0f, 4.0f}, {2, 1}))
                     .run();
  expect_close(y, tensor_of({3.0f, 6.0f, 4.0f, 8.0f}, {2, 2}));
}

TEST_F(OpDiv, Float) {
  at::Tensor y =
      OneNode("Div").input(tensor_of({1.0f, 3.0f}, {2})).input(tensor_of({2.0f, 4.0f}, {2})).run();
  expect_close(y, tensor_of({0.5f, 0.75f}, {2}));
}

TEST_F(OpDiv, IntegerTruncatesTowardZero) {
  // -7 / 2 is -3 in ONNX (C division), not floor's -4 and not -3.5.
  at::Tensor y = OneNode("Div").input(ints_of({7, -7, 6})).constant(ints_of({2})).run();
  expect_equal(y, ints_of({3, -3, 3}));
}

TEST_F(OpEqual, Int64) {
  at::Tensor y = OneNode("Equal").input(ints_of({1, 2, 3})).input(ints_of({1, 0, 3})).run();
  expect_equal(y, bools({1, 0, 1}));
}

TEST_F(OpLess, BroadcastFloat) {
  at::Tensor y = OneNode("Less")
                     .input(tensor_of({1.0f, 2.0f, 3.0f}, {3}))
                     .constant(at::scalar_tensor(2.0, at::kFloat))
                     .run();
  expect_equal(y, bools({1, 0, 0}));
}

TEST_F(OpGreater, BroadcastFloat) {
  at::Tensor y = OneNode("Greater")
                     .input(tensor_of({1.0f, 2.0f, 3.0f}, {3}))
                     .constant(at::scalar_tensor(2.0, at::kFloat))
                     .run();
  expect_equal(y, bools({0, 0, 1}));
}

TEST_F(OpNot, Flips) { expect_equal(OneNode("Not").input(bools({1, 0})).run(), bools({0, 1})); }

TEST_F(OpAnd, TruthTable) {
  at::Tensor y = OneNode("And").input(bools({0, 0, 1, 1})).input(bools({0, 1, 0, 1})).run();
  expect_equal(y, bools({0, 0, 0, 1}));
}

TEST_F(OpWhere, BroadcastsAllThree) {
  at::Tensor cond = bools({1, 0, 0, 1}).reshape({2, 2});
  at::Tensor y = OneNode("Where")
                     .input(cond)
                     .input(tensor_of({1.0f, 2.0f}, {2}))
                     .constant(at::scalar_tensor(-1.0, at::kFloat))
                     .run();
  expect_close(y, tensor_of({1.0f, -1.0f, -1.0f, 2.0f}, {2, 2}));
}

TEST_F(OpWhere, GradientOnlyToTheChosenBranch) {
  at::Tensor x = tensor_of({1.0f, 2.0f}, {2}).requires_grad_(true);
  at::Tensor y = tensor_of({3.0f, 4.0f}, {2});
  OneNode("Where").input(bools({1, 0})).input(x).input(y).run(true).sum().backward();
  expect_close(x.grad(), tensor_of({1.0f, 0.0f}, {2}));
}

TEST_F(OpCast, FloatToInt64Truncates) {
  at::Tensor y =
      OneNode("Cast").input(tensor_of({1.7f, -1.7f, 0.0f}, {3})).attr("to", int64_t{7}).run();
  expect_equal(y, ints_of({1, -1, 0}));
}

TEST_F(OpCast, ToBoolAndBackToFloat) {
  expect_equal(OneNode("Cast").input(tensor_of({2.5f, 0.0f}, {2})).attr("to", int64_t{9}).run(),
               bools({1, 0}));
  at::Tensor f = OneNode("Cast").input(ints_of({3, -1})).attr("to", int64_t{1}).run();
  EXPECT_EQ(f.scalar_type(), at::kFloat);
  expect_close(f, tensor_of({3.0f, -1.0f}, {2}));
}

TEST_F(OpCast, StringTypeIsAnErrorNamingTheNode) {
  expect_error([] { OneNode("Cast").input(ints_of({1})).attr("to", int64_t{8}).prepare(); },
               {"Cast node 'node'", "ONNX data type 8"});
}

TEST_F(OpClip, ConstantBounds) {
  at::Tensor y = OneNode("Clip")
                     .input(tensor_of({-2.0f, 0.5f, 3.0f}, {3}))
                     .constant(at::scalar_tensor(0.0, at::kFloat))
                     .constant(at::scalar_tensor(1.0, at::kFloat))
                     .run();
  expect_close(y, tensor_of({0.0f, 0.5f, 1.0f}, {3}));
}

TEST_F(OpClip, OnlyMax) {
  at::Tensor y = OneNode("Clip")
                     .input(tensor_of({-2.0f, 0.5f, 3.0f}, {3}))
                     .omitted()
                     .constant(at::scalar_tensor(1.0, at::kFloat))
                     .run();
  expect_close(y, tensor_of({-2.0f, 0.5f, 1.0f}, {3}));
}

TEST_F(OpClip, NoBoundsIsIdentity) {
  at::Tensor x = tensor_of({-2.0f, 3.0f}, {2});
  expect_close(OneNode("Clip").input(x).run(), x);
}

TEST_F(OpClip, RuntimeBoundsCarryGradient) {
  // d/dmin sum(clip(x, min, max)) counts the elements raised to min.
  at::Tensor lo = at::scalar_tensor(0.0, at::kFloat).requires_grad_(true);
  at::Tensor y = OneNode("Clip")
                     .input(tensor_of({-2.0f, -1.0f, 0.5f, 3.0f}, {4}))
                     .input(lo)
                     .input(at::scalar_tensor(1.0, at::kFloat))
                     .run(true);
  expect_close(y, tensor_of({0.0f, 0.0f, 0.5f, 1.0f}, {4}));
  y.sum().backward();
  ASSERT_TRUE(lo.grad().defined());
  EXPECT_FLOAT_EQ(lo.grad().item<float>(), 2.0f);
}

TEST_F(OpClip, MinAboveMaxGivesMax) {
  // ONNX (and numpy.clip): when min > max every element becomes max.
  at::Tensor y = OneNode("Clip")
                     .input(tensor_of({-2.0f, 5.0f}, {2}))
                     .constant(at::scalar_tensor(3.0, at::kFloat))
                     .constant(at::scalar_tensor(1.0, at::kFloat))
                     .run();
  expect_close(y, tensor_of({1.0f, 1.0f}, {2}));
}

}  // namespace
