// QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear (ONNX opset 13 semantics): the
// float reference for QDQ graphs. A QDQ graph run through these kernels is the "fake-quant"
// form that int8 lowering (issue 3) is tested against, so they follow the ONNX reference
// exactly: x / scale in float32, rounding half to even, saturation to the integer type.
#include <ATen/ATen.h>

#include <string>

#include "util.h"

namespace edgeforge::ops {
namespace {

// The integer range of a quantized type; Error for any other type.
std::pair<double, double> quantized_range(at::ScalarType type, const std::string& where) {
  if (type == at::kByte) return {0.0, 255.0};
  if (type == at::kChar) return {-128.0, 127.0};
  throw Error(where + ": zero point of type " + std::string(c10::toString(type)) +
              " is not supported (expected uint8 or int8)");
}

// A scale or zero point shaped to broadcast against x: a scalar (per tensor) stays as it is;
// a 1-D tensor (per axis) must match x's size along `axis` and is reshaped to lie along it.
at::Tensor along_axis(const at::Tensor& p, const at::Tensor& x, int64_t axis,
                      const std::string& where, const char* what) {
  if (p.dim() == 0 || (p.dim() == 1 && p.numel() == 1)) return p.reshape({});
  EF_CHECK(p.dim() == 1, where, ": ", what, " has rank ", p.dim(),
           " (expected a scalar or a 1-D tensor)");
  const int64_t a = normalize_axis(axis, x.dim(), where);
  EF_CHECK(p.size(0) == x.size(a), where, ": ", what, " has ", p.size(0),
           " elements but the input has ", x.size(a), " along axis ", a);
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[static_cast<size_t>(a)] = p.size(0);
  return p.reshape(shape);
}

// The constant zero point of a QDQ node (input 2), when given: uint8 or int8 (int32 only for a
// DequantizeLinear of int32, where ONNX requires it to be 0) and of the quantized value's type.
void check_constant_zero_point(const Node& node, const Graph& graph) {
  const at::Tensor zp = prepared_input(node, graph, 2);
  if (!zp.defined()) return;
  const at::ScalarType t = zp.scalar_type();
  EF_CHECK(t == at::kByte || t == at::kChar || (node.is("DequantizeLinear") && t == at::kInt),
           node.describe(), ": zero point '", node.inputs[2], "' has type ", c10::toString(t),
           ", expected uint8 or int8");
  EF_CHECK(t != at::kInt || !zp.ne(0).any().item<bool>(), node.describe(), ": zero point '",
           node.inputs[2], "' of an int32 input must be 0");
}

Kernel prepare_quantize_linear(const Node& node, const Graph& graph) {
  check_constant_scales(node, graph, {1});
  check_constant_zero_point(node, graph);
  const int64_t axis = node.attr_int("axis", 1);
  const std::string where = node.describe();
  return [axis, where](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    EF_CHECK(at::isFloatingType(x.scalar_type()), where, ": input has type ",
             c10::toString(x.scalar_type()), ", expected a float tensor");
    const at::Tensor& zp = optional_input(in, 2);
    const at::ScalarType type = zp.defined() ? zp.scalar_type() : at::kByte;
    const auto [lo, hi] = quantized_range(type, where);
    const at::Tensor scale = along_axis(in[1].to(at::kFloat), x, axis, where, "scale");
    at::Tensor q = at::round(x.to(at::kFloat) / scale);  // half to even, as ONNX specifies
    if (zp.defined()) q = q + along_axis(zp.to(at::kFloat), x, axis, where, "zero point");
    out[0] = q.clamp(lo, hi).to(type);
  };
}

Kernel prepare_dequantize_linear(const Node& node, const Graph& graph) {
  check_constant_scales(node, graph, {1});
  check_constant_zero_point(node, graph);
  const int64_t axis = node.attr_int("axis", 1);
  const std::string where = node.describe();
  return [axis, where](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    const at::ScalarType type = x.scalar_type();
    EF_CHECK(type == at::kByte || type == at::kChar || type == at::kInt, where,
             ": input has type ", c10::toString(type), ", expected uint8, int8 or int32");
    const at::Tensor& zp = optional_input(in, 2);
    at::Tensor y = x.to(at::kFloat);
    if (zp.defined()) {
      EF_CHECK(zp.scalar_type() == type, where, ": zero point has type ",
               c10::toString(zp.scalar_type()), " but the input has ", c10::toString(type));
      y = y - along_axis(zp.to(at::kFloat), x, axis, where, "zero point");
    }
    out[0] = y * along_axis(in[1].to(at::kFloat), x, axis, where, "scale");
  };
}

// uint8 with a range that always contains 0:
//   scale = (max(0, max x) - min(0, min x)) / 255, zero point = round(-min(0, min x) / scale).
// An all-zero input has range 0; it gets scale 0 and zero point 0 (the ONNX formula would
// divide by zero), which dequantizes back to the same zeros.
Kernel prepare_dynamic_quantize_linear(const Node& node, const Graph&) {
  const std::string where = node.describe();
  return [where](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    EF_CHECK(x.scalar_type() == at::kFloat, where, ": input has type ",
             c10::toString(x.scalar_type()), ", expected float");
    EF_CHECK(x.numel() > 0, where, ": input is empty, so it has no range to quantize");
    const at::Tensor x_min = at::clamp_max(x.min(), 0.0);
    const at::Tensor x_max = at::clamp_min(x.max(), 0.0);
    const at::Tensor scale = (x_max - x_min) / 255.0f;
    if (scale.item<float>() == 0.0f) {
      out[0] = at::zeros_like(x, at::kByte);
      out[1] = at::zeros({}, at::kFloat);
      out[2] = at::zeros({}, at::kByte);
      return;
    }
    const at::Tensor zero_point = at::round(-x_min / scale).clamp(0.0, 255.0);
    out[0] = (at::round(x / scale) + zero_point).clamp(0.0, 255.0).to(at::kByte);
    out[1] = scale;
    out[2] = zero_point.to(at::kByte);
  };
}

EF_REGISTER_OP(QuantizeLinear, OpDef{"QuantizeLinear", 2, 3, prepare_quantize_linear});
EF_REGISTER_OP(DequantizeLinear, OpDef{"DequantizeLinear", 2, 3, prepare_dequantize_linear});
EF_REGISTER_OP(DynamicQuantizeLinear,
               OpDef{"DynamicQuantizeLinear", 1, 1, prepare_dynamic_quantize_linear});

}  // namespace
}  // namespace edgeforge::ops
