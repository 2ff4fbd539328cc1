// The lowering passes as an op's lowering hooks see them (OpCapabilities::plan, int8_layer and
// int8_pattern in edgeforge/ops.h): the graph being rewritten, indexed, the shared matchers and
// what a hook may do to the graph. The passes in src/runtime implement these views
// (lower_plan.cpp, lower_int8.cpp, over the index of rewrite.h), so a hook lives with its op
// here in src/ops without src/ops including the runtime. The fused nodes a hook emits are the
// runtime's kernels, named by op type: their attributes are documented with the kernels
// (src/runtime/plan_ops.cpp, plan_int8.cpp; src/ops/int8.cpp).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "edgeforge/graph.h"

namespace edgeforge {

// Who produces and who reads each value of the graph a pass rewrites, and its constants.
class GraphMatcher {
 public:
  virtual const Node& node(size_t i) const = 0;
  virtual std::optional<size_t> producer_index(const std::string& v) const = 0;
  virtual const Node* producer(const std::string& v) const = 0;  // nullptr: an input, a constant
  virtual const std::vector<size_t>& consumers(const std::string& v) const = 0;
  virtual bool is_graph_output(const std::string& v) const = 0;
  virtual bool is_graph_input(const std::string& v) const = 0;
  // The single node reading `v`, when exactly one does, `v` is not a graph output and that
  // node is not already part of a fused group.
  virtual std::optional<size_t> only_consumer(const std::string& v) const = 0;
  virtual bool taken(size_t i) const = 0;  // already part of a fused group
  // A constant by name (initializer, Constant node, or one a hook added); undefined otherwise.
  virtual at::Tensor constant(const std::string& v) const = 0;
  virtual std::optional<float> scalar(const std::string& v) const = 0;  // one float constant
  // The exact GELU torch.onnx writes from `y` (Div, Erf, Add, Mul, Mul): its output, and its
  // nodes appended to `nodes`.
  virtual std::optional<std::string> exact_gelu(const std::string& y,
                                                std::vector<size_t>* nodes) const = 0;
  // A new constant for a fused node; returns its name.
  virtual std::string add_initializer(const std::string& name, const at::Tensor& t) = 0;

 protected:
  ~GraphMatcher() = default;
};

// An activation a layer kernel applies to its result before writing it (a oneDNN post-op), as
// real exports write it after a convolution or linear layer: Relu; Clip with constant bounds
// (ReLU6); HardSwish; HardSigmoid; Sigmoid; and SiLU as x * Sigmoid(x).
struct Activation {
  std::string kind;  // relu, clip, hardswish, hardsigmoid, sigmoid, swish
  float alpha = 0.f, beta = 0.f;  // clip: bounds; hardsigmoid: slope and offset; swish: 1
};

// The activation that reads `tail` and nothing else does, if any: its nodes join `absorbed`
// and `tail` becomes its output (src/ops/activation.cpp).
std::optional<Activation> fusable_activation(const GraphMatcher& pass, std::string& tail,
                                             std::vector<size_t>& absorbed);

// The activation on `y` with ATen, as the nodes compute it: the reference of the fused kernels.
at::Tensor apply_activation(const at::Tensor& y, const Activation& activation);

// The activation of a fused node's attributes `activation`, `activation_alpha` and
// `activation_beta` (kind "" when it has none); throws naming the node for an unknown kind.
Activation activation_of(const Node& node);

// Writes `activation` into a fused node's attributes (kind "" for none).
void set_activation(Node& node, const std::optional<Activation>& activation);

// lower_plan (edgeforge/lower.h), for PlanHook.
class PlanRewriter : public GraphMatcher {
 public:
  // Add(tail, other) with `other` computed at run time (a residual, not a bias): on a match the
  // Add joins `absorbed`, `tail` becomes its output, and `other` is returned.
  virtual std::optional<std::string> residual_add(std::string& tail,
                                                  std::vector<size_t>& absorbed) const = 0;
  // The plan kernel `fused` (its domain set to kEdgeforgeDomain) replaces the nodes `absorbed`.
  virtual void place(Node fused, const std::vector<size_t>& absorbed) = 0;
  // `n` stays on the reference kernels, for the reason `why` (LoweringReport::plan_fallback).
  virtual void fall_back(const Node& n, const std::string& why) = 0;

 protected:
  ~PlanRewriter() = default;
};

// An int8 weight: DQ(int8 constant, constant scale, zero points 0), per tensor or per output
// channel.
struct Int8Weight {
  std::string values, scale;  // names of the int8 constant and its scale
  bool in_out = false;        // stored [in, out] (MatMul, Gemm without transB)
  int64_t out_channels = 0;
};

// What an Int8LayerHook finds; lower_int8 builds the kernel from it: the quantized input, the
// weight and bias, then an optional Relu and the Q of the output (static), or DynQLinear.
struct Int8Layer {
  Int8Weight weight;
  std::string bias;              // a float constant of one value per output channel, "" for none
  std::vector<size_t> absorbed;  // on entry the node; the hook adds what its kernel takes after it
  std::string tail;              // on entry the node's output; the value the kernel computes
  std::string kernel;            // the static int8 kernel (src/ops/int8.cpp): QConv, QLinear
  std::map<std::string, Attribute> attributes;  // its own attributes
};

// lower_int8 (edgeforge/lower.h), for Int8LayerHook and Int8PatternHook.
class Int8Rewriter : public GraphMatcher {
 public:
  // The int8 weight behind input `index` of `n` (stored [in, out] when `in_out`); nullopt
  // with `why` set when it is not one the kernels take.
  virtual std::optional<Int8Weight> weight(const Node& n, size_t index, bool in_out,
                                           std::string* why) const = 0;
  // A bias the kernels take: a float constant of `channels` values, or DQ of an int32 one
  // (dequantized into a new initializer). "" with `why` set otherwise.
  virtual std::string float_bias(const std::string& v, int64_t channels, std::string* why) = 0;
  // `v` is a uint8 activation that travels as quint8 between int8 kernels.
  virtual bool quantized(const std::string& v) const = 0;
  // What follows `tail` in a static int8 pattern: an optional activation (`relu_only`: only a
  // Relu), then the only reader, a Q into a quantized value. On a match the nodes join
  // `absorbed` and `fused` gets the Q's output, the output parameters and the activation (a
  // Relu as attribute relu, another with set_activation); false (nothing changed) otherwise.
  virtual bool quantized_tail(std::string tail, std::vector<size_t>& absorbed, Node& fused,
                              bool relu_only = false) const = 0;
  // `n` stays float for the reason `why` (LoweringReport::kept_float). Returns false, for
  // `return pass.keep_float(...)` in an Int8LayerHook.
  virtual bool keep_float(const Node& n, const std::string& why) = 0;
  // The int8 kernel `fused` of a pattern (QAdd, QMaxPool) replaces `absorbed`; a QAdd counts
  // in LoweringReport::int8_adds.
  virtual void place_int8(Node fused, const std::vector<size_t>& absorbed) = 0;

 protected:
  ~Int8Rewriter() = default;
};

}  // namespace edgeforge
