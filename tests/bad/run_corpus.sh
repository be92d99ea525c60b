#!/bin/sh
# The bad-input corpus: every file in CORPUS/inputs/ must be refused cleanly by druse.
#
# usage: run_corpus.sh DRUSE CORPUS    (ctest: run_corpus.sh /path/to/druse tests/bad)
#
# *.yaml and *.yml files go through `druse config check FILE`, anything else through
# `druse inspect FILE`. Each must
#   - exit with status 1 (0 would accept bad input; 2 is a usage error; >= 124 means a hang
#     killed by timeout or a crash by signal),
#   - print a message on stderr that names the file (its base name),
#   - print no sanitizer report ("AddressSanitizer", "LeakSanitizer", "runtime error").
# Prints one line per file and a summary "N passed, M failed"; exits 1 if any failed.

if [ $# -ne 2 ]; then
    echo "usage: $0 DRUSE CORPUS_DIR" >&2
    exit 2
fi
druse=$1
corpus=$2
limit=20 # seconds per file

if [ ! -x "$druse" ]; then
    echo "run_corpus.sh: '$druse' is not an executable" >&2
    exit 2
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/druse-corpus.XXXXXX") || exit 2
trap 'rm -rf "$scratch"' EXIT INT TERM

passed=0
failed=0
for file in "$corpus"/inputs/*; do
    [ -f "$file" ] || continue
    name=$(basename "$file")
    case $name in
    *.yaml | *.yml) set -- config check ;;
    *) set -- inspect ;;
    esac
    timeout "$limit" "$druse" "$@" "$file" >"$scratch/out" 2>"$scratch/err"
    status=$?

    why=""
    if [ "$status" -ge 124 ]; then
        why="exit status $status (hang or crash)"
    elif [ "$status" -ne 1 ]; then
        why="exit status $status (want 1)"
    fi
    if ! grep -F -q -e "$name" "$scratch/err"; then
        why="${why:+$why; }stderr does not name the file"
    fi
    if grep -E -q 'AddressSanitizer|LeakSanitizer|runtime error' "$scratch/err"; then
        why="${why:+$why; }sanitizer report"
    fi

    if [ -z "$why" ]; then
        passed=$((passed + 1))
        printf 'ok    %s\n' "$name"
    else
        failed=$((failed + 1))
        printf 'FAIL  %s: %s (druse %s)\n' "$name" "$why" "$*"
        sed -e 's/^/      | /' "$scratch/err" | head -n 20
    fi
done

if [ $((passed + failed)) -eq 0 ]; then
    echo "no input files in $corpus/inputs" >&2
    exit 1
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
