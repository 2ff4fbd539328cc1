// Element-wise ops: activations, arithmetic with ONNX (numpy) broadcasting, comparisons and
// logic, Where, Cast and Clip. ATen broadcasts the same way ONNX multidirectional
// broadcasting does, so the binary kernels are single ATen calls. Their capabilities: how
// activations and arithmetic carry prunable units, Add's and Mul's int8 lowering (QAdd, QMul)
// and the plan's PlanChannelMul.
#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "edgeforge/error.h"
#include "edgeforge/ops.h"
#include "lowering.h"
#include "util.h"

namespace edgeforge::ops {
namespace {

// Arithmetic of two operands, for structured pruning.
OpCapabilities arithmetic(UnitRole role) {
  OpCapabilities c;
  c.units.role = role;
  return c;
}

at::Tensor relu_fn(const at::Tensor& x) { return at::relu(x); }
at::Tensor sigmoid_fn(const at::Tensor& x) { return at::sigmoid(x); }
at::Tensor tanh_fn(const at::Tensor& x) { return at::tanh(x); }
at::Tensor erf_fn(const at::Tensor& x) { return at::erf(x); }
at::Tensor exp_fn(const at::Tensor& x) { return at::exp(x); }
at::Tensor log_fn(const at::Tensor& x) { return at::log(x); }
at::Tensor neg_fn(const at::Tensor& x) { return at::neg(x); }
at::Tensor abs_fn(const at::Tensor& x) { return at::abs(x); }
at::Tensor sqrt_fn(const at::Tensor& x) { return at::sqrt(x); }
at::Tensor logical_not_fn(const at::Tensor& x) { return at::logical_not(x); }

at::Tensor add_fn(const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); }
at::Tensor sub_fn(const at::Tensor& a, const at::Tensor& b) { return at::sub(a, b); }
at::Tensor mul_fn(const at::Tensor& a, const at::Tensor& b) { return at::mul(a, b); }
at::Tensor equal_fn(const at::Tensor& a, const at::Tensor& b) { return at::eq(a, b); }
at::Tensor less_fn(const at::Tensor& a, const at::Tensor& b) { return at::lt(a, b); }
at::Tensor greater_fn(const at::Tensor& a, const at::Tensor& b) { return at::gt(a, b); }
at::Tensor logical_and_fn(const at::Tensor& a, const at::Tensor& b) {
  return at::logical_and(a, b);
}

// ONNX integer division truncates toward zero (C semantics), where at::div would give a float.
at::Tensor div_fn(const at::Tensor& a, const at::Tensor& b) {
  if (at::isFloatingType(a.scalar_type()) || at::isComplexType(a.scalar_type()))
    return at::div(a, b);
  return at::div(a, b, "trunc");
}

Kernel prepare_leaky_relu(const Node& node, const Graph&) {
  const double alpha = node.attr_float("alpha", 0.01f);
  return [alpha](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = at::leaky_relu(in[0], alpha);
  };
}

// HardSigmoid max(0, min(1, alpha * x + beta)); PyTorch exports its hardsigmoid with alpha 1/6.
Kernel prepare_hard_sigmoid(const Node& node, const Graph&) {
  const double alpha = node.attr_float("alpha", 0.2f), beta = node.attr_float("beta", 0.5f);
  return [alpha, beta](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = at::clamp(in[0] * alpha + beta, 0.0, 1.0);
  };
}

// HardSwish x * max(0, min(1, x / 6 + 1/2)) (opset 14), as MobileNetV3's exports use it.
Kernel prepare_hard_swish(const Node&, const Graph&) {
  return [](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = in[0] * at::clamp(in[0] * (1.0 / 6.0) + 0.5, 0.0, 1.0);
  };
}

// ONNX Pow keeps the type of the base; ATen promotes (int ** float -> float), so cast back.
at::Tensor keep_base_type(const at::Tensor& y, const at::Tensor& base) {
  return y.scalar_type() == base.scalar_type() ? y : y.to(base.scalar_type());
}

Kernel prepare_pow(const Node& node, const Graph& graph) {
  c10::optional<at::Scalar> exponent = prepared_scalar(node, graph, 1);
  if (!exponent) {
    return [](const TensorList& in, TensorList& out, const KernelContext&) {
      out[0] = keep_base_type(at::pow(in[0], in[1]), in[0]);
    };
  }
  // An exponent of shape [1, 1] still broadcasts a lower-rank base upwards, which only the
  // tensor form does.
  at::Tensor exponent_tensor = prepared_input(node, graph, 1);
  return [e = *exponent, exponent_tensor](const TensorList& in, TensorList& out,
                                          const KernelContext&) {
    const at::Tensor& x = in[0];
    out[0] = keep_base_type(
        x.dim() >= exponent_tensor.dim() ? at::pow(x, e) : at::pow(x, exponent_tensor), x);
  };
}

Kernel prepare_where(const Node&, const Graph&) {
  return [](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = at::where(in[0], in[1], in[2]);
  };
}

Kernel prepare_cast(const Node& node, const Graph&) {
  EF_CHECK(node.attr_int("saturate", 1) == 1, node.describe(),
           ": saturate 0 (opset 19 float8 casts) is not supported");
  const at::ScalarType to = scalar_type_from_onnx(node.attr_int("to"), node);
  return
      [to](const TensorList& in, TensorList& out, const KernelContext&) { out[0] = in[0].to(to); };
}

// Bounds are folded into scalars when constant; a bound computed at run time (or a trainable
// one) stays a tensor so its gradient flows.
Kernel prepare_clip(const Node& node, const Graph& graph) {
  const bool has_min = node.inputs.size() > 1 && !node.inputs[1].empty();
  const bool has_max = node.inputs.size() > 2 && !node.inputs[2].empty();
  const c10::optional<at::Scalar> min = prepared_scalar(node, graph, 1);
  const c10::optional<at::Scalar> max = prepared_scalar(node, graph, 2);
  if (!has_min && !has_max) {
    return [](const TensorList& in, TensorList& out, const KernelContext&) { out[0] = in[0]; };
  }
  if ((min || !has_min) && (max || !has_max)) {
    return [min, max](const TensorList& in, TensorList& out, const KernelContext&) {
      out[0] = at::clamp(in[0], min, max);
    };
  }
  return [](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& lo = optional_input(in, 1);
    const at::Tensor& hi = optional_input(in, 2);
    out[0] = at::clamp(in[0], lo.defined() ? c10::optional<at::Tensor>(lo) : c10::nullopt,
                       hi.defined() ? c10::optional<at::Tensor>(hi) : c10::nullopt);
  };
}

// Clip maps each unit on its own, and keeps 0, when its bounds are constants around 0 (inputs,
// or opset 6's attributes).
bool clip_keeps_units(const Node& n, const Graph& graph) {
  auto scalar = [&](const std::string& name) {
    const at::Tensor t = constant_input(graph, name);
    return t.defined() && t.numel() == 1 ? t : at::Tensor();
  };
  const at::Tensor lo =
      n.inputs.size() > 1 && !n.inputs[1].empty() ? scalar(n.inputs[1]) : at::Tensor();
  const at::Tensor hi =
      n.inputs.size() > 2 && !n.inputs[2].empty() ? scalar(n.inputs[2]) : at::Tensor();
  const bool lo_ok = n.inputs.size() < 2 || n.inputs[1].empty() ||
                     (lo.defined() && lo.item<double>() <= 0);
  const bool hi_ok = n.inputs.size() < 3 || n.inputs[2].empty() ||
                     (hi.defined() && hi.item<double>() >= 0);
  return lo_ok && hi_ok && n.attr_float("min", -1.f) <= 0 && n.attr_float("max", 1.f) >= 0;
}

OpCapabilities clip_capabilities() {
  OpCapabilities c = per_unit_op(true);
  c.units.holds = clip_keeps_units;
  return c;
}

// op(DQ(qa), DQ(qb)) [-> Relu] -> Q -> qy over quantized values: one `kernel` (int8.cpp).
void int8_binary(Int8Rewriter& pass, size_t i, const char* kernel) {
  const Node& n = pass.node(i);
  if (n.inputs.size() != 2) return;
  std::vector<std::string> q;
  for (const std::string& in : n.inputs) {
    const Node* dq = pass.producer(in);
    if (dq == nullptr || !dq->is("DequantizeLinear") || !pass.quantized(dq->inputs[0])) return;
    q.push_back(dq->inputs[0]);
  }
  std::vector<size_t> absorbed{i};
  Node fused(kernel, n.name, q, {});
  fused.domain = kEdgeforgeDomain;
  if (!pass.quantized_tail(n.outputs[0], absorbed, fused, /*relu_only=*/true)) return;
  pass.place_int8(std::move(fused), absorbed);
}

// Residual adds between int8 layers: QAdd.
void int8_add(Int8Rewriter& pass, size_t i) { int8_binary(pass, i, "QAdd"); }

OpCapabilities add_capabilities() {
  OpCapabilities c = arithmetic(UnitRole::kAdd);
  c.int8_pattern = int8_add;
  return c;
}

// Squeeze-excitation's x * gate between int8 convolutions: QMul.
void int8_mul(Int8Rewriter& pass, size_t i) { int8_binary(pass, i, "QMul"); }

// ---- PlanChannelMul ----
// Mul of two values computed at run time, as squeeze-excitation writes x * gate: when one is a
// 4-D float activation [N, C, H, W] in either plain layout and the other its gate
// [N or 1, C, 1, 1], one pass into a buffer kept between runs. ATen's broadcasting mul
// allocates its result on every call and runs its generic strided loop. Any other operands
// get ATen's mul, the reference. The product is the same float multiplication either way.

__attribute__((target_clones("avx512f", "avx2", "default"))) void scale_channels_last(
    const float* __restrict x, const float* __restrict gate, float* __restrict y, int64_t pixels,
    int64_t channels) {
  for (int64_t p = 0; p < pixels; ++p)
    for (int64_t c = 0; c < channels; ++c) y[p * channels + c] = x[p * channels + c] * gate[c];
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void scale_planes(
    const float* __restrict x, const float* __restrict gate, float* __restrict y, int64_t planes,
    int64_t pixels) {
  for (int64_t c = 0; c < planes; ++c)
    for (int64_t p = 0; p < pixels; ++p) y[c * pixels + p] = x[c * pixels + p] * gate[c];
}

// `gate` is [N or 1, C, 1, 1] for the 4-D `x` [N, C, H, W].
bool channel_gate(const at::Tensor& gate, const at::Tensor& x) {
  return x.dim() == 4 && gate.dim() == 4 && gate.size(1) == x.size(1) && gate.size(2) == 1 &&
         gate.size(3) == 1 && (gate.size(0) == 1 || gate.size(0) == x.size(0));
}

Kernel prepare_plan_channel_mul(const Node& node, const Graph&) {
  auto cache = std::make_shared<at::Tensor>();
  return [cache](const TensorList& in, TensorList& out, const KernelContext&) {
    const bool a_gate = channel_gate(in[0], in[1]), b_gate = channel_gate(in[1], in[0]);
    const at::Tensor& x = b_gate ? in[0] : in[1];
    const at::Tensor& g = b_gate ? in[1] : in[0];
    const bool channels_last = x.dim() == 4 && !x.is_contiguous() &&
                               x.is_contiguous(at::MemoryFormat::ChannelsLast);
    if ((!a_gate && !b_gate) || x.scalar_type() != at::kFloat || g.scalar_type() != at::kFloat ||
        (!x.is_contiguous() && !channels_last) || x.numel() == 0) {
      out[0] = at::mul(in[0], in[1]);
      return;
    }
    const at::MemoryFormat format =
        channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
    at::Tensor& y = *cache;
    if (!(y.defined() && y.use_count() == 1 && y.storage().use_count() == 1 &&
          y.sizes() == x.sizes() && y.is_contiguous(format)))
      y = at::empty(x.sizes(), x.options().memory_format(format));
    const at::Tensor gate = g.contiguous();
    const int64_t n = x.size(0), c = x.size(1), pixels = x.size(2) * x.size(3);
    for (int64_t b = 0; b < n; ++b) {
      const float* gb = gate.data_ptr<float>() + (gate.size(0) == 1 ? 0 : b * c);
      const float* xb = x.data_ptr<float>() + b * c * pixels;
      float* yb = y.data_ptr<float>() + b * c * pixels;
      if (channels_last) scale_channels_last(xb, gb, yb, pixels, c);
      else scale_planes(xb, gb, yb, c, pixels);
    }
    out[0] = y;
  };
}

// Mul of two values computed at run time -> PlanChannelMul. A Mul by a constant stays: the
// layer fusions take those they can.
void plan_mul(PlanRewriter& pass, size_t i) {
  const Node& n = pass.node(i);
  if (n.inputs.size() != 2 || n.inputs[0] == n.inputs[1]) return;
  for (const std::string& in : n.inputs)
    if (pass.constant(in).defined()) return;
  pass.place(Node("PlanChannelMul", n.name, n.inputs, n.outputs), {i});
}

OpCapabilities mul_capabilities() {
  OpCapabilities c = arithmetic(UnitRole::kMul);
  c.int8_pattern = int8_mul;
  c.plan = plan_mul;
  c.plan_stage = PlanStage::kLast;
  return c;
}

EF_REGISTER_OP(Relu, unary_op("Relu", relu_fn, per_unit_op(true)));
EF_REGISTER_OP(Sigmoid, unary_op("Sigmoid", sigmoid_fn, per_unit_op(false)));
EF_REGISTER_OP(Tanh, unary_op("Tanh", tanh_fn, per_unit_op(true)));
EF_REGISTER_OP(Erf, unary_op("Erf", erf_fn, per_unit_op(true)));
EF_REGISTER_OP(Exp, unary_op("Exp", exp_fn));
EF_REGISTER_OP(Log, unary_op("Log", log_fn));
EF_REGISTER_OP(Neg, unary_op("Neg", neg_fn, per_unit_op(true)));
EF_REGISTER_OP(Abs, unary_op("Abs", abs_fn));
EF_REGISTER_OP(Sqrt, unary_op("Sqrt", sqrt_fn));
EF_REGISTER_OP(Not, unary_op("Not", logical_not_fn));
EF_REGISTER_OP(LeakyRelu, OpDef{"LeakyRelu", 1, 1, prepare_leaky_relu, "", per_unit_op(true)});
EF_REGISTER_OP(HardSigmoid,
               OpDef{"HardSigmoid", 1, 1, prepare_hard_sigmoid, "", per_unit_op(false)});
EF_REGISTER_OP(HardSwish, OpDef{"HardSwish", 1, 1, prepare_hard_swish, "", per_unit_op(true)});

EF_REGISTER_OP(Add, binary_op("Add", add_fn, add_capabilities()));
EF_REGISTER_OP(Sub, binary_op("Sub", sub_fn, arithmetic(UnitRole::kSub)));
EF_REGISTER_OP(Mul, binary_op("Mul", mul_fn, mul_capabilities()));
EF_REGISTER_OP(PlanChannelMul,
               OpDef{"PlanChannelMul", 2, 2, prepare_plan_channel_mul, kEdgeforgeDomain});
EF_REGISTER_OP(Div, binary_op("Div", div_fn, arithmetic(UnitRole::kDiv)));
EF_REGISTER_OP(Equal, binary_op("Equal", equal_fn));
EF_REGISTER_OP(Less, binary_op("Less", less_fn));
EF_REGISTER_OP(Greater, binary_op("Greater", greater_fn));
EF_REGISTER_OP(And, binary_op("And", logical_and_fn));
EF_REGISTER_OP(Pow, OpDef{"Pow", 2, 2, prepare_pow});

EF_REGISTER_OP(Where, OpDef{"Where", 3, 3, prepare_where});
EF_REGISTER_OP(Cast, OpDef{"Cast", 1, 1, prepare_cast});
EF_REGISTER_OP(Clip, OpDef{"Clip", 1, 3, prepare_clip, "", clip_capabilities()});

}  // namespace
}  // namespace edgeforge::ops
