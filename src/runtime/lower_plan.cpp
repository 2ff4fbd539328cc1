// The float half of the inference plan (edgeforge/lower.h): rewrites float patterns into the
// oneDNN kernels of plan_ops.cpp. Like the int8 pass it matches on constants only (weights,
// batch-norm statistics, scalars of the GELU and attention patterns), so the rewritten graph
// computes the same function up to float rounding; every node it leaves alone runs on the
// reference ATen kernels, and the patterns it could not take are listed with the reason.
//
//   Conv [-> BatchNormalization] [-> Relu]                       -> DnnlConv (BN folded)
//   Conv [-> BatchNormalization] -> Add(residual) [-> Relu]      -> DnnlConv, sum post-op
//   MatMul(x, W) | Gemm [-> Add bias] [-> Relu | exact GELU] [-> Dropout] [-> Add(residual)]
//                                                                -> DnnlLinear
//   [Div | Mul by a constant ->] [Add(mask) ->] Softmax(last axis) -> DnnlSoftmax
//   LayerNormalization(last axis, constant scale and bias)       -> DnnlLayerNorm
//   MatMul(activation, activation) [-> Transpose]                -> DnnlMatMul
//   DnnlLinears of the same input (query, key, value)            -> one DnnlLinear, split
//   the exact GELU (Div, Erf, Add, Mul, Mul) anywhere else       -> DnnlGelu
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

class PlanLowering : rewrite::GraphRewrite {
 public:
  PlanLowering(const Graph& g, LoweringReport& report) : GraphRewrite(g), report_(report) {}

  Graph run() {
    const auto& nodes = graph().nodes();
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (taken(i)) continue;
      const Node& n = nodes[i];
      if (n.is("Conv")) match_conv(i);
      else if (n.is("MatMul") || n.is("Gemm")) match_linear(i);
      else if (n.is("LayerNormalization")) match_layer_norm(i);
      else if (n.is("GlobalAveragePool"))
        place(Node("PlanGlobalAveragePool", n.name, {n.inputs[0]}, {n.outputs[0]}), {i});
      else if (n.is("Gather") && n.attr_int("axis", 0) == 0 && n.inputs.size() == 2 &&
               constant(n.inputs[0]).defined() &&
               constant(n.inputs[0]).scalar_type() == at::kFloat && constant(n.inputs[0]).dim() >= 1)
        place(Node("PlanGather", n.name, {n.inputs[0], n.inputs[1]}, {n.outputs[0]}), {i});
    }
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
    // The int8 layers of lower_int8 move to the plan's direct oneDNN kernels.
    for (size_t i = 0; i < nodes.size(); ++i) {
      const Node& n = nodes[i];
      if (n.domain != kEdgeforgeDomain ||
          !(n.op_type == "QConv" || n.op_type == "QLinear" || n.op_type == "DynQLinear"))
        continue;
      Node fused = n;
      fused.op_type = "Dnnl" + n.op_type;  // DnnlQConv, DnnlQLinear, DnnlDynQLinear
      place(std::move(fused), {i});
    }
    // Softmax last: its scale and mask producers must not have been taken by another pattern.
    for (size_t i = 0; i < nodes.size(); ++i)
      if (!taken(i) && nodes[i].is("Softmax")) match_softmax(i);
    merge_parallel_linears();
    mark_blocked_outputs();
    return rebuild();
  }

 private:
  bool is_constant(const std::string& v) const { return constant(v).defined(); }
  void fall_back(const Node& n, const std::string& why) {
    report_.plan_fallback.emplace_back(n.name, why);
  }
  void place(Node fused, const std::vector<size_t>& absorbed) {
    fused.domain = kEdgeforgeDomain;
    report_.plan_nodes.push_back(fused.name);
    GraphRewrite::place(std::move(fused), absorbed);
  }

  // Add(tail, other) with `other` computed at run time (a residual, not a bias): on a match the
  // Add joins `absorbed`, `tail` becomes its output, and `other` is returned.
  std::optional<std::string> residual_add(std::string& tail, std::vector<size_t>& absorbed) const {
    auto c = only_consumer(tail);
    if (!c || !node(*c).is("Add") || node(*c).inputs.size() != 2) return std::nullopt;
    const Node& add = node(*c);
    const std::string& other = add.inputs[0] == tail ? add.inputs[1] : add.inputs[0];
    if (is_constant(other) || other == tail) return std::nullopt;
    absorbed.push_back(*c);
    tail = add.outputs[0];
    return other;
  }

  // Conv [-> BN] [-> Relu | -> Add(residual) [-> Relu]].
  void match_conv(size_t i) {
    const Node& n = node(i);
    at::Tensor w = constant(n.inputs.size() > 1 ? n.inputs[1] : "");
    if (!w.defined() || w.scalar_type() != at::kFloat)
      return fall_back(n, "its weight is not a constant float tensor");
    if (w.dim() != 4) return fall_back(n, "only 2-D convolutions are planned");
    if (n.attr_string("auto_pad", "NOTSET") != "NOTSET")
      return fall_back(n, "auto_pad is not planned (explicit pads are)");
    at::Tensor b;
    if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
      b = constant(n.inputs[2]);
      if (!b.defined() || !at::isFloatingType(b.scalar_type()) || b.numel() != w.size(0))
        return fall_back(n, "its bias is not a constant with one value per output channel");
      b = b.to(at::kFloat).reshape({-1});
    }
    std::vector<size_t> absorbed{i};
    std::string tail = n.outputs[0];
    // Batch norm on constants folds into the weights: w * g / sqrt(v + eps), (b - m) * ... + beta.
    if (auto c = only_consumer(tail); c && node(*c).is("BatchNormalization") &&
                                      node(*c).outputs.size() == 1) {
      const Node& bn = node(*c);
      std::vector<at::Tensor> p;
      for (size_t k = 1; k < 5 && k < bn.inputs.size(); ++k) p.push_back(constant(bn.inputs[k]));
      bool ok = p.size() == 4;
      for (const at::Tensor& t : p) ok = ok && t.defined() && t.numel() == w.size(0);
      if (ok) {
        const at::Tensor inv = p[0].to(at::kDouble).reshape({-1}) /
                               (p[3].to(at::kDouble).reshape({-1}) + bn.attr_float("epsilon", 1e-5f)).sqrt();
        at::Tensor bias = b.defined() ? b.to(at::kDouble) : at::zeros({w.size(0)}, at::kDouble);
        b = ((bias - p[2].to(at::kDouble).reshape({-1})) * inv + p[1].to(at::kDouble).reshape({-1}))
                .to(at::kFloat);
        w = (w.to(at::kDouble) * inv.reshape({-1, 1, 1, 1})).to(at::kFloat);
        absorbed.push_back(*c);
        tail = bn.outputs[0];
      }
    }
    bool relu = false, residual_relu = false, inplace = false;
    std::string residual;
    if (auto c = only_consumer(tail); c && node(*c).is("Relu")) {
      relu = true;
      absorbed.push_back(*c);
      tail = node(*c).outputs[0];
    } else if (auto r = residual_add(tail, absorbed)) {
      residual = *r;
      // In place when the Add is the residual's only reader and it is a node's output.
      inplace = consumers(residual).size() == 1 && !is_graph_output(residual) &&
                !is_graph_input(residual);
      if (auto after = only_consumer(tail); after && node(*after).is("Relu")) {
        residual_relu = true;
        absorbed.push_back(*after);
        tail = node(*after).outputs[0];
      }
    }
    Node fused("DnnlConv", n.name, {n.inputs[0]}, {tail});
    fused.inputs.push_back(add_initializer(n.name + ".plan_weight", w.contiguous()));
    fused.inputs.push_back(b.defined() ? add_initializer(n.name + ".plan_bias", b.contiguous()) : "");
    if (!residual.empty()) fused.inputs.push_back(residual);
    fused.set("strides", n.attr_ints("strides", {1, 1}))
        .set("pads", n.attr_ints("pads", {0, 0, 0, 0}))
        .set("dilations", n.attr_ints("dilations", {1, 1}))
        .set("group", n.attr_int("group", 1))
        .set("relu", int64_t{relu})
        .set("residual_relu", int64_t{residual_relu})
        .set("residual_inplace", int64_t{inplace})
        .set("blocked_out", int64_t{0});
    place(std::move(fused), absorbed);
  }

  void match_linear(size_t i) {
    const Node& n = node(i);
    if (n.inputs.size() < 2) return;
    at::Tensor w = constant(n.inputs[1]);
    if (!w.defined()) return match_matmul(i);
    if (w.scalar_type() != at::kFloat || w.dim() != 2)
      return fall_back(n, "its weight is not a constant 2-D float tensor");
    bool in_out = true;
    std::vector<size_t> absorbed{i};
    std::string tail = n.outputs[0];
    std::string bias;
    const int64_t out_features = n.is("Gemm") && n.attr_int("transB", 0) != 0 ? w.size(0) : w.size(1);
    auto bias_of = [&](const std::string& v) -> std::string {
      at::Tensor t = constant(v);
      if (!t.defined() || !at::isFloatingType(t.scalar_type()) || t.numel() != out_features ||
          t.size(-1) != out_features)
        return "";
      return add_initializer(v + ".plan_bias", t.to(at::kFloat).reshape({-1}).contiguous());
    };
    if (n.is("Gemm")) {
      if (n.attr_int("transA", 0) != 0 || n.attr_float("alpha", 1.0f) != 1.0f ||
          n.attr_float("beta", 1.0f) != 1.0f)
        return fall_back(n, "only Gemm with transA = 0, alpha = 1 and beta = 1 is planned");
      in_out = n.attr_int("transB", 0) == 0;
      if (n.inputs.size() > 2 && !n.inputs[2].empty() && (bias = bias_of(n.inputs[2])).empty())
        return fall_back(n, "its C input is not a constant bias of one value per output");
    } else if (auto c = only_consumer(tail); c && node(*c).is("Add") && node(*c).inputs.size() == 2) {
      const Node& add = node(*c);
      const std::string b = bias_of(add.inputs[0] == tail ? add.inputs[1] : add.inputs[0]);
      if (!b.empty()) {
        bias = b;
        absorbed.push_back(*c);
        tail = add.outputs[0];
      }
    }
    int64_t activation = 0;
    if (auto c = only_consumer(tail); c && node(*c).is("Relu")) {
      activation = 1;
      absorbed.push_back(*c);
      tail = node(*c).outputs[0];
    } else if (std::vector<size_t> g; auto out = exact_gelu(tail, &g)) {
      activation = 2;
      absorbed.insert(absorbed.end(), g.begin(), g.end());
      tail = *out;
    }
    // Inference: Dropout is the identity (the session never trains).
    if (auto c = only_consumer(tail);
        c && node(*c).is("Dropout") &&
        (node(*c).outputs.size() == 1 || consumers(node(*c).outputs[1]).empty())) {
      absorbed.push_back(*c);
      tail = node(*c).outputs[0];
    }
    const std::string residual = residual_add(tail, absorbed).value_or("");
    Node fused("DnnlLinear", n.name, {n.inputs[0], n.inputs[1], bias}, {tail});
    if (!residual.empty()) fused.inputs.push_back(residual);
    fused.set("weight_in_out", int64_t{in_out}).set("activation", activation);
    place(std::move(fused), absorbed);
  }

  // MatMul of two activations [-> Transpose, written straight into its layout].
  void match_matmul(size_t i) {
    const Node& n = node(i);
    if (!n.is("MatMul") || is_constant(n.inputs[0])) return;
    std::vector<size_t> absorbed{i};
    std::string tail = n.outputs[0];
    Node fused("DnnlMatMul", n.name, {n.inputs[0], n.inputs[1]}, {});
    if (auto c = only_consumer(tail); c && node(*c).is("Add") && node(*c).inputs.size() == 2) {
      const Node& add = node(*c);
      const std::string& other = add.inputs[0] == tail ? add.inputs[1] : add.inputs[0];
      if (other != tail) {
        fused.inputs.push_back(other);
        absorbed.push_back(*c);
        tail = add.outputs[0];
      }
    }
    if (auto c = only_consumer(tail); c && node(*c).is("Transpose") &&
                                      !node(*c).attr_ints("perm", {}).empty()) {
      fused.set("out_perm", node(*c).attr_ints("perm"));
      absorbed.push_back(*c);
      tail = node(*c).outputs[0];
    }
    fused.outputs = {tail};
    place(std::move(fused), absorbed);
  }

  void match_layer_norm(size_t i) {
    const Node& n = node(i);
    if (n.outputs.size() > 1 && (!consumers(n.outputs[1]).empty() ||
                                 (n.outputs.size() > 2 && !consumers(n.outputs[2]).empty())))
      return fall_back(n, "its mean or inverse deviation output is read");
    if (n.attr_int("axis", -1) != -1) return fall_back(n, "only the last axis is planned");
    if (n.inputs.size() < 3 || !is_constant(n.inputs[1]) || !is_constant(n.inputs[2]))
      return fall_back(n, "its scale and bias are not both constants");
    Node fused("DnnlLayerNorm", n.name, {n.inputs[0], n.inputs[1], n.inputs[2]}, {n.outputs[0]});
    fused.set("epsilon", n.attr_float("epsilon", 1e-5f));
    place(std::move(fused), {i});
  }

  // [x -> Div | Mul by a constant] [-> Add(mask)] -> Softmax over the last axis.
  void match_softmax(size_t i) {
    const Node& n = node(i);
    if (n.attr_int("axis", 1) != -1)
      return fall_back(n, "only an explicit axis = -1 is planned");
    std::vector<size_t> absorbed{i};
    std::string x = n.inputs[0];
    std::string mask;
    auto take = [&](const std::string& v) -> const Node* {
      const auto i = producer_index(v);
      if (!i || taken(*i) || consumers(v).size() != 1 || is_graph_output(v)) return nullptr;
      return &node(*i);
    };
    if (const Node* add = take(x); add && add->is("Add") && add->inputs.size() == 2) {
      // The mask is the operand that is not the scaled scores: prefer a Div/Mul by a constant.
      const Node* a0 = take(add->inputs[0]);
      const int s = a0 && (a0->is("Div") || a0->is("Mul")) ? 0 : 1;
      absorbed.push_back(*producer_index(x));
      mask = add->inputs[1 - s];
      x = add->inputs[s];
    }
    float scale = 1.f;
    if (const Node* d = take(x); d && (d->is("Div") || d->is("Mul")) && d->inputs.size() == 2) {
      if (auto c = scalar(d->inputs[1]); c && *c != 0.f) {
        scale = d->is("Div") ? 1.f / *c : *c;
        absorbed.push_back(*producer_index(x));
        x = d->inputs[0];
      }
    }
    Node fused("DnnlSoftmax", n.name, {x}, {n.outputs[0]});
    if (!mask.empty()) fused.inputs.push_back(mask);
    fused.set("scale", scale);
    place(std::move(fused), absorbed);
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
