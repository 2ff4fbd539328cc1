// The statistics of a study (edgeforge/stats.h): every test against SciPy 1.10's values in
// tests/stats/golden.json (written by tests/stats/make_golden.py), Holm and Cliff's delta by
// hand, the bootstrap's determinism and coverage, and every Error named in one line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <random>

#include "edgeforge/error.h"
#include "edgeforge/stats.h"

using edgeforge::Error;
using nlohmann::json;
namespace stats = edgeforge::stats;

namespace {

// Statistics (H, t, W, delta, quantiles) agree with SciPy/NumPy to this relative error: both
// sides compute the same sums of half-integer ranks in doubles, in different orders.
constexpr double kStatRelTolerance = 1e-9;
// p-values agree to this relative error (Boost.Math and SciPy's cephes evaluate the same
// distribution functions by different series) ...
constexpr double kPValueRelTolerance = 1e-9;
// ... or this absolute error, for p-values far below any significance level.
constexpr double kPValueAbsTolerance = 1e-12;

const json& golden() {
  static const json g = [] {
    const std::string path = std::string(EDGEFORGE_TEST_DATA_DIR) + "/../stats/golden.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path + " (run tests/stats/make_golden.py)");
    return json::parse(in);
  }();
  return g;
}

std::vector<std::vector<double>> groups_of(const json& c) {
  return c.at("groups").get<std::vector<std::vector<double>>>();
}

::testing::AssertionResult near(const char* what, double actual, double expected, double rel,
                                double abs = 0) {
  const double error = std::abs(actual - expected);
  if (error <= std::max(rel * std::abs(expected), abs) || actual == expected)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": " << actual << " vs expected " << expected
                                       << " (relative error " << error / std::abs(expected) << ")";
}

::testing::AssertionResult near_stat(const std::string& what, double actual, double expected) {
  return near(what.c_str(), actual, expected, kStatRelTolerance);
}

::testing::AssertionResult near_p(const std::string& what, double actual, double expected) {
  return near(what.c_str(), actual, expected, kPValueRelTolerance, kPValueAbsTolerance);
}

// The message of the Error `f` throws, which must be one line and contain `expected`.
template <typename F>
void expect_error(F f, const std::string& expected) {
  try {
    f();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << "one line: " << m;
    EXPECT_NE(m.find(expected), std::string::npos)
        << "'" << m << "' does not say '" << expected << "'";
    return;
  }
  ADD_FAILURE() << "no Error (expected one saying '" << expected << "')";
}

// Log-normal latencies by Box-Muller from std::mt19937_64's raw output, which the standard
// fixes bit for bit (std::lognormal_distribution is not), so the samples are the same everywhere.
std::vector<double> lognormal(size_t n, double median_ms, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const auto uniform = [&] { return (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53; };
  std::vector<double> v(n);
  for (double& x : v) {
    const double radius = std::sqrt(-2 * std::log(uniform()));
    const double z = radius * std::cos(2 * std::acos(-1.0) * uniform());
    x = median_ms * std::exp(0.3 * z);
  }
  return v;
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

TEST(Stats, GoldenFileIsFromScipy110) {
  EXPECT_EQ(golden().at("scipy"), "1.10.1");
  EXPECT_GE(golden().at("kruskal").size(), 5u);
  EXPECT_GE(golden().at("wilcoxon").size(), 7u);
}

TEST(Stats, MedianAndPercentileMatchNumpy) {
  for (const json& c : golden().at("order_statistics")) {
    const std::string name = c.at("name");
    const auto v = c.at("v").get<std::vector<double>>();
    EXPECT_TRUE(near_stat(name + " median", stats::median(v), c.at("median")));
    const auto qs = c.at("q").get<std::vector<double>>();
    const auto expected = c.at("quantile").get<std::vector<double>>();
    for (size_t i = 0; i < qs.size(); ++i)
      EXPECT_TRUE(near_stat(name + " q" + std::to_string(qs[i]), stats::percentile(v, qs[i]),
                            expected[i]));
  }
}

TEST(Stats, KruskalWallisMatchesScipy) {
  for (const json& c : golden().at("kruskal")) {
    const std::string name = c.at("name");
    const stats::KruskalResult r = stats::kruskal_wallis(groups_of(c));
    EXPECT_TRUE(near_stat(name + " H", r.h, c.at("h")));
    EXPECT_EQ(r.df, c.at("df").get<int64_t>()) << name;
    EXPECT_TRUE(near_p(name + " p", r.p, c.at("p")));
  }
}

TEST(Stats, KruskalWallisTinyPValueKeepsItsRelativeAccuracy) {
  // five_large's p is about 1e-246: the absolute tolerance would accept 0.
  const json& c = golden().at("kruskal").at(2);
  ASSERT_EQ(c.at("name"), "five_large");
  const double expected = c.at("p");
  ASSERT_LT(expected, 1e-200);
  EXPECT_TRUE(near("five_large p", stats::kruskal_wallis(groups_of(c)).p, expected,
                   kPValueRelTolerance));
}

TEST(Stats, ConoverMatchesPosthocConoverFormula) {
  for (const json& c : golden().at("kruskal")) {
    const std::string name = c.at("name");
    const std::vector<stats::PairwiseResult> pairs = stats::conover(groups_of(c));
    const json& expected = c.at("conover");
    ASSERT_EQ(pairs.size(), expected.size()) << name;
    for (size_t i = 0; i < pairs.size(); ++i) {
      const json& e = expected[i];
      const std::string pair = name + " (" + std::to_string(pairs[i].a) + "," +
                               std::to_string(pairs[i].b) + ")";
      EXPECT_EQ(pairs[i].a, e.at("a").get<size_t>()) << name << " pair " << i;
      EXPECT_EQ(pairs[i].b, e.at("b").get<size_t>()) << name << " pair " << i;
      EXPECT_TRUE(near_stat(pair + " t", pairs[i].t, e.at("t")));
      EXPECT_TRUE(near_p(pair + " p", pairs[i].p, e.at("p")));
      EXPECT_TRUE(near_p(pair + " p_holm", pairs[i].p_holm, e.at("p_holm")));
    }
  }
}

TEST(Stats, HolmMatchesReference) {
  for (const json& c : golden().at("holm")) {
    const std::string name = c.at("name");
    const std::vector<double> adjusted = stats::holm(c.at("p").get<std::vector<double>>());
    const auto expected = c.at("adjusted").get<std::vector<double>>();
    ASSERT_EQ(adjusted.size(), expected.size()) << name;
    for (size_t i = 0; i < adjusted.size(); ++i)
      EXPECT_TRUE(near_p(name + " " + std::to_string(i), adjusted[i], expected[i]));
  }
}

TEST(Stats, HolmHandWorked) {
  // Sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> 0.06 (monotone).
  const std::vector<double> adjusted = stats::holm({0.01, 0.04, 0.03, 0.005});
  ASSERT_EQ(adjusted.size(), 4u);
  EXPECT_DOUBLE_EQ(adjusted[0], 0.03);
  EXPECT_DOUBLE_EQ(adjusted[1], 0.06);
  EXPECT_DOUBLE_EQ(adjusted[2], 0.06);
  EXPECT_DOUBLE_EQ(adjusted[3], 0.02);
  EXPECT_EQ(stats::holm({0.3, 0.6}), (std::vector<double>{0.6, 0.6}));  // 0.3 * 2, max(0.6, 0.6)
  EXPECT_EQ(stats::holm({0.7, 0.9}), (std::vector<double>{1.0, 1.0}));  // capped
  EXPECT_TRUE(stats::holm({}).empty());
}

TEST(Stats, HolmIsMonotoneAndNeverBelowTheRawPValue) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0.0, 0.1);
  std::vector<double> p(40);
  for (double& x : p) x = u(rng);
  const std::vector<double> adjusted = stats::holm(p);
  std::vector<size_t> order(p.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t i, size_t j) { return p[i] < p[j]; });
  for (size_t k = 0; k < order.size(); ++k) {
    EXPECT_GE(adjusted[order[k]], p[order[k]]);
    EXPECT_LE(adjusted[order[k]], 1.0);
    if (k > 0) {
      EXPECT_GE(adjusted[order[k]], adjusted[order[k - 1]]) << "rank " << k;
    }
  }
}

TEST(Stats, CliffsDeltaMatchesPairwiseDefinition) {
  for (const json& c : golden().at("cliffs")) {
    const std::string name = c.at("name");
    const auto a = c.at("a").get<std::vector<double>>(), b = c.at("b").get<std::vector<double>>();
    EXPECT_TRUE(near_stat(name, stats::cliffs_delta(a, b), c.at("delta")));
    EXPECT_TRUE(near_stat(name + " swapped", stats::cliffs_delta(b, a),
                          -c.at("delta").get<double>()));
  }
  // Hand-worked: of the 6 pairs, a > b in (2,1), (3,1), (3,2); a < b in (1,2); ties (1,1), (2,2).
  EXPECT_DOUBLE_EQ(stats::cliffs_delta({1, 2, 3}, {1, 2}), (3.0 - 1.0) / 6.0);
}

TEST(Stats, CliffsMagnitudeThresholds) {
  EXPECT_EQ(stats::cliffs_magnitude(0.0), "negligible");
  EXPECT_EQ(stats::cliffs_magnitude(0.1469), "negligible");
  EXPECT_EQ(stats::cliffs_magnitude(-0.1469), "negligible");
  EXPECT_EQ(stats::cliffs_magnitude(0.147), "small");
  EXPECT_EQ(stats::cliffs_magnitude(-0.3299), "small");
  EXPECT_EQ(stats::cliffs_magnitude(0.33), "medium");
  EXPECT_EQ(stats::cliffs_magnitude(0.4739), "medium");
  EXPECT_EQ(stats::cliffs_magnitude(0.474), "large");
  EXPECT_EQ(stats::cliffs_magnitude(-1.0), "large");
}

TEST(Stats, McNemarMatchesBinomtest) {
  for (const json& c : golden().at("mcnemar")) {
    const std::string name = c.at("name");
    const stats::McNemarResult r = stats::mcnemar(c.at("correct_a").get<std::vector<uint8_t>>(),
                                                  c.at("correct_b").get<std::vector<uint8_t>>());
    EXPECT_EQ(r.b, c.at("b").get<int64_t>()) << name;
    EXPECT_EQ(r.c, c.at("c").get<int64_t>()) << name;
    EXPECT_TRUE(near_p(name + " p", r.p, c.at("p")));
  }
}

TEST(Stats, WilcoxonMatchesScipy110) {
  bool saw_exact_with_ties = false, saw_approx = false;
  for (const json& c : golden().at("wilcoxon")) {
    const std::string name = c.at("name");
    const stats::WilcoxonResult r = stats::wilcoxon_signed_rank(
        c.at("x").get<std::vector<double>>(), c.at("y").get<std::vector<double>>());
    EXPECT_EQ(r.n, c.at("n").get<int64_t>()) << name;
    EXPECT_EQ(r.exact, c.at("exact").get<bool>()) << name;
    EXPECT_TRUE(near_stat(name + " statistic", r.statistic, c.at("statistic")));
    EXPECT_TRUE(near_p(name + " p", r.p, c.at("p")));
    saw_exact_with_ties = saw_exact_with_ties || (r.exact && c.at("ties").get<bool>());
    saw_approx = saw_approx || !r.exact;
  }
  EXPECT_TRUE(saw_exact_with_ties) << "the golden file pins SciPy 1.10's exact table with ties";
  EXPECT_TRUE(saw_approx);
}

TEST(Stats, DegenerateInputsGiveNoEvidence) {
  const stats::KruskalResult k = stats::kruskal_wallis({{2, 2, 2}, {2, 2}});
  EXPECT_EQ(k.h, 0.0);
  EXPECT_EQ(k.df, 1);
  EXPECT_EQ(k.p, 1.0);
  for (const stats::PairwiseResult& p : stats::conover({{2, 2}, {2, 2}, {2}})) {
    EXPECT_EQ(p.t, 0.0);
    EXPECT_EQ(p.p, 1.0);
    EXPECT_EQ(p.p_holm, 1.0);
  }
  // Each group constant, the groups different: certain.
  const auto separated = stats::conover({{1, 1}, {2, 2, 2}});
  ASSERT_EQ(separated.size(), 1u);
  EXPECT_TRUE(std::isinf(separated[0].t));
  EXPECT_EQ(separated[0].p, 0.0);
  const stats::WilcoxonResult w = stats::wilcoxon_signed_rank({1, 2, 3}, {1, 2, 3});
  EXPECT_EQ(w.n, 0);
  EXPECT_EQ(w.p, 1.0);
}

TEST(Stats, BootstrapIsDeterministicForASeed) {
  const std::vector<double> v = lognormal(200, 12.0, 3);
  const stats::Interval a = stats::bootstrap_median_ci(v, 0.95, 500, 42);
  const stats::Interval b = stats::bootstrap_median_ci(v, 0.95, 500, 42);
  EXPECT_EQ(a.lo, b.lo);
  EXPECT_EQ(a.hi, b.hi);
  EXPECT_EQ(a.estimate, b.estimate);
  const stats::Interval c = stats::bootstrap_median_ci(v, 0.95, 500, 43);
  EXPECT_TRUE(c.lo != a.lo || c.hi != a.hi) << "another seed resamples differently";
}

TEST(Stats, BootstrapIntervalContainsTheMedianAndNarrowsWithMoreSamples) {
  const std::vector<double> small = lognormal(40, 12.0, 5), large = lognormal(2000, 12.0, 6);
  const stats::Interval s = stats::bootstrap_median_ci(small);
  const stats::Interval l = stats::bootstrap_median_ci(large);
  EXPECT_EQ(s.estimate, stats::median(small));
  for (const stats::Interval& ci : {s, l}) {
    EXPECT_LE(ci.lo, ci.estimate);
    EXPECT_GE(ci.hi, ci.estimate);
    EXPECT_LT(ci.lo, ci.hi);
  }
  EXPECT_LT(l.hi - l.lo, 0.5 * (s.hi - s.lo));
  // Both cover the true median, 12 ms.
  EXPECT_LE(s.lo, 12.0);
  EXPECT_GE(s.hi, 12.0);
  EXPECT_LE(l.lo, 12.0);
  EXPECT_GE(l.hi, 12.0);
  // A wider level gives a wider interval from the same resamples.
  const stats::Interval wide = stats::bootstrap_median_ci(small, 0.99);
  EXPECT_LE(wide.lo, s.lo);
  EXPECT_GE(wide.hi, s.hi);
}

TEST(Stats, BadInputsAreErrorsNamingTheProblem) {
  expect_error([] { stats::median({}); }, "median of no samples");
  expect_error([] { stats::median({1, kNaN}); }, "sample 1 is NaN");
  expect_error([] { stats::percentile({}, 0.5); }, "percentile of no samples");
  expect_error([] { stats::percentile({1, 2}, 1.5); }, "q = 1.5 is outside [0, 1]");
  expect_error([] { stats::percentile({1, 2}, -0.1); }, "q = -0.1 is outside [0, 1]");
  expect_error([] { stats::kruskal_wallis({{1, 2}}); }, "needs at least 2 groups, got 1");
  expect_error([] { stats::kruskal_wallis({{1, 2}, {}}); }, "group 1 is empty");
  expect_error([] { stats::kruskal_wallis({{1, 2}, {3, kNaN}}); }, "group 1 sample 1 is NaN");
  expect_error([] { stats::conover({}); }, "conover: needs at least 2 groups, got 0");
  expect_error([] { stats::conover({{}, {1}}); }, "conover: group 0 is empty");
  expect_error([] { stats::conover({{1}, {2}, {3}}); }, "no degrees of freedom");
  expect_error([] { stats::holm({0.5, 1.2}); }, "p-value 1 = 1.2 is outside [0, 1]");
  expect_error([] { stats::holm({kNaN}); }, "p-value 0 = nan is outside [0, 1]");
  expect_error([] { stats::cliffs_delta({}, {1}); }, "group a is empty");
  expect_error([] { stats::cliffs_delta({1}, {}); }, "group b is empty");
  expect_error([] { stats::cliffs_delta({1}, {kNaN}); }, "sample b 0 is NaN");
  expect_error([] { stats::mcnemar({1, 0}, {1}); }, "model a has 2 results and model b 1");
  expect_error([] { stats::mcnemar({}, {}); }, "mcnemar: no samples");
  expect_error([] { stats::mcnemar({1, 2}, {1, 0}); }, "sample 1 has 2, 0 (expected 1 for right");
  expect_error([] { stats::wilcoxon_signed_rank({1, 2}, {1}); }, "x has 2 samples and y 1");
  expect_error([] { stats::wilcoxon_signed_rank({}, {}); }, "no pairs");
  expect_error([] { stats::wilcoxon_signed_rank({1, kNaN}, {1, 2}); }, "pair 1");
  expect_error([] { stats::bootstrap_median_ci({}); }, "bootstrap_median_ci of no samples");
  expect_error([] { stats::bootstrap_median_ci({1, 2}, 1.0); }, "level 1 is outside (0, 1)");
  expect_error([] { stats::bootstrap_median_ci({1, 2}, 0.0); }, "level 0 is outside (0, 1)");
  expect_error([] { stats::bootstrap_median_ci({1, 2}, 0.95, 0); }, "resamples 0 must be >= 1");
}

// ---- Block bootstrap: samples taken in rounds are resampled a round at a time ----

TEST(BlockBootstrap, SplitsIntoTheGivenSizesAndRefusesSizesThatDoNotFit) {
  using namespace edgeforge::stats;
  const Blocks b = split_blocks({1, 2, 3, 4, 5}, {2, 0, 3});
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0], (std::vector<double>{1, 2}));
  EXPECT_TRUE(b[1].empty());
  EXPECT_EQ(b[2], (std::vector<double>{3, 4, 5}));
  EXPECT_THROW(split_blocks({1, 2, 3}, {2, 2}), Error);
  EXPECT_THROW(split_blocks({1, 2, 3}, {1, 1}), Error);
  EXPECT_THROW(split_blocks({1, 2, 3}, {-1, 4}), Error);
}

TEST(BlockBootstrap, TheIntervalCoversTheSpreadBetweenRoundsThatASampleBootstrapHides) {
  using namespace edgeforge::stats;
  // Five rounds of 100 samples; every round has its own level (what the machine was doing),
  // with 1% noise inside a round.
  std::mt19937_64 rng(5);
  std::normal_distribution<double> noise(0, 0.01);
  const double level[5] = {1.0, 1.3, 0.9, 1.1, 1.2};
  Blocks blocks;
  std::vector<double> all;
  for (double l : level) {
    blocks.emplace_back();
    for (int i = 0; i < 100; ++i) {
      blocks.back().push_back(10 * l * (1 + noise(rng)));
      all.push_back(blocks.back().back());
    }
  }
  const Interval per_sample = bootstrap_median_ci(all, 0.95, 2000, 1);
  const Interval per_round = block_bootstrap_median_ci(blocks, 0.95, 2000, 1);
  EXPECT_DOUBLE_EQ(per_round.estimate, median(all));
  // The sample bootstrap believes the median is known to a few percent; resampling rounds
  // shows that another moment could have given anything from about 9.5 to 12 ms.
  EXPECT_LT(per_sample.hi / per_sample.lo, 1.08);
  EXPECT_GT(per_round.hi / per_round.lo, 1.15);
  EXPECT_LE(per_round.lo, per_sample.lo);
  EXPECT_GE(per_round.hi, per_sample.hi);
}

TEST(BlockBootstrap, PairedRoundsCancelWhatTheRoundsShare) {
  using namespace edgeforge::stats;
  // b is a at half the latency in every round, whatever the round's level: every paired
  // resample gives the ratio 2 exactly.
  const double level[4] = {1.0, 1.5, 0.8, 1.2};
  Blocks a, b;
  for (double l : level) {
    a.push_back({10 * l, 11 * l, 12 * l});
    b.push_back({5 * l, 5.5 * l, 6 * l});
  }
  const std::vector<double> ratios = paired_block_bootstrap_ratio(a, b, 500, 3);
  ASSERT_EQ(ratios.size(), 500u);
  for (double r : ratios) EXPECT_NEAR(r, 2.0, 1e-12);
  EXPECT_TRUE(std::is_sorted(ratios.begin(), ratios.end()));
  // Unpaired (b's rounds in another order) the same samples give a wide spread.
  Blocks shuffled = {b[1], b[3], b[0], b[2]};
  const std::vector<double> loose = paired_block_bootstrap_ratio(a, shuffled, 500, 3);
  EXPECT_GT(quantile_of_sorted(loose, 0.975) / quantile_of_sorted(loose, 0.025), 1.2);
  EXPECT_TRUE(paired_block_bootstrap_ratio(a, {}, 10, 1).empty());
}
