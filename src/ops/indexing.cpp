// Indexing ops: GatherElements, ScatterElements (and the deprecated Scatter), GatherND,
// ScatterND, OneHot, Compress, NonZero, Unique, Trilu, EyeLike, ReverseSequence.
//
// Indices follow ONNX: negative values count back from the end of their dimension, and a value
// outside [-size, size - 1] is an error naming the node (OneHot alone maps such a value to an
// all-off row, as its definition says).
#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "edgeforge/error.h"
#include "edgeforge/ops.h"
#include "util.h"

namespace edgeforge::ops {
namespace {

// `indices` (int32 or int64) as int64 with negative values counted back from the end of their
// dimension. `sizes` broadcasts against them: one dimension's size, or one per entry of the
// last axis (GatherND, ScatterND).
at::Tensor resolve_indices(const at::Tensor& indices, const at::Tensor& sizes,
                           const std::string& where) {
  EF_CHECK(indices.scalar_type() == at::kLong || indices.scalar_type() == at::kInt, where,
           ": indices have type ", c10::toString(indices.scalar_type()),
           ", expected int32 or int64");
  const at::Tensor idx = indices.to(at::kLong);
  const at::Tensor bad = (idx < -sizes).logical_or(idx >= sizes);
  if (bad.any().item<bool>()) {
    const int64_t i = bad.reshape(-1).nonzero()[0][0].item<int64_t>();
    throw Error(detail::concat(where, ": index ", idx.reshape(-1)[i].item<int64_t>(),
                               " is out of range for a dimension of size ",
                               sizes.expand_as(idx).reshape(-1)[i].item<int64_t>()));
  }
  return at::where(idx < 0, idx + sizes, idx);
}

at::Tensor size_tensor(int64_t size) { return at::scalar_tensor(size, at::kLong); }

// ScatterElements' and ScatterND's `reduction` at opset 17 (opset 18 adds max and min).
enum class Reduction { kNone, kAdd, kMul };

Reduction parse_reduction(const Node& node) {
  const std::string r = node.attr_string("reduction", "none");
  if (r == "none") return Reduction::kNone;
  if (r == "add") return Reduction::kAdd;
  if (r == "mul") return Reduction::kMul;
  throw Error(detail::concat(node.describe(), ": reduction '", r,
                             "' is not supported (opset 17: none, add, mul)"));
}

// A copy of `data` with `updates` written (added, multiplied) at `index` along `dim`.
at::Tensor scatter(Reduction reduction, const at::Tensor& data, int64_t dim,
                   const at::Tensor& index, const at::Tensor& updates) {
  switch (reduction) {
    case Reduction::kAdd:
      return at::scatter_add(data, dim, index, updates);
    case Reduction::kMul:
      return at::scatter_reduce(data, dim, index, updates, "prod");
    case Reduction::kNone:
      break;
  }
  return at::scatter(data, dim, index, updates);
}

// GatherElements and ScatterElements: indices of the data's rank, no larger on the other axes.
void check_element_indices(const at::Tensor& data, const at::Tensor& indices, int64_t axis,
                           const std::string& where) {
  EF_CHECK(indices.dim() == data.dim(), where, ": indices have shape ", indices.sizes(),
           ", expected the rank of data ", data.sizes());
  for (int64_t d = 0; d < data.dim(); ++d)
    EF_CHECK(d == axis || indices.size(d) <= data.size(d), where, ": indices of shape ",
             indices.sizes(), " exceed data of shape ", data.sizes(), " on axis ", d);
}

// ---- GatherElements (opset 13), ScatterElements (opset 16), Scatter ----

// out[i][j] = data[indices[i][j]][j] on axis 0, and likewise on other axes.
Kernel prepare_gather_elements(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const int64_t axis = node.attr_int("axis", 0);
  return [axis, where](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& data = in[0];
    const int64_t a = normalize_axis(axis, data.dim(), where);
    check_element_indices(data, in[1], a, where);
    out[0] = at::gather(data, a, resolve_indices(in[1], size_tensor(data.size(a)), where));
  };
}

// A copy of data with out[indices[i][j]][j] = updates[i][j] on axis 0 (+= or *= with
// reduction add or mul). Scatter, deprecated since opset 11, is the same without reduction;
// load_onnx's version converter rewrites opset 9 and 10 Scatter nodes into ScatterElements, so
// its entry serves graphs that keep the old name.
Kernel prepare_scatter_elements(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const int64_t axis = node.attr_int("axis", 0);
  const Reduction reduction = parse_reduction(node);
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& data = in[0];
    const at::Tensor& updates = in[2];
    const int64_t a = normalize_axis(axis, data.dim(), where);
    check_element_indices(data, in[1], a, where);
    EF_CHECK(updates.sizes() == in[1].sizes(), where, ": updates have shape ", updates.sizes(),
             ", expected the shape of indices ", in[1].sizes());
    out[0] = scatter(reduction, data, a,
                     resolve_indices(in[1], size_tensor(data.size(a)), where), updates);
  };
}

// ---- GatherND (opset 13), ScatterND (opset 16) ----

// The tuples of the last axis of `indices` as row-major offsets into data.shape[first:first+m]
// (m = indices.shape[-1]), after the index checks.
at::Tensor linear_offsets(const at::Tensor& data, int64_t first, const at::Tensor& indices,
                          const std::string& where) {
  const int64_t m = indices.size(-1);
  const std::vector<int64_t> dims(data.sizes().begin() + first,
                                  data.sizes().begin() + first + m);
  std::vector<int64_t> strides(m, 1);
  for (int64_t j = m - 2; j >= 0; --j) strides[j] = strides[j + 1] * dims[j + 1];
  const at::Tensor idx = resolve_indices(indices, at::tensor(dims, at::kLong), where);
  return (idx * at::tensor(strides, at::kLong)).sum(-1);
}

// The slices data[b..., indices[b..., i, :], ...] of the b = batch_dims leading batch axes:
// output shape indices.shape[:-1] + data.shape[b + indices.shape[-1]:].
Kernel prepare_gather_nd(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const int64_t batch_dims = node.attr_int("batch_dims", 0);
  EF_CHECK(batch_dims >= 0, where, ": batch_dims ", batch_dims, " is negative");
  return [batch_dims, where](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& data = in[0];
    const at::Tensor& indices = in[1];
    const int64_t b = batch_dims;
    EF_CHECK(b < data.dim() && b < indices.dim(), where, ": batch_dims ", b,
             " must be below the ranks of data ", data.sizes(), " and indices ", indices.sizes());
    const int64_t m = indices.size(-1);
    EF_CHECK(m <= data.dim() - b, where, ": indices of shape ", indices.sizes(),
             " index more axes than data of shape ", data.sizes(), " has after ", b,
             " batch axes");
    EF_CHECK(indices.sizes().slice(0, b) == data.sizes().slice(0, b), where,
             ": the batch axes of indices ", indices.sizes(), " and data ", data.sizes(),
             " differ");
    int64_t batch = 1, slices = 1, per_batch = 1;
    for (int64_t d = 0; d < b; ++d) batch *= data.size(d);
    for (int64_t d = b; d < b + m; ++d) slices *= data.size(d);
    for (int64_t d = b; d < indices.dim() - 1; ++d) per_batch *= indices.size(d);
    // Rows of the data flattened to [batch * slices, rest...], offset per batch.
    at::Tensor rows = linear_offsets(data, b, indices, where).reshape({batch, per_batch});
    rows = rows + at::arange(batch, at::kLong).unsqueeze(1) * slices;
    std::vector<int64_t> flat_shape{batch * slices};
    flat_shape.insert(flat_shape.end(), data.sizes().begin() + b + m, data.sizes().end());
    std::vector<int64_t> shape(indices.sizes().begin(), indices.sizes().end() - 1);
    shape.insert(shape.end(), data.sizes().begin() + b + m, data.sizes().end());
    out[0] = at::index_select(data.reshape(flat_shape), 0, rows.reshape(-1)).reshape(shape);
  };
}

// A copy of data with data[indices[i, :]] = updates[i] (+= or *= with reduction add or mul);
// updates has shape indices.shape[:-1] + data.shape[indices.shape[-1]:].
Kernel prepare_scatter_nd(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const Reduction reduction = parse_reduction(node);
  return [reduction, where](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& data = in[0];
    const at::Tensor& indices = in[1];
    const at::Tensor& updates = in[2];
    EF_CHECK(indices.dim() >= 1, where, ": indices must have rank 1 or more");
    const int64_t m = indices.size(-1);
    EF_CHECK(m <= data.dim(), where, ": indices of shape ", indices.sizes(),
             " index more axes than data of shape ", data.sizes(), " has");
    std::vector<int64_t> expected(indices.sizes().begin(), indices.sizes().end() - 1);
    expected.insert(expected.end(), data.sizes().begin() + m, data.sizes().end());
    EF_CHECK(updates.sizes() == at::IntArrayRef(expected), where, ": updates have shape ",
             updates.sizes(), ", expected ", at::IntArrayRef(expected));
    int64_t slices = 1, inner = 1;
    for (int64_t d = 0; d < data.dim(); ++d) (d < m ? slices : inner) *= data.size(d);
    // Each update row is scattered along axis 0 of the data flattened to [slices, inner].
    const at::Tensor rows = linear_offsets(data, 0, indices, where).reshape({-1, 1});
    const at::Tensor rows_updates = updates.reshape({rows.size(0), inner});
    out[0] = scatter(reduction, data.reshape({slices, inner}), 0,
                     rows.expand({rows.size(0), inner}), rows_updates)
                 .reshape(data.sizes());
  };
}

// ---- OneHot (opset 11) ----

// values[1] where the class along the inserted axis equals the index, values[0] elsewhere;
// indices and depth of any numeric type are truncated to int64. An index outside
// [-depth, depth - 1] gives a row of values[0], as ONNX defines.
Kernel prepare_one_hot(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const int64_t axis = node.attr_int("axis", -1);
  return [axis, where](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& values = in[2];
    EF_CHECK(in[1].numel() == 1, where, ": depth has shape ", in[1].sizes(),
             ", expected a scalar");
    EF_CHECK(values.numel() == 2, where, ": values has shape ", values.sizes(),
             ", expected [off_value, on_value]");
    const int64_t depth = in[1].reshape({}).to(at::kLong).item<int64_t>();
    EF_CHECK(depth >= 0, where, ": depth ", depth, " is negative");
    const int64_t a = normalize_axis(axis, in[0].dim() + 1, where);
    at::Tensor idx = in[0].to(at::kLong);
    idx = at::where(idx < 0, idx + depth, idx).unsqueeze(a);
    std::vector<int64_t> class_shape(in[0].dim() + 1, 1);
    class_shape[a] = depth;
    const at::Tensor hot = idx == at::arange(depth, at::kLong).reshape(class_shape);
    const at::Tensor flat = values.reshape(-1);
    out[0] = at::where(hot, flat[1], flat[0]);
  };
}

// ---- Compress (opset 11), NonZero (opset 13) ----

// The slices along `axis` (of the flattened input without one) where the rank-1 condition is
// true; a condition shorter than the axis drops the slices past its end.
Kernel prepare_compress(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const bool has_axis = node.has("axis");
  const int64_t axis = node.attr_int("axis", 0);
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& condition = in[1];
    EF_CHECK(condition.dim() == 1, where, ": condition has shape ", condition.sizes(),
             ", expected rank 1");
    const at::Tensor x = has_axis ? in[0] : in[0].reshape(-1);
    const int64_t a = has_axis ? normalize_axis(axis, x.dim(), where) : 0;
    EF_CHECK(condition.size(0) <= x.size(a), where, ": condition has ", condition.size(0),
             " values for ", x.size(a), " slices");
    out[0] = at::index_select(x, a, at::nonzero(condition).reshape(-1));
  };
}

// The int64 coordinates [rank, count] of the non-zero elements in row-major order; a scalar
// gives shape [0, count].
Kernel prepare_non_zero(const Node&, const Graph&) {
  return [](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = at::nonzero(in[0]).t().contiguous();
  };
}

// ---- Unique (opset 11) ----

// The unique elements (slices along `axis`), each one's first index in the input, the inverse
// map from the input to them and their counts. sorted 0 orders them by first occurrence.
Kernel prepare_unique(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const bool has_axis = node.has("axis");
  const int64_t axis = node.attr_int("axis", 0);
  const bool sorted = node.attr_int("sorted", 1) != 0;
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor x = has_axis ? in[0] : in[0].reshape(-1);
    const int64_t a = has_axis ? normalize_axis(axis, x.dim(), where) : 0;
    auto [y, inverse, counts] = at::unique_dim(x, a, /*sorted=*/true, /*return_inverse=*/true,
                                               /*return_counts=*/true);
    // Input positions grouped by unique entry, each group in input order: its first one.
    const at::Tensor grouped = std::get<1>(at::sort(inverse, /*stable=*/true, 0, false));
    at::Tensor first = grouped.index_select(0, at::cumsum(counts, 0) - counts);
    if (!sorted) {
      const at::Tensor order = at::argsort(first);  // first occurrences are distinct
      y = y.index_select(a, order);
      counts = counts.index_select(0, order);
      first = first.index_select(0, order);
      const at::Tensor position =
          at::empty_like(order).scatter_(0, order, at::arange(order.numel(), at::kLong));
      inverse = position.index_select(0, inverse);
    }
    const at::Tensor results[] = {y, first, inverse, counts};
    for (size_t i = 0; i < out.size() && i < 4; ++i) out[i] = results[i];
  };
}

// ---- Trilu (opset 14), EyeLike (opset 9) ----

// The upper (upper 1) or lower triangle of the last two axes from diagonal k (input 1,
// default 0), zeros elsewhere.
Kernel prepare_trilu(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  const bool upper = node.attr_int("upper", 1) != 0;
  const bool has_k = node.inputs.size() > 1 && !node.inputs[1].empty();
  const std::optional<std::vector<int64_t>> prepared_k = prepared_ints(node, graph, 1, "k");
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    EF_CHECK(x.dim() >= 2, where, ": input has shape ", x.sizes(), ", expected rank 2 or more");
    std::vector<int64_t> k{0};
    if (has_k) k = prepared_k ? *prepared_k : to_int64s(in[1], where, "k");
    EF_CHECK(k.size() == 1, where, ": k must hold one value, not ", k.size());
    out[0] = upper ? at::triu(x, k[0]) : at::tril(x, k[0]);
  };
}

// A matrix of the input's 2-D shape with ones on diagonal k (out[i, i + k] = 1), of type
// `dtype` (default the input's).
Kernel prepare_eye_like(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const std::optional<at::ScalarType> dtype =
      node.has("dtype") ? std::optional<at::ScalarType>(
                              scalar_type_from_onnx(node.attr_int("dtype"), node))
                        : std::nullopt;
  const int64_t k = node.attr_int("k", 0);
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    EF_CHECK(x.dim() == 2, where, ": input has shape ", x.sizes(), ", expected rank 2");
    const at::Tensor rows = at::arange(x.size(0), at::kLong).unsqueeze(1);
    const at::Tensor cols = at::arange(x.size(1), at::kLong);
    out[0] = (cols - rows == k).to(dtype.value_or(x.scalar_type()));
  };
}

// ---- ReverseSequence (opset 10) ----

// For each batch entry b, the first sequence_lens[b] steps along the time axis reversed, the
// rest copied.
Kernel prepare_reverse_sequence(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const int64_t batch_axis = node.attr_int("batch_axis", 1);
  const int64_t time_axis = node.attr_int("time_axis", 0);
  EF_CHECK((batch_axis == 0 || batch_axis == 1) && (time_axis == 0 || time_axis == 1) &&
               batch_axis != time_axis,
           where, ": batch_axis ", batch_axis, " and time_axis ", time_axis,
           " must be 0 and 1 in either order");
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    EF_CHECK(x.dim() >= 2, where, ": input has shape ", x.sizes(), ", expected rank 2 or more");
    const int64_t steps = x.size(time_axis);
    const at::Tensor lens = in[1].to(at::kLong);
    EF_CHECK(lens.dim() == 1 && lens.size(0) == x.size(batch_axis), where,
             ": sequence_lens has shape ", lens.sizes(), ", expected [", x.size(batch_axis), "]");
    if (lens.numel() > 0) {
      const int64_t shortest = lens.min().item<int64_t>(), longest = lens.max().item<int64_t>();
      EF_CHECK(shortest >= 0 && longest <= steps, where, ": sequence length ",
               shortest < 0 ? shortest : longest, " is outside [0, ", steps, "]");
    }
    std::vector<int64_t> time_shape(x.dim(), 1), batch_shape(x.dim(), 1);
    time_shape[time_axis] = steps;
    batch_shape[batch_axis] = lens.size(0);
    const at::Tensor t = at::arange(steps, at::kLong).reshape(time_shape);
    const at::Tensor len = lens.reshape(batch_shape);
    const at::Tensor source = at::where(t < len, len - 1 - t, t);
    out[0] = at::gather(x, time_axis, source.expand(x.sizes()));
  };
}

EF_REGISTER_OP(GatherElements, OpDef{"GatherElements", 2, 2, prepare_gather_elements});
EF_REGISTER_OP(ScatterElements, OpDef{"ScatterElements", 3, 3, prepare_scatter_elements});
EF_REGISTER_OP(Scatter, OpDef{"Scatter", 3, 3, prepare_scatter_elements});
EF_REGISTER_OP(GatherND, OpDef{"GatherND", 2, 2, prepare_gather_nd});
EF_REGISTER_OP(ScatterND, OpDef{"ScatterND", 3, 3, prepare_scatter_nd});
EF_REGISTER_OP(OneHot, OpDef{"OneHot", 3, 3, prepare_one_hot});
EF_REGISTER_OP(Compress, OpDef{"Compress", 2, 2, prepare_compress});
EF_REGISTER_OP(NonZero, OpDef{"NonZero", 1, 1, prepare_non_zero});
EF_REGISTER_OP(Unique, OpDef{"Unique", 1, 1, prepare_unique});
EF_REGISTER_OP(Trilu, OpDef{"Trilu", 1, 2, prepare_trilu});
EF_REGISTER_OP(EyeLike, OpDef{"EyeLike", 1, 1, prepare_eye_like});
EF_REGISTER_OP(ReverseSequence, OpDef{"ReverseSequence", 2, 2, prepare_reverse_sequence});

}  // namespace
}  // namespace edgeforge::ops
