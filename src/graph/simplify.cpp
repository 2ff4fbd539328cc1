// Load-time rewrites that change no value (edgeforge/graph_simplify.h).
#include "edgeforge/graph_simplify.h"

#include <map>
#include <set>
#include <string>
#include <vector>

namespace edgeforge {

SimplifyReport simplify_graph(Graph& graph) {
  SimplifyReport report;
  std::set<std::string> graph_inputs, graph_outputs;
  for (const ValueInfo& v : graph.inputs()) graph_inputs.insert(v.name);
  for (const ValueInfo& v : graph.outputs()) graph_outputs.insert(v.name);
  std::set<std::string> constants;  // values fixed when the model is loaded
  for (const auto& [name, tensor] : graph.initializers())
    if (!graph_inputs.count(name)) constants.insert(name);  // an input may override its initializer
  for (const Node& n : graph.nodes())
    if (n.op_type == "Constant" && n.domain.empty() && n.outputs.size() == 1)
      constants.insert(n.outputs[0]);

  // Identity chains of constants, in graph order (ONNX nodes are topologically sorted). The
  // exporter shares a weight through Identity when two parameters of the PyTorch model are equal
  // (the layers nn.TransformerEncoder deep-copies, zero biases): each output becomes a weight of
  // its own again, an initializer holding the same tensor (no copy), so that every pass treats
  // the model's parameters as PyTorch did. An Identity of a Constant node's output is an alias
  // of it, which its readers read instead.
  std::map<std::string, std::string> alias;
  std::vector<Node> kept;
  kept.reserve(graph.nodes().size());
  for (Node& n : graph.nodes()) {
    for (std::string& in : n.inputs)
      if (auto it = alias.find(in); it != alias.end()) in = it->second;
    const bool foldable = n.op_type == "Identity" && n.domain.empty() && n.inputs.size() == 1 &&
                          n.outputs.size() == 1 && constants.count(n.inputs[0]) &&
                          !graph_outputs.count(n.outputs[0]) && !graph_inputs.count(n.outputs[0]);
    if (foldable) {
      const auto init = graph.initializers().find(n.inputs[0]);
      if (init != graph.initializers().end()) graph.initializers()[n.outputs[0]] = init->second;
      else alias[n.outputs[0]] = n.inputs[0];
      graph.value_info().erase(n.outputs[0]);
      constants.insert(n.outputs[0]);
      ++report.identities_folded;
      continue;
    }
    kept.push_back(std::move(n));
  }

  // Dead nodes, from the end: a node is live when a graph output or a live node reads one of
  // its outputs.
  std::set<std::string> read(graph_outputs.begin(), graph_outputs.end());
  std::vector<bool> live(kept.size(), false);
  for (size_t k = kept.size(); k-- > 0;) {
    for (const std::string& out : kept[k].outputs)
      if (!out.empty() && read.count(out)) live[k] = true;
    if (!live[k]) continue;
    for (const std::string& in : kept[k].inputs)
      if (!in.empty()) read.insert(in);
  }
  std::vector<Node> out;
  out.reserve(kept.size());
  for (size_t k = 0; k < kept.size(); ++k) {
    if (live[k]) {
      out.push_back(std::move(kept[k]));
      continue;
    }
    for (const std::string& o : kept[k].outputs) graph.value_info().erase(o);
    ++report.dead_nodes_removed;
  }
  graph.nodes() = std::move(out);
  return report;
}

}  // namespace edgeforge
