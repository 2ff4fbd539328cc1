// The reference executor: running small graphs, input checks, errors naming nodes, gradients to
// initializers, batch norm and dropout modes, determinism and fetching intermediates.
//
// TEST rather than TEST_F: a fixture would need the class name Executor, which is taken; tests
// that draw random tensors seed ATen themselves.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "../ops/op_test_util.h"
#include "edgeforge/error.h"
#include "edgeforge/graph.h"
#include "edgeforge/graph_builder.h"
#include "edgeforge/runtime.h"

using namespace edgeforge;
using namespace edgeforge::testing;

namespace {

RunOptions run_options(bool training = false) {
  RunOptions o;
  o.threads = 1;
  o.training = training;
  return o;
}

// y = Relu(x W^T + b) with W = [[1, -1], [2, 0]] and b = [0.5, -10].
Graph two_node_graph() {
  Graph g("two_node");
  g.add_input({"x", at::kFloat, {Dim::symbol("N"), Dim(2)}});
  g.add_initializer("fc.weight", tensor_of({1, -1, 2, 0}, {2, 2}));
  g.add_initializer("fc.bias", tensor_of({0.5f, -10.0f}, {2}));
  g.add_node(
      Node("Gemm", "fc", {"x", "fc.weight", "fc.bias"}, {"fc.out"}).set("transB", int64_t{1}));
  g.add_node(Node("Relu", "relu", {"fc.out"}, {"y"}));
  g.add_output({"y", at::kFloat, {Dim::symbol("N"), Dim(2)}});
  return g;
}

// conv -> batch norm -> dropout -> global average pool, with random weights.
Graph conv_bn_graph() {
  Graph g("conv_bn");
  g.add_input({"image", at::kFloat, {Dim::symbol("N"), Dim(2), Dim(5), Dim(5)}});
  g.add_initializer("conv.weight", at::randn({3, 2, 3, 3}));
  g.add_initializer("bn.scale", at::rand({3}) + 0.5);
  g.add_initializer("bn.bias", at::randn({3}));
  g.add_initializer("bn.running_mean", at::zeros({3}));
  g.add_initializer("bn.running_var", at::ones({3}));
  g.add_initializer("drop.ratio", at::scalar_tensor(0.5, at::kFloat));
  g.add_node(Node("Conv", "conv", {"image", "conv.weight"}, {"conv.out"})
                 .set("pads", std::vector<int64_t>{1, 1, 1, 1}));
  g.add_node(Node("BatchNormalization", "bn",
                  {"conv.out", "bn.scale", "bn.bias", "bn.running_mean", "bn.running_var"},
                  {"bn.out"})
                 .set("momentum", 0.9f));
  g.add_node(Node("Dropout", "drop", {"bn.out", "drop.ratio"}, {"drop.out"}));
  g.add_node(Node("GlobalAveragePool", "pool", {"drop.out"}, {"pooled"}));
  g.add_output({"pooled", at::kFloat, {Dim::symbol("N"), Dim(3), Dim(1), Dim(1)}});
  return g;
}

TEST(Executor, RunsATwoNodeGraph) {
  Graph g = two_node_graph();
  Executor exec(g);
  // x = [1, 2]: x W^T + b = [1 - 2 + 0.5, 2 - 10] = [-0.5, -8] -> Relu [0, 0];
  // x = [3, 1]: [3 - 1 + 0.5, 6 - 10] = [2.5, -4] -> [2.5, 0].
  std::vector<at::Tensor> outs = exec.run({tensor_of({1, 2, 3, 1}, {2, 2})}, run_options());
  ASSERT_EQ(outs.size(), 1u);
  expect_close(outs[0], tensor_of({0, 0, 2.5f, 0}, {2, 2}));
}

TEST(Executor, InputCountMismatchNamesTheMissingInput) {
  Graph g("two_inputs");
  g.add_input({"a", at::kFloat, {Dim(2)}});
  g.add_input({"b", at::kFloat, {Dim(2)}});
  g.add_node(Node("Add", "add", {"a", "b"}, {"y"}));
  g.add_output({"y", at::kFloat, {Dim(2)}});
  Executor exec(g);
  expect_error([&] { exec.run({at::ones({2})}, run_options()); },
               {"model 'two_inputs'", "got 1 inputs", "input 'b' is missing"});
}

TEST(Executor, InputTypeMismatchNamesTheInput) {
  Graph g = two_node_graph();
  Executor exec(g);
  expect_error(
      [&] {
        exec.run({at::ones({1, 2}, at::kLong)}, run_options());
      },
      {"input 'x'", "Long", "Float"});
}

TEST(Executor, InputShapeMismatchNamesTheInput) {
  Graph g = two_node_graph();
  Executor exec(g);
  expect_error([&] { exec.run({at::ones({2})}, run_options()); }, {"input 'x'", "rank 2"});
  expect_error(
      [&] {
        exec.run({at::ones({1, 3})}, run_options());
      },
      {"input 'x'", "expected size 2 in dimension 1"});
  // The symbolic batch dimension takes any size.
  EXPECT_NO_THROW(exec.run({at::ones({7, 2})}, run_options()));
}

TEST(Executor, UnknownOpNamesTheOpAndTheNodeAtConstruction) {
  Graph g("custom");
  g.add_input({"x", at::kFloat, {Dim(2)}});
  g.add_node(Node("FancyOp", "block1.fancy", {"x"}, {"y"}));
  g.add_output({"y", at::kFloat, {Dim(2)}});
  expect_error([&] { Executor exec(g); }, {"'FancyOp'", "'block1.fancy'", "not supported"});
}

TEST(Executor, WrongInputCountForAnOpNamesTheNode) {
  Graph g("arity");
  g.add_input({"x", at::kFloat, {Dim(2)}});
  g.add_node(Node("Relu", "act", {"x", "x"}, {"y"}));
  g.add_output({"y", at::kFloat, {Dim(2)}});
  expect_error([&] { Executor exec(g); }, {"Relu node 'act'", "has 2 inputs"});
}

TEST(Executor, AtenErrorsInAKernelNameTheNodeOnOneLine) {
  Graph g("bad_matmul");
  g.add_input({"a", at::kFloat, {Dim(2), Dim(3)}});
  g.add_initializer("w", at::ones({4, 2}));
  g.add_node(Node("MatMul", "proj", {"a", "w"}, {"y"}));
  g.add_output({"y", at::kFloat, {}, false});
  Executor exec(g);
  expect_error(
      [&] {
        exec.run({at::ones({2, 3})}, run_options());
      },
      {"model 'bad_matmul'", "MatMul node 'proj'"});
}

TEST(Executor, GradientsFlowToInitializersInTraining) {
  Graph g = two_node_graph();
  at::Tensor w = g.initializers().at("fc.weight").requires_grad_(true);
  at::Tensor b = g.initializers().at("fc.bias").requires_grad_(true);
  Executor exec(g);
  // x = [3, 1]: pre-activations [2.5, -4]; only unit 0 is active, so d sum(y) / dW = [[3, 1],
  // [0, 0]] and d sum(y) / db = [1, 0].
  at::Tensor y = exec.run({tensor_of({3, 1}, {1, 2})}, run_options(true))[0];
  y.sum().backward();
  ASSERT_TRUE(w.grad().defined());
  ASSERT_TRUE(b.grad().defined());
  expect_close(w.grad(), tensor_of({3, 1, 0, 0}, {2, 2}));
  expect_close(b.grad(), tensor_of({1, 0}, {2}));
}

TEST(Executor, OptimizerUpdatesToInitializersAreSeenByTheNextRun) {
  Graph g = two_node_graph();
  Executor exec(g);
  at::Tensor x = tensor_of({3, 1}, {1, 2});
  expect_close(exec.run({x}, run_options())[0], tensor_of({2.5f, 0}, {1, 2}));
  g.initializers().at("fc.bias").add_(1.0);
  expect_close(exec.run({x}, run_options())[0], tensor_of({3.5f, 0}, {1, 2}));
}

TEST(Executor, BatchNormTrainingUpdatesRunningStatsAndEvalUsesThem) {
  Graph g("bn");
  g.add_input({"x", at::kFloat, {Dim(4), Dim(1)}});
  g.add_initializer("scale", at::ones({1}));
  g.add_initializer("bias", at::zeros({1}));
  g.add_initializer("mean", at::zeros({1}));
  g.add_initializer("var", at::ones({1}));
  g.add_node(Node("BatchNormalization", "bn", {"x", "scale", "bias", "mean", "var"}, {"y"})
                 .set("momentum", 0.5f)
                 .set("epsilon", 0.0f));
  g.add_output({"y", at::kFloat, {Dim(4), Dim(1)}});
  Executor exec(g);
  // Batch 1, 2, 3, 6: mean 3, unbiased variance 14 / 3; momentum 0.5 averages old and new.
  at::Tensor x = tensor_of({1, 2, 3, 6}, {4, 1});
  at::Tensor train_y = exec.run({x}, run_options(true))[0];
  expect_close(train_y, (x - 3.0) / std::sqrt(3.5));
  const float mean = g.initializers().at("mean").item<float>();
  const float var = g.initializers().at("var").item<float>();
  EXPECT_NEAR(mean, 1.5f, 1e-6);
  EXPECT_NEAR(var, 0.5f + 0.5f * 14.0f / 3.0f, 1e-5);
  // Eval normalises with the updated running statistics, not the batch's.
  at::Tensor eval_y = exec.run({x}, run_options(false))[0];
  expect_close(eval_y, (x - mean) / std::sqrt(var));
  EXPECT_FLOAT_EQ(g.initializers().at("mean").item<float>(), mean);
}

TEST(Executor, DropoutIsIdentityInEvalAndDropsInTraining) {
  Graph g("drop");
  g.add_input({"x", at::kFloat, {Dim(1000)}});
  g.add_node(Node("Dropout", "drop", {"x"}, {"y"}));
  g.add_output({"y", at::kFloat, {Dim(1000)}});
  Executor exec(g);
  at::manual_seed(0);
  at::Tensor x = at::rand({1000}) + 1.0;
  expect_close(exec.run({x}, run_options(false))[0], x);
  at::Tensor train_y = exec.run({x}, run_options(true))[0];
  const int64_t dropped = (train_y == 0).sum().item<int64_t>();
  EXPECT_GT(dropped, 400);
  EXPECT_LT(dropped, 600);
}

TEST(Executor, RepeatedRunsGiveIdenticalOutputs) {
  at::manual_seed(0);
  Graph g = conv_bn_graph();
  Executor exec(g);
  at::Tensor image = at::randn({2, 2, 5, 5});
  at::Tensor first = exec.run({image}, run_options())[0];
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(at::equal(exec.run({image}, run_options())[0], first));
  // The running statistics are untouched by eval runs.
  EXPECT_TRUE(at::equal(g.initializers().at("bn.running_mean"), at::zeros({3})));
}

TEST(Executor, FetchesAnIntermediateValue) {
  Graph g = two_node_graph();
  Executor exec(g);
  std::map<std::string, at::Tensor> fetched;
  std::vector<at::Tensor> outs =
      exec.run({tensor_of({3, 1}, {1, 2})}, run_options(), {"fc.out"}, &fetched);
  ASSERT_EQ(fetched.count("fc.out"), 1u);
  expect_close(fetched.at("fc.out"), tensor_of({2.5f, -4.0f}, {1, 2}));
  expect_close(outs[0], tensor_of({2.5f, 0.0f}, {1, 2}));
  expect_error(
      [&] {
        exec.run({tensor_of({3, 1}, {1, 2})}, run_options(), {"nope"}, &fetched);
      },
      {"no value named 'nope'"});
}

TEST(Executor, AnOutputThatIsAlsoReadLaterSurvives) {
  Graph g("shared");
  g.add_input({"x", at::kFloat, {Dim(2)}});
  g.add_node(Node("Relu", "relu", {"x"}, {"r"}));
  g.add_node(Node("Neg", "neg", {"r"}, {"n"}));
  g.add_output({"r", at::kFloat, {Dim(2)}});
  g.add_output({"n", at::kFloat, {Dim(2)}});
  Executor exec(g);
  std::vector<at::Tensor> outs = exec.run({tensor_of({-1, 2}, {2})}, run_options());
  expect_close(outs[0], tensor_of({0, 2}, {2}));
  expect_close(outs[1], tensor_of({0, -2}, {2}));
}

}  // namespace

// Training runs an exact GELU's five nodes as one at::gelu; inference runs the nodes. Both, and
// the gradient, agree with the formula computed by ATen's autograd op by op.
TEST(Executor, TrainingRunsAnExactGeluAsOneOpWithTheSameValuesAndGradient) {
  Graph g("gelu");
  GraphBuilder b(g, seeded_generator(0));
  const std::string x = b.input("x", at::kFloat, {Dim::symbol("N"), 64});
  const std::string h = b.linear("fc", x, 64, 64);
  const std::string y = b.gelu("act", h);
  b.output(y, at::kFloat, {Dim::symbol("N"), 64});
  Executor exec(g);
  at::manual_seed(3);
  const at::Tensor in = at::randn({16, 64}) * 2.0f;
  const at::Tensor w = g.initializers().at("fc.weight");
  const at::Tensor bias = g.initializers().at("fc.bias");
  // The reference: the graph's formula, op by op.
  const at::Tensor wr = w.detach().clone().requires_grad_(true);
  const at::Tensor pre = at::matmul(in, wr) + bias;
  const at::Tensor ref = pre * (at::erf(pre / std::sqrt(2.0f)) + 1.0f) * 0.5f;
  const at::Tensor g_out = at::randn(ref.sizes());
  (ref * g_out).sum().backward();

  w.requires_grad_(true);
  const at::Tensor trained = exec.run({in}, run_options(true))[0];
  (trained * g_out).sum().backward();
  const at::Tensor served = exec.run({in}, run_options(false))[0];
  EXPECT_TRUE(at::allclose(trained.detach(), ref.detach(), 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(served, ref.detach(), 1e-6, 1e-7));
  ASSERT_TRUE(w.grad().defined());
  EXPECT_TRUE(at::allclose(w.grad(), wr.grad(), 1e-4, 1e-5))
      << (w.grad() - wr.grad()).abs().max().item<float>();
  // In training the Erf node itself never runs (the profile records no call of it); in
  // inference it does.
  const auto erf_index = [](const NodeProfile& p) {
    for (size_t k = 0; k < p.op_types.size(); ++k)
      if (p.op_types[k] == "Erf") return k;
    return p.op_types.size();
  };
  NodeProfile train_profile, serve_profile;
  RunOptions t = run_options(true), s = run_options(false);
  t.profile = &train_profile;
  s.profile = &serve_profile;
  exec.run({in}, t);
  exec.run({in}, s);
  ASSERT_LT(erf_index(train_profile), train_profile.ms.size());
  EXPECT_EQ(train_profile.ms[erf_index(train_profile)], 0.0);
  EXPECT_GT(serve_profile.ms[erf_index(serve_profile)], 0.0);
  // Fetching a value inside the GELU runs it node by node, so the value exists.
  std::map<std::string, at::Tensor> fetched;
  const std::string inner = g.nodes()[g.nodes().size() - 4].outputs[0];  // Erf's output
  exec.run({in}, run_options(true), {inner}, &fetched);
  EXPECT_TRUE(fetched.at(inner).defined()) << inner;
}
