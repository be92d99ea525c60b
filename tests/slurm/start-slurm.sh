#!/bin/bash
# Starts a one-host Slurm cluster for the tests (tests/slurm/test_slurm_array.sh) or to try
# jobs/ by hand:
#
#   tests/slurm/start-slurm.sh            # as root; prints the SLURM_CONF line to export
#   export SLURM_CONF=/tmp/druse-slurm/slurm.conf
#   sbatch --wrap hostname; sinfo; squeue
#   tests/slurm/stop-slurm.sh
#
# What it does: installs the Debian 12 packages when missing (slurmd slurmctld slurm-client
# munge), writes a slurm.conf for this host alone (NodeName=$(hostname -s), CPUs from nproc,
# one default partition, select/cons_tres, proctrack/linuxproc, task/none, no accounting,
# jobs may run as root) into DRUSE_SLURM_DIR (default /tmp/druse-slurm; state, spool, logs and
# pid files live there too), creates a munge key when there is none, starts munged,
# slurmctld and slurmd, and waits (DRUSE_SLURM_WAIT_S, default 60 s) until sinfo shows the
# node idle. It never touches /etc/slurm: the clients find the config through SLURM_CONF.
#
# Exit status: 0 the cluster is up (also when it already was); 77 it cannot be started here
# (not root, packages unavailable, a daemon does not come up: the reason is printed; the
# tests count this as skipped); 1 a bug in this script.
set -u

DIR=${DRUSE_SLURM_DIR:-/tmp/druse-slurm}
WAIT_S=${DRUSE_SLURM_WAIT_S:-60}
CONF=$DIR/slurm.conf
export SLURM_CONF=$CONF

skip() { echo "start-slurm: cannot start Slurm here: $*" >&2; exit 77; }
log() { echo "start-slurm: $*" >&2; }

[ "$(id -u)" = 0 ] || skip "not root (slurmctld, slurmd and munged need root here)"

have_all() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
    command -v sbatch >/dev/null && command -v munged >/dev/null &&
    command -v scontrol >/dev/null
}
PATH=$PATH:/usr/sbin:/sbin
if ! have_all; then
    command -v apt-get >/dev/null || skip "Slurm is not installed and there is no apt-get"
    log "installing slurmd slurmctld slurm-client munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >"$DIR.apt.log" 2>&1 ||
        log "apt-get update failed (see $DIR.apt.log); trying the install anyway"
    apt-get install -y -qq --no-install-recommends slurmd slurmctld slurm-client munge \
        >>"$DIR.apt.log" 2>&1 ||
        skip "apt-get install slurmd slurmctld slurm-client munge failed (see $DIR.apt.log)"
    have_all || skip "the Slurm packages installed but a command is missing"
fi

HOST=$(hostname -s)
NCPU=$(nproc)

# Already up with our config? Then there is nothing to do.
if [ -f "$CONF" ] && timeout 10 sinfo -h -n "$HOST" -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    log "already running (SLURM_CONF=$CONF)"
    echo "export SLURM_CONF=$CONF"
    exit 0
fi

mkdir -p "$DIR/state" "$DIR/spool" || skip "cannot create $DIR"

# --- munge -------------------------------------------------------------------------------
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    if [ ! -s /etc/munge/munge.key ]; then
        log "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key --force >/dev/null 2>&1
        fi
        [ -s /etc/munge/munge.key ] ||
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null
    fi
    MUNGE_USER=root
    id munge >/dev/null 2>&1 && MUNGE_USER=munge
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown "$MUNGE_USER:" /etc/munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
    chmod 0700 /etc/munge /var/lib/munge /var/log/munge
    chmod 0755 /run/munge
    chmod 0400 /etc/munge/munge.key
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    if [ "$MUNGE_USER" = munge ]; then
        runuser -u munge -- munged || skip "munged does not start"
    else
        munged --force || skip "munged does not start"
    fi
    touch "$DIR/munged.started-here"
    for _ in $(seq 1 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.2
    done
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 ||
        skip "munged started but munge -n | unmunge fails"
fi

# --- slurm.conf --------------------------------------------------------------------------
cat >"$CONF" <<EOF
# Written by tests/slurm/start-slurm.sh: a one-host test cluster, not for production.
ClusterName=druse-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job may start again after cred_expire seconds (default 120): short for tests.
AuthInfo=cred_expire=10
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmctldTimeout=60
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=300
KillWait=30
Waittime=0
MaxArraySize=1001
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
# Slurm refuses a cgroup.conf it cannot use only when a cgroup plugin is configured; none is.

# --- daemons -----------------------------------------------------------------------------
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if ! alive "$DIR/slurmctld.pid"; then
    # -i: ignore (and start without) a state file an older run left behind.
    slurmctld -f "$CONF" -i ||
        skip "slurmctld does not start (see $DIR/slurmctld.log)"
fi
if ! alive "$DIR/slurmd.pid"; then
    slurmd -f "$CONF" || skip "slurmd does not start (see $DIR/slurmd.log)"
fi

state=
for _ in $(seq 1 $((WAIT_S * 2))); do
    state=$(timeout 5 sinfo -h -n "$HOST" -o %T 2>/dev/null | head -1)
    case $state in
        idle|mixed|allocated) break ;;
        drain*|down*) timeout 5 scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 ;;
    esac
    sleep 0.5
done
case $state in
    idle|mixed|allocated) ;;
    *) log "slurmctld.log:"; tail -5 "$DIR/slurmctld.log" >&2 2>/dev/null
       log "slurmd.log:"; tail -5 "$DIR/slurmd.log" >&2 2>/dev/null
       skip "node $HOST is not idle after ${WAIT_S} s (state '${state:-none}')" ;;
esac
log "up: node $HOST, $NCPU CPUs, partition debug (SLURM_CONF=$CONF)"
echo "export SLURM_CONF=$CONF"
exit 0
