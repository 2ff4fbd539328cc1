// Reductions against sums, means and maxima worked out by hand on 2x2 inputs.
#include <gtest/gtest.h>

#include "op_test_util.h"

using namespace edgeforge;
using namespace edgeforge::testing;

namespace {

using OpReduceSum = SeededTest;
using OpReduceMean = SeededTest;
using OpReduceMax = SeededTest;

using Ints = std::vector<int64_t>;

// [[1, 2], [3, 4]]
at::Tensor two_by_two() { return tensor_of({1, 2, 3, 4}, {2, 2}); }

TEST_F(OpReduceSum, AxesInputWithAndWithoutKeepdims) {
  expect_close(OneNode("ReduceSum").input(two_by_two()).constant(ints_of({1})).run(),
               tensor_of({3, 7}, {2, 1}));
  expect_close(OneNode("ReduceSum")
                   .input(two_by_two())
                   .constant(ints_of({1}))
                   .attr("keepdims", int64_t{0})
                   .run(),
               tensor_of({3, 7}, {2}));
  expect_close(OneNode("ReduceSum").input(two_by_two()).input(ints_of({-2})).run(),
               tensor_of({4, 6}, {1, 2}));
}

TEST_F(OpReduceSum, NoAxesReducesEverything) {
  expect_close(OneNode("ReduceSum").input(two_by_two()).run(), tensor_of({10}, {1, 1}));
  at::Tensor scalar = OneNode("ReduceSum").input(two_by_two()).attr("keepdims", int64_t{0}).run();
  EXPECT_EQ(scalar.dim(), 0);
  EXPECT_FLOAT_EQ(scalar.item<float>(), 10.0f);
  // An empty axes tensor means the same as no axes.
  expect_close(OneNode("ReduceSum").input(two_by_two()).input(ints_of({})).run(),
               tensor_of({10}, {1, 1}));
}

TEST_F(OpReduceSum, NoopWithEmptyAxesIsIdentity) {
  expect_close(
      OneNode("ReduceSum").input(two_by_two()).attr("noop_with_empty_axes", int64_t{1}).run(),
      two_by_two());
}

TEST_F(OpReduceSum, AxisOutOfRangeNamesTheNode) {
  expect_error([] { OneNode("ReduceSum").input(two_by_two()).constant(ints_of({2})).run(); },
               {"ReduceSum node 'node'", "axes value 2"});
}

TEST_F(OpReduceMean, AxesAttribute) {
  expect_close(OneNode("ReduceMean").input(two_by_two()).attr("axes", Ints{0}).run(),
               tensor_of({2, 3}, {1, 2}));
  at::Tensor all = OneNode("ReduceMean")
                       .input(two_by_two())
                       .attr("axes", Ints{0, -1})
                       .attr("keepdims", int64_t{0})
                       .run();
  EXPECT_EQ(all.dim(), 0);
  EXPECT_FLOAT_EQ(all.item<float>(), 2.5f);
}

TEST_F(OpReduceMean, Opset18AxesInput) {
  expect_close(OneNode("ReduceMean").input(two_by_two()).constant(ints_of({1})).run(),
               tensor_of({1.5f, 3.5f}, {2, 1}));
}

TEST_F(OpReduceMean, GradientSpreadsEvenly) {
  at::Tensor x = two_by_two().requires_grad_(true);
  OneNode("ReduceMean").input(x).attr("axes", Ints{1}).run(true).sum().backward();
  expect_close(x.grad(), tensor_of({0.5f, 0.5f, 0.5f, 0.5f}, {2, 2}));
}

TEST_F(OpReduceMean, AxesInBothFormsIsAnError) {
  expect_error(
      [] {
        OneNode("ReduceMean")
            .input(two_by_two())
            .constant(ints_of({0}))
            .attr("axes", Ints{0})
            .prepare();
      },
      {"ReduceMean node 'node'", "both"});
}

TEST_F(OpReduceMax, AxesAndAll) {
  at::Tensor x = tensor_of({1, 5, 3, 4}, {2, 2});
  expect_close(OneNode("ReduceMax").input(x).attr("axes", Ints{1}).run(),
               tensor_of({5, 4}, {2, 1}));
  expect_close(
      OneNode("ReduceMax").input(x).attr("keepdims", int64_t{0}).attr("axes", Ints{0}).run(),
      tensor_of({3, 5}, {2}));
  expect_close(OneNode("ReduceMax").input(x).run(), tensor_of({5}, {1, 1}));
}

TEST_F(OpReduceMax, GradientGoesToTheMaximum) {
  at::Tensor x = tensor_of({1, 5, 3, 4}, {2, 2}).requires_grad_(true);
  OneNode("ReduceMax").input(x).attr("axes", Ints{1}).run(true).sum().backward();
  expect_close(x.grad(), tensor_of({0, 1, 0, 1}, {2, 2}));
}

}  // namespace
