// The statistics of a study (edgeforge/stats.h), with distributions from Boost.Math.
#include "edgeforge/stats.h"

#include <boost/math/distributions/binomial.hpp>
#include <boost/math/distributions/chi_squared.hpp>
#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/students_t.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "edgeforge/error.h"

namespace edgeforge::stats {

namespace {

void check_no_nan(const std::vector<double>& v, const char* fn, const char* what) {
  for (size_t i = 0; i < v.size(); ++i)
    EF_CHECK(!std::isnan(v[i]), "stats: ", fn, ": ", what, " ", i, " is NaN");
}

void check_groups(const std::vector<std::vector<double>>& groups, const char* fn) {
  EF_CHECK(groups.size() >= 2, "stats: ", fn, ": needs at least 2 groups, got ", groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    EF_CHECK(!groups[g].empty(), "stats: ", fn, ": group ", g, " is empty");
    for (size_t i = 0; i < groups[g].size(); ++i)
      EF_CHECK(!std::isnan(groups[g][i]), "stats: ", fn, ": group ", g, " sample ", i, " is NaN");
  }
}

// Average ranks (1-based, ties share the mean of their ranks) as scipy.stats.rankdata, and
// the size of every run of tied values longer than one in `tie_sizes`.
std::vector<double> average_ranks(const std::vector<double>& v, std::vector<double>* tie_sizes) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t i, size_t j) { return v[i] < v[j]; });
  std::vector<double> ranks(v.size());
  for (size_t begin = 0; begin < order.size();) {
    size_t end = begin + 1;
    while (end < order.size() && v[order[end]] == v[order[begin]]) ++end;
    // Ranks begin+1 .. end share their mean.
    const double rank = 0.5 * static_cast<double>(begin + 1 + end);
    for (size_t i = begin; i < end; ++i) ranks[order[i]] = rank;
    if (end - begin > 1 && tie_sizes != nullptr)
      tie_sizes->push_back(static_cast<double>(end - begin));
    begin = end;
  }
  return ranks;
}

// sum(t^3 - t) over the runs of ties.
double tie_sum(const std::vector<double>& tie_sizes) {
  double sum = 0;
  for (double t : tie_sizes) sum += t * t * t - t;
  return sum;
}

// The pooled ranks of all groups and what Kruskal-Wallis and Conover share.
struct RankedGroups {
  double n = 0;                         // all samples
  std::vector<double> ranks;            // group after group
  std::vector<double> rank_sums, sizes;
  double ties = 1;                      // 1 - sum(t^3 - t) / (N^3 - N)
  double h = 0;                         // tie-corrected H (NaN when all values are identical)
};

RankedGroups rank_groups(const std::vector<std::vector<double>>& groups) {
  RankedGroups r;
  std::vector<double> all;
  for (const auto& g : groups) all.insert(all.end(), g.begin(), g.end());
  std::vector<double> tie_sizes;
  r.ranks = average_ranks(all, &tie_sizes);
  r.n = static_cast<double>(all.size());
  size_t at = 0;
  for (const auto& g : groups) {
    double sum = 0;
    for (size_t i = 0; i < g.size(); ++i) sum += r.ranks[at + i];
    at += g.size();
    r.rank_sums.push_back(sum);
    r.sizes.push_back(static_cast<double>(g.size()));
  }
  const double n = r.n;
  r.ties = n >= 2 ? 1.0 - tie_sum(tie_sizes) / (n * n * n - n) : 1.0;
  // The order of operations follows scipy.stats.kruskal.
  double ssbn = 0;
  for (size_t g = 0; g < groups.size(); ++g) ssbn += r.rank_sums[g] * r.rank_sums[g] / r.sizes[g];
  const double h = 12.0 / (n * (n + 1)) * ssbn - 3 * (n + 1);
  r.h = r.ties > 0 ? h / r.ties : std::numeric_limits<double>::quiet_NaN();
  return r;
}

// The median of `v`, reordering it.
double median_in_place(std::vector<double>& v) {
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  const double upper = v[mid];
  if (v.size() % 2 == 1) return upper;
  const double lower = *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid));
  return (lower + upper) / 2;
}

// numpy's linear quantile of sorted `v`, including its two-sided interpolation (numpy's _lerp),
// so that results agree to the last bit.
double quantile_sorted(const std::vector<double>& v, double q) {
  const double index = static_cast<double>(v.size() - 1) * q;
  if (index >= static_cast<double>(v.size() - 1)) return v.back();
  const double below = std::floor(index);
  const size_t i = static_cast<size_t>(below);
  const double a = v[i], b = v[i + 1], t = index - below;
  const double diff = b - a;
  return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
}

// An index in [0, n) from `rng` without modulo bias, the same on every standard library
// (std::uniform_int_distribution is not specified bit for bit).
uint64_t uniform_index(std::mt19937_64& rng, uint64_t n) {
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  const uint64_t limit = max - max % n;
  uint64_t x = rng();
  while (x >= limit) x = rng();
  return x % n;
}

}  // namespace

double median(std::vector<double> v) {
  EF_CHECK(!v.empty(), "stats: median of no samples");
  check_no_nan(v, "median", "sample");
  return median_in_place(v);
}

double percentile(std::vector<double> v, double q) {
  EF_CHECK(!v.empty(), "stats: percentile of no samples");
  EF_CHECK(q >= 0 && q <= 1, "stats: percentile: q = ", q, " is outside [0, 1]");
  check_no_nan(v, "percentile", "sample");
  std::sort(v.begin(), v.end());
  return quantile_sorted(v, q);
}

KruskalResult kruskal_wallis(const std::vector<std::vector<double>>& groups) {
  check_groups(groups, "kruskal_wallis");
  const RankedGroups r = rank_groups(groups);
  KruskalResult result;
  result.df = static_cast<int64_t>(groups.size()) - 1;
  if (std::isnan(r.h)) return result;  // all values identical: no evidence, h = 0, p = 1
  // Rounding can leave H a hair below 0 when the groups' mean ranks are equal.
  result.h = std::max(r.h, 0.0);
  const boost::math::chi_squared chi2(static_cast<double>(result.df));
  result.p = boost::math::cdf(boost::math::complement(chi2, result.h));
  return result;
}

std::vector<PairwiseResult> conover(const std::vector<std::vector<double>>& groups) {
  check_groups(groups, "conover");
  const RankedGroups r = rank_groups(groups);
  const double n = r.n, k = static_cast<double>(groups.size());
  EF_CHECK(n > k, "stats: conover: ", groups.size(), " groups of one sample each leave no ",
           "degrees of freedom (needs more samples than groups)");
  std::vector<PairwiseResult> out;
  const bool identical = std::isnan(r.h);
  // S^2 and the pooled variance factor as scikit-posthocs' posthoc_conover.
  double s2 = n * (n + 1) / 12;
  if (r.ties < 1) {
    double sum_sq = 0;
    for (double rank : r.ranks) sum_sq += rank * rank;
    s2 = (sum_sq - n * (n + 1) * (n + 1) / 4) / (n - 1);
  }
  const double d = identical ? 0 : std::max(0.0, (n - 1 - r.h) / (n - k));
  const boost::math::students_t t_dist(n - k);
  for (size_t a = 0; a < groups.size(); ++a)
    for (size_t b = a + 1; b < groups.size(); ++b) {
      PairwiseResult p;
      p.a = a;
      p.b = b;
      const double diff = std::abs(r.rank_sums[a] / r.sizes[a] - r.rank_sums[b] / r.sizes[b]);
      const double se = std::sqrt(s2 * (1 / r.sizes[a] + 1 / r.sizes[b]) * d);
      if (identical || diff == 0) {
        p.t = 0;
        p.p = 1;
      } else if (se == 0) {  // every group constant: the groups differ without doubt
        p.t = std::numeric_limits<double>::infinity();
        p.p = 0;
      } else {
        p.t = diff / se;
        p.p = 2 * boost::math::cdf(boost::math::complement(t_dist, p.t));
      }
      out.push_back(p);
    }
  std::vector<double> raw;
  for (const PairwiseResult& p : out) raw.push_back(p.p);
  const std::vector<double> adjusted = holm(raw);
  for (size_t i = 0; i < out.size(); ++i) out[i].p_holm = adjusted[i];
  return out;
}

std::vector<double> holm(const std::vector<double>& p) {
  for (size_t i = 0; i < p.size(); ++i)
    EF_CHECK(p[i] >= 0 && p[i] <= 1, "stats: holm: p-value ", i, " = ", p[i],
             " is outside [0, 1]");
  std::vector<size_t> order(p.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t i, size_t j) { return p[i] < p[j]; });
  std::vector<double> adjusted(p.size());
  double running = 0;
  const double m = static_cast<double>(p.size());
  for (size_t rank = 0; rank < order.size(); ++rank) {
    running = std::max(running, p[order[rank]] * (m - static_cast<double>(rank)));
    adjusted[order[rank]] = std::min(running, 1.0);
  }
  return adjusted;
}

double cliffs_delta(const std::vector<double>& a, const std::vector<double>& b) {
  EF_CHECK(!a.empty() && !b.empty(), "stats: cliffs_delta: group ", a.empty() ? "a" : "b",
           " is empty");
  check_no_nan(a, "cliffs_delta", "sample a");
  check_no_nan(b, "cliffs_delta", "sample b");
  std::vector<double> sorted = b;
  std::sort(sorted.begin(), sorted.end());
  int64_t more = 0, less = 0;  // pairs with a > b, a < b
  for (double x : a) {
    more += std::lower_bound(sorted.begin(), sorted.end(), x) - sorted.begin();
    less += sorted.end() - std::upper_bound(sorted.begin(), sorted.end(), x);
  }
  return static_cast<double>(more - less) /
         (static_cast<double>(a.size()) * static_cast<double>(b.size()));
}

std::string cliffs_magnitude(double delta) {
  const double d = std::abs(delta);
  if (d < 0.147) return "negligible";
  if (d < 0.33) return "small";
  if (d < 0.474) return "medium";
  return "large";
}

McNemarResult mcnemar(const std::vector<uint8_t>& correct_a,
                      const std::vector<uint8_t>& correct_b) {
  EF_CHECK(correct_a.size() == correct_b.size(), "stats: mcnemar: model a has ", correct_a.size(),
           " results and model b ", correct_b.size(), " (they must be on the same samples)");
  EF_CHECK(!correct_a.empty(), "stats: mcnemar: no samples");
  McNemarResult r;
  for (size_t i = 0; i < correct_a.size(); ++i) {
    EF_CHECK(correct_a[i] <= 1 && correct_b[i] <= 1, "stats: mcnemar: sample ", i, " has ",
             static_cast<int>(correct_a[i]), ", ", static_cast<int>(correct_b[i]),
             " (expected 1 for right, 0 for wrong)");
    r.b += correct_a[i] && !correct_b[i];
    r.c += !correct_a[i] && correct_b[i];
  }
  if (r.b + r.c == 0) return r;
  const boost::math::binomial binomial(static_cast<double>(r.b + r.c), 0.5);
  r.p = std::min(1.0, 2 * boost::math::cdf(binomial, static_cast<double>(std::min(r.b, r.c))));
  return r;
}

WilcoxonResult wilcoxon_signed_rank(const std::vector<double>& x, const std::vector<double>& y) {
  EF_CHECK(x.size() == y.size(), "stats: wilcoxon_signed_rank: x has ", x.size(),
           " samples and y ", y.size(), " (they must be paired)");
  EF_CHECK(!x.empty(), "stats: wilcoxon_signed_rank: no pairs");
  std::vector<double> d;
  size_t zeros = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double diff = x[i] - y[i];
    EF_CHECK(!std::isnan(diff), "stats: wilcoxon_signed_rank: pair ", i, " (", x[i], ", ", y[i],
             ") has a NaN difference");
    if (diff == 0)
      ++zeros;
    else
      d.push_back(diff);
  }
  WilcoxonResult r;
  if (d.empty()) return r;  // x == y everywhere: no evidence of a shift
  // SciPy 1.10's method="auto": exact up to 50 pairs unless a difference is zero.
  r.exact = x.size() <= 50 && zeros == 0;
  r.n = static_cast<int64_t>(d.size());
  std::vector<double> magnitude(d.size());
  for (size_t i = 0; i < d.size(); ++i) magnitude[i] = std::abs(d[i]);
  std::vector<double> tie_sizes;
  const std::vector<double> ranks = average_ranks(magnitude, &tie_sizes);
  double w_plus = 0, w_minus = 0;
  for (size_t i = 0; i < d.size(); ++i) (d[i] > 0 ? w_plus : w_minus) += ranks[i];
  r.statistic = std::min(w_plus, w_minus);
  const double n = static_cast<double>(d.size());
  if (r.exact) {
    // counts[s]: sign patterns of ranks 1..n whose positive ranks sum to s; below 2^50, so the
    // doubles and their sums are exact.
    const int64_t max_sum = r.n * (r.n + 1) / 2;
    std::vector<double> counts(static_cast<size_t>(max_sum) + 1, 0.0);
    counts[0] = 1;
    for (size_t k = 1; k <= d.size(); ++k)
      for (size_t s = k * (k + 1) / 2; s >= k; --s) counts[s] += counts[s - k];
    // As SciPy: a W+ ending in .5 (tied ranks) is rounded down to a whole rank sum.
    const int64_t w = static_cast<int64_t>(std::floor(w_plus));
    if (w == max_sum / 2) {
      r.p = 1;
    } else {
      double less = 0, greater = 0;
      for (int64_t s = 0; s <= max_sum; ++s) {
        if (s <= w) less += counts[static_cast<size_t>(s)];
        if (s >= w) greater += counts[static_cast<size_t>(s)];
      }
      r.p = std::min(1.0, 2 * std::min(less, greater) / std::ldexp(1.0, static_cast<int>(r.n)));
    }
  } else {
    const double mean = n * (n + 1) * 0.25;
    const double variance = (n * (n + 1) * (2 * n + 1) - 0.5 * tie_sum(tie_sizes)) / 24;
    const double z = (r.statistic - mean) / std::sqrt(variance);
    r.p = 2 * boost::math::cdf(boost::math::complement(boost::math::normal(), std::abs(z)));
  }
  return r;
}

Interval bootstrap_median_ci(const std::vector<double>& samples, double level, int resamples,
                             uint64_t seed) {
  EF_CHECK(!samples.empty(), "stats: bootstrap_median_ci of no samples");
  EF_CHECK(level > 0 && level < 1, "stats: bootstrap_median_ci: level ", level,
           " is outside (0, 1)");
  EF_CHECK(resamples >= 1, "stats: bootstrap_median_ci: resamples ", resamples, " must be >= 1");
  check_no_nan(samples, "bootstrap_median_ci", "sample");
  std::mt19937_64 rng(seed);
  std::vector<double> resample(samples.size()), medians;
  medians.reserve(static_cast<size_t>(resamples));
  for (int i = 0; i < resamples; ++i) {
    for (double& v : resample) v = samples[uniform_index(rng, samples.size())];
    medians.push_back(median_in_place(resample));
  }
  std::sort(medians.begin(), medians.end());
  Interval ci;
  ci.estimate = median(samples);
  ci.lo = quantile_sorted(medians, (1 - level) / 2);
  ci.hi = quantile_sorted(medians, (1 + level) / 2);
  return ci;
}

Blocks split_blocks(const std::vector<double>& samples, const std::vector<int64_t>& sizes) {
  Blocks out;
  size_t at = 0;
  for (int64_t n : sizes) {
    EF_CHECK(n >= 0 && at + static_cast<size_t>(n) <= samples.size(), "stats: blocks of ", sizes.size(),
             " sizes do not fit ", samples.size(), " samples");
    out.emplace_back(samples.begin() + static_cast<std::ptrdiff_t>(at),
                     samples.begin() + static_cast<std::ptrdiff_t>(at + static_cast<size_t>(n)));
    at += static_cast<size_t>(n);
  }
  EF_CHECK(at == samples.size(), "stats: blocks hold ", at, " of ", samples.size(), " samples");
  return out;
}

namespace {

// The median of the samples of the chosen blocks.
double median_of_blocks(const Blocks& blocks, const std::vector<size_t>& pick, std::vector<double>& scratch) {
  scratch.clear();
  for (size_t k : pick) scratch.insert(scratch.end(), blocks[k].begin(), blocks[k].end());
  return scratch.empty() ? std::nan("") : median_in_place(scratch);
}

}  // namespace

Interval block_bootstrap_median_ci(const Blocks& blocks, double level, int resamples, uint64_t seed) {
  EF_CHECK(!blocks.empty(), "stats: block_bootstrap_median_ci of no blocks");
  EF_CHECK(level > 0 && level < 1, "stats: block_bootstrap_median_ci: level ", level, " is outside (0, 1)");
  EF_CHECK(resamples >= 1, "stats: block_bootstrap_median_ci: resamples ", resamples, " must be >= 1");
  std::vector<double> all;
  for (const auto& b : blocks) {
    check_no_nan(b, "block_bootstrap_median_ci", "sample");
    all.insert(all.end(), b.begin(), b.end());
  }
  EF_CHECK(!all.empty(), "stats: block_bootstrap_median_ci of no samples");
  std::mt19937_64 rng(seed);
  std::vector<size_t> pick(blocks.size());
  std::vector<double> scratch, medians;
  for (int i = 0; i < resamples; ++i) {
    for (size_t& k : pick) k = uniform_index(rng, blocks.size());
    const double m = median_of_blocks(blocks, pick, scratch);
    if (!std::isnan(m)) medians.push_back(m);
  }
  std::sort(medians.begin(), medians.end());
  Interval ci;
  ci.estimate = median(all);
  ci.lo = medians.empty() ? ci.estimate : quantile_sorted(medians, (1 - level) / 2);
  ci.hi = medians.empty() ? ci.estimate : quantile_sorted(medians, (1 + level) / 2);
  return ci;
}

std::vector<double> paired_block_bootstrap_ratio(const Blocks& a, const Blocks& b, int resamples,
                                                 uint64_t seed) {
  EF_CHECK(resamples >= 1, "stats: paired_block_bootstrap_ratio: resamples ", resamples, " must be >= 1");
  const size_t n = std::min(a.size(), b.size());
  std::vector<double> ratios;
  if (n == 0) return ratios;
  std::mt19937_64 rng(seed);
  std::vector<size_t> pick(n);
  std::vector<double> scratch;
  for (int i = 0; i < resamples; ++i) {
    for (size_t& k : pick) k = uniform_index(rng, n);
    const double ma = median_of_blocks(a, pick, scratch), mb = median_of_blocks(b, pick, scratch);
    if (std::isfinite(ma) && std::isfinite(mb) && mb > 0) ratios.push_back(ma / mb);
  }
  std::sort(ratios.begin(), ratios.end());
  return ratios;
}

double quantile_of_sorted(const std::vector<double>& sorted, double q) {
  EF_CHECK(!sorted.empty(), "stats: quantile of no values");
  return quantile_sorted(sorted, q);
}

}  // namespace edgeforge::stats
