#!/usr/bin/env bash
# Start a single-node Slurm (Debian's slurm-wlm + munge, no accounting database) on this
# machine: controller and compute node are both `localhost`, partition `debug`.
#
# Idempotent: installs only what is missing, rewrites the config, starts only the daemons
# that are not running, and returns once the node accepts jobs. Needs root and apt.
# Facts behind each choice: ../shared/notes/batch-systems.md (no systemd, mixed cgroups →
# proctrack/linuxproc + task/none; no sacct → the snakemake plugin polls squeue).
set -euo pipefail

log() { echo "slurm-up: $*" >&2; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    log "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
fi

cpus=$(nproc)
# Slurm drains a node that has less memory than configured: announce 80% of what is there.
memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
mkdir -p /etc/slurm /var/lib/slurm/slurmd /var/lib/slurm/slurmctld /var/log/slurm
chown -R slurm:slurm /var/lib/slurm /var/log/slurm
cat >/etc/slurm/slurm.conf <<CONF
ClusterName=localcluster
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/lib/slurm/slurmd
StateSaveLocation=/var/lib/slurm/slurmctld
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SchedulerParameters=sched_interval=2
MinJobAge=300
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${memory} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

mkdir -p /run/munge && chown munge:munge /run/munge
if ! running /run/munge/munged.pid; then
    log "starting munged"
    [ -f /etc/munge/munge.key ] || runuser -u munge -- mungekey --create >/dev/null
    runuser -u munge -- munged
fi
if ! running /run/slurmctld.pid; then
    log "starting slurmctld"
    rm -f /run/slurmctld.pid
    slurmctld -i
fi
if ! running /run/slurmd.pid; then
    log "starting slurmd"
    rm -f /run/slurmd.pid
    slurmd -N localhost
fi

for _ in $(seq 60); do
    state=$(sinfo -h -N -o %T 2>/dev/null | head -1 || true)
    case "$state" in
    idle | mixed | allocated | completing) log "up: node localhost $state, ${cpus} CPUs, ${memory} MB"; exit 0 ;;
    down* | drain*) scontrol update NodeName=localhost State=RESUME 2>/dev/null || true ;;
    esac
    sleep 1
done
log "the node did not come up (state: ${state:-none}); see /var/log/slurm/"
exit 1
