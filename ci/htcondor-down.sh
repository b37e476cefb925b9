#!/usr/bin/env bash
# Stop the personal HTCondor pool started by ci/htcondor-up.sh and unmount its bind mounts.
# The chroot stays (the next htcondor-up.sh then starts in seconds). Idempotent.
# Never `rm -rf` the chroot while mounts are in place: it would delete the host's folders.
set -uo pipefail

ROOT=${HFPIPE_CONDOR_ROOT:-/srv/trixie}
pidfile="$ROOT/run/condor/condor_master.pid"

if [ -f "$pidfile" ] && pid=$(cat "$pidfile") && kill -0 "$pid" 2>/dev/null; then
    chroot "$ROOT" condor_off -master -fast >/dev/null 2>&1 || kill "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    echo "htcondor-down: stopped condor_master" >&2
fi
rm -f "$pidfile"

# unmount deepest first
if [ -d "$ROOT" ]; then
    findmnt -rn -o TARGET | grep "^$ROOT/" | sort -r | while read -r target; do
        umount "$target" 2>/dev/null || umount -l "$target"
    done
fi
exit 0
