// The int8 kernels of the inference plan: QConv and QLinear (lower_int8.cpp) on oneDNN
// primitives called directly, created once per input shape and input quantization, weights
// reordered once. Same inputs and attributes as QConv / QLinear (src/ops/int8.cpp), whose
// LibTorch kernels remain the reference:
//
//   DnnlQConv(q, w_int8, w_scale, [bias], [residual])    quint8 NHWC -> quint8 NHWC
//   DnnlQLinear(q, w_int8, w_scale, [bias])  quint8 [..., in] -> quint8 [..., out]
//   (attribute dequantize_output: the output is float instead, the DequantizeTensor that was
//   its only reader taken in as Q's clip and rounding then DQ's scale, as post-ops: bit for
//   bit DQ(Q(y)))
//   DnnlDynQLinear(x, w_int8, w_scale, [bias]) float -> float, input quantized at run time
//
// The arithmetic is QDQ's: y = act(sx * sw[c] * sum((x - zx) * w) + b[c]), then
// q = saturate(round_half_even(y / sy) + zy). oneDNN takes it as an int32 accumulation of
// (x - zx) * w plus b / (sx * sw[c]), scaled by sx * sw[c] / sy per output channel, ReLU, and
// the output zero point; its default rounding is half to even. Another activation (HardSwish,
// ReLU6, ...; attributes activation, activation_alpha, activation_beta) is not scale-free: the
// scales are sx * sw[c], the activation and a multiplication by 1 / sy are post-ops.
//
// A residual add fused into DnnlQConv (QAdd after it, src/ops/int8.cpp) keeps QDQ's two
// roundings: the convolution's result is clipped and rounded to its own output steps
// (y_scale, y_zero_point) as the Q between them does, then scaled to the sum's steps, and the
// residual (scale sr, zero point zr) is a sum post-op: with the sum's scale sa,
//   qa = saturate(round_half_even(clamp(round(y / sy), -zy, 255 - zy) * sy / sa
//                                 + (qr - zr) * sr / sa) + za),
// ReLU after the sum when the add has one. The residual is read from the output buffer, its
// own buffer when nothing else reads it (add_inplace).
#include <ATen/ATen.h>
#include <ATen/quantized/Quantizer.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../ops/util.h"
#include "dnnl_util.h"
#include "edgeforge/int8.h"

namespace edgeforge::ops {
namespace {

using dnnl::memory;
using plan::Dims;
using Tag = memory::format_tag;
constexpr auto kU8 = memory::data_type::u8;
constexpr auto kS8 = memory::data_type::s8;
constexpr auto kF32 = memory::data_type::f32;

struct QuantInput {
  float scale;
  int32_t zero_point;
  int32_t scale_bits;  // the scale's bit pattern, for primitive cache keys
};

QuantInput input_params(const at::Tensor& q, const std::string& where) {
  EF_CHECK(q.scalar_type() == at::kQUInt8 && q.qscheme() == at::kPerTensorAffine, where,
           ": input must be a per-tensor quint8 tensor, got ", c10::toString(q.scalar_type()));
  QuantInput p{static_cast<float>(q.q_scale()), static_cast<int32_t>(q.q_zero_point()), 0};
  std::memcpy(&p.scale_bits, &p.scale, sizeof p.scale_bits);
  return p;
}

// State shared by the convolution and the linear kernel: weights, scales, output parameters.
struct QState {
  std::string where;
  at::Tensor weight;        // int8, [C_out, ...] (conv) or [in, out] (linear)
  std::vector<float> w_scale;  // per output channel
  at::Tensor bias;          // float [C_out] or undefined
  double y_scale = 1.0;
  int64_t y_zero_point = 0;
  bool relu = false;
  Activation activation;  // other than relu: applied to y before it is requantized
  // The output's only reader was a DequantizeTensor, now part of the kernel: the output is
  // float, (q - y_zero_point) * y_scale of the q the kernel would write.
  bool dequantize_out = false;
  // The output's DequantizeTensor, an exact GELU and a QuantizeTensor taken in: the output is
  // uint8 again, Q(GELU(DQ(Q(y)))) with these parameters.
  bool gelu = false;
  double gelu_y_scale = 1.0;
  int64_t gelu_y_zero_point = 0;
  bool residual = false;  // DnnlQLinear with dequantize_out: a float residual added (input 4)
  int residual_post_op = -1;  // the binary post-op's index

  // Output scales sx * sw[c] / sy and the bias in accumulator units b[c] / (sx * sw[c]). With
  // an activation other than ReLU, which is not scale-free, the scales give y itself
  // (sx * sw[c]) and a last linear post-op divides by sy.
  std::vector<float> output_scales(float sx) const {
    const double sy = activation.kind.empty() ? y_scale : 1.0;
    std::vector<float> s(w_scale.size());
    for (size_t c = 0; c < s.size(); ++c)
      s[c] = static_cast<float>(static_cast<double>(sx) * w_scale[c] / sy);
    return s;
  }
  at::Tensor scaled_bias(float sx) const {
    if (!bias.defined()) return {};
    at::Tensor s = at::tensor(w_scale, at::kFloat).to(at::kDouble) * static_cast<double>(sx);
    return (bias.to(at::kDouble) / s).to(at::kFloat).contiguous();
  }
  dnnl::primitive_attr attr(float sx, int32_t zx, int mask) const {
    dnnl::primitive_attr a;
    a.set_output_scales(mask, output_scales(sx));
    a.set_zero_points(DNNL_ARG_SRC, 0, {zx});
    if (!dequantize_out)
      a.set_zero_points(DNNL_ARG_DST, 0, {static_cast<int32_t>(gelu ? gelu_y_zero_point : y_zero_point)});
    dnnl::post_ops ops;
    if (relu) ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    if (!activation.kind.empty())
      plan::append_activation(ops, activation, static_cast<float>(1.0 / y_scale));
    // y / sy so far: Q's saturation and rounding, then DQ's scale.
    if (dequantize_out || gelu) append_output_steps(ops, false, y_scale);
    if (gelu) {  // then the GELU, and Q's scale (its rounding and zero point: the u8 output's)
      // As pow(x, 1) * alpha: oneDNN 2.6 gives wrong u8 results for a second linear post-op
      // in one chain (every value scaled by the first one's alpha).
      ops.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f);
      ops.append_eltwise(1.f, dnnl::algorithm::eltwise_pow,
                         static_cast<float>(1.0 / gelu_y_scale), 1.f);
    }
    a.set_post_ops(ops);
    return a;
  }
  // On y / sy (the output in steps): Q's saturation to its 256 steps (from 0 up after a ReLU,
  // zy >= 0) and its rounding, then a multiplication by `scale`, all as post-ops.
  void append_output_steps(dnnl::post_ops& ops, bool after_relu, double scale) const {
    const auto zy = static_cast<float>(y_zero_point);
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, after_relu ? 0.f : -zy, 255.f - zy);
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_round, 0.f, 0.f);
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_linear, static_cast<float>(scale), 0.f);
  }
  // attr() with the residual as a binary add post-op on `dst` (DnnlQLinear's).
  dnnl::primitive_attr attr_with_residual(float sx, int32_t zx, int mask, const memory::desc& dst) {
    dnnl::primitive_attr a = attr(sx, zx, mask);
    dnnl::post_ops ops = a.get_post_ops();
    residual_post_op = ops.len();
    ops.append_binary(dnnl::algorithm::binary_add, dst);
    a.set_post_ops(ops);
    return a;
  }
  memory::data_type dst_type() const { return dequantize_out ? kF32 : kU8; }
  // The output buffer: quint8 with the output parameters, or float when dequantize_out.
  at::Tensor output_of(plan::Buffer& cache, at::IntArrayRef sizes, at::MemoryFormat format) {
    if (!dequantize_out) return output(cache, sizes, format);
    at::Tensor& t = cache.tensor;
    if (plan::unshared(t) && t.scalar_type() == at::kFloat && t.sizes() == sizes &&
        t.is_contiguous(format))
      return t;
    t = at::empty(sizes, at::TensorOptions().dtype(at::kFloat).memory_format(format));
    return t;
  }
  at::Tensor output(plan::Buffer& cache, at::IntArrayRef sizes, at::MemoryFormat format) {
    return gelu ? output(cache, sizes, format, gelu_y_scale, gelu_y_zero_point)
                : output(cache, sizes, format, y_scale, y_zero_point);
  }
  static at::Tensor output(plan::Buffer& cache, at::IntArrayRef sizes, at::MemoryFormat format,
                           double scale, int64_t zero_point) {
    at::Tensor& t = cache.tensor;
    if (plan::unshared(t) && t.sizes() == sizes && t.is_contiguous(format) &&
        t.q_scale() == scale && t.q_zero_point() == zero_point)
      return t;
    t = at::_empty_affine_quantized(sizes, at::device(at::kCPU).dtype(at::kQUInt8), scale,
                                    zero_point, format);
    return t;
  }
};

void read_common(QState& s, const Node& node, const Graph& graph, int64_t out_axis) {
  s.where = node.describe();
  s.weight = prepared_input(node, graph, 1);
  at::Tensor scale = prepared_input(node, graph, 2);
  EF_CHECK(s.weight.defined() && s.weight.scalar_type() == at::kChar, s.where,
           ": weight must be a constant int8 tensor");
  EF_CHECK(scale.defined() && at::isFloatingType(scale.scalar_type()), s.where,
           ": weight scale must be a constant float tensor");
  const int64_t channels = s.weight.size(out_axis);
  scale = scale.to(at::kFloat).reshape({-1}).contiguous();
  if (scale.numel() == 1) scale = scale.expand({channels}).contiguous();
  EF_CHECK(scale.numel() == channels, s.where, ": ", scale.numel(), " weight scales for ",
           channels, " output channels");
  EF_CHECK(scale.gt(0).all().item<bool>(), s.where, ": weight scales must be positive");
  s.w_scale.assign(scale.data_ptr<float>(), scale.data_ptr<float>() + channels);
  s.bias = prepared_input(node, graph, 3);
  if (s.bias.defined()) {
    EF_CHECK(s.bias.numel() == channels, s.where, ": bias has ", s.bias.numel(),
             " values, expected ", channels);
    s.bias = s.bias.to(at::kFloat).reshape({-1}).contiguous();
  }
  s.y_scale = node.attr_float("y_scale");
  s.y_zero_point = node.attr_int("y_zero_point");
  s.relu = node.attr_int("relu", 0) != 0;
  s.activation = activation_of(node);
  s.dequantize_out = node.attr_int("dequantize_output", 0) != 0;
  s.gelu = node.has("gelu_y_scale");
  if (s.gelu) {
    s.gelu_y_scale = node.attr_float("gelu_y_scale");
    s.gelu_y_zero_point = node.attr_int("gelu_y_zero_point");
    EF_CHECK(s.gelu_y_scale > 0 && std::isfinite(s.gelu_y_scale) && s.gelu_y_zero_point >= 0 &&
                 s.gelu_y_zero_point <= 255 && !s.dequantize_out,
             s.where, ": gelu_y_scale must be finite and positive, gelu_y_zero_point in [0, 255], "
             "and the output is not also dequantize_output");
  }

  s.weight = s.weight.contiguous();
}

// ---- DnnlQConv ----

struct QConvState : QState {
  Dims strides, dilations, pad_l, pad_r;
  int64_t group = 1;
  // The fused residual add: the sum's output parameters, its ReLU, and whether the residual's
  // buffer may take the sum.
  bool fused_add = false, add_relu = false, add_inplace = false;
  double add_y_scale = 1.0;
  int64_t add_y_zero_point = 0;
  struct Prim {
    plan::Bound conv;
    memory::desc src, given, dst;
    at::Tensor bias_values;
  };
  std::map<std::vector<int64_t>, Prim> prims;
  plan::Buffer out_cache, src_cache, sum_cache;

  // The post-ops of the fused add, after the output scales sx * sw[c] / y_scale.
  dnnl::primitive_attr add_attr(float sx, int32_t zx, const QuantInput& r) const {
    dnnl::primitive_attr a;
    a.set_output_scales(1 << 1, output_scales(sx));
    a.set_zero_points(DNNL_ARG_SRC, 0, {zx});
    a.set_zero_points(DNNL_ARG_DST, 0, {static_cast<int32_t>(add_y_zero_point)});
    dnnl::post_ops ops;
    append_output_steps(ops, relu, y_scale / add_y_scale);
    ops.append_sum(static_cast<float>(r.scale / add_y_scale), r.zero_point, kU8);
    if (add_relu) ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    a.set_post_ops(ops);
    return a;
  }

  // DQ -> Add [-> Relu] -> Q on the convolution's output and the residual, as QAdd computes
  // it: the path of a residual of another shape (a broadcast).
  at::Tensor add_unfused(const at::Tensor& y, const at::Tensor& residual) const {
    at::Tensor sum = dequantize_uint8(y) + dequantize_uint8(residual);
    if (add_relu) sum = at::relu(sum);
    return quantize_uint8(sum, QuantParams{add_y_scale, add_y_zero_point});
  }

  at::Tensor run(const at::Tensor& q_in, const at::Tensor& residual) {
    if (!fused_add) return run(q_in, residual, nullptr);
    EF_CHECK(residual.defined(), where, ": the residual input is missing");
    const QuantInput r = input_params(residual, where + " (residual)");
    return run(q_in, residual, &r);
  }

  at::Tensor run(const at::Tensor& q_in, const at::Tensor& residual, const QuantInput* r) {
    const QuantInput in = input_params(q_in, where);
    EF_CHECK(q_in.dim() == 4, where, ": input has shape ", q_in.sizes(), ", expected 4-D");
    const at::Tensor q = q_in.contiguous(at::MemoryFormat::ChannelsLast);
    const int64_t c_out = weight.size(0), c_in = weight.size(1) * group;
    EF_CHECK(q.size(1) == c_in, where, ": input has ", q.size(1), " channels, the weights expect ",
             c_in);
    if (q.numel() == 0) {  // an empty batch: an empty result (oneDNN divides by the batch)
      const Dims d = plan::conv_dst_dims(plan::dims_of(q.sizes()), c_out,
                                         {weight.size(2), weight.size(3)}, strides, dilations,
                                         pad_l, pad_r, where);
      return r != nullptr ? output(sum_cache, {d[0], d[1], d[2], d[3]}, at::MemoryFormat::ChannelsLast,
                                   add_y_scale, add_y_zero_point)
                          : output_of(out_cache, {d[0], d[1], d[2], d[3]}, at::MemoryFormat::ChannelsLast);
    }
    if (r != nullptr) {
      const Dims d = plan::conv_dst_dims(plan::dims_of(q.sizes()), c_out,
                                         {weight.size(2), weight.size(3)}, strides, dilations,
                                         pad_l, pad_r, where);
      if (residual.sizes() != at::IntArrayRef(d))
        return add_unfused(run(q_in, residual, nullptr), residual);
    }
    std::vector<int64_t> key(q.sizes().begin(), q.sizes().end());
    const float sx = in.scale;
    key.push_back(in.scale_bits);
    key.push_back(in.zero_point);
    if (r != nullptr) {
      key.push_back(r->scale_bits);
      key.push_back(r->zero_point);
    }
    auto it = prims.find(key);
    if (it == prims.end()) {
      const Dims dst_dims =
          plan::conv_dst_dims(plan::dims_of(q.sizes()), c_out, {weight.size(2), weight.size(3)},
                              strides, dilations, pad_l, pad_r, where);
      const Dims w_dims = group > 1 ? Dims{group, c_out / group, weight.size(1), weight.size(2),
                                           weight.size(3)}
                                    : Dims{c_out, weight.size(1), weight.size(2), weight.size(3)};
      Prim p;
      p.given = memory::desc(plan::dims_of(q.sizes()), kU8, Tag::nhwc);
      p.bias_values = scaled_bias(sx);
      const memory::desc b_md =
          bias.defined() ? memory::desc({c_out}, kF32, Tag::x) : memory::desc();
      dnnl::convolution_forward::desc d(
          dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
          memory::desc(plan::dims_of(q.sizes()), kU8, Tag::any), memory::desc(w_dims, kS8, Tag::any),
          b_md, memory::desc(dst_dims, r != nullptr ? kU8 : dst_type(), Tag::nhwc), strides,
          dilations, pad_l, pad_r);
      dnnl::convolution_forward::primitive_desc pd(
          d, r != nullptr ? add_attr(sx, in.zero_point, *r) : attr(sx, in.zero_point, 1 << 1),
          plan::cpu_engine());
      p.conv.prim = dnnl::convolution_forward(pd);
      p.src = pd.src_desc();
      p.dst = pd.dst_desc();
      p.conv.args[DNNL_ARG_WEIGHTS] =
          plan::prepack(memory::desc(w_dims, kS8, group > 1 ? Tag::goihw : Tag::oihw),
                        weight.data_ptr(), pd.weights_desc());
      if (bias.defined())
        p.conv.args[DNNL_ARG_BIAS] = memory(b_md, plan::cpu_engine(), p.bias_values.data_ptr());
      it = prims.emplace(key, std::move(p)).first;
    }
    Prim& p = it->second;
    const Dims dd = p.dst.dims();
    at::Tensor y;
    if (r == nullptr) {
      y = output_of(out_cache, {dd[0], dd[1], dd[2], dd[3]}, at::MemoryFormat::ChannelsLast);
    } else if (add_inplace && residual.is_contiguous(at::MemoryFormat::ChannelsLast)) {
      // The sum goes into the residual's buffer, relabelled with the sum's parameters.
      y = at::from_blob_quantized_per_tensor_affine(
          residual.data_ptr(), residual.sizes(), residual.strides(), [keep = residual](void*) {},
          static_cast<float>(add_y_scale), add_y_zero_point, residual.options());
    } else {
      y = output(sum_cache, {dd[0], dd[1], dd[2], dd[3]}, at::MemoryFormat::ChannelsLast,
                 add_y_scale, add_y_zero_point);
      const at::Tensor from = residual.contiguous(at::MemoryFormat::ChannelsLast);
      std::memcpy(y.data_ptr(), from.data_ptr(), static_cast<size_t>(from.numel()));
    }
    p.conv.set(DNNL_ARG_SRC, p.src,
               plan::in_layout(src_cache, p.given, p.src, q.data_ptr(), at::kByte));
    p.conv.set(DNNL_ARG_DST, p.dst, y.data_ptr());
    p.conv.run();
    return y;
  }
};

Kernel prepare_dnnl_qconv(const Node& node, const Graph& graph) {
  auto s = std::make_shared<QConvState>();
  read_common(*s, node, graph, 0);
  EF_CHECK(s->weight.dim() == 4, s->where, ": weight must be 4-D");
  const std::vector<int64_t> pads = node.attr_ints("pads");
  const std::vector<int64_t> strides = node.attr_ints("strides");
  const std::vector<int64_t> dilations = node.attr_ints("dilations");
  EF_CHECK(pads.size() == 4 && strides.size() == 2 && dilations.size() == 2, s->where,
           ": pads, strides and dilations must have 4, 2 and 2 values");
  s->strides = {strides[0], strides[1]};
  s->dilations = {dilations[0] - 1, dilations[1] - 1};
  s->pad_l = {pads[0], pads[1]};
  s->pad_r = {pads[2], pads[3]};
  s->group = node.attr_int("group", 1);
  s->fused_add = node.inputs.size() > 4 && !node.inputs[4].empty();
  if (s->fused_add) {
    EF_CHECK(s->activation.kind.empty(), s->where,
             ": a fused residual add takes no activation but relu before it");
    s->add_y_scale = node.attr_float("add_y_scale");
    s->add_y_zero_point = node.attr_int("add_y_zero_point");
    EF_CHECK(s->add_y_scale > 0 && std::isfinite(s->add_y_scale) && s->add_y_zero_point >= 0 &&
                 s->add_y_zero_point <= 255,
             s->where, ": add_y_scale must be finite and positive, add_y_zero_point in [0, 255]");
    s->add_relu = node.attr_int("add_relu", 0) != 0;
    s->add_inplace = node.attr_int("add_inplace", 0) != 0;
  }
  return [s](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = s->run(in[0], optional_input(in, 4));
  };
}

// ---- DnnlQLinear ----

struct QLinearState : QState {
  struct Prim {
    plan::Bound mm;
    memory::desc src, dst;
    at::Tensor bias_values;
  };
  std::map<std::vector<int64_t>, Prim> prims;
  plan::Buffer out_cache;

  at::Tensor run(const at::Tensor& q_in, const at::Tensor& residual_in) {
    const QuantInput in = input_params(q_in, where);
    const int64_t k = weight.size(0), n = weight.size(1);
    EF_CHECK(q_in.dim() >= 1 && q_in.size(-1) == k, where, ": input ", q_in.sizes(),
             " does not end in ", k, " features");
    const at::Tensor q = q_in.contiguous();
    const int64_t rows = q.numel() / k;
    if (rows == 0) {
      std::vector<int64_t> shape(q.sizes().begin(), q.sizes().end());
      shape.back() = n;
      return output_of(out_cache, shape, at::MemoryFormat::Contiguous);
    }
    std::vector<int64_t> shape_out(q.sizes().begin(), q.sizes().end());
    shape_out.back() = n;
    at::Tensor add;  // the residual, when it fits the output (else added after, by ATen)
    if (residual) {
      EF_CHECK(residual_in.defined(), where, ": the residual input is missing");
      if (residual_in.scalar_type() == at::kFloat && residual_in.sizes().vec() == shape_out)
        add = residual_in.contiguous();
    }
    const float sx = in.scale;
    const std::vector<int64_t> key = {rows, in.scale_bits, in.zero_point, add.defined()};
    auto it = prims.find(key);
    if (it == prims.end()) {
      Prim p;
      p.src = memory::desc({rows, k}, kU8, Tag::ab);
      p.dst = memory::desc({rows, n}, dst_type(), Tag::ab);
      p.bias_values = scaled_bias(sx);
      const memory::desc b_md = bias.defined() ? memory::desc({1, n}, kF32, Tag::ab) : memory::desc();
      dnnl::matmul::desc d(p.src, memory::desc({k, n}, kS8, Tag::any), b_md, p.dst);
      dnnl::matmul::primitive_desc pd(
          d, add.defined() ? attr_with_residual(sx, in.zero_point, 1 << 1, p.dst)
                           : attr(sx, in.zero_point, 1 << 1),
          plan::cpu_engine());
      p.mm.prim = dnnl::matmul(pd);
      p.mm.args[DNNL_ARG_WEIGHTS] =
          plan::prepack(memory::desc({k, n}, kS8, Tag::ab), weight.data_ptr(), pd.weights_desc());
      if (bias.defined())
        p.mm.args[DNNL_ARG_BIAS] = memory(b_md, plan::cpu_engine(), p.bias_values.data_ptr());
      it = prims.emplace(key, std::move(p)).first;
    }
    Prim& p = it->second;
    std::vector<int64_t> shape(q.sizes().begin(), q.sizes().end());
    shape.back() = n;
    at::Tensor y = output_of(out_cache, shape, at::MemoryFormat::Contiguous);
    p.mm.set(DNNL_ARG_SRC, p.src, q.data_ptr());
    p.mm.set(DNNL_ARG_DST, p.dst, y.data_ptr());
    if (add.defined())
      p.mm.set(DNNL_ARG_ATTR_MULTIPLE_POST_OP(residual_post_op) | DNNL_ARG_SRC_1, p.dst,
               add.data_ptr());
    p.mm.run();
    if (residual && !add.defined()) return y + residual_in;  // a broadcast: ATen's add
    return y;
  }
};

Kernel prepare_dnnl_qlinear(const Node& node, const Graph& graph) {
  auto s = std::make_shared<QLinearState>();
  const bool in_out = node.attr_int("weight_in_out", 0) != 0;
  read_common(*s, node, graph, in_out ? 1 : 0);
  EF_CHECK(s->weight.dim() == 2, s->where, ": weight must be 2-D");
  if (!in_out) s->weight = s->weight.t().contiguous();  // [in, out] as the matmul reads it
  s->residual = node.inputs.size() > 4 && !node.inputs[4].empty();
  EF_CHECK(!s->residual || s->dequantize_out, s->where, ": a residual needs dequantize_output");
  return [s](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = s->run(in[0], optional_input(in, 4));
  };
}

// ---- DnnlDynQLinear ----
// The dynamic strategy's layers, with DynamicQuantizeLinear's arithmetic exactly (the input's
// range, scale = (max(0, max) - min(0, min)) / 255, zero point rounded half to even, the same
// quantize loop as QuantizeTensor); then u8 x s8 -> s32 on oneDNN, and one pass that applies
// the zero point (through the weights' column sums), the scales and the bias:
//   y[r, c] = sx * sw[c] * (acc[r, c] - zx * sum_k w[k, c]) + b[c].
// (oneDNN takes a scale and zero point given at run time only on its slower gemm kernels.)

// The pass above, cloned for AVX-512 and AVX2.
__attribute__((target_clones("avx512f", "avx2", "default"))) void dequantize_rows(
    const int32_t* __restrict acc, const float* __restrict scale, const float* __restrict offset,
    float* __restrict y, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < n; ++c)
      y[r * n + c] = static_cast<float>(acc[r * n + c]) * scale[c] + offset[c];
}

struct DynQLinearState : QState {
  struct Prim {
    plan::Bound mm;
    memory::desc src, dst;
  };
  std::map<int64_t, Prim> prims;
  plan::Buffer out_cache, acc_cache;
  std::vector<float> column_sums, scales, offsets;

  Prim& prim(int64_t rows) {
    auto it = prims.find(rows);
    if (it != prims.end()) return it->second;
    const int64_t k = weight.size(0), n = weight.size(1);
    Prim p;
    p.src = memory::desc({rows, k}, kU8, Tag::ab);
    p.dst = memory::desc({rows, n}, memory::data_type::s32, Tag::ab);
    dnnl::matmul::desc d(p.src, memory::desc({k, n}, kS8, Tag::any), p.dst);
    dnnl::matmul::primitive_desc pd(d, plan::cpu_engine());
    p.mm.prim = dnnl::matmul(pd);
    p.mm.args[DNNL_ARG_WEIGHTS] =
        plan::prepack(memory::desc({k, n}, kS8, Tag::ab), weight.data_ptr(), pd.weights_desc());
    return prims.emplace(rows, std::move(p)).first->second;
  }

  at::Tensor run(const at::Tensor& x_in) {
    EF_CHECK(x_in.scalar_type() == at::kFloat, where, ": input has type ",
             c10::toString(x_in.scalar_type()), ", expected Float");
    const int64_t k = weight.size(0), n = weight.size(1);
    EF_CHECK(x_in.dim() >= 1 && x_in.size(-1) == k, where, ": input ", x_in.sizes(),
             " does not end in ", k, " features");
    const at::Tensor x = x_in.contiguous();
    const int64_t rows = x.numel() / k;
    std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
    shape.back() = n;
    if (rows == 0) return at::empty(shape, at::kFloat);
    const auto [lo_t, hi_t] = at::aminmax(x);
    const float lo = std::min(lo_t.item<float>(), 0.0f), hi = std::max(hi_t.item<float>(), 0.0f);
    const float scale = (hi - lo) / 255.0f;
    if (scale == 0.0f) {  // an all-zero input: DynamicQuantizeLinear's scale 0, y = bias
      at::Tensor y = at::zeros(shape, at::kFloat);
      return bias.defined() ? y + bias.reshape({n}) : y;
    }
    const float zp = std::min(std::max(std::nearbyint(-lo / scale), 0.0f), 255.0f);
    const at::Tensor q = quantize_uint8(x, QuantParams{scale, static_cast<int64_t>(zp)});
    Prim& p = prim(rows);
    at::Tensor acc = plan::reuse_or_make(acc_cache, p.dst, at::kInt);
    p.mm.set(DNNL_ARG_SRC, p.src, q.data_ptr());
    p.mm.set(DNNL_ARG_DST, p.dst, acc.data_ptr());
    p.mm.run();
    const float* b = bias.defined() ? bias.data_ptr<float>() : nullptr;
    for (int64_t c = 0; c < n; ++c) {
      scales[c] = scale * w_scale[c];
      offsets[c] = -zp * column_sums[c] * scales[c] + (b != nullptr ? b[c] : 0.0f);
    }
    at::Tensor y = plan::reuse_or_make(out_cache, memory::desc({rows, n}, kF32, Tag::ab), at::kFloat);
    dequantize_rows(acc.data_ptr<int32_t>(), scales.data(), offsets.data(), y.data_ptr<float>(),
                    rows, n);
    return y.view(shape);
  }
};

Kernel prepare_dnnl_dyn_qlinear(const Node& node, const Graph& graph) {
  auto s = std::make_shared<DynQLinearState>();
  const bool in_out = node.attr_int("weight_in_out", 0) != 0;
  s->where = node.describe();
  // read_common's output attributes do not apply: the output is float.
  Node with_output = node;
  with_output.set("y_scale", 1.0f).set("y_zero_point", int64_t{0});
  read_common(*s, with_output, graph, in_out ? 1 : 0);
  EF_CHECK(s->weight.dim() == 2, s->where, ": weight must be 2-D");
  if (!in_out) s->weight = s->weight.t().contiguous();
  const int64_t n = s->weight.size(1);
  const at::Tensor sums = s->weight.to(at::kFloat).sum(0).contiguous();  // exact: small integers
  s->column_sums.assign(sums.data_ptr<float>(), sums.data_ptr<float>() + n);
  s->scales.assign(n, 0.0f);
  s->offsets.assign(n, 0.0f);
  return [s](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = s->run(in[0]);
  };
}

}  // namespace

EF_REGISTER_OP(DnnlQConv, OpDef{"DnnlQConv", 3, 5, prepare_dnnl_qconv, kEdgeforgeDomain});
EF_REGISTER_OP(DnnlQLinear, OpDef{"DnnlQLinear", 3, 5, prepare_dnnl_qlinear, kEdgeforgeDomain});
EF_REGISTER_OP(DnnlDynQLinear,
               OpDef{"DnnlDynQLinear", 3, 4, prepare_dnnl_dyn_qlinear, kEdgeforgeDomain});

}  // namespace edgeforge::ops
