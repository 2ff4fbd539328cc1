// Element-wise ops: activations, arithmetic with ONNX (numpy) broadcasting, comparisons and
// logic, Where, Cast and Clip. ATen broadcasts the same way ONNX multidirectional
// broadcasting does, so the binary kernels are single ATen calls.
#include <ATen/ATen.h>

#include "edgeforge/error.h"
#include "edgeforge/ops.h"
#include "util.h"

namespace edgeforge::ops {
namespace {

using UnaryFn = at::Tensor (*)(const at::Tensor&);
using BinaryFn = at::Tensor (*)(const at::Tensor&, const at::Tensor&);

OpDef unary_op(const char* op_type, UnaryFn fn) {
  return OpDef{op_type, 1, 1, [fn](const Node&, const Graph&) -> Kernel {
                 return [fn](const TensorList& in, TensorList& out, const KernelContext&) {
                   out[0] = fn(in[0]);
                 };
               }};
}

OpDef binary_op(const char* op_type, BinaryFn fn) {
  return OpDef{op_type, 2, 2, [fn](const Node&, const Graph&) -> Kernel {
                 return [fn](const TensorList& in, TensorList& out, const KernelContext&) {
                   out[0] = fn(in[0], in[1]);
                 };
               }};
}

EF_REGISTER_OP(Relu, unary_op("Relu", [](const at::Tensor& x) { return at::relu(x); }));
EF_REGISTER_OP(Sigmoid, unary_op("Sigmoid", [](const at::Tensor& x) { return at::sigmoid(x); }));
EF_REGISTER_OP(Tanh, unary_op("Tanh", [](const at::Tensor& x) { return at::tanh(x); }));
EF_REGISTER_OP(Erf, unary_op("Erf", [](const at::Tensor& x) { return at::erf(x); }));
EF_REGISTER_OP(Exp, unary_op("Exp", [](const at::Tensor& x) { return at::exp(x); }));
EF_REGISTER_OP(Log, unary_op("Log", [](const at::Tensor& x) { return at::log(x); }));
EF_REGISTER_OP(Neg, unary_op("Neg", [](const at::Tensor& x) { return at::neg(x); }));
EF_REGISTER_OP(Abs, unary_op("Abs", [](const at::Tensor& x) { return at::abs(x); }));
EF_REGISTER_OP(Sqrt, unary_op("Sqrt", [](const at::Tensor& x) { return at::sqrt(x); }));
EF_REGISTER_OP(Not, unary_op("Not", [](const at::Tensor& x) { return at::logical_not(x); }));

EF_REGISTER_OP(LeakyRelu, OpDef{"LeakyRelu", 1, 1, [](const Node& node, const Graph&) -> Kernel {
                                  const double alpha = node.attr_float("alpha", 0.01f);
                                  return [alpha](const TensorList& in, TensorList& out,
                                                 const KernelContext&) {
                                    out[0] = at::leaky_relu(in[0], alpha);
                                  };
                                }});

EF_REGISTER_OP(Add, binary_op("Add", [](const at::Tensor& a, const at::Tensor& b) {
                 return at::add(a, b);
               }));
EF_REGISTER_OP(Sub, binary_op("Sub", [](const at::Tensor& a, const at::Tensor& b) {
                 return at::sub(a, b);
               }));
EF_REGISTER_OP(Mul, binary_op("Mul", [](const at::Tensor& a, const at::Tensor& b) {
                 return at::mul(a, b);
               }));
// ONNX integer division truncates toward zero (C semantics), where at::div would give a float.
EF_REGISTER_OP(Div, binary_op("Div", [](const at::Tensor& a, const at::Tensor& b) {
                 if (at::isFloatingType(a.scalar_type()) || at::isComplexType(a.scalar_type()))
                   return at::div(a, b);
                 return at::div(a, b, "trunc");
               }));
EF_REGISTER_OP(Equal, binary_op("Equal", [](const at::Tensor& a, const at::Tensor& b) {
                 return at::eq(a, b);
               }));
EF_REGISTER_OP(Less, binary_op("Less", [](const at::Tensor& a, const at::Tensor& b) {
                 return at::lt(a, b);
               }));
EF_REGISTER_OP(Greater, binary_op("Greater", [](const at::Tensor& a, const at::Tensor& b) {
                 return at::gt(a, b);
               }));
EF_REGISTER_OP(And, binary_op("And", [](const at::Tensor& a, const at::Tensor& b) {
                 return at::logical_and(a, b);
               }));

// ONNX Pow keeps the type of the base; ATen promotes (int ** float -> float), so cast back.
EF_REGISTER_OP(Pow,
               OpDef{"Pow", 2, 2, [](const Node& node, const Graph& graph) -> Kernel {
                       c10::optional<at::Scalar> exponent = prepared_scalar(node, graph, 1);
                       if (exponent) {
                         // An exponent of shape [1, 1] still broadcasts a lower-rank base upwards,
                         // which only the tensor form does.
                         at::Tensor exponent_tensor = prepared_input(node, graph, 1);
                         return [e = *exponent, exponent_tensor](
                                    const TensorList& in, TensorList& out, const KernelContext&) {
                           at::Tensor y = in[0].dim() >= exponent_tensor.dim()
                                              ? at::pow(in[0], e)
                                              : at::pow(in[0], exponent_tensor);
                           out[0] = y.scalar_type() == in[0].scalar_type()
                                        ? y
                                        : y.to(in[0].scalar_type());
                         };
                       }
                       return [](const TensorList& in, TensorList& out, const KernelContext&) {
                         at::Tensor y = at::pow(in[0], in[1]);
                         out[0] =
                             y.scalar_type() == in[0].scalar_type() ? y : y.to(in[0].scalar_type());
                       };
                     }});

EF_REGISTER_OP(Where, OpDef{"Where", 3, 3, [](const Node&, const Graph&) -> Kernel {
                              return
                                  [](const TensorList& in, TensorList& out, const KernelContext&) {
                                    out[0] = at::where(in[0], in[1], in[2]);
                                  };
                            }});

EF_REGISTER_OP(Cast, OpDef{"Cast", 1, 1, [](const Node& node, const Graph&) -> Kernel {
                             EF_CHECK(node.attr_int("saturate", 1) == 1, node.describe(),
                                      ": saturate 0 (opset 19 float8 casts) is not supported");
                             const at::ScalarType to =
                                 scalar_type_from_onnx(node.attr_int("to"), node);
                             return [to](const TensorList& in, TensorList& out,
                                         const KernelContext&) { out[0] = in[0].to(to); };
                           }});

// Bounds folded into scalars when constant; a bound computed at run time (or a trainable one)
// stays a tensor so its gradient flows.
EF_REGISTER_OP(Clip,
               OpDef{"Clip", 1, 3, [](const Node& node, const Graph& graph) -> Kernel {
                       const bool has_min = node.inputs.size() > 1 && !node.inputs[1].empty();
                       const bool has_max = node.inputs.size() > 2 && !node.inputs[2].empty();
                       c10::optional<at::Scalar> min = prepared_scalar(node, graph, 1);
                       c10::optional<at::Scalar> max = prepared_scalar(node, graph, 2);
                       if (!has_min && !has_max) {
                         return [](const TensorList& in, TensorList& out, const KernelContext&) {
                           out[0] = in[0];
                         };
                       }
                       if ((min || !has_min) && (max || !has_max)) {
                         return [min, max](const TensorList& in, TensorList& out,
                                           const KernelContext&) {
                           out[0] = at::clamp(in[0], min, max);
                         };
                       }
                       return [](const TensorList& in, TensorList& out, const KernelContext&) {
                         const at::Tensor& lo = optional_input(in, 1);
                         const at::Tensor& hi = optional_input(in, 2);
                         out[0] = at::clamp(
                             in[0], lo.defined() ? c10::optional<at::Tensor>(lo) : c10::nullopt,
                             hi.defined() ? c10::optional<at::Tensor>(hi) : c10::nullopt);
                       };
                     }});

}  // namespace
}  // namespace edgeforge::ops
