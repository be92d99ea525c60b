#!/bin/bash
# `make bench`: every benchmark in tests/bench, each writing its section of BENCHMARKS.md.
#   tests/bench/run-all.sh BUILD/druse
# Takes 20-40 minutes on 2 cores; run on a quiet machine (the figures are ratios measured side
# by side, but the absolute rates are printed too).
set -euo pipefail
druse=$(realpath "$1")
build=$(dirname "$druse")
py=/usr/bin/python3
cd "$(dirname "$0")/../.."
$py tests/bench/bench_read_mp20.py "$druse"
$py tests/bench/bench_dedup.py --druse "$druse" --write
$py tests/bench/bench_filters.py "$druse"
$py tests/bench/bench_relax.py "$druse" --write
$py tests/bench/bench_gen.py "$build" --cpu-time
$py tests/bench/bench_screen.py "$build"
$py tests/bench/bench_model.py "$druse"
