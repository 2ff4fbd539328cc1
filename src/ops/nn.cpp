// Neural-network ops: Conv, pooling, BatchNormalization, Gemm, MatMul, Softmax, LogSoftmax,
// LayerNormalization and Dropout.
#include <ATen/ATen.h>

#include <limits>
#include <string>
#include <vector>

#include "edgeforge/error.h"
#include "edgeforge/ops.h"
#include "train_kernels.h"
#include "util.h"

namespace edgeforge::ops {
namespace {

// ---- windows: the kernel_shape / strides / dilations / pads / auto_pad family ----

enum class AutoPad { kNotSet, kSameUpper, kSameLower, kValid };

// Attributes of a sliding-window op with defaults filled in for `rank` spatial dimensions.
struct Window {
  int64_t rank = 0;  // spatial rank, 0 while unknown (then resolved from the input per run)
  AutoPad auto_pad = AutoPad::kNotSet;
  std::string auto_pad_name = "NOTSET";
  std::vector<int64_t> kernel;  // empty for Conv without kernel_shape: taken from the weight
  std::vector<int64_t> strides;
  std::vector<int64_t> dilations;
  std::vector<int64_t> pads;  // rank begins, then rank ends
};

AutoPad parse_auto_pad(const std::string& name, const Node& node) {
  if (name == "NOTSET") return AutoPad::kNotSet;
  if (name == "SAME_UPPER") return AutoPad::kSameUpper;
  if (name == "SAME_LOWER") return AutoPad::kSameLower;
  if (name == "VALID") return AutoPad::kValid;
  throw Error(detail::concat(node.describe(), ": auto_pad '", name,
                             "' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID"));
}

// Fills absent attributes with their ONNX defaults for `rank` spatial dimensions and checks
// every list has the length that rank implies.
void fill_window(Window& w, int64_t rank, const std::string& where) {
  w.rank = rank;
  if (w.strides.empty()) w.strides.assign(rank, 1);
  if (w.dilations.empty()) w.dilations.assign(rank, 1);
  if (w.pads.empty()) w.pads.assign(2 * rank, 0);
  auto check_size = [&](const std::vector<int64_t>& v, int64_t expected, const char* name) {
    EF_CHECK(static_cast<int64_t>(v.size()) == expected, where, ": ", name, " has ", v.size(),
             " values, expected ", expected, " for ", rank, " spatial dimensions");
  };
  if (!w.kernel.empty()) check_size(w.kernel, rank, "kernel_shape");
  check_size(w.strides, rank, "strides");
  check_size(w.dilations, rank, "dilations");
  check_size(w.pads, 2 * rank, "pads");
}

Window parse_window(const Node& node, bool kernel_required, int64_t known_rank) {
  Window w;
  w.auto_pad_name = node.attr_string("auto_pad", "NOTSET");
  w.auto_pad = parse_auto_pad(w.auto_pad_name, node);
  if (kernel_required) {
    w.kernel = node.attr_ints("kernel_shape");
  } else {
    w.kernel = node.attr_ints("kernel_shape", {});
  }
  w.strides = node.attr_ints("strides", {});
  w.dilations = node.attr_ints("dilations", {});
  w.pads = node.attr_ints("pads", {});
  for (int64_t k : w.kernel)
    EF_CHECK(k >= 1, node.describe(), ": kernel_shape value ", k, " is not positive");
  for (int64_t s : w.strides)
    EF_CHECK(s >= 1, node.describe(), ": strides value ", s, " is not positive");
  for (int64_t d : w.dilations)
    EF_CHECK(d >= 1, node.describe(), ": dilations value ", d, " is not positive");
  for (int64_t p : w.pads) EF_CHECK(p >= 0, node.describe(), ": pads value ", p, " is negative");
  bool explicit_pads = false;
  for (int64_t p : w.pads) explicit_pads = explicit_pads || p != 0;
  EF_CHECK(w.auto_pad == AutoPad::kNotSet || !explicit_pads, node.describe(), ": auto_pad '",
           w.auto_pad_name, "' with explicit pads is not supported");
  EF_CHECK(w.pads.size() % 2 == 0, node.describe(), ": pads has ", w.pads.size(),
           " values, expected two per spatial dimension");

  int64_t rank = known_rank;
  if (rank == 0 && !w.kernel.empty()) rank = static_cast<int64_t>(w.kernel.size());
  if (rank == 0 && !w.strides.empty()) rank = static_cast<int64_t>(w.strides.size());
  if (rank == 0 && !w.dilations.empty()) rank = static_cast<int64_t>(w.dilations.size());
  if (rank == 0 && !w.pads.empty()) rank = static_cast<int64_t>(w.pads.size() / 2);
  if (rank > 0) fill_window(w, rank, node.describe());
  return w;
}

// Pads for this input under auto_pad: begins then ends. SAME keeps ceil(in / stride) outputs;
// SAME_UPPER puts the odd pad at the end, SAME_LOWER at the beginning.
std::vector<int64_t> resolve_pads(const Window& w, at::IntArrayRef x_sizes,
                                  at::IntArrayRef kernel) {
  if (w.auto_pad == AutoPad::kNotSet) return w.pads;
  std::vector<int64_t> pads(2 * w.rank, 0);
  if (w.auto_pad == AutoPad::kValid) return pads;
  for (int64_t i = 0; i < w.rank; ++i) {
    const int64_t in = x_sizes[2 + i];
    const int64_t out = (in + w.strides[i] - 1) / w.strides[i];
    const int64_t extent = (kernel[i] - 1) * w.dilations[i] + 1;
    const int64_t total = std::max<int64_t>(0, (out - 1) * w.strides[i] + extent - in);
    const int64_t small = total / 2;
    pads[i] = w.auto_pad == AutoPad::kSameUpper ? small : total - small;
    pads[w.rank + i] = total - pads[i];
  }
  return pads;
}

bool pads_symmetric(const std::vector<int64_t>& pads) {
  const size_t n = pads.size() / 2;
  for (size_t i = 0; i < n; ++i)
    if (pads[i] != pads[n + i]) return false;
  return true;
}

// The pad list of at::constant_pad_nd: last dimension first, (begin, end) pairs.
std::vector<int64_t> pad_nd_list(const std::vector<int64_t>& pads) {
  const size_t n = pads.size() / 2;
  std::vector<int64_t> out;
  out.reserve(2 * n);
  for (size_t i = n; i-- > 0;) {
    out.push_back(pads[i]);
    out.push_back(pads[n + i]);
  }
  return out;
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

EF_REGISTER_OP(Conv, OpDef{"Conv", 2, 3, prepare_conv});

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

EF_REGISTER_OP(MaxPool, OpDef{"MaxPool", 1, 1, prepare_pool(PoolKind::kMax)});
EF_REGISTER_OP(AveragePool, OpDef{"AveragePool", 1, 1, prepare_pool(PoolKind::kAverage)});

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

EF_REGISTER_OP(GlobalAveragePool, OpDef{"GlobalAveragePool", 1, 1, prepare_global_average_pool});

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

EF_REGISTER_OP(BatchNormalization, OpDef{"BatchNormalization", 5, 5, prepare_batch_normalization});

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

EF_REGISTER_OP(Gemm, OpDef{"Gemm", 2, 3, prepare_gemm});
EF_REGISTER_OP(MatMul, OpDef{"MatMul", 2, 2, prepare_matmul});

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

EF_REGISTER_OP(Softmax, OpDef{"Softmax", 1, 1, prepare_softmax(false)});
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

EF_REGISTER_OP(LayerNormalization, OpDef{"LayerNormalization", 2, 3, prepare_layer_normalization});

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

EF_REGISTER_OP(Dropout, OpDef{"Dropout", 1, 3, prepare_dropout});

}  // namespace
}  // namespace edgeforge::ops
