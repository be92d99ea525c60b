"""Distance filter (druse filter --checks distance) against pymatgen on all of MP-20 test.

For every structure:
  - min_distance (distinct sites, minimum image) equals the smallest off-diagonal entry of
    pymatgen's Structure.distance_matrix, within 1e-6 Angstrom;
  - min_self_distance (a site to its own nearest periodic image) equals the shortest non-zero
    lattice vector from pymatgen's Lattice.get_points_in_sphere, within 1e-6 Angstrom;
  - the benchmark verdict (--rule benchmark) equals CDVAE/DiffCSP's structure_validity:
    distance_matrix min (diagonal masked) >= 0.5 A and volume >= 0.1 A^3.
Structures are built for pymatgen from the CSV's numeric columns (the same numbers as the CIF).
"""
import csv
import gzip
import json
import os
import subprocess
import sys
import time
import warnings

warnings.filterwarnings("ignore")
import numpy as np  # noqa: E402
from pymatgen.core import Lattice, Structure  # noqa: E402

TOL = 1e-6  # Angstrom
data = os.path.join(os.environ.get("DRUSE_DATA", ""), "mp_20", "test.csv.gz")
if not os.path.exists(data):
    print(f"skipped: {data} not found (set DRUSE_DATA to shared/data)")
    sys.exit(77)
druse = os.environ.get("DRUSE", "druse")

t0 = time.time()
out = subprocess.run([druse, "filter", data, "--checks", "distance", "--rule", "benchmark",
                      "--json"], check=True, capture_output=True, text=True).stdout
ours = {}
for line in out.splitlines():
    r = json.loads(line)
    ours[r["id"]] = r
t_druse = time.time() - t0


def structure(row):
    abc_angles = [float(x) for x in row["lattice_abc_angles"].split()]
    frac = np.array([float(x) for x in row["frac_coords"].split()]).reshape(-1, 3)
    Z = [int(x) for x in row["atomic_numbers"].split()]
    return Structure(Lattice.from_parameters(*abc_angles), Z, frac)


def pymatgen_min_distinct(s):
    if len(s) < 2:
        return float("inf")
    d = s.distance_matrix + np.diag(np.full(len(s), np.inf))
    return float(d.min())


def pymatgen_self_image(s):
    # The shortest non-zero lattice vector: every lattice point within the shortest cell edge.
    lat = s.lattice
    r = min(lat.abc) + 1e-6
    pts = lat.get_points_in_sphere([[0.0, 0.0, 0.0]], [0.0, 0.0, 0.0], r)
    return float(min(p[1] for p in pts if p[1] > 1e-8))


t0 = time.time()
rows = list(csv.DictReader(gzip.open(data, "rt")))
fail, worst_distinct, worst_self, n_invalid = [], 0.0, 0.0, 0
for row in rows:
    mid = row["material_id"]
    r = ours.get(mid)
    if r is None:
        fail.append(f"{mid}: missing from druse's output")
        continue
    s = structure(row)
    d_ref, self_ref = pymatgen_min_distinct(s), pymatgen_self_image(s)
    d_ours = float("inf") if r["min_distance"] is None else r["min_distance"]
    if not (abs(d_ours - d_ref) <= TOL or d_ours == d_ref):
        fail.append(f"{mid}: min_distance {d_ours!r} vs pymatgen {d_ref!r}")
    elif np.isfinite(d_ref):
        worst_distinct = max(worst_distinct, abs(d_ours - d_ref))
    if abs(r["min_self_distance"] - self_ref) > TOL:
        fail.append(f"{mid}: min_self_distance {r['min_self_distance']!r} vs {self_ref!r}")
    worst_self = max(worst_self, abs(r["min_self_distance"] - self_ref))
    both_ours = min(d_ours, r["min_self_distance"])
    if abs(both_ours - min(d_ref, self_ref)) > TOL:
        fail.append(f"{mid}: min including self-images {both_ours} vs {min(d_ref, self_ref)}")
    valid_ref = d_ref >= 0.5 and s.volume >= 0.1
    n_invalid += not valid_ref
    if r["distance_ok"] != valid_ref:
        fail.append(f"{mid}: benchmark verdict {r['distance_ok']} vs CDVAE rule {valid_ref}")
t_ref = time.time() - t0

print(f"{len(rows)} MP-20 test structures; druse {t_druse:.1f} s, pymatgen {t_ref:.1f} s")
print(f"largest |difference|: distinct sites {worst_distinct:.2e} A, self-images "
      f"{worst_self:.2e} A; structurally invalid by the benchmark rule: {n_invalid}")
if len(ours) != len(rows):
    fail.append(f"druse printed {len(ours)} structures, the CSV has {len(rows)}")
for f in fail[:30]:
    print("FAIL", f)
print(f"{len(rows) - len(fail)} agree, {len(fail)} disagreements")
sys.exit(1 if fail else 0)
