// edgeforge/calibration.h: the range an activation tensor is quantized to, chosen from what it
// held on calibration data (SPTQ). Three methods:
//   minmax      the smallest and largest values seen;
//   percentile  the (100 - p)th and pth percentiles of the values seen (default p = 99.99);
//   entropy     TensorRT's KL-divergence method: the clipping threshold t of |x| whose 128-level
//               quantization loses the least information; the range is [-t, t] cut to what
//               was seen.
// Every range contains 0, so zero is exactly representable (padding, ReLU outputs).
//
//   RangeObserver obs(CalibrationOptions{CalibrationMethod::kPercentile});
//   for (const at::Tensor& batch : activations) obs.observe(batch);
//   auto [lo, hi] = obs.range();
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace edgeforge {

enum class CalibrationMethod { kMinMax, kPercentile, kEntropy };

// "minmax" | "percentile" | "entropy"; Error listing the valid names otherwise.
CalibrationMethod parse_calibration_method(const std::string& name);
std::string to_string(CalibrationMethod method);

struct CalibrationOptions {
  CalibrationMethod method = CalibrationMethod::kMinMax;
  double percentile = 99.99;  // percentile method: in (50, 100]
  int64_t bins = 2048;        // histogram bins (percentile, entropy); entropy needs >= 128
};

// Accumulates the values of one tensor over calibration batches. Histograms cover the range
// seen so far and are re-binned when a batch widens it, so memory stays `bins` per observer.
class RangeObserver {
 public:
  explicit RangeObserver(CalibrationOptions options = {});

  // Any float tensor; Error if it holds NaN or infinity, or is empty.
  void observe(const at::Tensor& values);
  // The range to quantize to, lo <= 0 <= hi; Error before any observe().
  std::pair<float, float> range() const;
  int64_t count() const { return count_; }
  float min() const { return min_; }
  float max() const { return max_; }

 private:
  struct Histogram {
    double lo = 0, hi = 0;
    std::vector<double> counts;
    void add(const at::Tensor& values, double lo, double hi, int64_t bins);
  };
  CalibrationOptions options_;
  int64_t count_ = 0;
  float min_ = 0, max_ = 0;
  Histogram signed_;    // percentile
  Histogram absolute_;  // entropy
};

// TensorRT's entropy threshold over a histogram of |x| whose bins have width `bin_width`:
// the t = i * bin_width (i >= levels) minimising KL(P || Q), P the first i bins with the rest
// folded into the last, Q those i bins quantized to `levels` levels. Exposed for tests.
double entropy_threshold(const std::vector<double>& abs_histogram, double bin_width,
                         int64_t levels = 128);

}  // namespace edgeforge
