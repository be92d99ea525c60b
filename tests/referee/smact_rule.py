"""The SMACT charge-neutrality rule of the CDVAE/DiffCSP evaluation, transcribed from
shared/data/elements/SOURCE.md over the SMACT v2.6 data files: the referees' reference
(test_filter_charge.py, test_eval.py)."""
import itertools
import math
import os
from collections import Counter
from functools import reduce

PASSING = ("single_element", "alloy", "balanced")


def load(elements_dir):
    """Binds the data files of elements_dir (module globals: the rule is a transcription)."""
    global SYMBOLS, OX_STATES, METALS, ENEG, Z_OF, SYMBOL_OF
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


def valid(atomic_numbers):
    return reference_rule(atomic_numbers)[0] in PASSING
