// edgeforge/int8.h: int8 kernels for the QDQ lowering, on LibTorch's quantized ops
// with the ONEDNN engine. Debian's LibTorch has QNNPACK and ONEDNN but no FBGEMM; ONEDNN is
// the one that is fast on x86 (a 64->64 3x3 conv on 56x56: about 0.3 ms against QNNPACK's
// 9 ms, docs/runtime.md), so it is selected once, process-wide.
//
// Activations are uint8 per tensor (scale, zero point); weights int8, symmetric, per output
// channel (scale = max |w_c| / 127); bias float (quantized to int32 inside the kernel).
#pragma once

#include <ATen/ATen.h>
#include <ATen/native/quantized/PackedParams.h>

#include <cstdint>
#include <vector>

namespace edgeforge {

struct QuantParams {
  double scale = 1.0;
  int64_t zero_point = 0;
};

// float -> quint8 per tensor and back, with ONNX's QuantizeLinear / DequantizeLinear
// arithmetic (x / scale rounded half to even, plus the zero point, saturated). LibTorch's own
// quantize_per_tensor and dequantize run a scalar loop in a build without FBGEMM (about
// 0.2 ms for a 128x128 tensor); these loops vectorize.
at::Tensor quantize_uint8(const at::Tensor& x, QuantParams params);
at::Tensor dequantize_uint8(const at::Tensor& q);

// Selects the ONEDNN quantized engine (idempotent); Error if this LibTorch lacks it.
void use_int8_engine();

// Symmetric int8 scales of a weight, float: max |w| / qmax per slice along `axis` (1-D), or
// over the whole tensor when not `per_channel` (0-d); a tiny positive scale for all zeros.
// qmax is 127 for 8-bit weights, 63 for 7-bit ones (weight_bits_max).
// The one definition the QDQ writer, QAT's fake quantization and the kernels share.
at::Tensor symmetric_scales(const at::Tensor& weight, int64_t axis, bool per_channel,
                            int64_t qmax = 127);
// Per-output-channel scales of a weight [C_out, ...] (axis 0), in double as LibTorch's
// quantize_per_channel takes them.
at::Tensor symmetric_channel_scales(const at::Tensor& weight, int64_t qmax = 127);
// The largest symmetric weight value of `bits` (7 or 8): 63 or 127; Error otherwise.
int64_t weight_bits_max(int64_t bits);

// The memory layout the uint8 loops keep: channels-last for a 4-D channels-last tensor (the
// layout oneDNN's int8 convolutions work in), else contiguous.
at::MemoryFormat int8_layout(const at::Tensor& t);

// A 2-D convolution (NCHW) with its weights quantized and prepacked once. `weight` is either
// float (quantized here, symmetric per output channel) or already qint8 per output channel
// with zero points 0 (the weights of a QDQ graph, kept exactly).
class Int8Conv2d {
 public:
  Int8Conv2d(const at::Tensor& weight, const at::Tensor& bias, std::vector<int64_t> stride,
             std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups,
             QuantParams output, bool relu);
  // quint8 NCHW in, quint8 out with the output parameters.
  at::Tensor run(const at::Tensor& input) const;
  const at::Tensor& weight_scales() const { return scales_; }

 private:
  c10::intrusive_ptr<ConvPackedParamsBase<2>> packed_;
  at::Tensor scales_;
  QuantParams output_;
  bool relu_;
};

// y = x W^T + b (Gemm with transB, or MatMul by a constant W^T) with W [out, in] quantized
// and prepacked once (float or qint8 per output channel, as for Int8Conv2d). run() takes quint8 [..., in] and gives quint8 with the output
// parameters; run_dynamic() takes float, quantizes it with its own range at run time (the
// dynamic strategy) and gives float.
class Int8Linear {
 public:
  Int8Linear(const at::Tensor& weight, const at::Tensor& bias, QuantParams output, bool relu);
  at::Tensor run(const at::Tensor& input) const;
  at::Tensor run_dynamic(const at::Tensor& input) const;
  const at::Tensor& weight_scales() const { return scales_; }

 private:
  c10::intrusive_ptr<LinearPackedParamsBase> packed_;
  at::Tensor scales_;
  QuantParams output_;
  bool relu_;
};

}  // namespace edgeforge
