#!/bin/bash
# `make demo`: what druse can do today, on real data. The screening campaign (`druse screen`)
# does not exist yet; until it does, this shows the parts that do, on the MP-20 test split.
set -euo pipefail
DRUSE=${1:-build/druse}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DRUSE_DATA:-$ROOT/../shared/data}
MP20_TEST=$DATA/mp_20/test.csv.gz

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

step "versions found at run time" "$DRUSE" --version
if [ ! -f "$MP20_TEST" ]; then
    echo "demo: $MP20_TEST not found. Set DRUSE_DATA to a folder holding mp_20/test.csv.gz"
    echo "      (the MP-20 benchmark, CDVAE split: see README, 'Datasets')."
    exit 1
fi
step "read and summarize the 9,046 MP-20 test structures (CIF strings in a gzip'd CSV)" \
    "$DRUSE" inspect --summary "$MP20_TEST"
step "the first structures, one line each" bash -c "'$DRUSE' inspect '$MP20_TEST' | head -6"
step "the element table druse uses (SMACT oxidation states, UFF parameters)" \
    "$DRUSE" elements Fe O Li P
step "a campaign config, validated with defaults filled in" \
    "$DRUSE" config check "$ROOT/configs/demo.yaml"
echo
echo "demo: done. The screening campaign (mpirun -np N druse screen) is not built yet;"
echo "      see README 'Status' for what exists today."
