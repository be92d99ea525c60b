#!/usr/bin/python3
"""`druse sample` conditioning from the command line (pipeline/cmd_sample.c), read back with ASE
and checked with pymatgen, on the shipped model (a private copy: training may rewrite it):

- --csp-from TEST.csv.gz: frame i carries material_id = row i's id and exactly row i's atoms
  (pymatgen's parse of the CIF), as `druse eval --csp` needs;
- --shard 0/2 + 1/2 concatenated equal the unsharded run byte for byte;
- --composition Li3PO4: every structure's reduced formula is Li3PO4;
- --elements Li,Fe,P,O: no other element appears;
- bad arguments: clear errors and exit status 1 (missing dataset, naming it) or 2 (usage).

Few reverse steps keep it fast: this checks the plumbing, not the quality (docs/eval.md).
Exits 77 (skipped) without the MP-20 data.
"""
import gzip
import csv
import os
import shutil
import sys
import tempfile

from cli_common import run


def main():
    druse = os.environ.get("DRUSE")
    data = os.environ.get("DRUSE_DATA", "")
    src_dir = os.environ.get("DRUSE_SOURCE_DIR",
                             os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    test_csv = os.path.join(data, "mp_20", "test.csv.gz")
    if not druse:
        print("SKIP: $DRUSE not set (run under ctest)")
        return 77
    if not os.path.exists(test_csv):
        print(f"SKIP: no MP-20 data under {data!r}")
        return 77
    from ase.io import read
    from pymatgen.core import Composition, Structure

    tmp = tempfile.mkdtemp(prefix="sample_cmd.", dir=os.environ.get("DRUSE_TEST_TMP"))
    model = os.path.join(tmp, "model.h5")
    shutil.copy(os.path.join(src_dir, "models", "mp20.h5"), model)
    base = [druse, "sample", "--model", model, "--seed", "3", "--steps", "40", "--stride", "4"]
    n = 6

    full = os.path.join(tmp, "csp.xyz")
    run(base + ["--csp-from", test_csv, "--n", str(n), "-o", full])
    rows = []
    with gzip.open(test_csv, "rt", newline="") as f:
        for row in csv.DictReader(f):
            rows.append(row)
            if len(rows) == n:
                break
    frames = read(full, index=":")
    if len(frames) != n:
        print(f"FAIL: {len(frames)} CSP frames, expected {n}")
        return 1
    for frame, row in zip(frames, rows):
        want = sorted(str(s) for s in Structure.from_str(row["cif"], fmt="cif").species)
        got = sorted(frame.get_chemical_symbols())
        if str(frame.info.get("material_id")) != row["material_id"] or got != want:
            print(f"FAIL: CSP frame {frame.info} has {got}, expected {row['material_id']} {want}")
            return 1
    print(f"--csp-from: {n} frames named and composed as the first {n} test rows")

    parts = [os.path.join(tmp, f"part{i}.xyz") for i in range(2)]
    for i, part in enumerate(parts):
        run(base + ["--csp-from", test_csv, "--n", str(n), "--shard", f"{i}/2", "-o", part])
    joined = b"".join(open(p, "rb").read() for p in parts)
    if joined != open(full, "rb").read():
        print("FAIL: the two shards concatenated differ from the unsharded run")
        return 1
    print("--shard: 0/2 + 1/2 equal the whole run byte for byte")

    comp = os.path.join(tmp, "li3po4.xyz")
    run(base + ["--composition", "Li3PO4", "--n", "4", "-o", comp])
    for frame in read(comp, index=":"):
        formula = Composition(frame.get_chemical_formula()).reduced_formula
        if formula != "Li3PO4":
            print(f"FAIL: --composition Li3PO4 gave {formula}")
            return 1
    elems = os.path.join(tmp, "lifepo.xyz")
    run(base + ["--elements", "Li,Fe,P,O", "--n", "4", "-o", elems])
    for frame in read(elems, index=":"):
        extra = set(frame.get_chemical_symbols()) - {"Li", "Fe", "P", "O"}
        if extra:
            print(f"FAIL: --elements Li,Fe,P,O gave {sorted(extra)}")
            return 1
    print("--composition and --elements: respected")

    missing = os.path.join(tmp, "no-such.csv.gz")
    err = run(base + ["--csp-from", missing, "-o", full], expect=1)
    if missing not in err:
        print(f"FAIL: the error does not name {missing}: {err}")
        return 1
    run(base + ["--csp-from", test_csv, "--composition", "Fe2O3", "-o", full], expect=2)
    run(base + ["--n", "2", "--shard", "2/2", "-o", full], expect=2)
    run(base + ["--n", "2", "--shard", "1", "-o", full], expect=2)
    print("bad arguments: refused with the documented exit status")
    shutil.rmtree(tmp, ignore_errors=True)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
