// The inference plan (edgeforge/lower.h: lower_plan, InferenceSession) against the reference
// executor: every fused pattern, float and int8, the zoo's models, repeated runs and batch
// sizes, buffers reused between runs, and the patterns that fall back.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstdlib>

#include "edgeforge/error.h"
#include "edgeforge/graph_builder.h"
#include "edgeforge/lower.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/runtime.h"
#include "edgeforge/zoo.h"
#include "small_models.h"

using namespace edgeforge;
using namespace edgeforge::testing;

namespace {

// oneDNN sums in another order than ATen (blocked, vectorised), and folds batch norm into the
// weights in double before rounding them to float: float outputs agree to this share of the
// output's largest magnitude.
constexpr double kFloatRelativeTolerance = 1e-4;
// oneDNN's GELU uses its own erf polynomial (about 1e-6 relative error); a little looser.
constexpr double kGeluRelativeTolerance = 2e-4;
// int8: the plan's oneDNN kernels and LibTorch's (the reference int8 path) both requantize
// from exact int32 sums; output scales rounded to float instead of double may move a value on
// a rounding edge by one step, and steps add up over layers.
constexpr double kMaxInt8OutputSteps = 3.0;

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a - b).abs().max().item<double>();
}

double scale_of(const at::Tensor& t) { return std::max(1.0, t.abs().max().item<double>()); }

int count(const Graph& g, const std::string& op) {
  int n = 0;
  for (const Node& node : g.nodes()) n += node.op_type == op;
  return n;
}

// Runs `g` in a session (plan on) and in the reference executor; returns the largest
// difference relative to the reference's magnitude.
double plan_vs_reference(const Graph& g, const std::vector<at::Tensor>& in,
                         InferenceSession* session = nullptr) {
  std::unique_ptr<InferenceSession> own;
  if (session == nullptr) {
    own = std::make_unique<InferenceSession>(g);
    session = own.get();
  }
  at::NoGradGuard no_grad;
  const at::Tensor ref = run(g, in);
  const at::Tensor got = session->run(in, RunOptions{})[0];
  return max_diff(ref, got) / scale_of(ref);
}

// x -> conv(stride, dilation, pads, group) [-> BN] [-> relu] on a [N, 8, 9, 9] input.
Graph conv_graph(int64_t stride, int64_t dilation, std::vector<int64_t> pads, int64_t group,
                 bool bias, bool bn, bool relu) {
  Graph g("conv");
  GraphBuilder b(g, seeded_generator(7));
  std::string x = b.input("x", at::kFloat, {Dim::symbol("N"), 8, Dim(), Dim()});
  std::string y = b.conv("c", x, 8, 16, 3, stride, 0, group, bias);
  Node* conv = nullptr;
  for (Node& n : g.nodes())
    if (n.op_type == "Conv") conv = &n;
  conv->set("pads", pads).set("dilations", std::vector<int64_t>{dilation, dilation});
  if (bn) y = b.batch_norm("bn", y, 16);
  if (relu) y = b.relu("r", y);
  b.output(y, at::kFloat, {Dim::symbol("N"), 16, Dim(), Dim()});
  at::manual_seed(2);
  for (auto& [name, t] : g.initializers()) {
    if (name.find("running_var") != std::string::npos) t.uniform_(0.5, 2.0);
    if (name.find("running_mean") != std::string::npos) t.normal_(0, 0.3);
  }
  return g;
}

std::vector<at::Tensor> image(int64_t n, int64_t c, int64_t hw, uint64_t seed) {
  at::manual_seed(seed);
  return {at::randn({n, c, hw, hw})};
}

}  // namespace

TEST(Plan, ConvolutionsWithFoldedBatchNormAndReluMatchTheReference) {
  struct Case {
    int64_t stride, dilation;
    std::vector<int64_t> pads;
    int64_t group;
    bool bias, bn, relu;
  };
  const std::vector<Case> cases = {
      {1, 1, {1, 1, 1, 1}, 1, false, true, true},  {2, 1, {1, 1, 1, 1}, 1, true, true, false},
      {1, 2, {2, 2, 2, 2}, 1, true, false, true},  {1, 1, {0, 1, 2, 1}, 1, false, false, false},
      {1, 1, {1, 1, 1, 1}, 4, false, true, true},  {2, 1, {1, 1, 1, 1}, 8, true, true, true},
  };
  for (const Case& c : cases) {
    const Graph g = conv_graph(c.stride, c.dilation, c.pads, c.group, c.bias, c.bn, c.relu);
    InferenceSession session(g);
    EXPECT_EQ(count(session.graph(), "DnnlConv"), 1);
    EXPECT_EQ(session.graph().nodes().size(), 1u) << "BN and ReLU are fused";
    for (int64_t n : {1, 3})
      EXPECT_LE(plan_vs_reference(g, image(n, 8, 9, 10 + n), &session), kFloatRelativeTolerance)
          << "stride " << c.stride << " dilation " << c.dilation << " group " << c.group
          << " batch " << n;
  }
}

// The activations real exports put after a convolution, each a oneDNN post-op: ReLU6 as Clip
// (MobileNetV2), HardSwish and HardSigmoid (MobileNetV3), SiLU as x * Sigmoid(x) and Sigmoid
// (EfficientNet's blocks and squeeze-excitation).
TEST(Plan, ConvolutionActivationsOfRealExportsAreFused) {
  for (const std::string act : {"clip", "hardswish", "hardsigmoid", "sigmoid", "silu", "clip-min"}) {
    Graph g = conv_graph(1, 1, {1, 1, 1, 1}, 1, true, true, false);
    const std::string y = g.outputs()[0].name;
    const std::string out = y + ".act";
    if (act == "clip" || act == "clip-min") {
      g.add_initializer("lo", at::scalar_tensor(0.f));
      g.add_initializer("hi", at::scalar_tensor(6.f));
      g.add_node(Node("Clip", "act", {y, "lo", act == "clip" ? "hi" : ""}, {out}));
    } else if (act == "hardswish") {
      g.add_node(Node("HardSwish", "act", {y}, {out}));
    } else if (act == "hardsigmoid") {
      g.add_node(Node("HardSigmoid", "act", {y}, {out}).set("alpha", 1.f / 6).set("beta", 0.5f));
    } else if (act == "sigmoid") {
      g.add_node(Node("Sigmoid", "act", {y}, {out}));
    } else {
      g.add_node(Node("Sigmoid", "sig", {y}, {y + ".sig"}));
      g.add_node(Node("Mul", "act", {y, y + ".sig"}, {out}));
    }
    g.outputs()[0].name = out;
    InferenceSession session(g);
    EXPECT_EQ(session.graph().nodes().size(), 1u) << act << " is fused into the convolution";
    for (int64_t n : {1, 2})
      EXPECT_LE(plan_vs_reference(g, image(n, 8, 9, 40 + n), &session), kFloatRelativeTolerance)
          << act << " batch " << n;
  }
  // Clip bounds computed at run time are not a post-op: the Clip stays on its own.
  Graph g = conv_graph(1, 1, {1, 1, 1, 1}, 1, true, false, false);
  const std::string y = g.outputs()[0].name;
  g.add_input({"hi", at::kFloat, {}});
  g.add_node(Node("Clip", "act", {y, "", "hi"}, {y + ".act"}));
  g.outputs()[0].name = y + ".act";
  InferenceSession session(g);
  EXPECT_EQ(count(session.graph(), "Clip"), 1);
}

TEST(Plan, ResidualBlocksFuseTheAddAndKeepLayoutsBetweenConvolutions) {
  const Graph g = small_cnn();  // stem, block with a residual add and ReLU, pool, gemm
  InferenceSession session(g);
  EXPECT_EQ(count(session.graph(), "DnnlConv"), 3);
  EXPECT_EQ(count(session.graph(), "Add"), 0) << "the residual add is a sum post-op";
  EXPECT_EQ(count(session.graph(), "Relu"), 0);
  EXPECT_EQ(count(session.graph(), "DnnlLinear"), 1);
  EXPECT_TRUE(session.lowering().plan_fallback.empty());
  for (int seed = 0; seed < 3; ++seed)
    EXPECT_LE(plan_vs_reference(g, batches(g, 1, 30 + seed)[0], &session), kFloatRelativeTolerance);
}

TEST(Plan, LinearLayersWithGeluResidualLayerNormAndDropoutMatchTheReference) {
  const Graph g = small_mlp();  // linear -> GELU -> linear + residual -> slice -> gemm
  InferenceSession session(g);
  EXPECT_EQ(count(session.graph(), "DnnlLinear"), 3);
  EXPECT_EQ(count(session.graph(), "Erf"), 0) << "the GELU is a post-op";
  EXPECT_EQ(count(session.graph(), "Add"), 0) << "bias and residual are fused";
  for (int seed = 0; seed < 3; ++seed)
    EXPECT_LE(plan_vs_reference(g, batches(g, 1, 40 + seed)[0], &session), kGeluRelativeTolerance);
}

// nn.GELU(approximate="tanh") as torch.onnx writes it (GPT-2's gelu_new has the same formula):
// nine nodes, one DnnlGelu with oneDNN's tanh GELU.
TEST(Plan, TanhGeluIsOneKernel) {
  Graph g("tanh_gelu");
  g.add_input({"x", at::kFloat, {Dim::symbol("N"), Dim(64)}});
  g.add_output({"y", at::kFloat, {Dim::symbol("N"), Dim(64)}});
  g.add_initializer("c", at::scalar_tensor(0.044715f));
  g.add_initializer("k", at::scalar_tensor(0.7978845608f));
  g.add_initializer("one", at::scalar_tensor(1.f));
  g.add_initializer("half", at::scalar_tensor(0.5f));
  g.add_node(Node("Mul", "sq", {"x", "x"}, {"sq"}));
  g.add_node(Node("Mul", "cube", {"x", "sq"}, {"cube"}));
  g.add_node(Node("Mul", "cm", {"c", "cube"}, {"cm"}));
  g.add_node(Node("Add", "a", {"x", "cm"}, {"a"}));
  g.add_node(Node("Mul", "u", {"k", "a"}, {"u"}));
  g.add_node(Node("Tanh", "t", {"u"}, {"t"}));
  g.add_node(Node("Add", "p", {"one", "t"}, {"p"}));
  g.add_node(Node("Mul", "q", {"x", "p"}, {"q"}));
  g.add_node(Node("Mul", "y", {"half", "q"}, {"y"}));
  InferenceSession session(g);
  EXPECT_EQ(count(session.graph(), "DnnlGelu"), 1);
  EXPECT_EQ(session.graph().nodes().size(), 1u);
  for (int64_t n : {1, 5}) {
    at::manual_seed(90 + n);
    EXPECT_LE(plan_vs_reference(g, {at::randn({n, 64}) * 4}, &session), kGeluRelativeTolerance);
  }
  // Another constant than 0.044715: not the GELU, left alone.
  g.initializers()["c"] = at::scalar_tensor(0.05f);
  EXPECT_EQ(count(InferenceSession(g).graph(), "DnnlGelu"), 0);
}

TEST(Plan, GeluIsTheExactErfFormOverItsWholeRange) {
  // Pre-activations spread over [-4, 4], where the tanh approximation of GELU is up to 1e-3
  // off: the fused post-op must be the erf form the graph spells out.
  for (bool standalone : {false, true}) {
    Graph g("gelu");
    GraphBuilder b(g, seeded_generator(9));
    const std::string x = b.input("x", at::kFloat, {3, 16});
    const std::string h = standalone ? b.relu("r", x) : b.linear("fc", x, 16, 64);
    b.output(b.gelu("gelu", h), at::kFloat, {3, standalone ? 16 : 64});
    for (auto& [name, t] : g.initializers())
      if (name == "fc.weight") t.mul_(8.0);
    InferenceSession session(g);
    EXPECT_EQ(count(session.graph(), standalone ? "DnnlGelu" : "DnnlLinear"), 1);
    EXPECT_EQ(count(session.graph(), "Erf"), 0);
    at::manual_seed(5);
    const std::vector<at::Tensor> in = {at::randn({3, 16}) * (standalone ? 2.0 : 1.0)};
    at::NoGradGuard no_grad;
    const at::Tensor ref = run(g, in), got = session.run(in, RunOptions{})[0];
    EXPECT_GT(ref.max().item<double>(), 2.0) << "the test must reach the curved part";
    EXPECT_LE(max_diff(ref, got) / scale_of(ref), kGeluRelativeTolerance / 20) << standalone;
  }
}

TEST(Plan, TransformerTeachersAndStudentsMatchTheReference) {
  for (const char* name : {"bert", "roberta-small"}) {
    ZooBuildOptions opts;
    const Graph g = build_zoo_model(name, opts);
    InferenceSession session(g);
    const Graph& p = session.graph();
    EXPECT_EQ(count(p, "MatMul"), 0) << name;
    EXPECT_EQ(count(p, "LayerNormalization"), 0) << name;
    EXPECT_EQ(count(p, "Softmax"), 0) << name;
    EXPECT_EQ(count(p, "Erf"), 0) << name;
    EXPECT_GT(count(p, "DnnlMatMul"), 0) << name;
    EXPECT_GT(count(p, "PlanGather"), 0) << name << ": the embeddings";
    EXPECT_TRUE(session.lowering().plan_fallback.empty()) << name;
    // Two mails of different lengths, padded: the mask is broadcast over heads and queries.
    at::manual_seed(50);
    const int64_t seq = 32;
    at::Tensor ids = at::randint(5, 400, {2, seq}, at::kLong);
    at::Tensor mask = at::ones({2, seq}, at::kLong);
    mask.index_put_({1, at::indexing::Slice(20, at::indexing::None)}, 0);
    std::vector<at::Tensor> in = {ids, mask};
    if (g.inputs().size() == 3) in.push_back(at::zeros({2, seq}, at::kLong));
    EXPECT_LE(plan_vs_reference(g, in, &session), kGeluRelativeTolerance) << name;
    // Batch 1 after batch 2: a second set of primitives, same numbers as the reference.
    std::vector<at::Tensor> one;
    for (const at::Tensor& t : in) one.push_back(t.slice(0, 1, 2).contiguous());
    EXPECT_LE(plan_vs_reference(g, one, &session), kGeluRelativeTolerance) << name;
  }
}

TEST(Plan, ImageZooModelsMatchTheReferenceAtSeveralBatchSizes) {
  for (const char* name : {"resnet", "resnext-small"}) {
    const Graph g = build_zoo_model(name, ZooBuildOptions{});
    InferenceSession session(g);
    EXPECT_EQ(count(session.graph(), "Conv"), 0) << name;
    EXPECT_EQ(count(session.graph(), "BatchNormalization"), 0) << name;
    for (int64_t n : {1, 4, 1})
      EXPECT_LE(plan_vs_reference(g, image(n, 1, 28, 60 + n), &session), kFloatRelativeTolerance)
          << name << " batch " << n;
  }
}

TEST(Plan, RepeatedRunsGiveIdenticalOutputsAndEarlierOutputsStayIntact) {
  // Kernels reuse their output buffers; one the caller still holds must never be overwritten.
  for (const char* name : {"resnet-small", "bert-small"}) {
    const Graph g = build_zoo_model(name, ZooBuildOptions{});
    InferenceSession session(g);
    std::vector<at::Tensor> a, b;
    if (g.inputs().size() == 1) {
      a = image(1, 1, 28, 70);
      b = image(1, 1, 28, 71);
    } else {
      at::manual_seed(72);
      for (const ValueInfo& v : g.inputs()) {
        a.push_back(v.name == "input_ids" ? at::randint(5, 400, {1, 16}, at::kLong) : at::ones({1, 16}, at::kLong));
        b.push_back(v.name == "input_ids" ? at::randint(5, 400, {1, 16}, at::kLong) : at::ones({1, 16}, at::kLong));
      }
      a.back().zero_();  // token types (bert) or a mask of ones is fine either way
      b.back().zero_();
      if (g.inputs().back().name == "attention_mask") {
        a.back().fill_(1);
        b.back().fill_(1);
      }
    }
    at::NoGradGuard no_grad;
    const at::Tensor first = session.run(a, RunOptions{})[0];
    const at::Tensor kept = first.clone();
    const at::Tensor second = session.run(b, RunOptions{})[0];
    EXPECT_TRUE(at::equal(first, kept)) << name << ": a held output was overwritten";
    EXPECT_FALSE(at::equal(first, second)) << name;
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(at::equal(session.run(a, RunOptions{})[0], kept)) << name;
  }
}

TEST(Plan, Int8KernelsMatchTheReferenceInt8Path) {
  const Graph qdq = static_qdq(small_cnn());
  InferenceSession plan(qdq), reference(qdq, SessionOptions{false});
  EXPECT_EQ(count(plan.graph(), "DnnlQConv"), 3);
  EXPECT_EQ(count(reference.graph(), "QConv"), 3);
  const double step = output_step(qdq);
  at::NoGradGuard no_grad;
  for (const auto& in : batches(qdq, 3, 80)) {
    const at::Tensor ref = reference.run(in, RunOptions{})[0], got = plan.run(in, RunOptions{})[0];
    EXPECT_LE(max_diff(ref, got), kMaxInt8OutputSteps * step + 1e-6);
  }
  const Graph mlp = static_qdq(small_mlp());
  InferenceSession plan2(mlp), reference2(mlp, SessionOptions{false});
  EXPECT_EQ(count(plan2.graph(), "DnnlQLinear"), 3);
  EXPECT_EQ(count(plan2.graph(), "DnnlGelu"), 0) << "the GELU is a post-op of the int8 layer";
  EXPECT_EQ(count(plan2.graph(), "Add"), 0) << "the residual is a post-op of the int8 layer";
  EXPECT_EQ(count(plan2.graph(), "DequantizeTensor"), 1) << "the residual, dequantized input";
  const double step2 = output_step(mlp);
  for (const auto& in : batches(mlp, 3, 81)) {
    const at::Tensor ref = reference2.run(in, RunOptions{})[0], got = plan2.run(in, RunOptions{})[0];
    EXPECT_LE(max_diff(ref, got), kMaxInt8OutputSteps * step2 + 1e-6);
  }
}

// A residual block behind a max pool, its shortcut the pool's output (read twice) or a 1x1
// convolution (read once): the residual add is fused into the block's last convolution (into
// the shortcut's own buffer when nothing else reads it) and the pool runs on uint8 values,
// against the reference int8 path and the QDQ graph.
TEST(Plan, Int8ResidualAddsAndMaxPoolsStayInt8) {
  for (bool conv_shortcut : {false, true}) {
    Graph g("block");
    GraphBuilder b(g, seeded_generator(9));
    std::string x = b.input("input", at::kFloat, {Dim::symbol("N"), 3, 16, 16});
    x = b.relu("stem.relu", b.batch_norm("stem.bn", b.conv("stem.conv", x, 3, 8, 3, 1, 1), 8));
    Node& pool = b.op("MaxPool", "pool", {x});
    pool.set("kernel_shape", std::vector<int64_t>{3, 3})
        .set("strides", std::vector<int64_t>{2, 2})
        .set("pads", std::vector<int64_t>{1, 1, 1, 1});
    x = pool.outputs[0];
    std::string y = b.relu("b.relu1", b.batch_norm("b.bn1", b.conv("b.conv1", x, 8, 8, 3, 1, 1), 8));
    y = b.batch_norm("b.bn2", b.conv("b.conv2", y, 8, 8, 3, 1, 1), 8);
    const std::string skip =
        conv_shortcut ? b.batch_norm("b.down_bn", b.conv("b.down", x, 8, 8, 1), 8) : x;
    x = b.relu("b.relu2", b.add("b.add", y, skip));
    x = b.conv("head", x, 8, 8, 1);  // reads the block's output: quantized
    x = b.gemm("fc", b.flatten("flat", b.global_average_pool("gap", x)), 8, 5);
    b.output(x, at::kFloat, {Dim::symbol("N"), 5});
    at::manual_seed(4);
    for (auto& [name, t] : g.initializers()) {
      if (name.find("running_var") != std::string::npos) t.uniform_(0.5, 2.0);
      if (name.find("running_mean") != std::string::npos) t.normal_(0, 0.3);
    }
    const Graph qdq = static_qdq(g);
    InferenceSession plan(qdq), reference(qdq, SessionOptions{false});
    EXPECT_EQ(count(reference.graph(), "QAdd"), 1);
    EXPECT_EQ(count(plan.graph(), "QAdd"), 0) << "fused into the convolution";
    EXPECT_EQ(count(plan.graph(), "QMaxPool"), 1);
    EXPECT_EQ(count(plan.graph(), "MaxPool"), 0);
    int fused = 0;
    for (const Node& n : plan.graph().nodes())
      if (n.op_type == "DnnlQConv" && n.inputs.size() == 5) {
        ++fused;
        EXPECT_EQ(n.attr_int("add_inplace"), conv_shortcut ? 1 : 0) << n.name;
      }
    EXPECT_EQ(fused, 1);
    const double step = output_step(qdq);
    at::NoGradGuard no_grad;
    for (const auto& in : batches(qdq, 3, 84)) {
      const at::Tensor ref = reference.run(in, RunOptions{})[0];
      const at::Tensor got = plan.run(in, RunOptions{})[0].clone();
      EXPECT_LE(max_diff(ref, got), kMaxInt8OutputSteps * step + 1e-6) << conv_shortcut;
      EXPECT_LE(max_diff(run(qdq, in), got), kMaxInt8OutputSteps * step + 1e-6) << "vs QDQ";
      EXPECT_TRUE(at::equal(plan.run(in, RunOptions{})[0], got)) << "the same again";
    }
  }
}

// The same activations after an int8 convolution: fused into DnnlQConv before requantization,
// against the reference int8 path (QDQ's float arithmetic for them) and the QDQ graph itself.
TEST(Plan, Int8ConvolutionActivationsAreFused) {
  for (const std::string act : {"clip", "hardswish", "hardsigmoid", "sigmoid", "silu"}) {
    Graph g = small_cnn();
    std::vector<Node> nodes;
    for (Node& n : g.nodes()) {
      if (n.name != "b.relu1") {
        nodes.push_back(n);
        continue;
      }
      const std::string x = n.inputs[0], y = n.outputs[0];
      if (act == "clip") {
        g.add_initializer("lo", at::scalar_tensor(0.f));
        g.add_initializer("hi", at::scalar_tensor(6.f));
        nodes.push_back(Node("Clip", "act", {x, "lo", "hi"}, {y}));
      } else if (act == "hardswish") {
        nodes.push_back(Node("HardSwish", "act", {x}, {y}));
      } else if (act == "hardsigmoid") {
        nodes.push_back(Node("HardSigmoid", "act", {x}, {y}).set("alpha", 1.f / 6).set("beta", 0.5f));
      } else if (act == "sigmoid") {
        nodes.push_back(Node("Sigmoid", "act", {x}, {y}));
      } else {
        nodes.push_back(Node("Sigmoid", "sig", {x}, {x + ".sig"}));
        nodes.push_back(Node("Mul", "act", {x, x + ".sig"}, {y}));
      }
    }
    g.nodes() = nodes;
    const Graph qdq = static_qdq(g);
    InferenceSession plan(qdq), reference(qdq, SessionOptions{false});
    EXPECT_EQ(count(plan.graph(), "DnnlQConv"), 3) << act;
    for (const char* op : {"Clip", "HardSwish", "HardSigmoid", "Sigmoid", "Mul"})
      EXPECT_EQ(count(plan.graph(), op), 0) << act << ": " << op << " is fused";
    const double step = output_step(qdq);
    at::NoGradGuard no_grad;
    for (const auto& in : batches(qdq, 2, 83)) {
      const at::Tensor ref = reference.run(in, RunOptions{})[0], got = plan.run(in, RunOptions{})[0];
      EXPECT_LE(max_diff(ref, got), kMaxInt8OutputSteps * step + 1e-6) << act;
      EXPECT_LE(max_diff(run(qdq, in), got), kMaxInt8OutputSteps * step + 1e-6) << act << " vs QDQ";
    }
  }
}

TEST(Plan, DynamicInt8FollowsDynamicQuantizeLinearExactly) {
  // The plan quantizes the input exactly as the QDQ graph's DynamicQuantizeLinear does, so it
  // matches the fake-quant form up to float summation order (LibTorch's dynamic kernel, the
  // reference int8 path, picks its zero point by another rule and is only 2% close).
  Graph g = small_mlp();
  write_dynamic(g, find_quant_units(g, true), QdqOptions{});
  InferenceSession plan(g);
  EXPECT_EQ(count(plan.graph(), "DnnlDynQLinear"), 3);
  for (const auto& in : batches(g, 3, 82))
    EXPECT_LE(plan_vs_reference(g, in, &plan), kFloatRelativeTolerance);
  // An all-zero input has scale 0: the output is the bias.
  std::vector<at::Tensor> zeros = {at::zeros({2, 6, 16})};
  EXPECT_LE(plan_vs_reference(g, zeros, &plan), kFloatRelativeTolerance);
}

TEST(Plan, PatternsThePlanCannotTakeFallBackAndSaySo) {
  // auto_pad and a weight computed at run time: the reference Conv, named with the reason.
  Graph g = conv_graph(1, 1, {1, 1, 1, 1}, 1, false, false, true);
  for (Node& n : g.nodes())
    if (n.op_type == "Conv") {
      n.attributes.erase("pads");
      n.set("auto_pad", std::string("SAME_UPPER"));
    }
  InferenceSession session(g);
  ASSERT_EQ(session.lowering().plan_fallback.size(), 1u);
  EXPECT_EQ(session.lowering().plan_fallback[0].first, "c");
  EXPECT_NE(session.lowering().plan_fallback[0].second.find("auto_pad"), std::string::npos);
  EXPECT_EQ(count(session.graph(), "Conv"), 1);
  EXPECT_LE(plan_vs_reference(g, image(1, 8, 9, 90), &session), 0.0) << "the same kernels";

  Graph h("weight_input");
  GraphBuilder b(h, seeded_generator(1));
  const std::string x = b.input("x", at::kFloat, {1, 4});
  const std::string w = b.input("w", at::kFloat, {4, 3});
  b.output(b.matmul("mm", x, w), at::kFloat, {1, 3});
  InferenceSession s2(h);
  EXPECT_EQ(count(s2.graph(), "DnnlMatMul"), 1) << "activation x activation";
  at::manual_seed(3);
  const std::vector<at::Tensor> in = {at::randn({1, 4}), at::randn({4, 3})};
  EXPECT_LE(plan_vs_reference(h, in, &s2), kFloatRelativeTolerance);

  // Softmax over another axis stays on the reference kernel.
  Graph sm("softmax");
  GraphBuilder c(sm, seeded_generator(1));
  const std::string y = c.input("y", at::kFloat, {2, 3});
  c.output(c.softmax("s", y, 0), at::kFloat, {2, 3});
  InferenceSession s3(sm);
  ASSERT_EQ(s3.lowering().plan_fallback.size(), 1u);
  EXPECT_EQ(count(s3.graph(), "Softmax"), 1);
}

TEST(Plan, SoftmaxWithScaleAndBroadcastMaskMatchesTheReference) {
  for (bool mask_broadcasts_x : {false, true}) {
    Graph g("attention");
    GraphBuilder b(g, seeded_generator(1));
    const std::string s = b.input("scores", at::kFloat,
                                  mask_broadcasts_x ? std::vector<Dim>{1, 1, 1, 5} : std::vector<Dim>{2, 3, 4, 5});
    const std::string m = b.input("mask", at::kFloat,
                                  mask_broadcasts_x ? std::vector<Dim>{2, 3, 4, 5} : std::vector<Dim>{2, 1, 1, 5});
    const std::string x = b.add("add", b.div("div", s, b.scalar("k", 2.0f)), m);
    b.output(b.softmax("softmax", x, -1), at::kFloat, {2, 3, 4, 5});
    at::manual_seed(4);
    const at::Tensor sc = mask_broadcasts_x ? at::randn({1, 1, 1, 5}) : at::randn({2, 3, 4, 5});
    at::Tensor mk = mask_broadcasts_x ? at::randn({2, 3, 4, 5}) : at::zeros({2, 1, 1, 5});
    if (!mask_broadcasts_x) mk.index_put_({1, 0, 0, 4}, -10000.0f);
    // The AVX-512 kernel (where the CPU has it) and the portable one (oneDNN's softmax).
    for (bool portable : {false, true}) {
      if (portable) setenv("EDGEFORGE_NO_AVX512", "1", 1);
      InferenceSession session(g);
      unsetenv("EDGEFORGE_NO_AVX512");
      EXPECT_EQ(count(session.graph(), "DnnlSoftmax"), 1);
      EXPECT_EQ(session.graph().nodes().size(), 1u);
      EXPECT_LE(plan_vs_reference(g, {sc, mk}, &session), kFloatRelativeTolerance) << portable;
    }
  }
}

TEST(Plan, AnAddThatBroadcastsIsNotTakenForAResidual) {
  // conv -> Add(a per-channel activation [N, 16, 1, 1]) -> Relu: fused as a residual, the
  // kernel sees the shapes differ at run time and adds with ATen instead.
  Graph g = conv_graph(1, 1, {1, 1, 1, 1}, 1, true, false, false);
  GraphBuilder b(g, seeded_generator(8));
  const std::string s = b.input("s", at::kFloat, {Dim::symbol("N"), 16, 1, 1});
  const std::string conv_out = g.outputs()[0].name;
  g.outputs().clear();
  b.output(b.relu("r2", b.add("add", conv_out, s)), at::kFloat, {Dim::symbol("N"), 16, Dim(), Dim()});
  InferenceSession session(g);
  EXPECT_EQ(count(session.graph(), "DnnlConv"), 1);
  at::manual_seed(7);
  EXPECT_LE(plan_vs_reference(g, {at::randn({2, 8, 9, 9}), at::randn({2, 16, 1, 1})}, &session),
            kFloatRelativeTolerance);
}

// 3x3 convolutions of 115M multiply-adds (64 channels on 56x56), the size the plan runs on
// oneDNN's Winograd kernels (where the CPU has them), in a residual block whose blocked
// outputs meet plain ones: against the reference, batch 1 and 2.
TEST(Plan, LargeThreeByThreeConvolutionsMatchTheReference) {
  Graph g("wide");
  GraphBuilder b(g, seeded_generator(14));
  const std::string x = b.input("x", at::kFloat, {Dim::symbol("N"), 64, 56, 56});
  std::string y = b.relu("r1", b.batch_norm("bn1", b.conv("c1", x, 64, 64, 3, 1, 1), 64));
  y = b.batch_norm("bn2", b.conv("c2", y, 64, 64, 3, 1, 1), 64);
  y = b.relu("r2", b.add("add", y, x));
  b.output(b.conv("c3", y, 64, 32, 1), at::kFloat, {Dim::symbol("N"), 32, 56, 56});
  at::manual_seed(15);
  for (auto& [name, t] : g.initializers()) {
    if (name.find("running_var") != std::string::npos) t.uniform_(0.5, 2.0);
    if (name.find("running_mean") != std::string::npos) t.normal_(0, 0.3);
  }
  InferenceSession session(g);
  EXPECT_EQ(count(session.graph(), "DnnlConv"), 3);
  for (int64_t n : {1, 2})
    EXPECT_LE(plan_vs_reference(g, {at::randn({n, 64, 56, 56})}, &session), kFloatRelativeTolerance) << n;
}

// Squeeze-excitation as torchvision writes it: conv -> SiLU -> h; GlobalAveragePool(h) -> 1x1
// conv -> ReLU -> 1x1 conv -> Sigmoid -> gate; h * gate -> 1x1 conv.
Graph squeeze_excitation() {
  Graph g("se");
  GraphBuilder b(g, seeded_generator(12));
  std::string x = b.input("x", at::kFloat, {Dim::symbol("N"), 8, 10, 10});
  const std::string c = b.conv("conv", x, 8, 16, 3, 1, 1, 1, true);
  const std::string h = b.mul("silu", c, b.op("Sigmoid", "silu_gate", {c}).outputs[0]);
  std::string gate = b.relu("fc1_relu", b.conv("fc1", b.global_average_pool("gap", h), 16, 4, 1, 1, 0, 1, true));
  gate = b.op("Sigmoid", "gate", {b.conv("fc2", gate, 4, 16, 1, 1, 0, 1, true)}).outputs[0];
  b.output(b.conv("proj", b.mul("scale", h, gate), 16, 8, 1), at::kFloat,
           {Dim::symbol("N"), 8, 10, 10});
  return g;
}

// The gate's Mul is one pass into a kept buffer (PlanChannelMul), bit for bit ATen's product;
// a Mul of other shapes takes ATen's; a held output is never overwritten by the next run.
TEST(Plan, SqueezeExcitationScaleIsOnePass) {
  const Graph g = squeeze_excitation();
  InferenceSession session(g);
  EXPECT_EQ(count(session.graph(), "PlanChannelMul"), 1);
  EXPECT_EQ(count(session.graph(), "Mul"), 0);
  for (const auto& in : batches(g, 2, 85))
    EXPECT_LE(plan_vs_reference(g, in, &session), kFloatRelativeTolerance);

  Graph m("gate");
  GraphBuilder b(m, seeded_generator(1));
  const std::string x = b.input("x", at::kFloat, {Dim(), Dim(), Dim(), Dim()});
  const std::string s = b.input("s", at::kFloat, {Dim(), Dim(), Dim(), Dim()});
  b.output(b.mul("m", s, x), at::kFloat, {Dim(), Dim(), Dim(), Dim()});
  InferenceSession plan(m);
  ASSERT_EQ(count(plan.graph(), "PlanChannelMul"), 1);
  at::manual_seed(13);
  at::NoGradGuard no_grad;
  const at::Tensor x0 = at::randn({2, 6, 5, 3});
  for (const at::Tensor& xi : {x0, x0.contiguous(at::MemoryFormat::ChannelsLast),
                               x0.transpose(2, 3)}) {  // NCHW, NHWC, neither: ATen's
    for (const std::vector<int64_t>& gs : std::vector<std::vector<int64_t>>{
             {2, 6, 1, 1}, {1, 6, 1, 1}, {1, 1, 1, xi.size(3)}, {2, 6, xi.size(2), xi.size(3)}}) {
      const at::Tensor gate = at::rand(gs);
      const at::Tensor want = at::mul(gate, xi);
      const at::Tensor got = plan.run({xi, gate}, RunOptions{})[0];
      EXPECT_TRUE(at::equal(got, want)) << gs;
      const at::Tensor kept = got.clone();
      plan.run({at::randn(xi.sizes()), gate}, RunOptions{});
      EXPECT_TRUE(at::equal(got, kept)) << "a held output was overwritten";
    }
  }
}

// In int8 the gate's Mul between quantized values is one QMul and no value is dequantized
// but by a kernel that reads it, against the reference int8 path and the QDQ graph.
TEST(Plan, Int8SqueezeExcitationStaysInt8) {
  const Graph qdq = static_qdq(squeeze_excitation());
  InferenceSession plan(qdq), reference(qdq, SessionOptions{false});
  EXPECT_EQ(count(reference.graph(), "QMul"), 1);
  EXPECT_EQ(count(plan.graph(), "QMul"), 1);
  EXPECT_EQ(count(plan.graph(), "Mul"), 0);
  // The pool reads the uint8 values; the last convolution writes the dequantized output.
  EXPECT_EQ(count(reference.graph(), "DequantizeTensor"), 2);
  EXPECT_EQ(count(plan.graph(), "DequantizeTensor"), 0);
  const double step = output_step(qdq);
  at::NoGradGuard no_grad;
  for (const auto& in : batches(qdq, 3, 86)) {
    const at::Tensor ref = reference.run(in, RunOptions{})[0], got = plan.run(in, RunOptions{})[0];
    EXPECT_LE(max_diff(ref, got), kMaxInt8OutputSteps * step + 1e-6);
    EXPECT_LE(max_diff(run(qdq, in), got), kMaxInt8OutputSteps * step + 1e-6) << "vs QDQ";
  }
}

TEST(Plan, GlobalAveragePoolReadsEitherPlainLayout) {
  Graph g("pool");
  GraphBuilder b(g, seeded_generator(1));
  const std::string x = b.input("x", at::kFloat, {2, 5, 3, 4});
  b.output(b.global_average_pool("pool", x), at::kFloat, {2, 5, 1, 1});
  InferenceSession session(g);
  EXPECT_EQ(count(session.graph(), "PlanGlobalAveragePool"), 1);
  at::manual_seed(6);
  const at::Tensor nchw = at::randn({2, 5, 3, 4});
  EXPECT_LE(plan_vs_reference(g, {nchw}, &session), kFloatRelativeTolerance);
  EXPECT_LE(plan_vs_reference(g, {nchw.contiguous(at::MemoryFormat::ChannelsLast)}, &session),
            kFloatRelativeTolerance);
}

TEST(Plan, WrongInputShapesAreNamedNotCrashes) {
  const Graph g = build_zoo_model("resnet-small", ZooBuildOptions{});
  InferenceSession session(g);
  at::NoGradGuard no_grad;
  try {
    session.run({at::randn({1, 1, 28, 28}).expand({1, 3, 28, 28}).contiguous()}, RunOptions{});
    FAIL() << "three channels into a one-channel model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input"), std::string::npos) << e.what();
  }
  // An empty batch: an empty result, or an error naming the node; never a crash.
  try {
    const at::Tensor y = session.run({at::randn({0, 1, 28, 28})}, RunOptions{})[0];
    EXPECT_EQ(y.size(0), 0);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("node"), std::string::npos) << e.what();
  }
  // The same for the int8 kernels and a transformer.
  {
    const Graph qdq = static_qdq(small_cnn());
    InferenceSession q(qdq);
    EXPECT_EQ(q.run({at::randn({0, 3, 12, 12})}, RunOptions{})[0].size(0), 0);
    const Graph bert = build_zoo_model("bert-small", ZooBuildOptions{});
    InferenceSession t(bert);
    std::vector<at::Tensor> empty(bert.inputs().size(), at::zeros({0, 16}, at::kLong));
    EXPECT_EQ(t.run(empty, RunOptions{})[0].size(0), 0);
  }
  // A token id beyond the embedding table is named, not read out of bounds.
  {
    const Graph bert = build_zoo_model("bert-small", ZooBuildOptions{});
    InferenceSession t(bert);
    std::vector<at::Tensor> in(bert.inputs().size(), at::ones({1, 4}, at::kLong));
    in[0].fill_(1 << 30);
    try {
      t.run(in, RunOptions{});
      FAIL() << "an out-of-range token id";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
    }
  }
  // Two threads: the same numbers as the reference.
  RunOptions two;
  two.threads = 2;
  const std::vector<at::Tensor> in = image(2, 1, 28, 95);
  const at::Tensor ref = run(g, in);
  EXPECT_LE(max_diff(session.run(in, two)[0], ref) / scale_of(ref), kFloatRelativeTolerance);
  // A model whose graph input allows it, but a too-small image for the kernels.
  const Graph c = conv_graph(1, 1, {0, 0, 0, 0}, 1, false, false, false);
  InferenceSession s2(c);
  EXPECT_THROW(s2.run({at::randn({1, 8, 2, 2})}, RunOptions{}), Error);
}
