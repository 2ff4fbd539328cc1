// The float kernels of the inference plan (edgeforge/lower.h, lower_plan.cpp): internal ops of
// domain ai.edgeforge, each a oneDNN primitive created once per input shape with its weights
// reordered once into the layout the primitive chose.
//
//   DnnlConv(x, w, [b], [residual])   2-D convolution; batch norm already folded into w and b
//       attributes strides, pads (4), dilations, group; activation (on the convolution: "",
//       relu, clip, hardswish, hardsigmoid, sigmoid, swish; with activation_alpha and
//       activation_beta: clip's bounds, hardsigmoid's slope and offset), residual_relu (ReLU
//       after adding the residual), residual_inplace (the residual has no
//       other reader, so the sum is written into its buffer), blocked_out (the output may stay
//       in oneDNN's blocked layout: every reader is a DnnlConv, see dnnl_util.h)
//   DnnlLinear(x, w, [b], [residual]) y = act(x W + b) [+ residual] over the last axis;
//       attributes weight_in_out (w is [in, out], else [out, in]), activation 0 none, 1 relu,
//       2 gelu (erf); splits: several layers of the same input merged (attention's query,
//       key and value), one output per layer, each a slice of the one product
//   DnnlLayerNorm(x, scale, bias)     over the last axis; attribute epsilon
//   DnnlGelu(x)                       the exact (erf) GELU, or with approximate "tanh" its tanh
//                                     form
//   PlanGlobalAveragePool(x)          GlobalAveragePool read in either plain 4-D layout (or
//                                     of quint8 x: the mean of its dequantized values)
//   PlanGather(table, indices)        Gather on axis 0 of a constant float table (embeddings)
//   DnnlMatMul(a, b)                  activation x activation, see below
//   DnnlSoftmax(x, [mask])            softmax over the last axis of x * scale [+ mask];
//       attribute scale
//
// Each kernel keeps its primitives in a small cache keyed by input shape and layout, so a model
// run at batch 1 and then at batch 64 builds two sets once each. Outputs are written into a
// buffer the kernel keeps and reuses whenever nothing else holds it any more.
#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>
#include <immintrin.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include <map>
#include <tuple>
#include <memory>
#include <string>
#include <vector>

#include "../ops/lowering.h"
#include "../ops/util.h"
#include "dnnl_util.h"

namespace edgeforge::ops {
namespace {

using dnnl::memory;
using plan::Dims;
using Tag = memory::format_tag;
constexpr auto kF32 = memory::data_type::f32;

std::vector<int64_t> key_of(const TensorList& in) {
  std::vector<int64_t> key;
  for (const at::Tensor& t : in) {
    if (!t.defined()) {
      key.push_back(-1);
      continue;
    }
    key.push_back(t.dim());
    key.insert(key.end(), t.sizes().begin(), t.sizes().end());
    key.insert(key.end(), t.strides().begin(), t.strides().end());
  }
  return key;
}

void check_float(const at::Tensor& t, const std::string& where, const char* what) {
  EF_CHECK(t.scalar_type() == at::kFloat, where, ": ", what, " has type ",
           c10::toString(t.scalar_type()), ", expected Float");
}

// ---- DnnlConv ----

struct ConvState {
  std::string where;
  at::Tensor weight, bias;  // float, [C_out, C_in / group, kH, kW] and [C_out] (or undefined)
  Dims strides, dilations, pad_l, pad_r;
  int64_t group = 1;
  Activation activation;
  bool residual_relu = false, residual_inplace = false, blocked_out = false;

  struct Prim {
    plan::Bound conv;
    memory::desc given, src;     // the input's layout, and the one the primitive reads
    memory::desc dst, out;       // out: what the node emits (dst, or nchw after a reorder)
  };
  std::map<std::vector<int64_t>, Prim> prims;
  plan::Buffer out_cache, final_cache, src_cache;

  Prim& prim(const at::Tensor& x, const at::Tensor& residual, const std::vector<int64_t>& key) {
    auto it = prims.find(key);
    if (it != prims.end()) return it->second;
    const int64_t c_out = weight.size(0), c_in = weight.size(1) * group;
    const memory::desc src = plan::activation_desc(x, c_in, kF32);
    const Dims sd = src.dims();
    EF_CHECK(sd.size() == 4 && sd[1] == c_in, where, ": input has ", sd.size() > 1 ? sd[1] : 0,
             " channels, the weights expect ", c_in);
    const Dims dst_dims = plan::conv_dst_dims(sd, c_out, {weight.size(2), weight.size(3)}, strides,
                                              dilations, pad_l, pad_r, where);
    const memory::desc b_md = bias.defined() ? memory::desc({c_out}, kF32, Tag::x) : memory::desc();
    dnnl::post_ops ops;
    plan::append_activation(ops, activation);
    // The residual is a sum post-op: the output buffer holds it before the convolution adds
    // into it (the residual's own buffer when nothing else reads it, else a copy). A binary
    // add post-op would skip the copy but moves oneDNN 2.6 off its brgemm kernels (measured
    // 10-40x slower per convolution here).
    if (residual.defined()) {
      ops.append_sum(1.f);
      if (residual_relu) ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    }
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    // Every layout is oneDNN's choice (format any): on AVX-512 it picks NHWC with its brgemm
    // kernels, which beat the blocked nChw16c ones on the small feature maps of the zoo; an
    // input in another layout is reordered on entry (a plain model input, or a blocked value).
    auto make = [&](int64_t groups, dnnl::algorithm algo = dnnl::algorithm::convolution_direct) {
      const Dims w_dims =
          groups > 1 ? Dims{groups, c_out / groups, c_in / groups, weight.size(2), weight.size(3)}
                     : Dims{c_out, c_in, weight.size(2), weight.size(3)};
      dnnl::convolution_forward::desc d(
          dnnl::prop_kind::forward_inference, algo,
          memory::desc(sd, kF32, Tag::any), memory::desc(w_dims, kF32, Tag::any), b_md,
          memory::desc(dst_dims, kF32, Tag::any), strides, dilations, pad_l, pad_r);
      return std::make_pair(dnnl::convolution_forward::primitive_desc(d, attr, plan::cpu_engine()),
                            memory::desc(w_dims, kF32, groups > 1 ? Tag::goihw : Tag::oihw));
    };
    auto [pd, w_user] = make(group);
    // A 3x3 convolution of stride 1 and at least 20M multiply-adds per image runs on oneDNN's
    // Winograd kernels where it has them (AVX-512): on ResNet-50's such convolutions they
    // take 0.58-0.77 of the direct kernels' time, and Wide ResNet-50-2 runs 28% faster in all;
    // on small ones (the zoo's, 2M at most) the direct kernels win, by 20% on its resnet.
    // Same sums in another order: outputs agree to 1e-6 of their magnitude.
    const double macs = static_cast<double>(dst_dims[2]) * dst_dims[3] * c_in * c_out * 9;
    if (group == 1 && weight.size(2) == 3 && weight.size(3) == 3 && strides[0] == 1 &&
        strides[1] == 1 && dilations[0] == 0 && dilations[1] == 0 && macs >= 2e7 &&
        std::getenv("EDGEFORGE_NO_WINOGRAD") == nullptr) {
      try {
        std::tie(pd, w_user) = make(1, dnnl::algorithm::convolution_winograd);
      } catch (const dnnl::error&) {  // no Winograd kernel for this shape or CPU: direct
      }
    }
    at::Tensor w_values = weight;
    // A grouping oneDNN has no vector kernel for (2 channels per group, say) runs on its slow
    // generic path, 5x slower here than the same convolution made dense with block-diagonal
    // weights (zeros between the groups: the same sums).
    const std::string impl = pd.impl_info_str();
    if (group > 1 && (impl.rfind("ref", 0) == 0 || impl.find("gemm") != std::string::npos)) {
      std::tie(pd, w_user) = make(1);
      w_values = at::zeros({c_out, c_in, weight.size(2), weight.size(3)}, at::kFloat);
      const int64_t go = c_out / group, gi = c_in / group;
      for (int64_t g = 0; g < group; ++g)
        w_values.slice(0, g * go, (g + 1) * go).slice(1, g * gi, (g + 1) * gi)
            .copy_(weight.slice(0, g * go, (g + 1) * go));
    }
    Prim p;
    p.conv.prim = dnnl::convolution_forward(pd);
    p.given = src;
    p.src = pd.src_desc();
    // One input channel: NCHW and NHWC are the same bytes.
    if (c_in == 1 && p.src == memory::desc(sd, kF32, Tag::nhwc) && x.dim() == 4 &&
        x.is_contiguous())
      p.given = p.src;
    p.dst = pd.dst_desc();
    p.conv.args[DNNL_ARG_WEIGHTS] = plan::prepack(w_user, w_values.data_ptr(), pd.weights_desc());
    if (bias.defined()) p.conv.args[DNNL_ARG_BIAS] = memory(b_md, plan::cpu_engine(), bias.data_ptr());
    // Keep oneDNN's layout for readers that take it; otherwise hand over plain NCHW.
    const bool plain = p.dst == memory::desc(dst_dims, kF32, Tag::nchw) ||
                       p.dst == memory::desc(dst_dims, kF32, Tag::nhwc);
    p.out = (blocked_out && plan::representable(p.dst)) || plain
                ? p.dst
                : memory::desc(dst_dims, kF32, Tag::nchw);
    return prims.emplace(key, std::move(p)).first->second;
  }

  static at::Tensor to_nchw(const at::Tensor& blocked, const Dims& dims) {
    const memory::desc from = plan::activation_desc(blocked, dims[1], kF32);
    at::Tensor out = at::empty({dims[0], dims[1], dims[2], dims[3]}, at::kFloat);
    plan::reorder(from, blocked.data_ptr(), memory::desc(dims, kF32, Tag::nchw), out.data_ptr());
    return out;
  }

  at::Tensor run(const at::Tensor& x, const at::Tensor& residual) {
    check_float(x, where, "input");
    if (x.numel() == 0) {  // oneDNN divides by the batch: an empty batch gets an empty result
      EF_CHECK(x.dim() == 4, where, ": input has shape ", x.sizes(), ", expected 4-D");
      const Dims d = plan::conv_dst_dims(plan::dims_of(x.sizes()), weight.size(0),
                                         {weight.size(2), weight.size(3)}, strides, dilations,
                                         pad_l, pad_r, where);
      return at::empty({d[0], d[1], d[2], d[3]}, at::kFloat);
    }
    Prim& p = prim(x, residual, key_of({x, residual}));
    at::Tensor dst;
    if (residual.defined()) {
      check_float(residual, where, "residual");
      const memory::desc r = plan::activation_desc(residual, p.dst.dims()[1], kF32);
      if (r.dims() != p.dst.dims()) {
        // A broadcast add, not a residual: the convolution alone, then ATen's add.
        at::Tensor y = run(x, at::Tensor());
        if (y.dim() == 5) y = to_nchw(y, p.dst.dims());
        y = y + residual;
        return residual_relu ? at::relu(y) : y;
      }
      if (residual_inplace && r == p.dst) {
        dst = residual;  // the sum post-op adds into the buffer in place
      } else {
        dst = plan::reuse_or_make(out_cache, p.dst, at::kFloat);
        plan::reorder(r, residual.data_ptr(), p.dst, dst.data_ptr());
      }
    } else {
      dst = plan::reuse_or_make(out_cache, p.dst, at::kFloat);
    }
    p.conv.set(DNNL_ARG_SRC, p.src,
               plan::in_layout(src_cache, p.given, p.src, x.data_ptr(), at::kFloat));
    p.conv.set(DNNL_ARG_DST, p.dst, dst.data_ptr());
    p.conv.run();
    if (p.out == p.dst) return dst;
    at::Tensor out = plan::reuse_or_make(final_cache, p.out, at::kFloat);
    plan::reorder(p.dst, dst.data_ptr(), p.out, out.data_ptr());
    return out;
  }
};

Kernel prepare_dnnl_conv(const Node& node, const Graph& graph) {
  auto s = std::make_shared<ConvState>();
  s->where = node.describe();
  s->weight = prepared_input(node, graph, 1);
  s->bias = prepared_input(node, graph, 2);
  EF_CHECK(s->weight.defined() && s->weight.dim() == 4 && s->weight.scalar_type() == at::kFloat,
           s->where, ": weight must be a constant 4-D float tensor");
  s->weight = s->weight.contiguous();
  if (s->bias.defined()) s->bias = s->bias.to(at::kFloat).reshape({-1}).contiguous();
  const std::vector<int64_t> pads = node.attr_ints("pads");
  const std::vector<int64_t> strides = node.attr_ints("strides");
  const std::vector<int64_t> dilations = node.attr_ints("dilations");
  EF_CHECK(pads.size() == 4 && strides.size() == 2 && dilations.size() == 2, s->where,
           ": pads, strides and dilations must have 4, 2 and 2 values");
  s->strides = {strides[0], strides[1]};
  s->dilations = {dilations[0] - 1, dilations[1] - 1};  // oneDNN counts the gaps
  s->pad_l = {pads[0], pads[1]};
  s->pad_r = {pads[2], pads[3]};
  s->group = node.attr_int("group", 1);
  s->activation = activation_of(node);
  s->residual_relu = node.attr_int("residual_relu", 0) != 0;
  s->residual_inplace = node.attr_int("residual_inplace", 0) != 0;
  s->blocked_out = node.attr_int("blocked_out", 0) != 0;
  return [s](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = s->run(in[0], optional_input(in, 3));
  };
}

// ---- DnnlLinear ----

struct LinearState {
  std::string where;
  at::Tensor weight;  // float [in, out]
  at::Tensor bias;    // float [1, out] or undefined
  int64_t activation = 0;

  struct Prim {
    plan::Bound mm;
    memory::desc src, dst, residual;
  };
  std::map<std::vector<int64_t>, Prim> prims;
  plan::Buffer out_cache;

  Prim& prim(int64_t rows, bool residual) {
    const std::vector<int64_t> key = {rows, residual ? 1 : 0};
    auto it = prims.find(key);
    if (it != prims.end()) return it->second;
    const int64_t k = weight.size(0), n = weight.size(1);
    Prim p;
    p.src = memory::desc({rows, k}, kF32, Tag::ab);
    p.dst = memory::desc({rows, n}, kF32, Tag::ab);
    const memory::desc b_md = bias.defined() ? memory::desc({1, n}, kF32, Tag::ab) : memory::desc();
    dnnl::matmul::desc d(p.src, memory::desc({k, n}, kF32, Tag::any), b_md, p.dst);
    dnnl::post_ops ops;
    if (activation == 1) ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    if (activation == 2) ops.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f);
    if (residual) {
      p.residual = p.dst;
      ops.append_binary(dnnl::algorithm::binary_add, p.residual);
    }
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    dnnl::matmul::primitive_desc pd(d, attr, plan::cpu_engine());
    p.mm.prim = dnnl::matmul(pd);
    p.mm.args[DNNL_ARG_WEIGHTS] =
        plan::prepack(memory::desc({k, n}, kF32, Tag::ab), weight.data_ptr(), pd.weights_desc());
    if (bias.defined()) p.mm.args[DNNL_ARG_BIAS] = memory(b_md, plan::cpu_engine(), bias.data_ptr());
    return prims.emplace(key, std::move(p)).first->second;
  }

  at::Tensor run(const at::Tensor& x_in, const at::Tensor& residual_in) {
    check_float(x_in, where, "input");
    const int64_t k = weight.size(0), n = weight.size(1);
    EF_CHECK(x_in.dim() >= 1 && x_in.size(-1) == k, where, ": input ", x_in.sizes(),
             " does not end in ", k, " features");
    const at::Tensor x = x_in.contiguous();
    const int64_t rows = x.numel() / k;
    std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
    shape.back() = n;
    if (rows == 0) return at::empty(shape, at::kFloat);  // an empty batch: an empty result
    at::Tensor residual;
    if (residual_in.defined()) {
      check_float(residual_in, where, "residual");
      EF_CHECK(residual_in.sizes().vec() == shape, where, ": residual ", residual_in.sizes(),
               " does not match the output ", at::IntArrayRef(shape));
      residual = residual_in.contiguous();
    }
    Prim& p = prim(rows, residual.defined());
    at::Tensor y = plan::reuse_or_make(out_cache, p.dst, at::kFloat);
    p.mm.set(DNNL_ARG_SRC, p.src, x.data_ptr());
    p.mm.set(DNNL_ARG_DST, p.dst, y.data_ptr());
    if (residual.defined())
      p.mm.set(DNNL_ARG_ATTR_MULTIPLE_POST_OP(activation != 0 ? 1 : 0) | DNNL_ARG_SRC_1,
               p.residual, residual.data_ptr());
    p.mm.run();
    return y.view(shape);
  }
};

Kernel prepare_dnnl_linear(const Node& node, const Graph& graph) {
  auto s = std::make_shared<LinearState>();
  s->where = node.describe();
  at::Tensor w = prepared_input(node, graph, 1);
  EF_CHECK(w.defined() && w.dim() == 2 && w.scalar_type() == at::kFloat, s->where,
           ": weight must be a constant 2-D float tensor");
  if (node.attr_int("weight_in_out", 1) == 0) w = w.t();
  s->weight = w.contiguous();
  at::Tensor b = prepared_input(node, graph, 2);
  if (b.defined()) {
    EF_CHECK(b.numel() == s->weight.size(1), s->where, ": bias has ", b.numel(),
             " values, expected ", s->weight.size(1));
    s->bias = b.to(at::kFloat).reshape({1, -1}).contiguous();
  }
  s->activation = node.attr_int("activation", 0);
  EF_CHECK(s->activation >= 0 && s->activation <= 2, s->where, ": activation ", s->activation,
           " is not 0 (none), 1 (relu) or 2 (gelu)");
  // Several linear layers of one input merged into one product: each output is its slice.
  const std::vector<int64_t> splits = node.attr_ints("splits", {s->weight.size(1)});
  int64_t total = 0;
  for (int64_t n : splits) total += n;
  EF_CHECK(total == s->weight.size(1) && splits.size() == node.outputs.size(), s->where,
           ": splits do not cover the ", s->weight.size(1), " outputs once per node output");
  return [s, splits](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor y = s->run(in[0], optional_input(in, 3));
    if (splits.size() == 1) {
      out[0] = y;
      return;
    }
    int64_t offset = 0;
    for (size_t k = 0; k < splits.size(); ++k) {
      out[k] = y.narrow(-1, offset, splits[k]);
      offset += splits[k];
    }
  };
}

// ---- DnnlMatMul ----
// DnnlMatMul(a, b[, c]): activation x activation (attention scores and context), both inputs
// read through their strides, so the Transpose views in front cost nothing; c, when given, is
// the tensor a following Add adds (broadcast); with out_perm the result is written straight
// into the layout a following Transpose asks for. (Fusing the
// attention scale and mask as post-ops measured slower than DnnlSoftmax doing them.)

struct MatMulState {
  std::string where;
  std::vector<int64_t> out_perm;  // empty: no permutation
  std::map<std::vector<int64_t>, dnnl::matmul> prims;
  plan::Buffer out_cache;

  at::Tensor run(const at::Tensor& a, const at::Tensor& b, const at::Tensor& c) {
    check_float(a, where, "A");
    check_float(b, where, "B");
    std::vector<int64_t> mm_shape;
    const bool plain = a.dim() >= 2 && a.dim() == b.dim() && a.size(-1) == b.size(-2) &&
                       a.sizes().slice(0, a.dim() - 2) == b.sizes().slice(0, b.dim() - 2) &&
                       a.numel() > 0 && b.numel() > 0;
    if (plain) {
      mm_shape.assign(a.sizes().begin(), a.sizes().end());
      mm_shape.back() = b.size(-1);
    }
    // Broadcast, 1-D or empty operands, or an addend that widens the product: the reference.
    if (!plain || (c.defined() && at::infer_size(mm_shape, c.sizes()) != mm_shape)) {
      at::Tensor y = at::matmul(a, b);
      if (c.defined()) y = y + c;
      return out_perm.empty() ? y : y.permute(out_perm).contiguous();
    }
    std::vector<int64_t> shape(a.sizes().begin(), a.sizes().end());
    shape.back() = b.size(-1);
    // The output tensor in the permuted order, and the same memory seen in matmul order.
    std::vector<int64_t> out_shape = shape;
    if (!out_perm.empty())
      for (size_t d = 0; d < shape.size(); ++d) out_shape[d] = shape[out_perm[d]];
    at::Tensor y = plan::reuse_or_make(out_cache, memory::desc(plan::dims_of(out_shape), kF32,
                                                               contiguous_strides(out_shape)),
                                       at::kFloat);
    at::Tensor view = y;
    if (!out_perm.empty()) {
      std::vector<int64_t> inverse(out_perm.size());
      for (size_t d = 0; d < out_perm.size(); ++d) inverse[out_perm[d]] = d;
      view = y.permute(inverse);
    }
    const memory::desc a_md = plan::plain_desc(a, kF32), b_md = plan::plain_desc(b, kF32),
                       y_md = plan::plain_desc(view, kF32);
    std::vector<int64_t> key = key_of({a, b, view});
    auto it = prims.find(key);
    if (it == prims.end()) {
      dnnl::matmul::desc d(a_md, b_md, y_md);
      it = prims.emplace(key, dnnl::matmul(dnnl::matmul::primitive_desc(d, plan::cpu_engine())))
               .first;
    }
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, memory(a_md, plan::cpu_engine(), a.data_ptr())},
        {DNNL_ARG_WEIGHTS, memory(b_md, plan::cpu_engine(), b.data_ptr())},
        {DNNL_ARG_DST, memory(y_md, plan::cpu_engine(), y.data_ptr())}};
    it->second.execute(plan::cpu_stream(), args);
    if (c.defined()) view.add_(c.scalar_type() == at::kFloat ? c : c.to(at::kFloat));
    return y;
  }

  static plan::Dims contiguous_strides(const std::vector<int64_t>& shape) {
    plan::Dims strides(shape.size(), 1);
    for (size_t k = shape.size(); k-- > 1;) strides[k - 1] = strides[k] * shape[k];
    return strides;
  }
};

Kernel prepare_dnnl_matmul(const Node& node, const Graph&) {
  auto s = std::make_shared<MatMulState>();
  s->where = node.describe();
  s->out_perm = node.attr_ints("out_perm", {});
  return [s](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = s->run(in[0], in[1], in.size() > 2 ? in[2] : at::Tensor());
  };
}

// ---- DnnlGelu ----

Kernel prepare_dnnl_gelu(const Node& node, const Graph&) {
  struct State {
    std::string where;
    std::map<std::vector<int64_t>, dnnl::eltwise_forward> prims;
    plan::Buffer out_cache;
    dnnl::algorithm algorithm = dnnl::algorithm::eltwise_gelu_erf;
  };
  auto s = std::make_shared<State>();
  s->where = node.describe();
  const std::string approximate = node.attr_string("approximate", "none");
  EF_CHECK(approximate == "none" || approximate == "tanh", s->where, ": approximate '",
           approximate, "' is not 'none' or 'tanh'");
  s->algorithm = approximate == "tanh" ? dnnl::algorithm::eltwise_gelu_tanh
                                       : dnnl::algorithm::eltwise_gelu_erf;
  return [s](const TensorList& in, TensorList& out, const KernelContext&) {
    check_float(in[0], s->where, "input");
    const at::Tensor x = in[0].contiguous();
    if (x.numel() == 0) {
      out[0] = at::empty_like(x);
      return;
    }
    const memory::desc md({x.numel()}, kF32, Tag::a);
    const std::vector<int64_t> key = {x.numel()};
    auto it = s->prims.find(key);
    if (it == s->prims.end()) {
      dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_inference, s->algorithm, md, 0.f,
                                    0.f);
      it = s->prims.emplace(key, dnnl::eltwise_forward(dnnl::eltwise_forward::primitive_desc(
                                     d, plan::cpu_engine())))
               .first;
    }
    at::Tensor y = plan::reuse_or_make(s->out_cache, md, at::kFloat);
    it->second.execute(plan::cpu_stream(),
                       {{DNNL_ARG_SRC, memory(md, plan::cpu_engine(), x.data_ptr())},
                        {DNNL_ARG_DST, memory(md, plan::cpu_engine(), y.data_ptr())}});
    out[0] = y.view(x.sizes());
  };
}

// ---- PlanGlobalAveragePool ----
// The mean over H and W of a 4-D float activation in either plain layout, straight from its
// strides (ATen's adaptive pooling costs tens of microseconds at batch 1 on a 2x2 map).

// A quint8 input (the pool took its DequantizeTensor): the mean of the dequantized values,
// (sum(q) - hw * z) * s / hw, from exact integer sums.
at::Tensor quantized_mean(const at::Tensor& x, const std::string& where) {
  EF_CHECK(x.dim() == 4 && x.qscheme() == at::kPerTensorAffine, where,
           ": a quantized input must be 4-D and per tensor, got ", x.sizes());
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  const bool nhwc = !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor src = nhwc ? x : x.contiguous();
  const auto* __restrict p = reinterpret_cast<const uint8_t*>(src.data_ptr<c10::quint8>());
  at::Tensor y = at::empty({n, c, 1, 1}, at::kFloat);
  float* __restrict q = y.data_ptr<float>();
  std::vector<int64_t> sums(static_cast<size_t>(c));
  const double scale = x.q_scale() / static_cast<double>(std::max<int64_t>(hw, 1));
  const auto zero = static_cast<int64_t>(x.q_zero_point());
  for (int64_t b = 0; b < n; ++b) {
    const uint8_t* pb = p + b * c * hw;
    std::fill(sums.begin(), sums.end(), 0);
    if (nhwc) {
      for (int64_t i = 0; i < hw; ++i)
        for (int64_t k = 0; k < c; ++k) sums[k] += pb[i * c + k];
    } else {
      for (int64_t k = 0; k < c; ++k)
        for (int64_t i = 0; i < hw; ++i) sums[k] += pb[k * hw + i];
    }
    for (int64_t k = 0; k < c; ++k)
      q[b * c + k] = static_cast<float>(static_cast<double>(sums[k] - hw * zero) * scale);
  }
  return y;
}

Kernel prepare_global_average_pool(const Node& node, const Graph&) {
  const std::string where = node.describe();
  return [where](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    if (x.scalar_type() == at::kQUInt8) {
      out[0] = quantized_mean(x, where);
      return;
    }
    check_float(x, where, "input");
    if (x.dim() != 4) {  // other ranks: the reference op's arithmetic
      std::vector<int64_t> dims;
      for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
      out[0] = x.mean(dims, true);
      return;
    }
    const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
    const bool nhwc = !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor src = nhwc ? x : x.contiguous();
    at::Tensor y = at::empty({n, c, 1, 1}, at::kFloat);
    const float* __restrict p = src.data_ptr<float>();
    float* __restrict q = y.data_ptr<float>();
    const float inv = 1.0f / static_cast<float>(hw);
    for (int64_t b = 0; b < n; ++b) {
      float* __restrict qb = q + b * c;
      const float* __restrict pb = p + b * c * hw;
      if (nhwc) {
        for (int64_t k = 0; k < c; ++k) qb[k] = 0.f;
        for (int64_t i = 0; i < hw; ++i)
          for (int64_t k = 0; k < c; ++k) qb[k] += pb[i * c + k];
      } else {
        for (int64_t k = 0; k < c; ++k) {
          float sum = 0.f;
          for (int64_t i = 0; i < hw; ++i) sum += pb[k * hw + i];
          qb[k] = sum;
        }
      }
      for (int64_t k = 0; k < c; ++k) qb[k] *= inv;
    }
    out[0] = y;
  };
}

// ---- PlanGather ----
// Gather along axis 0 of a constant float table (embeddings): one bounds check and one row
// copy per index, where ATen's index_select plus the negative-index handling cost a
// reduction and several temporaries per call.

Kernel prepare_gather_rows(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  const at::Tensor table = prepared_input(node, graph, 0).contiguous();
  EF_CHECK(table.defined() && table.scalar_type() == at::kFloat && table.dim() >= 1, where,
           ": the table must be a constant float tensor");
  return [where, table](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& idx_in = in[1];
    EF_CHECK(idx_in.scalar_type() == at::kLong || idx_in.scalar_type() == at::kInt, where,
             ": indices have type ", c10::toString(idx_in.scalar_type()),
             ", expected int32 or int64");
    const at::Tensor idx = idx_in.to(at::kLong).contiguous();
    const int64_t rows = table.size(0), width = table.numel() / std::max<int64_t>(rows, 1);
    std::vector<int64_t> shape(idx.sizes().begin(), idx.sizes().end());
    shape.insert(shape.end(), table.sizes().begin() + 1, table.sizes().end());
    at::Tensor y = at::empty(shape, at::kFloat);
    const int64_t* p = idx.data_ptr<int64_t>();
    const float* src = table.data_ptr<float>();
    float* dst = y.data_ptr<float>();
    for (int64_t i = 0; i < idx.numel(); ++i) {
      int64_t r = p[i];
      if (r < 0) r += rows;
      EF_CHECK(r >= 0 && r < rows, where, ": index ", p[i], " is out of range for ", rows, " rows");
      std::memcpy(dst + i * width, src + r * width, static_cast<size_t>(width) * sizeof(float));
    }
    out[0] = y;
  };
}

// ---- DnnlLayerNorm ----

struct LayerNormState {
  std::string where;
  float epsilon = 1e-5f;
  at::Tensor scale, shift;  // float [C]
  struct Prim {
    dnnl::layer_normalization_forward ln;
    memory::desc data;
    memory scale, shift, mean, variance;
  };
  std::map<int64_t, Prim> prims;
  plan::Buffer out_cache;

  Prim& prim(int64_t rows) {
    auto it = prims.find(rows);
    if (it != prims.end()) return it->second;
    const int64_t c = scale.numel();
    Prim p;
    p.data = memory::desc({rows, c}, kF32, Tag::ab);
    dnnl::layer_normalization_forward::desc d(
        dnnl::prop_kind::forward_inference, p.data, epsilon,
        dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift);
    dnnl::layer_normalization_forward::primitive_desc pd(d, plan::cpu_engine());
    p.ln = dnnl::layer_normalization_forward(pd);
    const memory::desc c_md({c}, kF32, Tag::x);
    p.scale = memory(c_md, plan::cpu_engine(), scale.data_ptr());
    p.shift = memory(c_md, plan::cpu_engine(), shift.data_ptr());
    p.mean = memory(pd.mean_desc(), plan::cpu_engine());
    p.variance = memory(pd.variance_desc(), plan::cpu_engine());
    return prims.emplace(rows, std::move(p)).first->second;
  }

  at::Tensor run(const at::Tensor& x_in) {
    check_float(x_in, where, "input");
    const int64_t c = scale.numel();
    EF_CHECK(x_in.dim() >= 1 && x_in.size(-1) == c, where, ": input ", x_in.sizes(),
             " does not end in ", c, " features");
    const at::Tensor x = x_in.contiguous();
    if (x.numel() == 0) return at::empty_like(x);
    Prim& p = prim(x.numel() / c);
    at::Tensor y = plan::reuse_or_make(out_cache, p.data, at::kFloat);
    p.ln.execute(plan::cpu_stream(),
                 {{DNNL_ARG_SRC, memory(p.data, plan::cpu_engine(), x.data_ptr())},
                  {DNNL_ARG_DST, memory(p.data, plan::cpu_engine(), y.data_ptr())},
                  {DNNL_ARG_SCALE, p.scale},
                  {DNNL_ARG_SHIFT, p.shift},
                  {DNNL_ARG_MEAN, p.mean},
                  {DNNL_ARG_VARIANCE, p.variance}});
    return y.view(x.sizes());
  }
};

Kernel prepare_dnnl_layer_norm(const Node& node, const Graph& graph) {
  auto s = std::make_shared<LayerNormState>();
  s->where = node.describe();
  s->epsilon = node.attr_float("epsilon", 1e-5f);
  s->scale = prepared_input(node, graph, 1);
  s->shift = prepared_input(node, graph, 2);
  EF_CHECK(s->scale.defined() && s->shift.defined() && s->scale.numel() == s->shift.numel(),
           s->where, ": scale and bias must be constants of the same size");
  s->scale = s->scale.to(at::kFloat).reshape({-1}).contiguous();
  s->shift = s->shift.to(at::kFloat).reshape({-1}).contiguous();
  return [s](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = s->run(in[0]);
  };
}

// ---- DnnlSoftmax ----

// y = x * scale [+ mask]: mask_step 1 reads a mask row, 0 one mask value for the row. Cloned
// for AVX-512 and AVX2 (picked at load by the CPU), as the build targets baseline x86-64.
__attribute__((target_clones("avx512f", "avx2", "default"))) void scale_add_row(
    const float* __restrict x, const float* __restrict mask, float* __restrict y, int64_t n,
    float scale, int64_t mask_step) {
  if (mask == nullptr) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale;
  } else if (mask_step == 0) {
    const float m = mask[0];
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale + m;
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale + mask[i];
  }
}

// Softmax over rows of n floats of x * scale [+ mask row], in three passes over each row (it
// stays in L1): scale, mask and running max; exp and sum; normalise. exp(v) = 2^k e^r with
// k = round(v log2 e), r = v - k ln 2 in two parts (Cody-Waite), e^r by Cephes' degree-6
// polynomial, 2^k by scalef; below -87.3 the result is 0 (computed on a clamped value, so
// nothing underflows). On the zoo's attention (512 rows of 128) this one pass set takes about
// 80% of oneDNN 2.6's softmax alone, which also needs a separate scale-and-mask pass.
// GCC 12 warns of an uninitialised value inside its own AVX-512 intrinsic headers
// (_mm512_undefined_ps used as a pass-through operand); a known false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"))) inline __m512 exp_avx512(__m512 v) {
  const __mmask16 keep = _mm512_cmp_ps_mask(v, _mm512_set1_ps(-87.3f), _CMP_GE_OQ);
  v = _mm512_max_ps(v, _mm512_set1_ps(-87.3f));
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), v);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_maskz_mov_ps(keep, _mm512_scalef_ps(p, k));
}

__attribute__((target("avx512f"))) void softmax_rows_avx512(
    const float* x, const float* const* mask_rows, int64_t mask_step, float* y, int64_t rows,
    int64_t n, float scale) {
  const __m512 vs = _mm512_set1_ps(scale);
  for (int64_t row = 0; row < rows; ++row) {
    const float* xr = x + row * n;
    const float* mr = mask_rows != nullptr ? mask_rows[row] : nullptr;
    float* yr = y + row * n;
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n; i += 16) {
      const __mmask16 k = n - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (n - i)) - 1);
      __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, xr + i), vs);
      if (mr != nullptr)
        v = _mm512_add_ps(v, mask_step == 0 ? _mm512_set1_ps(mr[0]) : _mm512_maskz_loadu_ps(k, mr + i));
      _mm512_mask_storeu_ps(yr + i, k, v);
      vmax = _mm512_mask_max_ps(vmax, k, vmax, v);
    }
    const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    __m512 vsum = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
      const __mmask16 k = n - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (n - i)) - 1);
      const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, yr + i), m));
      _mm512_mask_storeu_ps(yr + i, k, e);
      vsum = _mm512_mask_add_ps(vsum, k, vsum, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
    for (int64_t i = 0; i < n; i += 16) {
      const __mmask16 k = n - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (n - i)) - 1);
      _mm512_mask_storeu_ps(yr + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, yr + i), inv));
    }
  }
}

#pragma GCC diagnostic pop

struct SoftmaxState {
  std::string where;
  float scale = 1.f;
  std::map<std::vector<int64_t>, dnnl::softmax_forward> prims;
  plan::Buffer out_cache;
  std::vector<const float*> mask_rows;
  // The AVX-512 kernel when the CPU has it, unless EDGEFORGE_NO_AVX512 is set (which tests the
  // portable path on any machine).
  bool avx512 = __builtin_cpu_supports("avx512f") && std::getenv("EDGEFORGE_NO_AVX512") == nullptr;

  at::Tensor run(const at::Tensor& x_in, const at::Tensor& mask) { return run(x_in, mask, scale); }  // the node's scale

  at::Tensor run(const at::Tensor& x_in, const at::Tensor& mask, float factor) {
    check_float(x_in, where, "input");
    EF_CHECK(x_in.dim() >= 1, where, ": input is a scalar");
    const at::Tensor x = x_in.contiguous();
    if (x.numel() == 0) return at::empty_like(x);
    const int64_t c = x.size(-1), rows = x.numel() / c, rank = x.dim();
    const memory::desc md({rows, c}, kF32, Tag::ab);
    at::Tensor y = plan::reuse_or_make(out_cache, md, at::kFloat).view(x.sizes());
    // The mask row of every row of x, through the mask's broadcast (expanded) strides.
    at::Tensor m;
    int64_t m_step = 0;
    if (mask.defined()) {
      check_float(mask, where, "mask");
      if (at::infer_size(x.sizes(), mask.sizes()) != x.sizes())  // x broadcast by the mask
        return run(factor != 1.f ? x * factor + mask : x + mask, at::Tensor(), 1.f);
      m = mask.expand(x.sizes());
      if (m.stride(-1) > 1) m = m.contiguous();
      m_step = m.stride(-1);
      const std::vector<int64_t> strides(m.strides().begin(), m.strides().end());
      const std::vector<int64_t> sizes(x.sizes().begin(), x.sizes().end());
      std::vector<int64_t> index(std::max<int64_t>(rank - 1, 0), 0);
      const float* base = m.data_ptr<float>();
      mask_rows.resize(rows);
      for (int64_t r = 0; r < rows; ++r) {
        int64_t offset = 0;
        for (int64_t d = 0; d + 1 < rank; ++d) offset += index[d] * strides[d];
        mask_rows[r] = base + offset;
        for (int64_t d = rank - 2; d >= 0 && ++index[d] == sizes[d]; --d) index[d] = 0;
      }
    }
    if (avx512) {
      softmax_rows_avx512(x.data_ptr<float>(), m.defined() ? mask_rows.data() : nullptr, m_step,
                          y.data_ptr<float>(), rows, c, factor);
      return y;
    }
    // Elsewhere: the scale factor and mask into the output, then oneDNN's softmax in place.
    const at::Tensor* src = &x;
    if (factor != 1.f || m.defined()) {
      for (int64_t r = 0; r < rows; ++r)
        scale_add_row(x.data_ptr<float>() + r * c, m.defined() ? mask_rows[r] : nullptr,
                      y.data_ptr<float>() + r * c, c, factor, m_step);
      src = &y;
    }
    const std::vector<int64_t> key = {rows, c};
    auto it = prims.find(key);
    if (it == prims.end()) {
      dnnl::softmax_forward::desc d(dnnl::prop_kind::forward_inference, md, 1);
      it = prims.emplace(key, dnnl::softmax_forward(
                                  dnnl::softmax_forward::primitive_desc(d, plan::cpu_engine())))
               .first;
    }
    it->second.execute(plan::cpu_stream(),
                       {{DNNL_ARG_SRC, memory(md, plan::cpu_engine(), src->data_ptr())},
                        {DNNL_ARG_DST, memory(md, plan::cpu_engine(), y.data_ptr())}});
    return y;
  }
};

Kernel prepare_dnnl_softmax(const Node& node, const Graph&) {
  auto s = std::make_shared<SoftmaxState>();
  s->where = node.describe();
  s->scale = node.attr_float("scale", 1.f);
  return [s](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = s->run(in[0], optional_input(in, 1));
  };
}

}  // namespace

EF_REGISTER_OP(DnnlConv, OpDef{"DnnlConv", 2, 4, prepare_dnnl_conv, kEdgeforgeDomain});
EF_REGISTER_OP(DnnlLinear, OpDef{"DnnlLinear", 2, 4, prepare_dnnl_linear, kEdgeforgeDomain});
EF_REGISTER_OP(DnnlMatMul, OpDef{"DnnlMatMul", 2, 3, prepare_dnnl_matmul, kEdgeforgeDomain});
EF_REGISTER_OP(PlanGlobalAveragePool, OpDef{"PlanGlobalAveragePool", 1, 1,
                                            prepare_global_average_pool, kEdgeforgeDomain});
EF_REGISTER_OP(PlanGather, OpDef{"PlanGather", 2, 2, prepare_gather_rows, kEdgeforgeDomain});
EF_REGISTER_OP(DnnlGelu, OpDef{"DnnlGelu", 1, 1, prepare_dnnl_gelu, kEdgeforgeDomain});
EF_REGISTER_OP(DnnlLayerNorm,
               OpDef{"DnnlLayerNorm", 3, 3, prepare_dnnl_layer_norm, kEdgeforgeDomain});
EF_REGISTER_OP(DnnlSoftmax, OpDef{"DnnlSoftmax", 1, 2, prepare_dnnl_softmax, kEdgeforgeDomain});

}  // namespace edgeforge::ops
