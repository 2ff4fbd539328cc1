// Helpers shared by the op kernels in src/ops: axis normalisation, constant inputs read at
// prepare time, int64 tensors read at run time, ONNX data type codes and optional inputs.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "edgeforge/error.h"
#include "edgeforge/graph.h"
#include "edgeforge/ops.h"

namespace edgeforge::ops {

// An upper bound for variadic ops (Concat); the executor compares it with the input count.
inline constexpr int kVariadicInputs = 1 << 20;

// The capabilities of an op that maps each unit (channel, feature) on its own, for structured
// pruning: `keeps_zero` when f(0) = 0, so a removed unit stays exactly 0 through it.
inline OpCapabilities per_unit_op(bool keeps_zero) {
  OpCapabilities c;
  c.units.role = UnitRole::kPerUnit;
  c.units.keeps_zero = keeps_zero;
  return c;
}

// An element-wise op of one ATen call on its one operand (unary_op) or two (binary_op, which
// broadcasts as ATen does: ONNX's multidirectional broadcasting).
using UnaryFn = at::Tensor (*)(const at::Tensor&);
using BinaryFn = at::Tensor (*)(const at::Tensor&, const at::Tensor&);

inline OpDef unary_op(const char* op_type, UnaryFn fn, OpCapabilities caps = {}) {
  PrepareFn prepare = [fn](const Node&, const Graph&) -> Kernel {
    return
        [fn](const TensorList& in, TensorList& out, const KernelContext&) { out[0] = fn(in[0]); };
  };
  return OpDef{op_type, 1, 1, prepare, "", caps};
}

inline OpDef binary_op(const char* op_type, BinaryFn fn, OpCapabilities caps = {}) {
  PrepareFn prepare = [fn](const Node&, const Graph&) -> Kernel {
    return [fn](const TensorList& in, TensorList& out, const KernelContext&) {
      out[0] = fn(in[0], in[1]);
    };
  };
  return OpDef{op_type, 2, 2, prepare, "", caps};
}

// The pad list of at::constant_pad_nd (last dimension first, (begin, end) pairs) for ONNX pads
// [x1_begin, x2_begin, ..., x1_end, x2_end, ...] on the last pads.size() / 2 dimensions.
inline std::vector<int64_t> pad_nd_list(const std::vector<int64_t>& pads) {
  const size_t n = pads.size() / 2;
  std::vector<int64_t> out;
  out.reserve(2 * n);
  for (size_t i = n; i-- > 0;) {
    out.push_back(pads[i]);
    out.push_back(pads[n + i]);
  }
  return out;
}

// `in[index]` when the node has that input and it is not omitted, else an undefined tensor.
inline const at::Tensor& optional_input(const TensorList& in, size_t index) {
  static const at::Tensor kUndefined;
  return index < in.size() ? in[index] : kUndefined;
}

// Maps an ONNX axis in [-rank, rank - 1] to [0, rank - 1]; `where` names the node.
inline int64_t normalize_axis(int64_t axis, int64_t rank, const std::string& where,
                              const char* what = "axis") {
  EF_CHECK(axis >= -rank && axis < rank, where, ": ", what, " ", axis,
           " is out of range for a tensor of rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

// The elements of an integer tensor of any rank (shapes, axes, starts, repeats), read on the
// CPU. Never used on a float path, so reading the data does not cut a gradient.
inline std::vector<int64_t> to_int64s(const at::Tensor& t, const std::string& where,
                                      const char* what) {
  EF_CHECK(t.defined(), where, ": input '", what, "' is missing");
  EF_CHECK(!at::isFloatingType(t.scalar_type()) && t.scalar_type() != at::kBool, where, ": input '",
           what, "' has type ", c10::toString(t.scalar_type()), ", expected an integer tensor");
  at::Tensor v = t.to(at::kCPU, at::kLong).contiguous();
  const int64_t* p = v.data_ptr<int64_t>();
  return std::vector<int64_t>(p, p + v.numel());
}

// The value of input `index` when it is known at prepare time (an initializer or a Constant
// node), else an undefined tensor.
inline at::Tensor prepared_input(const Node& node, const Graph& graph, size_t index) {
  if (index >= node.inputs.size()) return {};
  return constant_input(graph, node.inputs[index]);
}

// Checks the constant quantization scales of `node` (its inputs at `indices` that are
// constants): float, finite and > 0. A scale of 0, NaN, inf or below 0 would make every value
// it quantizes meaningless (or divide by zero); scales computed at run time are not checked.
inline void check_constant_scales(const Node& node, const Graph& graph,
                                  std::initializer_list<size_t> indices) {
  for (size_t i : indices) {
    const at::Tensor s = prepared_input(node, graph, i);
    if (!s.defined()) continue;
    EF_CHECK(at::isFloatingType(s.scalar_type()), node.describe(), ": scale '", node.inputs[i],
             "' has type ", c10::toString(s.scalar_type()), ", expected float");
    EF_CHECK(s.numel() > 0, node.describe(), ": scale '", node.inputs[i], "' is empty");
    const at::Tensor f = s.to(at::kDouble).reshape({-1});
    const at::Tensor bad = at::logical_not(at::logical_and(at::isfinite(f), f > 0)).nonzero();
    if (bad.numel() == 0) continue;
    const int64_t at_index = bad[0][0].item<int64_t>();
    throw Error(detail::concat(node.describe(), ": scale '", node.inputs[i], "' value ",
                               f[at_index].item<double>(), " (element ", at_index,
                               ") is not a finite number > 0"));
  }
}

// Integer input `index` read at prepare time; nullopt when it is omitted or computed at run time.
inline std::optional<std::vector<int64_t>> prepared_ints(const Node& node, const Graph& graph,
                                                         size_t index, const char* what) {
  at::Tensor t = prepared_input(node, graph, index);
  if (!t.defined()) return std::nullopt;
  return to_int64s(t, node.describe(), what);
}

// A steering float input (an exponent, a clip bound) that can be folded into the kernel as a
// scalar: a one-element constant that is not a trainable weight. Folding a weight would hide
// later optimizer updates and its gradient, so those stay tensors.
// (c10::optional, which is what ATen's scalar overloads take.)
inline c10::optional<at::Scalar> prepared_scalar(const Node& node, const Graph& graph,
                                                 size_t index) {
  at::Tensor t = prepared_input(node, graph, index);
  if (!t.defined() || t.numel() != 1 || t.requires_grad()) return c10::nullopt;
  return t.reshape({}).item();
}

// at::ScalarType for an ONNX TensorProto.DataType code (the `to` of Cast).
inline at::ScalarType scalar_type_from_onnx(int64_t code, const Node& node) {
  switch (code) {
    case 1:
      return at::kFloat;
    case 2:
      return at::kByte;
    case 3:
      return at::kChar;
    case 5:
      return at::kShort;
    case 6:
      return at::kInt;
    case 7:
      return at::kLong;
    case 9:
      return at::kBool;
    case 10:
      return at::kHalf;
    case 11:
      return at::kDouble;
    case 14:
      return at::kComplexFloat;
    case 15:
      return at::kComplexDouble;
    case 16:
      return at::kBFloat16;
    default:
      break;
  }
  // 4, 12 and 13 are unsigned 16/32/64-bit integers, which LibTorch 1.13 lacks; 8 is string.
  throw Error(detail::concat(node.describe(), ": ONNX data type ", code,
                             " is not supported (supported: 1 float, 2 uint8, 3 int8, 5 int16, "
                             "6 int32, 7 int64, 9 bool, 10 float16, 11 double, 14 complex64, "
                             "15 complex128, 16 bfloat16)"));
}

// The tensor a Constant node produces, from whichever value attribute it carries.
inline at::Tensor constant_node_value(const Node& node) {
  int set = 0;
  at::Tensor value;
  if (node.has("value")) {
    value = node.attr_tensor("value");
    ++set;
  }
  if (node.has("value_float")) {
    value = at::scalar_tensor(node.attr_float("value_float"), at::kFloat);
    ++set;
  }
  if (node.has("value_int")) {
    value = at::scalar_tensor(node.attr_int("value_int"), at::kLong);
    ++set;
  }
  if (node.has("value_floats")) {
    std::vector<float> v = node.attr_floats("value_floats");
    value = at::tensor(v, at::kFloat);
    ++set;
  }
  if (node.has("value_ints")) {
    std::vector<int64_t> v = node.attr_ints("value_ints");
    value = at::tensor(v, at::kLong);
    ++set;
  }
  for (const char* unsupported : {"value_string", "value_strings", "sparse_value"})
    EF_CHECK(!node.has(unsupported), node.describe(), ": attribute '", unsupported,
             "' is not supported (string and sparse tensors)");
  EF_CHECK(set == 1, node.describe(), ": expected exactly one of value, value_float, value_int, ",
           "value_floats, value_ints; got ", set);
  return value;
}

}  // namespace edgeforge::ops
