#include "edgeforge/int8.h"

#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <algorithm>
#include <mutex>

#include "edgeforge/error.h"

namespace edgeforge {

void use_int8_engine() {
  static std::once_flag once;
  std::call_once(once, [] {
    const auto& engines = at::globalContext().supportedQEngines();
    EF_CHECK(std::find(engines.begin(), engines.end(), at::QEngine::ONEDNN) != engines.end(),
             "this LibTorch has no ONEDNN quantized engine, which the int8 kernels need");
    at::globalContext().setQEngine(at::QEngine::ONEDNN);
  });
}

at::MemoryFormat int8_layout(const at::Tensor& t) {
  return t.dim() == 4 && t.is_contiguous(at::MemoryFormat::ChannelsLast) && !t.is_contiguous()
             ? at::MemoryFormat::ChannelsLast
             : at::MemoryFormat::Contiguous;
}

namespace {

// The two loops, cloned for AVX-512 and AVX2 (chosen at load by the CPU; the build targets
// baseline x86-64). Neither has a multiply followed by an add, so FMA contraction in the
// clones cannot change a result: they stay bit-exact with ONNX's arithmetic.
__attribute__((target_clones("avx512f", "avx2", "default"))) void quantize_loop(
    const float* __restrict src, uint8_t* __restrict dst, int64_t n, float scale, float zp) {
  const float lo = -zp, hi = 255.0f - zp;
  for (int64_t i = 0; i < n; ++i) {
    float v = std::min(std::max(src[i] / scale, lo), hi);  // integer bounds: clamp, then round
    // Round half to even: adding and subtracting 1.5 * 2^23 leaves the nearest integer in
    // round-to-nearest-even mode (|v| <= 255 here), and unlike nearbyint it vectorizes.
    v = (v + 12582912.0f) - 12582912.0f;
    dst[i] = static_cast<uint8_t>(static_cast<int32_t>(v + zp));
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void dequantize_loop(
    const uint8_t* __restrict src, float* __restrict dst, int64_t n, float scale, float zp) {
  for (int64_t i = 0; i < n; ++i) dst[i] = (static_cast<float>(src[i]) - zp) * scale;  // exact
}

}  // namespace

at::Tensor quantize_uint8(const at::Tensor& x_in, QuantParams params) {
  const at::MemoryFormat layout = int8_layout(x_in);
  const at::Tensor x = x_in.to(at::kFloat).contiguous(layout);
  at::Tensor q = at::_empty_affine_quantized(x.sizes(), at::device(at::kCPU).dtype(at::kQUInt8),
                                             params.scale, params.zero_point, layout);
  const float* src = x.data_ptr<float>();
  auto* dst = reinterpret_cast<uint8_t*>(q.data_ptr<c10::quint8>());
  const auto scale = static_cast<float>(params.scale);
  const auto zp = static_cast<float>(params.zero_point);
  at::parallel_for(0, x.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    quantize_loop(src + begin, dst + begin, end - begin, scale, zp);
  });
  return q;
}

at::Tensor dequantize_uint8(const at::Tensor& q_in) {
  EF_CHECK(q_in.scalar_type() == at::kQUInt8 && q_in.qscheme() == at::kPerTensorAffine,
           "dequantize: expected a quint8 tensor quantized per tensor");
  const at::MemoryFormat layout = int8_layout(q_in);
  const at::Tensor q = q_in.contiguous(layout);
  at::Tensor y = at::empty(q.sizes(), at::TensorOptions().dtype(at::kFloat), layout);
  const auto* src = reinterpret_cast<const uint8_t*>(q.data_ptr<c10::quint8>());
  float* dst = y.data_ptr<float>();
  const auto scale = static_cast<float>(q.q_scale());
  const auto zp = static_cast<float>(q.q_zero_point());
  at::parallel_for(0, q.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    dequantize_loop(src + begin, dst + begin, end - begin, scale, zp);
  });
  return y;
}

at::Tensor symmetric_scales(const at::Tensor& weight, int64_t axis, bool per_channel,
                            int64_t qmax) {
  EF_CHECK(qmax == 63 || qmax == 127, "int8: a symmetric weight range of +-", qmax,
           " (expected 63 or 127)");
  at::NoGradGuard no_grad;
  const at::Tensor w = weight.detach().to(at::kFloat);
  const float q = static_cast<float>(qmax);
  if (!per_channel) return (w.abs().max() / q).clamp_min(1e-12f).reshape({});
  EF_CHECK(w.dim() >= 1 && w.size(axis) > 0, "int8: a weight needs output channels");
  const at::Tensor m = w.movedim(axis, 0);
  return (m.abs().reshape({m.size(0), -1}).amax(1) / q).clamp_min(1e-12f);
}

at::Tensor symmetric_channel_scales(const at::Tensor& weight, int64_t qmax) {
  return symmetric_scales(weight, 0, true, qmax).to(at::kDouble);
}

int64_t weight_bits_max(int64_t bits) {
  EF_CHECK(bits == 7 || bits == 8, "weight_bits ", bits, " (expected 7 or 8)");
  return (int64_t{1} << (bits - 1)) - 1;
}

namespace {

// A float weight quantized to int8, symmetric per output channel; a weight that is already
// quantized (from a QDQ graph) is checked and kept as it is.
at::Tensor int8_weight(const at::Tensor& weight, const char* what) {
  if (!weight.is_quantized()) {
    return at::quantize_per_channel(weight.detach().to(at::kFloat).contiguous(),
                                    symmetric_channel_scales(weight),
                                    at::zeros({weight.size(0)}, at::kLong), 0, at::kQInt8);
  }
  EF_CHECK(weight.scalar_type() == at::kQInt8 &&
               weight.qscheme() == at::kPerChannelAffine && weight.q_per_channel_axis() == 0,
           what, ": a quantized weight must be qint8 per output channel (axis 0)");
  EF_CHECK(weight.q_per_channel_zero_points().eq(0).all().item<bool>(), what,
           ": weight zero points must be 0 (symmetric)");
  return weight;
}

// The float bias the prepack ops take, or none.
c10::optional<at::Tensor> float_bias(const at::Tensor& bias) {
  if (!bias.defined()) return c10::nullopt;
  return bias.detach().to(at::kFloat).contiguous();
}

}  // namespace

Int8Conv2d::Int8Conv2d(const at::Tensor& weight, const at::Tensor& bias,
                       std::vector<int64_t> stride, std::vector<int64_t> padding,
                       std::vector<int64_t> dilation, int64_t groups, QuantParams output,
                       bool relu)
    : output_(output), relu_(relu) {
  EF_CHECK(weight.dim() == 4, "int8 conv: weight has rank ", weight.dim(), " (expected 4)");
  const at::Tensor qweight = int8_weight(weight, "int8 conv");
  scales_ = qweight.q_per_channel_scales();
  EF_CHECK(output.scale > 0, "int8 conv: output scale ", output.scale, " (expected > 0)");
  use_int8_engine();
  static const auto prepack =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("quantized::conv2d_prepack", "")
          .typed<c10::intrusive_ptr<ConvPackedParamsBase<2>>(
              at::Tensor, c10::optional<at::Tensor>, torch::List<int64_t>, torch::List<int64_t>,
              torch::List<int64_t>, int64_t)>();
  packed_ = prepack.call(qweight, float_bias(bias),
                         torch::List<int64_t>(stride), torch::List<int64_t>(padding),
                         torch::List<int64_t>(dilation), groups);
}

at::Tensor Int8Conv2d::run(const at::Tensor& input) const {
  EF_CHECK(input.scalar_type() == at::kQUInt8, "int8 conv: input of type ",
           c10::toString(input.scalar_type()), " (expected quint8)");
  return relu_ ? packed_->apply_relu(input, output_.scale, output_.zero_point)
               : packed_->apply(input, output_.scale, output_.zero_point);
}

Int8Linear::Int8Linear(const at::Tensor& weight, const at::Tensor& bias, QuantParams output,
                       bool relu)
    : output_(output), relu_(relu) {
  EF_CHECK(weight.dim() == 2, "int8 linear: weight has rank ", weight.dim(), " (expected 2)");
  const at::Tensor qweight = int8_weight(weight, "int8 linear");
  scales_ = qweight.q_per_channel_scales();
  EF_CHECK(output.scale > 0, "int8 linear: output scale ", output.scale, " (expected > 0)");
  use_int8_engine();
  static const auto prepack =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("quantized::linear_prepack", "")
          .typed<c10::intrusive_ptr<LinearPackedParamsBase>(at::Tensor,
                                                            c10::optional<at::Tensor>)>();
  packed_ = prepack.call(qweight, float_bias(bias));
}

at::Tensor Int8Linear::run(const at::Tensor& input) const {
  EF_CHECK(input.scalar_type() == at::kQUInt8, "int8 linear: input of type ",
           c10::toString(input.scalar_type()), " (expected quint8)");
  return relu_ ? packed_->apply_relu(input, output_.scale, output_.zero_point)
               : packed_->apply(input, output_.scale, output_.zero_point);
}

at::Tensor Int8Linear::run_dynamic(const at::Tensor& input) const {
  EF_CHECK(input.scalar_type() == at::kFloat, "int8 linear (dynamic): input of type ",
           c10::toString(input.scalar_type()), " (expected float)");
  return relu_ ? packed_->apply_dynamic_relu(input.contiguous(), /*reduce_range=*/false)
               : packed_->apply_dynamic(input.contiguous(), /*reduce_range=*/false);
}

}  // namespace edgeforge
