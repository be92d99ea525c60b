#!/bin/bash
# Stops the test cluster that tests/slurm/start-slurm.sh started: cancels its jobs, stops
# slurmd and slurmctld (by their pid files in DRUSE_SLURM_DIR, default /tmp/druse-slurm) and
# munged when start-slurm.sh started it. Leaves the packages and /etc/munge/munge.key.
# DRUSE_SLURM_KEEP=1 keeps DRUSE_SLURM_DIR (logs, state); by default only the logs are kept.
set -u
DIR=${DRUSE_SLURM_DIR:-/tmp/druse-slurm}
export SLURM_CONF=$DIR/slurm.conf
PATH=$PATH:/usr/sbin:/sbin

[ -d "$DIR" ] || exit 0

if [ -f "$SLURM_CONF" ] && command -v scancel >/dev/null; then
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null)
    if [ -n "$jobs" ]; then
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs 2>/dev/null
        for _ in $(seq 1 40); do
            [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
fi

stop_pidfile() {
    local f=$1 pid
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$f"
}
stop_pidfile "$DIR/slurmd.pid"
stop_pidfile "$DIR/slurmctld.pid"
if [ -f "$DIR/munged.started-here" ]; then
    stop_pidfile /run/munge/munged.pid
    rm -f "$DIR/munged.started-here"
fi

if [ "${DRUSE_SLURM_KEEP:-0}" != 1 ]; then
    rm -rf "$DIR/state" "$DIR/spool"
fi
echo "stop-slurm: stopped (logs in $DIR)" >&2
exit 0
