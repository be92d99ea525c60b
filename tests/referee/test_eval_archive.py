#!/usr/bin/python3
"""Referee: `druse eval ARCHIVE` (a campaign archive as SAMPLES, docs/eval.md) gives the same
metrics as `druse eval` on the same structures written as extended XYZ, and reports the
campaign's funnel.

A tiny real campaign (the shipped model, privately copied: a training run may rewrite it; 4
batches of 6 samples, 20 sampler steps, 100 relaxation steps) runs as shard 1/2 first, then
whole (under `mpirun -np 2`), resuming into the same archive, so that the master's rows come
in commit order (batches 1, 3, then 0, 2), not in sample-id order. Then:
  - relaxed: `druse export --format extxyz --include-duplicates`, frames put in sample-id order
    (by their sample_id= key), evaluated; must equal `druse eval ARCHIVE` (counts exactly,
    distances and percentages within 1e-9), also with --n-valid 5 (which depends on the order);
  - unrelaxed: the structures as sampled, read with h5py alone (crystals/lattice_unrelaxed,
    atoms/frac_unrelaxed, in sample-id order) and written as extended XYZ; must equal
    `druse eval ARCHIVE --unrelaxed`;
  - the same archive merged (`druse merge`, rows sorted, real datasets) evaluates the same;
  - the JSON `archive` object: the funnel equals the campaign/ attributes h5py reads, records
    = rows, structures relaxed/unrelaxed; the text output shows the funnel and says that
    validity is measured after the filters;
  - refusals: --unrelaxed without an archive and --csp with one (exit 2), an HDF5 file that is
    no archive (the model, exit 1, naming it).
The reference DIR is a small subset of MP-20 (first 400 test and 1500 train rows) so that the
test does not depend on the full dataset's cache. Environment: DRUSE, DRUSE_DATA,
DRUSE_SOURCE_DIR, DRUSE_TEST_TMP. Exit 77 (skipped) without the data or the shipped model.
"""
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
import time

SRC = os.environ.get("DRUSE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
DRUSE = os.environ.get("DRUSE", os.path.join(SRC, "build", "druse"))
DATA = os.environ.get("DRUSE_DATA", os.path.join(SRC, "..", "shared", "data"))
MP20 = os.path.join(DATA, "mp_20")
TMP = os.path.join(os.environ.get("DRUSE_TEST_TMP", "/tmp"), "eval_archive")
SHIPPED = os.path.join(SRC, "models", "mp20.h5")
MODEL = os.path.join(TMP, "model.h5")
ARCHIVE = os.path.join(TMP, "campaign.h5")
FUNNEL = ["sampled", "invalid", "too_close", "not_neutral", "symmetry_failed", "relax_failed",
          "passed", "duplicate", "archived"]

CONFIG = """campaign:
  name: test-eval-archive
  seed: 5
  model: {model}
  output: {out}
  batches: 4
  batch_size: 6
  commit_interval_s: 0.3
sampling:
  steps: 20
filters:
  novelty_reference: {ref}
relax:
  max_steps: 100
"""

# A one-structure novelty reference: the campaign's novelty flags do not matter here, and
# loading MP-20 train in every worker would cost seconds.
CU_CIF = """data_Cu
_cell_length_a 3.6
_cell_length_b 3.6
_cell_length_c 3.6
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Cu 0 0 0
"""

fails = []


def check(cond, what):
    print(("ok:   " if cond else "FAIL: ") + what)
    if not cond:
        fails.append(what)


def run(args, expect=0, mpi=0):
    cmd = [DRUSE] + args
    if mpi:
        cmd = ["mpirun", "--oversubscribe", "-np", str(mpi)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode != expect:
        print(out.stdout[-3000:], out.stderr[-3000:])
        print(f"FAIL: {' '.join(cmd)} exited {out.returncode}, expected {expect}")
        sys.exit(1)
    return out


def subset_csv(src, dst, rows):
    """The header and the first rows of a dataset CSV (rows end where a CSV record ends)."""
    import csv
    csv.field_size_limit(1 << 30)
    with gzip.open(src, "rt", newline="") as f, gzip.open(dst, "wt", newline="") as g:
        r, w = csv.reader(f), csv.writer(g)
        w.writerow(next(r))
        for k, row in enumerate(r):
            if k == rows:
                break
            w.writerow(row)


def frames(path):
    """The frames of an extended XYZ file as (comment, [lines])."""
    with open(path) as f:
        lines = f.read().splitlines()
    out, i = [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        n = int(lines[i])
        out.append((lines[i + 1], lines[i + 2:i + 2 + n]))
        i += 2 + n
    return out


def key_of(comment, key):
    for tok in comment.split():
        if tok.startswith(key + "="):
            return tok[len(key) + 1:].strip('"')
    return None


def write_frames(path, fr):
    with open(path, "w") as f:
        for comment, atoms in fr:
            f.write(f"{len(atoms)}\n{comment}\n" + "".join(a + "\n" for a in atoms))


def same(a, b, path=""):
    """Differences between two JSON values: exact for ints and strings, 1e-9 for floats."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in same(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: lengths {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in same(x, y, f"{path}[{i}]")]
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None or not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9):
            return [f"{path}: {a!r} != {b!r}"]
        return []
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def metrics(d):
    """The metrics of an eval JSON: everything but the input's name and the archive object."""
    return {k: v for k, v in d.items() if k not in ("samples", "archive")}


def evaluate(samples, ref, *extra):
    return json.loads(run(["eval", samples, "--reference", ref, "--json", *extra]).stdout)


def main():
    t_start = time.time()
    for p in (os.path.join(MP20, "test.csv.gz"), os.path.join(MP20, "train.csv.gz")):
        if not os.path.exists(p):
            print("SKIP:", p, "not found (set DRUSE_DATA)")
            sys.exit(77)
    if not os.path.exists(SHIPPED):
        print("SKIP: no shipped model", SHIPPED)
        sys.exit(77)
    if not os.access(DRUSE, os.X_OK):
        print("FAIL: DRUSE does not name the druse binary")
        sys.exit(1)
    import h5py
    import numpy as np
    from pymatgen.core import Element

    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(os.path.join(TMP, "ref"))
    shutil.copy(SHIPPED, MODEL)
    ref = os.path.join(TMP, "ref")
    subset_csv(os.path.join(MP20, "test.csv.gz"), os.path.join(ref, "test.csv.gz"), 400)
    subset_csv(os.path.join(MP20, "train.csv.gz"), os.path.join(ref, "train.csv.gz"), 1500)
    novelty = os.path.join(TMP, "cu.cif")
    with open(novelty, "w") as f:
        f.write(CU_CIF)
    cfg = os.path.join(TMP, "campaign.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(model=MODEL, out=ARCHIVE, ref=novelty))
    # shard 1/2 first (batches 1, 3), then the whole campaign resumes into the same archive
    # (batches 0, 2): the master's rows come in commit order, not in sample-id order
    run(["screen", cfg, "--shard", "1/2"])
    run(["screen", cfg], mpi=2)

    with h5py.File(ARCHIVE, "r") as f:
        sid = f["crystals/sample_id"][:]
        natoms = f["crystals/natoms"][:]
        off = f["crystals/atom_offset"][:]
        lat_u = f["crystals/lattice_unrelaxed"][:]
        Z = f["atoms/Z"][:]
        frac_u = f["atoms/frac_unrelaxed"][:]
        attrs = {k: int(f["campaign"].attrs[k]) for k in FUNNEL}
    n = len(sid)
    print(f"campaign: {attrs['sampled']} sampled, {n} records; the master's rows are "
          f"{'in sample-id order' if list(sid) == sorted(sid) else 'not in sample-id order'}")
    check(n > 0 and n == attrs["passed"], f"archive holds {n} records = passed")
    check(list(sid) != sorted(sid), "the master's rows are not in sample-id order")

    # ---- relaxed: archive vs the exported extended XYZ in sample-id order
    exported = os.path.join(TMP, "exported.xyz")
    run(["export", ARCHIVE, "--format", "extxyz", "--include-duplicates", "-o", exported])
    fr = frames(exported)
    check(len(fr) == n, f"export wrote {len(fr)} frames")
    fr.sort(key=lambda c: int(key_of(c[0], "sample_id")))
    sorted_xyz = os.path.join(TMP, "exported-sorted.xyz")
    write_frames(sorted_xyz, fr)
    from_archive = evaluate(ARCHIVE, ref)
    from_xyz = evaluate(sorted_xyz, ref)
    d = same(metrics(from_archive), metrics(from_xyz))
    check(not d, f"eval ARCHIVE == eval exported.xyz (relaxed) {d[:5]}")
    print(f"      valid {from_archive['valid']}, unique {from_archive['unique']}, "
          f"wdist_density {from_archive['wdist_density']}")
    # the Wasserstein distances over the first 5 valid samples depend on the order: sample ids
    d = same(metrics(evaluate(ARCHIVE, ref, "--n-valid", "5")),
             metrics(evaluate(sorted_xyz, ref, "--n-valid", "5")))
    check(not d, f"the same with --n-valid 5 (the first valid samples in sample-id order) {d[:5]}")

    # ---- unrelaxed: archive --unrelaxed vs the structures as sampled, read with h5py
    order = np.argsort(sid, kind="stable")
    unrelaxed_xyz = os.path.join(TMP, "unrelaxed.xyz")
    with open(unrelaxed_xyz, "w") as f:
        for i in order:
            L = lat_u[i]
            rows = slice(int(off[i]), int(off[i]) + int(natoms[i]))
            cart = frac_u[rows] @ L
            f.write(f"{natoms[i]}\nLattice=\"{' '.join(repr(float(x)) for x in L.ravel())}\" "
                    f"Properties=species:S:1:pos:R:3 pbc=\"T T T\" id=druse-{sid[i]}\n")
            for z, x in zip(Z[rows], cart):
                f.write(f"{Element.from_Z(int(z)).symbol} {x[0]!r} {x[1]!r} {x[2]!r}\n")
    un_archive = evaluate(ARCHIVE, ref, "--unrelaxed")
    un_xyz = evaluate(unrelaxed_xyz, ref)
    d = same(metrics(un_archive), metrics(un_xyz))
    check(not d, f"eval ARCHIVE --unrelaxed == eval of the h5py unrelaxed structures {d[:5]}")
    check(un_archive["wdist_density"] != from_archive["wdist_density"],
          f"--unrelaxed reads other structures (wdist_density {un_archive['wdist_density']})")
    check(un_archive["archive"]["structures"] == "unrelaxed" and
          from_archive["archive"]["structures"] == "relaxed", "archive.structures")

    # ---- a merged file (sorted rows, real datasets) evaluates the same
    merged = os.path.join(TMP, "merged.h5")
    run(["merge", merged, ARCHIVE])
    d = same(metrics(evaluate(merged, ref)), metrics(from_archive))
    check(not d, f"eval MERGED == eval MASTER {d[:5]}")

    # ---- the funnel
    a = from_archive["archive"]
    check(a["funnel"] == attrs, f"JSON funnel equals campaign/ attributes {a['funnel']}")
    check(a["records"] == n and from_archive["n_samples"] == n, "records = n_samples = rows")
    check(a["campaign"] == "test-eval-archive" and a["batches_done"] == 4 and
          a["batches_planned"] == 4, "campaign name and batches")
    check(evaluate(sorted_xyz, ref)["archive"] is None, "archive is null for other inputs")
    text = run(["eval", ARCHIVE, "--reference", ref]).stdout
    check("funnel" in text and f"sampled {attrs['sampled']}" in text and
          f"archived {attrs['archived']}" in text and "after the filters" in text,
          "text output shows the funnel and says validity is measured after the filters")
    help_text = run(["eval", "--help"]).stdout
    check("--unrelaxed" in help_text and "after the filters" in help_text, "--help documents it")

    # ---- refusals
    run(["eval", sorted_xyz, "--reference", ref, "--unrelaxed"], expect=2)
    run(["eval", "--csp", ARCHIVE, "--reference", ref], expect=2)
    err = run(["eval", MODEL, "--reference", ref], expect=1).stderr
    check("model.h5" in err and "not a druse archive" in err,
          f"an HDF5 file that is no archive: clear error ({err.strip()[-120:]})")

    print(f"total {time.time() - t_start:.1f} s")
    print("PASS" if not fails else f"FAIL: {fails}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
