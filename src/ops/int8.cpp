// edgeforge's internal int8 ops (domain ai.edgeforge), emitted only by the QDQ lowering pass
// (src/runtime/lower_int8.cpp, edgeforge/lower.h). Between them, uint8 activations travel as
// LibTorch quint8 tensors that carry their own scale and zero point.
//
//   QuantizeTensor(x)                  float -> quint8; attributes scale, zero_point (uint8 x:
//                                      wrapped as quint8 with them, unchanged)
//   DequantizeTensor(q)                quint8 -> float
//   QConv(q, w_int8, w_scale[, bias])  quint8 -> quint8; Conv attributes (2-D, explicit pads),
//                                      y_scale, y_zero_point, relu, activation (lowering.h:
//                                      activation, activation_alpha, activation_beta)
//   QLinear(q, w_int8, w_scale[, b])   quint8 [..., in] -> quint8 [..., out]; y_scale,
//                                      y_zero_point, relu, activation, weight_in_out (w is
//                                      [in, out])
//   DynQLinear(x, w_int8, w_scale[, b]) float -> float, activation range taken at run time
//   QAdd(qa, qb)                       quint8 + quint8 -> quint8; y_scale, y_zero_point, relu
//                                      (the float arithmetic of DQ -> Add [-> Relu] -> Q)
//   QMul(qa, qb)                       quint8 * quint8 -> quint8; y_scale, y_zero_point, relu
//                                      (the float arithmetic of DQ -> Mul [-> Relu] -> Q)
//   QMaxPool(q)                        quint8 -> quint8; 2-D kernel_shape, strides, dilations,
//                                      symmetric pads, ceil_mode; y_scale, y_zero_point, relu
//                                      (DQ -> MaxPool [-> Relu] -> Q exactly)
//   FakeQuant(x, scale, zero_point)    float -> float, uint8 fake quantization (QAT training)
//   FakeQuantWeight(w)                 float -> float, int8 symmetric fake quantization (QAT)
//
// Weights and scales are constant inputs read once at prepare time and prepacked.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "edgeforge/int8.h"
#include "lowering.h"
#include "train_kernels.h"
#include "util.h"

namespace edgeforge::ops {
namespace {

// The int8 weight of a lowered node as a qint8 tensor, per output channel (axis 0 after an
// optional transpose from [in, out]), from its constant int8 values and scales.
at::Tensor lowered_weight(const Node& node, const Graph& graph, bool in_out) {
  const std::string where = node.describe();
  at::Tensor w = prepared_input(node, graph, 1);
  at::Tensor scale = prepared_input(node, graph, 2);
  EF_CHECK(w.defined() && w.scalar_type() == at::kChar, where,
           ": weight must be a constant int8 tensor");
  EF_CHECK(scale.defined() && at::isFloatingType(scale.scalar_type()), where,
           ": weight scale must be a constant float tensor");
  if (in_out) w = w.t();
  w = w.contiguous();
  const int64_t channels = w.size(0);
  scale = scale.to(at::kDouble).reshape({-1});
  if (scale.numel() == 1) scale = scale.expand({channels}).contiguous();
  EF_CHECK(scale.numel() == channels, where, ": ", scale.numel(), " weight scales for ", channels,
           " output channels");
  EF_CHECK(scale.gt(0).all().item<bool>(), where, ": weight scales must be positive");
  return at::_make_per_channel_quantized_tensor(w, scale, at::zeros({channels}, at::kLong), 0);
}

QuantParams output_params(const Node& node) {
  QuantParams p;
  p.scale = node.attr_float("y_scale");
  p.zero_point = node.attr_int("y_zero_point");
  return p;
}

Kernel prepare_quantize_tensor(const Node& node, const Graph&) {
  QuantParams p;
  p.scale = node.attr_float("scale");
  p.zero_point = node.attr_int("zero_point");
  return [p](const TensorList& in, TensorList& out, const KernelContext&) {
    // uint8 in: values already quantized with these parameters (a quantized tensor sent across
    // a partition cut); they are wrapped, not converted.
    out[0] = in[0].scalar_type() == at::kByte
                 ? at::_make_per_tensor_quantized_tensor(in[0].contiguous(), p.scale, p.zero_point)
                 : quantize_uint8(in[0], p);
  };
}

Kernel prepare_dequantize_tensor(const Node&, const Graph&) {
  return [](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = dequantize_uint8(in[0]);
  };
}

// A QConv or QLinear with an activation other than ReLU, which LibTorch's int8 kernels do not
// fuse: QDQ's float arithmetic itself, act(conv(dequantize(x), dequantize(w)) + b) quantized to
// the output parameters. The reference of the plan's fused oneDNN kernels.
Kernel qdq_layer_with_activation(const Node& node, const Graph& graph, bool conv) {
  const Activation act = activation_of(node);
  const bool in_out = node.attr_int("weight_in_out", 0) != 0;
  const at::Tensor w = lowered_weight(node, graph, !conv && in_out).dequantize();
  at::Tensor b = prepared_input(node, graph, 3);
  if (b.defined()) b = b.to(at::kFloat).reshape({-1});
  const QuantParams y = output_params(node);
  std::vector<int64_t> strides, pads, dilations;
  int64_t group = 1;
  if (conv) {
    strides = node.attr_ints("strides");
    const std::vector<int64_t> p = node.attr_ints("pads");
    EF_CHECK(p.size() == 4, node.describe(), ": pads must have 4 values");
    pads = {p[0], p[1]};
    dilations = node.attr_ints("dilations");
    group = node.attr_int("group");
  }
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor x = dequantize_uint8(in[0]);
    const at::Tensor v = conv ? at::conv2d(x, w, b, strides, pads, dilations, group)
                              : at::linear(x, w, b);
    out[0] = quantize_uint8(apply_activation(v, act), y);
  };
}

Kernel prepare_qconv(const Node& node, const Graph& graph) {
  if (!activation_of(node).kind.empty()) return qdq_layer_with_activation(node, graph, true);
  use_int8_engine();
  const std::vector<int64_t> pads = node.attr_ints("pads");
  EF_CHECK(pads.size() == 4, node.describe(), ": pads must have 4 values");
  auto conv = std::make_shared<Int8Conv2d>(
      lowered_weight(node, graph, false), prepared_input(node, graph, 3), node.attr_ints("strides"),
      std::vector<int64_t>{pads[0], pads[1]}, node.attr_ints("dilations"), node.attr_int("group"),
      output_params(node), node.attr_int("relu") != 0);
  return [conv](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = conv->run(in[0].contiguous(at::MemoryFormat::ChannelsLast));
  };
}

// quantized::linear takes [rows, in]; other ranks are flattened around it.
at::Tensor linear_any_rank(const at::Tensor& x, const std::function<at::Tensor(const at::Tensor&)>& f) {
  if (x.dim() == 2) return f(x.contiguous());
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  at::Tensor y = f(x.contiguous().reshape({-1, shape.back()}));
  shape.back() = y.size(1);
  return y.reshape(shape);
}

Kernel prepare_qlinear(const Node& node, const Graph& graph) {
  if (!activation_of(node).kind.empty()) return qdq_layer_with_activation(node, graph, false);
  use_int8_engine();
  auto linear = std::make_shared<Int8Linear>(
      lowered_weight(node, graph, node.attr_int("weight_in_out", 0) != 0),
      prepared_input(node, graph, 3), output_params(node), node.attr_int("relu", 0) != 0);
  return [linear](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = linear_any_rank(in[0], [&](const at::Tensor& x) { return linear->run(x); });
  };
}

Kernel prepare_dyn_qlinear(const Node& node, const Graph& graph) {
  use_int8_engine();
  auto linear = std::make_shared<Int8Linear>(
      lowered_weight(node, graph, node.attr_int("weight_in_out", 0) != 0),
      prepared_input(node, graph, 3), QuantParams{}, false);
  return [linear](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = linear_any_rank(in[0], [&](const at::Tensor& x) { return linear->run_dynamic(x); });
  };
}

// Quantization-aware training (the qat strategy): a uint8 fake quantization of an activation
// with the scale and zero point held in scalar initializers that observers update, and a
// symmetric int8 fake quantization of a weight per output channel (`axis`) from its current
// values. Both pass gradients straight through inside the range.
// Both run on edgeforge's vectorised kernels (train_kernels.h), which compute what ATen's
// fake_quantize_* do, bit for bit.
Kernel prepare_fake_quant(const Node&, const Graph&) {
  return [](const TensorList& in, TensorList& out, const KernelContext&) {
    const auto scale = in[1].item<float>();
    const auto zero_point = static_cast<float>(static_cast<int64_t>(in[2].item<float>()));
    out[0] = fake_quantize(in[0], scale, zero_point, 0, 255);
  };
}

Kernel prepare_fake_quant_weight(const Node& node, const Graph&) {
  const int64_t axis = node.attr_int("axis", 0);
  const bool per_channel = node.attr_int("per_channel", 1) != 0;
  const int64_t qmax = node.attr_int("qmax", 127);
  EF_CHECK(qmax == 63 || qmax == 127, "FakeQuantWeight node '", node.name, "': qmax ", qmax,
           " (expected 63 or 127)");
  return [axis, per_channel, qmax](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& w = in[0];
    const at::Tensor scales = symmetric_scales(w, axis, per_channel, qmax);
    const auto q = static_cast<float>(qmax);
    out[0] = per_channel ? fake_quantize_per_channel(w, scales, axis, -q, q)
                         : fake_quantize(w, scales.item<float>(), 0, -q, q);
  };
}

// Residual adds between int8 layers: the same float32 arithmetic as the QDQ reference
// (dequantize both, add, optional ReLU, quantize), in one pass over uint8 data.
Kernel prepare_qadd(const Node& node, const Graph&) {
  const QuantParams y = output_params(node);
  const bool relu = node.attr_int("relu", 0) != 0;
  return [y, relu](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& a = in[0];
    if (a.sizes() != in[1].sizes()) {  // broadcasting: the reference path
      at::Tensor sum = dequantize_uint8(a) + dequantize_uint8(in[1]);
      out[0] = quantize_uint8(relu ? at::relu(sum) : sum, y);
      return;
    }
    const at::MemoryFormat layout = int8_layout(a);
    const at::Tensor qa = a.contiguous(layout), qb = in[1].contiguous(layout);
    at::Tensor q = at::_empty_affine_quantized(qa.sizes(), at::device(at::kCPU).dtype(at::kQUInt8),
                                               y.scale, y.zero_point, layout);
    const auto* __restrict pa = reinterpret_cast<const uint8_t*>(qa.data_ptr<c10::quint8>());
    const auto* __restrict pb = reinterpret_cast<const uint8_t*>(qb.data_ptr<c10::quint8>());
    auto* __restrict pq = reinterpret_cast<uint8_t*>(q.data_ptr<c10::quint8>());
    const auto sa = static_cast<float>(qa.q_scale()), sb = static_cast<float>(qb.q_scale());
    const auto za = static_cast<float>(qa.q_zero_point()), zb = static_cast<float>(qb.q_zero_point());
    const auto sy = static_cast<float>(y.scale), zy = static_cast<float>(y.zero_point);
    // ReLU is a lower bound of 0 on the sum: max(v, 0) / sy clamped to [lo, hi] is the same as
    // v / sy clamped to [max(lo, 0), hi] (sy > 0), so one branch-free loop serves both.
    const float lo = relu ? std::max(-zy, 0.0f) : -zy, hi = 255.0f - zy;
    at::parallel_for(0, qa.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        // (q - z) * s in float, as DequantizeLinear computes it: small integers are exact.
        const float v = (static_cast<float>(pa[i]) - za) * sa + (static_cast<float>(pb[i]) - zb) * sb;
        float r = std::min(std::max(v / sy, lo), hi);
        r = (r + 12582912.0f) - 12582912.0f;  // half to even, as in quantize_uint8
        pq[i] = static_cast<uint8_t>(static_cast<int32_t>(r + zy));
      }
    });
    out[0] = q;
  };
}

// QMul: DQ -> Mul [-> Relu] -> Q in QDQ's float arithmetic, bit for bit: each operand
// dequantized ((q - z) * s, float), their product, then QuantizeLinear's rounding. Operands of
// one shape, or a 4-D value and its per-channel gate [N or 1, C, 1, 1] (squeeze-excitation),
// run in vectorised passes; other broadcasts take the reference path.
struct MulRequant {
  float sx, zx, sy, zy, lo, hi;  // lo, hi: the output steps' bounds, as in QAdd
};

// y[i] = Q(DQ(x[i]) * gate[i]) for the float gate values of `gate`.
__attribute__((target_clones("avx512f", "avx2", "default"))) void requantize_product(
    const uint8_t* __restrict x, const float* __restrict gate, uint8_t* __restrict y, int64_t n,
    MulRequant m) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = ((static_cast<float>(x[i]) - m.zx) * m.sx) * gate[i];
    float r = std::min(std::max(v / m.sy, m.lo), m.hi);
    r = (r + 12582912.0f) - 12582912.0f;  // half to even, as in quantize_uint8
    y[i] = static_cast<uint8_t>(static_cast<int32_t>(r + m.zy));
  }
}

// The same with one gate value for all n.
__attribute__((target_clones("avx512f", "avx2", "default"))) void requantize_scaled(
    const uint8_t* __restrict x, float gate, uint8_t* __restrict y, int64_t n, MulRequant m) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = ((static_cast<float>(x[i]) - m.zx) * m.sx) * gate;
    float r = std::min(std::max(v / m.sy, m.lo), m.hi);
    r = (r + 12582912.0f) - 12582912.0f;
    y[i] = static_cast<uint8_t>(static_cast<int32_t>(r + m.zy));
  }
}

Kernel prepare_qmul(const Node& node, const Graph&) {
  const QuantParams y = output_params(node);
  const bool relu = node.attr_int("relu", 0) != 0;
  auto kept = std::make_shared<at::Tensor>();  // the output buffer, reused once nothing holds it
  return [y, relu, kept](const TensorList& in, TensorList& out, const KernelContext&) {
    const auto gate_of = [](const at::Tensor& g, const at::Tensor& x) {
      return x.dim() == 4 && g.dim() == 4 && g.size(1) == x.size(1) && g.size(2) == 1 &&
             g.size(3) == 1 && (g.size(0) == 1 || g.size(0) == x.size(0));
    };
    const bool same = in[0].sizes() == in[1].sizes();
    const bool b_gate = !same && gate_of(in[1], in[0]), a_gate = !same && gate_of(in[0], in[1]);
    if (!same && !a_gate && !b_gate) {
      at::Tensor product = dequantize_uint8(in[0]) * dequantize_uint8(in[1]);
      out[0] = quantize_uint8(relu ? at::relu(product) : product, y);
      return;
    }
    const at::Tensor& x_in = a_gate ? in[1] : in[0];
    const at::Tensor& g_in = a_gate ? in[0] : in[1];
    const at::MemoryFormat layout = int8_layout(x_in);
    const at::Tensor x = x_in.contiguous(layout);
    // The other operand dequantized, as DequantizeLinear computes it.
    const at::Tensor g = same ? dequantize_uint8(g_in).contiguous(layout)
                              : dequantize_uint8(g_in).contiguous();
    at::Tensor& q = *kept;
    if (!(q.defined() && q.use_count() == 1 && q.storage().use_count() == 1 &&
          q.sizes() == x.sizes() && q.is_contiguous(layout)))
      q = at::_empty_affine_quantized(x.sizes(), at::device(at::kCPU).dtype(at::kQUInt8), y.scale,
                                      y.zero_point, layout);
    const auto* px = reinterpret_cast<const uint8_t*>(x.data_ptr<c10::quint8>());
    const float* pg = g.data_ptr<float>();
    auto* pq = reinterpret_cast<uint8_t*>(q.data_ptr<c10::quint8>());
    MulRequant m;
    m.sx = static_cast<float>(x.q_scale());
    m.zx = static_cast<float>(x.q_zero_point());
    m.sy = static_cast<float>(y.scale);
    m.zy = static_cast<float>(y.zero_point);
    m.lo = relu ? std::max(-m.zy, 0.0f) : -m.zy;
    m.hi = 255.0f - m.zy;
    if (same) {
      at::parallel_for(0, x.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
        requantize_product(px + begin, pg + begin, pq + begin, end - begin, m);
      });
      out[0] = q;
      return;
    }
    // Rows of one gate vector (a pixel's channels) or one gate value (a channel's pixels).
    const int64_t n = x.size(0), c = x.size(1), pixels = x.size(2) * x.size(3);
    const bool channels_last = layout == at::MemoryFormat::ChannelsLast;
    const int64_t rows = channels_last ? n * pixels : n * c, row = channels_last ? c : pixels;
    const bool shared_gate = g.size(0) == 1;
    at::parallel_for(0, rows, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(row, 1)),
                     [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        if (channels_last) {
          const float* gb = pg + (shared_gate ? 0 : (r / pixels) * c);
          requantize_product(px + r * c, gb, pq + r * c, c, m);
        } else {
          const float gk = pg[shared_gate ? r % c : r];
          requantize_scaled(px + r * pixels, gk, pq + r * pixels, pixels, m);
        }
      }
    });
    out[0] = q;
  };
}

// QMaxPool: ATen's max pool on the quint8 values, then each value mapped through a table of
// what DQ -> [Relu ->] Q computes for it. Max commutes with that non-decreasing map, so the
// result is DQ -> MaxPool -> [Relu] -> Q exactly, at a quarter of the bytes.
Kernel prepare_qmax_pool(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const std::vector<int64_t> kernel = node.attr_ints("kernel_shape");
  const std::vector<int64_t> strides = node.attr_ints("strides");
  const std::vector<int64_t> dilations = node.attr_ints("dilations");
  const std::vector<int64_t> pads = node.attr_ints("pads");
  EF_CHECK(kernel.size() == 2 && strides.size() == 2 && dilations.size() == 2 && pads.size() == 4,
           where, ": kernel_shape, strides, dilations and pads must have 2, 2, 2 and 4 values");
  EF_CHECK(pads[0] == pads[2] && pads[1] == pads[3], where, ": pads must be symmetric");
  const bool ceil_mode = node.attr_int("ceil_mode", 0) != 0;
  const QuantParams y = output_params(node);
  const bool relu = node.attr_int("relu", 0) != 0;
  struct Table {
    double scale = 0;
    int64_t zero_point = -1;
    bool identity = false;
    at::Tensor values;  // uint8 [256]
  };
  auto table = std::make_shared<Table>();
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& q = in[0];
    EF_CHECK(q.scalar_type() == at::kQUInt8 && q.qscheme() == at::kPerTensorAffine, where,
             ": input must be a per-tensor quint8 tensor");
    EF_CHECK(q.dim() == 4, where, ": input has shape ", q.sizes(), ", expected 4-D");
    const at::Tensor pooled = at::max_pool2d(q, kernel, strides, {pads[0], pads[1]}, dilations,
                                             ceil_mode);
    if (table->scale != q.q_scale() || table->zero_point != q.q_zero_point()) {
      const at::Tensor all = at::_make_per_tensor_quantized_tensor(
          at::arange(256, at::kInt).to(at::kByte), q.q_scale(), q.q_zero_point());
      at::Tensor v = dequantize_uint8(all);
      if (relu) v = at::relu(v);
      table->values = quantize_uint8(v, y).int_repr().contiguous();
      table->identity = at::equal(table->values, all.int_repr());
      table->scale = q.q_scale();
      table->zero_point = q.q_zero_point();
    }
    if (table->identity && y.scale == q.q_scale() && y.zero_point == q.q_zero_point()) {
      out[0] = pooled;
      return;
    }
    const at::Tensor from = pooled.contiguous(int8_layout(pooled));
    at::Tensor result = at::_empty_affine_quantized(
        from.sizes(), at::device(at::kCPU).dtype(at::kQUInt8), y.scale, y.zero_point,
        int8_layout(from));
    const auto* __restrict src = reinterpret_cast<const uint8_t*>(from.data_ptr<c10::quint8>());
    auto* __restrict dst = reinterpret_cast<uint8_t*>(result.data_ptr<c10::quint8>());
    const uint8_t* map = table->values.data_ptr<uint8_t>();
    for (int64_t i = 0, n = from.numel(); i < n; ++i) dst[i] = map[src[i]];
    out[0] = result;
  };
}

// The int8 layers move to the plan's direct oneDNN kernels (src/runtime/plan_int8.cpp), with
// the same inputs and attributes: DnnlQConv, DnnlQLinear, DnnlDynQLinear.
// A QConv whose only reader is a QAdd of it and another quantized value (a residual block's
// last convolution, with no activation but ReLU) takes the add as well: DnnlQConv's
// residual input (index 4) and the attributes add_y_scale, add_y_zero_point, add_relu,
// add_inplace (the residual has no other reader: the sum is written into its buffer). A
// QConv or QLinear read only by a DequantizeTensor takes that (dequantize_output), and a
// QLinear then also a residual Add after it, or an exact GELU and the QuantizeTensor after that.
void plan_int8_layer(PlanRewriter& pass, size_t i) {
  Node fused = pass.node(i);
  fused.op_type = "Dnnl" + fused.op_type;
  std::vector<size_t> absorbed{i};
  const std::string y = fused.outputs[0];
  const auto c = pass.only_consumer(y);
  const auto internal = [](const Node& n, const char* type) {
    return n.op_type == type && n.domain == kEdgeforgeDomain;
  };
  if (fused.op_type == "DnnlQConv" && activation_of(fused).kind.empty() && c &&
      internal(pass.node(*c), "QAdd")) {
    const Node& add = pass.node(*c);
    const std::string& other = add.inputs[0] == y ? add.inputs[1] : add.inputs[0];
    if (other != y) {
      fused.inputs.resize(4);  // no bias: ""
      fused.inputs.push_back(other);
      fused.outputs = add.outputs;
      // In place only over a buffer an int8 kernel made for this value alone.
      const Node* from = pass.producer(other);
      const bool inplace = pass.consumers(other).size() == 1 && !pass.is_graph_output(other) &&
                           from != nullptr && (internal(*from, "QConv") ||
                                               internal(*from, "QAdd") ||
                                               internal(*from, "QMaxPool"));
      fused.set("add_y_scale", add.attr_float("y_scale"))
          .set("add_y_zero_point", add.attr_int("y_zero_point"))
          .set("add_relu", add.attr_int("relu", 0))
          .set("add_inplace", int64_t{inplace});
      absorbed.push_back(*c);
    }
  }
  // A static layer whose only reader is the DequantizeTensor of its output (the value goes on
  // in float: to a LayerNorm, a reshape, a GELU) writes the float values itself
  // (dequantize_output), unless a GlobalAveragePool reads them, which takes the uint8 ones.
  const auto dq = pass.only_consumer(fused.outputs[0]);
  const bool is_static = fused.op_type == "DnnlQConv" || fused.op_type == "DnnlQLinear";
  if (!is_static || absorbed.size() != 1 || !dq || !internal(pass.node(*dq), "DequantizeTensor")) {
    pass.place(std::move(fused), absorbed);
    return;
  }
  const std::string v = pass.node(*dq).outputs[0];
  const auto reader = pass.only_consumer(v);
  if (reader && pass.node(*reader).is("GlobalAveragePool")) {
    pass.place(std::move(fused), absorbed);
    return;
  }
  // DQ -> exact GELU -> QuantizeTensor (a transformer's first feed-forward layer): the GELU and
  // the requantization become post-ops too (gelu_y_scale, gelu_y_zero_point), uint8 out. A GELU
  // whose output stays float is left to DnnlGelu, reading the DequantizeTensor.
  std::vector<size_t> gelu;
  if (const auto g = pass.exact_gelu(v, &gelu)) {
    const auto q = pass.only_consumer(*g);
    if (!q || !internal(pass.node(*q), "QuantizeTensor") || fused.attr_int("relu", 0) != 0 ||
        !activation_of(fused).kind.empty()) {
      pass.place(std::move(fused), absorbed);
      return;
    }
    const Node& quantize = pass.node(*q);
    fused.outputs = quantize.outputs;
    fused.set("gelu_y_scale", quantize.attr_float("scale"))
        .set("gelu_y_zero_point", quantize.attr_int("zero_point"));
    absorbed.push_back(*dq);
    absorbed.insert(absorbed.end(), gelu.begin(), gelu.end());
    absorbed.push_back(*q);
    pass.place(std::move(fused), absorbed);
    return;
  }
  fused.outputs = {v};
  fused.set("dequantize_output", int64_t{1});
  absorbed.push_back(*dq);
  // A linear layer's float output added to another value (a transformer's residual): the add
  // is a post-op (input 4).
  std::string tail = v;
  if (fused.op_type == "DnnlQLinear") {
    if (auto r = pass.residual_add(tail, absorbed)) {
      fused.inputs.resize(4);  // no bias: ""
      fused.inputs.push_back(*r);
      fused.outputs = {tail};
    }
  }
  pass.place(std::move(fused), absorbed);
}

// At the first stage, before the GELU pass, so a dequantized GELU can join its int8 layer.
OpCapabilities int8_layer_capabilities() {
  OpCapabilities c;
  c.plan = plan_int8_layer;
  c.plan_stage = PlanStage::kLayers;
  return c;
}

}  // namespace

EF_REGISTER_OP(QAdd, OpDef{"QAdd", 2, 2, prepare_qadd, kEdgeforgeDomain});
EF_REGISTER_OP(QMaxPool, OpDef{"QMaxPool", 1, 1, prepare_qmax_pool, kEdgeforgeDomain});
EF_REGISTER_OP(QMul, OpDef{"QMul", 2, 2, prepare_qmul, kEdgeforgeDomain});
EF_REGISTER_OP(FakeQuant, OpDef{"FakeQuant", 3, 3, prepare_fake_quant, kEdgeforgeDomain});
EF_REGISTER_OP(FakeQuantWeight,
               OpDef{"FakeQuantWeight", 1, 1, prepare_fake_quant_weight, kEdgeforgeDomain});
EF_REGISTER_OP(QuantizeTensor,
               OpDef{"QuantizeTensor", 1, 1, prepare_quantize_tensor, kEdgeforgeDomain});
EF_REGISTER_OP(DequantizeTensor,
               OpDef{"DequantizeTensor", 1, 1, prepare_dequantize_tensor, kEdgeforgeDomain});
EF_REGISTER_OP(QConv, OpDef{"QConv", 3, 4, prepare_qconv, kEdgeforgeDomain,
                            int8_layer_capabilities()});
EF_REGISTER_OP(QLinear, OpDef{"QLinear", 3, 4, prepare_qlinear, kEdgeforgeDomain,
                              int8_layer_capabilities()});
EF_REGISTER_OP(DynQLinear, OpDef{"DynQLinear", 3, 4, prepare_dyn_qlinear, kEdgeforgeDomain,
                                 int8_layer_capabilities()});

}  // namespace edgeforge::ops
