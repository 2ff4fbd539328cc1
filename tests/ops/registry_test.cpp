// The op registry: every op the runtime promises is registered, and constant_input() reads
// initializers and Constant nodes of every value form.
#include <gtest/gtest.h>

#include "edgeforge/ops.h"
#include "op_test_util.h"

using namespace edgeforge;
using namespace edgeforge::testing;

namespace {

TEST(OpRegistry, HasEveryOpsetSeventeenOpTheRuntimePromises) {
  const char* const kPromised[] = {"Abs",
                                   "Add",
                                   "And",
                                   "AveragePool",
                                   "BatchNormalization",
                                   "Cast",
                                   "Clip",
                                   "Concat",
                                   "Constant",
                                   "ConstantOfShape",
                                   "Conv",
                                   "Div",
                                   "Dropout",
                                   "Equal",
                                   "Erf",
                                   "Exp",
                                   "Expand",
                                   "Flatten",
                                   "Gather",
                                   "Gemm",
                                   "GlobalAveragePool",
                                   "Greater",
                                   "Identity",
                                   "LayerNormalization",
                                   "LeakyRelu",
                                   "Less",
                                   "Log",
                                   "LogSoftmax",
                                   "MatMul",
                                   "MaxPool",
                                   "Mul",
                                   "Neg",
                                   "Not",
                                   "Pow",
                                   "Range",
                                   "ReduceMax",
                                   "ReduceMean",
                                   "ReduceSum",
                                   "Relu",
                                   "Reshape",
                                   "Shape",
                                   "Sigmoid",
                                   "Size",
                                   "Slice",
                                   "Softmax",
                                   "Split",
                                   "Sqrt",
                                   "Squeeze",
                                   "Sub",
                                   "Tanh",
                                   "Tile",
                                   "Transpose",
                                   "Unsqueeze",
                                   "Where"};
  for (const char* op : kPromised) EXPECT_NE(OpRegistry::global().find(op), nullptr) << op;
  EXPECT_EQ(OpRegistry::global().find("Einsum"), nullptr);
}

TEST(OpRegistry, ConstantInputReadsInitializersAndEveryConstantForm) {
  Graph g("constants");
  g.add_input({"x", at::kFloat, {Dim(2)}});
  g.add_initializer("w", tensor_of({1, 2}, {2}));
  g.add_node(Node("Constant", "c_float", {}, {"f"}).set("value_float", 0.5f));
  g.add_node(Node("Constant", "c_ints", {}, {"i"}).set("value_ints", std::vector<int64_t>{3, 4}));
  g.add_node(Node("Relu", "relu", {"x"}, {"r"}));
  expect_close(constant_input(g, "w"), tensor_of({1, 2}, {2}));
  EXPECT_FLOAT_EQ(constant_input(g, "f").item<float>(), 0.5f);
  expect_equal(constant_input(g, "i"), ints_of({3, 4}));
  EXPECT_FALSE(constant_input(g, "r").defined());
  EXPECT_FALSE(constant_input(g, "x").defined());
  EXPECT_FALSE(constant_input(g, "").defined());
}

}  // namespace
