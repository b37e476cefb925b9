#!/usr/bin/env bash
# Stop the single-node Slurm started by ci/slurm-up.sh (by PID; the packages stay
# installed, so the next slurm-up.sh is quick). Idempotent: stopping what is not running
# is not an error.
set -uo pipefail

stop() { # stop NAME PIDFILE
    local pid
    if [ -f "$2" ] && pid=$(cat "$2") && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "slurm-down: stopped $1" >&2
    fi
    # a stale pid file makes the package's removal script fail (batch-systems.md)
    rm -f "$2"
}

command -v squeue >/dev/null && squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null
stop slurmd /run/slurmd.pid
stop slurmctld /run/slurmctld.pid
stop munged /run/munge/munged.pid
exit 0
