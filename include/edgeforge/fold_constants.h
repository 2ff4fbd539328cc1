// edgeforge/fold_constants.h: constant folding at load, as ONNX Runtime does: every node whose
// inputs are all constant is computed once with its own kernel, and its outputs become
// initializers.
//
// PyTorch's exports compute weights at run time that never change: a MatMul's weight
// transposed and reshaped by nn.MultiheadAttention, a scale multiplied into a bias. Folded, the
// passes that look for constant weights (the inference plan, quantization, structured pruning,
// partition byte counts) see them. The values are those the executor would compute (the same
// kernels), so the model's outputs do not change. Not folded: the quantization ops (a QDQ
// weight must stay QDQ for the int8 lowering), random ops, Dropout, Constant nodes themselves,
// graph outputs, and nodes whose outputs would be larger than their inputs plus 64 KiB (an
// Expand or ConstantOfShape would bloat the file).
//
//   Graph g = load_onnx("bert.onnx");  // already folded: load_onnx calls it
#pragma once

#include <cstdint>

#include "edgeforge/graph.h"

namespace edgeforge {

// The number of nodes folded. Initializers only the folded nodes read are removed.
int64_t fold_constants(Graph& graph);

}  // namespace edgeforge
