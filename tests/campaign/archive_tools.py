"""Helpers for campaign tests: read a druse archive with h5py (no druse involved) and compare
two archives record by record, sorted by sample id. Used by tests/referee/test_screen.py,
tests/campaign/fault_kill9.py and the Slurm test."""
import sys

import h5py
import numpy as np


def load(path):
    """Every record of an archive as a dict of numpy arrays sorted by sample_id, with the atoms
    of each crystal gathered in that order, plus the done batches and the funnel."""
    with h5py.File(path, "r") as f:
        c = {k: f["crystals"][k][...] for k in f["crystals"]}
        a = {k: f["atoms"][k][...] for k in f["atoms"]}
        batches = f["batches/batch_id"][...]
        counts = f["batches/counts"][...]
        attrs = dict(f["campaign"].attrs)
    order = np.argsort(c["sample_id"], kind="stable")
    rows = [np.arange(o, o + n) for o, n in zip(c["atom_offset"][order], c["natoms"][order])]
    rows = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    out = {k: v[order] for k, v in c.items() if k != "atom_offset"}
    out.update({"atoms/" + k: v[rows] for k, v in a.items()})
    b = np.argsort(batches)
    out["batches"] = batches[b]
    out["counts"] = counts[b]
    return out, attrs


def differences(pa, pb):
    """List of what differs between archives pa and pb (empty when equal, bit for bit)."""
    a, _ = load(pa)
    b, _ = load(pb)
    diff = []
    for k in sorted(set(a) | set(b)):
        if k not in a or k not in b:
            diff.append(f"{k}: only in one archive")
        elif a[k].shape != b[k].shape:
            diff.append(f"{k}: shape {a[k].shape} vs {b[k].shape}")
        elif a[k].dtype.kind == "f":
            if not np.array_equal(a[k], b[k], equal_nan=True):
                diff.append(f"{k}: values differ")
        elif not np.array_equal(a[k], b[k]):
            diff.append(f"{k}: values differ")
    return diff


if __name__ == "__main__":
    d = differences(sys.argv[1], sys.argv[2])
    print("\n".join(d) if d else "equal")
    sys.exit(1 if d else 0)
