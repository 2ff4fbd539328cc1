// The capabilities on the op registry (OpCapabilities, edgeforge/ops.h): the table states what
// the passes used to list themselves (MACs, quantization, structured pruning, plan and int8
// lowering), and the passes read nothing but the table: an op registered here with MatMul's
// capabilities under another name is counted, quantized, pruned and lowered like MatMul.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "edgeforge/lower.h"
#include "edgeforge/ops.h"
#include "edgeforge/prune.h"
#include "edgeforge/quantize.h"
#include "edgeforge/runtime.h"
#include "edgeforge/summary.h"
#include "../runtime/small_models.h"

using namespace edgeforge;
using namespace edgeforge::testing;

namespace {

const OpCapabilities& caps(const std::string& op_type, const std::string& domain = "") {
  const OpDef* def = OpRegistry::global().find(op_type, domain);
  EXPECT_NE(def, nullptr) << op_type;
  static const OpCapabilities kNone;
  return def != nullptr ? def->caps : kNone;
}

using ShapeMap = std::map<std::string, std::vector<int64_t>>;

// summary.cpp's MAC count before the table, by op type.
int64_t product(const std::vector<int64_t>& dims, size_t from = 0) {
  int64_t p = 1;
  for (size_t i = from; i < dims.size(); ++i) p *= dims[i];
  return p;
}
int64_t previous_macs(const ShapeMap& shapes, const Node& n) {
  auto shape = [&](const std::string& v) -> const std::vector<int64_t>* {
    auto it = shapes.find(v);
    return it == shapes.end() ? nullptr : &it->second;
  };
  if (n.op_type == "Conv") {
    const auto* w = shape(n.inputs.at(1));
    const auto* y = shape(n.outputs.at(0));
    if (w == nullptr || y == nullptr || w->size() < 3) return 0;
    return product(*y) * product(*w, 1);
  }
  if (n.op_type == "Gemm" || n.op_type == "MatMul") {
    const auto* a = shape(n.inputs.at(0));
    const auto* y = shape(n.outputs.at(0));
    if (a == nullptr || y == nullptr || a->empty()) return 0;
    const bool trans_a = n.op_type == "Gemm" && n.attr_int("transA", 0) != 0;
    const int64_t k = a->size() == 1 ? (*a)[0] : (trans_a ? a->front() : a->back());
    return product(*y) * k;
  }
  return 0;
}

// "EfTestDense": MatMul's kernel and capabilities under a name no pass knows. Registered once
// per process, after static initialisation.
void register_test_dense() {
  static const bool registered = [] {
    OpDef def = *OpRegistry::global().find("MatMul");
    def.op_type = "EfTestDense";
    OpRegistry::global().add(std::move(def));
    return true;
  }();
  (void)registered;
}

// x [N, 8] -> d1 (EfTestDense, [8, 16]) -> Relu -> d2 (EfTestDense, [16, 4]) -> y [N, 4].
Graph test_dense_mlp() {
  register_test_dense();
  Graph g("dense");
  at::manual_seed(7);
  g.add_input({"x", at::kFloat, {Dim::symbol("N"), Dim(8)}});
  g.add_initializer("w1", at::randn({8, 16}) * 0.3);
  g.add_initializer("w2", at::randn({16, 4}) * 0.3);
  g.add_node(Node("EfTestDense", "d1", {"x", "w1"}, {"h"}));
  g.add_node(Node("Relu", "relu", {"h"}, {"r"}));
  g.add_node(Node("EfTestDense", "d2", {"r", "w2"}, {"y"}));
  g.add_output({"y", at::kFloat, {Dim::symbol("N"), Dim(4)}});
  g.validate();
  return g;
}

}  // namespace

TEST(OpCapabilities, EveryQuantizableOpHasAnInt8KernelAPlanAndMacs) {
  std::set<std::string> quantizable, dynamic;
  for (const std::string& op : OpRegistry::global().op_types()) {
    const OpCapabilities& c = caps(op);
    if (c.quant.weight_axis == nullptr) continue;
    quantizable.insert(op);
    if (c.quant.dynamic) dynamic.insert(op);
    EXPECT_NE(c.int8_layer, nullptr) << op << " quantizes without an int8 lowering";
    EXPECT_NE(c.plan, nullptr) << op << " quantizes without a float plan";
    EXPECT_NE(c.macs, nullptr) << op << " quantizes without a MAC count";
    EXPECT_EQ(c.units.role, UnitRole::kWeighted) << op;
    EXPECT_NE(c.units.weighted, nullptr) << op;
  }
  for (const char* op : {"Conv", "Gemm", "MatMul"}) EXPECT_TRUE(quantizable.count(op)) << op;
  EXPECT_FALSE(dynamic.count("Conv"));
  for (const char* op : {"Gemm", "MatMul"}) EXPECT_TRUE(dynamic.count(op)) << op;
  EXPECT_TRUE(caps("MatMul").quant.bias_add);
  EXPECT_FALSE(caps("Gemm").quant.bias_add);
  // The kernels the int8 hooks emit, each with its plan kernel in the first sweep, before the
  // GELU pass (a dequantized GELU joins its int8 layer).
  for (const char* op : {"QConv", "QLinear", "DynQLinear"}) {
    const OpCapabilities& c = caps(op, kEdgeforgeDomain);
    EXPECT_NE(c.plan, nullptr) << op;
    EXPECT_EQ(c.plan_stage, PlanStage::kLayers) << op;
    EXPECT_NE(OpRegistry::global().find(std::string("Dnnl") + op, kEdgeforgeDomain), nullptr) << op;
  }
  EXPECT_NE(OpRegistry::global().find("QAdd", kEdgeforgeDomain), nullptr);
  EXPECT_NE(caps("Add").int8_pattern, nullptr);
}

TEST(OpCapabilities, PlanHooksAndTheirStages) {
  for (const char* op : {"Conv", "Gemm", "MatMul", "LayerNormalization", "GlobalAveragePool",
                         "Gather"}) {
    EXPECT_NE(caps(op).plan, nullptr) << op;
    EXPECT_EQ(caps(op).plan_stage, PlanStage::kLayers) << op;
  }
  // Softmax takes back its scale and mask producers: only once every other pattern is placed.
  EXPECT_NE(caps("Softmax").plan, nullptr);
  EXPECT_EQ(caps("Softmax").plan_stage, PlanStage::kLast);
  for (const char* op : {"Relu", "Add", "LogSoftmax", "BatchNormalization", "Reshape"})
    EXPECT_EQ(caps(op).plan, nullptr) << op;
}

TEST(OpCapabilities, MacsOfConvGemmAndMatMulAreThePreviousFormulas) {
  const std::vector<int64_t> x{1, 4, 6, 6}, w{8, 2, 3, 3}, y{1, 8, 6, 6};
  EXPECT_EQ(caps("Conv").macs(Node("Conv", "c", {"x", "w"}, {"y"}), {&x, &w}, {&y}),
            8 * 6 * 6 * 2 * 3 * 3);
  EXPECT_EQ(caps("Conv").macs(Node("Conv", "c", {"x", "w"}, {"y"}), {&x, nullptr}, {&y}), 0);
  const std::vector<int64_t> a{16, 4}, b{16, 10}, out{4, 10};
  Node gemm("Gemm", "g", {"a", "b"}, {"out"});
  gemm.set("transA", int64_t{1});
  EXPECT_EQ(caps("Gemm").macs(gemm, {&a, &b}, {&out}), 4 * 10 * 16);  // K is A's first axis
  const std::vector<int64_t> a3{2, 3, 7}, w2{7, 5}, y3{2, 3, 5}, a1{7}, y1{5};
  const Node mm("MatMul", "m", {"a", "w"}, {"y"});
  EXPECT_EQ(caps("MatMul").macs(mm, {&a3, &w2}, {&y3}), 2 * 3 * 5 * 7);
  EXPECT_EQ(caps("MatMul").macs(mm, {&a1, &w2}, {&y1}), 5 * 7);
  EXPECT_EQ(caps("MatMul").macs(mm, {&a3, &w2}, {nullptr}), 0);
  for (const char* op : {"Relu", "Add", "BatchNormalization", "Softmax"})
    EXPECT_EQ(caps(op).macs, nullptr) << op;

  // edgeforge info on graphs with a grouped Conv, Gemm, and MatMuls on [N, T, 16]: the same
  // counts, op by op, as before the table.
  for (const Graph& g : {small_cnn(), small_mlp()}) {
    ShapeMap shapes;  // as summarize finds them: initializers, then one run on zeros
    for (const auto& [name, t] : g.initializers()) shapes[name] = t.sizes().vec();
    for (const auto& [name, v] : sample_values(g, 128)) shapes[name] = v.shape;
    std::map<std::string, int64_t> expected;
    int64_t total = 0;
    for (const Node& n : g.nodes()) {
      const int64_t m = previous_macs(shapes, n);
      if (m > 0) expected[n.op_type] += m;
      total += m;
    }
    const ModelSummary s = summarize(g, 128);
    EXPECT_GT(total, 0) << g.name();
    EXPECT_EQ(s.macs, total) << g.name();
    EXPECT_EQ(s.macs_by_op, expected) << g.name();
  }
}

TEST(OpCapabilities, PruningRolesAreTheOnesTheUnitAnalysisKnew) {
  for (const char* op : {"Conv", "Gemm", "MatMul"}) {
    EXPECT_EQ(caps(op).units.role, UnitRole::kWeighted) << op;
  }
  EXPECT_EQ(caps("BatchNormalization").units.role, UnitRole::kNorm);
  EXPECT_EQ(caps("Add").units.role, UnitRole::kAdd);
  EXPECT_EQ(caps("Sub").units.role, UnitRole::kSub);
  EXPECT_EQ(caps("Mul").units.role, UnitRole::kMul);
  EXPECT_EQ(caps("Div").units.role, UnitRole::kDiv);
  for (const char* op : {"Relu", "LeakyRelu", "HardSwish", "Tanh", "Erf", "Neg", "Identity",
                         "Dropout", "AveragePool", "MaxPool", "Clip"}) {
    EXPECT_EQ(caps(op).units.role, UnitRole::kPerUnit) << op;
    EXPECT_TRUE(caps(op).units.keeps_zero) << op;
  }
  for (const char* op : {"Sigmoid", "HardSigmoid"}) {
    EXPECT_EQ(caps(op).units.role, UnitRole::kPerUnit) << op;
    EXPECT_FALSE(caps(op).units.keeps_zero) << op;  // sigmoid(0) = 0.5
  }
  EXPECT_EQ(caps("GlobalAveragePool").units.role, UnitRole::kGlobalPool);
  EXPECT_EQ(caps("Flatten").units.role, UnitRole::kFlatten);
  for (const char* op : {"Reshape", "Transpose", "Softmax", "Exp", "Concat", "Gather"})
    EXPECT_EQ(caps(op).units.role, UnitRole::kBlocks) << op;

  // Conv: [out, in / group, kh, kw] on channels; Gemm with transB: [out, in] on the last axis.
  Node conv("Conv", "c", {"x", "w", "b"}, {"y"});
  conv.set("group", int64_t{4});
  const std::optional<WeightedUnits> c = caps("Conv").units.weighted(conv);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->rank, 4);
  EXPECT_EQ(c->in_axis, 1);
  EXPECT_EQ(c->out_axis, 0);
  EXPECT_TRUE(c->channels);
  EXPECT_EQ(c->group, 4);
  EXPECT_EQ(c->bias, "b");
  Node gemm("Gemm", "g", {"x", "w"}, {"y"});
  gemm.set("transB", int64_t{1});
  const std::optional<WeightedUnits> g = caps("Gemm").units.weighted(gemm);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->in_axis, 1);
  EXPECT_EQ(g->out_axis, 0);
  EXPECT_FALSE(g->channels);
  gemm.set("transA", int64_t{1});
  EXPECT_FALSE(caps("Gemm").units.weighted(gemm));

  // Clip is per unit only with bounds around 0; Flatten only from axis 1.
  Graph graph("bounds");
  graph.add_initializer("lo", at::full({}, -1.0f, at::kFloat));
  graph.add_initializer("hi", at::full({}, 6.0f, at::kFloat));
  graph.add_initializer("one", at::full({}, 1.0f, at::kFloat));
  EXPECT_TRUE(caps("Clip").units.holds(Node("Clip", "c", {"x", "lo", "hi"}, {"y"}), graph));
  EXPECT_FALSE(caps("Clip").units.holds(Node("Clip", "c", {"x", "one", "hi"}, {"y"}), graph));
  EXPECT_FALSE(caps("Clip").units.holds(Node("Clip", "c", {"x", "lo", "r"}, {"y"}), graph));
  Node flatten("Flatten", "f", {"x"}, {"y"});
  EXPECT_TRUE(caps("Flatten").units.holds(flatten, graph));
  flatten.set("axis", int64_t{2});
  EXPECT_FALSE(caps("Flatten").units.holds(flatten, graph));
}

TEST(OpCapabilities, AnOpIsCountedQuantizedPrunedAndLoweredFromItsRegistryEntryAlone) {
  const Graph g = test_dense_mlp();

  const ModelSummary s = summarize(g);
  EXPECT_EQ(s.macs_by_op.at("EfTestDense"), 8 * 16 + 16 * 4);

  const std::vector<QuantUnit> units = find_quant_units(g);
  ASSERT_EQ(units.size(), 2u);
  EXPECT_EQ(units[0].node, "d1");
  EXPECT_TRUE(units[0].weight_in_out);
  EXPECT_EQ(units[0].output, "r");  // the Relu joins the unit
  EXPECT_EQ(find_quant_units(g, /*linear_only=*/true).size(), 2u);

  const std::vector<PrunableDimension> dims = prunable_dimensions(g);
  ASSERT_EQ(dims.size(), 1u);
  EXPECT_EQ(dims[0].units, 16);
  EXPECT_EQ(dims[0].producers, std::vector<std::string>{"d1"});
  EXPECT_EQ(dims[0].consumers, std::vector<std::string>{"d2"});

  // The float plan: two DnnlLinears, the Relu fused into the first.
  const std::vector<at::Tensor> in = batches(g, 1, 3)[0];
  InferenceSession planned(g);
  EXPECT_EQ(planned.lowering().plan_nodes, (std::vector<std::string>{"d1", "d2"}));
  EXPECT_TRUE(planned.lowering().plan_fallback.empty());
  at::NoGradGuard no_grad;
  const at::Tensor expected = run(g, in);
  EXPECT_TRUE(at::allclose(planned.run(in, RunOptions{})[0], expected, 1e-4, 1e-5));

  // Static int8: both layers on int8 kernels, then on the plan's.
  LoweringReport report;
  const Graph lowered = lower_int8(static_qdq(g), &report);
  EXPECT_EQ(report.int8_nodes, (std::vector<std::string>{"d1", "d2"}));
  EXPECT_TRUE(report.kept_float.empty());
  int64_t qlinear = 0;
  for (const Node& n : lowered.nodes()) qlinear += n.op_type == "QLinear";
  EXPECT_EQ(qlinear, 2);
  InferenceSession int8(static_qdq(g));
  EXPECT_EQ(int8.lowering().int8_nodes.size(), 2u);
  std::set<std::string> kernels;
  for (const Node& n : int8.graph().nodes()) kernels.insert(n.op_type);
  EXPECT_TRUE(kernels.count("DnnlQLinear"));
}
