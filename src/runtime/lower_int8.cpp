// The QDQ -> int8 lowering pass (edgeforge/lower.h). It matches patterns on constants only:
// every scale, zero point and weight it folds into a kernel is an initializer or a Constant
// node, so the lowered graph computes what the QDQ graph computes, up to int8 rounding.
//
// The pass owns the QDQ form: which values travel as quint8, the quantized input of a layer,
// its int8 weight and bias, the Relu and Q after it, the Q/DQ nodes that remain. What is
// particular to an op is its hook (OpCapabilities::int8_layer, int8_pattern, with the op under
// src/ops/): Conv's, Gemm's and MatMul's constraints and kernels, Add -> QAdd.
#include "edgeforge/lower.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "edgeforge/error.h"
#include "edgeforge/ops.h"
#include "rewrite.h"

namespace edgeforge {
namespace {

// Per-tensor parameters of an activation Q or DQ node, when they are constants.
struct ActParams {
  float scale = 0;
  int64_t zero_point = 0;
  at::ScalarType type = at::kByte;
  bool operator==(const ActParams& o) const {
    return std::memcmp(&scale, &o.scale, sizeof scale) == 0 && zero_point == o.zero_point &&
           type == o.type;
  }
};

std::optional<ActParams> activation_params(const Node& n, const Graph& g) {
  if (n.inputs.size() < 2) return std::nullopt;
  const at::Tensor scale = constant_input(g, n.inputs[1]);
  if (!scale.defined() || scale.numel() != 1 || scale.scalar_type() != at::kFloat) return std::nullopt;
  ActParams p;
  p.scale = scale.item<float>();
  if (!(p.scale > 0) || !std::isfinite(p.scale)) return std::nullopt;
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
    const at::Tensor zp = constant_input(g, n.inputs[2]);
    if (!zp.defined() || zp.numel() != 1) return std::nullopt;
    p.type = zp.scalar_type();
    p.zero_point = zp.to(at::kLong).item<int64_t>();
  }
  return p;
}

class Lowering : public rewrite::HookedRewrite<Int8Rewriter> {
 public:
  Lowering(const Graph& g, LoweringReport& report) : HookedRewrite(g), report_(report) {
    for (const Node& n : g.nodes())
      if (n.is("QuantizeLinear") || n.is("DynamicQuantizeLinear")) ++report_.quantize_nodes;
  }

  Graph run() {
    if (report_.quantize_nodes == 0 && !has_dequantize()) return graph();
    find_quantized_values();
    const OpRegistry& registry = OpRegistry::global();
    const auto& nodes = graph().nodes();
    for (size_t i = 0; i < nodes.size(); ++i) {
      const OpDef* def = registry.find(nodes[i].op_type, nodes[i].domain);
      if (def == nullptr) continue;
      if (def->caps.int8_layer != nullptr) match(i, def->caps.int8_layer);
      if (def->caps.int8_pattern != nullptr) def->caps.int8_pattern(*this, i);
    }
    return rebuild();
  }

  // The int8 weight behind input `index` of `n`: DQ(const int8, const scale, zero points 0).
  std::optional<Int8Weight> weight(const Node& n, size_t index, bool in_out,
                                   std::string* why) const override {
    const Node* dq = index < n.inputs.size() ? producer(n.inputs[index]) : nullptr;
    if (dq == nullptr || !dq->is("DequantizeLinear")) {
      *why = "its weight is not quantized";
      return std::nullopt;
    }
    const at::Tensor w = constant(dq->inputs[0]);
    const at::Tensor s = dq->inputs.size() > 1 ? constant(dq->inputs[1]) : at::Tensor();
    if (!w.defined() || w.scalar_type() != at::kChar || !s.defined()) {
      *why = "its weight is not a constant int8 tensor with a constant scale";
      return std::nullopt;
    }
    if (dq->inputs.size() > 2 && !dq->inputs[2].empty()) {
      const at::Tensor zp = constant(dq->inputs[2]);
      if (!zp.defined() || !zp.eq(0).all().item<bool>()) {
        *why = "its weight zero points are not all 0 (the int8 kernels take symmetric weights)";
        return std::nullopt;
      }
    }
    Int8Weight r;
    r.values = dq->inputs[0];
    r.scale = dq->inputs[1];
    r.in_out = in_out;
    const int64_t out_axis = in_out ? 1 : 0;
    if (w.dim() < 2) {
      *why = "its weight has rank " + std::to_string(w.dim());
      return std::nullopt;
    }
    r.out_channels = w.size(out_axis);
    const int64_t limit = exact_int8_weight_limit();
    if (limit < 127) {
      const int64_t peak = w.to(at::kShort).abs().max().item<int64_t>();
      if (peak > limit) {
        *why = "its int8 weights reach " + std::to_string(peak) + ", and this CPU's int8 " +
               "kernels (no VNNI) saturate beyond +-" + std::to_string(limit) +
               " (quantize with weight-bits=7 to run it int8 here)";
        return std::nullopt;
      }
    }
    if (s.numel() != 1) {
      int64_t axis = dq->attr_int("axis", 1);
      if (axis < 0) axis += w.dim();
      if (s.dim() != 1 || axis != out_axis || s.size(0) != r.out_channels) {
        *why = "its weight scales are not per output channel";
        return std::nullopt;
      }
    }
    return r;
  }

  bool quantized(const std::string& v) const override { return quantized_.count(v) != 0; }

  // See lowering.h. A Relu stays attribute relu, which the reference int8 kernels fuse too.
  bool quantized_tail(std::string tail, std::vector<size_t>& absorbed, Node& fused,
                      bool relu_only) const override {
    std::vector<size_t> taken;
    std::optional<Activation> act;
    if (relu_only) {
      if (auto c = only_consumer(tail); c && node(*c).is("Relu")) {
        act = Activation{"relu"};
        taken.push_back(*c);
        tail = node(*c).outputs[0];
      }
    } else {
      act = fusable_activation(*this, tail, taken);
    }
    std::optional<size_t> c = only_consumer(tail);
    if (!c || !node(*c).is("QuantizeLinear") || !quantized_.count(node(*c).outputs[0])) return false;
    taken.push_back(*c);
    const ActParams& out = quantized_.at(node(*c).outputs[0]);
    absorbed.insert(absorbed.end(), taken.begin(), taken.end());
    fused.outputs = {node(*c).outputs[0]};
    const bool relu = act && act->kind == "relu";
    fused.set("y_scale", out.scale).set("y_zero_point", out.zero_point).set("relu", int64_t{relu});
    if (act && !relu) set_activation(fused, act);
    return true;
  }

  // A bias the kernels take: a float constant of `channels` values, or DQ of an int32 one
  // (dequantized here into a new initializer). "" with `why` set otherwise.
  std::string float_bias(const std::string& v, int64_t channels, std::string* why) override {
    at::Tensor b = constant(v);
    std::string name = v;
    if (!b.defined()) {
      const Node* dq = producer(v);
      at::Tensor values = dq && dq->is("DequantizeLinear") ? constant(dq->inputs[0])
                                                                : at::Tensor();
      at::Tensor scale = values.defined() ? constant(dq->inputs[1]) : at::Tensor();
      if (values.defined() && scale.defined() && values.scalar_type() == at::kInt &&
          !(dq->inputs.size() > 2 && !dq->inputs[2].empty())) {
        b = values.to(at::kFloat) * scale.to(at::kFloat);
        name = v + ".float";
        add_initializer(name, b);
      }
    }
    if (!b.defined() || !at::isFloatingType(b.scalar_type()) || b.numel() != channels) {
      *why = "its bias is not a constant of one value per output channel";
      return "";
    }
    if (b.dim() != 1 || b.scalar_type() != at::kFloat) {
      name = v + ".bias1d";
      add_initializer(name, b.reshape({channels}).to(at::kFloat));
    }
    return name;
  }

  bool keep_float(const Node& n, const std::string& why) override {
    report_.kept_float.emplace_back(n.name, why);
    return false;
  }

  void place_int8(Node fused, const std::vector<size_t>& absorbed) override {
    if (fused.op_type == "QAdd") ++report_.int8_adds;
    place(std::move(fused), absorbed);
  }

 private:
  bool has_dequantize() const {
    for (const Node& n : graph().nodes())
      if (n.is("DequantizeLinear")) return true;
    return false;
  }

  // uint8 activations that can travel as quint8: produced by a Q with constant per-tensor
  // parameters, read only by DQs with the same parameters, not a graph output.
  void find_quantized_values() {
    for (const Node& n : graph().nodes()) {
      if (!n.is("QuantizeLinear")) continue;
      const std::string& v = n.outputs[0];
      std::optional<ActParams> p = activation_params(n, graph());
      if (!p || p->type != at::kByte || is_graph_output(v)) continue;
      bool ok = !consumers(v).empty();
      for (size_t c : consumers(v)) {
        std::optional<ActParams> cp = node(c).is("DequantizeLinear") && node(c).inputs[0] == v
                                          ? activation_params(node(c), graph())
                                          : std::nullopt;
        ok = ok && cp && *cp == *p;
      }
      if (ok) quantized_[v] = *p;
    }
    // A uint8 model input read only by DQs with the same constant parameters: the quantized
    // tensor part 1 of a partitioned model sends across the cut. It is wrapped as quint8 with
    // those parameters (no arithmetic), so the int8 kernels take it as they take a Q's output.
    for (const ValueInfo& in : graph().inputs()) {
      if (in.dtype != at::kByte || is_graph_output(in.name) || consumers(in.name).empty()) continue;
      std::optional<ActParams> first;
      bool ok = true;
      for (size_t c : consumers(in.name)) {
        std::optional<ActParams> cp = node(c).is("DequantizeLinear") && node(c).inputs[0] == in.name
                                          ? activation_params(node(c), graph())
                                          : std::nullopt;
        ok = ok && cp && cp->type == at::kByte && (!first || *cp == *first);
        if (cp && !first) first = cp;
      }
      if (ok && first) {
        quantized_[in.name] = *first;
        quantized_inputs_.push_back(in.name);
      }
    }
  }

  // A node whose op has an int8 layer hook: QDQ around it, its weight quantized, becomes one
  // int8 kernel; the hook states the op's constraints, weight layout and kernel.
  void match(size_t i, Int8LayerHook hook) {
    const Node& n = node(i);
    const Node* dq_in = producer(n.inputs[0]);
    const Node* w_dq = n.inputs.size() > 1 ? producer(n.inputs[1]) : nullptr;
    const bool input_quantized = dq_in != nullptr && dq_in->is("DequantizeLinear");
    const bool weight_quantized = w_dq != nullptr && w_dq->is("DequantizeLinear");
    if (!input_quantized && !weight_quantized) return;  // a float node: nothing to say
    if (!input_quantized) {
      keep_float(n, "its input is not quantized");
      return;
    }

    // Static (Q -> DQ) or dynamic (DynamicQuantizeLinear -> DQ) input.
    const std::string& q = dq_in->inputs[0];
    const Node* q_producer = producer(q);
    bool dynamic = false;
    if (quantized_.count(q)) {
      dynamic = false;
    } else if (q_producer != nullptr && q_producer->is("DynamicQuantizeLinear") &&
               dq_in->inputs.size() == 3 && q_producer->outputs.size() == 3 &&
               dq_in->inputs[1] == q_producer->outputs[1] &&
               dq_in->inputs[2] == q_producer->outputs[2]) {
      dynamic = true;
    } else {
      keep_float(n, "its input is not a uint8 tensor with constant per-tensor parameters");
      return;
    }

    // The op's own constraints, the weight layout and what the kernel takes after the node.
    Int8Layer layer;
    layer.absorbed = {i};
    layer.tail = n.outputs[0];
    if (!hook(*this, i, dynamic, &layer)) return;  // kept float, the hook said why

    Node fused;
    fused.domain = kEdgeforgeDomain;
    fused.name = n.name;
    fused.inputs = {dynamic ? q_producer->inputs[0] : q, layer.weight.values, layer.weight.scale};
    if (!layer.bias.empty()) fused.inputs.push_back(layer.bias);
    if (dynamic) {
      fused.op_type = "DynQLinear";
      fused.set("weight_in_out", int64_t{layer.weight.in_out});
      fused.outputs = {layer.tail};
      place(fused, layer.absorbed);
      report_.dynamic_nodes.push_back(n.name);
      return;
    }

    // Static: an optional activation, then a Q into a quantized value.
    if (!quantized_tail(layer.tail, layer.absorbed, fused, false)) {
      keep_float(n, "its output is not quantized to uint8 right after it");
      return;
    }
    fused.op_type = layer.kernel;
    for (const auto& [key, value] : layer.attributes) fused.set(key, value);
    place(fused, layer.absorbed);
    report_.int8_nodes.push_back(n.name);
  }

  // Activation Q / DQ nodes of quantized values become the internal ops; the rest stays. A
  // quantized model input X is renamed X.uint8 and wrapped into X by a QuantizeTensor first.
  Graph rebuild() const {
    Graph out = rebuild_nodes();
    if (quantized_inputs_.empty()) return out;
    std::vector<Node> wraps;
    for (const std::string& name : quantized_inputs_) {
      const ActParams& p = quantized_.at(name);
      for (ValueInfo& v : out.inputs())
        if (v.name == name) v.name = name + ".uint8";
      Node q("QuantizeTensor", name + ".wrap", {name + ".uint8"}, {name});
      q.domain = kEdgeforgeDomain;
      q.set("scale", p.scale).set("zero_point", p.zero_point);
      wraps.push_back(std::move(q));
    }
    out.nodes().insert(out.nodes().begin(), wraps.begin(), wraps.end());
    out.validate();
    return out;
  }

  Graph rebuild_nodes() const {
    return GraphRewrite::rebuild([this](const Node& n) {
      if (n.is("QuantizeLinear") && quantized_.count(n.outputs[0])) {
        const ActParams& p = quantized_.at(n.outputs[0]);
        Node q("QuantizeTensor", n.name, {n.inputs[0]}, n.outputs);
        q.domain = kEdgeforgeDomain;
        q.set("scale", p.scale).set("zero_point", p.zero_point);
        return q;
      }
      if (n.is("DequantizeLinear") && quantized_.count(n.inputs[0])) {
        Node dq("DequantizeTensor", n.name, {n.inputs[0]}, n.outputs);
        dq.domain = kEdgeforgeDomain;
        return dq;
      }
      return n;
    });
  }

  LoweringReport& report_;
  std::map<std::string, ActParams> quantized_;
  std::vector<std::string> quantized_inputs_;  // model inputs among quantized_
};

}  // namespace

Graph lower_int8(const Graph& graph, LoweringReport* report) {
  LoweringReport local;
  LoweringReport& r = report != nullptr ? *report : local;
  r = LoweringReport{};
  return Lowering(graph, r).run();
}

InferenceSession::InferenceSession(const Graph& graph, SessionOptions options)
    : graph_(options.plan ? lower_plan(lower_int8(graph, &report_), &report_)
                          : lower_int8(graph, &report_)) {
  exec_ = std::make_unique<Executor>(graph_);
}

std::vector<at::Tensor> InferenceSession::run(const std::vector<at::Tensor>& inputs,
                                              const RunOptions& opts) {
  EF_ASSERT(!opts.training, "an inference session does not train");
  return exec_->run(inputs, opts);
}

}  // namespace edgeforge
