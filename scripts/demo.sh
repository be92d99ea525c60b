#!/bin/bash
# `make demo`: a small real screening campaign with the shipped model (configs/demo.yaml), after
# a short look at the parts it is made of, on the MP-20 test split.
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
step "a campaign config, validated with defaults filled in" \
    "$DRUSE" config check "$ROOT/configs/demo.yaml"
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OPENBLAS_NUM_THREADS=1
cd "$ROOT" # the config's paths (model, novelty reference) are relative to the project root
step "the demo campaign: rank 0 dispatches, 2 workers sample, filter, relax and archive" \
    mpirun --oversubscribe -np 3 "$DRUSE" screen configs/demo.yaml --output "$WORK/demo.h5"
echo "archived: $(h5dump -a /campaign/archived "$WORK/demo.h5" | grep '(0)')  (h5dump, no druse)"
step "the survivors, exported as CIF for the next step (DFT)" \
    "$DRUSE" export "$WORK/demo.h5" --format cif -o "$WORK/survivors"
ls "$WORK/survivors" | head -5
echo
echo "demo: done. A real campaign: mpirun -np N druse screen configs/mp20-overnight.yaml"
echo "      (README 'Campaigns'; jobs/ for Slurm)."
