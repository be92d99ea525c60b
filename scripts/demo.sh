#!/bin/bash
# `make demo`: what druse can do today, on real data. The screening campaign (`druse screen`)
# does not exist yet; until it does, this shows the parts that do, on the MP-20 test split.
set -euo pipefail
DRUSE=${1:-build/druse}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DRUSE_DATA:-$ROOT/../shared/data}
MP20_TEST=$DATA/mp_20/test.csv.gz

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/druse-demo.XXXXXX")
mkdir -p "$WORK/first40"
trap 'rm -rf "$WORK"' EXIT

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
step "screening filters on all 9,046 (distance rule + SMACT charge neutrality): pass rates" \
    bash -c "'$DRUSE' filter --checks distance,charge '$MP20_TEST' >/dev/null"
"$DRUSE" convert --format cif "$MP20_TEST" "$WORK/cifs/" >/dev/null
cifs=("$WORK"/cifs/*.cif)
cp "${cifs[@]:0:40}" "$WORK/first40/"
step "the full chain with spglib symmetry on the first 40 test structures, as CIF files" \
    bash -c "'$DRUSE' filter '$WORK/first40' | cut -f1-3,6-11 | sed -n 1,8p"
step "cheap relaxation (MP-20-fitted pair potential + FIRE with a variable cell) of those 40" \
    bash -c "'$DRUSE' relax '$WORK/first40' -o '$WORK/relaxed.xyz' | sed -n 1,6p"
step "uniqueness and novelty of the test split against the 27,128 training structures" \
    bash -c "'$DRUSE' dedup --json --reference '$DATA/mp_20/train.csv.gz' '$MP20_TEST' | tail -1"
step "a campaign config, validated with defaults filled in" \
    "$DRUSE" config check "$ROOT/configs/demo.yaml"
echo
echo "demo: done. The screening campaign (mpirun -np N druse screen) is not built yet;"
echo "      see README 'Status' for what exists today."
