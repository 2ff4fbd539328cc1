#!/usr/bin/env python3
"""The speedup table of one or more study folders side by side: per strategy and deployment,
the mean over models of identity's warm median over the strategy's (as the study's speedups),
and, where the summary has them (issue 21 on), the practical verdicts and the noise floors.

    python3 bench/study_speedups.py out/study-idle out/study-busy

Each folder needs export/summary.json (edgeforge study writes it; edgeforge report remakes it).
"""
import json
import sys
from collections import Counter, defaultdict


def load(folder):
    with open(f"{folder}/export/summary.json") as f:
        return json.load(f)


def main(folders):
    summaries = [load(f) for f in folders]
    keys = []
    for s in summaries:
        for sp in s["stats"]["speedups"]:
            k = (sp["strategy"], sp["deploy"])
            if k not in keys:
                keys.append(k)
    print("| strategy | deploy | " + " | ".join(folders) + " |")
    print("|---|---|" + "---|" * len(folders))
    for strategy, deploy in keys:
        row = []
        for s in summaries:
            sp = next((x for x in s["stats"]["speedups"] if x["strategy"] == strategy and x["deploy"] == deploy), None)
            text = "" if sp is None or sp["mean_ratio"] is None else f"{sp['mean_ratio']:.2f}"
            verdicts = Counter(c["verdict"] for c in s["stats"].get("comparisons", [])
                               if c["strategy"] == strategy and c["deploy"] == deploy)
            if verdicts:
                text += " (" + ", ".join(f"{v} {n}" for v, n in sorted(verdicts.items())) + ")"
            row.append(text)
        print(f"| {strategy} | {deploy} | " + " | ".join(row) + " |")
    for folder, s in zip(folders, summaries):
        floors = s["stats"].get("noise_floors", [])
        if floors:
            by = defaultdict(list)
            for f in floors:
                by[f["deploy"]].append(f["pct"])
            print(f"\n{folder}: noise floor (A/A, %) " +
                  ", ".join(f"{d} {min(v):.1f}-{max(v):.1f}" for d, v in by.items()))
        cells = [c for c in s["cells"] if c["status"] == "done"]
        unstable = sum(1 for c in cells if c.get("latency", {}).get("conditions", {}).get("unstable"))
        if any("conditions" in c.get("latency", {}) for c in cells):
            print(f"{folder}: {unstable} of {len(cells)} cells unstable")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
