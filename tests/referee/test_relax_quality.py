#!/usr/bin/python3
"""Does druse relax (default potential, default options) do no harm, and does it help?

  no harm: relaxing DFT-relaxed MP-20 test structures, >= 90% still match their start
           (pymatgen StructureMatcher defaults) and the median |volume change| is <= 5%;
  helps:   with Gaussian noise of 0.1 A on every Cartesian coordinate, the relaxed structure
           is closer to the original than the noisy one (StructureMatcher.get_rms_dist) for
           >= 80%.
ctest runs a seeded sample (--n, default 400); `--full` runs the whole test split (the figures
in docs/relax.md). Prints the distributions and the chemistry classes that fail most."""
import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relax_common import env_or_skip, load_mp20, read_extxyz, run_druse, skip, write_poscar_dir

DRUSE, DATA, TMP = env_or_skip()
try:
    import numpy as np
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Element, Lattice, Structure
    from pymatgen.io.ase import AseAtomsAdaptor
except ImportError as e:
    skip(f"referee packages missing: {e}")
warnings.filterwarnings("ignore")

HALOGENS = {"F", "Cl", "Br", "I"}
CHALCOGENS = {"S", "Se", "Te"}
PNICTOGENS = {"N", "P", "As", "Sb"}


def chemistry_class(symbols):
    els = set(symbols)
    if all(Element(e).is_metal for e in els):
        return "intermetallic"
    if "O" in els:
        return "oxide"
    if els & HALOGENS:
        return "halide"
    if els & CHALCOGENS:
        return "chalcogenide"
    if els & PNICTOGENS:
        return "pnictide"
    if "H" in els:
        return "hydride"
    return "other (B/C/Si/Ge...)"


def relax(items, name, extra):
    d = os.path.join(TMP, f"relax_quality_{name}")
    write_poscar_dir(d, items)
    xyz = os.path.join(TMP, f"relax_quality_{name}.xyz")
    out = run_druse(DRUSE, [d, "-o", xyz, "--json"] + extra)
    frames = read_extxyz(xyz)
    assert len(frames) == len(out) == len(items), "one outcome and one frame per structure"
    return out, [AseAtomsAdaptor.get_structure(a) for a in frames]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400, help="sample size (ctest)")
    ap.add_argument("--full", action="store_true", help="the whole MP-20 test split")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--extra", default="", help="more druse relax options, e.g. --potential X")
    args = ap.parse_args()
    path = os.path.join(DATA, "mp_20", "test.csv.gz")
    if not os.path.exists(path):
        skip(f"{path} is absent")
    rows = load_mp20(path)
    rng = np.random.default_rng(args.seed)
    if not args.full:
        rows = [rows[i] for i in sorted(rng.choice(len(rows), args.n, replace=False))]
    clean, noisy, originals, classes = [], [], [], []
    for k, (mid, lat, Z, frac, formula) in enumerate(rows):
        s = Structure(Lattice(lat), Z, frac)
        sym = [str(e) for e in s.species]
        name = f"s{k:05d}"
        cart = s.cart_coords
        clean.append((name, lat, sym, cart.tolist()))
        noisy.append((name, lat, sym, (cart + rng.normal(0.0, 0.1, cart.shape)).tolist()))
        classes.append(chemistry_class(sym))
    # the POSCARs group atoms by species: rebuild the originals in the same order
    clean = write_poscar_dir(os.path.join(TMP, "relax_quality_clean"), clean)
    noisy = write_poscar_dir(os.path.join(TMP, "relax_quality_noisy"), noisy)
    originals = [Structure(Lattice(lat), sym, cart, coords_are_cartesian=True)
                 for _, lat, sym, cart in clean]
    noisy_s = [Structure(Lattice(lat), sym, cart, coords_are_cartesian=True)
               for _, lat, sym, cart in noisy]
    extra = args.extra.split()
    out0, rel0 = relax(clean, "clean", extra)
    out1, rel1 = relax(noisy, "noisy", extra)

    sm = StructureMatcher()
    n = len(rows)
    match = np.zeros(n, bool)
    helps = np.zeros(n, bool)
    dv = np.array([o["volume"] / o["volume_initial"] - 1 for o in out0])
    ratio = np.full(n, np.inf)
    for k in range(n):
        match[k] = sm.fit(originals[k], rel0[k])
        a = sm.get_rms_dist(originals[k], noisy_s[k])
        b = sm.get_rms_dist(originals[k], rel1[k])
        if a is not None and b is not None:
            helps[k] = b[0] < a[0]
            ratio[k] = b[0] / a[0] if a[0] > 0 else np.inf
    ms = np.array([o["time_ms"] for o in out0 + out1])
    steps0 = np.array([o["steps"] for o in out0])
    steps1 = np.array([o["steps"] for o in out1])
    conv = sum(o["converged"] for o in out0 + out1)
    q = lambda x: " ".join(f"{p}%: {np.percentile(x, p):+.4f}" for p in (5, 25, 50, 75, 95))
    print(f"MP-20 test, {n} structures ({'all' if args.full else f'seeded sample, seed {args.seed}'}),"
          f" druse relax {' '.join(extra) or '(defaults)'}")
    print(f"no harm: {match.mean():.1%} still match (StructureMatcher defaults); "
          f"median |dV| {np.median(np.abs(dv)):.2%}, mean {np.mean(np.abs(dv)):.2%}")
    print(f"  volume change quantiles: {q(dv)}")
    print(f"helps: {helps.mean():.1%} closer to the original than the noisy input")
    fin = ratio[np.isfinite(ratio)]
    print(f"  RMSD(relaxed)/RMSD(noisy) quantiles: {q(fin)}; unmatched after relaxing: "
          f"{int((~np.isfinite(ratio)).sum())}")
    print(f"converged {conv}/{2 * n}; steps median clean {np.median(steps0):.0f} noisy "
          f"{np.median(steps1):.0f}; median {np.median(ms):.3f} ms per relaxation")
    print("per chemistry class (n, match, median |dV|, helps):")
    for c in sorted(set(classes), key=lambda c: helps[[x == c for x in classes]].mean()):
        m = np.array([x == c for x in classes])
        print(f"  {c:22s} {m.sum():5d} {match[m].mean():7.1%} {np.median(np.abs(dv[m])):7.2%} "
              f"{helps[m].mean():7.1%}")
    worst = np.argsort(np.abs(dv))[::-1][:8]
    print("largest volume changes: " + ", ".join(f"{rows[k][4]} {dv[k]:+.1%}" for k in worst))
    ok = match.mean() >= 0.90 and np.median(np.abs(dv)) <= 0.05 and helps.mean() >= 0.80
    if not ok:
        sys.exit("FAIL: below the thresholds (match >= 90%, median |dV| <= 5%, helps >= 80%)")
    print("PASS")


if __name__ == "__main__":
    main()
