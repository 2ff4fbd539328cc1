// edgeforge/ops.h: the op registry, one entry per ONNX op type.
//
// Each entry knows how to prepare a kernel for one node: attributes are parsed and checked once
// at prepare time, and the returned Kernel runs with ATen ops on every execution. In float mode
// every kernel is differentiable, so the same kernels train and serve as the numerical
// reference for faster paths. Each entry also states what the passes over graphs need to know
// of the op (OpCapabilities: its MACs, how it quantizes, how it carries prunable units, its
// lowering to the inference plan and to int8 kernels), so adding an op touches one file under
// src/ops/:
//
//   EF_REGISTER_OP(Relu, OpDef{"Relu", 1, 1, [](const Node&, const Graph&) -> Kernel {
//     return [](const TensorList& in, TensorList& out, const KernelContext&) {
//       out[0] = at::relu(in[0]);
//     };
//   }});
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "edgeforge/graph.h"

namespace edgeforge {

using TensorList = std::vector<at::Tensor>;

struct KernelContext {
  bool training = false;           // batch norm uses batch statistics, dropout drops
  bool freeze_batch_norm = false;  // training, but batch norm on its running statistics
};

// Runs one prepared node: `in` holds the node's inputs in order (undefined tensors for omitted
// optional inputs), `out` is sized to the node's outputs and receives them.
using Kernel = std::function<void(const TensorList& in, TensorList& out, const KernelContext&)>;

// Builds a kernel for `node`; throws edgeforge::Error naming the node for unsupported
// attributes. `graph` gives access to initializers (constant inputs such as Reshape shapes).
using PrepareFn = std::function<Kernel(const Node& node, const Graph& graph)>;

// The domain of edgeforge's internal ops: the int8 kernels the QDQ lowering pass emits
// (edgeforge/lower.h). They exist only in lowered graphs, which are never written to a file.
inline constexpr const char* kEdgeforgeDomain = "ai.edgeforge";

// ---- Capabilities: what the passes over graphs read from an op's entry ----

// The concrete shapes of a node's inputs or outputs, in order; nullptr where one is unknown.
using ValueShapes = std::vector<const std::vector<int64_t>*>;
// Multiply-accumulates of one run of `node` (edgeforge info, edgeforge/summary.h).
using MacsFn = int64_t (*)(const Node& node, const ValueShapes& inputs, const ValueShapes& outputs);

// How static and dynamic quantization (find_quant_units, edgeforge/quantize.h) take an op:
// input 0 is the activation (uint8 per tensor, Q/DQ around it), input 1 a float weight of its
// own (int8, symmetric, per output channel).
struct QuantCapability {
  // The weight's output-channel axis (0 stored [out, ...], 1 stored [in, out]) when the node has
  // an int8 kernel with this weight; nullopt when it does not. Null: the op is never quantized.
  std::optional<int64_t> (*weight_axis)(const Node& node, const at::Tensor& weight) = nullptr;
  bool dynamic = false;   // its kernel also runs with a run-time activation range (write_dynamic)
  bool bias_add = false;  // an Add of a constant bias right after it joins the unit
};

// How an op carries the units structured pruning removes together (prunable_dimensions,
// edgeforge/prune.h): channels on axis 1, or features on the last axis.
enum class UnitRole {
  kBlocks,    // the analysis does not know it: units reaching it are never removed (default)
  kWeighted,  // its weight (input 1) reads units on one axis and makes new ones on another
  kNorm,      // per-unit scale, bias, mean and variance (BatchNormalization's inputs 1 to 4)
  // Element-wise arithmetic of two operands, or of one and a scalar (Add: or a bias vector).
  kAdd,
  kSub,
  kMul,
  kDiv,
  kPerUnit,     // one operand, each unit on its own: activations, pooling windows, Identity
  kGlobalPool,  // the spatial axes to 1, units kept on axis 1
  kFlatten,     // [N, C, 1, 1] to [N, C]
};

// A kWeighted node's weight layout, for its attributes.
struct WeightedUnits {
  int64_t rank = 2;       // of the weight; another rank blocks
  int64_t in_axis = 0;    // weight axis of the units read
  int64_t out_axis = 1;   // weight axis of the units made
  bool channels = false;  // units on axis 1 (NCHW), else on the last axis
  int64_t group = 1;      // grouped convolution: each group reads its share of the units
  std::string bias;       // the input adding one value per unit made, "" for none
};

struct UnitFlow {
  UnitRole role = UnitRole::kBlocks;
  // kWeighted: the layout for this node; nullopt (or no function) when the analysis cannot
  // cut it.
  std::optional<WeightedUnits> (*weighted)(const Node& node) = nullptr;
  bool keeps_zero = false;  // kPerUnit: f(0) = 0, so a removed unit stays exactly 0 after it
  // kPerUnit, kFlatten: whether the role holds for this node (Clip: bounds around 0; Flatten:
  // axis 1). Null: when the node has one input (kPerUnit), always (kFlatten).
  bool (*holds)(const Node& node, const Graph& graph) = nullptr;
};

// Lowering hooks: each rewrites the pattern its op starts into faster kernels, through the
// pass's view of the graph (src/ops/lowering.h, implemented by the passes in src/runtime).
class PlanRewriter;
class Int8Rewriter;
struct Int8Layer;

// When lower_plan offers a node to its op's plan hook; each stage visits the nodes no pattern
// took yet, in graph order.
enum class PlanStage {
  kLayers,  // the first sweep: float and int8 layers, with what follows them
  kLast,    // after every other pattern (Softmax takes its scale and mask producers)
};

// lower_plan: rewrites node `node` and what follows it into plan kernels, or says why not.
using PlanHook = void (*)(PlanRewriter& pass, size_t node);
// lower_int8, for a node whose input 0 is a dequantized uint8 activation (static, or `dynamic`
// from DynamicQuantizeLinear): the op's constraints, its int8 weight and what its kernel takes
// after it, in `layer`; false when the node stays float (the hook gave the reason).
using Int8LayerHook = bool (*)(Int8Rewriter& pass, size_t node, bool dynamic, Int8Layer* layer);
// lower_int8: any other pattern the op starts between quantized values (Add -> QAdd).
using Int8PatternHook = void (*)(Int8Rewriter& pass, size_t node);

struct OpCapabilities {
  MacsFn macs = nullptr;  // null: no MACs
  QuantCapability quant;
  UnitFlow units;
  PlanHook plan = nullptr;
  PlanStage plan_stage = PlanStage::kLayers;
  Int8LayerHook int8_layer = nullptr;
  Int8PatternHook int8_pattern = nullptr;
};

struct OpDef {
  std::string op_type;
  int min_inputs = 1;
  int max_inputs = 1;
  PrepareFn prepare;
  std::string domain = {};  // "" for ONNX's default domain, or kEdgeforgeDomain
  OpCapabilities caps = {};
};

class OpRegistry {
 public:
  static OpRegistry& global();
  // Registers an op; a second registration of the same op type is a bug.
  void add(OpDef def);
  // nullptr when the op type is unknown in `domain` ("" and "ai.onnx" are ONNX's default).
  // Not during static initialisation: other files' ops may not be registered yet.
  const OpDef* find(const std::string& op_type, const std::string& domain = "") const;
  // Sorted op types of the default domain, for error messages and `edgeforge info`.
  std::vector<std::string> op_types() const;

 private:
  std::vector<OpDef> defs_;
};

namespace detail {
struct OpRegistrar {
  explicit OpRegistrar(OpDef def) { OpRegistry::global().add(std::move(def)); }
};
}  // namespace detail

#define EF_REGISTER_OP(id, ...) \
  static const ::edgeforge::detail::OpRegistrar ef_op_registrar_##id{__VA_ARGS__}

// Reads a constant input (an initializer, or the output of a Constant node) at prepare time;
// returns an undefined tensor when the value is computed at run time.
at::Tensor constant_input(const Graph& graph, const std::string& value);

}  // namespace edgeforge
