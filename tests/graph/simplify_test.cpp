// Load-time simplification (edgeforge/graph_simplify.h): Identity chains of constants folded and
// dead nodes removed, checked against the reference executor on the graph as built, and on
// PyTorch exports that share weights through Identity nodes.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <string>

#include "edgeforge/graph_simplify.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/partition.h"
#include "edgeforge/quantize.h"
#include "edgeforge/runtime.h"
#include "../common/test_util.h"
#include "edgeforge/summary.h"

using namespace edgeforge;
using test_util::float_value;

namespace {

// y = x @ W + b, with W reached through a chain of two Identities and b through one, as the
// PyTorch exporter shares equal weights; a Relu nobody reads; z = Identity(y) is an output too.
Graph shared_weights() {
  Graph g("shared");
  g.add_input(float_value("x", {2, 4}));
  g.add_output(float_value("y", {2, 3}));
  g.add_output(float_value("z", {2, 3}));
  g.add_initializer("W", at::randn({4, 3}, at::TensorOptions().dtype(at::kFloat)));
  g.add_initializer("b", at::randn({3}));
  g.add_node(Node("Identity", "w1", {"W"}, {"W.1"}));
  g.add_node(Node("Identity", "w2", {"W.1"}, {"W.2"}));
  g.add_node(Node("Identity", "b1", {"b"}, {"b.1"}));
  g.add_node(Node("MatMul", "mm", {"x", "W.2"}, {"h"}));
  g.add_node(Node("Relu", "unused", {"x"}, {"r"}));
  g.add_node(Node("Add", "add", {"h", "b.1"}, {"y"}));
  g.add_node(Node("Identity", "out", {"y"}, {"z"}));
  return g;
}

std::vector<at::Tensor> run(const Graph& g, const at::Tensor& x) {
  Executor exec(g);
  return exec.run({x}, RunOptions{});
}

}  // namespace

TEST(Simplify, FoldsIdentitiesOfConstantsAndDropsDeadNodesWithoutChangingOutputs) {
  at::manual_seed(0);
  const Graph original = shared_weights();
  Graph g = original.clone();
  const SimplifyReport r = simplify_graph(g);
  EXPECT_EQ(r.identities_folded, 3);
  EXPECT_EQ(r.dead_nodes_removed, 1);  // the Relu
  // The MatMul and the Add read weights of their own, which hold the stored tensors (no copy);
  // the output Identity stays (z is an output).
  std::vector<std::string> ops;
  for (const Node& n : g.nodes()) ops.push_back(n.op_type + ":" + n.name);
  EXPECT_EQ(ops, (std::vector<std::string>{"MatMul:mm", "Add:add", "Identity:out"}));
  EXPECT_EQ(g.nodes()[0].inputs, (std::vector<std::string>{"x", "W.2"}));
  EXPECT_EQ(g.nodes()[1].inputs, (std::vector<std::string>{"h", "b.1"}));
  EXPECT_TRUE(g.initializers().at("W.2").is_same(g.initializers().at("W")));
  EXPECT_TRUE(g.initializers().at("b.1").is_same(g.initializers().at("b")));

  const at::Tensor x = at::randn({2, 4});
  const std::vector<at::Tensor> want = run(original, x), got = run(g, x);
  ASSERT_EQ(got.size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_TRUE(at::equal(want[i], got[i])) << "output " << i;
  // Nothing left to do the second time.
  EXPECT_FALSE(simplify_graph(g).changed());
  // And the written file keeps the interface.
  const Graph back = graph_from_onnx_bytes(graph_to_onnx_bytes(g), "simplified");
  EXPECT_EQ(back.outputs().size(), 2u);
  EXPECT_TRUE(at::equal(run(back, x)[1], want[1]));
}

TEST(Simplify, AnIdentityOfAConstantNodeIsReadThrough) {
  Graph g("constant");
  g.add_input(float_value("x", {3}));
  g.add_output(float_value("y", {3}));
  g.add_node(Node("Constant", "c", {}, {"c"}).set("value", at::arange(3, at::kFloat)));
  g.add_node(Node("Identity", "c1", {"c"}, {"c.1"}));
  g.add_node(Node("Add", "add", {"x", "c.1"}, {"y"}));
  const Graph original = g.clone();
  EXPECT_EQ(simplify_graph(g).identities_folded, 1);
  ASSERT_EQ(g.nodes().size(), 2u);
  EXPECT_EQ(g.nodes()[1].inputs, (std::vector<std::string>{"x", "c"}));
  const at::Tensor x = at::randn({3});
  EXPECT_TRUE(at::equal(run(original, x)[0], run(g, x)[0]));
}

TEST(Simplify, AnInitializerThatIsAlsoAnInputIsNotAConstant) {
  Graph g = shared_weights();
  g.add_input(float_value("b", {3}));  // a caller may feed b: it only defaults to the initializer
  const SimplifyReport r = simplify_graph(g);
  EXPECT_EQ(r.identities_folded, 2);  // W's chain only
  bool b_identity = false;
  for (const Node& n : g.nodes()) b_identity = b_identity || n.name == "b1";
  EXPECT_TRUE(b_identity);
}

// The exports' fixtures share squeeze-excitation biases (EfficientNet-B0, MobileNetV3-Small)
// and attention projections (nn.TransformerEncoder) through Identity nodes: once loaded, none
// is left, and every Conv's bias is a constant the plan takes. RealExports.* checks the outputs
// against PyTorch's.
TEST(Simplify, PyTorchExportsSharingWeightsLoadWithoutIdentities) {
  const std::string dir = std::string(EDGEFORGE_TEST_DATA_DIR) + "/exports/";
  for (const char* name : {"efficientnet_b0.op17.onnx", "mobilenet_v3_small.op13.onnx",
                           "torch_encoder.op17.onnx"}) {
    SCOPED_TRACE(name);
    const Graph g = load_onnx(dir + name);
    for (const Node& n : g.nodes())
      if (n.op_type == "Identity")
        EXPECT_TRUE(std::any_of(g.outputs().begin(), g.outputs().end(),
                                [&](const ValueInfo& v) { return v.name == n.outputs[0]; }))
            << n.name;
    for (const std::string& why : summarize(g).plan_fallback)
      EXPECT_EQ(why.find("is not a constant"), std::string::npos) << why;
  }
}

// What the Identity folding fixes downstream (issue: real exports at full speed, item 6): the
// encoder's projections, equal in the PyTorch model and shared by the exporter, are each
// quantized by `dynamic`, and no cut of the model counts a weight as traffic.
TEST(Simplify, SharedProjectionsQuantizeAndWeightsNeverCrossACut) {
  const Graph g = load_onnx(std::string(EDGEFORGE_TEST_DATA_DIR) + "/exports/torch_encoder.op17.onnx");
  int64_t with_weights = 0;
  for (const Node& n : g.nodes())
    if ((n.op_type == "MatMul" || n.op_type == "Gemm") && g.has_initializer(n.inputs[1])) ++with_weights;
  EXPECT_GE(with_weights, 9);
  EXPECT_EQ(static_cast<int64_t>(find_quant_units(g, /*linear_only=*/true).size()), with_weights);
  const std::vector<CutPoint> cuts = list_cut_points(g);
  ASSERT_FALSE(cuts.empty());
  for (const CutPoint& c : cuts)
    for (const CrossingTensor& t : c.crossing)
      EXPECT_FALSE(g.has_initializer(t.name)) << c.value << " sends the weight " << t.name;
}
