#!/usr/bin/env bash
# Issue 5's measurement: every zoo teacher (float, and its sptq file when present) on mobile,
# edge, cloud and the study's split mobile-edge under the default topology, 100 inputs x 6 runs
# (simulated), plus the `--at auto` choice at 1, 10 and 200 Mbit/s on the edge-cloud link.
# Writes OUT_DIR/<model>.<deploy>.json (bench --json), OUT_DIR/<model>.auto.txt, and prints a
# table of warm medians and their breakdowns. Measure on an idle machine.
#
#   bench/deployments.sh [ZOO_DIR [STRATEGY_DIR [OUT_DIR]]]
#   EDGEFORGE=path/to/edgeforge overrides the program.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
zoo="${1:-out/zoo}"
strategies="${2:-out/strategies}"
out="${3:-out/deployments}"
edgeforge="${EDGEFORGE:-$root/build/edgeforge}"
mkdir -p "$out"

models=()
for teacher in resnet resnext bert roberta; do
  [ -f "$zoo/$teacher.onnx" ] || { echo "missing $zoo/$teacher.onnx (run: edgeforge zoo --train --out-dir $zoo)" >&2; exit 1; }
  models+=("$zoo/$teacher.onnx")
  [ -f "$strategies/$teacher.sptq.onnx" ] && models+=("$strategies/$teacher.sptq.onnx")
done
for m in "${models[@]}"; do
  name="$(basename "$m" .onnx)"
  for d in mobile edge cloud mobile-edge; do
    echo "bench $name on $d" >&2
    /usr/bin/time -f "%e" -o "$out/$name.$d.seconds" \
      "$edgeforge" bench --model "$m" --deploy "$d" --json >"$out/$name.$d.json" 2>/dev/null
  done
  "$edgeforge" partition --model "$m" --at auto --link edge-cloud --bandwidth-mbps 1,10,200 \
    >"$out/$name.auto.txt" 2>/dev/null
done

python3 - "$out" "${models[@]}" <<'PY'
import json, os, sys
out, models = sys.argv[1], sys.argv[2:]
print("| model | deploy | warm median ms | p90 | p99 | cold median ms | breakdown (component medians, ms) | bench wall s |")
print("|---|---|---|---|---|---|---|---|")
for m in models:
    name = os.path.basename(m)[:-5]
    for d in ["mobile", "edge", "cloud", "mobile-edge"]:
        j = json.load(open(f"{out}/{name}.{d}.json"))
        w, c = j["results"][0]["warm"], j["results"][0]["cold"]
        parts = ", ".join(f"{k} {v:.2f}" for k, v in w["breakdown_median_ms"].items()
                          if k != "load" and v > 0.0005)
        secs = open(f"{out}/{name}.{d}.seconds").read().strip()
        print(f"| {name} | {d} | {w['median_ms']:.2f} | {w['p90_ms']:.2f} | {w['p99_ms']:.2f} | "
              f"{c['median_ms']:.2f} | {parts} | {secs} |")
print()
print("| model | edge-cloud Mbit/s | auto choice | estimate ms |")
print("|---|---|---|---|")
for m in models:
    name = os.path.basename(m)[:-5]
    bw = None
    for line in open(f"{out}/{name}.auto.txt"):
        if line.startswith("auto, link"):
            bw = line.split(" at ")[1].split(" Mbit/s")[0]
            take = True
        elif bw and take and line.strip() and not line.strip().startswith("placement"):
            f = line.split()
            cut = f[1] if f[1] != "(whole" else "whole model"
            total = f[4]  # crossing is two fields ("12.6 kB") or "(whole model)"
            print(f"| {name} | {bw} | {f[0]} {'' if cut == 'whole model' else 'after ' + cut} | {total} |")
            take = False
PY
