#!/usr/bin/env bash
# Makes every strategy's model for each zoo teacher with `edgeforge optimize`, two one-thread
# jobs at a time, for bench/strategies to time and score:
#   out/strategies/<teacher>.<strategy>.onnx, logs and JSON reports in out/strategies/logs/.
# Existing files are kept (delete one to make it again). distill+sptq is made by sptq on the
# distill model (a pipeline equals its steps run one by one: tests/strategies), which saves
# training the student twice.
#
#   bench/make_strategy_models.sh [ZOO_DIR [OUT_DIR [JOBS]]]
#   EDGEFORGE=path/to/edgeforge overrides the program.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
zoo="${1:-out/zoo}"
out="${2:-out/strategies}"
jobs="${3:-2}"
edgeforge="${EDGEFORGE:-$root/build/edgeforge}"
mkdir -p "$out/logs"

plan=()
for teacher in resnet resnext bert roberta; do
  [ -f "$zoo/$teacher.onnx" ] || { echo "missing $zoo/$teacher.onnx (run: edgeforge zoo --train --out-dir $zoo)" >&2; exit 1; }
  strategies="sptq qat prune prune-structured distill"
  case "$teacher" in bert|roberta) strategies="$strategies dynamic" ;; esac
  for s in $strategies; do
    [ -f "$out/$teacher.$s.onnx" ] || plan+=("$teacher $s")
  done
done
echo "making ${#plan[@]} models with $jobs jobs" >&2
# Longest first: the training strategies of the bigger teachers.
printf '%s\n' "${plan[@]}" | sort -k2,2 -s | awk '{w = ($2 ~ /sptq$|dynamic/ && $2 !~ /distill/) ? 0 : 1; print w, $0}' \
  | sort -rn -k1,1 -s | cut -d' ' -f2- \
  | EDGEFORGE="$edgeforge" OUT="$out" ZOO="$zoo" xargs -P "$jobs" -L 1 bash -c '
      t="$0"; s="$1"
      start=$(date +%s)
      if EDGEFORGE_PROGRESS_SECONDS=30 "$EDGEFORGE" optimize --model "$ZOO/$t.onnx" --strategy "$s" \
           --threads 1 --json --out "$OUT/$t.$s.onnx" >"$OUT/logs/$t.$s.json" 2>"$OUT/logs/$t.$s.log"; then
        echo "done $t $s in $(( $(date +%s) - start )) s" >&2
      else
        echo "FAILED $t $s: $(tail -1 "$OUT/logs/$t.$s.log")" >&2
      fi'

for teacher in resnet resnext bert roberta; do
  f="$out/$teacher.distill+sptq.onnx"
  [ -f "$f" ] || [ ! -f "$out/$teacher.distill.onnx" ] || \
    "$edgeforge" optimize --model "$out/$teacher.distill.onnx" --strategy sptq --threads 1 --json \
      --out "$f" >"$out/logs/$teacher.distill+sptq.json" 2>"$out/logs/$teacher.distill+sptq.log"
done
echo "all done" >&2
