#!/usr/bin/env bash
# Start a personal HTCondor pool (central manager, schedd and startd on 127.0.0.1) on this
# machine, and the unprivileged user `hfpipe` that submits to it.
#
# HTCondor is not packaged for Debian 12, so the daemons come from Debian 13's
# `minicondor` in a minimal chroot (HFPIPE_CONDOR_ROOT, default /srv/trixie). /dev, /proc,
# /tmp, /root, /home and the checkout's parent folder are bind-mounted into the chroot at
# the same paths, so jobs (which run inside it) see the host's files and Python: host and
# jobs share one filesystem. Host-side condor_* commands are wrappers in /usr/local/bin
# that run the chroot's binaries through its own dynamic loader.
#
# HTCondor refuses jobs owned by root: submit as `hfpipe` (runuser -u hfpipe -- ...). That
# user gets an IDTOKEN (~hfpipe/.condor/tokens.d/), because the Python bindings the
# snakemake plugin needs (htcondor 24) cannot authenticate to 23.x daemons by filesystem.
#
# Idempotent: builds the chroot once, re-creates only missing mounts, users and tokens,
# starts condor_master only if it is not running, and returns once a slot is free.
# Needs root, apt and network. The facts and pitfalls: ../shared/notes/batch-systems.md.
set -euo pipefail

ROOT=${HFPIPE_CONDOR_ROOT:-/srv/trixie}
MIRROR=${HFPIPE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
USER_NAME=hfpipe
checkout=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { echo "htcondor-up: $*" >&2; }

# --- the chroot with minicondor --------------------------------------------------------
if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends debootstrap >/dev/null
fi
# a marker, not the chroot's files, says debootstrap finished (an interrupted one is redone)
if [ ! -f "$ROOT/.hfpipe-debootstrap-done" ]; then
    log "debootstrap Debian 13 (trixie) into $ROOT"
    debootstrap --variant=minbase trixie "$ROOT" "$MIRROR" >/dev/null
    touch "$ROOT/.hfpipe-debootstrap-done"
fi

bind() { # bind-mount a host folder at the same path inside the chroot
    mkdir -p "$ROOT$1"
    mountpoint -q "$ROOT$1" || mount --bind "$1" "$ROOT$1"
}
for dir in /dev /dev/pts /dev/shm /proc /tmp /root /home; do bind "$dir"; done
parent=$(dirname "$checkout")
[ "$parent" = / ] && parent=$checkout
bind "$parent"
# folders beside the checkout that are links elsewhere (a `shared` data folder linked in,
# say): jobs inside the chroot resolve the link, so its target must be there too
for link in "$parent"/*; do
    [ -L "$link" ] && [ -d "$link" ] || continue
    target=$(realpath "$link")
    case "$target" in
    /tmp/* | /root/* | /home/* | "$parent"/*) ;;
    *) bind "$target" ;;
    esac
done
# the Python the jobs run must be reachable inside the chroot too
python_prefix=$(python3 -c 'import os, sys; print(os.path.realpath(sys.base_prefix))')
case "$python_prefix" in
/root/* | /home/* | /tmp/* | "$parent"/*) ;;
*) bind "$python_prefix" ;;
esac

if [ ! -x "$ROOT/usr/sbin/condor_master" ]; then
    log "installing minicondor in the chroot"
    chroot "$ROOT" apt-get update -q >/dev/null
    # the shared libraries the host's Python and its extension modules load in jobs
    DEBIAN_FRONTEND=noninteractive chroot "$ROOT" apt-get install -y -q --no-install-recommends \
        minicondor libffi8 libssl3t64 libsqlite3-0 libbz2-1.0 liblzma5 zlib1g libuuid1 \
        libreadline8t64 libncursesw6 libexpat1 >/dev/null
fi

# --- the unprivileged submitter, same uid/gid on host and in the chroot -----------------
id "$USER_NAME" >/dev/null 2>&1 || useradd -m -s /bin/bash "$USER_NAME"
uid=$(id -u "$USER_NAME")
gid=$(id -g "$USER_NAME")
chroot "$ROOT" getent group "$gid" >/dev/null || chroot "$ROOT" groupadd -g "$gid" "$USER_NAME"
chroot "$ROOT" id "$USER_NAME" >/dev/null 2>&1 ||
    chroot "$ROOT" useradd -M -u "$uid" -g "$gid" -d "/home/$USER_NAME" -s /bin/bash "$USER_NAME"
# let hfpipe reach the Python interpreter and the checkout (o+x on every folder above them)
for path in "$python_prefix" "$checkout"; do
    while [ "$path" != / ]; do
        chmod o+x "$path"
        path=$(dirname "$path")
    done
done

# --- configuration ----------------------------------------------------------------------
cpus=$(nproc)
memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
# the pool's address and domains: the same for the daemons and the host-side commands
pool='CONDOR_HOST = 127.0.0.1
NETWORK_INTERFACE = 127.0.0.1
BIND_ALL_INTERFACES = False
ENABLE_IPV6 = False
UID_DOMAIN = localpool
FILESYSTEM_DOMAIN = localpool'
cat >"$ROOT/etc/condor/config.d/99-hfpipe.conf" <<CONF
# written by hfpipe's ci/htcondor-up.sh
${pool}
TRUST_UID_DOMAIN = True
BASE_CGROUP =
USE_PID_NAMESPACES = False
MOUNT_UNDER_SCRATCH =
NUM_CPUS = ${cpus}
MEMORY = ${memory}
START = True
SUSPEND = False
PREEMPT = False
# a vacating job (condor_rm) gets 20 s to end before it is killed; with KILL = False a
# starter that lost its shadow holds the slot for the whole job lease (40 min)
KILL = (time() - EnteredCurrentActivity) > 20
MachineMaxVacateTime = 20
SCHEDD_INTERVAL = 5
NEGOTIATOR_INTERVAL = 2
NEGOTIATOR_MIN_INTERVAL = 1
STARTER_UPDATE_INTERVAL = 5
CONF
mkdir -p /etc/condor
cat >/etc/condor/condor_config <<CONF
# host-side client configuration, written by hfpipe's ci/htcondor-up.sh
${pool}
SEC_CLIENT_AUTHENTICATION_METHODS = FS, IDTOKENS
CONDOR_IDS = 0.0
CONF

# host-side commands: the chroot's binaries through the chroot's own loader (works for
# non-root users too); condor_history reads the schedd's spool, so it runs in the chroot
loader="$ROOT/lib64/ld-linux-x86-64.so.2 --library-path $ROOT/usr/lib/x86_64-linux-gnu:$ROOT/lib/x86_64-linux-gnu:$ROOT/usr/lib"
for tool in condor_q condor_status condor_rm condor_submit condor_hold condor_release condor_wait; do
    printf '#!/bin/sh\n# hfpipe ci/htcondor-up.sh: %s from the chroot %s\nexec %s %s/usr/bin/%s "$@"\n' \
        "$tool" "$ROOT" "$loader" "$ROOT" "$tool" >"/usr/local/bin/$tool"
    chmod 755 "/usr/local/bin/$tool"
done
printf '#!/bin/sh\n# hfpipe ci/htcondor-up.sh: condor_history inside the chroot %s (root only)\nexec chroot %s condor_history "$@"\n' \
    "$ROOT" "$ROOT" >/usr/local/bin/condor_history
chmod 755 /usr/local/bin/condor_history

# --- start ------------------------------------------------------------------------------
pidfile="$ROOT/run/condor/condor_master.pid"
if ! { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }; then
    log "starting condor_master"
    # inside the chroot: some of these are symlinks there (/var/lock → /run/lock)
    for dir in /run/condor /run/lock/condor /var/log/condor /var/lib/condor /var/spool/condor; do
        chroot "$ROOT" install -d -o condor -g condor "$dir"
    done
    rm -f "$pidfile"
    chroot "$ROOT" condor_master -pidfile /run/condor/condor_master.pid
else
    chroot "$ROOT" condor_reconfig >/dev/null # pick up the configuration written above
fi

# tokens: for hfpipe (the Python bindings need one) and for root's host-side commands
token() { # token USER HOME
    local dir="$2/.condor/tokens.d"
    [ -s "$dir/hfpipe-localpool" ] && return 0
    mkdir -p "$dir"
    for _ in $(seq 30); do
        chroot "$ROOT" condor_token_create -identity "$1@localpool" >"$dir/hfpipe-localpool" 2>/dev/null &&
            [ -s "$dir/hfpipe-localpool" ] && break
        sleep 1
    done
    chown -R "$1:" "$2/.condor"
    chmod 700 "$2/.condor" "$dir"
    chmod 600 "$dir/hfpipe-localpool"
}
token "$USER_NAME" "/home/$USER_NAME"
token root /root

for _ in $(seq 120); do
    if runuser -u "$USER_NAME" -- condor_status -schedd -af Name 2>/dev/null | grep -q . &&
        [ "$(condor_status -af State 2>/dev/null | grep -c Unclaimed)" -gt 0 ]; then
        log "up: pool at 127.0.0.1, $(condor_status -af Name | wc -l) slot(s), submit as $USER_NAME"
        exit 0
    fi
    sleep 1
done
log "the pool did not come up; see $ROOT/var/log/condor/"
exit 1
