// More neural-network ops: ConvTranspose, Resize and Upsample, Pad, InstanceNormalization,
// GlobalMaxPool, LRN, MeanVarianceNormalization, DepthToSpace, SpaceToDepth, GridSample,
// RoiAlign, MaxUnpool and NonMaxSuppression; with the MACs of ConvTranspose and
// InstanceNormalization as their capabilities.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/util/accumulate.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "edgeforge/error.h"
#include "edgeforge/ops.h"
#include "util.h"

namespace edgeforge::ops {
namespace {

// An optional input: its value read at prepare time when it is a constant, else the run-time
// tensor (undefined when omitted).
struct InputValue {
  at::Tensor prepared;
  size_t index = 0;

  static InputValue of(const Node& node, const Graph& graph, size_t index) {
    return InputValue{prepared_input(node, graph, index), index};
  }
  const at::Tensor& get(const TensorList& in) const {
    return prepared.defined() ? prepared : optional_input(in, index);
  }
};

// Python's floor division by 2, for pad totals that may be negative.
int64_t floor_half(int64_t v) { return v >= 0 ? v / 2 : -((1 - v) / 2); }

// ---- ConvTranspose ----

// Attributes with defaults filled in for `rank` spatial dimensions (0 while unknown: then
// resolved from the weight per run).
struct ConvTransposeAttrs {
  int64_t rank = 0;
  std::string auto_pad = "NOTSET";
  int64_t group = 1;
  std::vector<int64_t> kernel, strides, dilations, pads, output_padding, output_shape;
};

void fill_conv_transpose(ConvTransposeAttrs& a, int64_t rank, const std::string& where) {
  a.rank = rank;
  if (a.strides.empty()) a.strides.assign(rank, 1);
  if (a.dilations.empty()) a.dilations.assign(rank, 1);
  if (a.pads.empty()) a.pads.assign(2 * rank, 0);
  if (a.output_padding.empty()) a.output_padding.assign(rank, 0);
  // output_shape may also hold the batch and channel sizes, which the weight decides.
  if (static_cast<int64_t>(a.output_shape.size()) == rank + 2)
    a.output_shape.erase(a.output_shape.begin(), a.output_shape.begin() + 2);
  auto check_size = [&](const std::vector<int64_t>& v, int64_t expected, const char* name) {
    EF_CHECK(static_cast<int64_t>(v.size()) == expected, where, ": ", name, " has ", v.size(),
             " values, expected ", expected, " for ", rank, " spatial dimensions");
  };
  if (!a.kernel.empty()) check_size(a.kernel, rank, "kernel_shape");
  if (!a.output_shape.empty()) check_size(a.output_shape, rank, "output_shape");
  check_size(a.strides, rank, "strides");
  check_size(a.dilations, rank, "dilations");
  check_size(a.pads, 2 * rank, "pads");
  check_size(a.output_padding, rank, "output_padding");
}

// The output is the full transposed convolution, (in - 1) * stride + (kernel - 1) * dilation + 1
// per axis, with `begin` values cut at the start and `end - output_padding` at the end (a
// negative cut extends with zeros). With output_shape, or auto_pad SAME_* (output in * stride),
// the pads are derived from the total: SAME_UPPER puts the odd value at the end, otherwise the
// beginning takes it. ATen's transposed convolution takes symmetric cuts whose output padding is
// below the stride or dilation; other cuts pad or crop its full output.
at::Tensor conv_transpose_forward(const ConvTransposeAttrs& a, const at::Tensor& x,
                                  const at::Tensor& w, const at::Tensor& b,
                                  const std::string& where) {
  const int64_t rank = a.rank;
  EF_CHECK(x.dim() == rank + 2 && w.dim() == rank + 2, where, ": input shape ", x.sizes(),
           " and weight shape ", w.sizes(), " do not match ", rank, " spatial dimensions");
  if (!a.kernel.empty())
    EF_CHECK(w.sizes().slice(2) == at::IntArrayRef(a.kernel), where, ": kernel_shape ",
             at::IntArrayRef(a.kernel), " does not match the weight shape ", w.sizes());
  const bool same = a.auto_pad == "SAME_UPPER" || a.auto_pad == "SAME_LOWER";
  std::vector<int64_t> cut_begin(rank), cut_end(rank);
  for (int64_t i = 0; i < rank; ++i) {
    const int64_t full =
        (x.size(2 + i) - 1) * a.strides[i] + (w.size(2 + i) - 1) * a.dilations[i] + 1;
    int64_t begin = a.pads[i];
    int64_t end = a.pads[rank + i];
    if (!a.output_shape.empty() || same) {
      const int64_t out = a.output_shape.empty() ? x.size(2 + i) * a.strides[i] : a.output_shape[i];
      const int64_t total = full + a.output_padding[i] - out;
      begin = a.auto_pad == "SAME_UPPER" ? floor_half(total) : total - floor_half(total);
      end = total - begin;
    } else if (a.auto_pad == "VALID") {
      begin = end = 0;
    }
    cut_begin[i] = begin;
    cut_end[i] = end - a.output_padding[i];
  }
  std::vector<int64_t> aten_output_padding(rank);
  bool aten_cuts = true;
  for (int64_t i = 0; i < rank; ++i) {
    aten_output_padding[i] = cut_begin[i] - cut_end[i];
    aten_cuts = aten_cuts && cut_begin[i] >= 0 && aten_output_padding[i] >= 0 &&
                aten_output_padding[i] < std::max(a.strides[i], a.dilations[i]);
  }
  if (aten_cuts)
    return at::convolution(x, w, b, a.strides, cut_begin, a.dilations, true, aten_output_padding,
                           a.group);
  const std::vector<int64_t> zeros(rank, 0);
  at::Tensor y = at::convolution(x, w, {}, a.strides, zeros, a.dilations, true, zeros, a.group);
  std::vector<int64_t> pads(2 * rank);
  for (int64_t i = 0; i < rank; ++i) {
    pads[i] = -cut_begin[i];
    pads[rank + i] = -cut_end[i];
  }
  y = at::constant_pad_nd(y, pad_nd_list(pads));
  if (!b.defined()) return y;
  std::vector<int64_t> bias_shape(rank + 2, 1);
  bias_shape[1] = -1;
  return y + b.reshape(bias_shape);
}

Kernel prepare_conv_transpose(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  ConvTransposeAttrs a;
  a.auto_pad = node.attr_string("auto_pad", "NOTSET");
  EF_CHECK(a.auto_pad == "NOTSET" || a.auto_pad == "SAME_UPPER" || a.auto_pad == "SAME_LOWER" ||
               a.auto_pad == "VALID",
           where, ": auto_pad '", a.auto_pad,
           "' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
  a.group = node.attr_int("group", 1);
  EF_CHECK(a.group >= 1, where, ": group ", a.group, " is not positive");
  a.kernel = node.attr_ints("kernel_shape", {});
  a.strides = node.attr_ints("strides", {});
  a.dilations = node.attr_ints("dilations", {});
  a.pads = node.attr_ints("pads", {});
  a.output_padding = node.attr_ints("output_padding", {});
  a.output_shape = node.attr_ints("output_shape", {});
  for (int64_t s : a.strides) EF_CHECK(s >= 1, where, ": strides value ", s, " is not positive");
  for (int64_t d : a.dilations)
    EF_CHECK(d >= 1, where, ": dilations value ", d, " is not positive");
  for (int64_t p : a.pads) EF_CHECK(p >= 0, where, ": pads value ", p, " is negative");
  for (int64_t p : a.output_padding)
    EF_CHECK(p >= 0, where, ": output_padding value ", p, " is negative");
  EF_CHECK(a.pads.size() % 2 == 0, where, ": pads has ", a.pads.size(),
           " values, expected two per spatial dimension");
  EF_CHECK(a.auto_pad == "NOTSET" ||
               std::all_of(a.pads.begin(), a.pads.end(), [](int64_t p) { return p == 0; }),
           where, ": auto_pad '", a.auto_pad, "' with explicit pads is not supported");
  const at::Tensor weight = prepared_input(node, graph, 1);
  int64_t rank = 0;
  if (weight.defined()) {
    EF_CHECK(weight.dim() >= 3 && weight.dim() <= 5, where, ": weight has shape ", weight.sizes(),
             ", expected [in_channels, out_channels / group, k1, ...] with 1 to 3 spatial "
             "dimensions");
    EF_CHECK(weight.size(0) % a.group == 0, where, ": weight has ", weight.size(0),
             " input channels, not divisible by group ", a.group);
    rank = weight.dim() - 2;
  } else if (!a.kernel.empty()) {
    rank = static_cast<int64_t>(a.kernel.size());
  }
  if (rank > 0) fill_conv_transpose(a, rank, where);
  return [a, where](const TensorList& in, TensorList& out, const KernelContext&) {
    if (a.rank > 0) {
      out[0] = conv_transpose_forward(a, in[0], in[1], optional_input(in, 2), where);
      return;
    }
    ConvTransposeAttrs filled = a;
    fill_conv_transpose(filled, in[1].dim() - 2, where);
    out[0] = conv_transpose_forward(filled, in[0], in[1], optional_input(in, 2), where);
  };
}

// Each input value is multiplied by (C_out / group) * kernel weights: the MACs of the Conv it
// transposes, [in_channels, out_channels / group, k...] over an output shaped like this input.
int64_t conv_transpose_macs(const Node&, const ValueShapes& in, const ValueShapes&) {
  const std::vector<int64_t>* x = in.at(0);
  const std::vector<int64_t>* w = in.at(1);
  if (x == nullptr || w == nullptr || w->size() < 3) return 0;
  return c10::multiply_integers(*x) * c10::multiply_integers(w->begin() + 1, w->end());
}

OpCapabilities conv_transpose_capabilities() {
  OpCapabilities c;
  c.macs = conv_transpose_macs;
  return c;
}

EF_REGISTER_OP(ConvTranspose, OpDef{"ConvTranspose", 2, 3, prepare_conv_transpose, "",
                                    conv_transpose_capabilities()});

// ---- Resize (opset 13), Upsample ----

enum class ResizeMode { kNearest, kLinear, kCubic };
enum class CoordinateMode {
  kHalfPixel,
  kPytorchHalfPixel,
  kAlignCorners,
  kAsymmetric,
  kTfCropAndResize,
  kTfHalfPixelForNn,
};
enum class NearestMode { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil };

struct ResizeAttrs {
  ResizeMode mode = ResizeMode::kNearest;
  CoordinateMode coordinates = CoordinateMode::kHalfPixel;
  NearestMode nearest = NearestMode::kRoundPreferFloor;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  double extrapolation_value = 0.0;
};

ResizeMode parse_resize_mode(const std::string& name, const std::string& where) {
  if (name == "nearest") return ResizeMode::kNearest;
  if (name == "linear") return ResizeMode::kLinear;
  if (name == "cubic") return ResizeMode::kCubic;
  throw Error(detail::concat(where, ": mode '", name, "' is not one of nearest, linear, cubic"));
}

ResizeAttrs parse_resize(const Node& node) {
  const std::string where = node.describe();
  ResizeAttrs a;
  a.mode = parse_resize_mode(node.attr_string("mode", "nearest"), where);
  const std::string coordinates = node.attr_string("coordinate_transformation_mode", "half_pixel");
  if (coordinates == "half_pixel") {
    a.coordinates = CoordinateMode::kHalfPixel;
  } else if (coordinates == "pytorch_half_pixel") {
    a.coordinates = CoordinateMode::kPytorchHalfPixel;
  } else if (coordinates == "align_corners") {
    a.coordinates = CoordinateMode::kAlignCorners;
  } else if (coordinates == "asymmetric") {
    a.coordinates = CoordinateMode::kAsymmetric;
  } else if (coordinates == "tf_crop_and_resize") {
    a.coordinates = CoordinateMode::kTfCropAndResize;
  } else if (coordinates == "tf_half_pixel_for_nn") {
    // Opset 11's mode, which models converted from opset 11 keep.
    EF_CHECK(a.mode == ResizeMode::kNearest, where,
             ": coordinate_transformation_mode 'tf_half_pixel_for_nn' is for mode nearest only");
    a.coordinates = CoordinateMode::kTfHalfPixelForNn;
  } else {
    throw Error(detail::concat(where, ": coordinate_transformation_mode '", coordinates,
                               "' is not one of half_pixel, pytorch_half_pixel, align_corners, "
                               "asymmetric, tf_crop_and_resize, tf_half_pixel_for_nn"));
  }
  const std::string nearest = node.attr_string("nearest_mode", "round_prefer_floor");
  if (nearest == "round_prefer_floor") {
    a.nearest = NearestMode::kRoundPreferFloor;
  } else if (nearest == "round_prefer_ceil") {
    a.nearest = NearestMode::kRoundPreferCeil;
  } else if (nearest == "floor") {
    a.nearest = NearestMode::kFloor;
  } else if (nearest == "ceil") {
    a.nearest = NearestMode::kCeil;
  } else {
    throw Error(detail::concat(where, ": nearest_mode '", nearest, "' is not one of ",
                               "round_prefer_floor, round_prefer_ceil, floor, ceil"));
  }
  a.cubic_a = node.attr_float("cubic_coeff_a", -0.75f);
  a.exclude_outside = node.attr_int("exclude_outside", 0) != 0;
  a.extrapolation_value = node.attr_float("extrapolation_value", 0.0f);
  return a;
}

// One axis of a resize: `scale` is the given scale (sizes: out / in) and `length` the resized
// length before rounding, scale * in, which align_corners and tf_crop_and_resize divide by as
// the ONNX reference does.
struct ResizeAxis {
  int64_t in = 0;
  int64_t out = 0;
  double scale = 1.0;
  double length = 0.0;
  double roi_start = 0.0;
  double roi_end = 1.0;
};

// The input coordinate output position `x` reads; nullopt when tf_crop_and_resize maps it
// outside the input (it then takes extrapolation_value).
std::optional<double> source_coordinate(CoordinateMode mode, const ResizeAxis& a, int64_t x) {
  switch (mode) {
    case CoordinateMode::kHalfPixel:
      return (x + 0.5) / a.scale - 0.5;
    case CoordinateMode::kPytorchHalfPixel:
      return a.length > 1 ? (x + 0.5) / a.scale - 0.5 : 0.0;
    case CoordinateMode::kAlignCorners:
      return a.length > 1 ? x * (a.in - 1) / (a.length - 1) : 0.0;
    case CoordinateMode::kAsymmetric:
      return x / a.scale;
    case CoordinateMode::kTfHalfPixelForNn:
      return (x + 0.5) / a.scale;
    case CoordinateMode::kTfCropAndResize: {
      const double span = (a.roi_end - a.roi_start) * (a.in - 1);
      const double s = a.roi_start * (a.in - 1) +
                       (a.length > 1 ? x * span / (a.length - 1) : 0.5 * span);
      if (s < 0 || s > a.in - 1) return std::nullopt;
      return s;
    }
  }
  return std::nullopt;
}

// The cubic convolution weights of the taps at base - 1 .. base + 2 for a point `ratio` past base.
std::vector<double> cubic_weights(double ratio, double A) {
  const auto inner = [A](double t) { return ((A + 2) * t - (A + 3)) * t * t + 1; };  // |t| <= 1
  const auto outer = [A](double t) { return ((A * t - 5 * A) * t + 8 * A) * t - 4 * A; };  // 1..2
  return {outer(ratio + 1), inner(ratio), inner(1 - ratio), outer(2 - ratio)};
}

// Resamples axis `axis` of `x`: each output position is a weighted sum of taps, input positions
// clamped into the axis (the edge padding of the ONNX reference). Nearest reads the position
// nearest_mode rounds the source coordinate s to. Linear reads base = ceil(s) - 1 and base + 1
// with weights 1 - r and r, r = s - base in (0, 1] (the left neighbour is preferred at whole
// coordinates); cubic also base - 1 and base + 2, and with exclude_outside the taps outside the
// input get weight 0 and the others are renormalised.
at::Tensor resize_axis(const ResizeAttrs& a, const at::Tensor& x, int64_t axis,
                       const ResizeAxis& r) {
  const int64_t taps = a.mode == ResizeMode::kNearest ? 1 : a.mode == ResizeMode::kLinear ? 2 : 4;
  std::vector<std::vector<int64_t>> index(taps, std::vector<int64_t>(r.out));
  std::vector<std::vector<double>> weight(taps, std::vector<double>(r.out));
  std::vector<int64_t> outside;
  const auto clamp = [&](double i) {
    return std::min<int64_t>(std::max<int64_t>(static_cast<int64_t>(i), 0), r.in - 1);
  };
  for (int64_t o = 0; o < r.out; ++o) {
    std::optional<double> s = source_coordinate(a.coordinates, r, o);
    if (!s) {
      outside.push_back(o);
      s = 0.0;
    }
    if (a.mode == ResizeMode::kNearest) {
      double pick = 0;
      switch (a.nearest) {
        case NearestMode::kRoundPreferFloor:
          pick = std::ceil(*s - 0.5);
          break;
        case NearestMode::kRoundPreferCeil:
          pick = std::floor(*s + 0.5);
          break;
        case NearestMode::kFloor:
          pick = std::floor(*s);
          break;
        case NearestMode::kCeil:
          pick = std::ceil(*s);
          break;
      }
      index[0][o] = clamp(pick);
      continue;
    }
    const double base = std::ceil(*s) - 1;
    const double ratio = *s - base;
    std::vector<double> w;
    double first = base;
    if (a.mode == ResizeMode::kLinear) {
      w = {1 - ratio, ratio};
    } else {
      w = cubic_weights(ratio, a.cubic_a);
      first = base - 1;
    }
    if (a.exclude_outside) {
      double sum = 0;
      for (int64_t k = 0; k < taps; ++k) {
        if (first + k < 0 || first + k > r.in - 1) w[k] = 0;
        sum += w[k];
      }
      for (double& v : w) v /= sum;
    }
    for (int64_t k = 0; k < taps; ++k) {
      index[k][o] = clamp(first + k);
      weight[k][o] = w[k];
    }
  }
  const at::TensorOptions long_options = at::TensorOptions().dtype(at::kLong);
  at::Tensor y;
  if (a.mode == ResizeMode::kNearest) {
    y = x.index_select(axis, at::tensor(index[0], long_options));
  } else {
    std::vector<int64_t> weight_shape(x.dim(), 1);
    weight_shape[axis] = r.out;
    for (int64_t k = 0; k < taps; ++k) {
      const at::Tensor term =
          x.index_select(axis, at::tensor(index[k], long_options)) *
          at::tensor(weight[k], at::TensorOptions().dtype(at::kDouble))
              .to(x.scalar_type())
              .reshape(weight_shape);
      y = k == 0 ? term : y + term;
    }
  }
  if (outside.empty()) return y;
  return at::index_fill(y, axis, at::tensor(outside, long_options), a.extrapolation_value);
}

// Whether resizing `r` leaves the axis as it is: same length and scale, and a coordinate mode
// that maps each position onto itself.
bool identity_axis(const ResizeAttrs& a, const ResizeAxis& r) {
  return r.out == r.in && r.scale == 1.0 && a.coordinates != CoordinateMode::kTfCropAndResize &&
         a.coordinates != CoordinateMode::kTfHalfPixelForNn;
}

// ATen's upsample kernels compute the ONNX formulas when only the spatial axes (from 2) change:
// linear with half_pixel (pytorch_half_pixel when no resized length is 1), or align_corners when
// every resized length is whole; cubic likewise on 2 spatial axes with A = -0.75 and no
// exclude_outside. `scales_given` passes ATen the ONNX scales (its in / out otherwise).
std::optional<at::Tensor> aten_resize(const ResizeAttrs& a, const at::Tensor& x,
                                      const std::vector<ResizeAxis>& axes, bool scales_given) {
  const int64_t spatial = x.dim() - 2;
  if (a.mode == ResizeMode::kNearest || spatial < 1 || spatial > 3 ||
      (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble) ||
      !identity_axis(a, axes[0]) || !identity_axis(a, axes[1]))
    return std::nullopt;
  if (a.mode == ResizeMode::kCubic && (spatial != 2 || a.cubic_a != -0.75 || a.exclude_outside))
    return std::nullopt;
  bool align_corners = false;
  switch (a.coordinates) {
    case CoordinateMode::kHalfPixel:
      break;
    case CoordinateMode::kPytorchHalfPixel:
      for (int64_t i = 2; i < x.dim(); ++i)
        if (axes[i].length <= 1) return std::nullopt;
      break;
    case CoordinateMode::kAlignCorners:
      for (int64_t i = 2; i < x.dim(); ++i)
        if (axes[i].length != static_cast<double>(axes[i].out)) return std::nullopt;
      align_corners = true;
      break;
    default:
      return std::nullopt;
  }
  std::vector<int64_t> size;
  std::vector<c10::optional<double>> scale;
  for (int64_t i = 2; i < x.dim(); ++i) {
    size.push_back(axes[i].out);
    scale.push_back(scales_given ? c10::optional<double>(axes[i].scale) : c10::nullopt);
  }
  if (a.mode == ResizeMode::kCubic)
    return at::upsample_bicubic2d(x, size, align_corners, scale[0], scale[1]);
  switch (spatial) {
    case 1:
      return at::upsample_linear1d(x, size, align_corners, scale[0]);
    case 2:
      return at::upsample_bilinear2d(x, size, align_corners, scale[0], scale[1]);
    default:
      return at::upsample_trilinear3d(x, size, align_corners, scale[0], scale[1], scale[2]);
  }
}

// Linear and cubic resizes of integers interpolate in double, then round and saturate.
at::Tensor to_integer(const at::Tensor& y, at::ScalarType type) {
  at::Tensor r = y.round();
  AT_DISPATCH_INTEGRAL_TYPES(type, "Resize", [&] {
    r = r.clamp(static_cast<double>(std::numeric_limits<scalar_t>::lowest()),
                static_cast<double>(std::numeric_limits<scalar_t>::max()));
  });
  return r.to(type);
}

// Resize with scales or sizes (exactly one given; an empty tensor counts as not given). With
// scales the output length is floor(scale * in). roi [starts..., ends...] is read only by
// tf_crop_and_resize. The axes are resampled one after another, which is the ONNX reference's
// nested 1-D interpolation.
at::Tensor resize_forward(const ResizeAttrs& a, const at::Tensor& x, const at::Tensor& roi,
                          const at::Tensor& scales, const at::Tensor& sizes,
                          const std::string& where) {
  const int64_t rank = x.dim();
  const bool has_scales = scales.defined() && scales.numel() > 0;
  const bool has_sizes = sizes.defined() && sizes.numel() > 0;
  EF_CHECK(has_scales != has_sizes, where, ": exactly one of scales and sizes must be given");
  std::vector<ResizeAxis> axes(rank);
  if (has_scales) {
    EF_CHECK(at::isFloatingType(scales.scalar_type()), where, ": scales has type ",
             c10::toString(scales.scalar_type()), ", expected float");
    EF_CHECK(scales.numel() == rank, where, ": scales has ", scales.numel(),
             " values for an input of rank ", rank);
    const at::Tensor s = scales.to(at::kCPU, at::kDouble).contiguous();
    for (int64_t i = 0; i < rank; ++i) {
      ResizeAxis& r = axes[i];
      r.in = x.size(i);
      r.scale = s.data_ptr<double>()[i];
      EF_CHECK(r.scale > 0, where, ": scales value ", r.scale, " is not positive");
      r.length = r.scale * r.in;
      r.out = static_cast<int64_t>(std::floor(r.length));
    }
  } else {
    const std::vector<int64_t> s = to_int64s(sizes, where, "sizes");
    EF_CHECK(static_cast<int64_t>(s.size()) == rank, where, ": sizes has ", s.size(),
             " values for an input of rank ", rank);
    for (int64_t i = 0; i < rank; ++i) {
      ResizeAxis& r = axes[i];
      r.in = x.size(i);
      r.out = s[i];
      EF_CHECK(r.out >= 0, where, ": sizes value ", r.out, " is negative");
      EF_CHECK(r.in > 0 || r.out == 0, where, ": cannot resize an empty axis to ", r.out);
      r.scale = r.in > 0 ? static_cast<double>(r.out) / r.in : 1.0;
      r.length = static_cast<double>(r.out);
    }
  }
  if (a.coordinates == CoordinateMode::kTfCropAndResize) {
    EF_CHECK(roi.defined() && roi.numel() == 2 * rank, where,
             ": tf_crop_and_resize needs roi with ", 2 * rank, " values, got ",
             roi.defined() ? roi.numel() : 0);
    const at::Tensor v = roi.to(at::kCPU, at::kDouble).contiguous();
    for (int64_t i = 0; i < rank; ++i) {
      axes[i].roi_start = v.data_ptr<double>()[i];
      axes[i].roi_end = v.data_ptr<double>()[rank + i];
    }
  }
  if (std::optional<at::Tensor> y = aten_resize(a, x, axes, has_scales)) return *y;
  const bool integer = !at::isFloatingType(x.scalar_type()) && a.mode != ResizeMode::kNearest;
  at::Tensor y = integer ? x.to(at::kDouble) : x;
  for (int64_t i = 0; i < rank; ++i) {
    if (!identity_axis(a, axes[i])) y = resize_axis(a, y, i, axes[i]);
  }
  return integer ? to_integer(y, x.scalar_type()) : y;
}

Kernel prepare_resize(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  const ResizeAttrs a = parse_resize(node);
  const InputValue roi = InputValue::of(node, graph, 1);
  const InputValue scales = InputValue::of(node, graph, 2);
  const InputValue sizes = InputValue::of(node, graph, 3);
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = resize_forward(a, in[0], roi.get(in), scales.get(in), sizes.get(in), where);
  };
}

// Upsample (deprecated since opset 10) runs as the Resize that loading converts it to: its mode
// and scales, the other attributes at Resize's defaults (half_pixel coordinates).
Kernel prepare_upsample(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  ResizeAttrs a;
  a.mode = parse_resize_mode(node.attr_string("mode", "nearest"), where);
  EF_CHECK(a.mode != ResizeMode::kCubic, where, ": mode 'cubic' is not an Upsample mode");
  const InputValue scales = InputValue::of(node, graph, 1);
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    out[0] = resize_forward(a, in[0], {}, scales.get(in), {}, where);
  };
}

EF_REGISTER_OP(Resize, OpDef{"Resize", 1, 4, prepare_resize});
EF_REGISTER_OP(Upsample, OpDef{"Upsample", 2, 2, prepare_upsample});

// ---- Pad (opset 13) ----

enum class PadMode { kConstant, kReflect, kEdge };

// The source position of padded position `i` (from -begin) on an axis of `n` values: edge
// repeats the border value, reflect mirrors about it without repeating it (periodically, as
// numpy does for pads longer than the axis).
int64_t pad_source(PadMode mode, int64_t i, int64_t n) {
  if (mode == PadMode::kEdge || n == 1) return std::min(std::max<int64_t>(i, 0), n - 1);
  const int64_t period = 2 * (n - 1);
  const int64_t m = ((i % period) + period) % period;
  return m < n ? m : period - m;
}

// Pads [x1_begin, x2_begin, ..., x1_end, x2_end, ...]; negative values remove elements. Constant
// pads with constant_value (0 when omitted); reflect and edge cut the negative pads first, then
// gather the padded axes.
Kernel prepare_pad(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  const std::string mode_name = node.attr_string("mode", "constant");
  PadMode mode = PadMode::kConstant;
  if (mode_name == "reflect") {
    mode = PadMode::kReflect;
  } else if (mode_name == "edge") {
    mode = PadMode::kEdge;
  } else {
    EF_CHECK(mode_name == "constant", where, ": mode '", mode_name,
             "' is not one of constant, reflect, edge");
  }
  const InputValue pads_input = InputValue::of(node, graph, 1);
  const InputValue value_input = InputValue::of(node, graph, 2);
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    const int64_t rank = x.dim();
    const std::vector<int64_t> pads = to_int64s(pads_input.get(in), where, "pads");
    EF_CHECK(static_cast<int64_t>(pads.size()) == 2 * rank, where, ": pads has ", pads.size(),
             " values, expected ", 2 * rank, " for an input of rank ", rank);
    if (mode == PadMode::kConstant) {
      const at::Tensor& value = value_input.get(in);
      EF_CHECK(!value.defined() || value.numel() == 1, where, ": constant_value has shape ",
               value.sizes(), ", expected a scalar");
      out[0] = at::constant_pad_nd(x, pad_nd_list(pads),
                                   value.defined() ? value.reshape({}).item() : at::Scalar(0));
      return;
    }
    at::Tensor y = x;
    for (int64_t d = 0; d < rank; ++d) {
      const int64_t begin = pads[d];
      const int64_t end = pads[rank + d];
      if (begin < 0 || end < 0) {
        const int64_t start = std::max<int64_t>(-begin, 0);
        const int64_t stop = y.size(d) - std::max<int64_t>(-end, 0);
        EF_CHECK(stop >= start, where, ": pads ", at::IntArrayRef(pads), " remove more than the ",
                 y.size(d), " values of axis ", d);
        y = y.slice(d, start, stop);
      }
      const int64_t before = std::max<int64_t>(begin, 0);
      const int64_t after = std::max<int64_t>(end, 0);
      if (before == 0 && after == 0) continue;
      const int64_t n = y.size(d);
      EF_CHECK(n > 0, where, ": mode '", mode_name, "' cannot pad axis ", d, ", which is empty");
      std::vector<int64_t> index;
      index.reserve(before + n + after);
      for (int64_t i = -before; i < n + after; ++i) index.push_back(pad_source(mode, i, n));
      y = y.index_select(d, at::tensor(index, at::TensorOptions().dtype(at::kLong)));
    }
    out[0] = y;
  };
}

EF_REGISTER_OP(Pad, OpDef{"Pad", 2, 3, prepare_pad});

// ---- InstanceNormalization, MeanVarianceNormalization, LRN ----

// Each channel of each sample normalised over its spatial axes, then scaled and shifted.
Kernel prepare_instance_normalization(const Node& node, const Graph&) {
  const double epsilon = node.attr_float("epsilon", 1e-5f);
  const std::string where = node.describe();
  return [epsilon, where](const TensorList& in, TensorList& out, const KernelContext&) {
    EF_CHECK(in[0].dim() >= 3, where, ": input has shape ", in[0].sizes(),
             ", expected [N, C, D1, ...]");
    out[0] = at::instance_norm(in[0], in[1], in[2], {}, {}, true, 0.0, epsilon, false);
  };
}

// One multiply-add per element: the normalisation folded with scale and bias.
int64_t instance_normalization_macs(const Node&, const ValueShapes& in, const ValueShapes&) {
  const std::vector<int64_t>* x = in.at(0);
  return x == nullptr ? 0 : c10::multiply_integers(*x);
}

OpCapabilities instance_normalization_capabilities() {
  OpCapabilities c;
  c.macs = instance_normalization_macs;
  return c;
}

EF_REGISTER_OP(InstanceNormalization,
               OpDef{"InstanceNormalization", 3, 3, prepare_instance_normalization, "",
                     instance_normalization_capabilities()});

// (x - mean) / (std + 1e-9) over `axes` (default [0, 2, 3]), the population deviation as in the
// op's function body.
Kernel prepare_mean_variance_normalization(const Node& node, const Graph&) {
  const std::vector<int64_t> axes = node.attr_ints("axes", {0, 2, 3});
  const std::string where = node.describe();
  return [axes, where](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    std::vector<int64_t> dims = axes;
    for (int64_t& d : dims) d = normalize_axis(d, x.dim(), where, "axes value");
    auto [var, mean] = at::var_mean(x, dims, false, true);
    out[0] = (x - mean) / (at::sqrt(var) + 1e-9);
  };
}

EF_REGISTER_OP(MeanVarianceNormalization,
               OpDef{"MeanVarianceNormalization", 1, 1, prepare_mean_variance_normalization});

// x / (bias + alpha / size * sum of squares)^beta, the sum over channels
// c - floor((size - 1) / 2) .. c + ceil((size - 1) / 2): an average pool of the squares over a
// zero-padded channel axis.
Kernel prepare_lrn(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const int64_t size = node.attr_int("size");
  EF_CHECK(size >= 1, where, ": size ", size, " is not positive");
  const double alpha = node.attr_float("alpha", 1e-4f);
  const double beta = node.attr_float("beta", 0.75f);
  const double bias = node.attr_float("bias", 1.0f);
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    EF_CHECK(x.dim() >= 3, where, ": input has shape ", x.sizes(), ", expected [N, C, D1, ...]");
    const int64_t front = (size - 1) / 2;
    const at::Tensor squares =
        at::constant_pad_nd((x * x).reshape({x.size(0), 1, x.size(1), -1}),
                            {0, 0, front, size - 1 - front});
    const at::Tensor sums = at::avg_pool2d(squares, {size, 1}, {1, 1}) * static_cast<double>(size);
    out[0] = x / (sums.reshape(x.sizes()) * (alpha / size) + bias).pow(beta);
  };
}

EF_REGISTER_OP(LRN, OpDef{"LRN", 1, 1, prepare_lrn});

// ---- GlobalMaxPool ----

Kernel prepare_global_max_pool(const Node& node, const Graph&) {
  const std::string where = node.describe();
  return [where](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    EF_CHECK(x.dim() >= 3, where, ": input has shape ", x.sizes(), ", expected [N, C, D1, ...]");
    std::vector<int64_t> spatial;
    for (int64_t d = 2; d < x.dim(); ++d) spatial.push_back(d);
    out[0] = at::amax(x, spatial, true);
  };
}

EF_REGISTER_OP(GlobalMaxPool, OpDef{"GlobalMaxPool", 1, 1, prepare_global_max_pool});

// ---- DepthToSpace, SpaceToDepth ----

// [N, C, H, W] -> [N, C / b^2, H * b, W * b]. DCR reads the channels as [b, b, C / b^2], CRD
// as [C / b^2, b, b].
Kernel prepare_depth_to_space(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const int64_t b = node.attr_int("blocksize");
  EF_CHECK(b >= 1, where, ": blocksize ", b, " is not positive");
  const std::string mode = node.attr_string("mode", "DCR");
  EF_CHECK(mode == "DCR" || mode == "CRD", where, ": mode '", mode, "' is not one of DCR, CRD");
  const bool dcr = mode == "DCR";
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    EF_CHECK(x.dim() == 4 && x.size(1) % (b * b) == 0, where, ": input has shape ", x.sizes(),
             ", expected [N, C, H, W] with C divisible by blocksize^2 = ", b * b);
    const int64_t n = x.size(0), c = x.size(1) / (b * b), h = x.size(2), w = x.size(3);
    const at::Tensor y = dcr ? x.reshape({n, b, b, c, h, w}).permute({0, 3, 4, 1, 5, 2})
                             : x.reshape({n, c, b, b, h, w}).permute({0, 1, 4, 2, 5, 3});
    out[0] = y.reshape({n, c, h * b, w * b});
  };
}

// [N, C, H, W] -> [N, C * b^2, H / b, W / b], the channels as [b, b, C] (DepthToSpace's DCR
// inverse).
Kernel prepare_space_to_depth(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const int64_t b = node.attr_int("blocksize");
  EF_CHECK(b >= 1, where, ": blocksize ", b, " is not positive");
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    EF_CHECK(x.dim() == 4 && x.size(2) % b == 0 && x.size(3) % b == 0, where, ": input has shape ",
             x.sizes(), ", expected [N, C, H, W] with H and W divisible by blocksize ", b);
    const int64_t n = x.size(0), c = x.size(1), h = x.size(2) / b, w = x.size(3) / b;
    out[0] = x.reshape({n, c, h, b, w, b})
                 .permute({0, 3, 5, 1, 2, 4})
                 .reshape({n, c * b * b, h, w});
  };
}

EF_REGISTER_OP(DepthToSpace, OpDef{"DepthToSpace", 1, 1, prepare_depth_to_space});
EF_REGISTER_OP(SpaceToDepth, OpDef{"SpaceToDepth", 1, 1, prepare_space_to_depth});

// ---- GridSample (opset 16) ----

// Samples [N, C, H, W] at the normalised (x, y) of grid [N, H_out, W_out, 2], which is
// at::grid_sampler's contract.
Kernel prepare_grid_sample(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const std::string mode = node.attr_string("mode", "bilinear");
  const std::string padding = node.attr_string("padding_mode", "zeros");
  const bool align_corners = node.attr_int("align_corners", 0) != 0;
  int64_t interpolation = 0;
  if (mode == "nearest") {
    interpolation = 1;
  } else if (mode == "bicubic") {
    interpolation = 2;
  } else {
    EF_CHECK(mode == "bilinear", where, ": mode '", mode,
             "' is not one of bilinear, nearest, bicubic");
  }
  int64_t padding_mode = 0;
  if (padding == "border") {
    padding_mode = 1;
  } else if (padding == "reflection") {
    padding_mode = 2;
  } else {
    EF_CHECK(padding == "zeros", where, ": padding_mode '", padding,
             "' is not one of zeros, border, reflection");
  }
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    const at::Tensor& grid = in[1];
    EF_CHECK(x.dim() == 4 && grid.dim() == 4 && grid.size(3) == 2, where, ": input shape ",
             x.sizes(), " and grid shape ", grid.sizes(),
             ", expected [N, C, H, W] and [N, H_out, W_out, 2]");
    out[0] = at::grid_sampler(x, grid.to(x.scalar_type()), interpolation, padding_mode,
                              align_corners);
  };
}

EF_REGISTER_OP(GridSample, OpDef{"GridSample", 2, 2, prepare_grid_sample});

// ---- RoiAlign (opset 16) ----

struct RoiAlignAttrs {
  bool half_pixel = true;
  bool max = false;
  int64_t height = 1;
  int64_t width = 1;
  int64_t sampling_ratio = 0;
  double spatial_scale = 1.0;
};

// The bilinear taps of one RoI axis: for each output bin, `grid` sample points; each point reads
// positions `low` and `high` with weights (0 for a point beyond the border by more than one).
struct RoiSamples {
  int64_t grid = 0;
  std::vector<int64_t> low, high;
  std::vector<double> w_low, w_high;
};

// The adaptive sampling grid's largest side: ceil(box side / output side) points a bin.
constexpr double kMaxRoiGrid = 4096;

RoiSamples roi_samples(double start, double extent, int64_t bins, int64_t sampling_ratio,
                       int64_t size) {
  RoiSamples s;
  // Boxes are data: a NaN, an infinity or a box thousands of times the feature map would make
  // the adaptive grid's size (and the float-to-integer conversions below) undefined.
  EF_CHECK(std::isfinite(start) && std::isfinite(extent), "RoiAlign: a region of interest at ",
           start, " spanning ", extent, " is not finite");
  const double bin = extent / bins;
  EF_CHECK(sampling_ratio > 0 || bin <= kMaxRoiGrid, "RoiAlign: a region of interest spanning ",
           extent, " takes ", std::ceil(bin), " samples a bin side, more than ", kMaxRoiGrid);
  // A box of negative extent (half_pixel keeps it) samples nothing: zeros, as before.
  s.grid = sampling_ratio > 0 ? sampling_ratio
           : bin > 0          ? static_cast<int64_t>(std::ceil(bin))
                              : 0;
  for (int64_t b = 0; b < bins; ++b) {
    for (int64_t i = 0; i < s.grid; ++i) {
      double v = start + b * bin + (i + 0.5) * bin / s.grid;
      if (v < -1.0 || v > size) {
        s.low.push_back(0);
        s.high.push_back(0);
        s.w_low.push_back(0);
        s.w_high.push_back(0);
        continue;
      }
      v = std::max(v, 0.0);
      int64_t low = static_cast<int64_t>(v);
      int64_t high = low + 1;
      if (low >= size - 1) {
        low = high = size - 1;
        v = static_cast<double>(low);
      }
      s.low.push_back(low);
      s.high.push_back(high);
      s.w_low.push_back(1 - (v - low));
      s.w_high.push_back(v - low);
    }
  }
  return s;
}

// One RoI of `features` [C, H, W] pooled to [C, height, width]. avg: the mean of the bilinear
// samples of each bin, which separates into [height, H] and [width, W] matrices. max: the
// largest weighted corner value of any sample (the ONNX reference's definition).
at::Tensor roi_align_one(const RoiAlignAttrs& a, const at::Tensor& features, const double* roi) {
  const double offset = a.half_pixel ? 0.5 : 0.0;
  const double x0 = roi[0] * a.spatial_scale - offset;
  const double y0 = roi[1] * a.spatial_scale - offset;
  double w = roi[2] * a.spatial_scale - offset - x0;
  double h = roi[3] * a.spatial_scale - offset - y0;
  if (!a.half_pixel) {  // malformed RoIs are forced to 1 x 1
    w = std::max(w, 1.0);
    h = std::max(h, 1.0);
  }
  const RoiSamples ys = roi_samples(y0, h, a.height, a.sampling_ratio, features.size(1));
  const RoiSamples xs = roi_samples(x0, w, a.width, a.sampling_ratio, features.size(2));
  const at::TensorOptions options = features.options();
  const at::TensorOptions long_options = at::TensorOptions().dtype(at::kLong);
  const auto weights = [&](const std::vector<double>& v) {
    return at::tensor(v, at::TensorOptions().dtype(at::kDouble)).to(options.dtype());
  };
  if (ys.grid * xs.grid == 0)
    return at::zeros({features.size(0), a.height, a.width}, options);
  if (!a.max) {
    const auto matrix = [&](const RoiSamples& s, int64_t bins, int64_t size) {
      const at::Tensor rows = at::arange(bins, long_options).repeat_interleave(s.grid);
      at::Tensor m = at::zeros({bins * size}, options);
      m = m.index_add(0, rows * size + at::tensor(s.low, long_options), weights(s.w_low));
      m = m.index_add(0, rows * size + at::tensor(s.high, long_options), weights(s.w_high));
      return m.reshape({bins, size});
    };
    const at::Tensor ay = matrix(ys, a.height, features.size(1));
    const at::Tensor ax = matrix(xs, a.width, features.size(2));
    return at::matmul(at::matmul(ay, features), ax.t()) /
           static_cast<double>(ys.grid * xs.grid);
  }
  const auto corner = [&](const std::vector<int64_t>& y, const std::vector<double>& wy,
                          const std::vector<int64_t>& x, const std::vector<double>& wx) {
    return features.index_select(1, at::tensor(y, long_options))
               .index_select(2, at::tensor(x, long_options)) *
           weights(wy).unsqueeze(1) * weights(wx).unsqueeze(0);
  };
  const at::Tensor values =
      at::maximum(at::maximum(corner(ys.low, ys.w_low, xs.low, xs.w_low),
                              corner(ys.low, ys.w_low, xs.high, xs.w_high)),
                  at::maximum(corner(ys.high, ys.w_high, xs.low, xs.w_low),
                              corner(ys.high, ys.w_high, xs.high, xs.w_high)));
  return at::amax(values.reshape({features.size(0), a.height, ys.grid, a.width, xs.grid}), {2, 4});
}

// X [N, C, H, W], rois [R, 4] as (x1, y1, x2, y2) in input coordinates scaled by spatial_scale,
// batch_indices [R] -> [R, C, output_height, output_width]. half_pixel shifts the RoI by half a
// pixel (output_half_pixel, the pre-opset-16 behaviour, does not); sampling_ratio 0 takes
// ceil(RoI extent / bins) samples per bin and axis.
Kernel prepare_roi_align(const Node& node, const Graph&) {
  const std::string where = node.describe();
  RoiAlignAttrs a;
  const std::string coordinates = node.attr_string("coordinate_transformation_mode", "half_pixel");
  EF_CHECK(coordinates == "half_pixel" || coordinates == "output_half_pixel", where,
           ": coordinate_transformation_mode '", coordinates,
           "' is not one of half_pixel, output_half_pixel");
  a.half_pixel = coordinates == "half_pixel";
  const std::string mode = node.attr_string("mode", "avg");
  EF_CHECK(mode == "avg" || mode == "max", where, ": mode '", mode, "' is not one of avg, max");
  a.max = mode == "max";
  a.height = node.attr_int("output_height", 1);
  a.width = node.attr_int("output_width", 1);
  EF_CHECK(a.height >= 1 && a.width >= 1, where, ": output_height ", a.height,
           " and output_width ", a.width, " must be positive");
  a.sampling_ratio = node.attr_int("sampling_ratio", 0);
  EF_CHECK(a.sampling_ratio >= 0 && a.sampling_ratio <= kMaxRoiGrid, where, ": sampling_ratio ",
           a.sampling_ratio, " is not in 0..", kMaxRoiGrid);
  a.spatial_scale = node.attr_float("spatial_scale", 1.0f);
  return [a, where](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    EF_CHECK(x.dim() == 4, where, ": input has shape ", x.sizes(), ", expected [N, C, H, W]");
    EF_CHECK(in[1].dim() == 2 && in[1].size(1) == 4, where, ": rois has shape ", in[1].sizes(),
             ", expected [num_rois, 4]");
    const at::Tensor rois = in[1].to(at::kCPU, at::kDouble).contiguous();
    const std::vector<int64_t> batch = to_int64s(in[2], where, "batch_indices");
    EF_CHECK(static_cast<int64_t>(batch.size()) == rois.size(0), where, ": batch_indices has ",
             batch.size(), " values for ", rois.size(0), " rois");
    std::vector<at::Tensor> pooled;
    for (int64_t r = 0; r < rois.size(0); ++r) {
      EF_CHECK(batch[r] >= 0 && batch[r] < x.size(0), where, ": batch index ", batch[r],
               " is out of range for a batch of ", x.size(0));
      pooled.push_back(roi_align_one(a, x[batch[r]], rois.data_ptr<double>() + 4 * r));
    }
    out[0] = pooled.empty() ? at::empty({0, x.size(1), a.height, a.width}, x.options())
                            : at::stack(pooled);
  };
}

EF_REGISTER_OP(RoiAlign, OpDef{"RoiAlign", 3, 3, prepare_roi_align});

// ---- MaxUnpool ----

// Scatters X to the flat positions of indices I (over the whole [N, C, spatial...] tensor, as
// MaxPool's Indices output gives them) in the shape the pooling attributes infer,
// (in - 1) * stride + kernel - pad_begin - pad_end; output_shape, when given, zero-pads that
// at the end, as the ONNX reference does.
Kernel prepare_max_unpool(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  const std::vector<int64_t> kernel = node.attr_ints("kernel_shape");
  const int64_t rank = static_cast<int64_t>(kernel.size());
  const std::vector<int64_t> strides = node.attr_ints("strides", std::vector<int64_t>(rank, 1));
  const std::vector<int64_t> pads = node.attr_ints("pads", std::vector<int64_t>(2 * rank, 0));
  EF_CHECK(static_cast<int64_t>(strides.size()) == rank &&
               static_cast<int64_t>(pads.size()) == 2 * rank,
           where, ": strides and pads have ", strides.size(), " and ", pads.size(),
           " values, expected ", rank, " and ", 2 * rank, " for kernel_shape ",
           at::IntArrayRef(kernel));
  const InputValue output_shape = InputValue::of(node, graph, 2);
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor& x = in[0];
    const at::Tensor& indices = in[1];
    EF_CHECK(x.dim() == rank + 2 && indices.sizes() == x.sizes(), where, ": input shape ",
             x.sizes(), " and indices shape ", indices.sizes(), " do not match kernel_shape ",
             at::IntArrayRef(kernel));
    std::vector<int64_t> shape = {x.size(0), x.size(1)};
    for (int64_t i = 0; i < rank; ++i)
      shape.push_back((x.size(2 + i) - 1) * strides[i] + kernel[i] - pads[i] - pads[rank + i]);
    at::Tensor y = at::zeros({c10::multiply_integers(shape)}, x.options())
                       .scatter(0, indices.reshape({-1}).to(at::kLong), x.reshape({-1}))
                       .reshape(shape);
    const at::Tensor& requested = output_shape.get(in);
    if (requested.defined()) {
      const std::vector<int64_t> target = to_int64s(requested, where, "output_shape");
      EF_CHECK(static_cast<int64_t>(target.size()) == rank + 2, where, ": output_shape ",
               at::IntArrayRef(target), " does not have rank ", rank + 2);
      std::vector<int64_t> pad(2 * (rank + 2), 0);
      for (int64_t d = 0; d < rank + 2; ++d) {
        EF_CHECK(target[d] >= shape[d] && (d >= 2 || target[d] == shape[d]), where,
                 ": output_shape ", at::IntArrayRef(target), " does not hold the unpooled shape ",
                 at::IntArrayRef(shape));
        pad[rank + 2 + d] = target[d] - shape[d];
      }
      y = at::constant_pad_nd(y, pad_nd_list(pad));
    }
    out[0] = y;
  };
}

EF_REGISTER_OP(MaxUnpool, OpDef{"MaxUnpool", 2, 3, prepare_max_unpool});

// ---- NonMaxSuppression ----

struct Box {
  double y1, x1, y2, x2;
};

// A box from its 4 values: [y1, x1, y2, x2] with the corners in either order, or with
// center_point_box [x_center, y_center, width, height].
Box read_box(const double* v, bool center) {
  if (center)
    return {v[1] - v[3] / 2, v[0] - v[2] / 2, v[1] + v[3] / 2, v[0] + v[2] / 2};
  return {std::min(v[0], v[2]), std::min(v[1], v[3]), std::max(v[0], v[2]),
          std::max(v[1], v[3])};
}

// Whether IoU(a, b) > threshold; boxes without area or overlap never suppress each other.
bool suppresses(const Box& a, const Box& b, double threshold) {
  const double h = std::min(a.y2, b.y2) - std::max(a.y1, b.y1);
  const double w = std::min(a.x2, b.x2) - std::max(a.x1, b.x1);
  if (h <= 0 || w <= 0) return false;
  const double area_a = (a.y2 - a.y1) * (a.x2 - a.x1);
  const double area_b = (b.y2 - b.y1) * (b.x2 - b.x1);
  if (area_a <= 0 || area_b <= 0) return false;
  const double intersection = h * w;
  return intersection / (area_a + area_b - intersection) > threshold;
}

// boxes [B, N, 4], scores [B, C, N] -> selected [K, 3] int64 of (batch, class, box). Per batch
// and class, boxes with a score above score_threshold are taken greedily by descending score
// (ties by index), skipping any whose IoU with a taken box exceeds iou_threshold, up to
// max_output_boxes_per_class (0 or omitted: none).
Kernel prepare_non_max_suppression(const Node& node, const Graph& graph) {
  const std::string where = node.describe();
  const int64_t center_point_box = node.attr_int("center_point_box", 0);
  EF_CHECK(center_point_box == 0 || center_point_box == 1, where, ": center_point_box ",
           center_point_box, " must be 0 or 1");
  const bool center = center_point_box == 1;
  const InputValue max_input = InputValue::of(node, graph, 2);
  const InputValue iou_input = InputValue::of(node, graph, 3);
  const InputValue score_input = InputValue::of(node, graph, 4);
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    EF_CHECK(in[0].dim() == 3 && in[0].size(2) == 4 && in[1].dim() == 3 &&
                 in[1].size(0) == in[0].size(0) && in[1].size(2) == in[0].size(1),
             where, ": boxes shape ", in[0].sizes(), " and scores shape ", in[1].sizes(),
             ", expected [B, N, 4] and [B, C, N]");
    // A scalar input, undefined when omitted or empty.
    const auto scalar = [&](const InputValue& v, const char* name) -> at::Tensor {
      const at::Tensor& t = v.get(in);
      if (!t.defined() || t.numel() == 0) return {};
      EF_CHECK(t.numel() == 1, where, ": ", name, " has shape ", t.sizes(), ", expected a scalar");
      return t.reshape({});
    };
    const at::Tensor max_value = scalar(max_input, "max_output_boxes_per_class");
    const at::Tensor iou_value = scalar(iou_input, "iou_threshold");
    const at::Tensor score_value = scalar(score_input, "score_threshold");
    const int64_t max_boxes = max_value.defined() ? max_value.item<int64_t>() : 0;
    const double iou_threshold = iou_value.defined() ? iou_value.item<double>() : 0.0;
    const double score_threshold = score_value.defined() ? score_value.item<double>() : 0.0;
    const at::Tensor boxes = in[0].to(at::kCPU, at::kDouble).contiguous();
    const at::Tensor scores = in[1].to(at::kCPU, at::kDouble).contiguous();
    const int64_t batches = boxes.size(0), n = boxes.size(1), classes = scores.size(1);
    std::vector<int64_t> selected;
    for (int64_t b = 0; b < batches && max_boxes > 0; ++b) {
      const double* box_data = boxes.data_ptr<double>() + b * n * 4;
      std::vector<Box> all;
      for (int64_t i = 0; i < n; ++i) all.push_back(read_box(box_data + 4 * i, center));
      for (int64_t c = 0; c < classes; ++c) {
        const double* s = scores.data_ptr<double>() + (b * classes + c) * n;
        std::vector<int64_t> order;
        for (int64_t i = 0; i < n; ++i)
          if (!score_value.defined() || s[i] > score_threshold) order.push_back(i);
        std::stable_sort(order.begin(), order.end(),
                         [s](int64_t i, int64_t j) { return s[i] > s[j]; });
        std::vector<int64_t> kept;
        for (int64_t i : order) {
          if (static_cast<int64_t>(kept.size()) >= max_boxes) break;
          bool suppressed = false;
          for (int64_t k : kept)
            suppressed = suppressed || suppresses(all[k], all[i], iou_threshold);
          if (suppressed) continue;
          kept.push_back(i);
          selected.insert(selected.end(), {b, c, i});
        }
      }
    }
    out[0] = at::tensor(selected, at::TensorOptions().dtype(at::kLong)).reshape({-1, 3});
  };
}

EF_REGISTER_OP(NonMaxSuppression, OpDef{"NonMaxSuppression", 2, 5, prepare_non_max_suppression});

}  // namespace
}  // namespace edgeforge::ops
