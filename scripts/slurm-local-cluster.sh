#!/bin/bash
# Start or stop a real one-node SLURM cluster on this machine, for the tests and the
# scale benchmark (needs root and Debian slurmctld, slurmd, slurm-client, munge; see
# ../shared/recipes/slurm-one-node.md). Accounting is off: poll squeue, or read a
# finished job's exit code with `scontrol show job` (kept 5 minutes).
#
#   scripts/slurm-local-cluster.sh start STATE_DIR   # waits until the node is idle
#   scripts/slurm-local-cluster.sh stop STATE_DIR    # cancels its jobs, stops what start started
#
# start writes /etc/slurm/slurm.conf. If a cluster already answers, start leaves it
# alone (prints "reusing") and stop will not touch it.
set -euo pipefail
cmd=${1:?start|stop}; W=${2:?state dir}

wait_gone() {  # PID...: wait up to 10 s for the processes to exit
  for _ in $(seq 100); do
    local alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.1
  done
  return 1
}

case "$cmd" in
start)
  for b in slurmctld slurmd munged sinfo sbatch scontrol; do
    command -v "$b" >/dev/null || { echo "slurm-local-cluster: $b not installed" >&2; exit 69; }
  done
  [ "$(id -u)" = 0 ] || { echo "slurm-local-cluster: needs root" >&2; exit 77; }
  mkdir -p "$W"/{spool,state,log}
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --force >/dev/null 2>&1 || /usr/sbin/create-munge-key -f >/dev/null
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  fi
  install -d -o munge -g munge -m 755 /run/munge
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    touch "$W/munged.started"
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  if scontrol ping 2>/dev/null | grep -q 'is UP'; then
    echo "slurm-local-cluster: a cluster is already running: reusing it"
    exit 0
  fi
  H=$(hostname -s)
  ADDR=""
  if ! getent hosts "$H" >/dev/null 2>&1; then H=localhost; ADDR="NodeAddr=127.0.0.1"; fi
  MEM=$(( $(free -m | awk '/Mem:/{print $2}') - 1024 ))
  mkdir -p /etc/slurm
  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=bidsdeidtest
SlurmctldHost=$H
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/log/slurmctld.log
SlurmdLogFile=$W/log/slurmd.log
NodeName=$H CPUs=$(nproc) RealMemory=$MEM $ADDR State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  slurmctld; slurmd
  for _ in $(seq 100); do sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix)' && exit 0; sleep 0.2; done
  echo "slurm-local-cluster: the node did not become idle; see $W/log" >&2; exit 1
  ;;
stop)
  pids=()
  for f in "$W/slurmd.pid" "$W/slurmctld.pid"; do
    if [ -s "$f" ]; then pids+=("$(cat "$f")"); fi
  done
  if [ ${#pids[@]} -gt 0 ]; then   # our own cluster: its jobs go too
    squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true
    for _ in $(seq 50); do squeue -h 2>/dev/null | grep -q . || break; sleep 0.2; done
    kill "${pids[@]}" 2>/dev/null || true
    wait_gone "${pids[@]}" || kill -9 "${pids[@]}" 2>/dev/null || true
    rm -f "$W/slurmd.pid" "$W/slurmctld.pid"
  fi
  if [ -f "$W/munged.started" ] && [ -s /run/munge/munged.pid ]; then
    m=$(cat /run/munge/munged.pid)
    kill "$m" 2>/dev/null || true
    wait_gone "$m" || true
    rm -f "$W/munged.started"
  fi
  ;;
*) echo "usage: $0 start|stop STATE_DIR" >&2; exit 64 ;;
esac
