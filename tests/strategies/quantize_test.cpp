// The QDQ writers (edgeforge/quantize.h) and the int8 lowering (edgeforge/lower.h): a lowered
// int8 graph against its fake-quant (QDQ) form, batch-norm folding against the unfolded graph,
// and the patterns that must stay float.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "edgeforge/error.h"
#include "edgeforge/graph_builder.h"
#include "edgeforge/lower.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/quantize.h"
#include "edgeforge/runtime.h"
#include "edgeforge/summary.h"
#include "../runtime/small_models.h"

using namespace edgeforge;
using namespace edgeforge::testing;

namespace {

// The int8 kernels requantize once from exact int32 sums; the QDQ reference rounds a float
// result. Each quantized tensor may land one step apart where a value sits on a rounding edge,
// and steps add up over a few layers: at most this many output steps apart.
constexpr double kMaxOutputSteps = 3.0;
// Dynamic quantization: LibTorch picks the activation zero point by its own nudging rule,
// ONNX rounds -min / scale, so inputs may differ by a step; relative to the output's range.
constexpr double kDynamicRelativeTolerance = 0.02;

}  // namespace

TEST(FoldBatchNorm, MatchesTheUnfoldedGraph) {
  const Graph g = small_cnn();
  Graph folded = g;
  EXPECT_EQ(fold_batch_norm(folded), 3);
  for (const Node& n : folded.nodes()) EXPECT_NE(n.op_type, "BatchNormalization");
  const auto in = batches(g, 1, 2)[0];
  EXPECT_TRUE(at::allclose(run(g, in), run(folded, in), 1e-4, 1e-5));
  // The original's weights are untouched.
  EXPECT_TRUE(g.has_initializer("stem.bn.running_var"));
}

TEST(FindQuantUnits, FusesReluAndBiasAddIntoTheirUnit) {
  Graph g = small_cnn();
  fold_batch_norm(g);
  const auto units = find_quant_units(g);
  ASSERT_EQ(units.size(), 4u);  // stem, conv1, conv2, fc
  EXPECT_EQ(units[0].output, "stem.relu.out");
  EXPECT_EQ(units[2].output, "b.bn2.out");  // conv2 feeds the residual Add: no Relu to fuse
  const auto mlp = find_quant_units(small_mlp());
  ASSERT_EQ(mlp.size(), 3u);
  EXPECT_TRUE(mlp[0].weight_in_out);
  const Graph m = small_mlp();
  ASSERT_NE(m.producer(mlp[0].output), nullptr);
  EXPECT_EQ(m.producer(mlp[0].output)->op_type, "Add");  // after the bias
}

TEST(Lowering, StaticCnnMatchesItsQdqFormAndRunsEveryConvInInt8) {
  for (bool per_channel : {true, false}) {
    const Graph qdq = static_qdq(small_cnn(), per_channel);
    LoweringReport report;
    const Graph lowered = lower_int8(qdq, &report);
    EXPECT_EQ(report.int8_nodes.size(), 4u);
    EXPECT_TRUE(report.kept_float.empty());
    int qconv = 0;
    for (const Node& n : lowered.nodes()) {
      EXPECT_NE(n.op_type, "Conv");
      qconv += n.op_type == "QConv";
    }
    EXPECT_EQ(qconv, 3);
    const double step = output_step(qdq);
    for (const auto& in : batches(qdq, 3, 21)) {
      const at::Tensor ref = run(qdq, in), got = run(lowered, in);
      ASSERT_EQ(ref.sizes(), got.sizes());
      EXPECT_LE((ref - got).abs().max().item<double>(), kMaxOutputSteps * step + 1e-6)
          << "per_channel " << per_channel;
    }
  }
}

TEST(Lowering, StaticMatMulsWithBiasMatchTheirQdqForm) {
  const Graph qdq = static_qdq(small_mlp());
  LoweringReport report;
  const Graph lowered = lower_int8(qdq, &report);
  EXPECT_EQ(report.int8_nodes.size(), 3u);
  const double step = output_step(qdq);
  for (const auto& in : batches(qdq, 3, 22)) {
    const at::Tensor ref = run(qdq, in), got = run(lowered, in);
    EXPECT_LE((ref - got).abs().max().item<double>(), kMaxOutputSteps * step + 1e-6);
  }
  // And the quantized model is close to the float one: int8 is not a different model.
  const Graph g = small_mlp();
  const auto in = batches(g, 1, 23)[0];
  const at::Tensor f = run(g, in), q = run(lowered, in);
  EXPECT_LE((f - q).abs().max().item<double>(), 0.1 * f.abs().max().item<double>());
}

TEST(Lowering, DynamicMatchesItsQdqForm) {
  Graph g = small_mlp();
  write_dynamic(g, find_quant_units(g, true), QdqOptions{});
  LoweringReport report;
  const Graph lowered = lower_int8(g, &report);
  EXPECT_EQ(report.dynamic_nodes.size(), 3u);
  for (const auto& in : batches(g, 3, 24)) {
    const at::Tensor ref = run(g, in), got = run(lowered, in);
    EXPECT_LE((ref - got).abs().max().item<double>(),
              kDynamicRelativeTolerance * ref.abs().max().item<double>());
  }
}

TEST(Lowering, SessionRunsTheQdqFileAfterASaveAndReload) {
  const Graph qdq = static_qdq(small_cnn());
  const Graph reloaded = graph_from_onnx_bytes(graph_to_onnx_bytes(qdq), "qdq");  // checker runs
  InferenceSession session(reloaded);
  EXPECT_EQ(session.lowering().int8_nodes.size(), 4u);
  const auto in = batches(qdq, 1, 25)[0];
  const at::Tensor a = session.run(in, RunOptions{})[0];
  EXPECT_TRUE(at::equal(a, session.run(in, RunOptions{})[0]));  // prepacked once, reusable
  const ModelSummary s = summarize(reloaded);
  EXPECT_EQ(s.int8_macs, s.macs);
  EXPECT_GT(s.int8_parameters, 0);
}

TEST(Lowering, PatternsWithoutAnInt8KernelStayFloatAndSaySo) {
  // A weight with non-zero zero points: the ONEDNN kernels take symmetric weights only.
  Graph qdq = static_qdq(small_mlp());
  for (Node& n : qdq.nodes())
    if (n.op_type == "DequantizeLinear" && n.name == "head.weight_dequantize") {
      qdq.add_initializer("nonzero_zp", at::ones({3}, at::kChar));
      n.inputs.push_back("nonzero_zp");
    }
  LoweringReport report;
  const Graph lowered = lower_int8(qdq, &report);
  EXPECT_EQ(report.int8_nodes.size(), 2u);
  ASSERT_EQ(report.kept_float.size(), 1u);
  EXPECT_EQ(report.kept_float[0].first, "head");
  EXPECT_NE(report.kept_float[0].second.find("zero point"), std::string::npos);
  const auto in = batches(qdq, 1, 26)[0];
  EXPECT_EQ(run(lowered, in).sizes(), run(qdq, in).sizes());
  // A float graph is left as it is.
  const Graph g = small_cnn();
  LoweringReport none;
  EXPECT_EQ(lower_int8(g, &none).nodes().size(), g.nodes().size());
  EXPECT_FALSE(none.quantized());
}

TEST(Quantize, NoQuantizableNodeIsAnError) {
  Graph g("relu");
  g.add_input({"x", at::kFloat, {Dim(2)}});
  g.add_node(Node("Relu", "r", {"x"}, {"y"}));
  g.add_output({"y", at::kFloat, {Dim(2)}});
  EXPECT_TRUE(find_quant_units(g).empty());
  try {
    write_qdq(g, {}, {}, QdqOptions{});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no quantizable node"), std::string::npos);
  }
}

TEST(Quantize, CalibrationDataOfTheWrongShapeIsNamed) {
  Graph g = small_cnn();
  const auto units = find_quant_units(g);
  std::vector<std::vector<at::Tensor>> wrong = {{at::randn({2, 1, 12, 12})}};
  try {
    calibrate(g, activation_points(units), wrong, CalibrationOptions{}, 1);
    FAIL();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("calibration data"), std::string::npos) << m;
    EXPECT_NE(m.find("input"), std::string::npos) << m;
  }
}

TEST(Quantize, InternalOpsCannotComeFromAFile) {
  // A file naming edgeforge's internal domain: written under a custom domain of the same
  // length (the checker lets custom domains through), then renamed in the bytes.
  Graph g("bad");
  g.add_input({"x", at::kFloat, {Dim(2)}});
  Node n("DequantizeTensor", "dq", {"x"}, {"y"});
  n.domain = "ai.edgeforgX";
  g.add_node(n);
  g.add_output({"y", at::kFloat, {Dim(2)}});
  std::string bytes = graph_to_onnx_bytes(g);
  ASSERT_EQ(std::string(kEdgeforgeDomain).size(), n.domain.size());
  for (size_t at = bytes.find(n.domain); at != std::string::npos; at = bytes.find(n.domain, at))
    bytes.replace(at, n.domain.size(), kEdgeforgeDomain);
  try {
    graph_from_onnx_bytes(bytes, "bad.onnx");
    FAIL() << "a file with internal ops was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("internal domain"), std::string::npos) << e.what();
  }
}

TEST(Int8Loops, MaxPoolOnUint8MatchesTheQdqGraphExactly) {
  // x -> Q -> DQ -> MaxPool [-> Relu] -> Q -> DQ: lowered to one QMaxPool (pool on uint8, then
  // a table of DQ -> [Relu] -> Q), bit for bit the QDQ graph; with other output parameters
  // and with the input's own (the table is the identity). Asymmetric pads stay float.
  struct Case {
    float so;
    int64_t zo;
    bool relu, ceil_mode;
    std::vector<int64_t> pads;
  };
  for (const Case& c : {Case{0.031f, 3, false, false, {1, 1, 1, 1}},
                        Case{0.02f, 128, false, true, {0, 0, 0, 0}},
                        Case{0.017f, 90, true, false, {1, 0, 1, 0}},
                        Case{0.02f, 128, false, false, {0, 0, 1, 1}}}) {
    Graph g("qpool");
    g.add_input({"x", at::kFloat, {Dim(2), Dim(3), Dim(9), Dim(8)}});
    g.add_initializer("sx", at::full({}, 0.02f));
    g.add_initializer("zx", at::full({}, 128, at::kByte));
    g.add_initializer("so", at::full({}, c.so));
    g.add_initializer("zo", at::full({}, c.zo, at::kByte));
    g.add_node(Node("QuantizeLinear", "qx", {"x", "sx", "zx"}, {"x.q"}));
    g.add_node(Node("DequantizeLinear", "dqx", {"x.q", "sx", "zx"}, {"x.dq"}));
    g.add_node(Node("MaxPool", "pool", {"x.dq"}, {"p"})
                   .set("kernel_shape", std::vector<int64_t>{3, 3})
                   .set("strides", std::vector<int64_t>{2, 2})
                   .set("pads", c.pads)
                   .set("ceil_mode", int64_t{c.ceil_mode}));
    std::string tail = "p";
    if (c.relu) {
      g.add_node(Node("Relu", "relu", {"p"}, {"r"}));
      tail = "r";
    }
    g.add_node(Node("QuantizeLinear", "qo", {tail, "so", "zo"}, {"o.q"}));
    g.add_node(Node("DequantizeLinear", "dqo", {"o.q", "so", "zo"}, {"out"}));
    g.add_output({"out", at::kFloat, {}, false});
    const Graph lowered = lower_int8(g);
    int pools = 0, float_pools = 0;
    for (const Node& n : lowered.nodes()) {
      pools += n.op_type == "QMaxPool";
      float_pools += n.op_type == "MaxPool";
    }
    const bool symmetric = c.pads[0] == c.pads[2] && c.pads[1] == c.pads[3];
    EXPECT_EQ(pools, symmetric ? 1 : 0);
    EXPECT_EQ(float_pools, symmetric ? 0 : 1);
    at::manual_seed(9);
    const at::Tensor x = at::randn({2, 3, 9, 8}) * 2;
    for (auto layout : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
      Executor ref(g), low(lowered);
      at::NoGradGuard no_grad;
      const at::Tensor a = ref.run({x}, RunOptions{})[0];
      const at::Tensor b = low.run({x.contiguous(layout)}, RunOptions{})[0];
      EXPECT_TRUE(at::equal(a, b.contiguous())) << (a - b).abs().max().item<double>();
    }
  }
}

TEST(Int8Loops, MulOfQuantizedValuesMatchesTheQdqGraphExactly) {
  // DQ(a) * DQ(b) [-> Relu] -> Q -> DQ: one QMul, bit for bit the QDQ graph, for operands of
  // one shape, a per-channel gate on either side, and a broadcast of another kind.
  struct Case {
    std::vector<int64_t> a, b;
    bool relu;
  };
  for (const Case& c : {Case{{2, 3, 5, 7}, {2, 3, 5, 7}, false}, Case{{2, 3, 5, 7}, {2, 3, 1, 1}, true},
                        Case{{1, 3, 1, 1}, {2, 3, 5, 7}, false}, Case{{2, 3, 5, 7}, {1, 1, 5, 7}, false}}) {
    Graph g("qmul");
    g.add_input({"a", at::kFloat, {Dim(), Dim(), Dim(), Dim()}});
    g.add_input({"b", at::kFloat, {Dim(), Dim(), Dim(), Dim()}});
    g.add_initializer("sa", at::full({}, 0.02f));
    g.add_initializer("za", at::full({}, 128, at::kByte));
    g.add_initializer("sb", at::full({}, 1.f / 255));
    g.add_initializer("zb", at::full({}, 0, at::kByte));
    g.add_initializer("so", at::full({}, 0.013f));
    g.add_initializer("zo", at::full({}, 120, at::kByte));
    g.add_node(Node("QuantizeLinear", "qa", {"a", "sa", "za"}, {"a.q"}));
    g.add_node(Node("DequantizeLinear", "dqa", {"a.q", "sa", "za"}, {"a.dq"}));
    g.add_node(Node("QuantizeLinear", "qb", {"b", "sb", "zb"}, {"b.q"}));
    g.add_node(Node("DequantizeLinear", "dqb", {"b.q", "sb", "zb"}, {"b.dq"}));
    g.add_node(Node("Mul", "mul", {"a.dq", "b.dq"}, {"m"}));
    std::string tail = "m";
    if (c.relu) {
      g.add_node(Node("Relu", "relu", {"m"}, {"r"}));
      tail = "r";
    }
    g.add_node(Node("QuantizeLinear", "qo", {tail, "so", "zo"}, {"o.q"}));
    g.add_node(Node("DequantizeLinear", "dqo", {"o.q", "so", "zo"}, {"out"}));
    g.add_output({"out", at::kFloat, {}, false});
    const Graph lowered = lower_int8(g);
    int muls = 0;
    for (const Node& n : lowered.nodes()) muls += n.op_type == "QMul";
    EXPECT_EQ(muls, 1);
    at::manual_seed(10);
    const at::Tensor a = at::randn(c.a) * 2, b = at::rand(c.b);
    for (auto layout : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
      Executor ref(g), low(lowered);
      at::NoGradGuard no_grad;
      const at::Tensor want = ref.run({a, b}, RunOptions{})[0];
      const at::Tensor got = low.run({a.contiguous(layout), b.contiguous(layout)}, RunOptions{})[0];
      EXPECT_TRUE(at::equal(want, got.contiguous())) << c.a << " * " << c.b;
    }
  }
}

TEST(Int8Loops, QuantizeAndResidualAddMatchTheOnnxArithmeticExactly) {
  // x -> Q -> DQ -> + <- DQ <- Q <- y, then Relu -> Q -> DQ: lowered to QuantizeTensor, QAdd
  // and DequantizeTensor, which use ONNX's float32 arithmetic, so they agree bit for bit.
  Graph g("qadd");
  for (const char* in : {"x", "y"}) g.add_input({in, at::kFloat, {Dim(2), Dim(3), Dim(5), Dim(7)}});
  auto scalar = [&](const std::string& name, float v, bool zp) {
    g.add_initializer(name, zp ? at::full({}, static_cast<int64_t>(v), at::kByte) : at::full({}, v));
  };
  scalar("sx", 0.02f, false), scalar("zx", 128, true), scalar("sy", 0.013f, false), scalar("zy", 77, true);
  scalar("so", 0.031f, false), scalar("zo", 3, true);
  g.add_node(Node("QuantizeLinear", "qx", {"x", "sx", "zx"}, {"x.q"}));
  g.add_node(Node("DequantizeLinear", "dqx", {"x.q", "sx", "zx"}, {"x.dq"}));
  g.add_node(Node("QuantizeLinear", "qy", {"y", "sy", "zy"}, {"y.q"}));
  g.add_node(Node("DequantizeLinear", "dqy", {"y.q", "sy", "zy"}, {"y.dq"}));
  g.add_node(Node("Add", "add", {"x.dq", "y.dq"}, {"sum"}));
  g.add_node(Node("Relu", "relu", {"sum"}, {"r"}));
  g.add_node(Node("QuantizeLinear", "qo", {"r", "so", "zo"}, {"o.q"}));
  g.add_node(Node("DequantizeLinear", "dqo", {"o.q", "so", "zo"}, {"out"}));
  g.add_output({"out", at::kFloat, {Dim(2), Dim(3), Dim(5), Dim(7)}});
  LoweringReport report;
  const Graph lowered = lower_int8(g, &report);
  EXPECT_EQ(report.int8_adds, 1);
  at::manual_seed(8);
  // Values on and around rounding edges (k + 0.5 steps) as well as random ones.
  at::Tensor x = (at::randint(-300, 300, {2, 3, 5, 7}).to(at::kFloat) * 0.5f) * 0.02f;
  at::Tensor y = at::randn({2, 3, 5, 7}) * 2;
  for (auto layout : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
    Executor ref(g), low(lowered);
    at::NoGradGuard no_grad;
    const at::Tensor a = ref.run({x, y}, RunOptions{})[0];
    const at::Tensor b = low.run({x.contiguous(layout), y.contiguous(layout)}, RunOptions{})[0];
    EXPECT_TRUE(at::equal(a, b.contiguous())) << (a - b).abs().max().item<double>();
  }
}
