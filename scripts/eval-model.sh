#!/bin/bash
# The evaluation of a generator model the way the field measures CDVAE / DiffCSP / MatterGen /
# FlowMM (issue 7; definitions in docs/eval.md, our figures in models/README.md):
#
#   scripts/eval-model.sh DRUSE MODEL DATA_DIR OUT_DIR [NPROC]
#
#   1. generation (skipped with N_GEN=0): N_GEN (10,000) samples at the default settings of
#      `druse sample`, then
#      `druse eval` (validity over all, W1 over the first 1,000 valid, uniqueness, novelty,
#      space groups) -> OUT_DIR/gen.txt, gen.json
#   2. CSP: one sample per test structure (`--csp-from DATA_DIR/test.csv.gz`; N_CSP: only the
#      first N_CSP), then
#      `druse eval --csp` (match rate, RMSE) -> OUT_DIR/csp.txt, csp.json
#   3. conditioning: N_COND (200) samples with --composition Li3PO4 and with --elements
#      Li,Fe,P,O, evaluated the same way -> OUT_DIR/li3po4.*, lifepo.*
#
# Samples are split over NPROC processes (default: nproc) with --shard; the shards
# concatenated equal one run. A step whose output exists is skipped, so rerunning after an
# interruption continues. SAMPLE_OPTS adds options to every `druse sample` (e.g. "--steps
# 1000 --stride 1"), SEED sets the seed (default 1).
set -euo pipefail
if [ $# -lt 4 ]; then
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
druse=$1 model=$2 data=$3 out=$4 nproc=${5:-$(nproc)}
n_gen=${N_GEN:-10000} n_cond=${N_COND:-200} n_csp=${N_CSP:-0} seed=${SEED:-1}
read -r -a extra <<<"${SAMPLE_OPTS:-}"
export OPENBLAS_NUM_THREADS=1
mkdir -p "$out"

# sample NAME ARGS...: OUT_DIR/NAME.xyz from NPROC shards (kept until all are done).
sample() {
    local name=$1
    shift
    [ -s "$out/$name.xyz" ] && return 0
    local pids=() i
    for ((i = 0; i < nproc; i++)); do
        local part="$out/$name.part$i-of-$nproc"
        [ -s "$part.xyz" ] && continue
        ( "$druse" sample --model "$model" --seed "$seed" "${extra[@]}" "$@" \
              --shard "$i/$nproc" -o "$part.tmp.xyz" 2>"$out/$name.part$i.log" &&
              mv "$part.tmp.xyz" "$part.xyz" ) &
        pids+=($!)
    done
    local failed=0
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    if [ $failed = 1 ]; then
        echo "eval-model: a shard of $name failed; see $out/$name.part*.log" >&2
        exit 1
    fi
    for ((i = 0; i < nproc; i++)); do cat "$out/$name.part$i-of-$nproc.xyz"; done >"$out/$name.xyz.tmp"
    mv "$out/$name.xyz.tmp" "$out/$name.xyz"
    rm -f "$out/$name".part*-of-"$nproc".xyz
}

# evaluate NAME [--csp]: NAME.txt (table) and NAME.json.
evaluate() {
    local name=$1
    shift
    [ -s "$out/$name.json" ] && return 0
    "$druse" eval "$@" "$out/$name.xyz" --reference "$data" >"$out/$name.txt"
    "$druse" eval "$@" "$out/$name.xyz" --reference "$data" --json >"$out/$name.json.tmp"
    mv "$out/$name.json.tmp" "$out/$name.json"
}

timed() {
    local t0=$SECONDS
    "$@"
    echo "eval-model: $* took $((SECONDS - t0)) s on $nproc processes" | tee -a "$out/times.txt" >&2
}

if [ "$n_gen" -gt 0 ]; then # N_GEN=0: a CSP model, structure prediction only
    timed sample gen --n "$n_gen"
    evaluate gen
fi
csp_n=()
[ "$n_csp" -gt 0 ] && csp_n=(--n "$n_csp")
timed sample csp --csp-from "$data/test.csv.gz" "${csp_n[@]}"
evaluate csp --csp
timed sample li3po4 --n "$n_cond" --composition Li3PO4
evaluate li3po4
timed sample lifepo --n "$n_cond" --elements Li,Fe,P,O
evaluate lifepo
[ "$n_gen" -gt 0 ] && cat "$out/gen.txt"
cat "$out/csp.txt"
