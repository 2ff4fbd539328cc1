#!/usr/bin/python3
"""Generates tests/stats/golden.json, the expected values of tests/stats/stats_test.cpp.

Rerun from the repository root after changing it:  /usr/bin/python3 tests/stats/make_golden.py
It needs Debian 12's python3-scipy (SciPy 1.10.1, NumPy 1.24), which is what the golden values
were generated with; the file records the versions. The data come from a seeded NumPy
generator, so a rerun with the same versions rewrites the same file.

Every expected value comes from an implementation independent of edgeforge's C++:
  median, percentile  np.median, np.quantile (method "linear")
  kruskal_wallis      scipy.stats.kruskal
  conover             scikit-posthocs' posthoc_conover formula, written out below with NumPy and
                      scipy.stats.t (scikit-posthocs is not packaged for Debian)
  holm                written out below (statsmodels' multipletests "holm")
  cliffs_delta        the O(n m) definition over all pairs
  mcnemar             scipy.stats.binomtest(b, b + c, 0.5), checked against statsmodels'
                      exact formula min(1, 2 * binom.cdf(min(b, c), b + c, 0.5))
  wilcoxon            scipy.stats.wilcoxon(x, y) with its defaults; whether the p-value is exact
                      is checked by recomputing it with method="exact" / "approx"
"""
import json
import os
import re
import sys
import warnings

import numpy as np
import scipy
import scipy.stats as ss

# SciPy warns that it switches to the normal approximation with zeros and that small samples
# make it rough; both are the behaviour being recorded.
warnings.filterwarnings("ignore", category=UserWarning, module="scipy")

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.json")
rng = np.random.default_rng(20240611)


def latency(n, median_ms, spread=0.25, resolution=None):
    """Latency-like samples: log-normal around `median_ms`, optionally rounded to a timer's
    resolution (which makes ties)."""
    v = median_ms * np.exp(spread * rng.standard_normal(n))
    if resolution is not None:
        v = np.round(v / resolution) * resolution
        v = np.round(v, 6)  # drop binary noise so that the JSON is readable
    return v


def floats(v):
    return [float(x) for x in v]


# ---------------------------------------------------------------------------------------------
# Independent reference implementations.

def holm_reference(p):
    p = np.asarray(p, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, p[i] * (m - rank))
        adjusted[i] = min(running, 1.0)
    return adjusted


def conover_reference(groups):
    """scikit-posthocs' posthoc_conover (p_adjust=None): t and p for every pair a < b."""
    x = np.concatenate(groups)
    n = float(len(x))
    k = len(groups)
    ranks = ss.rankdata(x)
    lens = np.array([len(g) for g in groups], dtype=float)
    bounds = np.concatenate([[0], np.cumsum([len(g) for g in groups])])
    rank_sums = np.array([ranks[bounds[i]:bounds[i + 1]].sum() for i in range(k)])
    rank_means = rank_sums / lens
    _, counts = np.unique(ranks, return_counts=True)
    tie_sum = np.sum(counts[counts != 1] ** 3 - counts[counts != 1])
    x_ties = min(1.0, 1.0 - tie_sum / (n ** 3 - n))
    h = (12.0 / (n * (n + 1.0))) * np.sum(rank_sums ** 2 / lens) - 3.0 * (n + 1.0)
    h_cor = h / x_ties
    if x_ties == 1:
        s2 = n * (n + 1.0) / 12.0
    else:
        s2 = (1.0 / (n - 1.0)) * (np.sum(ranks ** 2.0) - (n * (((n + 1.0) ** 2.0) / 4.0)))
    pairs = []
    for a in range(k):
        for b in range(a + 1, k):
            diff = abs(rank_means[a] - rank_means[b])
            B = 1.0 / lens[a] + 1.0 / lens[b]
            D = (n - 1.0 - h_cor) / (n - k)
            t = diff / np.sqrt(s2 * B * D)
            p = 2.0 * ss.t.sf(abs(t), df=n - k)
            pairs.append({"a": a, "b": b, "t": float(t), "p": float(p)})
    adjusted = holm_reference([q["p"] for q in pairs])
    for q, adj in zip(pairs, adjusted):
        q["p_holm"] = float(adj)
    return pairs


def cliffs_reference(a, b):
    a = np.asarray(a)[:, None]
    b = np.asarray(b)[None, :]
    return float((np.sum(a > b) - np.sum(a < b)) / (a.size * b.size))


# ---------------------------------------------------------------------------------------------
# Data sets and expected values.

def kruskal_cases():
    cases = {
        # No ties, small groups.
        "three_small_continuous": [latency(5, 10.0), latency(7, 11.0), latency(6, 13.0)],
        # A 0.1 ms timer: many ties; unequal sizes from 40 to 500.
        "four_unequal_ties": [latency(40, 12.0, resolution=0.1),
                              latency(120, 12.3, resolution=0.1),
                              latency(500, 12.1, resolution=0.1),
                              latency(75, 13.0, resolution=0.1)],
        # Five strategies of 500 runs each, 0.01 ms timer; two share a distribution.
        "five_large": [latency(500, 20.0, 0.1, 0.01), latency(500, 20.0, 0.1, 0.01),
                       latency(500, 20.4, 0.1, 0.01), latency(500, 19.0, 0.1, 0.01),
                       latency(500, 26.0, 0.1, 0.01)],
        # Same distribution: a large p.
        "three_null": [latency(30, 8.0), latency(31, 8.0), latency(32, 8.0)],
        # Small integers: almost every value tied.
        "two_heavy_ties": [rng.integers(0, 5, 25).astype(float),
                           rng.integers(1, 6, 18).astype(float)],
    }
    out = []
    for name, groups in cases.items():
        res = ss.kruskal(*groups)
        out.append({"name": name, "groups": [floats(g) for g in groups],
                    "h": float(res.statistic), "df": len(groups) - 1, "p": float(res.pvalue),
                    "conover": conover_reference(groups)})
    return out


def cliffs_cases(kruskal):
    out = []
    for case in kruskal:
        g = case["groups"]
        for a, b in [(0, 1), (len(g) - 1, 0)]:
            out.append({"name": f"{case['name']}_{a}_{b}", "a": g[a], "b": g[b],
                        "delta": cliffs_reference(g[a], g[b])})
    # Completely separated and identical groups.
    out.append({"name": "separated", "a": [5.0, 6.0, 7.0], "b": [1.0, 2.0], "delta": 1.0})
    out.append({"name": "identical", "a": [3.0, 3.0], "b": [3.0, 3.0, 3.0], "delta": 0.0})
    return out


def holm_cases(kruskal):
    out = [{"name": "hand_worked", "p": [0.01, 0.04, 0.03, 0.005]}]
    out.append({"name": "random_20", "p": floats(rng.uniform(0, 0.2, 20))})
    out.append({"name": "ties_and_ones", "p": [0.02, 0.02, 1.0, 0.5, 0.02, 0.3]})
    out.append({"name": "conover_five_large",
                "p": [q["p"] for q in kruskal[2]["conover"]]})
    for case in out:
        case["adjusted"] = floats(holm_reference(case["p"]))
    return out


def mcnemar_case(name, n, b, c):
    """Per-sample correctness of two models on n samples with b and c discordant pairs."""
    both_right = (n - b - c) * 3 // 4
    a_right = [1] * both_right + [1] * b + [0] * c + [0] * (n - both_right - b - c)
    b_right = [1] * both_right + [0] * b + [1] * c + [0] * (n - both_right - b - c)
    order = rng.permutation(n)
    a_right = [a_right[i] for i in order]
    b_right = [b_right[i] for i in order]
    p = ss.binomtest(b, b + c, 0.5).pvalue if b + c > 0 else 1.0
    statsmodels = min(1.0, 2 * ss.binom.cdf(min(b, c), b + c, 0.5)) if b + c > 0 else 1.0
    assert abs(p - statsmodels) <= 1e-12 * max(p, 1e-300) + 1e-300, (name, p, statsmodels)
    return {"name": name, "correct_a": a_right, "correct_b": b_right, "b": b, "c": c,
            "p": float(p)}


def mcnemar_cases():
    return [mcnemar_case("small_discordant", 30, 3, 1),
            mcnemar_case("one_sided", 40, 7, 0),
            mcnemar_case("balanced", 50, 6, 6),
            mcnemar_case("none_discordant", 20, 0, 0),
            mcnemar_case("large_discordant", 2000, 130, 95),
            mcnemar_case("large_significant", 5000, 260, 170)]


def wilcoxon_case(name, x, y):
    d = x - y
    n_zero = int(np.sum(d == 0))
    res = ss.wilcoxon(x, y)
    # SciPy 1.10's auto rule; confirmed by recomputing the p-value with the named method.
    exact = len(d) <= 50 and n_zero == 0
    check = ss.wilcoxon(x, y, method="exact" if exact else "approx")
    assert check.pvalue == res.pvalue and check.statistic == res.statistic, name
    other = ss.wilcoxon(x, y, method="approx" if exact else "exact") if n_zero == 0 else None
    assert other is None or other.pvalue != res.pvalue or res.pvalue == 1.0, name
    magnitudes = np.abs(d[d != 0])
    return {"name": name, "x": floats(x), "y": floats(y), "n": int(np.sum(d != 0)),
            "statistic": float(res.statistic), "p": float(res.pvalue), "exact": exact,
            "ties": bool(len(np.unique(magnitudes)) < len(magnitudes)), "zeros": n_zero}


def wilcoxon_cases():
    out = []
    x = latency(20, 10.0)
    out.append(wilcoxon_case("exact_n20", x, x * np.exp(0.05 + 0.1 * rng.standard_normal(20))))
    x = latency(50, 10.0)
    out.append(wilcoxon_case("exact_n50", x, x * np.exp(0.02 + 0.1 * rng.standard_normal(50))))
    # 0.1 ms timer, no zero difference but tied |differences|: SciPy 1.10 keeps the exact table.
    x = latency(25, 10.0, resolution=0.1)
    y = x + np.array([0.1, -0.2, 0.3, 0.1, 0.2, -0.1, 0.4, 0.2, -0.3, 0.1, 0.5, 0.2, 0.1,
                      -0.2, 0.3, 0.6, 0.1, 0.2, -0.4, 0.3, 0.1, 0.2, 0.7, -0.1, 0.2])
    out.append(wilcoxon_case("ties_no_zeros_n25", x, np.round(y, 6)))
    # Zero differences: the normal approximation with tie correction.
    x = latency(30, 10.0, resolution=0.1)
    y = np.round(x + np.round(0.3 * rng.standard_normal(30) + 0.05, 1), 6)
    out.append(wilcoxon_case("zeros_and_ties_n30", x, y))
    x = latency(51, 10.0)
    out.append(wilcoxon_case("approx_n51", x, x * np.exp(0.03 + 0.1 * rng.standard_normal(51))))
    x = latency(200, 10.0)
    out.append(wilcoxon_case("approx_n200", x, x * np.exp(0.01 + 0.1 * rng.standard_normal(200))))
    x = latency(500, 20.0, 0.1, 0.01)
    y = np.round(x + np.round(0.2 * rng.standard_normal(500), 2), 6)
    out.append(wilcoxon_case("approx_n500_zeros_ties", x, y))
    # The exact null distribution's centre: p = 1.
    out.append(wilcoxon_case("exact_centre", np.array([1.0, 0.0, 0.0, 4.0]),
                             np.array([0.0, 2.0, 3.0, 0.0])))
    return out


def order_statistic_cases():
    qs = [0.0, 0.1, 0.25, 0.333, 0.5, 0.9, 0.95, 0.99, 1.0]
    out = []
    for name, v in [("one", np.array([4.2])), ("two", np.array([3.0, 1.0])),
                    ("odd_ties", latency(101, 15.0, resolution=0.1)),
                    ("even_continuous", latency(500, 15.0))]:
        out.append({"name": name, "v": floats(v), "median": float(np.median(v)), "q": qs,
                    "quantile": [float(np.quantile(v, q)) for q in qs]})
    return out


def main():
    kruskal = kruskal_cases()
    golden = {
        "generator": "tests/stats/make_golden.py",
        "python": sys.version.split()[0], "numpy": np.__version__, "scipy": scipy.__version__,
        "order_statistics": order_statistic_cases(),
        "kruskal": kruskal,
        "cliffs": cliffs_cases(kruskal),
        "holm": holm_cases(kruskal),
        "mcnemar": mcnemar_cases(),
        "wilcoxon": wilcoxon_cases(),
    }
    text = json.dumps(golden, indent=1)
    # A list of numbers on one line, so that the file reads (and diffs) case by case.
    text = re.sub(r"\[[-0-9.e,\s]*\]", lambda m: re.sub(r"\s+", " ", m.group(0)), text)
    with open(OUT, "w") as f:
        f.write(text + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
