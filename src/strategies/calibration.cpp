#include "edgeforge/calibration.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "edgeforge/error.h"

namespace edgeforge {

CalibrationMethod parse_calibration_method(const std::string& name) {
  if (name == "minmax") return CalibrationMethod::kMinMax;
  if (name == "percentile") return CalibrationMethod::kPercentile;
  if (name == "entropy") return CalibrationMethod::kEntropy;
  throw Error("unknown calibration method '" + name +
              "'; valid methods: minmax, percentile, entropy");
}

std::string to_string(CalibrationMethod method) {
  switch (method) {
    case CalibrationMethod::kMinMax: return "minmax";
    case CalibrationMethod::kPercentile: return "percentile";
    case CalibrationMethod::kEntropy: return "entropy";
  }
  return "?";
}

RangeObserver::RangeObserver(CalibrationOptions options) : options_(options) {
  EF_CHECK(options_.percentile > 50 && options_.percentile <= 100, "calibration percentile ",
           options_.percentile, " is outside (50, 100]");
  EF_CHECK(options_.bins >= 1, "calibration bins: ", options_.bins, " (expected >= 1)");
  EF_CHECK(options_.method != CalibrationMethod::kEntropy || options_.bins >= 128,
           "entropy calibration needs at least 128 histogram bins, got ", options_.bins);
}

// Adds `values` to a histogram of `bins` bins that must cover [lo, hi]. When that is wider
// than what the histogram covers, its counts move to the bins of the wider range that hold
// their old bins' centres (at most half a new bin of error per re-binning).
void RangeObserver::Histogram::add(const at::Tensor& values, double lo, double hi,
                                   int64_t bins) {
  if (hi <= lo) hi = lo + std::max(1e-12, std::abs(lo) * 1e-6);  // one value seen so far
  if (counts.empty()) {
    counts.assign(static_cast<size_t>(bins), 0.0);
    this->lo = lo;
    this->hi = hi;
  } else if (lo < this->lo || hi > this->hi) {
    const double new_lo = std::min(lo, this->lo), new_hi = std::max(hi, this->hi);
    const double old_width = (this->hi - this->lo) / static_cast<double>(bins);
    const double new_width = (new_hi - new_lo) / static_cast<double>(bins);
    std::vector<double> moved(static_cast<size_t>(bins), 0.0);
    for (int64_t i = 0; i < bins; ++i) {
      const double centre = this->lo + (static_cast<double>(i) + 0.5) * old_width;
      const auto j = std::clamp<int64_t>(
          static_cast<int64_t>(std::floor((centre - new_lo) / new_width)), 0, bins - 1);
      moved[static_cast<size_t>(j)] += counts[static_cast<size_t>(i)];
    }
    counts = std::move(moved);
    this->lo = new_lo;
    this->hi = new_hi;
  }
  const at::Tensor h = at::histc(values, bins, this->lo, this->hi).to(at::kDouble).contiguous();
  const double* p = h.data_ptr<double>();
  for (int64_t i = 0; i < bins; ++i) counts[static_cast<size_t>(i)] += p[i];
}

void RangeObserver::observe(const at::Tensor& values) {
  EF_CHECK(values.defined() && values.numel() > 0, "calibration: an empty tensor has no range");
  EF_CHECK(at::isFloatingType(values.scalar_type()), "calibration: values of type ",
           c10::toString(values.scalar_type()), " (expected a float tensor)");
  const at::Tensor x = values.detach().to(at::kFloat).reshape({-1});
  EF_CHECK(at::isfinite(x).all().item<bool>(),
           "calibration: the tensor holds NaN or infinite values");
  const float mn = x.min().item<float>(), mx = x.max().item<float>();
  min_ = count_ == 0 ? mn : std::min(min_, mn);
  max_ = count_ == 0 ? mx : std::max(max_, mx);
  count_ += x.numel();
  // Histograms span the whole range seen so far, 0 included.
  const double lo = std::min(0.0f, min_), hi = std::max(0.0f, max_);
  if (options_.method == CalibrationMethod::kPercentile) signed_.add(x, lo, hi, options_.bins);
  if (options_.method == CalibrationMethod::kEntropy)
    absolute_.add(x.abs(), 0.0, std::max(-lo, hi), options_.bins);
}

std::pair<float, float> RangeObserver::range() const {
  EF_CHECK(count_ > 0, "calibration: no values were observed");
  double lo = min_, hi = max_;
  if (options_.method == CalibrationMethod::kPercentile) {
    const std::vector<double>& c = signed_.counts;
    const double total = static_cast<double>(count_);
    const double width = (signed_.hi - signed_.lo) / static_cast<double>(c.size());
    const double tail = total * (100.0 - options_.percentile) / 100.0;
    // Lower bound: the left edge of the bin where the cumulative count passes the lower tail;
    // upper bound: the right edge of the bin where the count from the right passes it.
    double cum = 0;
    size_t i = 0;
    for (; i < c.size(); ++i) {
      cum += c[i];
      if (cum > tail) break;
    }
    lo = signed_.lo + static_cast<double>(std::min(i, c.size() - 1)) * width;
    cum = 0;
    size_t j = c.size();
    for (; j > 0; --j) {
      cum += c[j - 1];
      if (cum > tail) break;
    }
    hi = signed_.lo + static_cast<double>(std::max<size_t>(j, 1)) * width;
    lo = std::max(lo, static_cast<double>(min_));
    hi = std::min(hi, static_cast<double>(max_));
  } else if (options_.method == CalibrationMethod::kEntropy) {
    const double width =
        (absolute_.hi - absolute_.lo) / static_cast<double>(absolute_.counts.size());
    const double t = entropy_threshold(absolute_.counts, width);
    lo = std::max(static_cast<double>(min_), -t);
    hi = std::min(static_cast<double>(max_), t);
  }
  return {static_cast<float>(std::min(lo, 0.0)), static_cast<float>(std::max(hi, 0.0))};
}

namespace {

// KL(P || Q) of two unnormalised histograms; bins where P is 0 add nothing, bins where Q is 0
// but P is not get a tiny Q (TensorRT and ONNX Runtime smooth the same way).
double kl_divergence(const std::vector<double>& p, const std::vector<double>& q) {
  double sp = 0, sq = 0;
  for (size_t k = 0; k < p.size(); ++k) {
    sp += p[k];
    sq += q[k];
  }
  if (sp <= 0 || sq <= 0) return std::numeric_limits<double>::infinity();
  constexpr double kEps = 1e-10;
  double kl = 0;
  for (size_t k = 0; k < p.size(); ++k) {
    if (p[k] <= 0) continue;
    const double pk = p[k] / sp;
    const double qk = std::max(q[k] / sq, kEps);
    kl += pk * std::log(pk / qk);
  }
  return kl;
}

}  // namespace

double entropy_threshold(const std::vector<double>& hist, double bin_width, int64_t levels) {
  const auto n = static_cast<int64_t>(hist.size());
  EF_CHECK(levels >= 2 && n >= levels, "entropy calibration: ", n,
           " histogram bins for ", levels, " levels (expected at least as many bins)");
  double best_kl = std::numeric_limits<double>::infinity();
  int64_t best_i = n;
  std::vector<double> p, q;
  for (int64_t i = levels; i <= n; ++i) {
    // P: the first i bins, everything beyond folded into the last one (clipped values).
    p.assign(hist.begin(), hist.begin() + i);
    for (int64_t k = i; k < n; ++k) p[static_cast<size_t>(i - 1)] += hist[static_cast<size_t>(k)];
    // Q: the same i bins (without the folded outliers) merged into `levels` levels, each
    // level's count spread evenly over its non-empty bins.
    q.assign(static_cast<size_t>(i), 0.0);
    const double per_level = static_cast<double>(i) / static_cast<double>(levels);
    for (int64_t l = 0; l < levels; ++l) {
      const auto start = static_cast<int64_t>(std::floor(static_cast<double>(l) * per_level));
      const int64_t end = l == levels - 1
                              ? i
                              : static_cast<int64_t>(std::floor(static_cast<double>(l + 1) * per_level));
      double total = 0;
      int64_t nonzero = 0;
      for (int64_t k = start; k < end; ++k) {
        total += hist[static_cast<size_t>(k)];
        nonzero += hist[static_cast<size_t>(k)] > 0;
      }
      if (nonzero == 0) continue;
      for (int64_t k = start; k < end; ++k)
        if (hist[static_cast<size_t>(k)] > 0)
          q[static_cast<size_t>(k)] = total / static_cast<double>(nonzero);
    }
    const double kl = kl_divergence(p, q);
    if (kl < best_kl) {
      best_kl = kl;
      best_i = i;
    }
  }
  return static_cast<double>(best_i) * bin_width;
}

}  // namespace edgeforge
