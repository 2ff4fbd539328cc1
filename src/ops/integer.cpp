// Integer and quantized-linear ops of the default domain (opset 10): ConvInteger and
// MatMulInteger (uint8 or int8 with zero points, int32 out), QLinearConv and QLinearMatMul.
//
// The products of zero-point-shifted 8-bit values are accumulated in double, which holds these
// sums exactly (each product is below 2^16), so convolutions and matrix products run on ATen's
// float kernels. The QLinear ops then requantize as the ONNX reference does: the accumulator
// times the float32 multiplier (scale_a * scale_b / scale_y), rounded half to even, plus the
// output zero point, saturated to its type.
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "edgeforge/error.h"
#include "edgeforge/ops.h"
#include "util.h"
#include "window.h"

namespace edgeforge::ops {
namespace {

void check_8bit(const at::Tensor& t, const std::string& where, const char* what) {
  EF_CHECK(t.scalar_type() == at::kByte || t.scalar_type() == at::kChar, where, ": ", what,
           " has type ", c10::toString(t.scalar_type()), ", expected uint8 or int8");
}

void check_scale(const at::Tensor& t, const std::string& where, const char* what) {
  EF_CHECK(t.scalar_type() == at::kFloat, where, ": ", what, " has type ",
           c10::toString(t.scalar_type()), ", expected float");
}

// `x` minus its zero point (when given, of x's type and shaped to broadcast), in double.
at::Tensor shifted(const at::Tensor& x, const at::Tensor& zero_point, const std::string& where,
                   const char* what) {
  check_8bit(x, where, what);
  if (!zero_point.defined()) return x.to(at::kDouble);
  EF_CHECK(zero_point.scalar_type() == x.scalar_type(), where, ": the zero point of ", what,
           " has type ", c10::toString(zero_point.scalar_type()), " but ", what, " has ",
           c10::toString(x.scalar_type()));
  return x.to(at::kDouble) - zero_point.to(at::kDouble);
}

// A per-tensor value (one element) as a scalar; anything else stays as it is.
at::Tensor scalar_or(const at::Tensor& p) { return p.numel() == 1 ? p.reshape({}) : p; }

// A per-row parameter of the left matrix: an M-element vector lies along the rows of [..., M, K];
// the N-D form [..., M, 1] broadcasts as it is.
at::Tensor per_row(const at::Tensor& p) {
  if (p.numel() == 1) return p.reshape({});
  return p.dim() == 1 ? p.unsqueeze(-1) : p;
}

// A per-output-channel parameter (an M-element vector) shaped to lie along `axis` of a tensor
// of rank `rank`; a per-tensor one as a scalar.
at::Tensor per_channel(const at::Tensor& p, int64_t channels, int64_t axis, int64_t rank,
                       const std::string& where, const char* what) {
  if (p.numel() == 1) return p.reshape({});
  EF_CHECK(p.dim() == 1 && p.size(0) == channels, where, ": ", what, " has shape ", p.sizes(),
           ", expected a scalar or ", channels, " values (one per output channel)");
  std::vector<int64_t> shape(static_cast<size_t>(rank), 1);
  shape[static_cast<size_t>(axis)] = channels;
  return p.reshape(shape);
}

// round(acc * multiplier) half to even, plus the zero point, saturated to the zero point's type.
at::Tensor requantize(const at::Tensor& acc, const at::Tensor& multiplier,
                      const at::Tensor& zero_point, const std::string& where) {
  check_8bit(zero_point, where, "the output zero point");
  EF_CHECK(zero_point.numel() == 1, where, ": the output zero point has shape ", zero_point.sizes(),
           ", expected a scalar");
  const bool is_uint8 = zero_point.scalar_type() == at::kByte;
  return (at::round(acc * multiplier.to(at::kDouble)) + zero_point.reshape({}).to(at::kDouble))
      .clamp(is_uint8 ? 0.0 : -128.0, is_uint8 ? 255.0 : 127.0)
      .to(zero_point.scalar_type());
}

// ---- convolutions ----

// The Conv attributes of a ConvInteger or QLinearConv node: its window (window.h), checked
// against the weight at run time, and its group.
struct ConvAttributes {
  std::string where;
  Window window;
  int64_t group = 1;
};

ConvAttributes parse_conv(const Node& node) {
  ConvAttributes c{node.describe(), parse_window(node, false, 0), node.attr_int("group", 1)};
  EF_CHECK(c.group >= 1, c.where, ": group ", c.group, " is not positive");
  // Stricter than Conv, which takes all-zero pads beside auto_pad: none at all, as ONNX says.
  EF_CHECK(c.window.auto_pad == AutoPad::kNotSet || node.attr_ints("pads", {}).empty(), c.where,
           ": auto_pad '", c.window.auto_pad_name, "' with explicit pads");
  return c;
}

// The convolution of shifted (double) x [N, C, D1, ...] and w [M, C / group, k1, ...]; pads
// add zeros to the shifted input, that is the zero point to the quantized one.
at::Tensor conv(const ConvAttributes& c, const at::Tensor& x, const at::Tensor& w) {
  const int64_t rank = w.dim() - 2;
  EF_CHECK(rank >= 1 && rank <= 3 && x.dim() == w.dim(), c.where, ": input shape ", x.sizes(),
           " and weight shape ", w.sizes(), " are not a convolution with 1 to 3 spatial axes");
  EF_CHECK(x.size(1) == w.size(1) * c.group && w.size(0) % c.group == 0, c.where, ": input shape ",
           x.sizes(), " and weight shape ", w.sizes(), " do not match group ", c.group);
  Window win = c.window;
  if (win.rank == 0) fill_window(win, rank, c.where);
  EF_CHECK(win.rank == rank, c.where, ": strides, dilations and pads are for ", win.rank,
           " spatial axes, the weight has ", rank);
  if (!win.kernel.empty())
    EF_CHECK(at::IntArrayRef(win.kernel) == w.sizes().slice(2), c.where, ": kernel_shape ",
             at::IntArrayRef(win.kernel), " does not match the weight shape ", w.sizes());
  const std::vector<int64_t> pads = resolve_pads(win, x.sizes(), w.sizes().slice(2));
  const std::vector<int64_t> zeros(static_cast<size_t>(rank), 0);
  return at::convolution(at::constant_pad_nd(x, pad_nd_list(pads)), w, {}, win.strides, zeros,
                         win.dilations, false, zeros, c.group);
}

// ConvInteger: (x - x_zero_point) conv (w - w_zero_point) in int32; w's zero point is per
// tensor or per output channel.
Kernel prepare_conv_integer(const Node& node, const Graph&) {
  const ConvAttributes c = parse_conv(node);
  return [c](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& w = in[1];
    const at::Tensor& x_zero_point = optional_input(in, 2);
    EF_CHECK(!x_zero_point.defined() || x_zero_point.numel() == 1, c.where,
             ": x_zero_point has shape ", x_zero_point.sizes(), ", expected a scalar");
    at::Tensor w_zero_point = optional_input(in, 3);
    if (w_zero_point.defined())
      w_zero_point = per_channel(w_zero_point, w.size(0), 0, w.dim(), c.where, "w_zero_point");
    const at::Tensor x = shifted(in[0], scalar_or(x_zero_point), c.where, "x");
    out[0] = conv(c, x, shifted(w, w_zero_point, c.where, "w")).to(at::kInt);
  };
}

// QLinearConv: the ConvInteger accumulator plus the int32 bias B (scale x_scale * w_scale),
// requantized with x_scale * w_scale / y_scale; w's scale and zero point are per tensor or per
// output channel, the others per tensor.
Kernel prepare_qlinear_conv(const Node& node, const Graph& graph) {
  check_constant_scales(node, graph, {1, 4, 6});
  const ConvAttributes c = parse_conv(node);
  return [c](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& w = in[3];
    const int64_t channels = w.size(0);
    check_scale(in[1], c.where, "x_scale");
    check_scale(in[4], c.where, "w_scale");
    check_scale(in[6], c.where, "y_scale");
    EF_CHECK(in[1].numel() == 1 && in[2].numel() == 1 && in[6].numel() == 1, c.where,
             ": x_scale, x_zero_point and y_scale must be scalars");
    const at::Tensor x = shifted(in[0], in[2].reshape({}), c.where, "x");
    at::Tensor acc =
        conv(c, x,
             shifted(w, per_channel(in[5], channels, 0, w.dim(), c.where, "w_zero_point"), c.where,
                     "w"));
    const at::Tensor& bias = optional_input(in, 8);
    if (bias.defined()) {
      EF_CHECK(bias.scalar_type() == at::kInt && bias.dim() == 1 && bias.size(0) == channels,
               c.where, ": B has type ", c10::toString(bias.scalar_type()), " and shape ",
               bias.sizes(), ", expected int32 [", channels, "]");
      acc = acc + per_channel(bias, channels, 1, acc.dim(), c.where, "B").to(at::kDouble);
    }
    const at::Tensor multiplier = in[1].reshape({}) *
                                  per_channel(in[4], channels, 1, acc.dim(), c.where, "w_scale") /
                                  in[6].reshape({});
    out[0] = requantize(acc, multiplier, in[7], c.where);
  };
}

// ---- matrix products ----

// MatMulInteger: numpy matmul of (A - a_zero_point) and (B - b_zero_point) in int32; A's zero
// point is per tensor or per row, B's per tensor or per column.
Kernel prepare_matmul_integer(const Node& node, const Graph&) {
  const std::string where = node.describe();
  return [where](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& a_zero_point = optional_input(in, 2);
    const at::Tensor& b_zero_point = optional_input(in, 3);
    const at::Tensor a =
        shifted(in[0], a_zero_point.defined() ? per_row(a_zero_point) : a_zero_point, where, "A");
    const at::Tensor b =
        shifted(in[1], b_zero_point.defined() ? scalar_or(b_zero_point) : b_zero_point, where, "B");
    out[0] = at::matmul(a, b).to(at::kInt);
  };
}

// QLinearMatMul: the MatMulInteger product requantized with a_scale * b_scale / y_scale; a's
// scale and zero point per tensor or per row, b's per tensor or per column, y's per tensor.
Kernel prepare_qlinear_matmul(const Node& node, const Graph& graph) {
  check_constant_scales(node, graph, {1, 4, 6});
  const std::string where = node.describe();
  return [where](const TensorList& in, TensorList& out, const KernelContext&) {
    check_scale(in[1], where, "a_scale");
    check_scale(in[4], where, "b_scale");
    check_scale(in[6], where, "y_scale");
    EF_CHECK(in[6].numel() == 1, where, ": y_scale has shape ", in[6].sizes(),
             ", expected a scalar");
    const at::Tensor a = shifted(in[0], per_row(in[2]), where, "a");
    const at::Tensor b = shifted(in[3], scalar_or(in[5]), where, "b");
    const at::Tensor multiplier = per_row(in[1]) * scalar_or(in[4]) / in[6].reshape({});
    out[0] = requantize(at::matmul(a, b), multiplier, in[7], where);
  };
}

EF_REGISTER_OP(ConvInteger, OpDef{"ConvInteger", 2, 4, prepare_conv_integer});
EF_REGISTER_OP(QLinearConv, OpDef{"QLinearConv", 8, 9, prepare_qlinear_conv});
EF_REGISTER_OP(MatMulInteger, OpDef{"MatMulInteger", 2, 4, prepare_matmul_integer});
EF_REGISTER_OP(QLinearMatMul, OpDef{"QLinearMatMul", 8, 8, prepare_qlinear_matmul});

}  // namespace
}  // namespace edgeforge::ops
