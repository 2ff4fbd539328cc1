// The float half of the inference plan (edgeforge/lower.h): rewrites float patterns into the
// oneDNN kernels of plan_ops.cpp. Like the int8 pass it matches on constants only (weights,
// batch-norm statistics, scalars of the GELU and attention patterns), so the rewritten graph
// computes the same function up to float rounding; every node it leaves alone runs on the
// reference ATen kernels, and the patterns it could not take are listed with the reason.
//
// Each pattern that starts at an op is that op's plan hook (OpCapabilities::plan, with the op
// under src/ops/); this pass offers every node to its op's hook in the hook's stage, and keeps
// what spans ops: the exact GELU anywhere, merging parallel linear layers, blocked layouts.
//
//   Conv [-> BatchNormalization] [-> Relu | Clip | HardSwish | HardSigmoid | Sigmoid | SiLU]
//                                                                -> DnnlConv (BN folded)
//   Conv [-> BatchNormalization] -> Add(residual) [-> Relu]      -> DnnlConv, sum post-op
//   MatMul(x, W) | Gemm [-> Add bias] [-> Relu | exact GELU] [-> Dropout] [-> Add(residual)]
//                                                                -> DnnlLinear
//   [Div | Mul by a constant ->] [Add(mask) ->] Softmax(last axis) -> DnnlSoftmax
//   LayerNormalization(last axis, constant scale and bias)       -> DnnlLayerNorm
//   MatMul(activation, activation) [-> Transpose]                -> DnnlMatMul
//   DnnlLinears of the same input (query, key, value)            -> one DnnlLinear, split
//   the exact GELU (Div, Erf, Add, Mul, Mul) anywhere else       -> DnnlGelu
//   the tanh GELU (Mul, Mul, Mul, Add, Mul, Tanh, Add, Mul, Mul)   -> DnnlGelu, approximate tanh
//   GlobalAveragePool                                            -> PlanGlobalAveragePool
//   Gather(constant float table, indices) on axis 0 (embeddings) -> PlanGather
//   QConv, QLinear, DynQLinear (from lower_int8)                 -> DnnlQConv, DnnlQLinear,
//                                                                   DnnlDynQLinear
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>
#include <optional>
#include <set>

#include "edgeforge/error.h"
#include "edgeforge/lower.h"
#include "edgeforge/ops.h"
#include "rewrite.h"

namespace edgeforge {
namespace {

class PlanLowering : public rewrite::HookedRewrite<PlanRewriter> {
 public:
  PlanLowering(const Graph& g, LoweringReport& report) : HookedRewrite(g), report_(report) {
    const OpRegistry& registry = OpRegistry::global();
    for (const Node& n : g.nodes()) defs_.push_back(registry.find(n.op_type, n.domain));
  }

  Graph run() {
    const auto& nodes = graph().nodes();
    offer(PlanStage::kLayers);
    // An exact GELU that no linear layer took (after a dequantized int8 layer, say).
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (taken(i)) continue;
      for (const std::string& out : nodes[i].outputs) {
        std::vector<size_t> g;
        if (auto y = exact_gelu(out, &g)) {
          Node fused("DnnlGelu", node(g[0]).name, {out}, {*y});
          place(std::move(fused), g);
        }
      }
    }
    // The tanh GELU anywhere (nn.GELU(approximate="tanh"), GPT-2's gelu_new).
    for (size_t i = 0; i < nodes.size(); ++i) {
      std::vector<size_t> g;
      if (taken(i) || !nodes[i].is("Tanh")) continue;
      if (auto xy = tanh_gelu(i, &g)) {
        Node fused("DnnlGelu", nodes[i].name, {xy->first}, {xy->second});
        fused.set("approximate", std::string("tanh"));
        place(std::move(fused), g);
      }
    }
    offer(PlanStage::kLast);
    merge_parallel_linears();
    mark_blocked_outputs();
    return rebuild();
  }

  std::optional<std::string> residual_add(std::string& tail,
                                          std::vector<size_t>& absorbed) const override {
    auto c = only_consumer(tail);
    if (!c || !node(*c).is("Add") || node(*c).inputs.size() != 2) return std::nullopt;
    const Node& add = node(*c);
    const std::string& other = add.inputs[0] == tail ? add.inputs[1] : add.inputs[0];
    if (constant(other).defined() || other == tail) return std::nullopt;
    absorbed.push_back(*c);
    tail = add.outputs[0];
    return other;
  }
  void place(Node fused, const std::vector<size_t>& absorbed) override {
    fused.domain = kEdgeforgeDomain;
    report_.plan_nodes.push_back(fused.name);
    GraphRewrite::place(std::move(fused), absorbed);
  }
  void fall_back(const Node& n, const std::string& why) override {
    report_.plan_fallback.emplace_back(n.name, why);
  }

 private:
  // Every node no pattern took yet whose op has a plan hook of `stage`, in graph order.
  void offer(PlanStage stage) {
    for (size_t i = 0; i < defs_.size(); ++i) {
      const OpDef* def = defs_[i];
      if (!taken(i) && def != nullptr && def->caps.plan != nullptr &&
          def->caps.plan_stage == stage)
        def->caps.plan(*this, i);
    }
  }

  // The tanh GELU torch.onnx writes, 0.5 * (x * (1 + tanh(k * (x + c * x * x * x)))) with
  // k = sqrt(2 / pi) and c = 0.044715, around Tanh node `t`: its input x and output, and its
  // nodes appended to `nodes`, when every value between is read only inside the pattern.
  std::optional<std::pair<std::string, std::string>> tanh_gelu(size_t t,
                                                               std::vector<size_t>* nodes) const {
    auto near = [&](const std::string& v, double want, double tol) {
      const auto f = scalar(v);
      return f && std::abs(*f - want) <= tol;
    };
    // The other operand of binary node `n` (one of them is `v`), or "".
    auto other = [&](const Node& n, const std::string& v) -> std::string {
      if (n.inputs.size() != 2) return "";
      return n.inputs[0] == v ? n.inputs[1] : n.inputs[1] == v ? n.inputs[0] : "";
    };
    // The producer of `v` when it has type `op` and `v` has no other reader.
    auto made_by = [&](const std::string& v, const char* op) -> std::optional<size_t> {
      const auto p = producer_index(v);
      if (!p || taken(*p) || !node(*p).is(op) || consumers(v).size() != 1 || is_graph_output(v))
        return std::nullopt;
      return p;
    };
    const std::string& u = node(t).inputs[0];
    const auto scale = made_by(u, "Mul");  // k * a
    if (!scale) return std::nullopt;
    const Node& sm = node(*scale);
    std::string a;
    for (const std::string& in : sm.inputs)
      if (!near(in, 0.7978845608, 1e-5)) a = in;
    if (a.empty() || !near(other(sm, a), 0.7978845608, 1e-5)) return std::nullopt;
    const auto add = made_by(a, "Add");  // x + c * cube
    if (!add) return std::nullopt;
    for (const std::string& x : node(*add).inputs) {
      const std::string m = other(node(*add), x);
      const auto cm = made_by(m, "Mul");  // c * cube
      if (!cm) continue;
      std::string cube;
      for (const std::string& in : node(*cm).inputs)
        if (!near(in, 0.044715, 1e-7)) cube = in;
      if (cube.empty() || !near(other(node(*cm), cube), 0.044715, 1e-7)) continue;
      const auto cube_node = made_by(cube, "Mul");  // x * sq
      if (!cube_node) continue;
      const std::string sq = other(node(*cube_node), x);
      const auto sq_node = sq.empty() ? std::nullopt : made_by(sq, "Mul");
      if (!sq_node || node(*sq_node).inputs[0] != x || node(*sq_node).inputs[1] != x) continue;
      // After the Tanh: 1 + t, x * that, 0.5 * that.
      const auto one = only_consumer(node(t).outputs[0]);
      if (!one || !node(*one).is("Add") || !near(other(node(*one), node(t).outputs[0]), 1.0, 0))
        return std::nullopt;
      const auto times_x = only_consumer(node(*one).outputs[0]);
      if (!times_x || !node(*times_x).is("Mul") || other(node(*times_x), node(*one).outputs[0]) != x)
        return std::nullopt;
      const auto half = only_consumer(node(*times_x).outputs[0]);
      if (!half || !node(*half).is("Mul") ||
          !near(other(node(*half), node(*times_x).outputs[0]), 0.5, 0))
        return std::nullopt;
      nodes->insert(nodes->end(),
                    {*sq_node, *cube_node, *cm, *add, *scale, t, *one, *times_x, *half});
      return std::make_pair(x, node(*half).outputs[0]);
    }
    return std::nullopt;
  }

  // Linear layers that read the same value with the same activation and no residual (the
  // query, key and value projections) become one DnnlLinear over their concatenated weights:
  // one larger product is faster than three small ones. It goes where the first of them was.
  void merge_parallel_linears() {
    std::map<std::tuple<std::string, int64_t, bool>, std::vector<size_t>> groups;
    for (auto& [at, n] : replacements()) {
      if (n.op_type != "DnnlLinear" || n.inputs.size() > 3 || n.outputs.size() != 1 ||
          n.attr_int("weight_in_out") != 1)
        continue;
      groups[{n.inputs[0], n.attr_int("activation"), !n.inputs[2].empty()}].push_back(at);
    }
    for (auto& [key, members] : groups) {
      if (members.size() < 2) continue;
      std::vector<at::Tensor> weights, biases;
      std::vector<int64_t> splits;
      Node merged = replacements().at(members[0]);
      merged.outputs.clear();
      for (size_t at : members) {
        const Node& n = replacements().at(at);
        const at::Tensor w = constant(n.inputs[1]);
        weights.push_back(w);
        if (std::get<2>(key)) biases.push_back(constant(n.inputs[2]));
        splits.push_back(w.size(1));
        merged.outputs.push_back(n.outputs[0]);
      }
      if (!std::all_of(weights.begin(), weights.end(),
                       [&](const at::Tensor& w) { return w.size(0) == weights[0].size(0); }))
        continue;
      merged.inputs[1] = add_initializer(merged.name + ".plan_merged_weight", at::cat(weights, 1));
      if (std::get<2>(key))
        merged.inputs[2] = add_initializer(merged.name + ".plan_merged_bias", at::cat(biases, 0));
      merged.set("splits", splits);
      for (size_t at : members) replacements().erase(at);
      replacements()[members[0]] = std::move(merged);
    }
  }

  // A DnnlConv may leave its output in oneDNN's blocked layout when only DnnlConv nodes read it.
  void mark_blocked_outputs() {
    std::map<std::string, std::vector<const Node*>> readers;
    std::vector<Node*> convs;
    for (auto& [at, fused] : replacements()) {
      for (const std::string& in : fused.inputs) readers[in].push_back(&fused);
      if (fused.op_type == "DnnlConv") convs.push_back(&fused);
    }
    for (size_t i = 0; i < graph().nodes().size(); ++i) {
      if (taken(i)) continue;
      for (const std::string& in : node(i).inputs) readers[in].push_back(nullptr);
    }
    for (Node* c : convs) {
      const std::string& out = c->outputs[0];
      if (is_graph_output(out)) continue;
      bool ok = !readers[out].empty();
      for (const Node* r : readers[out])
        ok = ok && r != nullptr && r->op_type == "DnnlConv" &&
             (r->inputs[0] == out || (r->inputs.size() > 3 && r->inputs[3] == out));
      if (ok) c->set("blocked_out", int64_t{1});
    }
  }

  LoweringReport& report_;
  std::vector<const OpDef*> defs_;  // by node index; nullptr for an op the runtime lacks
};

}  // namespace

Graph lower_plan(const Graph& graph, LoweringReport* report) {
  LoweringReport local;
  LoweringReport& r = report != nullptr ? *report : local;
  r.plan_nodes.clear();
  r.plan_fallback.clear();
  return PlanLowering(graph, r).run();
}

}  // namespace edgeforge
