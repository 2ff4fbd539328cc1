#!/usr/bin/env bash
# Issue 7's measurement: every zoo teacher on mobile, edge, cloud and the study's split
# mobile-edge under the default topology, measured simulated and emulated (agents in network
# namespaces, links shaped by tc, CPU quotas) with the same inputs, side by side, and the ratio
# of their warm medians. Needs root (emulated mode). Writes OUT_DIR/<model>.<deploy>.<mode>.json
# and prints a table. Measure on an idle machine.
#
#   bench/emulated.sh [ZOO_DIR [OUT_DIR]]      (INPUTS=20 RUNS=3 by default: cloud requests
#                                              carry a 150 kB frame over the 1 Mbit/s link)
#   EDGEFORGE=path/to/edgeforge overrides the program.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
zoo="${1:-out/zoo}"
out="${2:-out/emulated}"
edgeforge="${EDGEFORGE:-$root/build/edgeforge}"
inputs="${INPUTS:-20}"
runs="${RUNS:-3}"
mkdir -p "$out"
for teacher in resnet resnext bert roberta; do
  [ -f "$zoo/$teacher.onnx" ] || { echo "missing $zoo/$teacher.onnx (run: edgeforge zoo --train --out-dir $zoo)" >&2; exit 1; }
  for d in mobile edge cloud mobile-edge; do
    for mode in simulated emulated; do
      echo "bench $teacher on $d, $mode" >&2
      "$edgeforge" bench --model "$zoo/$teacher.onnx" --deploy "$d" --mode "$mode" \
        --inputs "$inputs" --runs "$runs" --timeout-ms 120000 --json >"$out/$teacher.$d.$mode.json" 2>/dev/null
    done
  done
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
print("| model | deploy | simulated warm median ms | emulated warm median ms | emulated / simulated | emulated breakdown (component medians, ms) |")
print("|---|---|---|---|---|---|")
for m in ["resnet", "resnext", "bert", "roberta"]:
    for d in ["mobile", "edge", "cloud", "mobile-edge"]:
        s = json.load(open(f"{out}/{m}.{d}.simulated.json"))["results"][0]["warm"]
        e = json.load(open(f"{out}/{m}.{d}.emulated.json"))["results"][0]["warm"]
        parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(e["breakdown_median_ms"].items(), key=lambda kv: -kv[1]) if v > 0)
        print(f"| {m} | {d} | {s['median_ms']:.2f} | {e['median_ms']:.2f} | {e['median_ms'] / s['median_ms']:.2f} | {parts} |")
PY
