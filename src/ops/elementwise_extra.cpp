// More element-wise ops: trigonometric and rounding functions, the remaining activations
// (Elu, Selu, Celu, Softplus, Softsign, ThresholdedRelu, Shrink, PRelu), Mod, BitShift, the
// remaining comparisons and logic, the variadic Max, Min, Sum and Mean, and CastLike. Binary
// and variadic ops broadcast as ATen does, which is ONNX multidirectional broadcasting. The
// unary ops carry prunable units (per_unit_op), keeping 0 where f(0) = 0.
#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>

#include <string>

#include "edgeforge/error.h"
#include "edgeforge/ops.h"
#include "util.h"

namespace edgeforge::ops {
namespace {

// IsInf: which infinities count, by detect_positive and detect_negative (both by default).
Kernel prepare_isinf(const Node& node, const Graph&) {
  const bool positive = node.attr_int("detect_positive", 1) != 0;
  const bool negative = node.attr_int("detect_negative", 1) != 0;
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    if (positive && negative) {
      out[0] = at::isinf(x);
    } else if (positive) {
      out[0] = at::isposinf(x);
    } else if (negative) {
      out[0] = at::isneginf(x);
    } else {
      out[0] = at::zeros_like(x, x.options().dtype(at::kBool));
    }
  };
}

// Elu: x for x > 0, alpha * (exp(x) - 1) otherwise.
Kernel prepare_elu(const Node& node, const Graph&) {
  const double alpha = node.attr_float("alpha", 1.f);
  return [alpha](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = at::elu(in[0], alpha);
  };
}

// Selu: gamma * Elu(x) with ONNX's own alpha and gamma, which may differ from at::selu's.
Kernel prepare_selu(const Node& node, const Graph&) {
  const double alpha = node.attr_float("alpha", 1.67326319217681884765625f);
  const double gamma = node.attr_float("gamma", 1.05070102214813232421875f);
  return [alpha, gamma](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = at::elu(in[0], alpha, gamma);
  };
}

// Celu: max(0, x) + min(0, alpha * (exp(x / alpha) - 1)).
Kernel prepare_celu(const Node& node, const Graph&) {
  const double alpha = node.attr_float("alpha", 1.f);
  return [alpha](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = at::celu(in[0], alpha);
  };
}

// Softplus: log(exp(x) + 1); ATen's turns linear above x = 20, where they agree in float.
Kernel prepare_softplus(const Node&, const Graph&) {
  return [](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = at::softplus(in[0]);
  };
}

// Softsign: x / (1 + |x|).
Kernel prepare_softsign(const Node&, const Graph&) {
  return [](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = in[0] / (at::abs(in[0]) + 1);
  };
}

// ThresholdedRelu: x for x > alpha, else 0.
Kernel prepare_thresholded_relu(const Node& node, const Graph&) {
  const double alpha = node.attr_float("alpha", 1.f);
  return [alpha](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = at::threshold(in[0], alpha, 0);
  };
}

// Shrink: x + bias for x < -lambd, x - bias for x > lambd, else 0; the input's type is kept
// (ATen would promote an integer input with the float attributes).
Kernel prepare_shrink(const Node& node, const Graph&) {
  const double lambd = node.attr_float("lambd", 0.5f);
  const double bias = node.attr_float("bias", 0.f);
  return [lambd, bias](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    const at::Tensor y =
        at::where(x < -lambd, x + bias, at::where(x > lambd, x - bias, at::zeros_like(x)));
    out[0] = y.scalar_type() == x.scalar_type() ? y : y.to(x.scalar_type());
  };
}

// Shrink keeps 0 unless a negative lambd puts 0 in a shifted range with a bias.
bool shrink_keeps_zero(const Node& n, const Graph&) {
  return n.attr_float("lambd", 0.5f) >= 0 || n.attr_float("bias", 0.f) == 0;
}

OpCapabilities shrink_capabilities() {
  OpCapabilities c = per_unit_op(true);
  c.units.holds = shrink_keeps_zero;
  return c;
}

// PRelu: x for x >= 0, slope * x otherwise. The slope broadcasts to x's shape only
// (unidirectional), where at::prelu would take one value or one per channel.
Kernel prepare_prelu(const Node& node, const Graph&) {
  const std::string where = node.describe();
  return [where](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    const at::Tensor& slope = in[1];
    EF_CHECK(at::is_expandable_to(slope.sizes(), x.sizes()), where, ": slope of shape ",
             slope.sizes(), " does not broadcast to the input's shape ", x.sizes());
    out[0] = at::where(x < 0, x * slope, x);
  };
}

// Mod: fmod 0 takes the sign of the divisor (Python's %), for integers only; fmod 1 the sign
// of the dividend (C's fmod), which floats require.
Kernel prepare_mod(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const int64_t fmod = node.attr_int("fmod", 0);
  EF_CHECK(fmod == 0 || fmod == 1, where, ": fmod must be 0 or 1, not ", fmod);
  if (fmod == 1) {
    return [](const TensorList& in, TensorList& out, const KernelContext&) {
      out[0] = at::fmod(in[0], in[1]);
    };
  }
  return [where](const TensorList& in, TensorList& out, const KernelContext&) {
    EF_CHECK(!at::isFloatingType(in[0].scalar_type()), where, ": fmod 0 is for integers; a ",
             c10::toString(in[0].scalar_type()), " input needs fmod 1");
    out[0] = at::remainder(in[0], in[1]);
  };
}

// BitShift of unsigned integers (of which ATen has uint8), by direction LEFT or RIGHT; bits
// shifted out are lost.
Kernel prepare_bitshift(const Node& node, const Graph&) {
  const std::string direction = node.attr_string("direction", "");
  EF_CHECK(direction == "LEFT" || direction == "RIGHT", node.describe(),
           ": direction must be LEFT or RIGHT, not '", direction, "'");
  if (direction == "LEFT") {
    return [](const TensorList& in, TensorList& out, const KernelContext&) {
      out[0] = at::bitwise_left_shift(in[0], in[1]);
    };
  }
  return [](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = at::bitwise_right_shift(in[0], in[1]);
  };
}

// Max, Min and Sum of one or more inputs, folded pairwise with broadcasting.
OpDef variadic_op(const char* op_type, BinaryFn fn) {
  PrepareFn prepare = [fn](const Node&, const Graph&) -> Kernel {
    return [fn](const TensorList& in, TensorList& out, const KernelContext&) {
      at::Tensor y = in[0];
      for (size_t i = 1; i < in.size(); ++i) y = fn(y, in[i]);
      out[0] = y;
    };
  };
  return OpDef{op_type, 1, kVariadicInputs, prepare};
}

at::Tensor add_fn(const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); }

// Mean: the sum of the inputs over their count.
Kernel prepare_mean(const Node&, const Graph&) {
  return [](const TensorList& in, TensorList& out, const KernelContext&) {
    at::Tensor sum = in[0];
    for (size_t i = 1; i < in.size(); ++i) sum = add_fn(sum, in[i]);
    out[0] = sum / static_cast<double>(in.size());
  };
}

// CastLike: input 0 cast to the element type of input 1.
Kernel prepare_cast_like(const Node& node, const Graph&) {
  EF_CHECK(node.attr_int("saturate", 1) == 1, node.describe(),
           ": saturate 0 (opset 19 float8 casts) is not supported");
  return [](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = in[0].to(in[1].scalar_type());
  };
}

EF_REGISTER_OP(Reciprocal, unary_op("Reciprocal", at::reciprocal, per_unit_op(false)));
EF_REGISTER_OP(Cos, unary_op("Cos", at::cos, per_unit_op(false)));
EF_REGISTER_OP(Sin, unary_op("Sin", at::sin, per_unit_op(true)));
EF_REGISTER_OP(Tan, unary_op("Tan", at::tan, per_unit_op(true)));
EF_REGISTER_OP(Acos, unary_op("Acos", at::acos, per_unit_op(false)));
EF_REGISTER_OP(Acosh, unary_op("Acosh", at::acosh, per_unit_op(false)));
EF_REGISTER_OP(Asin, unary_op("Asin", at::asin, per_unit_op(true)));
EF_REGISTER_OP(Asinh, unary_op("Asinh", at::asinh, per_unit_op(true)));
EF_REGISTER_OP(Atan, unary_op("Atan", at::atan, per_unit_op(true)));
EF_REGISTER_OP(Atanh, unary_op("Atanh", at::atanh, per_unit_op(true)));
EF_REGISTER_OP(Cosh, unary_op("Cosh", at::cosh, per_unit_op(false)));
EF_REGISTER_OP(Sinh, unary_op("Sinh", at::sinh, per_unit_op(true)));
EF_REGISTER_OP(Ceil, unary_op("Ceil", at::ceil, per_unit_op(true)));
EF_REGISTER_OP(Floor, unary_op("Floor", at::floor, per_unit_op(true)));
// Round: halves to the even neighbour, as at::round does.
EF_REGISTER_OP(Round, unary_op("Round", at::round, per_unit_op(true)));
EF_REGISTER_OP(Sign, unary_op("Sign", at::sign, per_unit_op(true)));
EF_REGISTER_OP(IsInf, OpDef{"IsInf", 1, 1, prepare_isinf});
EF_REGISTER_OP(IsNaN, unary_op("IsNaN", at::isnan));

EF_REGISTER_OP(Elu, OpDef{"Elu", 1, 1, prepare_elu, "", per_unit_op(true)});
EF_REGISTER_OP(Selu, OpDef{"Selu", 1, 1, prepare_selu, "", per_unit_op(true)});
EF_REGISTER_OP(Celu, OpDef{"Celu", 1, 1, prepare_celu, "", per_unit_op(true)});
EF_REGISTER_OP(Softplus, OpDef{"Softplus", 1, 1, prepare_softplus, "", per_unit_op(false)});
EF_REGISTER_OP(Softsign, OpDef{"Softsign", 1, 1, prepare_softsign, "", per_unit_op(true)});
EF_REGISTER_OP(ThresholdedRelu,
               OpDef{"ThresholdedRelu", 1, 1, prepare_thresholded_relu, "", per_unit_op(true)});
EF_REGISTER_OP(Shrink, OpDef{"Shrink", 1, 1, prepare_shrink, "", shrink_capabilities()});
EF_REGISTER_OP(PRelu, OpDef{"PRelu", 2, 2, prepare_prelu});

EF_REGISTER_OP(Mod, OpDef{"Mod", 2, 2, prepare_mod});
EF_REGISTER_OP(BitShift, OpDef{"BitShift", 2, 2, prepare_bitshift});
EF_REGISTER_OP(Or, binary_op("Or", at::logical_or));
EF_REGISTER_OP(Xor, binary_op("Xor", at::logical_xor));
EF_REGISTER_OP(GreaterOrEqual, binary_op("GreaterOrEqual", at::ge));
EF_REGISTER_OP(LessOrEqual, binary_op("LessOrEqual", at::le));

EF_REGISTER_OP(Max, variadic_op("Max", at::maximum));
EF_REGISTER_OP(Min, variadic_op("Min", at::minimum));
EF_REGISTER_OP(Sum, variadic_op("Sum", add_fn));
EF_REGISTER_OP(Mean, OpDef{"Mean", 1, kVariadicInputs, prepare_mean});

EF_REGISTER_OP(CastLike, OpDef{"CastLike", 2, 2, prepare_cast_like});

}  // namespace
}  // namespace edgeforge::ops
