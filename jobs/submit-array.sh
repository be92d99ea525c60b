#!/bin/bash
# Submits a campaign as a Slurm job array of NTASKS shards (jobs/screen-array.sbatch) and the
# merge job (jobs/merge.sbatch) that runs when every task has completed (afterok).
#
#   jobs/submit-array.sh configs/mp20-overnight.yaml 8
#   DRUSE_SBATCH_OPTS="--partition=compute --account=myproject --time=12:00:00" \
#       jobs/submit-array.sh configs/mp20-overnight.yaml 8
#
# Run it from the folder the config's relative paths refer to (the jobs run there). It prints
# "ARRAYJOBID MERGEJOBID" on stdout (and a line on stderr); watch with squeue, the logs are
# druse-array-ARRAYJOBID_k.out and druse-merge-MERGEJOBID.out.
#
# Environment: DRUSE (default: druse on PATH, else build/druse next to jobs/), DRUSE_OUTPUT,
# DRUSE_NP, DRUSE_LAUNCH (see jobs/screen.sbatch) are passed to the jobs (--export=ALL);
# DRUSE_SBATCH_OPTS: extra sbatch options for both jobs; DRUSE_ARRAY_OPTS: for the array
# tasks only (e.g. "--ntasks=4 --time=12:00:00"); DRUSE_ARRAY_THROTTLE=N: at most N tasks at
# once (--array=0-K%N). A failed task cancels the merge (--kill-on-invalid-dep=yes); rerun
# the array (this script, or DRUSE_SHARDS=K sbatch --array=k for one task) to resume.
# Exit status: 0 both submitted; 1 sbatch failed (a submitted array is cancelled again);
# 2 usage.
set -u
usage() { echo "usage: jobs/submit-array.sh CONFIG.yaml NTASKS" >&2; exit 2; }
[ $# = 2 ] || usage
CONFIG=$1
NTASKS=$2
[[ $NTASKS =~ ^[1-9][0-9]*$ ]] || usage
[ -r "$CONFIG" ] || { echo "submit-array.sh: cannot read config $CONFIG" >&2; exit 2; }

JOBS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -z "${DRUSE:-}" ]; then
    if command -v druse >/dev/null; then DRUSE=$(command -v druse)
    else DRUSE=$(dirname "$JOBS")/build/druse; fi
fi
[ -x "$DRUSE" ] || { echo "submit-array.sh: no druse executable at $DRUSE (set DRUSE)" >&2; exit 2; }
# Check the config before anything is queued.
"$DRUSE" config check "$CONFIG" >/dev/null || exit 2
export DRUSE
export DRUSE_SHARDS=$NTASKS

# shellcheck disable=SC2086
ARRAY=$(sbatch --parsable --export=ALL ${DRUSE_SBATCH_OPTS:-} ${DRUSE_ARRAY_OPTS:-} \
        --array=0-$((NTASKS - 1))${DRUSE_ARRAY_THROTTLE:+%$DRUSE_ARRAY_THROTTLE} \
        "$JOBS/screen-array.sbatch" "$CONFIG") ||
    { echo "submit-array.sh: sbatch of the array failed" >&2; exit 1; }
ARRAY=${ARRAY%%;*}   # --parsable prints "jobid[;cluster]"
# shellcheck disable=SC2086
MERGE=$(sbatch --parsable --export=ALL ${DRUSE_SBATCH_OPTS:-} \
        --dependency=afterok:"$ARRAY" --kill-on-invalid-dep=yes \
        "$JOBS/merge.sbatch" "$CONFIG") ||
    { echo "submit-array.sh: sbatch of the merge failed; cancelling array $ARRAY" >&2
      scancel "$ARRAY"; exit 1; }
MERGE=${MERGE%%;*}
echo "submit-array.sh: array job $ARRAY ($NTASKS shards of $CONFIG), merge job $MERGE (afterok:$ARRAY)" >&2
echo "$ARRAY $MERGE"
