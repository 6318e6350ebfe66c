#!/usr/bin/env bash
# A real one-host Slurm cluster on loopback for kcache's engine tests and
# benchmarks: munged with its own key and socket, slurmctld and slurmd in the
# foreground (-D) in the background, everything under DIR. Debian packages
# slurmctld, slurmd, slurm-client and munge (scripts/setup.sh installs them).
#
#   scripts/slurm.sh start DIR [BASE_PORT]   write DIR/slurm.conf, start munged, slurmctld, slurmd;
#                                            wait until sinfo shows the node idle; writes DIR/env
#   scripts/slurm.sh stop DIR                stop every daemon started in DIR
#   scripts/slurm.sh env DIR                 print the environment a client needs (SLURM_CONF)
#
# slurmctld listens on 127.0.0.1:BASE_PORT (default 6917), slurmd on BASE_PORT+1.
# Two partitions on the one node: $KCACHE_SLURM_BUILD_PARTITION (default
# kbuild, for build steps) and $KCACHE_SLURM_TEST_PARTITION (default ktest,
# for test steps: the KVM nodes). The node has the feature `kvm`, so
# `--constraint kvm` works. Daemons run as the invoking user (root here; no systemd).
set -euo pipefail

build_partition=${KCACHE_SLURM_BUILD_PARTITION:-kbuild}
test_partition=${KCACHE_SLURM_TEST_PARTITION:-ktest}

die_with_logs() { # DIR MESSAGE
  local dir=$1
  echo "slurm.sh: $2" >&2
  for log in munged.log slurmctld.log slurmd.log; do
    if [ -f "$dir/$log" ]; then
      echo "--- tail of $dir/$log" >&2
      tail -n 20 "$dir/$log" >&2
    fi
  done
  stop "$dir"
  exit 1
}

need_commands() {
  local c
  for c in munged mungekey slurmctld slurmd sinfo sbatch squeue scontrol scancel; do
    if ! command -v "$c" > /dev/null; then
      echo "slurm.sh: $c is not installed: run scripts/setup.sh (Debian packages slurmctld slurmd slurm-client munge)" >&2
      exit 1
    fi
  done
}

# The node's real CPUs and memory, as slurmd itself sees them: a node
# configured with more than it has is drained by slurmctld.
node_line() {
  slurmd -C | head -n1 | sed 's/^NodeName=[^ ]*//'
}

write_config() { # DIR BASE_PORT
  local dir=$1 base=$2 user
  user=$(id -un)
  mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
  cat > "$dir/slurm.conf" <<EOF
# Written by scripts/slurm.sh: a one-host cluster on loopback under $dir.
ClusterName=kcache
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$base
SlurmdPort=$((base + 1))
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/slurmd.%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.txt
# Finished jobs stay visible to scontrol/squeue for an hour: the driver reads
# how a job ended (state, reason, exit code) from slurmctld itself.
MinJobAge=3600
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost Port=$((base + 1)) Feature=kvm,build$(node_line) State=UNKNOWN
PartitionName=$build_partition Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=$test_partition Nodes=localhost Default=NO MaxTime=INFINITE State=UP
EOF
  cat > "$dir/env" <<EOF
export SLURM_CONF=$dir/slurm.conf
EOF
}

start_munge() { # DIR
  local dir=$1
  # munged insists on a key readable by its user only and on directories
  # nobody else may write to.
  chmod 0700 "$dir/munge"
  mungekey --create --keyfile="$dir/munge/munge.key" --force > /dev/null 2>&1 ||
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1 count=1024 status=none
  chmod 0600 "$dir/munge/munge.key"
  munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --seed-file="$dir/munge/munged.seed" \
    --log-file="$dir/munged.log" ||
    die_with_logs "$dir" "munged did not start"
  for _ in $(seq 50); do
    [ -S "$dir/munge/munge.socket" ] && return
    sleep 0.1
  done
  die_with_logs "$dir" "munged's socket $dir/munge/munge.socket did not appear"
}

start() { # DIR [BASE_PORT]
  need_commands
  dir=$(mkdir -p "$1" && cd "$1" && pwd)
  local base=${2:-6917}
  write_config "$dir" "$base"
  start_munge "$dir"
  export SLURM_CONF=$dir/slurm.conf
  # -i: ignore state from an earlier run of this directory (none in a fresh one).
  slurmctld -D -i -f "$dir/slurm.conf" >> "$dir/slurmctld.out" 2>&1 &
  echo $! > "$dir/slurmctld.daemon.pid"
  for _ in $(seq 100); do
    scontrol ping 2> /dev/null | grep -q UP && break
    kill -0 "$(cat "$dir/slurmctld.daemon.pid")" 2> /dev/null ||
      die_with_logs "$dir" "slurmctld exited (port $base taken?)"
    sleep 0.1
  done
  scontrol ping 2> /dev/null | grep -q UP || die_with_logs "$dir" "slurmctld did not answer on port $base"
  slurmd -D -N localhost -f "$dir/slurm.conf" >> "$dir/slurmd.out" 2>&1 &
  echo $! > "$dir/slurmd.daemon.pid"
  for _ in $(seq 200); do
    state=$(sinfo -h -n localhost -o %T 2> /dev/null | head -n1 || true)
    [ "$state" = idle ] && break
    kill -0 "$(cat "$dir/slurmd.daemon.pid")" 2> /dev/null ||
      die_with_logs "$dir" "slurmd exited (port $((base + 1)) taken?)"
    sleep 0.1
  done
  [ "${state:-}" = idle ] || die_with_logs "$dir" "the node did not become idle (state: ${state:-none})"
  echo "slurm: one-host cluster up in $dir (partitions $build_partition, $test_partition); source $dir/env"
}

stop_pidfile() { # FILE SIGNAL
  local f=$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  kill "-$2" "$pid" 2> /dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2> /dev/null || true
  rm -f "$f"
}

stop() { # DIR
  local dir=$1
  # Jobs still running under slurmd: their processes (kcache step run, QEMU)
  # must not outlive the cluster.
  if [ -f "$dir/slurm.conf" ] && [ -f "$dir/slurmctld.daemon.pid" ]; then
    SLURM_CONF=$dir/slurm.conf timeout 10 scancel --full --quiet -u "$(id -un)" 2> /dev/null || true
  fi
  stop_pidfile "$dir/slurmd.daemon.pid" TERM
  stop_pidfile "$dir/slurmctld.daemon.pid" TERM
  stop_pidfile "$dir/munge/munged.pid" TERM
  # The job step daemons slurmd forked (one per running job) carry their job's
  # processes; find them by the spool directory of this cluster only.
  local pid
  for pid in $(pgrep -f "slurmstepd.*" 2> /dev/null || true); do
    if tr '\0' ' ' < "/proc/$pid/environ" 2> /dev/null | grep -q "SLURM_CONF=$dir/slurm.conf"; then
      kill -9 "$pid" 2> /dev/null || true
    fi
  done
}

case ${1:-} in
  start) start "$2" "${3:-}" ;;
  stop) stop "$(cd "$2" && pwd)" ;;
  env) cat "$(cd "$2" && pwd)/env" ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
