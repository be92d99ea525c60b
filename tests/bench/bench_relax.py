#!/usr/bin/python3
"""Speed of druse relax: median milliseconds per MP-20 structure for a full relaxation, and the
ratio to ASE's FIRE with the same potential on the same structures, in one run.

ASE cannot express druse's default "mp20" potential, so the head-to-head uses plain
Lennard-Jones (ase.calculators.lj.LennardJones, smooth=False; druse --potential lj:...) and
ASE 3.22's ExpCellFilter (druse --filter exp --max-stress 0), which follow the same
trajectories step for step. The default potential is timed on the whole test split too.

usage: /usr/bin/python3 tests/bench/bench_relax.py DRUSE [--data DIR] [--n-ase 30] [--write]
  --write  puts the figures into BENCHMARKS.md between <!-- bench:relax --> markers."""
import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "referee"))
from relax_common import load_mp20, run_druse, write_poscar_dir  # noqa: E402

import numpy as np  # noqa: E402

warnings.filterwarnings("ignore")
SIGMA, EPS, RC = 2.0, 0.1, 5.0


def cpu_model():
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    m = re.search(r"Model name:\s*(.+)", out)
    return (m.group(1).strip() if m else platform.processor()), os.cpu_count()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("druse")
    ap.add_argument("--data", default=os.environ.get("DRUSE_DATA", "/work/shared/data"))
    ap.add_argument("--tmp", default="/tmp/druse_bench_relax")
    ap.add_argument("--n-ase", type=int, default=30)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    from ase import Atoms
    from ase.calculators.lj import LennardJones
    from ase.constraints import ExpCellFilter
    from ase.optimize import FIRE
    from pymatgen.core import Lattice, Structure

    rows = load_mp20(os.path.join(args.data, "mp_20", "test.csv.gz"))
    items = []
    for k, (mid, lat, Z, frac, formula) in enumerate(rows):
        s = Structure(Lattice(lat), Z, frac)
        items.append((f"s{k:05d}", lat, [str(e) for e in s.species], s.cart_coords.tolist()))
    full_dir = os.path.join(args.tmp, "all")
    items = write_poscar_dir(full_dir, items)

    # 1. the default potential on the whole split
    t0 = time.perf_counter()
    out = run_druse(args.druse, [full_dir, "--json"])
    wall_all = time.perf_counter() - t0
    ms_default = np.array([o["time_ms"] for o in out])
    steps_default = np.array([o["steps"] for o in out])
    out_uff = run_druse(args.druse, [full_dir, "--json", "--potential", "uff-lj"])
    ms_uff = np.array([o["time_ms"] for o in out_uff])

    # 2. head to head with ASE: plain LJ, ExpCellFilter, same structures (seeded sample)
    rng = np.random.default_rng(0)
    pick = sorted(rng.choice(len(items), args.n_ase, replace=False))
    sub = [items[k] for k in pick]
    sub_dir = os.path.join(args.tmp, "ase")
    write_poscar_dir(sub_dir, sub)
    spec = f"lj:sigma={SIGMA},epsilon={EPS},rc={RC}"
    lj = {o["id"]: o for o in run_druse(args.druse, [sub_dir, "--json", "--potential", spec,
                                                     "--filter", "exp", "--max-stress", "0"])}
    ms_druse, ms_ase, de = [], [], []
    for name, lat, sym, cart in sub:
        a = Atoms(symbols=sym, positions=cart, cell=lat, pbc=True)
        a.calc = LennardJones(sigma=SIGMA, epsilon=EPS, rc=RC, smooth=False)
        t = time.perf_counter()
        opt = FIRE(ExpCellFilter(a), logfile=None)
        opt.run(fmax=0.05, steps=1000)
        ms_ase.append((time.perf_counter() - t) * 1e3)
        ms_druse.append(lj[name]["time_ms"])
        de.append(abs(lj[name]["energy_per_atom"] - a.get_potential_energy() / len(a)))
    ms_druse, ms_ase = np.array(ms_druse), np.array(ms_ase)
    ratio = np.median(ms_ase) / np.median(ms_druse)
    ratio_each = np.median(ms_ase / ms_druse)

    model, cores = cpu_model()
    cmd = f"/usr/bin/python3 tests/bench/bench_relax.py {args.druse} --n-ase {args.n_ase}"
    text = f"""<!-- bench:relax -->
## druse relax (relax/, issue 4)

Machine: {model}, {cores} cores; {datetime.date.today().isoformat()}; one process, one thread.
Command: `{cmd}` (Release build).

| what | structures | median ms per relaxation | other |
|---|---|---|---|
| default potential (mp20), FrechetCellFilter, fmax 0.05, max stress 0.1 GPa | MP-20 test, all {len(items)} | {np.median(ms_default):.3f} | mean {np.mean(ms_default):.3f} ms, p95 {np.percentile(ms_default, 95):.3f} ms, median {np.median(steps_default):.0f} steps; whole command {wall_all:.1f} s wall (reading the POSCARs and writing JSON included) |
| uff-lj, same options | MP-20 test, all {len(items)} | {np.median(ms_uff):.3f} | p95 {np.percentile(ms_uff, 95):.3f} ms |
| plain LJ (sigma {SIGMA}, epsilon {EPS}, rc {RC}), ExpCellFilter, druse | MP-20 test, seeded sample of {args.n_ase} | {np.median(ms_druse):.3f} | |
| same, ASE 3.22 FIRE + ExpCellFilter + LennardJones | same {args.n_ase} | {np.median(ms_ase):.1f} | |

**druse is {ratio:.0f}x faster than ASE** (ratio of medians; median of per-structure ratios
{ratio_each:.0f}x) on the same structures, potential, filter and FIRE, reaching the same energies
(largest |difference| {max(de):.1e} eV/atom). Times are druse's own per-structure timer
(time_ms: relaxation only) and Python's perf_counter around ASE's optimizer.
<!-- /bench:relax -->
"""
    print(text)
    if args.write:
        path = os.path.join(HERE, "..", "..", "BENCHMARKS.md")
        old = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
        pat = re.compile(r"<!-- bench:relax -->.*?<!-- /bench:relax -->\n?", re.S)
        new = pat.sub(lambda m: text, old) if pat.search(old) else old.rstrip("\n") + "\n\n" + text
        with open(path, "w") as f:
            f.write(new)
        print(f"wrote {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
