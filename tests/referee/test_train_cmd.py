#!/usr/bin/python3
"""`druse train` end to end (pipeline/cmd_train.c): configs/train-tiny.yaml with the data paths
taken from $DRUSE_DATA and the model and checkpoint redirected into $DRUSE_TEST_TMP. Checks that
the validation loss falls clearly (final below 60 % of the initial), that the model file loads
in `druse sample`, that raising train.epochs by one resumes from the checkpoint and runs exactly
one more epoch, that the model file carries the provenance attributes (h5py), that a
checkpoint with another learning rate is refused, and that train.init_from starts a new run
from the trained model's weights (its first validation loss is the model's last) and refuses a
model of another size. Exits 77 (skipped)
without the perov-5 data.
"""
import os
import re
import shutil
import sys
import tempfile
import time

from cli_common import run


def write_config(src, dst, data, tmp, epochs=None, lr=None, name="tiny", init_from=None,
                 hidden=None):
    text = open(src).read()
    text = text.replace("../shared/data", data)
    text = re.sub(r"(?m)^(\s*checkpoint:).*$", rf"\1 {tmp}/{name}.ckpt.h5", text)
    text = re.sub(r"(?m)^(\s*output:).*$", rf"\1 {tmp}/{name}-model.h5", text)
    if init_from is not None:
        text = re.sub(r"(?m)^(\s*)(output:.*)$", rf"\1\2\n\1init_from: {init_from}", text)
    if hidden is not None:
        text = re.sub(r"(?m)^(\s*hidden:).*$", rf"\1 {hidden}", text)
    if epochs is not None:
        text = re.sub(r"(?m)^(\s*epochs:).*$", rf"\1 {epochs}", text)
    if lr is not None:
        text = re.sub(r"(?m)^(\s*lr:).*$", rf"\1 {lr}", text)
    with open(dst, "w") as f:
        f.write(text)


def main():
    druse = os.environ.get("DRUSE")
    data = os.environ.get("DRUSE_DATA", "")
    src_dir = os.environ.get("DRUSE_SOURCE_DIR",
                             os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    if not druse:
        print("SKIP: $DRUSE not set (run under ctest)")
        return 77
    if not os.path.exists(os.path.join(data, "perov_5", "test.csv.gz")):
        print(f"SKIP: no perov-5 data under {data!r}")
        return 77
    tmp = tempfile.mkdtemp(prefix="train_cmd.", dir=os.environ.get("DRUSE_TEST_TMP"))
    src = os.path.join(src_dir, "configs", "train-tiny.yaml")
    epochs = int(re.search(r"(?m)^\s*epochs:\s*(\d+)", open(src).read()).group(1))
    cfg = os.path.join(tmp, "tiny.yaml")
    write_config(src, cfg, data, tmp)

    t0 = time.time()
    err = run([druse, "train", cfg])
    secs = time.time() - t0
    v0 = float(re.search(r"val loss ([0-9.]+) at step 0", err).group(1))
    v1 = float(re.search(r"final val loss ([0-9.]+)", err).group(1))
    print(f"tiny training: val loss {v0:.4f} -> {v1:.4f} in {secs:.1f} s ({epochs} epochs)")
    if not v1 < 0.6 * v0:
        print(f"FAIL: the validation loss did not fall clearly\n{err}")
        return 1
    model = os.path.join(tmp, "tiny-model.h5")
    try:
        import h5py
    except ImportError:
        h5py = None
    if h5py:
        with h5py.File(model, "r") as f:
            a = f.attrs
            if (int(a["train_epochs"]) != epochs or abs(float(a["val_loss"]) - v1) > 1e-3
                    or b"perov_5/test.csv.gz" not in bytes(a["train_dataset"])
                    or b"data:" not in bytes(a["train_config"])):
                print(f"FAIL: provenance attributes: {dict(a)}")
                return 1
    run([druse, "sample", "--model", model, "--n", "2", "--steps", "5", "-o",
         os.path.join(tmp, "x.xyz")])

    # One more epoch: resumes from the end-of-run checkpoint.
    steps = int(re.search(r"step (\d+)/(\d+)", err).group(2))
    per_epoch = steps // epochs
    cfg2 = os.path.join(tmp, "tiny-more.yaml")
    write_config(src, cfg2, data, tmp, epochs=epochs + 1)
    err2 = run([druse, "train", cfg2])
    m = re.search(r"resumed from .* at step (\d+)", err2)
    if not m or int(m.group(1)) != steps:
        print(f"FAIL: no resume from step {steps}\n{err2}")
        return 1
    last = re.findall(r"step (\d+)/(\d+)", err2)[-1]
    if int(last[0]) != steps + per_epoch:
        print(f"FAIL: expected to end at step {steps + per_epoch}\n{err2}")
        return 1
    v2 = float(re.search(r"final val loss ([0-9.]+)", err2).group(1))
    print(f"resumed one epoch: steps {steps} -> {last[0]}, val loss {v2:.4f}")
    run([druse, "sample", "--model", model, "--n", "2", "--steps", "5", "-o",
         os.path.join(tmp, "y.xyz")])

    # Another learning rate: the checkpoint is refused.
    cfg3 = os.path.join(tmp, "tiny-lr.yaml")
    write_config(src, cfg3, data, tmp, epochs=epochs + 2, lr="5.0e-4")
    err3 = run([druse, "train", cfg3], expect=1)
    if "train.lr" not in err3:
        print(f"FAIL: the refusal does not name train.lr\n{err3}")
        return 1
    # Fine-tuning: a fresh run from the trained model's weights starts at its validation loss
    # (same validation set and noise: same seed; no EMA in the tiny config).
    cfg4 = os.path.join(tmp, "tiny-ft.yaml")
    write_config(src, cfg4, data, tmp, epochs=1, name="ft", init_from=model)
    err4 = run([druse, "train", cfg4])
    v4 = float(re.search(r"val loss ([0-9.]+) at step 0", err4).group(1))
    print(f"init_from: first val loss {v4:.4f} (the source model's last: {v2:.4f})")
    if abs(v4 - v2) > 1e-3 or "resumed" in err4:
        print(f"FAIL: init_from did not start from the model's weights\n{err4}")
        return 1
    if h5py:
        with h5py.File(os.path.join(tmp, "ft-model.h5"), "r") as f:
            if model.encode() not in bytes(f.attrs["train_init_from"]):
                print("FAIL: no train_init_from provenance attribute")
                return 1
    cfg5 = os.path.join(tmp, "tiny-ft-size.yaml")
    write_config(src, cfg5, data, tmp, epochs=1, name="ft2", init_from=model, hidden=16)
    err5 = run([druse, "train", cfg5], expect=1)
    if "train.init_from" not in err5 or "differs" not in err5:
        print(f"FAIL: a model of another size was not refused clearly\n{err5}")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
