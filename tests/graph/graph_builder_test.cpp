#include "edgeforge/graph_builder.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "edgeforge/error.h"
#include "edgeforge/runtime.h"

using namespace edgeforge;

namespace {

const Node& node_named(const Graph& g, const std::string& name) {
  const Node* n = g.find_node(name);
  EXPECT_NE(n, nullptr) << "no node named " << name;
  static const Node kMissing;
  return n != nullptr ? *n : kMissing;
}

at::Tensor run_one(const Graph& g, const at::Tensor& x) {
  Executor exec(g);
  RunOptions opts;
  opts.threads = 1;
  return exec.run({x}, opts).at(0);
}

}  // namespace

TEST(GraphBuilder, ScopesNameNodesValuesAndWeights) {
  Graph g("scopes");
  GraphBuilder b(g, seeded_generator(0));
  std::string x = b.input("x", at::kFloat, {Dim::symbol("N"), 4, 8, 8});
  {
    auto s = b.scope("stage1.block2");
    EXPECT_EQ(b.current_scope(), "stage1.block2");
    x = b.conv("conv1", x, 4, 8, 3, 1, 1);
    {
      auto inner = b.scope("shortcut");
      EXPECT_EQ(b.scoped("bn"), "stage1.block2.shortcut.bn");
    }
    EXPECT_EQ(b.current_scope(), "stage1.block2");
  }
  EXPECT_EQ(b.current_scope(), "");
  EXPECT_EQ(x, "stage1.block2.conv1.out");
  const Node& conv = node_named(g, "stage1.block2.conv1");
  EXPECT_EQ(conv.op_type, "Conv");
  EXPECT_EQ(conv.inputs, (std::vector<std::string>{"x", "stage1.block2.conv1.weight"}));
  ASSERT_TRUE(g.has_initializer("stage1.block2.conv1.weight"));
  EXPECT_EQ(g.initializers().at("stage1.block2.conv1.weight").sizes(),
            (std::vector<int64_t>{8, 4, 3, 3}));
  EXPECT_EQ(b.rename_output(x, "stage1.out"), "stage1.out");
  EXPECT_EQ(conv.outputs, std::vector<std::string>{"stage1.out"});
  b.output("stage1.out", at::kFloat, {Dim::symbol("N"), 8, 8, 8});
  EXPECT_NO_THROW(g.validate());
}

TEST(GraphBuilder, TakenNamesThrowErrors) {
  Graph g("taken");
  g.add_input({"x", at::kFloat, {2, 3}});
  g.add_node(Node("Relu", "act", {"x"}, {"act.out"}));
  GraphBuilder b(g, seeded_generator(0));
  EXPECT_THROW(b.relu("act", "x"), Error);         // the loaded graph's node name
  EXPECT_THROW(b.input("x", at::kFloat, {}), Error);  // its input name
  EXPECT_EQ(b.relu("act2", "act.out"), "act2.out");
  EXPECT_THROW(b.parameter("act2.out", at::zeros({1})), Error);
}

TEST(GraphBuilder, ConvWritesEveryOnnxAttribute) {
  Graph g("conv");
  GraphBuilder b(g, seeded_generator(0));
  const std::string x = b.input("x", at::kFloat, {1, 16, 9, 9});
  b.conv("grouped", x, 16, 32, 3, 2, 1, /*groups=*/4, /*bias=*/true);
  const Node& n = node_named(g, "grouped");
  EXPECT_EQ(n.attr_ints("kernel_shape"), (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(n.attr_ints("strides"), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(n.attr_ints("pads"), (std::vector<int64_t>{1, 1, 1, 1}));
  EXPECT_EQ(n.attr_ints("dilations"), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(n.attr_int("group"), 4);
  EXPECT_EQ(g.initializers().at("grouped.weight").sizes(), (std::vector<int64_t>{32, 4, 3, 3}));
  // With Kaiming init a conv bias starts at zero.
  EXPECT_TRUE(at::equal(g.initializers().at("grouped.bias"), at::zeros({32})));
}

TEST(GraphBuilder, ConvWeightIsKaimingNormalOverFanOut) {
  Graph g("kaiming");
  GraphBuilder b(g, seeded_generator(3));
  const std::string x = b.input("x", at::kFloat, {1, 64, 8, 8});
  b.conv("conv", x, 64, 256, 3, 1, 1);
  const at::Tensor w = g.initializers().at("conv.weight");
  const double expected_std = std::sqrt(2.0 / (256 * 9));
  EXPECT_NEAR(w.std().item<double>(), expected_std, 0.02 * expected_std);
  EXPECT_NEAR(w.mean().item<double>(), 0.0, 0.02 * expected_std);
}

TEST(GraphBuilder, SameSeedGivesBitIdenticalWeights) {
  auto build = [](uint64_t seed) {
    Graph g("seeded");
    GraphBuilder b(g, seeded_generator(seed));
    std::string x = b.input("x", at::kFloat, {2, 8});
    x = b.gemm("fc1", x, 8, 16);
    x = b.linear("fc2", x, 16, 4, WeightInit::normal(0.02f));
    return g;
  };
  const Graph a = build(11), same = build(11), other = build(12);
  for (const auto& [name, t] : a.initializers()) {
    EXPECT_TRUE(at::equal(t, same.initializers().at(name))) << name;
    if (name.find("weight") != std::string::npos)
      EXPECT_FALSE(at::equal(t, other.initializers().at(name))) << name;
  }
}

TEST(GraphBuilder, GemmStoresOutInWithTransB) {
  Graph g("gemm");
  GraphBuilder b(g, seeded_generator(0));
  const std::string x = b.input("x", at::kFloat, {Dim::symbol("N"), 8});
  EXPECT_EQ(b.gemm("fc", x, 8, 3), "fc.out");
  const Node& n = node_named(g, "fc");
  EXPECT_EQ(n.op_type, "Gemm");
  EXPECT_EQ(n.attr_int("transB"), 1);
  EXPECT_EQ(n.attr_int("transA"), 0);
  EXPECT_EQ(g.initializers().at("fc.weight").sizes(), (std::vector<int64_t>{3, 8}));
  EXPECT_EQ(g.initializers().at("fc.bias").sizes(), (std::vector<int64_t>{3}));
  // PyTorch's nn.Linear default: U(-1/sqrt(in), 1/sqrt(in)).
  EXPECT_LE(g.initializers().at("fc.weight").abs().max().item<float>(), 1.0f / std::sqrt(8.0f));
}

TEST(GraphBuilder, LinearIsMatMulWithWeightThenAdd) {
  Graph g("linear");
  GraphBuilder b(g, seeded_generator(0));
  const std::string x = b.input("x", at::kFloat, {Dim::symbol("N"), Dim::symbol("S"), 8});
  std::string y;
  {
    auto s = b.scope("attention");
    y = b.linear("query", x, 8, 6, WeightInit::normal(0.02f));
  }
  EXPECT_EQ(y, "attention.query.out");
  const Node& mm = node_named(g, "attention.query.matmul");
  EXPECT_EQ(mm.op_type, "MatMul");
  EXPECT_EQ(mm.inputs, (std::vector<std::string>{"x", "attention.query.weight"}));
  const Node& add = node_named(g, "attention.query.bias_add");
  EXPECT_EQ(add.op_type, "Add");
  EXPECT_EQ(add.inputs[1], "attention.query.bias");
  EXPECT_EQ(g.initializers().at("attention.query.weight").sizes(), (std::vector<int64_t>{8, 6}));
  EXPECT_TRUE(at::equal(g.initializers().at("attention.query.bias"), at::zeros({6})));
}

TEST(GraphBuilder, BatchNormStartsAsIdentityOrZero) {
  Graph g("bn");
  GraphBuilder b(g, seeded_generator(0));
  const std::string x = b.input("x", at::kFloat, {1, 4, 2, 2});
  b.batch_norm("bn", b.batch_norm("bn_zero", x, 4, /*zero_gamma=*/true), 4);
  const Node& n = node_named(g, "bn");
  EXPECT_EQ(n.inputs, (std::vector<std::string>{"bn_zero.out", "bn.weight", "bn.bias",
                                                "bn.running_mean", "bn.running_var"}));
  EXPECT_FLOAT_EQ(n.attr_float("momentum"), 0.9f);  // ONNX momentum = 1 - PyTorch's
  EXPECT_FLOAT_EQ(n.attr_float("epsilon"), 1e-5f);
  EXPECT_TRUE(at::equal(g.initializers().at("bn.weight"), at::ones({4})));
  EXPECT_TRUE(at::equal(g.initializers().at("bn_zero.weight"), at::zeros({4})));
  EXPECT_TRUE(at::equal(g.initializers().at("bn.running_var"), at::ones({4})));
}

TEST(GraphBuilder, GeluIsTheErfFormWithNamedConstants) {
  Graph g("gelu");
  GraphBuilder b(g, seeded_generator(0));
  const std::string x = b.input("x", at::kFloat, {3, 5});
  std::string y;
  {
    auto s = b.scope("ffn");
    y = b.gelu("gelu", x);
  }
  EXPECT_EQ(y, "ffn.gelu.out");
  std::vector<std::string> ops;
  for (const Node& n : g.nodes())
    if (n.op_type != "Constant") ops.push_back(n.op_type);
  EXPECT_EQ(ops, (std::vector<std::string>{"Div", "Erf", "Add", "Mul", "Mul"}));
  EXPECT_FLOAT_EQ(node_named(g, "ffn.gelu.sqrt2").attr_tensor("value").item<float>(),
                  std::sqrt(2.0f));
  EXPECT_FLOAT_EQ(node_named(g, "ffn.gelu.half").attr_tensor("value").item<float>(), 0.5f);
  // Constants are nodes, not initializers, so nothing trains them.
  EXPECT_EQ(g.parameter_count(), 0);
}

TEST(GraphBuilder, DropoutTakesRatioAsInputAndNoTrainingMode) {
  Graph g("dropout");
  GraphBuilder b(g, seeded_generator(0));
  const std::string x = b.input("x", at::kFloat, {3, 5});
  b.dropout("drop", x, 0.1f);
  const Node& n = node_named(g, "drop");
  EXPECT_EQ(n.inputs, (std::vector<std::string>{"x", "drop.ratio"}));
  EXPECT_TRUE(n.attributes.empty());  // opset 17 has no ratio attribute
  EXPECT_FLOAT_EQ(node_named(g, "drop.ratio").attr_tensor("value").item<float>(), 0.1f);
}

TEST(GraphBuilder, CastShapeAndReshapeUseOnnxEncodings) {
  Graph g("encodings");
  GraphBuilder b(g, seeded_generator(0));
  const std::string x = b.input("x", at::kLong, {Dim::symbol("N"), Dim::symbol("S")});
  b.cast("to_float", x, at::kFloat);
  b.shape("seq_len", x, 1, 2);
  b.reshape("split", x, {0, 0, 2, -1});
  EXPECT_EQ(node_named(g, "to_float").attr_int("to"), 1);  // TensorProto.FLOAT
  EXPECT_EQ(node_named(g, "seq_len").attr_int("start"), 1);
  EXPECT_EQ(node_named(g, "seq_len").attr_int("end"), 2);
  const at::Tensor shape = node_named(g, "split.shape").attr_tensor("value");
  EXPECT_EQ(shape.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(shape, at::tensor(std::vector<int64_t>{0, 0, 2, -1})));
  EXPECT_EQ(node_named(g, "split").attr_int("allowzero"), 0);
}

// The next tests execute graphs, so they need the op kernels of src/ops.

TEST(GraphBuilder, GeluMatchesExactGelu) {
  Graph g("gelu_run");
  GraphBuilder b(g, seeded_generator(0));
  const std::string x = b.input("x", at::kFloat, {4, 64});
  b.output(b.gelu("gelu", x), at::kFloat, {4, 64});
  at::Generator gen = seeded_generator(1);
  const at::Tensor in = at::randn({4, 64}, gen) * 3;
  EXPECT_TRUE(at::allclose(run_one(g, in), at::gelu(in), 1e-5, 1e-6));
}

TEST(GraphBuilder, LinearAndGemmComputeXWPlusB) {
  Graph g("linear_run");
  GraphBuilder b(g, seeded_generator(0));
  const std::string x = b.input("x", at::kFloat, {5, 8});
  const std::string y = b.gemm("fc2", b.linear("fc1", x, 8, 6), 6, 3);
  b.output(y, at::kFloat, {5, 3});
  at::Generator gen = seeded_generator(1);
  const at::Tensor in = at::randn({5, 8}, gen);
  const auto& w = g.initializers();
  const at::Tensor h = at::matmul(in, w.at("fc1.weight")) + w.at("fc1.bias");
  const at::Tensor expected = at::linear(h, w.at("fc2.weight"), w.at("fc2.bias"));
  EXPECT_TRUE(at::allclose(run_one(g, in), expected, 1e-5, 1e-6));
}
