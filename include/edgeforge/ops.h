// edgeforge/ops.h: the op registry, one entry per ONNX op type.
//
// Each entry knows how to prepare a kernel for one node: attributes are parsed and checked once
// at prepare time, and the returned Kernel runs with ATen ops on every execution. In float mode
// every kernel is differentiable, so the same kernels train and serve as the numerical
// reference for faster paths. Adding an op touches one file under src/ops/:
//
//   EF_REGISTER_OP(Relu, OpDef{"Relu", 1, 1, [](const Node&, const Graph&) -> Kernel {
//     return [](const TensorList& in, TensorList& out, const KernelContext&) {
//       out[0] = at::relu(in[0]);
//     };
//   }});
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
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

struct OpDef {
  std::string op_type;
  int min_inputs = 1;
  int max_inputs = 1;
  PrepareFn prepare;
  std::string domain = {};  // "" for ONNX's default domain, or kEdgeforgeDomain
};

class OpRegistry {
 public:
  static OpRegistry& global();
  // Registers an op; a second registration of the same op type is a bug.
  void add(OpDef def);
  // nullptr when the op type is unknown in `domain` ("" and "ai.onnx" are ONNX's default).
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
