// Signal-processing ops (opset 17): DFT, STFT, the HannWindow, HammingWindow and BlackmanWindow
// generators, and MelWeightMatrix.
//
// ONNX carries complex values as real tensors with a last dimension of 2 (real, imaginary); a
// real signal has a last dimension of 1. The transforms run on ATen's complex FFTs in float or
// double (float16 and bfloat16 are computed in float and cast back).
#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

#include "edgeforge/error.h"
#include "edgeforge/ops.h"
#include "util.h"

namespace edgeforge::ops {
namespace {

constexpr double kPi = 3.14159265358979323846;

// The one value of a scalar (or one-element) integer input.
int64_t scalar_int(const at::Tensor& t, const std::string& where, const char* what) {
  const std::vector<int64_t> v = to_int64s(t, where, what);
  EF_CHECK(v.size() == 1, where, ": input '", what, "' has ", v.size(),
           " elements, expected a scalar");
  return v[0];
}

// A 0 or 1 attribute.
bool flag_attr(const Node& node, const char* name, int64_t fallback) {
  const int64_t v = node.attr_int(name, fallback);
  EF_CHECK(v == 0 || v == 1, node.describe(), ": ", name, " must be 0 or 1, got ", v);
  return v == 1;
}

// The signal of an ONNX [..., 1] (real) or [..., 2] (real, imaginary) tensor without its last
// dimension: real, or complex, in float or double for ATen's FFTs.
at::Tensor fft_input(const at::Tensor& x, const std::string& where) {
  EF_CHECK(at::isFloatingType(x.scalar_type()), where, ": input has type ",
           c10::toString(x.scalar_type()), ", expected a float tensor");
  EF_CHECK(x.dim() >= 2 && (x.size(-1) == 1 || x.size(-1) == 2), where, ": input has shape ",
           x.sizes(), ", expected a last dimension of 1 (real) or 2 (complex)");
  const at::Tensor v = x.scalar_type() == at::kDouble ? x : x.to(at::kFloat);
  if (x.size(-1) == 1) return v.squeeze(-1);
  return at::view_as_complex(v.contiguous());
}

// A complex result back to ONNX's [..., 2] form in the input's type.
at::Tensor fft_output(const at::Tensor& y, at::ScalarType type) {
  return at::view_as_real(y.contiguous()).to(type);
}

// DFT along `axis` (counted with the batch dimension, excluding the last one), of length
// dft_length (zero-padded or truncated) when given. inverse divides by the length, as numpy's
// ifft does. onesided keeps the first floor(n / 2) + 1 bins of the full transform (for complex
// or inverse input too, as the ONNX reference does).
Kernel prepare_dft(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const int64_t axis = node.attr_int("axis", 1);
  const bool inverse = flag_attr(node, "inverse", 0);
  const bool onesided = flag_attr(node, "onesided", 0);
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor signal = fft_input(in[0], where);
    const int64_t a = normalize_axis(axis, signal.dim(), where);
    int64_t n = signal.size(a);
    if (optional_input(in, 1).defined()) {
      n = scalar_int(in[1], where, "dft_length");
      EF_CHECK(n >= 1, where, ": dft_length ", n, " is not positive");
    }
    at::Tensor y = inverse ? at::fft_ifft(signal, n, a) : at::fft_fft(signal, n, a);
    if (onesided) y = y.narrow(a, 0, n / 2 + 1);
    out[0] = fft_output(y, in[0].scalar_type());
  };
}

// STFT of a [batch, length, 1 | 2] signal: frames of frame_length samples (or the window's
// length) every frame_step samples, each multiplied by the window when given, then a DFT;
// output [batch, frames, bins, 2] with bins = frame_length / 2 + 1 when onesided (default 1).
Kernel prepare_stft(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const bool onesided = flag_attr(node, "onesided", 1);
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const at::Tensor signal = fft_input(in[0], where);
    EF_CHECK(signal.dim() == 2, where, ": signal has shape ", in[0].sizes(),
             ", expected [batch, length, 1 or 2]");
    const int64_t step = scalar_int(in[1], where, "frame_step");
    EF_CHECK(step >= 1, where, ": frame_step ", step, " is not positive");
    const at::Tensor& window = optional_input(in, 2);
    const at::Tensor& length_input = optional_input(in, 3);
    EF_CHECK(window.defined() || length_input.defined(), where,
             ": needs a window or a frame_length");
    if (window.defined())
      EF_CHECK(window.dim() == 1, where, ": window has shape ", window.sizes(),
               ", expected rank 1");
    const int64_t length =
        length_input.defined() ? scalar_int(length_input, where, "frame_length") : window.size(0);
    EF_CHECK(!window.defined() || window.size(0) == length, where, ": window has ", window.size(0),
             " values but frame_length is ", length);
    EF_CHECK(length >= 1 && length <= signal.size(1), where, ": frame_length ", length,
             " is not in [1, ", signal.size(1), "] (the signal length)");
    at::Tensor frames = signal.unfold(1, length, step);  // [batch, frames, length]
    if (window.defined())
      frames = frames * window.to(in[0].scalar_type() == at::kDouble ? at::kDouble : at::kFloat);
    at::Tensor y = at::fft_fft(frames, c10::nullopt, -1);
    if (onesided) y = y.narrow(-1, 0, length / 2 + 1);
    out[0] = fft_output(y, in[0].scalar_type());
  };
}

// A generalized cosine window of `size` values, a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N),
// with N = size when periodic (default 1), else size - 1 (symmetric), in output_datatype.
OpDef window_op(const char* op_type, double a0, double a1, double a2) {
  PrepareFn prepare = [a0, a1, a2](const Node& node, const Graph&) -> Kernel {
    const std::string where = node.describe();
    const bool periodic = flag_attr(node, "periodic", 1);
    const at::ScalarType type = scalar_type_from_onnx(node.attr_int("output_datatype", 1), node);
    return [=](const TensorList& in, TensorList& out, const KernelContext&) {
      const int64_t size = scalar_int(in[0], where, "size");
      EF_CHECK(size >= 0, where, ": size ", size, " is negative");
      const double period = static_cast<double>(periodic ? size : size - 1);
      const at::Tensor angle = at::arange(size, at::kDouble) * (2.0 * kPi / period);
      out[0] = (a0 - a1 * at::cos(angle) + a2 * at::cos(2.0 * angle)).to(type);
    };
  };
  return OpDef{op_type, 1, 1, prepare};
}

// MelWeightMatrix [dft_length / 2 + 1, num_mel_bins]: triangular filters with peak 1 between
// num_mel_bins + 2 edges equally spaced on the mel scale mel(f) = 2595 log10(1 + f / 700) from
// lower_edge_hertz to upper_edge_hertz, each edge at DFT bin
// floor((dft_length + 1) * f / sample_rate), as the ONNX reference computes them.
Kernel prepare_mel_weight_matrix(const Node& node, const Graph&) {
  const std::string where = node.describe();
  const at::ScalarType type = scalar_type_from_onnx(node.attr_int("output_datatype", 1), node);
  return [=](const TensorList& in, TensorList& out, const KernelContext&) {
    const int64_t num_mel_bins = scalar_int(in[0], where, "num_mel_bins");
    const int64_t dft_length = scalar_int(in[1], where, "dft_length");
    const int64_t sample_rate = scalar_int(in[2], where, "sample_rate");
    EF_CHECK(num_mel_bins >= 1 && dft_length >= 1 && sample_rate >= 1, where, ": num_mel_bins ",
             num_mel_bins, ", dft_length ", dft_length, " and sample_rate ", sample_rate,
             " must be positive");
    EF_CHECK(in[3].numel() == 1 && in[4].numel() == 1, where,
             ": lower_edge_hertz and upper_edge_hertz must be scalars");
    const double lower = in[3].item<double>(), upper = in[4].item<double>();
    EF_CHECK(lower >= 0 && lower <= upper, where, ": the edges [", lower, ", ", upper,
             "] Hz are not an increasing range of non-negative frequencies");
    const int64_t bins = dft_length / 2 + 1;
    auto mel = [](double hz) { return 2595.0 * std::log10(1.0 + hz / 700.0); };
    const double low_mel = mel(lower);
    const double mel_step = (mel(upper) - low_mel) / static_cast<double>(num_mel_bins + 2);
    std::vector<int64_t> edges(static_cast<size_t>(num_mel_bins + 2));
    for (size_t i = 0; i < edges.size(); ++i) {
      const double hz =
          700.0 * (std::pow(10.0, (low_mel + static_cast<double>(i) * mel_step) / 2595.0) - 1.0);
      edges[i] = static_cast<int64_t>(
          std::floor(static_cast<double>(dft_length + 1) * hz / static_cast<double>(sample_rate)));
    }
    EF_CHECK(edges[num_mel_bins] < bins && edges[num_mel_bins + 1] <= bins, where,
             ": upper_edge_hertz ", upper, " lies above the last DFT bin (sample_rate / 2 = ",
             static_cast<double>(sample_rate) / 2.0, " Hz)");
    std::vector<double> w(static_cast<size_t>(bins * num_mel_bins), 0.0);
    auto cell = [&](int64_t bin, int64_t m) -> double& {
      return w[static_cast<size_t>(bin * num_mel_bins + m)];
    };
    for (int64_t m = 0; m < num_mel_bins; ++m) {
      const int64_t low = edges[m], center = edges[m + 1], high = edges[m + 2];
      if (center == low) {
        cell(center, m) = 1.0;
      } else {
        for (int64_t j = low; j <= center; ++j)
          cell(j, m) = static_cast<double>(j - low) / static_cast<double>(center - low);
      }
      for (int64_t j = center; j < high; ++j)
        cell(j, m) = static_cast<double>(high - j) / static_cast<double>(high - center);
    }
    out[0] = at::tensor(w, at::kDouble).reshape({bins, num_mel_bins}).to(type);
  };
}

EF_REGISTER_OP(DFT, OpDef{"DFT", 1, 2, prepare_dft});
EF_REGISTER_OP(STFT, OpDef{"STFT", 2, 4, prepare_stft});
EF_REGISTER_OP(HannWindow, window_op("HannWindow", 0.5, 0.5, 0.0));
EF_REGISTER_OP(HammingWindow, window_op("HammingWindow", 25.0 / 46.0, 21.0 / 46.0, 0.0));
EF_REGISTER_OP(BlackmanWindow, window_op("BlackmanWindow", 0.42, 0.5, 0.08));
EF_REGISTER_OP(MelWeightMatrix, OpDef{"MelWeightMatrix", 5, 5, prepare_mel_weight_matrix});

}  // namespace
}  // namespace edgeforge::ops
