// Selections along an axis: ArgMax, ArgMin, Hardmax, TopK; and the linear algebra of Einsum
// and Det. The reductions over axes are in reduce.cpp.
#include <ATen/ATen.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "edgeforge/error.h"
#include "edgeforge/ops.h"
#include "util.h"

namespace edgeforge::ops {
namespace {

// ---- ArgMax, ArgMin (opset 13), Hardmax (opset 13) ----

// The int64 index of the first maximum (minimum) along `axis`, or of the last one with
// select_last_index.
PrepareFn prepare_arg(bool max) {
  return [max](const Node& node, const Graph&) -> Kernel {
    const std::string where = node.describe();
    const int64_t axis = node.attr_int("axis", 0);
    const bool keepdims = node.attr_int("keepdims", 1) != 0;
    const bool last = node.attr_int("select_last_index", 0) != 0;
    return [=](const TensorList& in, TensorList& out, const KernelContext&) {
      const at::Tensor& x = in[0];
      const int64_t a = normalize_axis(axis, x.dim(), where);
      auto first = [&](const at::Tensor& v) {
        return max ? at::argmax(v, a, keepdims) : at::argmin(v, a, keepdims);
      };
      // ATen returns the first occurrence; the last is the first of the reversed axis.
      out[0] = last ? (x.size(a) - 1) - first(x.flip(a)) : first(x);
    };
  };
}

// 1 at the first maximum along `axis` (default -1, the opset-13 form: one axis, not the
// flattened inner dimensions of opset 11), 0 elsewhere.
Kernel prepare_hardmax(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const int64_t axis = node.attr_int("axis", -1);
  return [axis, where](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    const int64_t a = normalize_axis(axis, x.dim(), where);
    out[0] = at::zeros_like(x).scatter_(a, at::argmax(x, a, true), 1);
  };
}

// ---- TopK (opset 11) ----

// The k largest (smallest with largest 0) values along `axis` and their int64 indices. A
// stable sort keeps equal values in index order, so ties go to the lower index as ONNX asks
// (at::topk does not promise it); the result is sorted whatever `sorted` says, which ONNX
// allows.
Kernel prepare_top_k(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  const int64_t axis = node.attr_int("axis", -1);
  const bool largest = node.attr_int("largest", 1) != 0;
  const std::optional<std::vector<int64_t>> prepared_k = prepared_ints(node, graph, 1, "K");
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    const std::vector<int64_t> ks = prepared_k ? *prepared_k : to_int64s(in[1], where, "K");
    EF_CHECK(ks.size() == 1, where, ": K must hold one value, not ", ks.size());
    const int64_t a = normalize_axis(axis, x.dim(), where);
    const int64_t k = ks[0];
    EF_CHECK(k >= 0 && k <= x.size(a), where, ": K ", k, " is out of range for axis ", a,
             " of size ", x.size(a));
    auto [values, indices] = at::sort(x, /*stable=*/true, a, /*descending=*/largest);
    out[0] = values.narrow(a, 0, k);
    if (out.size() > 1) out[1] = indices.narrow(a, 0, k);
  };
}

// ---- Einsum (opset 12), Det (opset 11) ----

// ATen's einsum takes ONNX's equations as they are: explicit and implicit output, ellipses,
// spaces.
Kernel prepare_einsum(const Node& node, const Graph&) {
  const std::string equation = node.attr_string("equation", "");
  EF_CHECK(!equation.empty(), node.describe(), ": missing attribute 'equation'");
  return [equation](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = at::einsum(equation, in);
  };
}

// Determinants of the [*, M, M] matrices; ATen has no float16 kernel, so that goes through
// float.
Kernel prepare_det(const Node&, const Graph&) {
  return [](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    out[0] = x.scalar_type() == at::kHalf ? at::linalg_det(x.to(at::kFloat)).to(at::kHalf)
                                          : at::linalg_det(x);
  };
}

EF_REGISTER_OP(ArgMax, OpDef{"ArgMax", 1, 1, prepare_arg(true)});
EF_REGISTER_OP(ArgMin, OpDef{"ArgMin", 1, 1, prepare_arg(false)});
EF_REGISTER_OP(Hardmax, OpDef{"Hardmax", 1, 1, prepare_hardmax});
EF_REGISTER_OP(TopK, OpDef{"TopK", 2, 2, prepare_top_k});
EF_REGISTER_OP(Einsum, OpDef{"Einsum", 1, kVariadicInputs, prepare_einsum});
EF_REGISTER_OP(Det, OpDef{"Det", 1, 1, prepare_det});

}  // namespace
}  // namespace edgeforge::ops
