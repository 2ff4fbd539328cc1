// Constant folding at load (edgeforge/fold_constants.h), checked against the reference executor
// on the graph as built.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "edgeforge/fold_constants.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/runtime.h"
#include "../common/test_util.h"

using namespace edgeforge;
using test_util::float_value;

namespace {

// y = x @ reshape(transpose(W) * 2, [4, 3]) + deq(Wq) @ ..., as exporters write weights they
// compute at run time; plus an int8 weight behind DequantizeLinear and an Expand to a large
// shape, which must stay.
Graph computed_weights() {
  Graph g("computed");
  g.add_input(float_value("x", {2, 4}));
  g.add_output(float_value("y", {2, 3}));
  g.add_output(float_value("big", {256, 1024}));
  g.add_initializer("W", at::randn({3, 4}));
  g.add_initializer("two", at::full({}, 2.0f));
  g.add_initializer("Wq", at::randint(-127, 127, {4, 3}, at::kChar));
  g.add_initializer("Wq.scale", at::full({}, 0.05f));
  g.add_initializer("one", at::ones({1}));
  g.add_initializer("big.shape", at::tensor(std::vector<int64_t>{256, 1024}));
  g.add_node(Node("Constant", "shape", {}, {"shape"}).set("value", at::tensor(std::vector<int64_t>{4, 3})));
  g.add_node(Node("Transpose", "t", {"W"}, {"Wt"}).set("perm", std::vector<int64_t>{1, 0}));
  g.add_node(Node("Mul", "scale", {"Wt", "two"}, {"Wt2"}));
  g.add_node(Node("Reshape", "r", {"Wt2", "shape"}, {"Wr"}));
  g.add_node(Node("MatMul", "mm", {"x", "Wr"}, {"h"}));
  g.add_node(Node("DequantizeLinear", "dq", {"Wq", "Wq.scale"}, {"Wd"}));
  g.add_node(Node("MatMul", "mm2", {"x", "Wd"}, {"h2"}));
  g.add_node(Node("Add", "add", {"h", "h2"}, {"y"}));
  g.add_node(Node("Expand", "expand", {"one", "big.shape"}, {"big"}));
  return g;
}

}  // namespace

TEST(FoldConstants, ComputedWeightsBecomeInitializersAndTheOutputsStay) {
  at::manual_seed(0);
  const Graph original = computed_weights();
  Graph g = original.clone();
  EXPECT_EQ(fold_constants(g), 3);  // Transpose, Mul, Reshape
  std::vector<std::string> ops;
  for (const Node& n : g.nodes()) ops.push_back(n.name);
  // The Constant shape stays for the next pass to drop; the QDQ weight and the Expand (1 MiB
  // from 24 bytes, and a graph output) stay.
  EXPECT_EQ(ops, (std::vector<std::string>{"shape", "mm", "dq", "mm2", "add", "expand"}));
  EXPECT_TRUE(g.has_initializer("Wr"));
  EXPECT_FALSE(g.has_initializer("W")) << "only the folded Transpose read it";
  EXPECT_FALSE(g.has_initializer("Wt"));
  EXPECT_TRUE(g.has_initializer("Wq"));

  const at::Tensor x = at::randn({2, 4});
  Executor before(original), after(g);
  const std::vector<at::Tensor> want = before.run({x}, RunOptions{}), got = after.run({x}, RunOptions{});
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(at::equal(want[i], got[i])) << "output " << i;
  EXPECT_EQ(fold_constants(g), 0);
}

TEST(FoldConstants, LoadingFoldsAndTheFileStaysValidOnnx) {
  at::manual_seed(1);
  const Graph original = computed_weights();
  const Graph loaded = graph_from_onnx_bytes(graph_to_onnx_bytes(original), "computed");
  for (const Node& n : loaded.nodes()) {
    EXPECT_NE(n.op_type, "Transpose");
    EXPECT_NE(n.op_type, "Constant") << "the shape constant went with the Reshape";
  }
  const Graph again = graph_from_onnx_bytes(graph_to_onnx_bytes(loaded), "computed again");
  const at::Tensor x = at::randn({2, 4});
  Executor a(original), b(again);
  EXPECT_TRUE(at::equal(a.run({x}, RunOptions{})[0], b.run({x}, RunOptions{})[0]));
}

TEST(FoldConstants, AnInputWithADefaultIsNotConstant) {
  Graph g = computed_weights();
  g.add_input(float_value("W", {3, 4}));  // a caller may feed W
  EXPECT_EQ(fold_constants(g), 0);
}
