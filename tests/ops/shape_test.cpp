// Shape and data-movement ops against hand-written expected values (ONNX's own examples where
// the spec gives them), with shape inputs both constant and computed at run time.
#include <gtest/gtest.h>

#include <limits>

#include "op_test_util.h"

using namespace edgeforge;
using namespace edgeforge::testing;

namespace {

using OpFlatten = SeededTest;
using OpReshape = SeededTest;
using OpTranspose = SeededTest;
using OpGather = SeededTest;
using OpConcat = SeededTest;
using OpSlice = SeededTest;
using OpSplit = SeededTest;
using OpUnsqueeze = SeededTest;
using OpSqueeze = SeededTest;
using OpShape = SeededTest;
using OpSize = SeededTest;
using OpExpand = SeededTest;
using OpTile = SeededTest;
using OpConstant = SeededTest;
using OpConstantOfShape = SeededTest;
using OpIdentity = SeededTest;
using OpRange = SeededTest;

using Ints = std::vector<int64_t>;
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

// 0, 1, 2, ... as floats in `shape`.
at::Tensor counting(std::vector<int64_t> shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(i);
  return at::tensor(v, at::kFloat).reshape(shape);
}

// The elements of a float tensor in row-major order.
std::vector<float> elements(const at::Tensor& t) {
  at::Tensor c = t.contiguous().to(at::kFloat);
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}
std::vector<float> floats(std::initializer_list<float> v) { return v; }

// ---- Flatten ----

TEST_F(OpFlatten, Axes) {
  at::Tensor x = counting({2, 3, 4});
  struct Case {
    int64_t axis;
    Ints shape;
  };
  for (const Case& c : {Case{1, {2, 12}}, Case{0, {1, 24}}, Case{-1, {6, 4}}, Case{3, {24, 1}}}) {
    at::Tensor y = OneNode("Flatten").input(x).attr("axis", c.axis).run();
    EXPECT_EQ(y.sizes(), at::IntArrayRef(c.shape)) << "axis " << c.axis;
    EXPECT_EQ(elements(y), elements(x));
  }
}

TEST_F(OpFlatten, DefaultAxisIsOne) {
  EXPECT_EQ(OneNode("Flatten").input(counting({2, 3, 2})).run().sizes(), at::IntArrayRef({2, 6}));
}

TEST_F(OpFlatten, AxisBeyondRankIsAnError) {
  expect_error(
      [] {
        OneNode("Flatten").input(counting({2, 3})).attr("axis", int64_t{3}).run();
      },
      {"Flatten node 'node'", "axis 3"});
}

// ---- Reshape ----

TEST_F(OpReshape, ZeroCopiesAndMinusOneInfers) {
  at::Tensor x = counting({2, 3, 4});
  at::Tensor y = OneNode("Reshape").input(x).constant(ints_of({0, -1})).run();
  EXPECT_EQ(y.sizes(), at::IntArrayRef({2, 12}));
  EXPECT_EQ(elements(y), elements(x));
  // -1 first, then 0 copying the input's dimension 1 (3).
  at::Tensor z = OneNode("Reshape").input(x).constant(ints_of({-1, 0, 2})).run();
  EXPECT_EQ(z.sizes(), at::IntArrayRef({4, 3, 2}));
}

TEST_F(OpReshape, ShapeComputedAtRunTime) {
  at::Tensor x = counting({2, 3, 4});
  at::Tensor y = OneNode("Reshape").input(x).input(ints_of({4, 0, -1})).run();
  EXPECT_EQ(y.sizes(), at::IntArrayRef({4, 3, 2}));
  EXPECT_EQ(elements(y), elements(x));
}

TEST_F(OpReshape, AllowZeroKeepsALiteralZero) {
  at::Tensor x = at::zeros({0, 3});
  at::Tensor y =
      OneNode("Reshape").input(x).constant(ints_of({3, 0})).attr("allowzero", int64_t{1}).run();
  EXPECT_EQ(y.sizes(), at::IntArrayRef({3, 0}));
}

TEST_F(OpReshape, TwoMinusOnesAreAnError) {
  expect_error(
      [] {
        OneNode("Reshape").input(counting({4})).constant(ints_of({-1, -1})).prepare();
      },
      {"Reshape node 'node'", "more than one -1"});
}

TEST_F(OpReshape, ZeroBeyondTheInputRankIsAnError) {
  expect_error(
      [] {
        OneNode("Reshape").input(counting({4})).constant(ints_of({4, 0})).run();
      },
      {"Reshape node 'node'", "has 0 at index 1"});
}

// ---- Transpose ----

TEST_F(OpTranspose, DefaultReverses) {
  at::Tensor y = OneNode("Transpose").input(tensor_of({1, 2, 3, 4, 5, 6}, {2, 3})).run();
  expect_close(y, tensor_of({1, 4, 2, 5, 3, 6}, {3, 2}));
}

TEST_F(OpTranspose, Permutation) {
  at::Tensor x = counting({2, 3, 4});
  at::Tensor y = OneNode("Transpose").input(x).attr("perm", Ints{1, 2, 0}).run();
  ASSERT_EQ(y.sizes(), at::IntArrayRef({3, 4, 2}));
  // Output axis k is input axis perm[k]: y[b][c][a] = x[a][b][c] = 12a + 4b + c.
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(y[b][c][a].item<float>(), 12 * a + 4 * b + c);
}

TEST_F(OpTranspose, InvalidPermIsAnError) {
  expect_error(
      [] {
        OneNode("Transpose").input(counting({2, 2})).attr("perm", Ints{0, 0}).prepare();
      },
      {"Transpose node 'node'", "not a permutation"});
}

// ---- Gather ----

TEST_F(OpGather, Axis0SpecExample) {
  at::Tensor data = tensor_of({1.0f, 1.2f, 2.3f, 3.4f, 4.5f, 5.7f}, {3, 2});
  at::Tensor y =
      OneNode("Gather").input(data).constant(ints_of({0, 1, 1, 2}).reshape({2, 2})).run();
  expect_close(y, tensor_of({1.0f, 1.2f, 2.3f, 3.4f, 2.3f, 3.4f, 4.5f, 5.7f}, {2, 2, 2}));
}

TEST_F(OpGather, Axis1SpecExample) {
  at::Tensor data = tensor_of({1.0f, 1.2f, 1.9f, 2.3f, 3.4f, 3.9f, 4.5f, 5.7f, 5.9f}, {3, 3});
  at::Tensor y = OneNode("Gather")
                     .input(data)
                     .input(ints_of({0, 2}).reshape({1, 2}))
                     .attr("axis", int64_t{1})
                     .run();
  expect_close(y, tensor_of({1.0f, 1.9f, 2.3f, 3.9f, 4.5f, 5.9f}, {3, 1, 2}));
}

TEST_F(OpGather, NegativeIndicesAndNegativeAxis) {
  at::Tensor data = tensor_of({1, 2, 3, 4, 5, 6}, {2, 3});
  at::Tensor y =
      OneNode("Gather").input(data).input(ints_of({-1, 0})).attr("axis", int64_t{-1}).run();
  expect_close(y, tensor_of({3, 1, 6, 4}, {2, 2}));
}

TEST_F(OpGather, ScalarIndexOfAShapeGivesAScalar) {
  at::Tensor y = OneNode("Gather")
                     .input(ints_of({2, 3, 4}))
                     .constant(at::scalar_tensor(int64_t{1}, at::kLong))
                     .run();
  expect_equal(y, at::scalar_tensor(int64_t{3}, at::kLong));
}

TEST_F(OpGather, EmbeddingGradientCountsLookups) {
  at::Tensor table = at::randn({4, 2}).requires_grad_(true);
  at::Tensor y = OneNode("Gather").constant(table).input(ints_of({1, 3, 1})).run(true);
  y.sum().backward();
  expect_close(table.grad(), tensor_of({0, 0, 2, 2, 0, 0, 1, 1}, {4, 2}));
}

TEST_F(OpGather, OutOfRangeIndexNamesTheNode) {
  expect_error([] { OneNode("Gather").input(counting({3})).input(ints_of({3})).run(); },
               {"Gather node 'node'"});
}

// ---- Concat ----

TEST_F(OpConcat, Int64Shapes) {
  at::Tensor y = OneNode("Concat")
                     .input(ints_of({1, 2}))
                     .constant(ints_of({-1}))
                     .input(ints_of({}))
                     .attr("axis", int64_t{0})
                     .run();
  expect_equal(y, ints_of({1, 2, -1}));
}

TEST_F(OpConcat, NegativeAxis) {
  at::Tensor y = OneNode("Concat")
                     .input(tensor_of({1, 2}, {2, 1}))
                     .input(tensor_of({3, 4, 5, 6}, {2, 2}))
                     .attr("axis", int64_t{-1})
                     .run();
  expect_close(y, tensor_of({1, 3, 4, 2, 5, 6}, {2, 3}));
}

TEST_F(OpConcat, MissingAxisIsAnError) {
  expect_error([] { OneNode("Concat").input(counting({2})).input(counting({2})).prepare(); },
               {"Concat node 'node'", "axis"});
}

// ---- Slice ----

at::Tensor run_slice(const at::Tensor& x, Ints starts, Ints ends, Ints axes = {}, Ints steps = {}) {
  OneNode n("Slice");
  n.input(x).constant(ints_of(starts)).constant(ints_of(ends));
  if (!axes.empty() || !steps.empty()) {
    if (axes.empty()) {
      n.omitted();
    } else {
      n.constant(ints_of(axes));
    }
  }
  if (!steps.empty()) n.constant(ints_of(steps));
  return n.run();
}

TEST_F(OpSlice, PositiveSteps) {
  at::Tensor x = counting({10});
  EXPECT_EQ(elements(run_slice(x, {2}, {8}, {}, {3})), floats({2, 5}));
  EXPECT_EQ(elements(run_slice(x, {-3}, {-1})), floats({7, 8}));
  EXPECT_EQ(elements(run_slice(x, {1}, {kInt64Max})), floats({1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(run_slice(x, {5}, {2}).numel(), 0);
  EXPECT_EQ(elements(run_slice(x, {-100}, {2})), floats({0, 1}));
}

TEST_F(OpSlice, NegativeSteps) {
  at::Tensor x = counting({10});
  EXPECT_EQ(elements(run_slice(x, {-1}, {kInt64Min}, {0}, {-1})),
            floats({9, 8, 7, 6, 5, 4, 3, 2, 1, 0}));
  EXPECT_EQ(elements(run_slice(x, {8}, {1}, {0}, {-3})), floats({8, 5, 2}));
  // Start past the end clamps to the last element, end before the start to "before 0".
  EXPECT_EQ(elements(run_slice(x, {100}, {-100}, {0}, {-2})), floats({9, 7, 5, 3, 1}));
  EXPECT_EQ(run_slice(x, {2}, {5}, {0}, {-1}).numel(), 0);
}

TEST_F(OpSlice, AxesSubsetAndOmittedAxes) {
  at::Tensor x = counting({3, 4});
  at::Tensor y = run_slice(x, {1}, {kInt64Max}, {-1});
  EXPECT_EQ(y.sizes(), at::IntArrayRef({3, 3}));
  EXPECT_EQ(elements(y), floats({1, 2, 3, 5, 6, 7, 9, 10, 11}));
  at::Tensor z = run_slice(x, {2, 3}, {0, 0}, {}, {-1, -2});
  EXPECT_EQ(elements(z), floats({11, 9, 7, 5}));
}

TEST_F(OpSlice, InputsComputedAtRunTime) {
  at::Tensor x = counting({4, 3});
  at::Tensor y = OneNode("Slice")
                     .input(x)
                     .input(ints_of({-1}))
                     .input(ints_of({0}))
                     .input(ints_of({0}))
                     .input(ints_of({-2}))
                     .run();
  EXPECT_EQ(elements(y), floats({9, 10, 11, 3, 4, 5}));
}

TEST_F(OpSlice, GradientThroughANegativeStep) {
  at::Tensor x = counting({4}).requires_grad_(true);
  OneNode n("Slice");
  n.input(x)
      .constant(ints_of({3}))
      .constant(ints_of({0}))
      .constant(ints_of({0}))
      .constant(ints_of({-2}));
  at::Tensor y = n.run(true);
  (y * tensor_of({10, 20}, {2})).sum().backward();
  // y = [x3, x1]
  expect_close(x.grad(), tensor_of({0, 20, 0, 10}, {4}));
}

TEST_F(OpSlice, ZeroStepIsAnError) {
  expect_error([] { run_slice(counting({4}), {0}, {2}, {0}, {0}); },
               {"Slice node 'node'", "step 0"});
}

// ---- Split ----

TEST_F(OpSplit, EqualPartsByOutputCount) {
  std::vector<at::Tensor> outs = OneNode("Split").input(counting({6})).outputs(3).run_all();
  ASSERT_EQ(outs.size(), 3u);
  EXPECT_EQ(elements(outs[0]), floats({0, 1}));
  EXPECT_EQ(elements(outs[1]), floats({2, 3}));
  EXPECT_EQ(elements(outs[2]), floats({4, 5}));
}

TEST_F(OpSplit, SplitInputAndNegativeAxis) {
  std::vector<at::Tensor> outs = OneNode("Split")
                                     .input(counting({2, 6}))
                                     .constant(ints_of({1, 2, 3}))
                                     .attr("axis", int64_t{-1})
                                     .outputs(3)
                                     .run_all();
  EXPECT_EQ(elements(outs[0]), floats({0, 6}));
  EXPECT_EQ(elements(outs[1]), floats({1, 2, 7, 8}));
  EXPECT_EQ(outs[2].sizes(), at::IntArrayRef({2, 3}));
}

TEST_F(OpSplit, UnevenWithoutSplitIsAnError) {
  expect_error([] { OneNode("Split").input(counting({7})).outputs(3).run(); },
               {"Split node 'node'", "does not split into 3 equal parts"});
}

TEST_F(OpSplit, Opset18NumOutputsLeavesTheRemainderLast) {
  std::vector<at::Tensor> outs =
      OneNode("Split").input(counting({7})).attr("num_outputs", int64_t{3}).outputs(3).run_all();
  EXPECT_EQ(elements(outs[0]), floats({0, 1, 2}));
  EXPECT_EQ(elements(outs[1]), floats({3, 4, 5}));
  EXPECT_EQ(elements(outs[2]), floats({6}));
}

// ---- Unsqueeze, Squeeze ----

TEST_F(OpUnsqueeze, AxesInOutputCoordinates) {
  at::Tensor x = counting({2, 3});
  EXPECT_EQ(OneNode("Unsqueeze").input(x).constant(ints_of({0})).run().sizes(),
            at::IntArrayRef({1, 2, 3}));
  EXPECT_EQ(OneNode("Unsqueeze").input(x).constant(ints_of({2, 0})).run().sizes(),
            at::IntArrayRef({1, 2, 1, 3}));
  EXPECT_EQ(OneNode("Unsqueeze").input(x).constant(ints_of({-1})).run().sizes(),
            at::IntArrayRef({2, 3, 1}));
  // Output rank 4: -1 is axis 3 and 1 is axis 1.
  EXPECT_EQ(OneNode("Unsqueeze").input(x).input(ints_of({-1, 1})).run().sizes(),
            at::IntArrayRef({2, 1, 3, 1}));
}

TEST_F(OpUnsqueeze, ScalarInt64) {
  expect_equal(OneNode("Unsqueeze")
                   .input(at::scalar_tensor(int64_t{5}, at::kLong))
                   .constant(ints_of({0}))
                   .run(),
               ints_of({5}));
}

TEST_F(OpUnsqueeze, RepeatedAxisIsAnError) {
  expect_error(
      [] {
        OneNode("Unsqueeze").input(counting({2})).constant(ints_of({0, -3})).run();
      },
      {"Unsqueeze node 'node'", "repeated"});
}

TEST_F(OpSqueeze, AllOnesWithoutAxes) {
  EXPECT_EQ(OneNode("Squeeze").input(counting({1, 3, 1, 2})).run().sizes(),
            at::IntArrayRef({3, 2}));
}

TEST_F(OpSqueeze, NegativeAxis) {
  EXPECT_EQ(OneNode("Squeeze").input(counting({1, 3, 1, 2})).constant(ints_of({-2})).run().sizes(),
            at::IntArrayRef({1, 3, 2}));
}

TEST_F(OpSqueeze, AxisThatIsNotOneIsAnError) {
  expect_error(
      [] {
        OneNode("Squeeze").input(counting({1, 3})).constant(ints_of({1})).run();
      },
      {"Squeeze node 'node'", "cannot squeeze axis 1 of size 3"});
}

// ---- Shape, Size ----

TEST_F(OpShape, StartAndEndClamp) {
  at::Tensor x = at::zeros({2, 3, 4});
  expect_equal(OneNode("Shape").input(x).run(), ints_of({2, 3, 4}));
  expect_equal(OneNode("Shape").input(x).attr("start", int64_t{1}).run(), ints_of({3, 4}));
  expect_equal(OneNode("Shape").input(x).attr("end", int64_t{-1}).run(), ints_of({2, 3}));
  expect_equal(OneNode("Shape").input(x).attr("start", int64_t{-2}).attr("end", int64_t{10}).run(),
               ints_of({3, 4}));
  EXPECT_EQ(OneNode("Shape").input(x).attr("start", int64_t{5}).run().numel(), 0);
}

TEST_F(OpShape, ChainFeedsReshape) {
  // The transformer pattern: Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])), all on
  // int64 tensors computed at run time.
  Graph g("chain");
  g.add_input({"x", at::kFloat, {Dim::symbol("N"), Dim(3), Dim(4)}});
  g.add_initializer("zero", at::scalar_tensor(int64_t{0}, at::kLong));
  g.add_initializer("axes0", ints_of({0}));
  g.add_initializer("minus_one", ints_of({-1}));
  g.add_node(Node("Shape", "shape", {"x"}, {"s"}));
  g.add_node(Node("Gather", "batch", {"s", "zero"}, {"n"}));
  g.add_node(Node("Unsqueeze", "batch_1d", {"n", "axes0"}, {"n1"}));
  g.add_node(Node("Concat", "target", {"n1", "minus_one"}, {"t"}).set("axis", int64_t{0}));
  g.add_node(Node("Reshape", "flat", {"x", "t"}, {"y"}));
  g.add_output({"y", at::kFloat, {Dim::symbol("N"), Dim(12)}});
  Executor exec(g);
  RunOptions opts;
  opts.threads = 1;
  for (int64_t n : {1, 5}) {
    at::Tensor y = exec.run({at::zeros({n, 3, 4})}, opts)[0];
    EXPECT_EQ(y.sizes(), at::IntArrayRef({n, 12}));
  }
}

TEST_F(OpSize, CountsElements) {
  expect_equal(OneNode("Size").input(at::zeros({2, 3, 4})).run(),
               at::scalar_tensor(int64_t{24}, at::kLong));
}

// ---- Expand, Tile ----

TEST_F(OpExpand, BroadcastsBothWays) {
  at::Tensor x = tensor_of({1, 2, 3}, {3, 1});
  at::Tensor y = OneNode("Expand").input(x).constant(ints_of({2, 1, 2})).run();
  EXPECT_EQ(y.sizes(), at::IntArrayRef({2, 3, 2}));
  EXPECT_EQ(elements(y), floats({1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3}));
  // A 1 in the shape keeps the input's size, and a shorter shape is allowed.
  EXPECT_EQ(OneNode("Expand").input(x).input(ints_of({1})).run().sizes(), at::IntArrayRef({3, 1}));
}

TEST_F(OpExpand, IncompatibleShapeNamesTheNode) {
  expect_error([] { OneNode("Expand").input(counting({3})).constant(ints_of({2})).run(); },
               {"Expand node 'node'"});
}

TEST_F(OpTile, RepeatsEachAxis) {
  at::Tensor x = tensor_of({1, 2, 3, 4}, {2, 2});
  EXPECT_EQ(elements(OneNode("Tile").input(x).constant(ints_of({1, 2})).run()),
            floats({1, 2, 1, 2, 3, 4, 3, 4}));
  EXPECT_EQ(elements(OneNode("Tile").input(x).input(ints_of({2, 1})).run()),
            floats({1, 2, 3, 4, 1, 2, 3, 4}));
}

TEST_F(OpTile, WrongRepeatCountIsAnError) {
  expect_error(
      [] {
        OneNode("Tile").input(counting({2, 2})).constant(ints_of({2})).run();
      },
      {"Tile node 'node'", "repeats"});
}

// ---- Constant, ConstantOfShape, Identity, Range ----

TEST_F(OpConstant, ValueForms) {
  expect_close(OneNode("Constant").attr("value", tensor_of({1, 2}, {2})).run(),
               tensor_of({1, 2}, {2}));
  at::Tensor f = OneNode("Constant").attr("value_float", 2.5f).run();
  EXPECT_EQ(f.dim(), 0);
  EXPECT_FLOAT_EQ(f.item<float>(), 2.5f);
  expect_equal(OneNode("Constant").attr("value_int", int64_t{7}).run(),
               at::scalar_tensor(int64_t{7}, at::kLong));
  expect_equal(OneNode("Constant").attr("value_ints", Ints{1, -2}).run(), ints_of({1, -2}));
  expect_close(OneNode("Constant").attr("value_floats", std::vector<float>{0.5f}).run(),
               tensor_of({0.5f}, {1}));
}

TEST_F(OpConstant, TwoValuesAreAnError) {
  expect_error(
      [] { OneNode("Constant").attr("value_int", int64_t{1}).attr("value_float", 1.0f).prepare(); },
      {"Constant node 'node'", "exactly one"});
}

TEST_F(OpConstantOfShape, DefaultIsFloatZero) {
  at::Tensor y = OneNode("ConstantOfShape").constant(ints_of({2, 3})).run();
  EXPECT_EQ(y.scalar_type(), at::kFloat);
  EXPECT_EQ(y.sizes(), at::IntArrayRef({2, 3}));
  EXPECT_EQ(y.abs().sum().item<float>(), 0.0f);
}

TEST_F(OpConstantOfShape, ValueTypeAndRunTimeShape) {
  at::Tensor y = OneNode("ConstantOfShape")
                     .input(ints_of({3}))
                     .attr("value", at::tensor(std::vector<int64_t>{7}, at::kLong))
                     .run();
  expect_equal(y, ints_of({7, 7, 7}));
  // An empty shape gives a scalar.
  EXPECT_EQ(OneNode("ConstantOfShape").constant(ints_of({})).run().dim(), 0);
}

TEST_F(OpIdentity, PassesThrough) {
  at::Tensor x = tensor_of({1, -2}, {2});
  expect_close(OneNode("Identity").input(x).run(), tensor_of({1, -2}, {2}));
}

TEST_F(OpRange, IntegerFloatNegativeAndEmpty) {
  auto range = [](at::Tensor start, at::Tensor limit, at::Tensor delta) {
    return OneNode("Range").input(start).input(limit).input(delta).run();
  };
  auto i64 = [](int64_t v) { return at::scalar_tensor(v, at::kLong); };
  auto f32 = [](double v) { return at::scalar_tensor(v, at::kFloat); };
  expect_equal(range(i64(0), i64(5), i64(2)), ints_of({0, 2, 4}));
  expect_equal(range(i64(10), i64(4), i64(-3)), ints_of({10, 7}));
  EXPECT_EQ(range(i64(5), i64(1), i64(1)).numel(), 0);
  // ceil((2 - 1) / 0.3) = 4 elements.
  expect_close(range(f32(1), f32(2), f32(0.3)), tensor_of({1.0f, 1.3f, 1.6f, 1.9f}, {4}));
}

}  // namespace
