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
import itertools
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from functools import reduce

DATA = os.environ.get("DRUSE_DATA", "")
test_csv = os.path.join(DATA, "mp_20", "test.csv.gz")
train_csv = os.path.join(DATA, "mp_20", "train.csv.gz")
elements_dir = os.path.join(DATA, "elements")
if not (os.path.exists(test_csv) and os.path.isdir(elements_dir)):
    print(f"skipped: {test_csv} or {elements_dir} not found (set DRUSE_DATA to shared/data)")
    sys.exit(77)
druse = os.environ.get("DRUSE", "druse")

# ----------------------------------------------------------------- SMACT v2.6 data files
SYMBOLS, OX_STATES = [], {}
for line in open(os.path.join(elements_dir, "smact_oxidation_states.txt")):
    if line.startswith("#") or not line.strip():
        continue
    f = line.split()
    OX_STATES[f[0]] = [int(s) for s in f[1:]]  # file order
    SYMBOLS.append(f[0])
METALS = {l.strip() for l in open(os.path.join(elements_dir, "smact_metals.txt"))
          if l.strip() and not l.startswith("#")}
ENEG, Z_OF = {}, {}
for line in open(os.path.join(elements_dir, "smact_element_data.txt")):
    if line.startswith("#") or not line.strip():
        continue
    f = line.split()
    # Symbol Name Z Mass r_cov e_affinity p_eig s_eig Abundance el_neg ion_pot dipol
    Z_OF[f[0]] = int(f[2])
    ENEG[f[0]] = None if f[9] == "None" else float(f[9])
SYMBOL_OF = {z: s for s, z in Z_OF.items()}


# ----------------------------------------------------------------- the rule (SOURCE.md)
def pauling_ok(states, enegs):
    """Step 5: SMACT v2.6 eneg_states_test; a pair with an unknown eneg fails."""
    for (ox1, e1), (ox2, e2) in itertools.combinations(list(zip(states, enegs)), 2):
        if e1 is None or e2 is None:
            return False
        if ox1 > 0 and ox2 < 0 and e1 >= e2:
            return False
        if ox1 < 0 and ox2 > 0 and e1 <= e2:
            return False
    return True


def reference_rule(atomic_numbers):
    """Returns (outcome, {symbol: state} or None), outcome as druse names it."""
    counter = Counter(atomic_numbers)
    zs = sorted(counter)  # DiffCSP's get_composition: elements sorted by Z
    g = reduce(math.gcd, counter.values())
    counts = [counter[z] // g for z in zs]
    symbols = [SYMBOL_OF[z] for z in zs]
    if len(set(symbols)) == 1:  # step 1
        return "single_element", None
    if all(s in METALS for s in symbols):  # step 2
        return "alloy", None
    ox_combos = [OX_STATES[s] for s in symbols]
    if math.prod(len(o) for o in ox_combos) > 1e7:  # step 3
        return "too_many_combinations", None
    enegs = [ENEG[s] for s in symbols]
    for states in itertools.product(*ox_combos):  # step 4, file order
        if sum(o * c for o, c in zip(states, counts)) == 0 and pauling_ok(states, enegs):
            return "balanced", dict(zip(symbols, states))
    return "not_neutral", None  # step 6


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
