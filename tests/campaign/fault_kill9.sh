#!/bin/sh
# The long fault test: kill -9 of whole campaign runs at 12 random moments (CI runs 3 of them
# inside referee.test_screen), each resumed and compared with an uninterrupted run.
#   tests/campaign/fault_kill9.sh [build/druse]
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
export DRUSE="${1:-$here/build/druse}" DRUSE_SOURCE_DIR="$here" DRUSE_KILL_MOMENTS=12
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export DRUSE_TEST_TMP="${DRUSE_TEST_TMP:-/tmp/druse-fault}"
mkdir -p "$DRUSE_TEST_TMP"
exec /usr/bin/python3 "$here/tests/referee/test_screen.py"
