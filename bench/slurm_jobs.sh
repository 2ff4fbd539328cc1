#!/usr/bin/env bash
# Where the time of a planned study's Slurm jobs went (docs/scale-out.md). Per stage: its span
# (the first job's start to the last one's end, from `scontrol show job`, whole seconds), the
# jobs' own work (the "seconds" each result records: reading its inputs, its cells, writing
# its result), and what each job cost beyond its work: (span x slots - own work) / jobs, where
# slots is how many of the stage's jobs fit on the node at once (1 for --exclusive stages). That
# is Slurm's launch of each job (scheduling, the step daemon) plus edgeforge's start-up. Reads
# slurmctld's memory of the jobs, so run it while it holds them (MinJobAge; tests/slurm/cluster.sh
# keeps them an hour). One node assumed, as tests/slurm/cluster.sh makes.
#
#   bash bench/slurm_jobs.sh EDGEFORGE DIR     # DIR: a plan's folder, run through study submit
set -euo pipefail
edgeforge=${1:?usage: slurm_jobs.sh EDGEFORGE PLAN_DIR}
dir=${2:?usage: slurm_jobs.sh EDGEFORGE PLAN_DIR}
node_cpus=$(sinfo -h -o %c | awk 'NR == 1')
epoch() { date -u -d "$1" +%s; }
status=$("$edgeforge" study status "$dir" --json)
# index stage slurm_job, one line per job (study status --json prints one key per line).
awk -F'"' '/"index"/ { gsub(/[^0-9]/, "", $3); i = $3 } /"slurm_job"/ { j = $4 } /"stage"/ { print i, $4, j }' <<<"$status" |
while read -r index stage task; do
  [ -n "$task" ] || continue
  line=$(scontrol show job -o "$task" 2>/dev/null | awk 'NR == 1')
  start=$(grep -o 'StartTime=[^ ]*' <<<"$line" | cut -d= -f2)
  end=$(grep -o 'EndTime=[^ ]*' <<<"$line" | cut -d= -f2)
  cpus=$(grep -o 'NumCPUs=[0-9]*' <<<"$line" | cut -d= -f2)
  shared=$(grep -o 'OverSubscribe=[A-Z]*' <<<"$line" | cut -d= -f2)
  [ -n "$start" ] && [ "$start" != Unknown ] && [ "$end" != Unknown ] || continue
  own=$(grep -o '"seconds":[0-9.e+-]*' "$(printf '%s/results/job-%04d.json' "$dir" "$index")" | tail -1 | cut -d: -f2)
  slots=$((node_cpus / ${cpus:-1})); [ "$slots" -ge 1 ] || slots=1
  [ "$shared" = NO ] && slots=1
  echo "$stage $(epoch "$start") $(epoch "$end") ${own:-0} $slots"
done | awk '
  { n[$1]++; own[$1] += $4; slots[$1] = $5
    if (!($1 in first) || $2 < first[$1]) first[$1] = $2
    if (!($1 in last) || $3 > last[$1]) last[$1] = $3
    if (!($1 in seen)) { order[++k] = $1; seen[$1] = 1 } }
  END {
    printf "%-10s %4s %6s %7s %11s %15s\n", "stage", "jobs", "slots", "span s", "own work s", "beyond, a job s"
    for (i = 1; i <= k; i++) {
      s = order[i]; span = last[s] - first[s]; sl = slots[s] < n[s] ? slots[s] : n[s]
      beyond = (span * sl - own[s]) / n[s]; N += n[s]; W += own[s]; B += span * sl - own[s]
      if (!started || first[s] < started) started = first[s]
      if (last[s] > ended) ended = last[s]
      printf "%-10s %4d %6d %7d %11.1f %15.1f\n", s, n[s], sl, span, own[s], beyond }
    printf "all: %d jobs in %d s from the first start to the last end; their own work %.1f s; %.1f s a job beyond it\n", N, ended - started, W, B / N }'
