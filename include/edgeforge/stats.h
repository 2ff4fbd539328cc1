// edgeforge/stats.h: the statistics of a study: order statistics, rank tests, effect sizes and
// a bootstrap interval, checked against SciPy 1.10 (tests/stats/make_golden.py).
//
// Are the strategies' latencies different, which pairs differ, and by how much?
//
//   using namespace edgeforge::stats;
//   std::vector<std::vector<double>> latency_ms = {baseline_ms, int8_ms, pruned_ms};
//   KruskalResult kw = kruskal_wallis(latency_ms);
//   if (kw.p < 0.05)
//     for (const PairwiseResult& r : conover(latency_ms))    // (0,1), (0,2), (1,2)
//       if (r.p_holm < 0.05) {
//         const double d = cliffs_delta(latency_ms[r.a], latency_ms[r.b]);
//         std::printf("%zu vs %zu: delta %.2f (%s)\n", r.a, r.b, d, cliffs_magnitude(d).c_str());
//       }
//   Interval ci = bootstrap_median_ci(int8_ms);              // estimate, lo, hi at 95 %
//
// Do two models make different mistakes on the same test samples?
//
//   std::vector<uint8_t> right_a = ..., right_b = ...;      // 1: sample i classified right
//   McNemarResult m = mcnemar(right_a, right_b);             // m.b, m.c discordant counts
//
// Every test is two-sided. The p-values come from Boost.Math's distributions. A NaN in any
// input is an Error naming the function and the position, as is every other bad input below.
// Where SciPy returns NaN or raises on a degenerate input the difference is said at the
// function.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace edgeforge::stats {

// The median (the mean of the two middle values for an even count); Error when `v` is empty.
double median(std::vector<double> v);

// The q-quantile, q in [0, 1], interpolated linearly between order statistics like numpy's
// default (`np.quantile(v, q)`); Error when `v` is empty or q is outside [0, 1].
double percentile(std::vector<double> v, double q);

struct KruskalResult {
  double h = 0;    // tie-corrected H
  int64_t df = 0;  // groups - 1
  double p = 1;    // chi-squared(df) survival function at h
};

// Kruskal-Wallis H test that all groups come from one distribution; equals
// scipy.stats.kruskal. Error when there are fewer than 2 groups or a group is empty (SciPy
// returns NaN for an empty group). All values identical: h = 0, p = 1 (SciPy raises
// "All numbers are identical").
KruskalResult kruskal_wallis(const std::vector<std::vector<double>>& groups);

struct PairwiseResult {
  size_t a = 0, b = 0;  // group indices, a < b
  double t = 0;         // |mean rank a - mean rank b| / standard error, >= 0
  double p = 1;         // two-sided, Student's t with N - k degrees of freedom
  double p_holm = 1;    // Holm-adjusted over all pairs
};

// Conover-Iman post-hoc test after Kruskal-Wallis, for every pair a < b in the order (0,1),
// (0,2), ..., (1,2), ...: t and p as scikit-posthocs' posthoc_conover (p_adjust=None) with
// ranks over all groups, the tie-corrected S^2 and H, and N - k degrees of freedom, where N
// counts all samples and k the groups. The same Errors as kruskal_wallis, and one when
// N == k (each group a single sample leaves no degrees of freedom). All values identical:
// t = 0, p = 1 (scikit-posthocs gives NaN); groups that differ but are each constant: t = inf,
// p = 0.
std::vector<PairwiseResult> conover(const std::vector<std::vector<double>>& groups);

// Holm's step-down adjustment of `p` (each in [0, 1], else Error), in the input order:
// monotone in the sorted order and capped at 1; equals statsmodels' multipletests(p,
// method="holm").
std::vector<double> holm(const std::vector<double>& p);

// Cliff's delta, P(a > b) - P(a < b) over all pairs, in [-1, 1], in O((n + m) log m) time.
// Positive when `a` tends to be larger (for latencies: `a` slower). Error when a group is empty.
double cliffs_delta(const std::vector<double>& a, const std::vector<double>& b);

// Romano et al.'s labels: |delta| < 0.147 "negligible", < 0.33 "small", < 0.474 "medium",
// else "large".
std::string cliffs_magnitude(double delta);

struct McNemarResult {
  int64_t b = 0;  // samples model a got right and model b got wrong
  int64_t c = 0;  // samples model a got wrong and model b got right
  double p = 1;
};

// Exact McNemar test: two-sided binomial test of b successes in b + c trials at 0.5, equal to
// statsmodels' mcnemar(table, exact=True) and scipy.stats.binomtest(b, b + c). b + c == 0
// gives p = 1. Each entry is 1 (right) or 0 (wrong); Error for other values, for vectors of
// different lengths and for empty vectors.
McNemarResult mcnemar(const std::vector<uint8_t>& correct_a, const std::vector<uint8_t>& correct_b);

struct WilcoxonResult {
  int64_t n = 0;         // non-zero differences (the pairs the test uses)
  double statistic = 0;  // min(W+, W-), the rank sums of positive and negative differences
  double p = 1;
  bool exact = false;    // p from the exact null distribution, else the normal approximation
};

// Wilcoxon signed-rank test of the paired differences x - y, with SciPy 1.10's defaults
// (scipy.stats.wilcoxon(x, y): zero_method "wilcox", no continuity correction, method
// "auto"), and its rule for the method, read from its source:
//  - no zero differences and at most 50 pairs: the exact distribution of W+. SciPy keeps it
//    when |differences| are tied; W+ then may end in .5 and is rounded down to a whole rank
//    sum before the table is read. This matches SciPy, though the table no longer is the exact
//    null distribution with ties.
//  - otherwise: zero differences are dropped and z = (T - n(n+1)/4) / sigma with the tie
//    correction sigma^2 = (n(n+1)(2n+1) - sum(t^3 - t)/2) / 24, p = 2 * (1 - Phi(|z|)).
// Error when the lengths differ or there are no pairs. All differences zero: n = 0,
// statistic = 0, p = 1 (SciPy raises a ValueError).
WilcoxonResult wilcoxon_signed_rank(const std::vector<double>& x, const std::vector<double>& y);

struct Interval {
  double estimate = 0, lo = 0, hi = 0;
};

// Percentile bootstrap interval of the median: the median of `samples` and the (1 - level) / 2
// and (1 + level) / 2 quantiles (as `percentile`) of the medians of `resamples` resamples drawn
// with replacement using std::mt19937_64 seeded with `seed`. The same inputs give the same
// interval on every platform. Error when `samples` is empty, level is outside (0, 1) or
// resamples < 1.
Interval bootstrap_median_ci(const std::vector<double>& samples, double level = 0.95,
                             int resamples = 2000, uint64_t seed = 1);

// Samples taken in blocks (the rounds of an interleaved measurement): `blocks[k]` are the
// samples of block k. Measurements that share a moment are not independent, so intervals
// resample whole blocks, not samples.
using Blocks = std::vector<std::vector<double>>;
// Splits `samples` into consecutive blocks of the given sizes (their sum must be its size).
Blocks split_blocks(const std::vector<double>& samples, const std::vector<int64_t>& sizes);

// Block bootstrap interval of the median: resamples blocks with replacement (`resamples`
// times, seeded) and takes the (1 - level) / 2 and (1 + level) / 2 quantiles of the medians.
Interval block_bootstrap_median_ci(const Blocks& blocks, double level = 0.95, int resamples = 2000,
                                   uint64_t seed = 1);

// Paired block bootstrap of median(a) / median(b), where block k of a and block k of b were
// measured in the same round (only the first min(|a|, |b|) blocks are used): each resample
// draws block indices with replacement and takes both medians over the same blocks. Returns
// the sorted ratios of `resamples` draws (seeded); empty when either side has no block.
std::vector<double> paired_block_bootstrap_ratio(const Blocks& a, const Blocks& b, int resamples = 2000,
                                                 uint64_t seed = 1);
// The q-quantile (0..1) of sorted values, interpolated as percentile() does.
double quantile_of_sorted(const std::vector<double>& sorted, double q);

}  // namespace edgeforge::stats
