#!/usr/bin/python3
"""Fits the "mp20" pair potential of druse relax from the MP-20 training set.

For every atom of every training structure and every element b in the same structure, the
distance to the nearest atom of element b (periodic images included) is one observation of the
contact distance of the pair (a, b). Per element pair:
  r_min  = median of the observations            (where the Morse minimum goes)
  s      = 1.4826 * median absolute deviation    (a robust spread, floored at --s-min)
  k      = kT / s^2                               (Boltzmann inversion of a harmonic well:
                                                  tight distributions are stiff bonds,
                                                  loose ones are soft contacts)
  D      = k r_min^2 / (2 (alpha r0)^2)           (Morse curvature 2 D alpha^2 = k with
                                                  alpha = alpha_r0 / r_min), clipped
Pairs with fewer than --min-count observations are left out; for them druse uses per-element
radii fitted here by least squares (r_min(a, b) ~ R_a + R_b over the tabulated pairs) and the
median depth.

Writes relax/pairs_mp20.tsv (human-readable, loadable with `druse relax --pairs`) and
relax/pairs_mp20.c (the compiled-in default table).

usage: /usr/bin/python3 relax/fit_pairs.py [--data /work/shared/data] [--out relax]
"""
import argparse
import csv
import gzip
import math
import os
import sys

import numpy as np

csv.field_size_limit(1 << 30)

SYMBOLS = (
    "X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge "
    "As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm "
    "Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U "
    "Np Pu Am Cm Bk Cf Es Fm Md No Lr"
).split()


def lattice_from_params(a, b, c, alpha, beta, gamma):
    """pymatgen's Lattice.from_parameters (c along z), as crystal/lattice.c."""
    al, be, ga = (math.radians(x) for x in (alpha, beta, gamma))
    val = (math.cos(al) * math.cos(be) - math.cos(ga)) / (math.sin(al) * math.sin(be))
    gamma_star = math.acos(max(-1.0, min(1.0, val)))
    return np.array(
        [
            [a * math.sin(be), 0.0, a * math.cos(be)],
            [
                -b * math.sin(al) * math.cos(gamma_star),
                b * math.sin(al) * math.sin(gamma_star),
                b * math.cos(al),
            ],
            [0.0, 0.0, c],
        ]
    )


def nearest_by_element(Z, frac, L, rmax=8.0):
    """For each atom i and element b: the nearest distance to an atom of b (not i itself)."""
    inv = np.linalg.inv(L)
    h = np.linalg.norm(inv, axis=0)  # |b*_k|: column k of L^-1
    n = [int(math.ceil(rmax * hk)) + 1 for hk in h]
    grid = np.array(
        [(i, j, k) for i in range(-n[0], n[0] + 1) for j in range(-n[1], n[1] + 1)
         for k in range(-n[2], n[2] + 1)],
        dtype=float,
    )
    frac = frac - np.floor(frac)
    d = frac[None, :, None, :] - frac[:, None, None, :] + grid[None, None, :, :]
    r = np.linalg.norm(d @ L, axis=-1)  # [i, j, image]
    r[r < 1e-8] = np.inf  # the atom itself
    rmin = r.min(axis=2)  # [i, j]
    out = {}
    for b in set(Z):
        mask = np.array(Z) == b
        out[b] = rmin[:, mask].min(axis=1)
    return out, rmin.min(axis=1)


def collect(path):
    obs = {}
    with gzip.open(path, "rt") as f:
        for row in csv.DictReader(f):
            Z = [int(x) for x in row["atomic_numbers"].split()]
            p = [float(x) for x in row["lattice_abc_angles"].split()]
            frac = np.array([float(x) for x in row["frac_coords"].split()]).reshape(-1, 3)
            L = lattice_from_params(*p)
            near, nn = nearest_by_element(Z, frac, L)
            for i, a in enumerate(Z):
                for b, dists in near.items():
                    r = dists[i]
                    if np.isfinite(r) and r < 8.0:
                        key = (min(a, b), max(a, b))
                        obs.setdefault(key, []).append((r, r / nn[i]))
    return obs


def fit_radii(table):
    """Least-squares element radii: r_min(a, b) ~ R_a + R_b, weighted by log counts."""
    elems = sorted({z for k in table for z in k})
    idx = {z: i for i, z in enumerate(elems)}
    A = np.zeros((len(table), len(elems)))
    y = np.zeros(len(table))
    w = np.zeros(len(table))
    for row, ((a, b), t) in enumerate(table.items()):
        A[row, idx[a]] += 1
        A[row, idx[b]] += 1
        y[row] = t["rmin"]
        w[row] = math.log1p(t["count"])
    sw = np.sqrt(w)
    R, *_ = np.linalg.lstsq(A * sw[:, None], y * sw, rcond=None)
    return {z: R[idx[z]] for z in elems}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.environ.get("DRUSE_DATA", "/work/shared/data"))
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--kT", type=float, default=0.01, help="energy scale of the inversion, eV")
    ap.add_argument("--alpha-r0", type=float, default=6.0, help="Morse alpha * r_min")
    ap.add_argument("--s-min", type=float, default=0.03, help="floor on the spread, A")
    ap.add_argument("--d-min", type=float, default=0.02, help="floor on the depth, eV")
    ap.add_argument("--d-max", type=float, default=2.0, help="cap on the depth, eV")
    ap.add_argument("--min-count", type=int, default=5)
    ap.add_argument("--cache", help="pickle of the observations, reused when present")
    ap.add_argument("--shell", type=float, default=1.15,
                    help="first shell: within this factor of the atom's nearest neighbour")
    ap.add_argument("--bonded-share", type=float, default=0.5)
    ap.add_argument("--wall-quantile", type=float, default=0.1)
    ap.add_argument("--wall-depth", type=float, default=0.2)
    ap.add_argument("--spread-power", type=float, default=1.0)
    args = ap.parse_args()

    src = os.path.join(args.data, "mp_20", "train.csv.gz")
    if args.cache and os.path.exists(args.cache):
        import pickle
        with open(args.cache, "rb") as f:
            obs = pickle.load(f)
    else:
        obs = collect(src)
        if args.cache:
            import pickle
            with open(args.cache, "wb") as f:
                pickle.dump(obs, f)
    table = {}
    for key, vals in sorted(obs.items()):
        v = np.array(vals)
        if len(v) < args.min_count:
            continue
        # a "bond" when the pair is in the first coordination shell of most of its atoms
        first = v[:, 1] <= args.shell
        bonded = first.mean() >= args.bonded_share
        d = v[first, 0] if bonded else v[:, 0]
        med = float(np.median(d)) if bonded else float(np.quantile(d, args.wall_quantile))
        s = max(1.4826 * float(np.median(np.abs(d - np.median(d)))), args.s_min)
        k = args.kT / s**args.spread_power
        depth = min(max(k * med**2 / (2 * args.alpha_r0**2), args.d_min), args.d_max)
        if not bonded: depth = args.wall_depth
        table[key] = dict(rmin=med, spread=s, depth=depth, count=len(v),
                          rc=float("nan") if bonded else 1.0)
    radii = fit_radii(table)
    depth_default = float(np.median([t["depth"] for t in table.values() if math.isnan(t["rc"])]))
    argv = sys.argv[1:]
    if "--cache" in argv:  # a local speed-up, not part of the recipe
        k = argv.index("--cache")
        argv = argv[:k] + argv[k + 2:]
    cmd = "/usr/bin/python3 relax/fit_pairs.py " + " ".join(argv)
    write_tsv(os.path.join(args.out, "pairs_mp20.tsv"), table, args, cmd)
    write_c(os.path.join(args.out, "pairs_mp20.c"), table, radii, depth_default, args, cmd)
    print(f"{len(table)} pairs from {sum(len(v) for v in obs.values())} observations; "
          f"{len(radii)} element radii; default depth {depth_default:.4f} eV")


HEADER = """Morse pair parameters of druse's "mp20" potential, fitted to the MP-20 training set
(CDVAE split, {src}) by relax/fit_pairs.py (command: {cmd}).
An observation is, for one atom and one element b, the distance to its nearest b. A pair is a
bond when that b lies in the atom's first shell (within {shell} x its nearest-neighbour
distance) for at least {bonded_share} of the observations. Bonds: r_min = median first-shell
distance, depth D = kT / s^p * r_min^2 / (2 alpha_r0^2), s = 1.4826 MAD (floored at {s_min} A),
kT = {kT} eV, p = {spread_power}, alpha_r0 = {alpha_r0}, D clipped to [{d_min}, {d_max}] eV,
cutoff rc_factor x r_min (set in druse). Non-bonded pairs: a repulsive wall, the Morse cut at its
minimum (rc = r_min, e = D (1 - x)^2 >= 0), r_min = {wall_quantile} quantile of all
observations, D = {wall_depth} eV. Morse steepness alpha = alpha_r0 / r_min.
MP-20: Xie et al., ICLR 2022 (arXiv:2110.06197), from the Materials Project (Jain et al.,
APL Mater. 1 (2013) 011002)."""


def write_tsv(path, table, args, cmd):
    head = HEADER.format(src="mp_20/train.csv.gz", cmd=cmd, **vars(args))
    with open(path, "w") as f:
        for line in head.split("\n"):
            f.write("# " + line + "\n")
        f.write("# A\tB\tr_min_A\tdepth_eV\t[alpha_per_A\trc_over_rmin]\t# spread_A\tcount\n")
        for (a, b), t in table.items():
            rc = "" if math.isnan(t["rc"]) else f"\t{t['rc']:.3f}"
            alpha = "" if not rc else f"\t{args.alpha_r0 / t['rmin']:.5f}"
            f.write(f"{SYMBOLS[a]}\t{SYMBOLS[b]}\t{t['rmin']:.4f}\t{t['depth']:.5f}{alpha}{rc}"
                    f"\t# {t['spread']:.4f}\t{t['count']}\n")


def write_c(path, table, radii, depth_default, args, cmd):
    head = HEADER.format(src="mp_20/train.csv.gz", cmd=cmd, **vars(args))
    with open(path, "w") as f:
        f.write("/* GENERATED by relax/fit_pairs.py -- do not edit; rerun the script.\n *\n")
        for line in head.split("\n"):
            f.write(" * " + line + "\n")
        f.write(" */\n#include <math.h>\n\n#include \"relax/relax_internal.h\"\n\n")
        f.write("/* {Za, Zb, r_min (A), depth (eV), alpha (1/A; NAN = alpha_r0 / r_min),\n"
                " *  rc / r_min (NAN = rc_factor; 1 = repulsive wall)} */\n")
        f.write("const rlx_pair_entry rlx_mp20_pairs[] = {\n")
        for (a, b), t in table.items():
            rc = "NAN" if math.isnan(t["rc"]) else f"{t['rc']:.3f}"
            f.write(f"    {{{a}, {b}, {t['rmin']:.4f}, {t['depth']:.5f}, NAN, {rc}}}, "
                    f"/* {SYMBOLS[a]}-{SYMBOLS[b]}, n = {t['count']} */\n")
        f.write("};\n")
        f.write(f"const int rlx_mp20_npairs = {len(table)};\n\n")
        f.write("/* Element radii (A): least squares r_min(a, b) ~ R_a + R_b over the pairs above;\n"
                " * used for pairs the table lacks. NAN: element absent from MP-20 train. */\n")
        f.write("const double rlx_mp20_radius_A[XTAL_NUM_ELEMENTS + 1] = {\n    NAN,")
        for z in range(1, 104):
            v = f" {radii[z]:.4f}," if z in radii else " NAN,"
            f.write(("\n   " if z % 8 == 1 else "") + v)
        f.write("\n};\n")
        f.write(f"const double rlx_mp20_default_depth_eV = {depth_default:.5f};\n")
        f.write(f"const double rlx_mp20_default_alpha_r0 = {args.alpha_r0};\n")


if __name__ == "__main__":
    main()
