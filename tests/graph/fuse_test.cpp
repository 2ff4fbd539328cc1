// Load-time fusion of exporters' op decompositions (edgeforge/graph_fuse.h): each rewrite checked
// against the reference executor on the graph as built, near misses left alone, and PyTorch's
// opset-13 exports read with LayerNormalization nodes.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <string>

#include "../common/test_util.h"
#include "edgeforge/graph_fuse.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/runtime.h"

using namespace edgeforge;
using test_util::float_value;

namespace {

// The fused op sums in another order than the nodes one by one.
constexpr double kTolerance = 1e-5;

int count(const Graph& g, const std::string& op) {
  int n = 0;
  for (const Node& node : g.nodes()) n += node.op_type == op;
  return n;
}

at::Tensor run(const Graph& g, const at::Tensor& x) {
  Executor exec(g);
  return exec.run({x}, RunOptions{})[0];
}

// nn.LayerNorm(8) as torch.onnx writes it below opset 17, then nn.Hardswish below opset 14:
// y = hardswish(layer_norm(x)). `exponent` is Pow's; `leak` makes the deviation a graph output.
Graph decomposed(float exponent = 2.f, bool leak = false) {
  Graph g("decomposed");
  g.add_input(float_value("x", {3, 5, 8}));
  g.add_output(float_value("y", {3, 5, 8}));
  if (leak) g.add_output(float_value("d", {3, 5, 8}));
  g.add_initializer("two", at::scalar_tensor(exponent));
  g.add_initializer("eps", at::scalar_tensor(1e-5f));
  g.add_initializer("ln.weight", at::rand({8}) + 0.5);
  g.add_initializer("ln.bias", at::randn({8}));
  const std::vector<int64_t> last{-1};
  g.add_node(Node("ReduceMean", "/ln/ReduceMean", {"x"}, {"m"}).set("axes", last));
  g.add_node(Node("Sub", "/ln/Sub", {"x", "m"}, {"d"}));
  g.add_node(Node("Pow", "/ln/Pow", {"d", "two"}, {"p"}));
  g.add_node(Node("ReduceMean", "/ln/ReduceMean_1", {"p"}, {"v"}).set("axes", last));
  g.add_node(Node("Add", "/ln/Add", {"v", "eps"}, {"ve"}));
  g.add_node(Node("Sqrt", "/ln/Sqrt", {"ve"}, {"s"}));
  g.add_node(Node("Div", "/ln/Div", {"d", "s"}, {"n"}));
  g.add_node(Node("Mul", "/ln/Mul", {"n", "ln.weight"}, {"g"}));
  g.add_node(Node("Add", "/ln/Add_1", {"g", "ln.bias"}, {"h"}));
  g.add_node(Node("HardSigmoid", "/act/HardSigmoid", {"h"}, {"hs"})
                 .set("alpha", 1.f / 6.f)
                 .set("beta", 0.5f));
  g.add_node(Node("Mul", "/act/Mul", {"h", "hs"}, {"y"}));
  return g;
}

}  // namespace

TEST(Fuse, DecomposedLayerNormAndHardSwishBecomeTheirOps) {
  at::manual_seed(0);
  const Graph original = decomposed();
  Graph g = original.clone();
  const FuseReport r = fuse_decompositions(g);
  EXPECT_EQ(r.layer_norms, 1);
  EXPECT_EQ(r.hard_swishes, 1);
  ASSERT_EQ(g.nodes().size(), 2u);
  EXPECT_EQ(g.nodes()[0].op_type, "LayerNormalization");
  EXPECT_EQ(g.nodes()[0].name, "/ln");
  EXPECT_FLOAT_EQ(g.nodes()[0].attr_float("epsilon"), 1e-5f);
  EXPECT_EQ(g.nodes()[1].op_type, "HardSwish");
  EXPECT_FALSE(g.has_initializer("two")) << "constants only the formula read are dropped";
  EXPECT_TRUE(g.has_initializer("ln.weight"));
  const at::Tensor x = at::randn({3, 5, 8}) * 4 + 1;
  EXPECT_TRUE(at::allclose(run(g, x), run(original, x), kTolerance, kTolerance));
  EXPECT_NO_THROW(check_onnx(g)) << "the fused graph is valid ONNX";
}

TEST(Fuse, NearMissesAreLeftAlone) {
  at::manual_seed(1);
  Graph cubed = decomposed(3.f);  // not a variance
  EXPECT_EQ(fuse_decompositions(cubed).layer_norms, 0);
  EXPECT_EQ(count(cubed, "ReduceMean"), 2);
  Graph leaked = decomposed(2.f, true);  // the deviation is an output of its own
  EXPECT_EQ(fuse_decompositions(leaked).layer_norms, 0);
  EXPECT_EQ(count(leaked, "Sub"), 1);
  // HardSigmoid with other constants is not half of a HardSwish.
  Graph other = decomposed();
  for (Node& n : other.nodes())
    if (n.op_type == "HardSigmoid") n.set("alpha", 0.2f);
  EXPECT_EQ(fuse_decompositions(other).hard_swishes, 0);
}

// PyTorch's opset-13 exports of BERT, RoBERTa and nn.TransformerEncoder spell every LayerNorm
// out; they load with LayerNormalization nodes (tests/onnx/exports_test.cpp checks the outputs
// against PyTorch's).
TEST(Fuse, Opset13TransformerExportsLoadWithLayerNormalization) {
  const std::string dir = std::string(EDGEFORGE_TEST_DATA_DIR) + "/exports/";
  for (const char* name : {"bert", "roberta", "torch_encoder"}) {
    const Graph op13 = load_onnx(dir + name + ".op13.onnx");
    const Graph op17 = load_onnx(dir + name + ".op17.onnx");
    EXPECT_EQ(count(op13, "LayerNormalization"), count(op17, "LayerNormalization")) << name;
    EXPECT_GT(count(op13, "LayerNormalization"), 0) << name;
    EXPECT_EQ(count(op13, "Sqrt"), 0) << name;
  }
}
