#!/usr/bin/python3
"""Data-parallel training over MPI (generator/train.c): 2 and 3 ranks give the same weights as
1 rank with the same global batch after 10 steps, to float tolerance.

Runs the hidden MPI mode of the unit test executable (DRUSE_TRAIN_MPI_OUT=path: 10 optimizer
steps on a global batch of 16 crystals, perov-5 test rows from $DRUSE_DATA or synthetic 5-atom
cells, each rank taking its share; rank 0 writes the parameter block as raw little-endian
float32) under mpirun -np 1, 2 and 3 (3 splits the batch unevenly: 5/5/6 crystals, so the
per-rank example weights matter). Three times: with fixed synthetic targets, with
DRUSE_TRAIN_MPI_NOISED=1, batches noised by gen_diffusion_noise_batch (random masks), and noised
with DRUSE_TRAIN_MPI_MIXED=1, crystals cut to 2..5 atoms (mixed sizes: the trainer normalizes
each loss term by its global count, atoms, crystals and masked atoms, so every split equals
1 rank). All three loss terms each time. Exits 77 (skipped) when mpirun is missing.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np


def main():
    mpirun = shutil.which("mpirun")
    if not mpirun:
        print("SKIP: mpirun not found")
        return 77
    druse = os.environ.get("DRUSE")
    if not druse:
        print("SKIP: $DRUSE not set (run under ctest)")
        return 77
    exe = os.path.join(os.path.dirname(druse), "tests", "test_gen_train")
    if not os.access(exe, os.X_OK):
        print(f"FAIL: {exe} not built")
        return 1
    env = dict(os.environ)
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env["OPENBLAS_NUM_THREADS"] = "1"
    tmpdir = tempfile.mkdtemp(prefix="gen_train_mpi.", dir=os.environ.get("DRUSE_TEST_TMP"))
    ok = True
    try:
        for noised, mixed in (("0", "0"), ("1", "0"), ("1", "1")):
            env["DRUSE_TRAIN_MPI_NOISED"] = noised
            env["DRUSE_TRAIN_MPI_MIXED"] = mixed
            print(f"--- {'noised batches' if noised == '1' else 'fixed targets'}"
                  f"{', mixed sizes' if mixed == '1' else ''}")
            r = run_and_compare(mpirun, exe, env, tmpdir)
            if r is None:
                return 1
            ok = ok and r
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    if ok:
        print("OK")
    return 0 if ok else 1


def run_and_compare(mpirun, exe, env, tmpdir):
    weights = {}
    try:
        for n in (1, 2, 3):
            out = os.path.join(tmpdir, f"w{n}.bin")
            env["DRUSE_TRAIN_MPI_OUT"] = out
            cmd = [mpirun, "-np", str(n), "--oversubscribe", exe]
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
            print(f"$ DRUSE_TRAIN_MPI_OUT={out} {' '.join(cmd)}")
            print(r.stdout.strip())
            if r.returncode != 0:
                print(r.stderr.strip())
                print(f"FAIL: mpirun -np {n} exited {r.returncode}")
                return None
            if f"ranks {n}," not in r.stdout:
                print(f"FAIL: the run did not report {n} ranks")
                return None
            weights[n] = np.fromfile(out, dtype="<f4").astype(np.float64)
            os.unlink(out)
    except subprocess.TimeoutExpired:
        print("FAIL: mpirun timed out")
        return None
    a = weights[1]
    if a.size == 0 or not np.all(np.isfinite(a)):
        print("FAIL: empty or non-finite weights")
        return None
    ok = True
    for n in (2, 3):
        b = weights[n]
        if b.shape != a.shape:
            print(f"FAIL: {n} ranks wrote {b.size} floats, 1 rank {a.size}")
            return None
        diff = np.abs(a - b)
        norm_rel = np.linalg.norm(a - b) / np.linalg.norm(a)
        max_rel = float(np.max(diff / np.maximum(np.abs(a), 1e-3)))
        print(f"{n} ranks vs 1: {a.size} params, max |diff| {diff.max():.3g}, "
              f"norm-relative {norm_rel:.3g}, max relative (floor 1e-3) {max_rel:.3g}, "
              f"bit-identical {int(np.sum(diff == 0))}/{a.size}")
        if not (norm_rel < 1e-5 and np.allclose(b, a, rtol=1e-5, atol=1e-6)):
            print(f"FAIL: {n} ranks differ from 1 rank beyond float tolerance")
            ok = False
    return ok


if __name__ == "__main__":
    sys.exit(main())
