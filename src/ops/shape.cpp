// Shape and data-movement ops: Flatten, Reshape, Transpose, Gather, Concat, Slice, Split,
// Unsqueeze, Squeeze, Shape, Size, Expand, Tile, Constant, ConstantOfShape, Identity, Range.
// Their capabilities: how Flatten and Identity carry prunable units, Gather's plan lowering.
//
// Shape-like inputs (Reshape's shape, Slice's starts, Unsqueeze's axes, ...) are read once at
// prepare time when they are constants; transformer graphs compute them with Shape chains, so
// every kernel also reads them from the int64 tensor at run time.
#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "edgeforge/error.h"
#include "edgeforge/ops.h"
#include "lowering.h"
#include "util.h"

namespace edgeforge::ops {
namespace {

// An int64 list input: the prepared value when it was a constant, else read from the tensor.
struct IntsInput {
  std::optional<std::vector<int64_t>> prepared;
  size_t index = 0;
  const char* name = "";

  static IntsInput of(const Node& node, const Graph& graph, size_t index, const char* name) {
    return IntsInput{prepared_ints(node, graph, index, name), index, name};
  }
  bool present(const TensorList& in) const {
    return prepared.has_value() || optional_input(in, index).defined();
  }
  std::vector<int64_t> get(const TensorList& in, const std::string& where) const {
    if (prepared) return *prepared;
    return to_int64s(optional_input(in, index), where, name);
  }
};

// ---- Flatten ----

Kernel prepare_flatten(const Node& node, const Graph&) {
  const int64_t axis = node.attr_int("axis", 1);
  const std::string where = node.describe();
  return [axis, where](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    const int64_t rank = x.dim();
    // Unlike other ops the axis may equal the rank: everything goes to the outer dimension.
    EF_CHECK(axis >= -rank && axis <= rank, where, ": axis ", axis,
             " is out of range for a tensor of rank ", rank);
    const int64_t a = axis < 0 ? axis + rank : axis;
    int64_t outer = 1;
    int64_t inner = 1;
    for (int64_t d = 0; d < rank; ++d) (d < a ? outer : inner) *= x.size(d);
    out[0] = x.reshape({outer, inner});
  };
}

// ---- Reshape (opset 14) ----

void check_reshape_shape(const std::vector<int64_t>& shape, bool allowzero,
                         const std::string& where) {
  int minus_ones = 0;
  bool zeros = false;
  for (int64_t s : shape) {
    EF_CHECK(s >= -1, where, ": shape value ", s, " is invalid (expected >= -1)");
    minus_ones += s == -1;
    zeros = zeros || s == 0;
  }
  EF_CHECK(minus_ones <= 1, where, ": shape ", at::IntArrayRef(shape), " has more than one -1");
  EF_CHECK(!(allowzero && zeros && minus_ones > 0), where, ": shape ", at::IntArrayRef(shape),
           " has both 0 and -1, which allowzero 1 forbids");
}

// With allowzero 0, a 0 copies the input's size in that position.
std::vector<int64_t> copy_zero_dims(std::vector<int64_t> shape, at::IntArrayRef in_sizes,
                                    const std::string& where) {
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] != 0) continue;
    EF_CHECK(i < in_sizes.size(), where, ": shape ", at::IntArrayRef(shape), " has 0 at index ", i,
             " but the input has shape ", in_sizes);
    shape[i] = in_sizes[i];
  }
  return shape;
}

Kernel prepare_reshape(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  const bool allowzero = node.attr_int("allowzero", 0) != 0;
  const IntsInput shape_input = IntsInput::of(node, graph, 1, "shape");
  if (shape_input.prepared) {
    const std::vector<int64_t> shape = *shape_input.prepared;
    check_reshape_shape(shape, allowzero, where);
    const bool copies_dims = !allowzero && std::count(shape.begin(), shape.end(), 0) > 0;
    if (!copies_dims) {
      return [shape](const TensorList& in, TensorList& out, const KernelContext&) {
        out[0] = in[0].reshape(shape);
      };
    }
  }
  return
      [shape_input, allowzero, where](const TensorList& in, TensorList& out, const KernelContext&) {
        std::vector<int64_t> shape = shape_input.get(in, where);
        check_reshape_shape(shape, allowzero, where);
        if (!allowzero) shape = copy_zero_dims(std::move(shape), in[0].sizes(), where);
        out[0] = in[0].reshape(shape);
      };
}

// ---- Transpose ----

Kernel prepare_transpose(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const std::vector<int64_t> perm = node.attr_ints("perm", {});
  std::vector<bool> seen(perm.size(), false);
  for (int64_t p : perm) {
    EF_CHECK(p >= 0 && p < static_cast<int64_t>(perm.size()) && !seen[p], where, ": perm ",
             at::IntArrayRef(perm), " is not a permutation of 0..",
             static_cast<int64_t>(perm.size()) - 1);
    seen[p] = true;
  }
  return [perm, where](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    if (perm.empty()) {
      std::vector<int64_t> reversed(x.dim());
      for (int64_t d = 0; d < x.dim(); ++d) reversed[d] = x.dim() - 1 - d;
      out[0] = x.permute(reversed);
      return;
    }
    EF_CHECK(static_cast<int64_t>(perm.size()) == x.dim(), where, ": perm ", at::IntArrayRef(perm),
             " does not match an input of shape ", x.sizes());
    out[0] = x.permute(perm);
  };
}

// ---- Gather (opset 13) ----

Kernel prepare_gather(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  const int64_t axis = node.attr_int("axis", 0);
  // Constant non-negative indices (the common Gather(Shape(x), k)) skip the negative-index
  // check per run.
  const at::Tensor prepared = prepared_input(node, graph, 1);
  const bool non_negative =
      prepared.defined() && (prepared.numel() == 0 || prepared.min().item<int64_t>() >= 0);
  return [axis, where, non_negative](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& data = in[0];
    at::Tensor indices = in[1];
    EF_CHECK(indices.scalar_type() == at::kLong || indices.scalar_type() == at::kInt, where,
             ": indices have type ", c10::toString(indices.scalar_type()),
             ", expected int32 or int64");
    const int64_t a = normalize_axis(axis, data.dim(), where);
    if (!non_negative && indices.numel() > 0 && indices.min().item<int64_t>() < 0)
      indices = at::where(indices < 0, indices + data.size(a), indices);
    at::Tensor flat = at::index_select(data, a, indices.reshape({-1}));
    if (indices.dim() == 1) {
      out[0] = flat;
      return;
    }
    // data.shape[:axis] + indices.shape + data.shape[axis + 1:]
    std::vector<int64_t> shape(data.sizes().begin(), data.sizes().begin() + a);
    shape.insert(shape.end(), indices.sizes().begin(), indices.sizes().end());
    shape.insert(shape.end(), data.sizes().begin() + a + 1, data.sizes().end());
    out[0] = flat.reshape(shape);
  };
}

// ---- Concat ----

Kernel prepare_concat(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const int64_t axis = node.attr_int("axis");
  for (const std::string& name : node.inputs)
    EF_CHECK(!name.empty(), where, ": an input is omitted, which Concat forbids");
  return [axis, where](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = at::cat(in, normalize_axis(axis, in[0].dim(), where));
  };
}

// ---- Slice (opset 13) ----

// Slices `x` along each listed axis with ONNX clamping: starts and ends are clamped to the
// dimension ([0, dim] for positive steps, [-1, dim - 1] for negative ones), so INT64_MAX and
// INT64_MIN mean "to the end" and "to the beginning".
at::Tensor slice_forward(at::Tensor x, const std::vector<int64_t>& starts,
                         const std::vector<int64_t>& ends, const std::vector<int64_t>& axes,
                         const std::vector<int64_t>& steps, const std::string& where) {
  const size_t n = starts.size();
  EF_CHECK(ends.size() == n, where, ": starts has ", n, " values but ends has ", ends.size());
  EF_CHECK(axes.empty() || axes.size() == n, where, ": axes has ", axes.size(),
           " values, expected ", n);
  EF_CHECK(steps.empty() || steps.size() == n, where, ": steps has ", steps.size(),
           " values, expected ", n);
  const int64_t rank = x.dim();
  std::vector<bool> used(rank, false);
  for (size_t i = 0; i < n; ++i) {
    const int64_t axis =
        normalize_axis(axes.empty() ? static_cast<int64_t>(i) : axes[i], rank, where);
    EF_CHECK(!used[axis], where, ": axis ", axis, " is sliced twice");
    used[axis] = true;
    const int64_t step = steps.empty() ? 1 : steps[i];
    EF_CHECK(step != 0, where, ": step 0 on axis ", axis);
    const int64_t dim = x.size(axis);
    int64_t start = starts[i];
    int64_t end = ends[i];
    if (start < 0) start += dim;
    if (end < 0) end += dim;
    if (step > 0) {
      start = std::min(std::max<int64_t>(start, 0), dim);
      end = std::min(std::max<int64_t>(end, 0), dim);
      x = x.slice(axis, start, std::max(start, end), step);
      continue;
    }
    start = std::min(std::max<int64_t>(start, 0), dim - 1);
    end = std::min(std::max<int64_t>(end, -1), dim - 1);
    const int64_t stride = -step;
    const int64_t count = start > end ? (start - end + stride - 1) / stride : 0;
    if (count == 0) {
      x = x.slice(axis, 0, 0);
      continue;
    }
    // ATen slices only forwards: take the same elements upwards from the lowest, then flip.
    const int64_t lowest = start - (count - 1) * stride;
    x = x.slice(axis, lowest, start + 1, stride).flip({axis});
  }
  return x;
}

Kernel prepare_slice(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  const IntsInput starts = IntsInput::of(node, graph, 1, "starts");
  const IntsInput ends = IntsInput::of(node, graph, 2, "ends");
  const IntsInput axes = IntsInput::of(node, graph, 3, "axes");
  const IntsInput steps = IntsInput::of(node, graph, 4, "steps");
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    static const std::vector<int64_t> kNone;
    out[0] = slice_forward(in[0], starts.get(in, where), ends.get(in, where),
                           axes.present(in) ? axes.get(in, where) : kNone,
                           steps.present(in) ? steps.get(in, where) : kNone, where);
  };
}

// ---- Split (opset 13; also opset 18's num_outputs) ----

Kernel prepare_split(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  const int64_t axis = node.attr_int("axis", 0);
  const int64_t n_out = static_cast<int64_t>(node.outputs.size());
  const IntsInput split = IntsInput::of(node, graph, 1, "split");
  EF_CHECK(!node.has("split"), where,
           ": the split attribute is opset 11; opset 13 takes split as an input");
  const int64_t num_outputs = node.attr_int("num_outputs", 0);
  EF_CHECK(num_outputs == 0 || num_outputs == n_out, where, ": num_outputs ", num_outputs,
           " differs from the ", n_out, " outputs");
  if (split.prepared)
    EF_CHECK(static_cast<int64_t>(split.prepared->size()) == n_out, where, ": split has ",
             split.prepared->size(), " values for ", n_out, " outputs");
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    const int64_t a = normalize_axis(axis, x.dim(), where);
    const int64_t dim = x.size(a);
    std::vector<int64_t> sizes;
    if (split.present(in)) {
      sizes = split.get(in, where);
      EF_CHECK(static_cast<int64_t>(sizes.size()) == n_out, where, ": split has ", sizes.size(),
               " values for ", n_out, " outputs");
    } else if (num_outputs > 0) {
      // Opset 18: equal chunks of ceil(dim / n), the last one smaller.
      const int64_t chunk = (dim + n_out - 1) / n_out;
      for (int64_t i = 0, left = dim; i < n_out; ++i, left -= chunk)
        sizes.push_back(std::max<int64_t>(0, std::min(chunk, left)));
    } else {
      EF_CHECK(dim % n_out == 0, where, ": dimension ", a, " of size ", dim,
               " does not split into ", n_out, " equal parts");
      sizes.assign(n_out, dim / n_out);
    }
    std::vector<at::Tensor> parts = at::split_with_sizes(x, sizes, a);
    for (int64_t i = 0; i < n_out; ++i) out[i] = std::move(parts[i]);
  };
}

// ---- Unsqueeze, Squeeze (opset 13: axes as an input) ----

at::Tensor unsqueeze_forward(const at::Tensor& x, std::vector<int64_t> axes,
                             const std::string& where) {
  const int64_t out_rank = x.dim() + static_cast<int64_t>(axes.size());
  for (int64_t& a : axes) a = normalize_axis(a, out_rank, where, "axes value");
  std::sort(axes.begin(), axes.end());
  EF_CHECK(std::adjacent_find(axes.begin(), axes.end()) == axes.end(), where,
           ": axes has a repeated axis");
  at::Tensor y = x;
  // Ascending order: each inserted axis is already in output coordinates.
  for (int64_t a : axes) y = y.unsqueeze(a);
  return y;
}

Kernel prepare_unsqueeze(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  const IntsInput axes = IntsInput::of(node, graph, 1, "axes");
  if (axes.prepared && axes.prepared->size() == 1) {
    const int64_t axis = axes.prepared->front();
    return [axis, where](const TensorList& in, TensorList& out, const KernelContext&) {
      out[0] = in[0].unsqueeze(normalize_axis(axis, in[0].dim() + 1, where, "axes value"));
    };
  }
  return [axes, where](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = unsqueeze_forward(in[0], axes.get(in, where), where);
  };
}

at::Tensor squeeze_forward(const at::Tensor& x, std::vector<int64_t> axes,
                           const std::string& where) {
  for (int64_t& a : axes) {
    a = normalize_axis(a, x.dim(), where, "axes value");
    EF_CHECK(x.size(a) == 1, where, ": cannot squeeze axis ", a, " of size ", x.size(a),
             " (input shape ", x.sizes(), ")");
  }
  std::sort(axes.begin(), axes.end());
  axes.erase(std::unique(axes.begin(), axes.end()), axes.end());
  at::Tensor y = x;
  // Descending order keeps the remaining axes' positions valid.
  for (auto it = axes.rbegin(); it != axes.rend(); ++it) y = y.squeeze(*it);
  return y;
}

Kernel prepare_squeeze(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  const IntsInput axes = IntsInput::of(node, graph, 1, "axes");
  return [axes, where](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] =
        axes.present(in) ? squeeze_forward(in[0], axes.get(in, where), where) : in[0].squeeze();
  };
}

// ---- Shape (opset 15), Size ----

Kernel prepare_shape(const Node& node, const Graph&) {
  const int64_t start = node.attr_int("start", 0);
  const bool has_end = node.has("end");
  const int64_t end = node.attr_int("end", 0);
  return [start, has_end, end](const TensorList& in, TensorList& out, const KernelContext&) {
    const int64_t rank = in[0].dim();
    // Out-of-range start and end are clamped, not errors.
    auto clamp = [rank](int64_t v) {
      if (v < 0) v += rank;
      return std::min(std::max<int64_t>(v, 0), rank);
    };
    const int64_t s = clamp(start);
    const int64_t e = std::max(s, has_end ? clamp(end) : rank);
    out[0] = at::tensor(in[0].sizes().slice(s, e - s), at::kLong);
  };
}

Kernel prepare_size(const Node&, const Graph&) {
  return [](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = at::scalar_tensor(in[0].numel(), at::kLong);
  };
}

// ---- Expand (bidirectional broadcast), Tile ----

Kernel prepare_expand(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  const IntsInput shape = IntsInput::of(node, graph, 1, "shape");
  return [shape, where](const TensorList& in, TensorList& out, const KernelContext&) {
    // Unlike at::expand, a 1 in `shape` keeps the input's size and `shape` may have lower
    // rank: the result has the broadcast of both shapes.
    const std::vector<int64_t> target = shape.get(in, where);
    out[0] = in[0].expand(at::infer_size(in[0].sizes(), target));
  };
}

Kernel prepare_tile(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  const IntsInput repeats = IntsInput::of(node, graph, 1, "repeats");
  return [repeats, where](const TensorList& in, TensorList& out, const KernelContext&) {
    const std::vector<int64_t> r = repeats.get(in, where);
    EF_CHECK(static_cast<int64_t>(r.size()) == in[0].dim(), where, ": repeats ", at::IntArrayRef(r),
             " does not have one value per dimension of ", in[0].sizes());
    for (int64_t v : r) EF_CHECK(v >= 0, where, ": repeats value ", v, " is negative");
    out[0] = in[0].repeat(r);
  };
}

// ---- Constant, ConstantOfShape, Identity, Range ----

Kernel prepare_constant(const Node& node, const Graph&) {
  const at::Tensor value = constant_node_value(node);
  return [value](const TensorList&, TensorList& out, const KernelContext&) { out[0] = value; };
}

Kernel prepare_constant_of_shape(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  at::Tensor value = at::zeros({1}, at::kFloat);
  if (node.has("value")) {
    value = node.attr_tensor("value");
    EF_CHECK(value.numel() == 1, where, ": value has shape ", value.sizes(),
             ", expected one element");
  }
  const at::Scalar fill = value.reshape({}).item();
  const at::TensorOptions options = at::TensorOptions().dtype(value.scalar_type());
  const IntsInput shape = IntsInput::of(node, graph, 0, "input");
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const std::vector<int64_t> s = shape.get(in, where);
    for (int64_t v : s)
      EF_CHECK(v >= 0, where, ": shape ", at::IntArrayRef(s), " has a negative size");
    out[0] = at::full(s, fill, options);
  };
}

Kernel prepare_identity(const Node&, const Graph&) {
  return [](const TensorList& in, TensorList& out, const KernelContext&) { out[0] = in[0]; };
}

Kernel prepare_range(const Node& node, const Graph&) {
  const std::string where = node.describe();
  return [where](const TensorList& in, TensorList& out, const KernelContext&) {
    for (int i = 0; i < 3; ++i)
      EF_CHECK(in[i].numel() == 1, where, ": input ", i, " has shape ", in[i].sizes(),
               ", expected a scalar");
    const at::ScalarType type = in[0].scalar_type();
    const at::TensorOptions options = at::TensorOptions().dtype(type);
    // Range's inputs are scalars that steer the shape, not a float path, so reading them
    // cuts no gradient. A delta of the wrong sign gives an empty range, where at::arange throws.
    if (at::isFloatingType(type)) {
      const double start = in[0].item<double>();
      const double limit = in[1].item<double>();
      const double delta = in[2].item<double>();
      EF_CHECK(delta != 0.0, where, ": delta is 0");
      const double count = std::ceil((limit - start) / delta);
      out[0] = count <= 0 ? at::empty({0}, options) : at::arange(start, limit, delta, options);
      return;
    }
    const int64_t start = in[0].item<int64_t>();
    const int64_t limit = in[1].item<int64_t>();
    const int64_t delta = in[2].item<int64_t>();
    EF_CHECK(delta != 0, where, ": delta is 0");
    const bool empty = delta > 0 ? start >= limit : start <= limit;
    out[0] = empty ? at::empty({0}, options) : at::arange(start, limit, delta, options);
  };
}

// Flatten takes [N, C, 1, 1] to [N, C] from axis 1 only.
bool flattens_channels(const Node& n, const Graph&) { return n.attr_int("axis", 1) == 1; }

OpCapabilities flatten_capabilities() {
  OpCapabilities c;
  c.units.role = UnitRole::kFlatten;
  c.units.holds = flattens_channels;
  return c;
}

// Gather(constant float table, indices) on axis 0 (embeddings) -> PlanGather
// (src/runtime/plan_ops.cpp).
void plan_gather(PlanRewriter& pass, size_t i) {
  const Node& n = pass.node(i);
  if (n.attr_int("axis", 0) == 0 && n.inputs.size() == 2 && pass.constant(n.inputs[0]).defined() &&
      pass.constant(n.inputs[0]).scalar_type() == at::kFloat &&
      pass.constant(n.inputs[0]).dim() >= 1)
    pass.place(Node("PlanGather", n.name, {n.inputs[0], n.inputs[1]}, {n.outputs[0]}), {i});
}

OpCapabilities gather_capabilities() {
  OpCapabilities c;
  c.plan = plan_gather;
  return c;
}

EF_REGISTER_OP(Flatten, OpDef{"Flatten", 1, 1, prepare_flatten, "", flatten_capabilities()});
EF_REGISTER_OP(Reshape, OpDef{"Reshape", 2, 2, prepare_reshape});
EF_REGISTER_OP(Transpose, OpDef{"Transpose", 1, 1, prepare_transpose});
EF_REGISTER_OP(Gather, OpDef{"Gather", 2, 2, prepare_gather, "", gather_capabilities()});
EF_REGISTER_OP(Concat, OpDef{"Concat", 1, kVariadicInputs, prepare_concat});
EF_REGISTER_OP(Slice, OpDef{"Slice", 3, 5, prepare_slice});
EF_REGISTER_OP(Split, OpDef{"Split", 1, 2, prepare_split});
EF_REGISTER_OP(Unsqueeze, OpDef{"Unsqueeze", 2, 2, prepare_unsqueeze});
EF_REGISTER_OP(Squeeze, OpDef{"Squeeze", 1, 2, prepare_squeeze});
EF_REGISTER_OP(Shape, OpDef{"Shape", 1, 1, prepare_shape});
EF_REGISTER_OP(Size, OpDef{"Size", 1, 1, prepare_size});
EF_REGISTER_OP(Expand, OpDef{"Expand", 2, 2, prepare_expand});
EF_REGISTER_OP(Tile, OpDef{"Tile", 2, 2, prepare_tile});
EF_REGISTER_OP(Constant, OpDef{"Constant", 0, 0, prepare_constant});
EF_REGISTER_OP(ConstantOfShape, OpDef{"ConstantOfShape", 1, 1, prepare_constant_of_shape});
EF_REGISTER_OP(Identity, OpDef{"Identity", 1, 1, prepare_identity, "", per_unit_op(true)});
EF_REGISTER_OP(Range, OpDef{"Range", 3, 3, prepare_range});

}  // namespace
}  // namespace edgeforge::ops
