// Training-time kernels in one vectorised pass each, with their gradients (src/ops).
//
// ATen 1.13's CPU kernels for these are slow on the training path: fake_quantize_* is a scalar
// loop calling fmin and fmax per element (18% of a text qat step), and dropout draws one
// Mersenne Twister number per element under the generator's lock (6% of a text step). These
// compute the same functions in loops the compiler vectorises (AVX2 where the CPU has it,
// chosen at run time). tests/ops/train_kernels_test.cpp checks them against ATen's.
#pragma once

#include <ATen/ATen.h>

namespace edgeforge {

// Fake quantization, as ATen's fake_quantize_per_tensor_affine computes it, bit for bit:
// y = (clamp(round(x / scale) + zero_point, lo, hi) - zero_point) * scale, rounding half to
// even, with x / scale taken as x * (1 / scale) in float. The gradient passes straight through
// where round(x / scale) + zero_point lies in [lo, hi] and is 0 elsewhere. `x` is float.
at::Tensor fake_quantize(const at::Tensor& x, float scale, float zero_point, float lo, float hi);

// The same per channel along `axis`, with scales[c] for channel c and zero point 0 (the
// symmetric weight quantization qat trains with), as fake_quantize_per_channel_affine.
at::Tensor fake_quantize_per_channel(const at::Tensor& x, const at::Tensor& scales, int64_t axis,
                                     float lo, float hi);

struct DropoutResult {
  at::Tensor output;  // x * mask / (1 - p)
  at::Tensor mask;    // bool, true where kept
};

// Training-mode dropout: each element kept with probability 1 - p (0 <= p < 1), independently,
// from a counter-based hash seeded by one draw from ATen's default CPU generator, so a seeded
// run repeats. The output's gradient is the incoming gradient * mask / (1 - p).
DropoutResult dropout(const at::Tensor& x, double p);

}  // namespace edgeforge
