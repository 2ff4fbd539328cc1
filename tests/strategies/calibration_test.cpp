// Calibration ranges on distributions whose answer is known in closed form.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "edgeforge/calibration.h"
#include "edgeforge/error.h"

using namespace edgeforge;

namespace {

RangeObserver observer(CalibrationMethod method, double percentile = 99.99) {
  CalibrationOptions o;
  o.method = method;
  o.percentile = percentile;
  return RangeObserver(o);
}

class Calibration : public ::testing::Test {
 protected:
  void SetUp() override { at::manual_seed(0); }
};

TEST_F(Calibration, MinMaxIsTheExtremesAndAlwaysHoldsZero) {
  RangeObserver obs = observer(CalibrationMethod::kMinMax);
  obs.observe(at::tensor({0.5f, 2.0f}));
  obs.observe(at::tensor({1.0f, 3.5f}).reshape({1, 2}));
  auto [lo, hi] = obs.range();
  EXPECT_EQ(lo, 0.0f);  // everything was positive; 0 is still representable
  EXPECT_EQ(hi, 3.5f);
  obs.observe(at::tensor({-1.25f}));
  EXPECT_EQ(obs.range().first, -1.25f);
  EXPECT_EQ(obs.count(), 5);
}

// The 99.9th percentile of N(0, 1) is 3.0902; of U(0, 1), 0.999.
TEST_F(Calibration, PercentileOfKnownDistributions) {
  constexpr double kTolerance = 0.03;  // a few bins of 2048 over the sample's range, plus sampling
  RangeObserver normal = observer(CalibrationMethod::kPercentile, 99.9);
  normal.observe(at::randn({1000000}));
  auto [lo, hi] = normal.range();
  EXPECT_NEAR(hi, 3.0902, kTolerance);
  EXPECT_NEAR(lo, -3.0902, kTolerance);
  RangeObserver uniform = observer(CalibrationMethod::kPercentile, 99.9);
  uniform.observe(at::rand({1000000}));
  EXPECT_NEAR(uniform.range().second, 0.999, 0.002);
  EXPECT_EQ(uniform.range().first, 0.0f);
}

// Batches that widen the range re-bin the histogram; the answer barely moves.
TEST_F(Calibration, PercentileDoesNotDependOnHowDataIsBatched) {
  at::Tensor x = at::randn({400000});
  at::Tensor sorted = std::get<0>(x.sort());
  RangeObserver whole = observer(CalibrationMethod::kPercentile, 99.0);
  RangeObserver parts = observer(CalibrationMethod::kPercentile, 99.0);
  whole.observe(x);
  // The same values in disjoint batches, middle first, so the range widens with every batch.
  parts.observe(sorted.slice(0, 150000, 250000));
  for (int64_t k = 1; k <= 3; ++k) {
    parts.observe(sorted.slice(0, 150000 - k * 50000, 200000 - k * 50000));
    parts.observe(sorted.slice(0, 200000 + k * 50000, 250000 + k * 50000));
  }
  ASSERT_EQ(parts.count(), whole.count());
  EXPECT_NEAR(parts.range().second, whole.range().second, 0.02);
  EXPECT_NEAR(parts.range().first, whole.range().first, 0.02);
}

TEST_F(Calibration, EntropyClipsRareOutliersButKeepsTheBulk) {
  at::Tensor x = at::randn({200000});
  x.slice(0, 0, 20).fill_(50.0f);  // 1 in 10,000 values far out
  RangeObserver entropy = observer(CalibrationMethod::kEntropy);
  RangeObserver minmax = observer(CalibrationMethod::kMinMax);
  entropy.observe(x);
  minmax.observe(x);
  EXPECT_EQ(minmax.range().second, 50.0f);
  const float t = entropy.range().second;
  EXPECT_LT(t, 15.0f) << "outliers should be clipped";
  EXPECT_GT(t, 3.0f) << "the normal bulk should be kept";
  // Symmetric threshold, cut to what was seen.
  EXPECT_EQ(entropy.range().first, std::max(minmax.range().first, -t));
}

TEST_F(Calibration, EntropyKeepsAUniformRangeWhole) {
  RangeObserver obs = observer(CalibrationMethod::kEntropy);
  obs.observe(at::rand({200000}));
  EXPECT_GT(obs.range().second, 0.9f);
  EXPECT_EQ(obs.range().first, 0.0f);
}

TEST_F(Calibration, EntropyThresholdOnHandMadeHistograms) {
  // A flat block of 128 bins and one far bin: at the full 1024 bins each of the 128 levels
  // covers 8 bins, the block's levels are flat and the far bin is alone in the last one, so Q
  // equals P (KL 0) and nothing is clipped. Clipping at 128 bins would fold the far bin into
  // bin 127, which Q (built without the folded values) cannot match.
  std::vector<double> hist(1024, 0.0);
  for (int k = 0; k < 128; ++k) hist[static_cast<size_t>(k)] = 100.0;
  hist[1023] = 1.0;
  EXPECT_DOUBLE_EQ(entropy_threshold(hist, 0.5), 1024 * 0.5);
  // A decaying histogram with a long sparse tail: the threshold lands inside the bulk.
  std::vector<double> decay(2048, 0.0);
  for (int k = 0; k < 2048; ++k) decay[static_cast<size_t>(k)] = 1e6 * std::exp(-k / 40.0);
  for (int k = 1000; k < 2048; k += 97) decay[static_cast<size_t>(k)] += 1.0;
  const double t = entropy_threshold(decay, 1.0);
  EXPECT_GE(t, 128.0);
  EXPECT_LT(t, 1000.0);
}

TEST_F(Calibration, BadInputIsRefusedWithItsReason) {
  auto expect = [](const std::function<void()>& fn, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "expected an error mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect([] { parse_calibration_method("kl"); }, "valid methods: minmax, percentile, entropy");
  expect([] { observer(CalibrationMethod::kPercentile, 40); }, "outside (50, 100]");
  expect([] {
    CalibrationOptions o;
    o.method = CalibrationMethod::kEntropy;
    o.bins = 64;
    RangeObserver r(o);
  }, "at least 128");
  expect([] { observer(CalibrationMethod::kMinMax).range(); }, "no values");
  expect([] {
    observer(CalibrationMethod::kMinMax)
        .observe(at::tensor({1.0f, std::numeric_limits<float>::quiet_NaN()}));
  }, "NaN");
  expect([] { observer(CalibrationMethod::kMinMax).observe(at::zeros({0})); }, "empty");
  EXPECT_EQ(parse_calibration_method("entropy"), CalibrationMethod::kEntropy);
  EXPECT_EQ(to_string(CalibrationMethod::kPercentile), "percentile");
}

}  // namespace
