// edgeforge/summary.h: what `edgeforge info` reports about a model.
//
//   Graph g = load_onnx("resnet.onnx");
//   ModelSummary s = summarize(g);   // MACs for one sample (batch fixed to 1)
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "edgeforge/graph.h"

namespace edgeforge {

struct ModelSummary {
  std::vector<ValueInfo> inputs, outputs;
  std::map<std::string, int64_t> op_counts;   // by op type
  int64_t parameters = 0;                     // scalars in floating-point initializers
  int64_t int8_parameters = 0;                // scalars in int8 initializers (quantized weights)
  int64_t initializer_bytes = 0;
  int64_t macs = 0;                           // multiply-accumulates per sample
  std::map<std::string, int64_t> macs_by_op;  // Conv, Gemm, MatMul
  // MACs that the int8 lowering (edgeforge/lower.h) runs on static / dynamic int8 kernels.
  int64_t int8_macs = 0, dynamic_int8_macs = 0;
  // Quantized Conv/Gemm/MatMul nodes that stay float, with the reason ("node: why").
  std::vector<std::string> kept_float;
  std::vector<std::string> unsupported_ops;   // op types the runtime lacks ("Op (node)")
  // The inference plan (lower_plan): its kernels (Dnnl*, Plan*) by type, the nodes left on the
  // reference ATen kernels, and the planned op types that fell back, with the reason.
  std::map<std::string, int64_t> plan_kernels;
  int64_t reference_nodes = 0;
  std::vector<std::string> plan_fallback;
};

// Builds the model's inference session and runs it once on sample inputs (zeros, as
// sample_values); throws Error naming the model when the plan cannot run it, so a model that
// `info` accepts is one every command runs.
// Counts MACs of Conv, Gemm and MatMul from shapes inferred with batch 1 (symbolic sequence
// lengths take `seq_len`), and how many of them run in int8 once QDQ patterns are lowered.
// `graph` is not modified.
ModelSummary summarize(const Graph& graph, int64_t seq_len = 128);

std::string format_shape(const ValueInfo& v);  // "float [N,1,28,28]"

// The type and shape of every model input and node output, from one run of the graph on zeros
// with symbolic dimensions fixed (the first to `batch`, the others to `seq_len`): exact also
// through the Shape / Reshape chains of the text models. Error when the runtime lacks an op.
struct SampleValue {
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> shape;
};
std::map<std::string, SampleValue> sample_values(const Graph& graph, int64_t seq_len,
                                                 int64_t batch = 1);

}  // namespace edgeforge
