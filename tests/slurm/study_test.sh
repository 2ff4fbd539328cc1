#!/usr/bin/env bash
# The quick study through a real one-node Slurm cluster (tests/slurm/cluster.sh), merged, against
# the same study run locally: every model and accuracy cell must be the same (accuracies and
# every test sample's right or wrong, exactly), and every latency cell done, labelled, with its
# machine recorded. Then the faults: a job killed mid-way leaves no result merge takes as done,
# and `submit --retry` resubmits only it. Each run has its own model cache, so nothing made by
# one is read by the other.
#
#   bash tests/slurm/study_test.sh build/edgeforge     # exit 77 (skipped) when not root
#
# EDGEFORGE_SLURM_KEEP=1 keeps the work folder; EDGEFORGE_SLURM_STUDY names another built-in
# study than quick (bench/slurm_study.sh uses this script's functions).
set -euo pipefail
edgeforge=$(realpath "${1:?usage: study_test.sh EDGEFORGE}")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/edgeforge-slurm.XXXXXX)
cluster=$work/cluster
cleanup() {
  bash "$here/cluster.sh" stop "$cluster" || true
  if [ "${EDGEFORGE_SLURM_KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
echo "host: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"

mkdir -p "$cluster"
set +e
conf=$(bash "$here/cluster.sh" start "$cluster")
rc=$?
set -e
[ $rc = 77 ] && exit 77
[ $rc = 0 ] || fail "the Slurm cluster did not start"
export SLURM_CONF=$conf
echo "slurm: one node ($(hostname -s), $(nproc) CPUs), $(sinfo --version)"

# Waits until no job of the plan in $1 is pending or running (at most $2 seconds).
wait_for() {
  local dir=$1 limit=$2 t0
  t0=$(date +%s)
  local states
  while states=$("$edgeforge" study status "$dir" --json) && grep -q '"state": "\(pending\|running\)"' <<<"$states"; do
    if [ $(($(date +%s) - t0)) -gt "$limit" ]; then
      "$edgeforge" study status "$dir" >&2 || true
      squeue >&2 || true
      fail "the plan's jobs did not finish within $limit s"
    fi
    sleep 2
  done
}

# The cells two study databases must agree on, one line each.
cells_of() {
  sqlite3 -separator ' | ' "$1" \
    "SELECT kind, model, strategy, deploy, status, reason,
            CASE kind WHEN 'accuracy' THEN json_extract(data, '$.value') || ' ' ||
                                          json_extract(data, '$.samples') || ' ' || hex(correct)
                      ELSE '' END
     FROM cells WHERE kind != 'latency' OR status != 'done'
     ORDER BY kind, model, strategy, deploy"
}
latency_of() {
  sqlite3 -separator ' | ' "$1" \
    "SELECT model, strategy, deploy, status, mode FROM cells WHERE kind = 'latency' ORDER BY model, strategy, deploy"
}

# 1. The study on this machine, as `edgeforge study` runs it.
t0=$(now)
EDGEFORGE_CACHE_DIR=$work/cache-local "$edgeforge" study --quick --out "$work/local" --no-report \
  > "$work/local.log" 2>&1 || { tail -5 "$work/local.log" >&2; fail "the local study failed"; }
local_s=$(since "$t0")

# 2. The same study through Slurm: plan, submit, wait, merge.
t0=$(now)
"$edgeforge" study plan --quick --out "$work/slurm" > "$work/plan.log"
EDGEFORGE_CACHE_DIR=$work/cache-slurm "$edgeforge" study submit "$work/slurm" --slurm --time 60 \
  > "$work/submit.log"
cat "$work/submit.log"
grep -q "^latency .*Slurm job [0-9]" "$work/submit.log" || fail "submit printed no latency array job id"
wait_for "$work/slurm" 2400
slurm_s=$(since "$t0")
t1=$(now)
"$edgeforge" study merge "$work/slurm" > "$work/merge.log" 2>&1 || { cat "$work/merge.log" >&2; fail "merge failed"; }
merge_s=$(since "$t1")
"$edgeforge" study status "$work/slurm" | tail -1

# 3. The cells.
cells_of "$work/local/study.sqlite" > "$work/local.cells"
cells_of "$work/slurm/study.sqlite" > "$work/slurm.cells"
diff "$work/local.cells" "$work/slurm.cells" > "$work/cells.diff" ||
  { head -20 "$work/cells.diff" >&2; fail "model or accuracy cells differ between the local and the Slurm study"; }
latency_of "$work/local/study.sqlite" > "$work/local.latency"
latency_of "$work/slurm/study.sqlite" > "$work/slurm.latency"
diff "$work/local.latency" "$work/slurm.latency" > "$work/latency.diff" ||
  { head -20 "$work/latency.diff" >&2; fail "the latency cells differ in kind or status"; }
unlabelled=$(sqlite3 "$work/slurm/study.sqlite" \
  "SELECT count(*) FROM cells WHERE kind = 'latency' AND status = 'done' AND
     (warm_ms IS NULL OR mode != 'simulated' OR coalesce(json_extract(environment, '$.host'), '') = ''
      OR coalesce(json_extract(environment, '$.cpu'), '') = '')")
[ "$unlabelled" = 0 ] || fail "$unlabelled latency cells have no samples, mode or machine"
accuracy=$(grep -c '^accuracy' "$work/slurm.cells")
models=$(grep -c '^model' "$work/slurm.cells")
latency=$(wc -l < "$work/slurm.latency")
[ "$accuracy" -gt 0 ] && [ "$latency" -gt 0 ] || fail "no cells were compared"
jobs=$(ls "$work/slurm/results/"*.json | wc -l)
# (a result's last "seconds" is the job's own; the ones before are its cells')
work_s=$(for f in "$work/slurm/results/"*.json; do grep -o '"seconds":[0-9.e+-]*' "$f" | tail -1 | cut -d: -f2; done |
         awk '{ s += $1 } END { printf "%.1f", s }')
echo "cells: $models model and $accuracy accuracy cells equal (accuracy and each sample), $latency latency cells done and labelled"
echo "wall: local study ${local_s} s; through Slurm ${slurm_s} s (plan, submit, $jobs jobs) + merge ${merge_s} s; the jobs' own work ${work_s} s in all"
bash "$here/../../bench/slurm_jobs.sh" "$edgeforge" "$work/slurm" || echo "(bench/slurm_jobs.sh could not read the jobs)"

# 4. Faults: a job killed mid-way (scancel) leaves no result that merge takes as done; status
#    says so; --retry resubmits only it; merge names it while it is missing.
status_json=$("$edgeforge" study status "$work/slurm" --json)
model_job=$(grep -B1 '"name": "model bert/prune"' <<<"$status_json" | grep -o '"index": [0-9]*' | grep -o '[0-9]*$')
[ -n "$model_job" ] || fail "the plan has no bert/prune model job"
rm "$work/slurm/results/job-$(printf %04d "$model_job").json"
rm -f "$work/slurm/models/bert.prune.onnx"
id=$(sbatch --parsable --job-name=ef-kill --output="$work/kill.out" \
  --wrap="EDGEFORGE_CACHE_DIR=$work/cache-slurm '$edgeforge' study job '$work/slurm' --index $model_job")
for _ in $(seq 300); do
  [ -n "$(ls "$work/slurm/running/" 2>/dev/null | grep "job-$(printf %04d "$model_job")")" ] && break
  sleep 0.2
done
sleep 2
scancel "$id"
for _ in $(seq 100); do [ -n "$(squeue -h -j "$id" 2>/dev/null)" ] || break; sleep 0.2; done
[ ! -e "$work/slurm/results/job-$(printf %04d "$model_job").json" ] || fail "a cancelled job left a result"
"$edgeforge" study status "$work/slurm" > "$work/status.log"
grep -q "job $model_job model bert/prune: interrupted" "$work/status.log" ||
  { cat "$work/status.log" >&2; fail "status does not say the cancelled job was interrupted"; }
set +e
"$edgeforge" study merge "$work/slurm" --no-report > "$work/merge2.log" 2>&1
rc=$?
set -e
[ $rc = 1 ] || fail "merge with a job missing exited $rc, not 1"
grep -q "1 jobs have no result yet: $model_job (model bert/prune)" "$work/merge2.log" ||
  { cat "$work/merge2.log" >&2; fail "merge does not name the missing job"; }
EDGEFORGE_CACHE_DIR=$work/cache-slurm "$edgeforge" study submit "$work/slurm" --slurm --retry > "$work/retry.log"
[ "$(grep -c 'Slurm job' "$work/retry.log")" = 1 ] && grep -q "^models-1 .* 1 jobs" "$work/retry.log" ||
  { cat "$work/retry.log" >&2; fail "--retry did not resubmit exactly the cancelled job"; }
wait_for "$work/slurm" 600
"$edgeforge" study merge "$work/slurm" --no-report > /dev/null
cells_of "$work/slurm/study.sqlite" > "$work/slurm2.cells"
diff "$work/local.cells" "$work/slurm2.cells" > /dev/null || fail "the rerun job's cells differ"
echo "faults: a cancelled job left no result, status said interrupted, merge named it (exit 1), --retry resubmitted it alone and its cells equal the local study's"
echo "ok"
