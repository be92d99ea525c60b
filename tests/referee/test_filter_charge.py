"""Charge-neutrality filter (druse filter --checks charge) against a Python transcription of
the reference rule, on all of MP-20 test; prints the pass rate on MP-20 train and test.

The transcription below follows shared/data/elements/SOURCE.md ("The compositional-validity
rule of the CDVAE/DiffCSP evaluation") line by line, reading SMACT v2.6's data files from
$DRUSE_DATA/elements, not druse's element table: the outcome (pass, alloy, too many
combinations, ...) and the oxidation states reported (the first passing combination in
itertools.product order) must both agree.
"""
import csv
import gzip
import json
import os
import subprocess
import sys
import time
from collections import Counter

DATA = os.environ.get("DRUSE_DATA", "")
test_csv = os.path.join(DATA, "mp_20", "test.csv.gz")
train_csv = os.path.join(DATA, "mp_20", "train.csv.gz")
elements_dir = os.path.join(DATA, "elements")
if not (os.path.exists(test_csv) and os.path.isdir(elements_dir)):
    print(f"skipped: {test_csv} or {elements_dir} not found (set DRUSE_DATA to shared/data)")
    sys.exit(77)
druse = os.environ.get("DRUSE", "druse")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smact_rule  # noqa: E402

smact_rule.load(elements_dir)
reference_rule = smact_rule.reference_rule


# Compositions repeat a lot (polymorphs): memoize on the reduced composition.
_memo = {}


def reference_cached(atomic_numbers):
    key = tuple(sorted(Counter(atomic_numbers).items()))
    if key not in _memo:
        _memo[key] = reference_rule(atomic_numbers)
    return _memo[key]


def run_druse(path):
    out = subprocess.run([druse, "filter", path, "--checks", "charge", "--json"], check=True,
                         capture_output=True, text=True).stdout
    return {r["id"]: r for r in map(json.loads, out.splitlines())}


def compare(path, label):
    t0 = time.time()
    ours = run_druse(path)
    t_druse = time.time() - t0
    t0 = time.time()
    rows = list(csv.DictReader(gzip.open(path, "rt")))
    fail, n_pass_ref, outcomes = [], 0, Counter()
    for row in rows:
        mid = row["material_id"]
        want, want_states = reference_cached([int(x) for x in row["atomic_numbers"].split()])
        n_pass_ref += want in ("single_element", "alloy", "balanced")
        outcomes[want] += 1
        r = ours.get(mid)
        if r is None:
            fail.append(f"{mid}: missing from druse's output")
        elif r["charge"] != want or r["oxidation_states"] != want_states:
            fail.append(f"{mid} {row['pretty_formula']}: druse {r['charge']} "
                        f"{r['oxidation_states']} vs reference {want} {want_states}")
        elif r["charge_neutral"] != (want in ("single_element", "alloy", "balanced")):
            fail.append(f"{mid}: charge_neutral {r['charge_neutral']} for outcome {want}")
    t_ref = time.time() - t0
    n_pass = sum(r["charge_neutral"] for r in ours.values())
    print(f"MP-20 {label}: {len(rows)} structures; druse pass rate {n_pass}/{len(ours)} = "
          f"{100.0 * n_pass / max(len(ours), 1):.2f}%; reference {n_pass_ref}/{len(rows)} = "
          f"{100.0 * n_pass_ref / max(len(rows), 1):.2f}%; outcomes {dict(outcomes)}; "
          f"druse {t_druse:.1f} s, reference {t_ref:.1f} s")
    return rows, fail


rows, fail = compare(test_csv, "test")
if os.path.exists(train_csv):
    _, fail_train = compare(train_csv, "train")
    fail += fail_train
for f in fail[:30]:
    print("FAIL", f)
print(f"{len(fail)} disagreements")
sys.exit(1 if fail else 0)
