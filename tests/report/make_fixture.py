# Generates tests/report/summary-fixture.json: a small study summary made from a simple latency
# model of the default topology (mobile 0.25, edge 1, cloud 2; mobile-edge 200 Mbit/s 5 ms,
# edge-cloud 1 Mbit/s 40 ms), with seeded noise and the statistics computed from the samples.
# Run: python3 tests/report/make_fixture.py > tests/report/summary-fixture.json (which it made).
import json, math, random, itertools, re, sys

random.seed(7)
tiers = [{"name": "mobile", "cores": 4, "memory_gb": 4, "speed": 0.25, "reference_ms": 0},
         {"name": "edge", "cores": 8, "memory_gb": 16, "speed": 1.0, "reference_ms": 0},
         {"name": "cloud", "cores": 16, "memory_gb": 64, "speed": 2.0, "reference_ms": 0}]
speed = {t["name"]: t["speed"] for t in tiers}
links = [{"from": "mobile", "to": "edge", "bandwidth_mbps": 200, "rtt_ms": 5, "jitter_ms": 0, "loss": 0},
         {"from": "edge", "to": "cloud", "bandwidth_mbps": 1, "rtt_ms": 40, "jitter_ms": 0, "loss": 0}]
models = [{"name": "resnet", "dataset": "fashion-mnist", "metric": "top-1", "student": "resnet-small"},
          {"name": "bert", "dataset": "spam", "metric": "f1", "student": "bert-small"}]
strategies = [{"name": "identity", "extra": False}, {"name": "sptq", "extra": False},
              {"name": "qat", "extra": False}, {"name": "dynamic", "extra": True}]
deploys = ["mobile", "edge", "cloud"]
# host milliseconds: preprocessing, compute per strategy; request bytes; model load (cold) ms
host = {"resnet": {"pre": 0.48, "payload": 150_000, "load": 6.0,
                   "compute": {"identity": 2.0, "sptq": 1.22, "qat": 1.25, "dynamic": 1.9}},
        "bert": {"pre": 0.30, "payload": 1_100, "load": 14.0,
                 "compute": {"identity": 6.0, "sptq": 3.6, "qat": 3.7, "dynamic": 4.1}}}
failed = {("bert", "qat"): "qat: fake quantization of the attention softmax is not supported (node encoder.0.attn.softmax)"}
RESPONSE = 64

def one_way(link_bw, rtt, nbytes):
    return rtt / 2 + nbytes * 8 / (link_bw * 1000)

def breakdown(model, strat, deploy, bw=None):
    bw = dict(bw or {})
    me = bw.get("mobile-edge", 200); ec = bw.get("edge-cloud", 1)
    h = host[model]; s = speed[deploy]
    b = {"preprocess": h["pre"] / s, f"compute.{deploy}": h["compute"][strat] / s, "serialise": 0.07}
    if deploy in ("edge", "cloud"):
        b["link.mobile-edge"] = one_way(me, 5, h["payload"]) + one_way(me, 5, RESPONSE)
    if deploy == "cloud":
        b["link.edge-cloud"] = one_way(ec, 40, h["payload"]) + one_way(ec, 40, RESPONSE)
    return b

def quantile(xs, q):
    xs = sorted(xs); pos = q * (len(xs) - 1); lo = math.floor(pos); hi = math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

def r(x, d=3):
    return round(x, d)

cells = []; samples = {}
N = 20
for m in models:
    for st in strategies:
        for d in deploys:
            mn, sn = m["name"], st["name"]
            base = {"model": mn, "strategy": sn, "deploy": d, "mode": "simulated"}
            if (mn, sn) in failed:
                cells.append({**base, "status": "failed", "reason": failed[(mn, sn)]})
                continue
            b = breakdown(mn, sn, d)
            total = sum(b.values())
            xs = [r(total * math.exp(random.gauss(0, 0.02)) + abs(random.gauss(0, 0.03 * (1 if d == "mobile" else 0.5))), 3) for _ in range(N)]
            samples[(mn, sn, d)] = xs
            med = quantile(xs, 0.5)
            boot = sorted(quantile([random.choice(xs) for _ in xs], 0.5) for _ in range(200))
            cold = [total + host[mn]["load"] / speed[d] + random.gauss(0, 0.3) for _ in range(5)]
            sweep = []
            for link in ("mobile-edge", "edge-cloud"):
                for bwv in (1, 10, 50, 100, 150, 200):
                    sweep.append({"link": link, "bandwidth_mbps": bwv,
                                  "warm_median_ms": r(sum(breakdown(mn, sn, d, {link: bwv}).values()) * med / total, 2)})
            cells.append({**base, "status": "done", "reason": "", "cut": "", "placement": d,
                          "latency": {"warm": {"samples": N, "median_ms": r(med), "p90_ms": r(quantile(xs, 0.9)),
                                               "p99_ms": r(quantile(xs, 0.99)),
                                               "median_ci95_ms": [r(boot[5]), r(boot[194])], "samples_ms": xs},
                                      "cold": {"samples": 5, "median_ms": r(quantile(cold, 0.5))},
                                      "breakdown_median_ms": {k: r(v) for k, v in b.items()}},
                          "sweep": sweep})

acc_vals = {("resnet", "identity"): 0.9128, ("resnet", "sptq"): 0.9124, ("resnet", "qat"): 0.9135, ("resnet", "dynamic"): 0.9121,
            ("bert", "identity"): 0.9561, ("bert", "sptq"): 0.9402, ("bert", "dynamic"): 0.9548}
acc_n = {"resnet": 10000, "bert": 1393}
discord = {("resnet", "sptq"): (12, 8), ("resnet", "qat"): (9, 16), ("resnet", "dynamic"): (14, 7),
           ("bert", "sptq"): (31, 11), ("bert", "dynamic"): (6, 4)}
accuracy = []
for m in models:
    for st in strategies:
        mn, sn = m["name"], st["name"]
        e = {"model": mn, "strategy": sn, "metric": m["metric"], "samples": acc_n[mn]}
        if (mn, sn) in failed:
            accuracy.append({"model": mn, "strategy": sn, "status": "failed", "reason": failed[(mn, sn)]}); continue
        v = acc_vals[(mn, sn)]; b0 = acc_vals[(mn, "identity")]
        accuracy.append({**e, "status": "done", "reason": "", "value": v, "baseline": b0, "drop_pt": r((b0 - v) * 100, 2)})

def binom_two_sided(b, c):
    n = b + c; k = min(b, c)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)

mc_threshold = 0.05 / len(discord)  # Bonferroni over every McNemar test
mcnemar = [{"model": mn, "strategy": sn, "b": b, "c": c, "p": r(binom_two_sided(b, c), 4), "alpha": 0.05,
            "threshold": mc_threshold, "significant": binom_two_sided(b, c) < mc_threshold}
           for (mn, sn), (b, c) in discord.items()]

def gammaincc(a, x):  # regularized upper incomplete gamma
    if x < a + 1:
        s = t = 1 / a; ap = a
        for _ in range(500):
            ap += 1; t *= x / ap; s += t
        return 1 - s * math.exp(-x + a * math.log(x) - math.lgamma(a))
    b = x + 1 - a; c = 1e300; d = 1 / b; h = d
    for i in range(1, 500):
        an = -i * (i - a); b += 2; d = an * d + b; d = 1 / d if d else 1e300; c = b + an / c; h *= d * c
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h

def ranks(vals):
    order = sorted(range(len(vals)), key=lambda i: vals[i]); rk = [0] * len(vals); i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and vals[order[j + 1]] == vals[order[i]]: j += 1
        for k in range(i, j + 1): rk[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return rk

def magnitude(d):
    d = abs(d)
    return "negligible" if d < 0.147 else "small" if d < 0.33 else "medium" if d < 0.474 else "large"

def sig(x):
    return float(f"{x:.3g}")

latency_tests = []
for m in models:
    for d in deploys:
        sts = [s["name"] for s in strategies if (m["name"], s["name"], d) in samples]
        groups = [samples[(m["name"], s, d)] for s in sts]
        allv = [x for g in groups for x in g]; rk = ranks(allv); Ntot = len(allv); k = len(groups)
        R = []; pos = 0
        for g in groups: R.append(rk[pos:pos + len(g)]); pos += len(g)
        H = 12 / (Ntot * (Ntot + 1)) * sum(sum(x) ** 2 / len(x) for x in R) - 3 * (Ntot + 1)
        p = gammaincc((k - 1) / 2, H / 2)
        S2 = (sum(x * x for x in rk) - Ntot * (Ntot + 1) ** 2 / 4) / (Ntot - 1)
        pairs = []
        for i, j in itertools.combinations(range(k), 2):
            diff = sum(R[i]) / len(R[i]) - sum(R[j]) / len(R[j])
            t = diff / math.sqrt(S2 * (Ntot - 1 - H) / (Ntot - k) * (1 / len(R[i]) + 1 / len(R[j])))
            pt = math.erfc(abs(t) / math.sqrt(2))
            a, b = groups[i], groups[j]
            cd = (sum(x > y for x in a for y in b) - sum(x < y for x in a for y in b)) / (len(a) * len(b))
            pairs.append({"a": sts[i], "b": sts[j], "t": r(t, 3), "p": pt, "cliffs_delta": r(cd, 3), "magnitude": magnitude(cd)})
        order = sorted(range(len(pairs)), key=lambda i: pairs[i]["p"]); run = 0
        for rank_, i in enumerate(order):
            run = max(run, min(1.0, pairs[i]["p"] * (len(pairs) - rank_))); pairs[i]["p_holm"] = sig(run)
        for pr in pairs:
            pr["p"] = sig(pr["p"])
            pr_keys = ["a", "b", "t", "p", "p_holm", "cliffs_delta", "magnitude"]
        pairs = [{k2: pr[k2] for k2 in pr_keys} for pr in pairs]
        latency_tests.append({"model": m["name"], "deploy": d, "strategies": sts,
                              "kruskal": {"h": r(H, 2), "df": k - 1, "p": sig(p)}, "pairs": pairs})

def median(xs): return quantile(xs, 0.5)
meds = {(c["model"], c["strategy"], c["deploy"]): c["latency"]["warm"]["median_ms"] for c in cells if c["status"] == "done"}
others = [s["name"] for s in strategies if s["name"] != "identity"]
# Wilcoxon per strategy on the models' accuracies against identity's (strategies with two or more
# models), Bonferroni over the strategies tested.
wilcoxon = []
for sn in others:
    pairs = [(acc_vals[(mn, "identity")], acc_vals[(mn, sn)]) for mn in ("resnet", "bert") if (mn, sn) in acc_vals]
    if len(pairs) < 2: continue
    diffs = [a - b for a, b in pairs]
    n = len(diffs); rk = ranks([abs(x) for x in diffs])
    wp = sum(rr for rr, x in zip(rk, diffs) if x > 0); wm = sum(rr for rr, x in zip(rk, diffs) if x < 0)
    stat = min(wp, wm)
    cnt = sum(1 for signs in itertools.product((0, 1), repeat=n) if sum(rr for rr, sgn in zip(rk, signs) if sgn) <= stat)
    wilcoxon.append({"strategy": sn, "measure": "accuracy", "n": n, "pairs": n, "statistic": stat, "p": min(1.0, 2 * cnt / 2 ** n), "exact": True})
for w in wilcoxon:
    w["alpha"] = 0.05; w["threshold"] = 0.05 / len(wilcoxon); w["significant"] = w["p"] < w["threshold"]

speedups = []
for sn in others:
    for d in deploys:
        per = {mn: r(meds[(mn, "identity", d)] / meds[(mn, sn, d)], 3) for mn in ("resnet", "bert") if (mn, sn, d) in meds}
        speedups.append({"strategy": sn, "deploy": d, "baseline_deploy": d, "mean_ratio": r(sum(per.values()) / len(per), 3), "per_model": per})

pareto = []
for m in models:
    pts = []
    for (mn, sn, d), lat in meds.items():
        if mn != m["name"]: continue
        pts.append({"strategy": sn, "deploy": d, "latency_ms": lat, "accuracy": acc_vals[(mn, sn)]})
    for p_ in pts:
        p_["on_front"] = not any((q["latency_ms"] <= p_["latency_ms"] and q["accuracy"] >= p_["accuracy"]) and
                                 (q["latency_ms"] < p_["latency_ms"] or q["accuracy"] > p_["accuracy"]) for q in pts)
    pareto.append({"model": m["name"], "points": pts})

# Measurement rounds, outliers, noise floors, practical comparisons and the answer (made up
# deterministically, after every random draw above, so the numbers above stay as they were).
for c in cells:
    if c["status"] != "done": continue
    xs = c["latency"]["warm"]["samples_ms"]
    q1, q3 = quantile(xs, 0.25), quantile(xs, 0.75)
    c["latency"]["warm"]["rounds"] = [4] * (len(xs) // 4)
    c["latency"]["warm"]["outliers"] = sum(1 for x in xs if x < q1 - 1.5 * (q3 - q1) or x > q3 + 1.5 * (q3 - q1))
floor = {"mobile": 1.8, "edge": 0.9, "cloud": 0.6}
noise_floors = [{"model": m["name"], "deploy": d, "aa_ratio": 1.003, "pct": floor[d], "rounds": 5}
                for m in models for d in deploys if (m["name"], "identity", d) in meds]
p_holm = {(t["model"], t["deploy"], frozenset((pr["a"], pr["b"]))): pr["p_holm"] for t in latency_tests for pr in t["pairs"]}

def verdict(c):
    up = 1 + c["margin_pct"] / 100; down = 1 / up
    test = c["p_holm"] is None or c["p_holm"] < 0.05
    if c["ci95"][0] > 1 and c["speedup"] > up and test: return "faster"
    if c["ci95"][1] < 1 and c["speedup"] < down and test: return "slower"
    if c["ci90"][0] >= down and c["ci90"][1] <= up: return "same"
    return "unclear"

def comparison(mn, sn, d, bn, bd):
    sp = meds[(mn, bn, bd)] / meds[(mn, sn, d)]
    c = {"model": mn, "strategy": sn, "deploy": d, "baseline": bn, "baseline_deploy": bd, "speedup": r(sp, 4),
         "ci90": [r(sp * 0.985, 4), r(sp * 1.015, 4)], "ci95": [r(sp * 0.98, 4), r(sp * 1.02, 4)],
         "noise_floor_pct": floor[bd], "margin_pct": max(5.0, floor[bd]),
         "p_holm": p_holm.get((mn, d, frozenset((sn, bn)))) if d == bd else None}
    c["verdict"] = verdict(c)
    return c

comparisons = [comparison(m["name"], sn, d, "identity", d) for m in models for sn in others for d in deploys
               if (m["name"], sn, d) in meds and (m["name"], "identity", d) in meds]
answers = []
for m in models:
    mn = m["name"]
    fit = sorted((lat, sn, d) for (mn2, sn, d), lat in meds.items()
                 if mn2 == mn and (acc_vals[(mn, "identity")] - acc_vals[(mn, sn)]) * 100 <= 1 + 1e-9)
    a = {"model": mn, "met": bool(fit), "within_budget": len(fit)}
    if fit:
        a.update({"strategy": fit[0][1], "deploy": fit[0][2], "latency_ms": fit[0][0],
                  "accuracy_change_pt": r((acc_vals[(mn, fit[0][1])] - acc_vals[(mn, "identity")]) * 100, 4)})
    if len(fit) >= 2:
        a["runner_up"] = {"strategy": fit[1][1], "deploy": fit[1][2], "latency_ms": fit[1][0],
                          "accuracy_change_pt": r((acc_vals[(mn, fit[1][1])] - acc_vals[(mn, "identity")]) * 100, 4),
                          "versus": comparison(mn, fit[0][1], fit[0][2], fit[1][1], fit[1][2])}
    answers.append(a)

summary = {"format": "edgeforge.study-summary/1",
           "study": {"name": "default", "created_utc": "2026-11-27T01:00:00Z", "finished_utc": "2026-11-27T01:42:10Z",
                     "mode": "simulated", "quick": False, "inputs": 4, "runs": 6,
                     "latency_only": False, "note": "", "min_effect_pct": 5.0, "max_accuracy_drop_pt": 1.0,
                     "max_latency_ms": 0.0,
                     "environment": {"commit": "abc1234", "version": "0.1.0", "cpu": "Intel(R) Xeon(R) CPU @ 2.20GHz",
                                     "host_cores": 2, "threads": 2, "seed": 1,
                                     "libraries": {"libtorch": "1.13.1", "onednn": "2.6.3", "sqlite": "3.40.1"}},
                     "topology": {"name": "default", "tiers": tiers, "links": links}},
           "models": models, "strategies": strategies, "deployments": deploys, "cells": cells,
           "accuracy": accuracy,
           "stats": {"latency_tests": latency_tests, "mcnemar": mcnemar, "wilcoxon": wilcoxon, "speedups": speedups,
                     "noise_floors": noise_floors, "comparisons": comparisons},
           "answers": answers,
           "pareto": pareto}
text = json.dumps(summary, indent=1)
# Short arrays and small objects on one line, so the file reads as a table.
text = re.sub(r"\[\s*([-0-9.e,\s]+?)\s*\]", lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)
text = re.sub(r"\{\s*(\"(link|strategy|a|from|name)\"[^{}\[\]]*?)\s*\}", lambda m: "{" + re.sub(r",\s*\n\s*", ", ", m.group(1)) + "}", text)
text = re.sub(r"\[\s*(\"[^\[\]{}]*?\")\s*\]", lambda m: "[" + re.sub(r",\s*\n\s*", ", ", m.group(1)) + "]", text)
json.loads(text)
sys.stdout.write(text + "\n")
