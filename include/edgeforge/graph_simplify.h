// edgeforge/graph_simplify.h: rewrites made to every model as it is loaded, which change no value
// the model computes.
//
// PyTorch's exporter stores a weight once and shares every equal weight through an Identity node
// (EfficientNet's squeeze-excitation biases, nn.TransformerEncoder's projections), and the
// passes that look for constant weights (the inference plan, quantization, partition byte
// counts) see an Identity's output, not a constant. ONNX Runtime folds these at load; so does
// edgeforge:
//   - an Identity of a weight (an initializer that is not a graph input) becomes a weight of its
//     own, an initializer holding the same tensor (no copy), as the two parameters were in the
//     PyTorch model; an Identity of a Constant node's output is removed and its readers read
//     the Constant's output;
//   - nodes whose outputs nothing reads (and that are not graph outputs) are removed.
// Graph outputs keep their names, so files edgeforge writes stay valid ONNX with the same
// interface.
//
//   Graph g = load_onnx("efficientnet_b0.onnx");  // already simplified: load_onnx calls it
//   SimplifyReport r = simplify_graph(g);          // on a graph built in memory
#pragma once

#include <cstdint>

#include "edgeforge/graph.h"

namespace edgeforge {

struct SimplifyReport {
  int64_t identities_folded = 0;   // Identity nodes of constants removed
  int64_t dead_nodes_removed = 0;  // nodes nothing read (the folded Identities not counted)
  bool changed() const { return identities_folded + dead_nodes_removed > 0; }
};

SimplifyReport simplify_graph(Graph& graph);

}  // namespace edgeforge
