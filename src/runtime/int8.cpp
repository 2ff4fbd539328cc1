#include "edgeforge/int8.h"

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

at::Tensor symmetric_channel_scales(const at::Tensor& weight) {
  EF_CHECK(weight.dim() >= 1 && weight.size(0) > 0, "int8: a weight needs output channels");
  const at::Tensor absmax = weight.detach().abs().reshape({weight.size(0), -1}).amax(1);
  return (absmax / 127.0).clamp_min(1e-12).to(at::kDouble);
}

namespace {

// `weight` [C_out, ...] in int8, symmetric per output channel with `scales`.
at::Tensor quantize_weight(const at::Tensor& weight, const at::Tensor& scales) {
  return at::quantize_per_channel(weight.detach().to(at::kFloat).contiguous(), scales,
                                  at::zeros({weight.size(0)}, at::kLong), 0, at::kQInt8);
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
    : scales_(symmetric_channel_scales(weight)), output_(output), relu_(relu) {
  EF_CHECK(weight.dim() == 4, "int8 conv: weight has rank ", weight.dim(), " (expected 4)");
  EF_CHECK(output.scale > 0, "int8 conv: output scale ", output.scale, " (expected > 0)");
  use_int8_engine();
  static const auto prepack =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("quantized::conv2d_prepack", "")
          .typed<c10::intrusive_ptr<ConvPackedParamsBase<2>>(
              at::Tensor, c10::optional<at::Tensor>, torch::List<int64_t>, torch::List<int64_t>,
              torch::List<int64_t>, int64_t)>();
  packed_ = prepack.call(quantize_weight(weight, scales_), float_bias(bias),
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
    : scales_(symmetric_channel_scales(weight)), output_(output), relu_(relu) {
  EF_CHECK(weight.dim() == 2, "int8 linear: weight has rank ", weight.dim(), " (expected 2)");
  EF_CHECK(output.scale > 0, "int8 linear: output scale ", output.scale, " (expected > 0)");
  use_int8_engine();
  static const auto prepack =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("quantized::linear_prepack", "")
          .typed<c10::intrusive_ptr<LinearPackedParamsBase>(at::Tensor,
                                                            c10::optional<at::Tensor>)>();
  packed_ = prepack.call(quantize_weight(weight, scales_), float_bias(bias));
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
