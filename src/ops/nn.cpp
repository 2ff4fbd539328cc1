// Neural-network ops: Conv, pooling, BatchNormalization, Gemm, MatMul, Softmax, LogSoftmax,
// LayerNormalization and Dropout, with their capabilities: the MACs of Conv, Gemm and MatMul,
// their quantization and structured pruning, and the plan and int8 lowerings of the layers.
#include <ATen/ATen.h>

#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "edgeforge/error.h"
#include "edgeforge/ops.h"
#include "lowering.h"
#include "train_kernels.h"
#include "util.h"
#include "window.h"

namespace edgeforge::ops {
namespace {

bool pads_symmetric(const std::vector<int64_t>& pads) {
  const size_t n = pads.size() / 2;
  for (size_t i = 0; i < n; ++i)
    if (pads[i] != pads[n + i]) return false;
  return true;
}

std::vector<int64_t> pad_begins(const std::vector<int64_t>& pads) {
  return std::vector<int64_t>(pads.begin(), pads.begin() + pads.size() / 2);
}

// ---- Conv ----

// Conv padding split into the symmetric part ATen's convolution takes and an explicit
// constant_pad_nd for asymmetric pads.
struct ConvPadding {
  std::vector<int64_t> conv;    // per spatial dimension
  std::vector<int64_t> pad_nd;  // empty when symmetric
};

ConvPadding split_conv_padding(const std::vector<int64_t>& pads) {
  ConvPadding p;
  if (pads_symmetric(pads)) {
    p.conv = pad_begins(pads);
  } else {
    p.conv.assign(pads.size() / 2, 0);
    p.pad_nd = pad_nd_list(pads);
  }
  return p;
}

at::Tensor conv_forward(const Window& w, const ConvPadding& padding, int64_t group,
                        const std::vector<int64_t>& output_padding, const at::Tensor& x,
                        const at::Tensor& weight, const at::Tensor& bias) {
  const at::Tensor& input = padding.pad_nd.empty() ? x : at::constant_pad_nd(x, padding.pad_nd);
  return at::convolution(input, weight, bias, w.strides, padding.conv, w.dilations, false,
                         output_padding, group);
}

Kernel prepare_conv(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  const int64_t group = node.attr_int("group", 1);
  EF_CHECK(group >= 1, where, ": group ", group, " is not positive");
  at::Tensor weight = prepared_input(node, graph, 1);
  int64_t rank = 0;
  if (weight.defined()) {
    EF_CHECK(weight.dim() >= 3 && weight.dim() <= 5, where, ": weight has shape ", weight.sizes(),
             ", expected [out_channels, in_channels / group, k1, ...] with 1 to "
             "3 spatial dimensions");
    EF_CHECK(weight.size(0) % group == 0, where, ": weight has ", weight.size(0),
             " output channels, not divisible by group ", group);
    rank = weight.dim() - 2;
  }
  Window w = parse_window(node, false, rank);
  if (weight.defined() && !w.kernel.empty())
    for (int64_t i = 0; i < w.rank; ++i)
      EF_CHECK(w.kernel[i] == weight.size(2 + i), where, ": kernel_shape ",
               at::IntArrayRef(w.kernel), " does not match the weight shape ", weight.sizes());

  if (w.rank > 0 && w.auto_pad == AutoPad::kNotSet) {
    ConvPadding padding = split_conv_padding(w.pads);
    std::vector<int64_t> output_padding(w.rank, 0);
    return [w, padding, group, output_padding](const TensorList& in, TensorList& out,
                                               const KernelContext&) {
      out[0] = conv_forward(w, padding, group, output_padding, in[0], in[1], optional_input(in, 2));
    };
  }
  // Pads that depend on the input size (SAME_*, VALID) or a rank known only at run time.
  return [w, group, where](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    const at::Tensor& weight = in[1];
    Window ww = w;
    if (ww.rank == 0) fill_window(ww, weight.dim() - 2, where);
    EF_CHECK(x.dim() == ww.rank + 2 && weight.dim() == ww.rank + 2, where, ": input shape ",
             x.sizes(), " and weight shape ", weight.sizes(), " do not match ", ww.rank,
             " spatial dimensions");
    const ConvPadding padding =
        split_conv_padding(resolve_pads(ww, x.sizes(), weight.sizes().slice(2)));
    const std::vector<int64_t> output_padding(ww.rank, 0);
    out[0] = conv_forward(ww, padding, group, output_padding, x, weight, optional_input(in, 2));
  };
}

// ---- Conv's capabilities ----

// The number of elements of a shape from axis `from` on.
int64_t product(const std::vector<int64_t>& dims, size_t from = 0) {
  int64_t p = 1;
  for (size_t i = from; i < dims.size(); ++i) p *= dims[i];
  return p;
}

int64_t conv_macs(const Node&, const ValueShapes& in, const ValueShapes& out) {
  const std::vector<int64_t>* w = in.at(1);
  const std::vector<int64_t>* y = out.at(0);
  if (w == nullptr || y == nullptr || w->size() < 3) return 0;
  return product(*y) * product(*w, 1);  // each output: (C_in / groups) * kernel MACs
}

std::optional<int64_t> conv_weight_axis(const Node&, const at::Tensor& w) {
  if (w.dim() != 4) return std::nullopt;  // only 2-D convolutions have an int8 kernel
  return 0;
}

// [out, in / group, kh, kw] over channels on axis 1.
std::optional<WeightedUnits> conv_units(const Node& n) {
  WeightedUnits u;
  u.rank = 4;
  u.in_axis = 1;
  u.out_axis = 0;
  u.channels = true;
  u.group = n.attr_int("group", 1);
  u.bias = n.inputs.size() > 2 ? n.inputs[2] : "";
  return u;
}

// Conv [-> BN] [-> activation | -> Add(residual) [-> Relu]] -> DnnlConv
// (src/runtime/plan_ops.cpp).
void plan_conv(PlanRewriter& pass, size_t i) {
  const Node& n = pass.node(i);
  at::Tensor w = pass.constant(n.inputs.size() > 1 ? n.inputs[1] : "");
  if (!w.defined() || w.scalar_type() != at::kFloat)
    return pass.fall_back(n, "its weight is not a constant float tensor");
  if (w.dim() != 4) return pass.fall_back(n, "only 2-D convolutions are planned");
  if (n.attr_string("auto_pad", "NOTSET") != "NOTSET")
    return pass.fall_back(n, "auto_pad is not planned (explicit pads are)");
  at::Tensor b;
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
    b = pass.constant(n.inputs[2]);
    if (!b.defined() || !at::isFloatingType(b.scalar_type()) || b.numel() != w.size(0))
      return pass.fall_back(n, "its bias is not a constant with one value per output channel");
    b = b.to(at::kFloat).reshape({-1});
  }
  std::vector<size_t> absorbed{i};
  std::string tail = n.outputs[0];
  // Batch norm on constants folds into the weights: w * g / sqrt(v + eps), (b - m) * ... + beta.
  if (auto c = pass.only_consumer(tail); c && pass.node(*c).is("BatchNormalization") &&
                                         pass.node(*c).outputs.size() == 1) {
    const Node& bn = pass.node(*c);
    std::vector<at::Tensor> p;
    for (size_t k = 1; k < 5 && k < bn.inputs.size(); ++k) p.push_back(pass.constant(bn.inputs[k]));
    bool ok = p.size() == 4;
    for (const at::Tensor& t : p) ok = ok && t.defined() && t.numel() == w.size(0);
    if (ok) {
      const at::Tensor inv = p[0].to(at::kDouble).reshape({-1}) /
                             (p[3].to(at::kDouble).reshape({-1}) + bn.attr_float("epsilon", 1e-5f)).sqrt();
      at::Tensor bias = b.defined() ? b.to(at::kDouble) : at::zeros({w.size(0)}, at::kDouble);
      b = ((bias - p[2].to(at::kDouble).reshape({-1})) * inv + p[1].to(at::kDouble).reshape({-1}))
              .to(at::kFloat);
      w = (w.to(at::kDouble) * inv.reshape({-1, 1, 1, 1})).to(at::kFloat);
      absorbed.push_back(*c);
      tail = bn.outputs[0];
    }
  }
  bool residual_relu = false, inplace = false;
  std::string residual;
  const std::optional<Activation> act = fusable_activation(pass, tail, absorbed);
  if (!act) {
    if (auto r = pass.residual_add(tail, absorbed)) {
      residual = *r;
      // In place when the Add is the residual's only reader and it is a node's output.
      inplace = pass.consumers(residual).size() == 1 && !pass.is_graph_output(residual) &&
                !pass.is_graph_input(residual);
      if (auto after = pass.only_consumer(tail); after && pass.node(*after).is("Relu")) {
        residual_relu = true;
        absorbed.push_back(*after);
        tail = pass.node(*after).outputs[0];
      }
    }
  }
  Node fused("DnnlConv", n.name, {n.inputs[0]}, {tail});
  fused.inputs.push_back(pass.add_initializer(n.name + ".plan_weight", w.contiguous()));
  fused.inputs.push_back(b.defined() ? pass.add_initializer(n.name + ".plan_bias", b.contiguous())
                                     : "");
  if (!residual.empty()) fused.inputs.push_back(residual);
  fused.set("strides", n.attr_ints("strides", {1, 1}))
      .set("pads", n.attr_ints("pads", {0, 0, 0, 0}))
      .set("dilations", n.attr_ints("dilations", {1, 1}))
      .set("group", n.attr_int("group", 1))
      .set("residual_relu", int64_t{residual_relu})
      .set("residual_inplace", int64_t{inplace})
      .set("blocked_out", int64_t{0});
  set_activation(fused, act);
  pass.place(std::move(fused), absorbed);
}

// QDQ Conv -> QConv (int8.cpp): 2-D, explicit symmetric pads, static quantization only.
bool int8_conv(Int8Rewriter& pass, size_t i, bool dynamic, Int8Layer* layer) {
  const Node& n = pass.node(i);
  if (dynamic) return pass.keep_float(n, "dynamic quantization covers MatMul and Gemm only");
  const Node* w_dq = n.inputs.size() > 1 ? pass.producer(n.inputs[1]) : nullptr;
  // (A weight from a Constant node has a producer with no inputs.)
  const at::Tensor wv = w_dq != nullptr && !w_dq->inputs.empty() ? pass.constant(w_dq->inputs[0]) : at::Tensor();
  if (!wv.defined() || wv.dim() != 4)
    return pass.keep_float(n, "only 2-D convolutions have an int8 kernel");
  if (n.attr_string("auto_pad", "NOTSET") != "NOTSET")
    return pass.keep_float(n, "auto_pad is not supported by the int8 kernel");
  const auto pads = n.attr_ints("pads", {0, 0, 0, 0});
  if (pads.size() != 4 || pads[0] != pads[2] || pads[1] != pads[3])
    return pass.keep_float(n, "asymmetric padding is not supported by the int8 kernel");
  std::string why;
  const std::optional<Int8Weight> w = pass.weight(n, 1, false, &why);
  if (!w) return pass.keep_float(n, why);
  if (n.inputs.size() > 2 && !n.inputs[2].empty() &&
      (layer->bias = pass.float_bias(n.inputs[2], w->out_channels, &why)).empty())
    return pass.keep_float(n, why);
  layer->weight = *w;
  layer->kernel = "QConv";
  layer->attributes = {{"strides", n.attr_ints("strides", {1, 1})},
                       {"pads", pads},
                       {"dilations", n.attr_ints("dilations", {1, 1})},
                       {"group", n.attr_int("group", 1)}};
  return true;
}

OpCapabilities conv_capabilities() {
  OpCapabilities c;
  c.macs = conv_macs;
  c.quant.weight_axis = conv_weight_axis;
  c.units.role = UnitRole::kWeighted;
  c.units.weighted = conv_units;
  c.plan = plan_conv;
  c.int8_layer = int8_conv;
  return c;
}

EF_REGISTER_OP(Conv, OpDef{"Conv", 2, 3, prepare_conv, "", conv_capabilities()});

// ---- pooling ----

enum class PoolKind { kMax, kAverage };

struct PoolPlan {
  PoolKind kind;
  Window w;
  bool ceil_mode = false;
  bool count_include_pad = false;
};

// ATen pools pad symmetrically and at most half a kernel; anything else is padded explicitly.
bool aten_can_pad(const Window& w, const std::vector<int64_t>& pads) {
  if (!pads_symmetric(pads)) return false;
  for (int64_t i = 0; i < w.rank; ++i)
    if (pads[i] > w.kernel[i] / 2) return false;
  return true;
}

at::Tensor aten_pool(const PoolPlan& p, const at::Tensor& x, at::IntArrayRef padding,
                     bool count_include_pad) {
  const Window& w = p.w;
  if (p.kind == PoolKind::kMax) {
    switch (w.rank) {
      case 1:
        return at::max_pool1d(x, w.kernel, w.strides, padding, w.dilations, p.ceil_mode);
      case 2:
        return at::max_pool2d(x, w.kernel, w.strides, padding, w.dilations, p.ceil_mode);
      default:
        return at::max_pool3d(x, w.kernel, w.strides, padding, w.dilations, p.ceil_mode);
    }
  }
  switch (w.rank) {
    case 1:
      return at::avg_pool1d(x, w.kernel, w.strides, padding, p.ceil_mode, count_include_pad);
    case 2:
      return at::avg_pool2d(x, w.kernel, w.strides, padding, p.ceil_mode, count_include_pad);
    default:
      return at::avg_pool3d(x, w.kernel, w.strides, padding, p.ceil_mode, count_include_pad);
  }
}

at::Tensor pool_forward(const PoolPlan& p, const at::Tensor& x, const std::vector<int64_t>& pads,
                        const std::string& where) {
  EF_CHECK(x.dim() == p.w.rank + 2, where, ": input has shape ", x.sizes(), ", expected rank ",
           p.w.rank + 2, " for kernel_shape ", at::IntArrayRef(p.w.kernel));
  if (aten_can_pad(p.w, pads)) return aten_pool(p, x, pad_begins(pads), p.count_include_pad);
  const std::vector<int64_t> no_padding(p.w.rank, 0);
  const std::vector<int64_t> pad_nd = pad_nd_list(pads);
  if (p.kind == PoolKind::kMax) {
    return aten_pool(p, at::constant_pad_nd(x, pad_nd, -std::numeric_limits<double>::infinity()),
                     no_padding, false);
  }
  at::Tensor sums = aten_pool(p, at::constant_pad_nd(x, pad_nd), no_padding, true);
  if (p.count_include_pad) return sums;
  // Average over the real elements only: pool a ones mask padded the same way, whose average
  // is the fraction of each window that is not padding.
  std::vector<int64_t> mask_shape(x.dim(), 1);
  for (int64_t i = 0; i < p.w.rank; ++i) mask_shape[2 + i] = x.size(2 + i);
  at::Tensor mask = at::constant_pad_nd(at::ones(mask_shape, x.options()), pad_nd);
  return sums / aten_pool(p, mask, no_padding, true);
}

PrepareFn prepare_pool(PoolKind kind) {
  return [kind](const Node& node, const Graph&) -> Kernel {
    const std::string where = node.describe();
    PoolPlan p;
    p.kind = kind;
    p.w = parse_window(node, true, 0);
    EF_CHECK(p.w.rank >= 1 && p.w.rank <= 3, where, ": kernel_shape ", at::IntArrayRef(p.w.kernel),
             " has ", p.w.rank, " dimensions, expected 1 to 3 spatial dimensions");
    p.ceil_mode = node.attr_int("ceil_mode", 0) != 0;
    if (kind == PoolKind::kMax) {
      EF_CHECK(node.outputs.size() < 2 || node.outputs[1].empty(), where,
               ": the Indices output is not supported");
    } else {
      p.count_include_pad = node.attr_int("count_include_pad", 0) != 0;
      for (int64_t d : p.w.dilations)
        EF_CHECK(d == 1, where, ": dilations (opset 19) are not supported for AveragePool");
    }
    if (p.w.auto_pad == AutoPad::kNotSet) {
      return [p, where](const TensorList& in, TensorList& out, const KernelContext&) {
        out[0] = pool_forward(p, in[0], p.w.pads, where);
      };
    }
    return [p, where](const TensorList& in, TensorList& out, const KernelContext&) {
      EF_CHECK(in[0].dim() == p.w.rank + 2, where, ": input has shape ", in[0].sizes(),
               ", expected rank ", p.w.rank + 2);
      out[0] = pool_forward(p, in[0], resolve_pads(p.w, in[0].sizes(), p.w.kernel), where);
    };
  };
}

// DQ(q) -> MaxPool [-> Relu] -> Q -> qy over quantized values: one QMaxPool (int8.cpp), for a
// 2-D window with explicit pads ATen's pool takes (symmetric, at most half a kernel).
void int8_max_pool(Int8Rewriter& pass, size_t i) {
  const Node& n = pass.node(i);
  const Node* dq = pass.producer(n.inputs[0]);
  if (dq == nullptr || !dq->is("DequantizeLinear") || !pass.quantized(dq->inputs[0])) return;
  if (n.outputs.size() > 1 && !n.outputs[1].empty()) return;
  Window w;
  try {
    w = parse_window(n, true, 0);
  } catch (const Error&) {
    return;  // the float kernel reports it
  }
  if (w.rank != 2 || w.auto_pad != AutoPad::kNotSet || !aten_can_pad(w, w.pads)) return;
  std::vector<size_t> absorbed{i};
  Node fused("QMaxPool", n.name, {dq->inputs[0]}, {});
  fused.domain = kEdgeforgeDomain;
  fused.set("kernel_shape", w.kernel)
      .set("strides", w.strides)
      .set("dilations", w.dilations)
      .set("pads", w.pads)
      .set("ceil_mode", n.attr_int("ceil_mode", 0));
  if (!pass.quantized_tail(n.outputs[0], absorbed, fused, /*relu_only=*/true)) return;
  pass.place_int8(std::move(fused), absorbed);
}

OpCapabilities max_pool_capabilities() {
  OpCapabilities c = per_unit_op(true);
  c.int8_pattern = int8_max_pool;
  return c;
}

EF_REGISTER_OP(MaxPool,
               OpDef{"MaxPool", 1, 1, prepare_pool(PoolKind::kMax), "", max_pool_capabilities()});
EF_REGISTER_OP(AveragePool, OpDef{"AveragePool", 1, 1, prepare_pool(PoolKind::kAverage), "",
                                  per_unit_op(true)});

Kernel prepare_global_average_pool(const Node& node, const Graph&) {
  const std::string where = node.describe();
  return [where](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    EF_CHECK(x.dim() >= 3 && x.dim() <= 5, where, ": input has shape ", x.sizes(),
             ", expected [N, C, spatial...] with 1 to 3 spatial dimensions");
    static const std::vector<int64_t> kAllSpatial = {2, 3, 4};
    out[0] = at::mean(x, at::IntArrayRef(kAllSpatial).slice(0, x.dim() - 2), true);
  };
}

// GlobalAveragePool -> PlanGlobalAveragePool (src/runtime/plan_ops.cpp); of a dequantized
// int8 value read by nothing else (squeeze-excitation in an int8 model), the pool reads the
// uint8 values and the DequantizeTensor goes.
void plan_global_average_pool(PlanRewriter& pass, size_t i) {
  const Node& n = pass.node(i);
  std::vector<size_t> absorbed{i};
  std::string x = n.inputs[0];
  const auto p = pass.producer_index(x);
  if (p && !pass.taken(*p) && pass.node(*p).op_type == "DequantizeTensor" &&
      pass.node(*p).domain == kEdgeforgeDomain && pass.only_consumer(x) == i) {
    absorbed.push_back(*p);
    x = pass.node(*p).inputs[0];
  }
  pass.place(Node("PlanGlobalAveragePool", n.name, {x}, {n.outputs[0]}), absorbed);
}

OpCapabilities global_average_pool_capabilities() {
  OpCapabilities c;
  c.units.role = UnitRole::kGlobalPool;
  c.plan = plan_global_average_pool;
  return c;
}

EF_REGISTER_OP(GlobalAveragePool, OpDef{"GlobalAveragePool", 1, 1, prepare_global_average_pool,
                                        "", global_average_pool_capabilities()});

// ---- BatchNormalization ----

// In training, at::batch_norm normalises with the batch statistics and updates the running
// mean and variance tensors (the initializers) in place, which is how training updates them.
// Like PyTorch, the running variance takes the unbiased batch variance (the ONNX text leaves
// its ReduceVar open). The runtime's training flag decides the mode; the training_mode
// attribute is ignored, as Dropout ignores its training_mode input.
Kernel prepare_batch_normalization(const Node& node, const Graph&) {
  const double epsilon = node.attr_float("epsilon", 1e-5f);
  const double momentum = node.attr_float("momentum", 0.9f);
  EF_CHECK(momentum >= 0.0 && momentum <= 1.0, node.describe(), ": momentum ", momentum,
           " is outside [0, 1]");
  // ONNX momentum weighs the running value, torch's the batch value.
  const double torch_momentum = 1.0 - momentum;
  return
      [epsilon, torch_momentum](const TensorList& in, TensorList& out, const KernelContext& ctx) {
        out[0] = at::batch_norm(in[0], in[1], in[2], in[3], in[4],
                                ctx.training && !ctx.freeze_batch_norm, torch_momentum,
                                epsilon, false);
        if (out.size() > 1) out[1] = in[3];
        if (out.size() > 2) out[2] = in[4];
      };
}

OpCapabilities batch_normalization_capabilities() {
  OpCapabilities c;
  c.units.role = UnitRole::kNorm;
  return c;
}

EF_REGISTER_OP(BatchNormalization, OpDef{"BatchNormalization", 5, 5, prepare_batch_normalization,
                                         "", batch_normalization_capabilities()});

// ---- Gemm, MatMul ----

Kernel prepare_gemm(const Node& node, const Graph&) {
  const double alpha = node.attr_float("alpha", 1.0f);
  const double beta = node.attr_float("beta", 1.0f);
  const bool trans_a = node.attr_int("transA", 0) != 0;
  const bool trans_b = node.attr_int("transB", 0) != 0;
  const std::string where = node.describe();
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    EF_CHECK(in[0].dim() == 2 && in[1].dim() == 2, where, ": A has shape ", in[0].sizes(),
             " and B has shape ", in[1].sizes(), ", expected 2-D matrices");
    const at::Tensor a = trans_a ? in[0].t() : in[0];
    const at::Tensor b = trans_b ? in[1].t() : in[1];
    const at::Tensor& c = optional_input(in, 2);
    // addmm broadcasts C to [M, N] and fuses bias, alpha and beta into one BLAS call: the call
    // at::linear makes for a [out, in] weight.
    if (c.defined() && beta != 0.0) {
      out[0] = at::addmm(c, a, b, beta, alpha);
    } else if (alpha == 1.0) {
      out[0] = at::mm(a, b);
    } else {
      out[0] = at::mm(a, b) * alpha;
    }
  };
}

Kernel prepare_matmul(const Node&, const Graph&) {
  return [](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = at::matmul(in[0], in[1]);
  };
}

// Each output value sums K products, K the last axis of A (the first with Gemm's transA).
int64_t linear_macs(const Node& n, const ValueShapes& in, const ValueShapes& out, bool gemm) {
  const std::vector<int64_t>* a = in.at(0);
  const std::vector<int64_t>* y = out.at(0);
  if (a == nullptr || y == nullptr || a->empty()) return 0;
  const bool trans_a = gemm && n.attr_int("transA", 0) != 0;
  const int64_t k = a->size() == 1 ? (*a)[0] : (trans_a ? a->front() : a->back());
  return product(*y) * k;
}
int64_t gemm_macs(const Node& n, const ValueShapes& in, const ValueShapes& out) {
  return linear_macs(n, in, out, true);
}
int64_t matmul_macs(const Node& n, const ValueShapes& in, const ValueShapes& out) {
  return linear_macs(n, in, out, false);
}

std::optional<int64_t> gemm_weight_axis(const Node& n, const at::Tensor& w) {
  if (w.dim() != 2 || n.attr_int("transA", 0) != 0 || n.attr_float("alpha", 1.0f) != 1.0f ||
      n.attr_float("beta", 1.0f) != 1.0f)
    return std::nullopt;
  return n.attr_int("transB", 0) == 0 ? 1 : 0;
}
std::optional<int64_t> matmul_weight_axis(const Node&, const at::Tensor& w) {
  if (w.dim() != 2) return std::nullopt;
  return 1;  // [in, out]
}

// Features on the last axis: B is [in, out], or [out, in] with transB.
std::optional<WeightedUnits> gemm_units(const Node& n) {
  if (n.attr_int("transA", 0) != 0) return std::nullopt;
  const bool trans_b = n.attr_int("transB", 0) != 0;
  WeightedUnits u;
  u.in_axis = trans_b ? 1 : 0;
  u.out_axis = trans_b ? 0 : 1;
  u.bias = n.inputs.size() > 2 ? n.inputs[2] : "";
  return u;
}
std::optional<WeightedUnits> matmul_units(const Node&) { return WeightedUnits{}; }

// MatMul of two activations [-> Add] [-> Transpose, written straight into its layout] ->
// DnnlMatMul (src/runtime/plan_ops.cpp).
void plan_activation_matmul(PlanRewriter& pass, size_t i) {
  const Node& n = pass.node(i);
  if (pass.constant(n.inputs[0]).defined()) return;
  std::vector<size_t> absorbed{i};
  std::string tail = n.outputs[0];
  Node fused("DnnlMatMul", n.name, {n.inputs[0], n.inputs[1]}, {});
  if (auto c = pass.only_consumer(tail);
      c && pass.node(*c).is("Add") && pass.node(*c).inputs.size() == 2) {
    const Node& add = pass.node(*c);
    const std::string& other = add.inputs[0] == tail ? add.inputs[1] : add.inputs[0];
    if (other != tail) {
      fused.inputs.push_back(other);
      absorbed.push_back(*c);
      tail = add.outputs[0];
    }
  }
  if (auto c = pass.only_consumer(tail); c && pass.node(*c).is("Transpose") &&
                                         !pass.node(*c).attr_ints("perm", {}).empty()) {
    fused.set("out_perm", pass.node(*c).attr_ints("perm"));
    absorbed.push_back(*c);
    tail = pass.node(*c).outputs[0];
  }
  fused.outputs = {tail};
  pass.place(std::move(fused), absorbed);
}

// MatMul(x, W) | Gemm [-> Add bias] [-> Relu | exact GELU] [-> Dropout] [-> Add(residual)] ->
// DnnlLinear (src/runtime/plan_ops.cpp); a MatMul of two activations -> DnnlMatMul.
void plan_linear(PlanRewriter& pass, size_t i, bool gemm) {
  const Node& n = pass.node(i);
  if (n.inputs.size() < 2) return;
  at::Tensor w = pass.constant(n.inputs[1]);
  if (!w.defined()) {
    if (!gemm) plan_activation_matmul(pass, i);
    return;
  }
  if (w.scalar_type() != at::kFloat || w.dim() != 2)
    return pass.fall_back(n, "its weight is not a constant 2-D float tensor");
  bool in_out = true;
  std::vector<size_t> absorbed{i};
  std::string tail = n.outputs[0];
  std::string bias;
  const int64_t out_features = gemm && n.attr_int("transB", 0) != 0 ? w.size(0) : w.size(1);
  auto bias_of = [&](const std::string& v) -> std::string {
    at::Tensor t = pass.constant(v);
    if (!t.defined() || !at::isFloatingType(t.scalar_type()) || t.numel() != out_features ||
        t.size(-1) != out_features)
      return "";
    return pass.add_initializer(v + ".plan_bias", t.to(at::kFloat).reshape({-1}).contiguous());
  };
  if (gemm) {
    if (n.attr_int("transA", 0) != 0 || n.attr_float("alpha", 1.0f) != 1.0f ||
        n.attr_float("beta", 1.0f) != 1.0f)
      return pass.fall_back(n, "only Gemm with transA = 0, alpha = 1 and beta = 1 is planned");
    in_out = n.attr_int("transB", 0) == 0;
    if (n.inputs.size() > 2 && !n.inputs[2].empty() && (bias = bias_of(n.inputs[2])).empty())
      return pass.fall_back(n, "its C input is not a constant bias of one value per output");
  } else if (auto c = pass.only_consumer(tail);
             c && pass.node(*c).is("Add") && pass.node(*c).inputs.size() == 2) {
    const Node& add = pass.node(*c);
    const std::string b = bias_of(add.inputs[0] == tail ? add.inputs[1] : add.inputs[0]);
    if (!b.empty()) {
      bias = b;
      absorbed.push_back(*c);
      tail = add.outputs[0];
    }
  }
  int64_t activation = 0;
  if (auto c = pass.only_consumer(tail); c && pass.node(*c).is("Relu")) {
    activation = 1;
    absorbed.push_back(*c);
    tail = pass.node(*c).outputs[0];
  } else if (std::vector<size_t> g; auto out = pass.exact_gelu(tail, &g)) {
    activation = 2;
    absorbed.insert(absorbed.end(), g.begin(), g.end());
    tail = *out;
  }
  // Inference: Dropout is the identity (the session never trains).
  if (auto c = pass.only_consumer(tail);
      c && pass.node(*c).is("Dropout") &&
      (pass.node(*c).outputs.size() == 1 || pass.consumers(pass.node(*c).outputs[1]).empty())) {
    absorbed.push_back(*c);
    tail = pass.node(*c).outputs[0];
  }
  const std::string residual = pass.residual_add(tail, absorbed).value_or("");
  Node fused("DnnlLinear", n.name, {n.inputs[0], n.inputs[1], bias}, {tail});
  if (!residual.empty()) fused.inputs.push_back(residual);
  fused.set("weight_in_out", int64_t{in_out}).set("activation", activation);
  pass.place(std::move(fused), absorbed);
}
void plan_gemm(PlanRewriter& pass, size_t i) { plan_linear(pass, i, true); }
void plan_matmul(PlanRewriter& pass, size_t i) { plan_linear(pass, i, false); }

// QDQ Gemm -> QLinear (int8.cpp), static or dynamic (DynQLinear).
bool int8_gemm(Int8Rewriter& pass, size_t i, bool dynamic, Int8Layer* layer) {
  const Node& n = pass.node(i);
  if (n.attr_int("transA", 0) != 0 || n.attr_float("alpha", 1.0f) != 1.0f ||
      n.attr_float("beta", 1.0f) != 1.0f)
    return pass.keep_float(n, "only Gemm with transA = 0, alpha = 1 and beta = 1 is lowered");
  std::string why;
  const std::optional<Int8Weight> w = pass.weight(n, 1, n.attr_int("transB", 0) == 0, &why);
  if (!w) return pass.keep_float(n, why);
  if (n.inputs.size() > 2 && !n.inputs[2].empty() &&
      (layer->bias = pass.float_bias(n.inputs[2], w->out_channels, &why)).empty())
    return pass.keep_float(n, why);
  layer->weight = *w;
  layer->kernel = "QLinear";
  layer->attributes = {{"weight_in_out", int64_t{w->in_out}}};
  return true;
}

// QDQ MatMul by a constant [in, out] weight, then an optional bias Add -> QLinear (int8.cpp),
// static or dynamic (DynQLinear).
bool int8_matmul(Int8Rewriter& pass, size_t i, bool dynamic, Int8Layer* layer) {
  const Node& n = pass.node(i);
  std::string why;
  const std::optional<Int8Weight> w = pass.weight(n, 1, true, &why);
  if (!w) return pass.keep_float(n, why);
  if (std::optional<size_t> c = pass.only_consumer(layer->tail); c && pass.node(*c).is("Add")) {
    const Node& add = pass.node(*c);
    const std::string& other = add.inputs[0] == layer->tail ? add.inputs[1] : add.inputs[0];
    std::string ignored;
    std::string b = pass.float_bias(other, w->out_channels, &ignored);
    if (!b.empty()) {
      layer->bias = b;
      layer->absorbed.push_back(*c);
      layer->tail = add.outputs[0];
    }
  }
  layer->weight = *w;
  layer->kernel = "QLinear";
  layer->attributes = {{"weight_in_out", int64_t{w->in_out}}};
  return true;
}

OpCapabilities gemm_capabilities() {
  OpCapabilities c;
  c.macs = gemm_macs;
  c.quant.weight_axis = gemm_weight_axis;
  c.quant.dynamic = true;
  c.units.role = UnitRole::kWeighted;
  c.units.weighted = gemm_units;
  c.plan = plan_gemm;
  c.int8_layer = int8_gemm;
  return c;
}

OpCapabilities matmul_capabilities() {
  OpCapabilities c;
  c.macs = matmul_macs;
  c.quant.weight_axis = matmul_weight_axis;
  c.quant.dynamic = true;
  c.quant.bias_add = true;
  c.units.role = UnitRole::kWeighted;
  c.units.weighted = matmul_units;
  c.plan = plan_matmul;
  c.int8_layer = int8_matmul;
  return c;
}

EF_REGISTER_OP(Gemm, OpDef{"Gemm", 2, 3, prepare_gemm, "", gemm_capabilities()});
EF_REGISTER_OP(MatMul, OpDef{"MatMul", 2, 2, prepare_matmul, "", matmul_capabilities()});

// ---- Softmax, LogSoftmax (opset 13: one axis, default -1) ----

PrepareFn prepare_softmax(bool log) {
  return [log](const Node& node, const Graph&) -> Kernel {
    const int64_t axis = node.attr_int("axis", -1);
    const std::string where = node.describe();
    return [log, axis, where](const TensorList& in, TensorList& out, const KernelContext&) {
      const int64_t dim = normalize_axis(axis, std::max<int64_t>(in[0].dim(), 1), where);
      out[0] = log ? at::log_softmax(in[0], dim) : at::softmax(in[0], dim);
    };
  };
}

// [x -> Div | Mul by a constant] [-> Add(mask)] -> Softmax over the last axis -> DnnlSoftmax
// (src/runtime/plan_ops.cpp). Offered last, so the producers it takes back are still free.
void plan_softmax(PlanRewriter& pass, size_t i) {
  const Node& n = pass.node(i);
  if (n.attr_int("axis", 1) != -1)
    return pass.fall_back(n, "only an explicit axis = -1 is planned");
  std::vector<size_t> absorbed{i};
  std::string x = n.inputs[0];
  std::string mask;
  auto take = [&](const std::string& v) -> const Node* {
    const auto i = pass.producer_index(v);
    if (!i || pass.taken(*i) || pass.consumers(v).size() != 1 || pass.is_graph_output(v))
      return nullptr;
    return &pass.node(*i);
  };
  if (const Node* add = take(x); add && add->is("Add") && add->inputs.size() == 2) {
    // The mask is the operand that is not the scaled scores: prefer a Div/Mul by a constant.
    const Node* a0 = take(add->inputs[0]);
    const int s = a0 && (a0->is("Div") || a0->is("Mul")) ? 0 : 1;
    absorbed.push_back(*pass.producer_index(x));
    mask = add->inputs[1 - s];
    x = add->inputs[s];
  }
  float scale = 1.f;
  if (const Node* d = take(x); d && (d->is("Div") || d->is("Mul")) && d->inputs.size() == 2) {
    if (auto c = pass.scalar(d->inputs[1]); c && *c != 0.f) {
      scale = d->is("Div") ? 1.f / *c : *c;
      absorbed.push_back(*pass.producer_index(x));
      x = d->inputs[0];
    }
  }
  Node fused("DnnlSoftmax", n.name, {x}, {n.outputs[0]});
  if (!mask.empty()) fused.inputs.push_back(mask);
  fused.set("scale", scale);
  pass.place(std::move(fused), absorbed);
}

OpCapabilities softmax_capabilities() {
  OpCapabilities c;
  c.plan = plan_softmax;
  c.plan_stage = PlanStage::kLast;
  return c;
}

EF_REGISTER_OP(Softmax, OpDef{"Softmax", 1, 1, prepare_softmax(false), "", softmax_capabilities()});
EF_REGISTER_OP(LogSoftmax, OpDef{"LogSoftmax", 1, 1, prepare_softmax(true)});

// ---- LayerNormalization (opset 17) ----

Kernel prepare_layer_normalization(const Node& node, const Graph&) {
  const int64_t axis = node.attr_int("axis", -1);
  const double epsilon = node.attr_float("epsilon", 1e-5f);
  const std::string where = node.describe();
  const bool want_stats = node.outputs.size() > 1;
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    const int64_t first = normalize_axis(axis, x.dim(), where);
    const at::IntArrayRef normalized = x.sizes().slice(first);
    const at::Tensor& scale = in[1];
    const at::Tensor& bias = optional_input(in, 2);
    // at::layer_norm takes scale and bias of exactly the normalised shape; other broadcastable
    // shapes are applied after it.
    const bool fused =
        scale.sizes() == normalized && (!bias.defined() || bias.sizes() == normalized);
    if (fused && !want_stats) {
      out[0] = at::layer_norm(x, normalized, scale, bias, epsilon, false);
      return;
    }
    auto [y, mean, rstd] = fused ? at::native_layer_norm(x, normalized, scale, bias, epsilon)
                                 : at::native_layer_norm(x, normalized, {}, {}, epsilon);
    if (!fused) {
      y = y * scale;
      if (bias.defined()) y = y + bias;
    }
    out[0] = y;
    if (out.size() > 1) out[1] = mean;
    if (out.size() > 2) out[2] = rstd;
  };
}

// LayerNormalization over the last axis with constant scale and bias -> DnnlLayerNorm
// (src/runtime/plan_ops.cpp).
void plan_layer_normalization(PlanRewriter& pass, size_t i) {
  const Node& n = pass.node(i);
  if (n.outputs.size() > 1 && (!pass.consumers(n.outputs[1]).empty() ||
                               (n.outputs.size() > 2 && !pass.consumers(n.outputs[2]).empty())))
    return pass.fall_back(n, "its mean or inverse deviation output is read");
  if (n.attr_int("axis", -1) != -1) return pass.fall_back(n, "only the last axis is planned");
  if (n.inputs.size() < 3 || !pass.constant(n.inputs[1]).defined() ||
      !pass.constant(n.inputs[2]).defined())
    return pass.fall_back(n, "its scale and bias are not both constants");
  Node fused("DnnlLayerNorm", n.name, {n.inputs[0], n.inputs[1], n.inputs[2]}, {n.outputs[0]});
  fused.set("epsilon", n.attr_float("epsilon", 1e-5f));
  pass.place(std::move(fused), {i});
}

OpCapabilities layer_normalization_capabilities() {
  OpCapabilities c;
  c.plan = plan_layer_normalization;
  return c;
}

EF_REGISTER_OP(LayerNormalization, OpDef{"LayerNormalization", 2, 3, prepare_layer_normalization,
                                         "", layer_normalization_capabilities()});

// ---- Dropout ----

// The runtime's training flag decides whether Dropout drops; the optional training_mode input
// is ignored, so one graph both trains and serves.
Kernel prepare_dropout(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  const bool has_ratio = node.inputs.size() > 1 && !node.inputs[1].empty();
  const at::Tensor ratio_value = prepared_input(node, graph, 1);
  const bool ratio_known = !has_ratio || ratio_value.defined();
  double ratio = 0.5;
  if (has_ratio && ratio_value.defined()) {
    EF_CHECK(ratio_value.numel() == 1, where, ": ratio has shape ", ratio_value.sizes(),
             ", expected a scalar");
    ratio = ratio_value.reshape({}).item<double>();
  }
  EF_CHECK(ratio >= 0.0 && ratio < 1.0, where, ": ratio ", ratio, " is outside [0, 1)");
  const bool want_mask = node.outputs.size() > 1 && !node.outputs[1].empty();
  return [=](const TensorList& in, TensorList& out, const KernelContext& ctx) {
    const at::Tensor& x = in[0];
    double p = ratio;
    if (!ratio_known && ctx.training) {
      p = in[1].reshape({}).item<double>();
      EF_CHECK(p >= 0.0 && p < 1.0, where, ": ratio ", p, " is outside [0, 1)");
    }
    if (!ctx.training || p == 0.0) {
      out[0] = x;
      if (want_mask) out[1] = at::ones_like(x, x.options().dtype(at::kBool));
      return;
    }
    if (x.scalar_type() == at::kFloat) {  // one vectorised pass (train_kernels.h)
      DropoutResult r = edgeforge::dropout(x, p);
      out[0] = r.output;
      if (want_mask) out[1] = r.mask;
    } else if (want_mask) {
      auto [y, mask] = at::native_dropout(x, p, true);
      out[0] = y;
      out[1] = mask;
    } else {
      out[0] = at::dropout(x, p, true);
    }
  };
}

EF_REGISTER_OP(Dropout, OpDef{"Dropout", 1, 3, prepare_dropout, "", per_unit_op(true)});

}  // namespace
}  // namespace edgeforge::ops
