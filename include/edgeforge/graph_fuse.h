// edgeforge/graph_fuse.h: op decompositions that exporters write, rewritten at load into the one
// ONNX op (of opset 17) that means the same, as ONNX Runtime's graph optimisers do.
//
// An exporter that targets an opset without an op writes its formula instead: PyTorch at
// opsets below 17 writes nn.LayerNorm as ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul
// and Add, and below 14 nn.Hardswish as x * HardSigmoid(x). Every pass after loading (the
// inference plan's LayerNorm and convolution kernels, quantization, MAC counts, partitions)
// then sees the op, whatever opset the user exported at. The ops compute the same formula; the
// results differ from the node-by-node ones only in float rounding.
//   - LayerNorm: x -> ReduceMean(axes [-1]) -> Sub from x -> Pow 2 -> ReduceMean(axes [-1]) ->
//     Add epsilon -> Sqrt -> Div -> Mul by a constant scale -> Add a constant bias, every step
//     read only by the next, becomes LayerNormalization(x, scale, bias, axis -1, epsilon);
//   - HardSwish: Mul(x, HardSigmoid(x)) with alpha 1/6 and beta 1/2 becomes HardSwish(x).
// Graph outputs keep their names, so files edgeforge writes stay valid ONNX with the same
// interface.
//
//   Graph g = load_onnx("bert.op13.onnx");  // already fused: load_onnx calls it
#pragma once

#include <cstdint>

#include "edgeforge/graph.h"

namespace edgeforge {

struct FuseReport {
  int64_t layer_norms = 0;  // decomposed LayerNorms made LayerNormalization
  int64_t hard_swishes = 0;  // x * HardSigmoid(x) made HardSwish
  int64_t total() const { return layer_norms + hard_swishes; }
};

FuseReport fuse_decompositions(Graph& graph);

}  // namespace edgeforge
