#!/usr/bin/python3
"""druse relax against ASE (Debian python3-ase) on carbon-24 structures, plain Lennard-Jones
(ase.calculators.lj.LennardJones, cut and shifted: smooth=False):
  1. energy, forces and stress of the input (--steps 0) equal ASE's to 1e-8 relative;
  2. FIRE with ASE's ExpCellFilter (ASE 3.22) and with FrechetCellFilter (ASE >= 3.23's
     definition, written below for ASE 3.22) reaches ASE's relaxed energy to 1e-4 eV/atom."""
import os
import sys
import warnings
from itertools import product

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relax_common import env_or_skip, load_cif_csv, run_druse, skip, write_poscar_dir

DRUSE, DATA, TMP = env_or_skip()
try:
    import numpy as np
    from ase import Atoms
    from ase.calculators.lj import LennardJones
    from ase.constraints import ExpCellFilter, UnitCellFilter
    from ase.optimize import FIRE
    from ase.stress import voigt_6_to_full_3x3_stress
    from scipy.linalg import expm, expm_frechet, logm
except ImportError as e:
    skip(f"referee packages missing: {e}")
warnings.filterwarnings("ignore")

SIGMA, EPS, RC = 1.3, 1.0, 3.25
SPEC = f"lj:sigma={SIGMA},epsilon={EPS},rc={RC}"
N_EVAL, N_FIRE = 12, 4


class FrechetCellFilter(UnitCellFilter):
    """ASE's FrechetCellFilter (ase/filters.py in ASE >= 3.23): cell DOFs natoms * log(F),
    cell forces the exact gradient through the Frechet derivative of exp."""

    def __init__(self, atoms):
        UnitCellFilter.__init__(self, atoms)
        self.cell_factor = 1.0  # UnitCellFilter.set_positions must get exp(U) itself
        self.exp_cell_factor = float(len(atoms))

    def get_positions(self):
        pos = UnitCellFilter.get_positions(self)
        n = len(self.atoms)
        pos[n:] = logm(self.deform_grad()) * self.exp_cell_factor
        return pos

    def set_positions(self, new, **kw):
        n = len(self.atoms)
        new2 = new.copy()
        new2[n:] = expm(new[n:] / self.exp_cell_factor)
        UnitCellFilter.set_positions(self, new2, **kw)

    def get_forces(self, **kw):
        virial = -self.atoms.get_volume() * voigt_6_to_full_3x3_stress(self.atoms.get_stress())
        F = self.deform_grad()
        U = logm(F)
        g = virial @ np.linalg.inv(F.T)
        fU = np.zeros((3, 3))
        for m, n in product(range(3), repeat=2):
            E = np.zeros((3, 3))
            E[m, n] = 1.0
            fU[m, n] = np.sum(expm_frechet(U, E, compute_expm=False) * g)
        n = len(self.atoms)
        forces = np.zeros((n + 3, 3))
        forces[:n] = self.atoms.get_forces() @ F
        forces[n:] = fU / self.exp_cell_factor
        return forces


def ase_atoms(lat, symbols, cart):
    a = Atoms(symbols=symbols, positions=cart, cell=lat, pbc=True)
    a.calc = LennardJones(sigma=SIGMA, epsilon=EPS, rc=RC, smooth=False)
    return a


def main():
    path = os.path.join(DATA, "carbon_24", "test.csv.gz")
    if not os.path.exists(path):
        skip(f"{path} is absent")
    structs = load_cif_csv(path, 60)
    items = [(f"c{i:03d}", s.lattice.matrix.tolist(), [str(e) for e in s.species],
              s.cart_coords.tolist()) for i, (_, s) in enumerate(structs[:N_EVAL])]
    d = os.path.join(TMP, "relax_ase_eval")
    items = write_poscar_dir(d, items)
    failures = 0

    # 1. energy, forces, stress
    out = {o["id"]: o for o in run_druse(DRUSE, [d, "--steps", "0", "--json", "--potential", SPEC])}
    worst = [0.0, 0.0, 0.0]
    for name, lat, sym, cart in items:
        a = ase_atoms(lat, sym, cart)
        o = out[name]
        e_ref, f_ref = a.get_potential_energy(), a.get_forces()
        s_ref = voigt_6_to_full_3x3_stress(a.get_stress()) * 160.21766208  # GPa
        errs = [abs(o["energy"] - e_ref) / max(abs(e_ref), 1e-12),
                np.abs(np.array(o["forces"]) - f_ref).max() / max(np.abs(f_ref).max(), 1e-12),
                np.abs(np.array(o["stress"]) - s_ref).max() / max(np.abs(s_ref).max(), 1e-12)]
        worst = [max(w, e) for w, e in zip(worst, errs)]
        if max(errs) > 1e-8:
            print(f"FAIL {name}: relative errors energy {errs[0]:.2e} forces {errs[1]:.2e} "
                  f"stress {errs[2]:.2e}")
            failures += 1
    print(f"energy/forces/stress vs ASE on {len(items)} structures: worst relative errors "
          f"{worst[0]:.1e} {worst[1]:.1e} {worst[2]:.1e} (limit 1e-8)")

    # 2. FIRE with the same filter: the smallest structures (ASE's FIRE is slow)
    small = [it for it in sorted(items, key=lambda it: len(it[2]))][:N_FIRE]
    d2 = os.path.join(TMP, "relax_ase_fire")
    write_poscar_dir(d2, small)
    for flt, cls in (("exp", ExpCellFilter), ("frechet", FrechetCellFilter)):
        res = {o["id"]: o for o in run_druse(DRUSE, [d2, "--json", "--potential", SPEC,
                                                     "--filter", flt, "--max-stress", "0",
                                                     "--steps", "3000"])}
        for name, lat, sym, cart in small:
            a = ase_atoms(lat, sym, cart)
            opt = FIRE(cls(a), logfile=None)
            opt.run(fmax=0.05, steps=3000)
            e_ase = a.get_potential_energy() / len(a)
            o = res[name]
            diff = abs(o["energy_per_atom"] - e_ase)
            ok = diff <= 1e-4 and o["converged"]
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {flt:8s} {name} natoms {len(a):2d}: druse "
                  f"{o['energy_per_atom']:.8f} eV/atom in {o['steps']} steps, ASE {e_ase:.8f} "
                  f"in {opt.nsteps} steps, |diff| {diff:.1e}")
    if failures:
        sys.exit(f"{failures} comparisons failed")
    print("all comparisons passed")


if __name__ == "__main__":
    main()
