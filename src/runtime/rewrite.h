// The scaffolding the runtime's lowering passes share (lower_int8.cpp, lower_plan.cpp): an
// index of who produces and who reads each value, the replacement of matched node groups by one
// fused node, and the rebuild of the graph without what nothing reads any more. HookedRewrite
// answers the queries of the view the ops' lowering hooks get (src/ops/lowering.h) from it.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "../ops/lowering.h"
#include "edgeforge/graph.h"
#include "edgeforge/ops.h"

namespace edgeforge::rewrite {

class GraphRewrite {
 public:
  explicit GraphRewrite(const Graph& g) : g_(g) {
    const auto& nodes = g.nodes();
    for (size_t i = 0; i < nodes.size(); ++i) {
      for (const std::string& out : nodes[i].outputs) producer_[out] = i;
      for (const std::string& in : nodes[i].inputs)
        if (!in.empty()) consumers_[in].push_back(i);
    }
    for (const ValueInfo& v : g.outputs()) graph_outputs_.insert(v.name);
    for (const ValueInfo& v : g.inputs()) graph_inputs_.insert(v.name);
  }

  const Graph& graph() const { return g_; }
  const Node& node(size_t i) const { return g_.nodes()[i]; }
  std::optional<size_t> producer_index(const std::string& v) const {
    auto it = producer_.find(v);
    return it == producer_.end() ? std::nullopt : std::optional<size_t>(it->second);
  }
  const Node* producer(const std::string& v) const {
    auto i = producer_index(v);
    return i ? &node(*i) : nullptr;
  }
  const std::vector<size_t>& consumers(const std::string& v) const {
    static const std::vector<size_t> kNone;
    auto it = consumers_.find(v);
    return it == consumers_.end() ? kNone : it->second;
  }
  bool is_graph_output(const std::string& v) const { return graph_outputs_.count(v) != 0; }
  bool is_graph_input(const std::string& v) const { return graph_inputs_.count(v) != 0; }
  // The single node reading `v`, when exactly one does, `v` is not a graph output and that
  // node is not already part of a fused group.
  std::optional<size_t> only_consumer(const std::string& v) const {
    const auto& c = consumers(v);
    if (c.size() != 1 || is_graph_output(v) || taken_.count(c[0])) return std::nullopt;
    return c[0];
  }
  bool taken(size_t i) const { return taken_.count(i) != 0; }

  // `fused` replaces the nodes `absorbed` at the position of the last of them, so every input
  // of the group is computed before it.
  void place(Node fused, const std::vector<size_t>& absorbed) {
    size_t last = 0;
    for (size_t a : absorbed) {
      taken_.insert(a);
      last = std::max(last, a);
    }
    replacement_[last] = std::move(fused);
  }
  std::map<size_t, Node>& replacements() { return replacement_; }

  // A new constant for a fused node; returns its name.
  std::string add_initializer(const std::string& name, const at::Tensor& t) {
    new_initializers_[name] = t;
    return name;
  }
  // A constant by name: the graph's (initializer or Constant node) or one added here.
  at::Tensor constant(const std::string& name) const {
    at::Tensor t = constant_input(g_, name);
    if (t.defined()) return t;
    auto it = new_initializers_.find(name);
    return it == new_initializers_.end() ? at::Tensor() : it->second;
  }

  // A constant holding one floating-point number.
  std::optional<float> scalar(const std::string& v) const {
    const at::Tensor t = constant(v);
    if (!t.defined() || t.numel() != 1 || !at::isFloatingType(t.scalar_type())) return std::nullopt;
    return t.item<float>();
  }

  // The exact GELU torch.onnx (and GraphBuilder::gelu) writes: y * (erf(y / sqrt 2) + 1) * 0.5,
  // from `y`; the output and the nodes on success (Div, Erf, Add, Mul, Mul).
  std::optional<std::string> exact_gelu(const std::string& y, std::vector<size_t>* nodes) const {
    const auto& c = consumers(y);
    if (c.size() != 2 || is_graph_output(y) || taken(c[0]) || taken(c[1]))
      return std::nullopt;
    size_t div = c[0], mul = c[1];
    if (!node(div).is("Div")) std::swap(div, mul);
    if (!node(div).is("Div") || !node(mul).is("Mul") || node(div).inputs[0] != y) return std::nullopt;
    auto sqrt2 = scalar(node(div).inputs[1]);
    if (!sqrt2 || std::abs(*sqrt2 - std::sqrt(2.0f)) > 1e-6f) return std::nullopt;
    auto erf = only_consumer(node(div).outputs[0]);
    if (!erf || !node(*erf).is("Erf")) return std::nullopt;
    auto add = only_consumer(node(*erf).outputs[0]);
    if (!add || !node(*add).is("Add")) return std::nullopt;
    const Node& a = node(*add);
    auto one = scalar(a.inputs[0] == node(*erf).outputs[0] ? a.inputs[1] : a.inputs[0]);
    if (!one || *one != 1.0f) return std::nullopt;
    const Node& m = node(mul);
    if (!((m.inputs[0] == y && m.inputs[1] == a.outputs[0]) ||
          (m.inputs[1] == y && m.inputs[0] == a.outputs[0])))
      return std::nullopt;
    auto half = only_consumer(m.outputs[0]);
    if (!half || !node(*half).is("Mul")) return std::nullopt;
    const Node& h = node(*half);
    auto v = scalar(h.inputs[0] == m.outputs[0] ? h.inputs[1] : h.inputs[0]);
    if (!v || *v != 0.5f) return std::nullopt;
    nodes->insert(nodes->end(), {div, *erf, *add, mul, *half});
    return h.outputs[0];
  }

  // The rewritten graph: fused nodes in place of their groups, every other node through
  // `keep` (which may rewrite it), then without the nodes and initializers nothing reads.
  Graph rebuild(const std::function<Node(const Node&)>& keep = nullptr) const {
    Graph out(g_.name());
    out.inputs() = g_.inputs();
    out.outputs() = g_.outputs();
    out.metadata() = g_.metadata();
    out.value_info() = g_.value_info();
    for (const auto& [name, t] : g_.initializers()) out.add_initializer(name, t);
    for (const auto& [name, t] : new_initializers_) out.add_initializer(name, t);
    std::vector<Node> nodes;
    for (size_t i = 0; i < g_.nodes().size(); ++i) {
      if (auto r = replacement_.find(i); r != replacement_.end()) nodes.push_back(r->second);
      else if (!taken_.count(i)) nodes.push_back(keep ? keep(node(i)) : node(i));
    }
    std::set<std::string> live(graph_outputs_.begin(), graph_outputs_.end());
    live.insert(graph_inputs_.begin(), graph_inputs_.end());
    std::vector<bool> kept(nodes.size(), false);
    for (size_t k = nodes.size(); k-- > 0;) {
      for (const std::string& o : nodes[k].outputs) kept[k] = kept[k] || live.count(o);
      if (kept[k])
        for (const std::string& in : nodes[k].inputs) live.insert(in);
    }
    for (size_t k = 0; k < nodes.size(); ++k)
      if (kept[k]) out.add_node(std::move(nodes[k]));
    for (auto it = out.initializers().begin(); it != out.initializers().end();)
      it = live.count(it->first) ? std::next(it) : out.initializers().erase(it);
    out.validate();
    return out;
  }

 private:
  const Graph& g_;
  std::map<std::string, size_t> producer_;
  std::map<std::string, std::vector<size_t>> consumers_;
  std::set<std::string> graph_outputs_, graph_inputs_;
  std::set<size_t> taken_;
  std::map<size_t, Node> replacement_;
  std::map<std::string, at::Tensor> new_initializers_;
};

// A GraphRewrite seen through `View` (PlanRewriter or Int8Rewriter): the index answers the
// graph queries; the pass deriving from this implements the view's actions.
template <typename View>
class HookedRewrite : public GraphRewrite, public View {
 public:
  explicit HookedRewrite(const Graph& g) : GraphRewrite(g) {}

  const Node& node(size_t i) const override { return GraphRewrite::node(i); }
  std::optional<size_t> producer_index(const std::string& v) const override {
    return GraphRewrite::producer_index(v);
  }
  const Node* producer(const std::string& v) const override { return GraphRewrite::producer(v); }
  const std::vector<size_t>& consumers(const std::string& v) const override {
    return GraphRewrite::consumers(v);
  }
  bool is_graph_output(const std::string& v) const override {
    return GraphRewrite::is_graph_output(v);
  }
  bool is_graph_input(const std::string& v) const override {
    return GraphRewrite::is_graph_input(v);
  }
  std::optional<size_t> only_consumer(const std::string& v) const override {
    return GraphRewrite::only_consumer(v);
  }
  bool taken(size_t i) const override { return GraphRewrite::taken(i); }
  at::Tensor constant(const std::string& v) const override { return GraphRewrite::constant(v); }
  std::optional<float> scalar(const std::string& v) const override {
    return GraphRewrite::scalar(v);
  }
  std::optional<std::string> exact_gelu(const std::string& y,
                                        std::vector<size_t>* nodes) const override {
    return GraphRewrite::exact_gelu(y, nodes);
  }
  std::string add_initializer(const std::string& name, const at::Tensor& t) override {
    return GraphRewrite::add_initializer(name, t);
  }
};

}  // namespace edgeforge::rewrite
