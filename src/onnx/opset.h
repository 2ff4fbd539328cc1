// Private to src/onnx: reading models of any opset from 7 to 21 at opset 17, the Graph's
// semantics (edgeforge/graph.h).
//
// ONNX 1.12, the library edgeforge reads models with, knows opsets up to 17 and converts older
// ones with its version converter. Two kinds of node need edgeforge's own hand:
// - nodes of opsets 18 to 21, which ONNX 1.12 has never heard of: each is rewritten into its
//   opset-17 form (an axes input read into the attribute it was, Gelu and Mish into their
//   formulas), or refused with its name when it has none;
// - nodes of older opsets whose converter needs shapes the model does not record (Softmax
//   before opset 13 on a value of unknown rank) or never returns (the experimental
//   ConstantFill): they are hidden from the converter and written back in opset-17 form after.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>

namespace edgeforge::onnx_detail {

// The highest opset of the default domain edgeforge reads (models of 18 to it are rewritten).
inline constexpr int64_t kNewestReadableOpset = 21;

// Rewrites a model of default-domain opset 18 to 21 into opset 17 (and IR version 8), in place.
// Throws edgeforge::Error naming the first node that has no opset-17 form. `label` starts
// every message ("model 'x.onnx'").
void rewrite_to_opset17(onnx::ModelProto& model, int64_t from, const std::string& label);

// Before ONNX's version converter runs on a model of opset `from` < 17 whose value_info holds
// the inferred shapes: hides the nodes the converter cannot take as Identity nodes carrying
// their op type in an attribute. Returns how many it hid.
int hide_unconvertible_nodes(onnx::ModelProto& model, int64_t from, const std::string& label);

// After the converter: writes each hidden node back in its opset-17 form.
void restore_hidden_nodes(onnx::ModelProto& model, const std::string& label);

}  // namespace edgeforge::onnx_detail
