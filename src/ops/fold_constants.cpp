// Constant folding at load (edgeforge/fold_constants.h), with the op registry's kernels.
#include "edgeforge/fold_constants.h"

#include <ATen/ATen.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "edgeforge/error.h"
#include "edgeforge/ops.h"
#include "util.h"

namespace edgeforge {
namespace {

constexpr int64_t kGrowthBytes = 64 * 1024;

bool never_folded(const Node& n) {
  static const std::set<std::string> kOps = {
      "Constant",        "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
      "Dropout",         "RandomNormal",   "RandomNormalLike", "RandomUniform",
      "RandomUniformLike", "Multinomial",  "Bernoulli"};
  return !n.domain.empty() || kOps.count(n.op_type) != 0;
}

int64_t bytes_of(const at::Tensor& t) { return t.defined() ? static_cast<int64_t>(t.nbytes()) : 0; }

}  // namespace

int64_t fold_constants(Graph& graph) {
  std::set<std::string> graph_inputs, graph_outputs;
  for (const ValueInfo& v : graph.inputs()) graph_inputs.insert(v.name);
  for (const ValueInfo& v : graph.outputs()) graph_outputs.insert(v.name);
  // The constant values by name: initializers that are not inputs, Constant nodes' outputs.
  std::map<std::string, at::Tensor> constants;
  for (const auto& [name, t] : graph.initializers())
    if (!graph_inputs.count(name)) constants[name] = t;

  int64_t folded = 0;
  std::set<std::string> read_by_folded;
  // Nodes stay in place until the end: kernels look up their constant inputs' producers.
  std::vector<bool> drop(graph.nodes().size(), false);
  for (size_t i = 0; i < graph.nodes().size(); ++i) {
    const Node& n = graph.nodes()[i];
    if (n.op_type == "Constant" && n.domain.empty() && n.outputs.size() == 1) {
      try {
        constants[n.outputs[0]] = ops::constant_node_value(n);
      } catch (const Error&) {  // a malformed Constant is reported when the model runs
      }
      continue;
    }
    bool all_constant = !never_folded(n) && !n.outputs.empty();
    int64_t in_bytes = 0;
    TensorList in;
    for (const std::string& v : n.inputs) {
      if (v.empty()) {
        in.emplace_back();
        continue;
      }
      auto it = constants.find(v);
      if (it == constants.end()) {
        all_constant = false;
        break;
      }
      in.push_back(it->second);
      in_bytes += bytes_of(it->second);
    }
    for (const std::string& o : n.outputs) all_constant = all_constant && !o.empty() && !graph_outputs.count(o);
    const OpDef* def = all_constant ? OpRegistry::global().find(n.op_type, n.domain) : nullptr;
    if (def == nullptr || static_cast<int>(in.size()) < def->min_inputs ||
        static_cast<int>(in.size()) > def->max_inputs)
      continue;
    // The node as the executor would run it; any failure leaves it for the run to report.
    TensorList out(n.outputs.size());
    try {
      at::NoGradGuard no_grad;
      const Kernel kernel = def->prepare(n, graph);
      kernel(in, out, KernelContext{});
    } catch (const std::exception&) {
      continue;
    }
    int64_t out_bytes = 0;
    bool defined = true;
    for (const at::Tensor& t : out) {
      defined = defined && t.defined();
      out_bytes += bytes_of(t);
    }
    if (!defined || out_bytes > in_bytes + kGrowthBytes) continue;
    for (size_t k = 0; k < out.size(); ++k) {
      // Own storage: a view of an input (Reshape, Squeeze) must not alias a weight that
      // training may later change in place.
      at::Tensor value = out[k].contiguous().clone();
      constants[n.outputs[k]] = value;
      graph.initializers()[n.outputs[k]] = value;
      graph.value_info().erase(n.outputs[k]);
    }
    for (const std::string& v : n.inputs)
      if (!v.empty()) read_by_folded.insert(v);
    drop[i] = true;
    ++folded;
  }
  if (folded == 0) return 0;
  std::vector<Node> kept;
  kept.reserve(graph.nodes().size());
  for (size_t i = 0; i < graph.nodes().size(); ++i)
    if (!drop[i]) kept.push_back(std::move(graph.nodes()[i]));
  graph.nodes() = std::move(kept);
  // Weights only the folded nodes read (W behind its Transpose) are gone with them.
  std::set<std::string> read(graph_outputs.begin(), graph_outputs.end());
  for (const Node& n : graph.nodes())
    for (const std::string& v : n.inputs) read.insert(v);
  for (const std::string& v : read_by_folded)
    if (!read.count(v) && !graph_inputs.count(v)) graph.initializers().erase(v);
  return folded;
}

}  // namespace edgeforge
