// The activations the layer kernels of the plan apply as oneDNN post-ops (lowering.h): the
// pattern a lowering hook takes, the attributes of the fused node, and ATen's reference.
#include <ATen/ATen.h>

#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "edgeforge/error.h"
#include "lowering.h"

namespace edgeforge {

std::optional<Activation> fusable_activation(const GraphMatcher& pass, std::string& tail,
                                             std::vector<size_t>& absorbed) {
  const std::vector<size_t>& readers = pass.consumers(tail);
  if (readers.size() == 2 && !pass.is_graph_output(tail) && !pass.taken(readers[0]) &&
      !pass.taken(readers[1])) {  // SiLU: Mul(tail, Sigmoid(tail))
    size_t sig = readers[0], mul = readers[1];
    if (!pass.node(sig).is("Sigmoid")) std::swap(sig, mul);
    const Node& m = pass.node(mul);
    if (!pass.node(sig).is("Sigmoid") || !m.is("Mul") || m.inputs.size() != 2) return std::nullopt;
    const std::string& s = pass.node(sig).outputs[0];
    if (!((m.inputs[0] == tail && m.inputs[1] == s) || (m.inputs[1] == tail && m.inputs[0] == s)))
      return std::nullopt;
    if (pass.only_consumer(s) != mul) return std::nullopt;
    absorbed.insert(absorbed.end(), {sig, mul});
    tail = m.outputs[0];
    return Activation{"swish", 1.f, 0.f};
  }
  const auto c = pass.only_consumer(tail);
  if (!c) return std::nullopt;
  const Node& a = pass.node(*c);
  Activation act;
  if (a.is("Relu")) {
    act.kind = "relu";
  } else if (a.is("HardSwish")) {
    act.kind = "hardswish";
  } else if (a.is("Sigmoid")) {
    act.kind = "sigmoid";
  } else if (a.is("HardSigmoid")) {
    act = {"hardsigmoid", a.attr_float("alpha", 0.2f), a.attr_float("beta", 0.5f)};
  } else if (a.is("Clip")) {
    act = {"clip", -std::numeric_limits<float>::max(), std::numeric_limits<float>::max()};
    for (size_t k : {size_t{1}, size_t{2}}) {
      if (a.inputs.size() <= k || a.inputs[k].empty()) continue;
      const auto bound = pass.scalar(a.inputs[k]);
      if (!bound) return std::nullopt;
      (k == 1 ? act.alpha : act.beta) = *bound;
    }
  } else {
    return std::nullopt;
  }
  absorbed.push_back(*c);
  tail = a.outputs[0];
  return act;
}

at::Tensor apply_activation(const at::Tensor& y, const Activation& a) {
  if (a.kind.empty()) return y;
  if (a.kind == "relu") return at::relu(y);
  if (a.kind == "clip") return at::clamp(y, a.alpha, a.beta);
  if (a.kind == "hardswish") return at::hardswish(y);
  if (a.kind == "hardsigmoid") return at::clamp(y * a.alpha + a.beta, 0.0, 1.0);
  if (a.kind == "sigmoid") return at::sigmoid(y);
  if (a.kind == "swish") return y * at::sigmoid(y * a.alpha);
  throw Error("unknown activation '" + a.kind + "'");
}

Activation activation_of(const Node& node) {
  Activation a{node.attr_string("activation", ""), node.attr_float("activation_alpha", 0.f),
               node.attr_float("activation_beta", 0.f)};
  EF_CHECK(a.kind.empty() || a.kind == "relu" || a.kind == "clip" || a.kind == "hardswish" ||
               a.kind == "hardsigmoid" || a.kind == "sigmoid" || a.kind == "swish",
           node.describe(), ": unknown activation '", a.kind, "'");
  return a;
}

void set_activation(Node& node, const std::optional<Activation>& activation) {
  node.set("activation", activation ? activation->kind : std::string())
      .set("activation_alpha", activation ? activation->alpha : 0.f)
      .set("activation_beta", activation ? activation->beta : 0.f);
}

}  // namespace edgeforge
