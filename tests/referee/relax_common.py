"""Shared by the relax referee tests and tests/bench/bench_relax.py: loading datasets, writing
POSCAR directories at full precision, running `druse relax`, reading its extended XYZ."""
import csv
import gzip
import json
import math
import os
import subprocess
import sys

csv.field_size_limit(1 << 30)


def skip(msg):
    print(f"SKIP: {msg}")
    sys.exit(77)


def env_or_skip():
    druse = os.environ.get("DRUSE")
    data = os.environ.get("DRUSE_DATA")
    tmp = os.environ.get("DRUSE_TEST_TMP", "/tmp")
    if not druse or not os.access(druse, os.X_OK):
        skip("DRUSE (the druse binary) is not set")
    if not data or not os.path.isdir(data):
        skip("DRUSE_DATA (shared/data) is absent")
    return druse, data, tmp


def lattice_from_params(a, b, c, alpha, beta, gamma):
    """pymatgen's Lattice.from_parameters (c along z), as crystal/lattice.c."""
    al, be, ga = (math.radians(x) for x in (alpha, beta, gamma))
    val = (math.cos(al) * math.cos(be) - math.cos(ga)) / (math.sin(al) * math.sin(be))
    gs = math.acos(max(-1.0, min(1.0, val)))
    return [[a * math.sin(be), 0.0, a * math.cos(be)],
            [-b * math.sin(al) * math.cos(gs), b * math.sin(al) * math.sin(gs), b * math.cos(al)],
            [0.0, 0.0, c]]


def load_mp20(path, limit=None):
    """(id, lattice rows, Z, frac, formula) from the numeric columns of an MP-20 CSV."""
    out = []
    with gzip.open(path, "rt") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if limit is not None and i >= limit:
                break
            Z = [int(x) for x in row["atomic_numbers"].split()]
            p = [float(x) for x in row["lattice_abc_angles"].split()]
            v = [float(x) for x in row["frac_coords"].split()]
            frac = [v[3 * k:3 * k + 3] for k in range(len(Z))]
            out.append((row["material_id"], lattice_from_params(*p), Z, frac,
                        row["pretty_formula"]))
    return out


def load_cif_csv(path, limit=None):
    """(id, pymatgen Structure) from a CSV with a cif column (carbon_24)."""
    from pymatgen.core import Structure
    out = []
    with gzip.open(path, "rt") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if limit is not None and i >= limit:
                break
            out.append((row["material_id"], Structure.from_str(row["cif"], fmt="cif")))
    return out


def write_poscar_dir(path, items):
    """items: (name, lattice rows, symbols, cartesian positions); one NAME.vasp each.
    Returns the items with atoms in the file's (species-grouped) order."""
    written = []
    os.makedirs(path, exist_ok=True)
    for f in os.listdir(path):
        os.remove(os.path.join(path, f))
    for name, lat, symbols, cart in items:
        species = []
        for s in symbols:
            if s not in species:
                species.append(s)
        order = sorted(range(len(symbols)), key=lambda k: species.index(symbols[k]))
        with open(os.path.join(path, name + ".vasp"), "w") as f:
            f.write(f"{name}\n1.0\n")
            for v in lat:
                f.write(" ".join(repr(float(x)) for x in v) + "\n")
            f.write(" ".join(species) + "\n")
            f.write(" ".join(str(symbols.count(s)) for s in species) + "\nCartesian\n")
            for k in order:
                f.write(" ".join(repr(float(x)) for x in cart[k]) + "\n")
        written.append((name, lat, [symbols[k] for k in order], [cart[k] for k in order]))
    return written


def run_druse(druse, args):
    r = subprocess.run([druse, "relax"] + args, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout[-2000:], r.stderr[-2000:])
        raise SystemExit(f"druse relax {' '.join(args)} failed with {r.returncode}")
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def read_extxyz(path):
    from ase.io import read
    return read(path, index=":", format="extxyz")
