// edgeforge/quantize.h: graph transforms that write a model in ONNX's QDQ form, shared by the
// sptq, dynamic and qat strategies.
//
// A quantization unit is a Conv, Gemm or MatMul with a constant float weight, plus what the
// int8 kernels fuse after it (a bias Add after a MatMul, a Relu). Static quantization puts a
// QuantizeLinear -> DequantizeLinear pair on every unit's input and output activation (uint8,
// per tensor, range from calibration) and stores each weight as int8 (symmetric, per output
// channel or per tensor) behind a DequantizeLinear. Run as written, the result is the float
// fake-quant reference; edgeforge/lower.h turns it into int8 kernels.
//
//   Graph g = load_onnx("resnet.onnx");
//   fold_batch_norm(g);
//   std::vector<QuantUnit> units = find_quant_units(g);
//   auto ranges = calibrate(g, activation_points(units), batches, CalibrationOptions{}, 1);
//   write_qdq(g, units, ranges, QdqOptions{});
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "edgeforge/calibration.h"
#include "edgeforge/graph.h"
#include "edgeforge/int8.h"

namespace edgeforge {

// Folds each BatchNormalization that is the only reader of a Conv's output into that Conv's
// weight and bias (inference statistics). Returns how many were folded.
int fold_batch_norm(Graph& graph);

struct QuantUnit {
  std::string node;     // the Conv / Gemm / MatMul
  std::string op_type;
  std::string input;    // activation input value
  std::string weight;   // float initializer
  bool weight_in_out = false;  // weight stored [in, out] (MatMul, Gemm without transB)
  std::string output;   // value after the fused tail (bias Add, then an activation the int8
                        // kernels apply: Relu, ReLU6 as Clip, HardSwish, HardSigmoid,
                        // Sigmoid, SiLU)
};

// Units in graph order: the nodes whose op can quantize (OpCapabilities::quant in
// edgeforge/ops.h: Conv, Gemm, MatMul). A node whose weight is computed, shared with another
// node, or not float is skipped. `linear_only` keeps the ops whose int8 kernel also runs
// dynamically (Gemm and MatMul: dynamic quantization).
std::vector<QuantUnit> find_quant_units(const Graph& graph, bool linear_only = false);

// The activation values static quantization observes: every unit's input and output, once
// each, in graph order.
std::vector<std::string> activation_points(const std::vector<QuantUnit>& units);

// uint8 per-tensor parameters for a range that contains 0: scale = (hi - lo) / 255,
// zero point = round(-lo / scale).
QuantParams uint8_params(float lo, float hi);

using Ranges = std::map<std::string, std::pair<float, float>>;

// Runs the float graph on `batches` (each the graph's inputs in order) and observes `points`.
// Error naming the calibration data when a batch does not fit the model's inputs.
Ranges calibrate(const Graph& graph, const std::vector<std::string>& points,
                 const std::vector<std::vector<at::Tensor>>& batches,
                 const CalibrationOptions& options, int threads);

struct QdqOptions {
  bool per_channel = true;  // weights: symmetric int8 per output channel, else per tensor
  // 7: weights in [-63, 63], multiplied exactly by the int8 kernels of every CPU; 8: [-127, 127],
  // exact only where the CPU has VNNI (int8_products_saturate in edgeforge/lower.h).
  int weight_bits = 7;
};

// Static quantization: Q/DQ on every point in `ranges`, int8 weights for every unit.
void write_qdq(Graph& graph, const std::vector<QuantUnit>& units, const Ranges& ranges,
               const QdqOptions& options);

// Quantization-aware training's form of static quantization, for the reference executor in
// training: every point in `ranges` goes through an internal FakeQuant node whose scale and
// zero point are the scalar initializers fake_quant_params(point) (observers update them in
// place), and every unit weight through FakeQuantWeight (int8, symmetric, from its current
// values). write_qdq on the trained float graph then gives the deployable model. Returns, for
// each point, the value holding it before fake quantization (what observers watch).
std::map<std::string, std::string> write_fake_quant(Graph& graph, const std::vector<QuantUnit>& units, const Ranges& ranges,
                      const QdqOptions& options);
std::pair<std::string, std::string> fake_quant_params(const std::string& point);

// Dynamic quantization: int8 weights for every unit, each unit input through
// DynamicQuantizeLinear -> DequantizeLinear (ranges taken at run time).
void write_dynamic(Graph& graph, const std::vector<QuantUnit>& units, const QdqOptions& options);

}  // namespace edgeforge
