// edgeforge/lower.h: the int8 lowering pass and the inference session that runs its result.
//
// A quantized model is stored in ONNX's QDQ form: QuantizeLinear / DequantizeLinear pairs
// around float ops (edgeforge/quantize.h writes it). Run as written, the graph is the float
// "fake-quant" reference. lower_int8() rewrites it for inference:
//
//   DQ(x_q) -> Conv | Gemm | MatMul (weight DQ(int8 const)) [-> Add bias] [-> Relu] -> Q -> y_q
//      becomes one QConv / QLinear node on LibTorch's int8 kernels (edgeforge/int8.h) with the
//      weights prepacked once; uint8 activations stay quantized between such nodes;
//   DynamicQuantizeLinear(x) -> DQ -> MatMul | Gemm (weight DQ(int8 const)) [-> Add bias]
//      becomes one DynQLinear node (activation range computed at run time);
//   DQ(qa) + DQ(qb) [-> Relu] -> Q -> y_q (residual adds) becomes one QAdd on uint8 data;
//   Q / DQ of activations that remain become QuantizeTensor / DequantizeTensor.
//
// Everything else stays float and runs on the reference kernels. The emitted nodes live in the
// internal domain kEdgeforgeDomain; a lowered graph is for running, never for saving.
//
//   InferenceSession session(load_onnx("resnet.sptq.onnx"));
//   at::Tensor logits = session.run({images}, RunOptions{})[0];
//   session.lowering().int8_nodes;   // original Conv/Gemm/MatMul names that run in int8
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "edgeforge/graph.h"
#include "edgeforge/runtime.h"

namespace edgeforge {

struct LoweringReport {
  std::vector<std::string> int8_nodes;     // Conv/Gemm/MatMul nodes now run by static int8 kernels
  std::vector<std::string> dynamic_nodes;  // ... by dynamic int8 kernels
  // Conv/Gemm/MatMul nodes with a quantized (DQ) input that stayed float, and why.
  std::vector<std::pair<std::string, std::string>> kept_float;
  int64_t int8_adds = 0;         // Add [-> Relu] between quantized values, now one QAdd
  int64_t quantize_nodes = 0;    // Q / DynamicQuantizeLinear nodes in the input graph
  // The inference plan (lower_plan): fused oneDNN nodes by the name of their first original
  // node, and the Conv / MatMul / Gemm / LayerNormalization / Softmax nodes it left on the
  // reference kernels, with the reason.
  std::vector<std::string> plan_nodes;
  std::vector<std::pair<std::string, std::string>> plan_fallback;
  bool quantized() const { return quantize_nodes > 0; }
};

// Lowers every QDQ pattern above; a graph without QDQ nodes is returned unchanged. Patterns
// that do not fit a kernel (per-tensor int8 activations, a weight with non-zero zero points,
// 1-D or 3-D convolution, ...) stay float and are listed in the report with the reason.
Graph lower_int8(const Graph& graph, LoweringReport* report = nullptr);

// The float half of the inference plan: Conv (with batch norm folded, ReLU and residual adds
// fused), MatMul / Gemm by constant weights (bias, ReLU or exact GELU, residual fused),
// LayerNormalization and Softmax (with a preceding scale and additive mask) become oneDNN
// kernels (src/runtime/plan_ops.cpp) with primitives created once per input shape and weights
// reordered once; activations stay in oneDNN's blocked layout between convolutions. Runs after
// lower_int8; everything else is left to the reference kernels and listed in plan_fallback
// when it is one of the planned op types.
Graph lower_plan(const Graph& graph, LoweringReport* report = nullptr);

// The instruction set oneDNN dispatches the plan's kernels to on this CPU, detected at run time,
// and what int8 products run on, e.g. "avx512_core_vnni (int8 dot products: AVX-512 VNNI)".
// oneDNN takes AMX or VNNI whenever the CPU has them; `info` and the benches print this.
std::string plan_cpu_isa();

// True when this CPU's int8 kernels multiply without a dot-product instruction (no AVX-512
// VNNI, AVX-VNNI or AMX): oneDNN then adds each two neighbouring u8 x s8 products in 16 bits
// (vpmaddubsw), which saturates once 255 * (|w0| + |w1|) passes 32767, so the result is exact
// only for weights within +-64 (OpenVINO documents the same "saturation issue"). lower_int8
// keeps a layer with larger weights float on such a CPU; sptq, qat and dynamic write 7-bit
// weights by default (option weight-bits), which every CPU multiplies exactly. EDGEFORGE_NO_VNNI=1
// makes it true on any CPU (tests).
bool int8_products_saturate();
// The largest |weight| the int8 kernels multiply exactly here: 127, or 64 where
// int8_products_saturate().
int64_t exact_int8_weight_limit();

struct SessionOptions {
  // false: only the int8 lowering, every float op on the reference ATen kernels (the path
  // the plan is tested against, and the "before" of bench/plan_vs_reference).
  bool plan = true;
};

// A model ready for inference: the graph lowered once, then run by the executor. Accuracy and
// latency of every model are measured through this. Not for concurrent use: kernels keep
// their output buffers between runs.
class InferenceSession {
 public:
  explicit InferenceSession(const Graph& graph, SessionOptions options = {});
  InferenceSession(const InferenceSession&) = delete;  // the executor points into graph_
  InferenceSession& operator=(const InferenceSession&) = delete;
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs, const RunOptions& opts);
  const Graph& graph() const { return graph_; }  // the lowered graph
  const LoweringReport& lowering() const { return report_; }

 private:
  LoweringReport report_;  // before graph_: lowering fills it while graph_ is built
  Graph graph_;
  std::unique_ptr<Executor> exec_;
};

}  // namespace edgeforge
