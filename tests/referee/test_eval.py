#!/usr/bin/python3
"""Referee: `druse eval` (generation and --csp metrics) against pymatgen/spglib computations
of the same definitions (docs/eval.md), on samples built from real data.

Without a trained model the samples are MP-20 test structures ($DRUSE_DATA/mp_20/test.csv.gz),
seeded and reproducible, each perturbed one way:
  noise      random fractional noise of varied size (0.001-0.12): small ones still match
             their test structure, large ones do not;
  close      one atom pushed to within 0.1-0.45 A of another (fails structural validity);
  swap       one element replaced by another (mostly fails SMACT; never matches);
plus a few exact duplicates of other samples (for uniqueness; generation run only).
The samples go to druse as one extended XYZ file (material_id=... on each comment line) for
the generation metrics and as a directory of CIFs named by material_id for --csp; the CSP
reference is a test.csv.gz holding just the chosen test rows.

Checks: struct_valid / comp_valid / valid counts equal pymatgen's distance matrix (>= 0.5 A,
volume >= 0.1 A^3) and a transcription of the SMACT rule (as in test_filter_charge.py);
the Wasserstein distances equal scipy's (or a numpy CDF integral) on the same values;
uniqueness equals a greedy StructureMatcher() grouping; the valid samples' space groups equal
spglib's at symprec 0.1; the CSP match rate equals StructureMatcher(stol=0.5, angle_tol=10,
ltol=0.3).get_rms_dist on the same pairs within 0.5 percentage points and the mean RMSE within
1e-3. Environment: DRUSE, DRUSE_DATA, DRUSE_TEST_TMP; DRUSE_EVAL_N (structures, default 300).
Exit 77 (skipped) when the data is absent.
"""
import csv
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections import Counter

import numpy as np

warnings.filterwarnings("ignore")

DATA = os.environ.get("DRUSE_DATA", "")
MP20 = os.path.join(DATA, "mp_20")
TEST_CSV = os.path.join(MP20, "test.csv.gz")
ELEMENTS = os.path.join(DATA, "elements")
DRUSE = os.environ.get("DRUSE", "")
TMP = os.path.join(os.environ.get("DRUSE_TEST_TMP", "/tmp"), "eval_referee")
N = int(os.environ.get("DRUSE_EVAL_N", "300"))
N_DUP = 20
SEED = 20240707
CSP_TOL = 0.5  # percentage points


def skip(msg):
    print("SKIP:", msg)
    sys.exit(77)


for p in (TEST_CSV, os.path.join(MP20, "train.csv.gz"), ELEMENTS):
    if not os.path.exists(p):
        skip(f"{p} not found (set DRUSE_DATA to the shared data folder)")
if not DRUSE or not os.access(DRUSE, os.X_OK):
    print("FAIL: DRUSE does not name the druse binary")
    sys.exit(1)

from pymatgen.analysis.structure_matcher import StructureMatcher  # noqa: E402
from pymatgen.core import Element, Lattice, Structure  # noqa: E402
from pymatgen.io.cif import CifWriter  # noqa: E402
import spglib  # noqa: E402

csv.field_size_limit(1 << 30)
rng = np.random.default_rng(SEED)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smact_rule  # noqa: E402  (the rule as test_filter_charge.py referees it)

smact_rule.load(ELEMENTS)
smact_valid = smact_rule.valid


def struct_valid(s):
    """CDVAE/DiffCSP structure_validity: distinct sites >= 0.5 A, volume >= 0.1 A^3."""
    if s.volume < 0.1:
        return False
    if len(s) < 2:
        return True
    d = s.distance_matrix + np.diag(np.full(len(s), 10.5))
    return bool(d.min() >= 0.5)


# ------------------------------------------------------------------ building the samples

def load_rows(path):
    with gzip.open(path, "rt", newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def csv_structure(row):
    abc = [float(x) for x in row["lattice_abc_angles"].split()]
    frac = np.array([float(x) for x in row["frac_coords"].split()]).reshape(-1, 3)
    return Structure(Lattice.from_parameters(*abc), [int(x) for x in row["atomic_numbers"].split()],
                     frac)


def perturb(s, kind):
    lat = s.lattice.matrix.copy()
    frac = s.frac_coords.copy()
    species = [site.specie.Z for site in s]
    if kind == "noise":
        sigma = float(np.exp(rng.uniform(np.log(0.001), np.log(0.12))))
        frac = frac + rng.normal(scale=sigma, size=frac.shape)
        lat = lat @ (np.eye(3) + rng.uniform(-0.01, 0.01, size=(3, 3)))
    elif kind == "close" and len(s) >= 2:
        i, j = rng.choice(len(s), size=2, replace=False)
        d = rng.normal(size=3)
        d *= rng.uniform(0.1, 0.45) / np.linalg.norm(d)
        frac[j] = frac[i] + np.linalg.solve(lat.T, d)
        frac = frac + rng.normal(scale=0.002, size=frac.shape)
    elif kind == "swap":
        old = int(rng.choice(sorted(set(species))))
        new = int(rng.choice([z for z in (3, 8, 9, 11, 12, 16, 17, 26, 29, 30, 35, 53, 56, 79)
                              if z not in species]))
        species = [new if z == old else z for z in species]
        frac = frac + rng.normal(scale=0.005, size=frac.shape)
    return Structure(Lattice(lat), species, frac % 1.0)


def write_extxyz(path, structs, ids):
    with open(path, "w") as f:
        for s, mid in zip(structs, ids):
            L = s.lattice.matrix
            f.write(f"{len(s)}\n")
            f.write('Lattice="' + " ".join(repr(float(x)) for x in L.ravel()) + '" '
                    f'Properties=species:S:1:pos:R:3 pbc="T T T" material_id={mid}\n')
            for site in s:
                x = site.coords
                f.write(f"{site.specie.symbol} {x[0]!r} {x[1]!r} {x[2]!r}\n")


def run(args, expect=0):
    out = subprocess.run([DRUSE] + args, capture_output=True, text=True)
    if out.returncode != expect:
        print(out.stdout[-2000:], out.stderr[-2000:])
        print(f"FAIL: druse {' '.join(args)} exited {out.returncode}, expected {expect}")
        sys.exit(1)
    return out


# ------------------------------------------------------------------ reference computations

def w1(x, y):
    """1-D Wasserstein-1 between empirical distributions: the integral of |F - G|."""
    try:
        from scipy.stats import wasserstein_distance
        return float(wasserstein_distance(x, y))
    except ImportError:
        x, y = np.sort(x), np.sort(y)
        t = np.sort(np.concatenate([x, y]))
        F = np.searchsorted(x, t[:-1], side="right") / len(x)
        G = np.searchsorted(y, t[:-1], side="right") / len(y)
        return float(np.sum(np.abs(F - G) * np.diff(t)))


MASS = {}


def row_density(row):
    a, b, c, al, be, ga = (float(x) for x in row["lattice_abc_angles"].split())
    ca, cb, cg = (math.cos(math.radians(v)) for v in (al, be, ga))
    vol = a * b * c * math.sqrt(1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg)
    zs = [int(x) for x in row["atomic_numbers"].split()]
    for z in zs:
        if z not in MASS:
            MASS[z] = float(Element.from_Z(z).atomic_mass)
    return sum(MASS[z] for z in zs) * 1.66053906660 / vol, len(set(zs))


def spacegroup(s):
    cell = (s.lattice.matrix, s.frac_coords, [site.specie.Z for site in s])
    d = spglib.get_symmetry_dataset(cell, symprec=0.1)
    if d is None:
        return 0
    return d["number"] if isinstance(d, dict) else d.number


def main():
    t_start = time.time()
    fieldnames, rows = load_rows(TEST_CSV)
    pick = sorted(int(k) for k in rng.choice(len(rows), size=min(N, len(rows)), replace=False))
    kinds = rng.choice(["noise", "noise", "noise", "close", "swap"], size=len(pick))
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(os.path.join(TMP, "ref"))
    os.makedirs(os.path.join(TMP, "csp"))

    gts, samples, ids = [], [], []
    for k, kind in zip(pick, kinds):
        gt = Structure.from_str(rows[k]["cif"], fmt="cif")  # what druse reads from test.csv.gz
        gts.append(gt)
        samples.append(perturb(csv_structure(rows[k]), kind))
        ids.append(rows[k]["material_id"])
    dups = [int(i) for i in rng.choice(len(samples), size=N_DUP, replace=False)]
    gen = samples + [samples[i].copy() for i in dups]
    gen_ids = ids + [f"dup-{ids[i]}" for i in dups]

    # ---- generation metrics
    xyz = os.path.join(TMP, "samples.xyz")
    write_extxyz(xyz, gen, gen_ids)
    t0 = time.time()
    ours = json.loads(run(["eval", xyz, "--reference", MP20, "--json", "--n-valid", "200"]).stdout)
    t_gen = time.time() - t0
    sv = [struct_valid(s) for s in gen]
    cv = [smact_valid([site.specie.Z for site in s]) for s in gen]
    va = [a and b for a, b in zip(sv, cv)]
    fails = []

    def check(name, got, want, tol=0.0):
        ok = (got is None and want is None) or (got is not None and abs(got - want) <= tol)
        print(f"  {name:18s} druse {got!r:>24}  reference {want!r:>24}  {'ok' if ok else 'DIFFERS'}")
        if not ok:
            fails.append(name)

    print(f"generation: {len(gen)} samples ({dict(Counter(kinds))} + {N_DUP} duplicates); "
          f"druse eval {t_gen:.1f} s")
    check("n_struct_valid", ours["n_struct_valid"], sum(sv))
    check("n_comp_valid", ours["n_comp_valid"], sum(cv))
    check("n_valid", ours["n_valid"], sum(va))
    check("struct_valid %", ours["struct_valid"], 100.0 * sum(sv) / len(gen), 1e-9)

    valid = [s for s, v in zip(gen, va) if v]
    first = valid[:200]
    test_dens, test_nel = zip(*(row_density(r) for r in rows))
    check("wdist_density", ours["wdist_density"], w1([s.density for s in first], test_dens), 1e-3)
    check("wdist_nelems", ours["wdist_nelems"],
          w1([len(s.composition.elements) for s in first], test_nel), 1e-9)

    matcher = StructureMatcher()
    reps = []
    for s in valid:
        formula = s.composition.reduced_formula
        if not any(f == formula and matcher.fit(r, s) for f, r in reps):
            reps.append((formula, s))
    check("n_unique", ours["n_unique"], len(reps), 1)  # a matcher disagreement is tolerated

    sg = Counter(spacegroup(s) for s in valid)
    top = {e["spacegroup"]: e["count"] for e in ours["spacegroups_valid"]["top"]}
    sg_bad = sum(1 for g, c in top.items() if sg.get(g, 0) != c)
    check("top-10 sg counts", sg_bad, 0)
    test_sg = Counter(int(r["spacegroup.number"]) for r in rows)
    p = {g: c / sum(sg.values()) for g, c in sg.items() if g}
    q = {g: c / len(rows) for g, c in test_sg.items()}
    tv = 0.5 * sum(abs(p.get(g, 0) - q.get(g, 0)) for g in set(p) | set(q))
    check("spacegroup_tv", ours["spacegroup_tv"], tv, 0.01)
    print(f"  unique {ours['unique']:.2f} %, novel {ours['novel']:.2f} % (vs MP-20 train)")

    # ---- CSP
    with gzip.open(os.path.join(TMP, "ref", "test.csv.gz"), "wt", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fieldnames)
        w.writeheader()
        w.writerows(rows[k] for k in pick)
    cif_structs = []
    for s, mid in zip(samples, ids):
        text = str(CifWriter(s))
        with open(os.path.join(TMP, "csp", f"{mid}.cif"), "w") as f:
            f.write(text)
        cif_structs.append(Structure.from_str(text, fmt="cif"))  # as druse reads it
    t0 = time.time()
    csp = json.loads(run(["eval", "--csp", os.path.join(TMP, "csp"), "--reference",
                          os.path.join(TMP, "ref"), "--json"]).stdout)
    t_csp = time.time() - t0
    csp_matcher = StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)
    t0 = time.time()
    rms = []
    for s, gt in zip(cif_structs, gts):
        try:
            r = csp_matcher.get_rms_dist(s, gt)
        except Exception:
            r = None
        rms.append(None if r is None else r[0])
    t_pm = time.time() - t0
    matched = [r for r in rms if r is not None]
    rate = 100.0 * len(matched) / len(gts)
    print(f"CSP: {len(gts)} pairs; druse eval --csp {t_csp:.1f} s, pymatgen get_rms_dist "
          f"{t_pm:.1f} s")
    check("match_rate %", csp["match_rate"], rate, CSP_TOL)
    check("rmse", csp["rmse"], float(np.mean(matched)) if matched else None, 1e-3)
    by_kind = Counter((k, r is not None) for k, r in zip(kinds, rms))
    print(f"  pymatgen matches by kind: {dict(by_kind)}")

    # the same from the extended XYZ (ids from material_id=): must equal the CIF run within
    # the CIF's 8-decimal rounding
    csp_xyz = os.path.join(TMP, "csp.xyz")
    write_extxyz(csp_xyz, samples, ids)
    csp2 = json.loads(run(["eval", "--csp", csp_xyz, "--reference", os.path.join(TMP, "ref"),
                           "--json"]).stdout)
    check("match_rate xyz %", csp2["match_rate"], csp["match_rate"], CSP_TOL)

    # ---- errors and usage
    run(["eval", xyz], expect=2)
    run(["eval", xyz, "--reference", MP20, "--n-valid", "0"], expect=2)
    run(["eval", xyz, "--reference", os.path.join(TMP, "missing")], expect=1)
    run(["eval", "--csp", xyz, "--reference", os.path.join(TMP, "ref")], expect=1)  # dup- ids
    err = run(["eval", os.path.join(TMP, "none.xyz"), "--reference", MP20], expect=1).stderr
    if "none.xyz" not in err:
        fails.append("error message does not name the file")
    if "--csp" not in run(["eval", "--help"]).stdout:
        fails.append("--help does not document --csp")

    print(f"total {time.time() - t_start:.1f} s")
    print("PASS" if not fails else f"FAIL: {fails}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
