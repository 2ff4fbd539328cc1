// edgeforge/onnx_io.h: ONNX import and export of the Graph, ONNX's checker and shape inference.
//
// The Graph is ONNX-shaped (edgeforge/graph.h), so conversion is a field-by-field mapping of the
// ModelProto. Export writes IR version 8 and opset 17 of the default domain and always passes
// the libonnx checker. Import accepts opsets up to 17 and gives the Graph opset-17 semantics:
// a model of an older opset whose ops changed since is upgraded with ONNX's version converter.
// Every problem with a model is an edgeforge::Error of one line that names the model.
//
//   Graph g = load_onnx("resnet.onnx");
//   infer_shapes(g, /*batch=*/1);        // g.value_info() now has every intermediate shape
//   save_onnx(g, "resnet.copy.onnx");
//
// Tensors (initializers, tensor attributes, the .pb files of the ONNX backend tests) support
// FLOAT, DOUBLE, FLOAT16, BFLOAT16, INT8, UINT8, INT16, INT32, INT64 and BOOL.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "edgeforge/graph.h"

namespace edgeforge {

// Reads, checks and converts the .onnx file at `path`; errors name the file.
Graph load_onnx(const std::string& path);

// Like load_onnx for a serialised ModelProto already in memory; `what` names it in errors.
Graph graph_from_onnx_bytes(const std::string& bytes, const std::string& what);

// Converts and checks `graph`, then writes it to `path` through a temporary file and a rename,
// so a reader never sees a half-written model. Throws Error when the checker rejects the graph.
void save_onnx(const Graph& graph, const std::string& path);

// The checked, serialised ModelProto of `graph`.
std::string graph_to_onnx_bytes(const Graph& graph);

// Runs the libonnx checker on the converted graph; throws Error with its message on one line.
void check_onnx(const Graph& graph);

// Runs ONNX shape inference (strict, with data propagation) on the converted graph and replaces
// graph.value_info() with the shapes of all intermediate values; outputs get the inferred size
// of each dimension that is unknown (neither fixed nor symbolic). When batch > 0 the leading
// dimension of each graph input that is not fixed is first set to `batch` in graph.inputs(),
// so every shape is concrete for counting MACs; the graph then only runs at that batch size
// (use a copy to keep it symbolic). Throws Error naming the graph on an inconsistency.
void infer_shapes(Graph& graph, int64_t batch = -1);

// The validation pass load_onnx and graph_from_onnx_bytes run on every model before anything
// else touches it (constant folding, shape inference, the inference plan): graph structure
// (Graph::validate), at least one output and none that is also an input, input and output
// shapes whose one sample fits in this host's memory, and each node of an op the runtime knows
// prepared once, which range-checks its attributes (strides, dilations, pads, group, axes,
// kernel shapes) and constant inputs (QDQ scales finite and positive, zero points of their
// type). Throws Error naming `label` and the node.
void validate_model(const Graph& graph, const std::string& label);

// Reads a serialised TensorProto (.pb file, as in the ONNX backend tests) into a contiguous
// CPU tensor that owns its memory; errors name the file.
at::Tensor tensor_from_onnx_proto_file(const std::string& path);

}  // namespace edgeforge
