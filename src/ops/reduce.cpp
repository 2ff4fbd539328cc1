// Reductions over a list of axes: ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceProd,
// ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp, ReduceSumSquare; and CumSum (RoBERTa's
// position ids).
//
// Opset 17 gives ReduceSum its axes as an input (opset 13) but the others as an attribute;
// opset 18 moves them all to the input. Each op accepts either form.
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

using ReduceFn = at::Tensor (*)(const at::Tensor&, at::IntArrayRef, bool);

// Axes from the attribute or input 1; none reduces every axis, or passes the input through
// with noop_with_empty_axes (as reduce.cpp does).
Kernel prepare_reduce(ReduceFn fn, const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  const bool keepdims = node.attr_int("keepdims", 1) != 0;
  const bool noop_with_empty_axes = node.attr_int("noop_with_empty_axes", 0) != 0;
  const bool axes_as_input = node.inputs.size() > 1 && !node.inputs[1].empty();
  EF_CHECK(!(axes_as_input && node.has("axes")), where,
           ": axes given both as an attribute and as an input");
  std::optional<std::vector<int64_t>> axes;
  if (node.has("axes")) axes = node.attr_ints("axes");
  if (axes_as_input) axes = prepared_ints(node, graph, 1, "axes");
  const bool axes_known = axes.has_value() || !axes_as_input;
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    std::vector<int64_t> dims;
    if (axes_known) {
      if (axes) dims = *axes;
    } else {
      dims = to_int64s(in[1], where, "axes");
    }
    if (dims.empty()) {
      if (noop_with_empty_axes) {
        out[0] = x;
        return;
      }
      for (int64_t d = 0; d < x.dim(); ++d) dims.push_back(d);
    }
    for (int64_t& d : dims) d = normalize_axis(d, x.dim(), where, "axes value");
    std::sort(dims.begin(), dims.end());
    EF_CHECK(std::adjacent_find(dims.begin(), dims.end()) == dims.end(), where,
             ": axes has a repeated axis");
    out[0] = fn(x, dims, keepdims);
  };
}

OpDef reduce_op(const char* op_type, ReduceFn fn) {
  PrepareFn prepare = [fn](const Node& node, const Graph& graph) {
    return prepare_reduce(fn, node, graph);
  };
  return OpDef{op_type, 1, 2, prepare};
}

// Sums keep the input's type (ATen would widen integers to int64).
at::Tensor sum_of(const at::Tensor& x, at::IntArrayRef dims, bool keepdim, at::ScalarType type) {
  return at::sum(x, dims, keepdim, type);
}

at::Tensor mean_fn(const at::Tensor& x, at::IntArrayRef dims, bool keepdim) {
  return at::mean(x, dims, keepdim);
}
at::Tensor sum_fn(const at::Tensor& x, at::IntArrayRef dims, bool keepdim) {
  return sum_of(x, dims, keepdim, x.scalar_type());
}
at::Tensor max_fn(const at::Tensor& x, at::IntArrayRef dims, bool keepdim) {
  return at::amax(x, dims, keepdim);
}
at::Tensor min_fn(const at::Tensor& x, at::IntArrayRef dims, bool keepdim) {
  return at::amin(x, dims, keepdim);
}
// at::prod reduces one axis at a time; the axes arrive sorted, so the last goes first and the
// earlier ones keep their positions.
at::Tensor prod_fn(const at::Tensor& x, at::IntArrayRef dims, bool keepdim) {
  at::Tensor y = x;
  for (auto it = dims.rbegin(); it != dims.rend(); ++it)
    y = at::prod(y, *it, keepdim, x.scalar_type());
  return y;
}
at::Tensor l1_fn(const at::Tensor& x, at::IntArrayRef dims, bool keepdim) {
  return sum_of(at::abs(x), dims, keepdim, x.scalar_type());
}
// Integer inputs (ONNX allows them for L2, LogSum and LogSumExp) truncate back to their type.
at::Tensor l2_fn(const at::Tensor& x, at::IntArrayRef dims, bool keepdim) {
  return at::sqrt(sum_of(x * x, dims, keepdim, x.scalar_type())).to(x.scalar_type());
}
at::Tensor log_sum_fn(const at::Tensor& x, at::IntArrayRef dims, bool keepdim) {
  return at::log(sum_of(x, dims, keepdim, x.scalar_type())).to(x.scalar_type());
}
// Computed stably (the maximum subtracted first).
at::Tensor log_sum_exp_fn(const at::Tensor& x, at::IntArrayRef dims, bool keepdim) {
  if (at::isFloatingType(x.scalar_type())) return at::logsumexp(x, dims, keepdim);
  return at::logsumexp(x.to(at::kDouble), dims, keepdim).to(x.scalar_type());
}
at::Tensor sum_square_fn(const at::Tensor& x, at::IntArrayRef dims, bool keepdim) {
  return sum_of(x * x, dims, keepdim, x.scalar_type());
}

// CumSum(x, axis) with `exclusive` and `reverse`; the axis a 0-d or 1-element integer tensor.
Kernel prepare_cumsum(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  const bool exclusive = node.attr_int("exclusive", 0) != 0;
  const bool reverse = node.attr_int("reverse", 0) != 0;
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const std::vector<int64_t> axis = to_int64s(in[1], where, "axis");
    EF_CHECK(axis.size() == 1, where, ": axis must hold one value, not ", axis.size());
    const at::Tensor& x = in[0];
    EF_CHECK(x.dim() > 0 && axis[0] >= -x.dim() && axis[0] < x.dim(), where, ": axis ", axis[0],
             " is out of range for rank ", x.dim());
    const int64_t d = axis[0] < 0 ? axis[0] + x.dim() : axis[0];
    at::Tensor v = reverse ? x.flip(d) : x;
    at::Tensor y = at::cumsum(v, d, v.scalar_type());
    if (exclusive) y = y - v;
    out[0] = reverse ? y.flip(d) : y;
  };
}

EF_REGISTER_OP(ReduceMean, reduce_op("ReduceMean", mean_fn));
EF_REGISTER_OP(ReduceSum, reduce_op("ReduceSum", sum_fn));
EF_REGISTER_OP(ReduceMax, reduce_op("ReduceMax", max_fn));
EF_REGISTER_OP(ReduceMin, reduce_op("ReduceMin", min_fn));
EF_REGISTER_OP(ReduceProd, reduce_op("ReduceProd", prod_fn));
EF_REGISTER_OP(ReduceL1, reduce_op("ReduceL1", l1_fn));
EF_REGISTER_OP(ReduceL2, reduce_op("ReduceL2", l2_fn));
EF_REGISTER_OP(ReduceLogSum, reduce_op("ReduceLogSum", log_sum_fn));
EF_REGISTER_OP(ReduceLogSumExp, reduce_op("ReduceLogSumExp", log_sum_exp_fn));
EF_REGISTER_OP(ReduceSumSquare, reduce_op("ReduceSumSquare", sum_square_fn));
EF_REGISTER_OP(CumSum, OpDef{"CumSum", 2, 2, prepare_cumsum});

}  // namespace
}  // namespace edgeforge::ops
