#!/bin/bash
# The Slurm scripts of jobs/ on a real (one-host) Slurm cluster: ctest -R slurm.array
#
#   1. starts Slurm with tests/slurm/start-slurm.sh (skipped, status 77, when it cannot);
#   2. a tiny campaign (configs/demo.yaml shrunk to 6 batches of 4, 400 sampler steps: a run
#      takes a few seconds, long enough to be interrupted; with a snapshot of models/mp20.h5,
#      which a training run may rewrite meanwhile);
#   3. jobs/submit-array.sh CONFIG 3: a job array of 3 shards and the afterok merge job;
#      waits for the merge (scontrol show job polling, no accounting needed);
#   4. the same campaign as one run (mpirun -np 1 druse screen) and checks with h5py
#      (tests/campaign/archive_tools.py) that the merged archive equals it, sorted by sample id;
#   5. jobs/screen.sbatch on the same campaign, interrupted with SIGUSR1 to the batch shell
#      (what --signal=B:USR1@120 sends): druse commits and exits 75, the job requeues itself,
#      the rerun resumes; its archive equals the single run too;
#   6. stops Slurm (trap), unless it was already running before the test.
#
# Environment: DRUSE (the executable), DRUSE_SOURCE_DIR, DRUSE_TEST_TMP (from ctest);
# DRUSE_SLURM_DIR (start-slurm.sh's folder); DRUSE_SLURM_TEST_TIMEOUT_S (per wait, 240).
set -u
SRC=${DRUSE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
DRUSE=${DRUSE:-$SRC/build/druse}
PY=${DRUSE_REFEREE_PYTHON:-/usr/bin/python3}
WAIT_S=${DRUSE_SLURM_TEST_TIMEOUT_S:-240}
export DRUSE
export SLURM_CONF=${DRUSE_SLURM_DIR:-/tmp/druse-slurm}/slurm.conf
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1
PATH=$PATH:/usr/sbin:/sbin

T0=$(date +%s)
say() { echo "test_slurm_array: [$(( $(date +%s) - T0 )) s] $*" >&2; }
FAILED=0
check() {  # check CONDITION-STATUS WHAT
    if [ "$1" = 0 ]; then say "ok: $2"; else say "FAIL: $2"; FAILED=1; fi
}

[ -x "$DRUSE" ] || { say "no druse executable at $DRUSE"; exit 1; }
"$DRUSE" screen --help >/dev/null 2>&1 || { say "druse has no screen command yet: skipped"; exit 77; }
[ -r "$SRC/models/mp20.h5" ] || { say "no model $SRC/models/mp20.h5: skipped"; exit 77; }
"$PY" -c "import h5py, numpy" 2>/dev/null || { say "$PY has no h5py: skipped"; exit 77; }

W=$(mktemp -d "${DRUSE_TEST_TMP:-/tmp}/slurm-array.XXXXXX") || exit 1

# --- Slurm -------------------------------------------------------------------------------
WAS_UP=0
if [ -f "$SLURM_CONF" ] && timeout 10 sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    WAS_UP=1
fi
"$SRC/tests/slurm/start-slurm.sh" >/dev/null
rc=$?
if [ "$rc" = 77 ]; then say "Slurm cannot run here: skipped"; rm -rf "$W"; exit 77; fi
[ "$rc" = 0 ] || { say "start-slurm.sh failed ($rc)"; exit 1; }
# shellcheck disable=SC2317,SC2086  # called by the trap; a list of job ids
cleanup() {
    [ -n "${JOBS_SUBMITTED:-}" ] && timeout 10 scancel $JOBS_SUBMITTED 2>/dev/null
    [ "$WAS_UP" = 0 ] && "$SRC/tests/slurm/stop-slurm.sh" 2>/dev/null
    [ "$FAILED" = 0 ] && [ "${DRUSE_SLURM_KEEP:-0}" != 1 ] && rm -rf "$W"
}
trap cleanup EXIT
say "Slurm up ($SLURM_CONF); work folder $W"

# --- the campaign ------------------------------------------------------------------------
cp "$SRC/models/mp20.h5" "$W/model.h5" || exit 1
sed -e "s#^  name: .*#  name: slurm-array#" \
    -e "s#^  model: .*#  model: $W/model.h5#" \
    -e "s#^  output: .*#  output: $W/array.h5#" \
    -e "s#^  batches: .*#  batches: 6#" \
    -e "s#^  batch_size: .*#  batch_size: 4#" \
    -e "s#^  steps: .*#  steps: 400#" \
    "$SRC/configs/demo.yaml" >"$W/campaign.yaml"
eff=$("$DRUSE" config check "$W/campaign.yaml") || { say "config check failed"; exit 1; }
for want in "batches: 6" "batch_size: 4" "steps: 400" "output: \"$W/array.h5\"" "model: \"$W/model.h5\""; do
    grep -qF "  $want" <<<"$eff" || { say "the shrunk config lacks '$want':"; echo "$eff" >&2; exit 1; }
done

# Field F of job J (first line: for an array, any task).
job_field() { timeout 10 scontrol show job -o "$1" 2>/dev/null | head -1 | grep -o "$2=[^ ]*" | cut -d= -f2; }
dump_logs() {
    for f in "$W"/druse-*.out; do [ -f "$f" ] && { echo "== $f"; tail -n 25 "$f"; }; done >&2
    echo "== slurmctld.log" >&2; tail -n 15 "$(dirname "$SLURM_CONF")/slurmctld.log" >&2
}
# wait_done J: until job J (every task of an array) is in a final state; prints the states.
wait_done() {
    local j=$1 end=$(( $(date +%s) + WAIT_S )) states
    while :; do
        states=$(timeout 10 scontrol show job -o "$j" 2>/dev/null | grep -o "JobState=[A-Z_]*" | cut -d= -f2 | sort | uniq -c | tr -s ' \n' ' ')
        if [ -n "$states" ] && ! grep -qE 'PENDING|RUNNING|CONFIGURING|COMPLETING|REQUEUE|SUSPENDED|RESIZING|SIGNALING|STAGE_OUT' <<<"$states"; then
            echo "$states"; return 0
        fi
        [ "$(date +%s)" -ge "$end" ] && { echo "timeout: $states"; return 1; }
        sleep 1
    done
}

# --- 3. the job array and the merge -------------------------------------------------------
cd "$W" || exit 1
ids=$("$SRC/jobs/submit-array.sh" campaign.yaml 3)
check $? "jobs/submit-array.sh campaign.yaml 3 submits ($ids)"
read -r ARRAY MERGE <<<"$ids"
[ -n "${MERGE:-}" ] || { say "submit-array.sh printed no job ids"; dump_logs; exit 1; }
JOBS_SUBMITTED="$ARRAY $MERGE"
dep=$(job_field "$MERGE" Dependency)
check "$([[ $dep == *afterok:${ARRAY}* ]]; echo $?)" "the merge depends on the array (Dependency=$dep)"

st=$(wait_done "$MERGE"); rc=$?
check $rc "the merge job finished within $WAIT_S s ($st)"
ast=$(wait_done "$ARRAY")
check "$([[ $ast == " 3 COMPLETED " ]]; echo $?)" "the 3 array tasks completed ($ast)"
check "$([[ $st == *COMPLETED* ]] && [ "$(job_field "$MERGE" ExitCode)" = 0:0 ]; echo $?)" \
      "the merge job completed with exit code 0"
for k in 0 1 2; do
    [ -f "$W/array.shard-$k.h5" ]; check $? "shard archive array.shard-$k.h5 written"
done
[ -f "$W/array.h5" ]; check $? "merged archive array.h5 written"
grep -q -- "--shard 1/3 --output $W/array.shard-1.h5" "$W"/druse-array-"${ARRAY}"_1.out 2>/dev/null
check $? "task 1 ran shard 1/3 into array.shard-1.h5"

# --- 4. one run, compared -----------------------------------------------------------------
mpirun -np 1 --oversubscribe "$DRUSE" screen "$W/campaign.yaml" --output "$W/single.h5" \
    >"$W/single.log" 2>&1
check $? "the single run (mpirun -np 1 druse screen) completes"
compare() {
    PYTHONPATH="$SRC/tests/campaign" "$PY" - "$1" "$2" <<'EOF'
import sys, h5py, archive_tools
a, b = sys.argv[1], sys.argv[2]
n = len(h5py.File(a, "r")["crystals/sample_id"])
d = archive_tools.differences(a, b)
print(f"{n} crystals, " + ("equal" if not d else "differences: " + "; ".join(d)))
sys.exit(0 if n > 0 and not d else 1)
EOF
}
out=$(compare "$W/single.h5" "$W/array.h5" 2>&1)
check $? "the merged array archive equals the single run, sorted by sample id ($out)"

# --- 5. jobs/screen.sbatch, interrupted and requeued ---------------------------------------
J=$(DRUSE_OUTPUT="$W/requeued.h5" sbatch --parsable --export=ALL --ntasks=1 \
    "$SRC/jobs/screen.sbatch" campaign.yaml)
check $? "sbatch jobs/screen.sbatch submits (job $J)"
J=${J%%;*}
JOBS_SUBMITTED="$JOBS_SUBMITTED $J"
LOG=$W/druse-screen-$J.out
end=$(( $(date +%s) + WAIT_S ))
until grep -q " 0 done" "$LOG" 2>/dev/null || [ "$(date +%s)" -ge "$end" ]; do sleep 0.2; done
# signal a third of the way into the campaign, as long as the single run's took
wall=$(grep -o "time: wall [0-9.]*" "$W/single.log" | awk '{print $3}')
sleep "$(awk -v w="${wall:-3}" 'BEGIN { p = w / 3; print (p < 0.2 ? 0.2 : p) }')"
timeout 10 scancel --signal=USR1 --batch "$J"
check $? "scancel --signal=USR1 --batch (what --signal=B:USR1@120 sends)"
# Slurm holds a requeued job for AuthInfo=cred_expire s (start-slurm.sh: 10 s), then reruns it.
st=$(wait_done "$J"); rc=$?
check "$([ $rc = 0 ] && [[ $st == *COMPLETED* ]]; echo $?)" "the screen job completed ($st)"
restarts=$(job_field "$J" Restarts)
interrupted=$(grep -c "stopped by signal" "$LOG")
check "$([ "${restarts:-0}" -ge 1 ] && [ "$interrupted" -ge 1 ]; echo $?)" \
      "it was interrupted (druse committed and stopped) and requeued itself ($restarts restarts)"
grep -q "requeueing" "$LOG"; check $? "screen.sbatch saw status 75 and requeued"
out=$(compare "$W/single.h5" "$W/requeued.h5" 2>&1)
check $? "the interrupted and requeued job's archive equals the single run ($out)"

if [ "$FAILED" != 0 ]; then dump_logs; say "FAILED (work folder kept: $W)"; exit 1; fi
say "passed in $(( $(date +%s) - T0 )) s"
exit 0
