#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests: munged, slurmctld and slurmd from Debian's
# munge, slurmctld and slurmd packages, with a generated key and configuration in a folder of
# their own (nothing in /etc is used or changed), on loopback ports.
#
#   tests/slurm/cluster.sh start DIR   # prints the SLURM_CONF to export; waits until the node is idle
#   tests/slurm/cluster.sh stop DIR    # stops the three daemons (and any job still running)
#
# Needs root (slurmd runs jobs as their users) and the packages: without them it exits 77 (a
# skip, for ctest) with a one-line reason. A daemon that does not start as root is a failure
# (exit 1), not a skip.
set -euo pipefail
cmd=${1:?start or stop}
dir=${2:?a folder for the cluster}

stop() {
  # The cluster's jobs first, so none is left running when its daemons are gone.
  if [ -f "$dir/slurm.conf" ] && [ -f "$dir/slurmctld.pid" ]; then
    SLURM_CONF=$dir/slurm.conf scancel --full --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 50); do
      [ -z "$(SLURM_CONF=$dir/slurm.conf squeue -h 2>/dev/null)" ] && break
      sleep 0.1
    done
  fi
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
  # Step daemons this cluster started (slurmstepd outlives slurmd): those not there before it.
  if [ -f "$dir/stepd.before" ]; then
    for pid in $(pgrep -x slurmstepd || true); do
      grep -qx "$pid" "$dir/stepd.before" || kill -9 "$pid" 2>/dev/null || true
    done
  fi
}

if [ "$cmd" = stop ]; then
  stop
  exit 0
fi
[ "$cmd" = start ] || { echo "cluster.sh: unknown command '$cmd' (start or stop)" >&2; exit 2; }

skip() { echo "SKIP: $*" >&2; exit 77; }
fail() { echo "cluster.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || skip "a Slurm cluster needs root to start slurmd (run the tests as root)"
for p in munged slurmctld slurmd sbatch squeue; do
  command -v "$p" >/dev/null 2>&1 || skip "$p is not installed (scripts/setup installs munge, slurmctld, slurmd, slurm-client)"
done

mkdir -p "$dir/munge" "$dir/state" "$dir/spool"
pgrep -x slurmstepd > "$dir/stepd.before" || true
chmod 755 "$dir"
chmod 700 "$dir/munge"
# A free port pair on loopback.
port=$((20000 + RANDOM % 20000))
listening=$(ss -ltn)
while grep -q ":$port \|:$((port + 1)) " <<<"$listening"; do port=$((20000 + RANDOM % 20000)); done
head -c 1024 /dev/urandom > "$dir/munge/munge.key"
chmod 400 "$dir/munge/munge.key"
munged -f --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
  --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/seed" \
  || fail "munged did not start (see $dir/munge/munged.log)"
host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
cat > "$dir/slurm.conf" <<CONF
ClusterName=edgeforge-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
SlurmctldPort=$port
SlurmdPort=$((port + 1))
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MinJobAge=3600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=edgeforge Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$dir/slurm.conf
slurmctld -f "$SLURM_CONF" || { stop; fail "slurmctld did not start (see $dir/slurmctld.log)"; }
slurmd -f "$SLURM_CONF" || { stop; fail "slurmd did not start (see $dir/slurmd.log)"; }
for _ in $(seq 100); do
  if [ "$(sinfo -h -o %t 2>/dev/null)" = idle ]; then
    echo "$SLURM_CONF"
    exit 0
  fi
  sleep 0.2
done
stop
fail "the Slurm node did not come up within 20 s (see $dir/slurmctld.log and $dir/slurmd.log)"
