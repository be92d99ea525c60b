"""druse screen with real processes (issue 6): the same records, bit for bit, from -np 1, 2, 3
and 4 and from runs killed (kill -9) at random moments and resumed; SIGTERM/SIGUSR1 commit and
exit 75; a full or read-only disk is a clear error with the committed data intact; a missing or
corrupt model and a changed config are refused before any work. The archive is read with h5py
only (tests/campaign/archive_tools.py)."""
import os
import random
import shutil
import signal
import subprocess
import sys
import time

SRC = os.environ.get("DRUSE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "campaign"))
import archive_tools  # noqa: E402

DRUSE = os.environ.get("DRUSE", os.path.join(SRC, "build", "druse"))
DATA = os.environ.get("DRUSE_DATA", os.path.join(SRC, "..", "shared", "data"))
TMP = os.path.join(os.environ.get("DRUSE_TEST_TMP", "/tmp"), "screen")
SHIPPED = os.path.join(SRC, "models", "mp20.h5")
MODEL = os.path.join(TMP, "model.h5")  # a private copy: a training run may rewrite the shipped one
KILLS = int(os.environ.get("DRUSE_KILL_MOMENTS", "3"))  # tests/campaign/fault_kill9.sh: 12

CONFIG = """campaign:
  name: test-screen
  seed: 11
  model: {model}
  output: {out}
  batches: 8
  batch_size: 3
  commit_interval_s: {interval}
sampling:
  steps: 20
filters:
  novelty_reference: {index}
relax:
  max_steps: 100
"""


# 0.05 s: several commit epochs even in the reference run, which samples its 24 crystals in
# about 0.3 s on one AVX-512 core
def write_config(name, out, interval=0.05, model=MODEL, index=None, **extra):
    text = CONFIG.format(model=model, out=out, interval=interval, index=index or INDEX)
    for k, v in extra.items():
        text = text.replace(k, v)
    path = os.path.join(TMP, name + ".yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def screen(cfg, np_=1, extra=(), timeout=300):
    cmd = [DRUSE, "screen", cfg, *extra]
    if np_ > 1:
        cmd = ["mpirun", "--oversubscribe", "-np", str(np_)] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def start(cfg, np_):
    cmd = [DRUSE, "screen", cfg]
    if np_ > 1:
        cmd = ["mpirun", "--oversubscribe", "-np", str(np_)] + cmd
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def fresh(out):
    shutil.rmtree(out + ".d", ignore_errors=True)
    if os.path.exists(out):
        os.unlink(out)


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok:", what)


def run_ok(cfg, np_=1, extra=()):
    r = screen(cfg, np_, extra)
    if r.returncode != 0:
        print(r.stderr)
    check(r.returncode == 0, f"{os.path.basename(cfg)} -np {np_} completes")
    return r


def test_ranks(ref):
    for np_ in (2, 3, 4):
        out = os.path.join(TMP, f"np{np_}.h5")
        fresh(out)
        run_ok(write_config(f"np{np_}", out), np_)
        d = archive_tools.differences(ref, out)
        check(not d, f"-np {np_} equals -np 1 bit for bit {d}")


def test_shards_merge(ref):
    """Three shards (a job array without Slurm), merged, equal the single run."""
    parts = []
    for i in range(3):
        out = os.path.join(TMP, f"shard{i}.h5")
        fresh(out)
        run_ok(write_config("shard", out), 1 + i % 2, ["--shard", f"{i}/3"])
        parts.append(out)
    merged = os.path.join(TMP, "merged.h5")
    if os.path.exists(merged):
        os.unlink(merged)
    r = subprocess.run([DRUSE, "merge", merged] + parts, capture_output=True, text=True)
    check(r.returncode == 0, f"merge of 3 shards ({r.stderr.strip()})")
    d = archive_tools.differences(ref, merged)
    check(not d, f"merged shards equal the single run {d}")
    r = subprocess.run([DRUSE, "merge", merged + "2", parts[0], parts[0]], capture_output=True,
                       text=True)
    check(r.returncode == 1 and "overlap" in r.stderr, "merge refuses overlapping shards")


def test_kill9(ref, moments):
    """kill -9 of the whole run at random moments, then resume: always equal to ref."""
    rng = random.Random(1234)
    out = os.path.join(TMP, "kill.h5")
    t_full = REF_SECONDS
    for m in range(moments):
        fresh(out)
        cfg = write_config("kill", out)
        np_ = rng.choice((1, 2, 3))
        for _ in range(2):  # two kills per run, then a resume to the end
            p = start(cfg, np_)
            time.sleep(rng.uniform(0.2, max(0.5, t_full * (1.5 if np_ > 1 else 1.0))))
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            if os.path.exists(out):
                archive_tools.load(out)  # the archive always opens
        r = screen(cfg, rng.choice((1, 2)))
        check(r.returncode == 0, f"kill -9 moment {m} (np {np_}): resume completes")
        d = archive_tools.differences(ref, out)
        check(not d, f"kill -9 moment {m}: resumed archive equals the uninterrupted one {d}")


def wait_started(p):
    """Reads stderr up to the line that says the campaign started (set-up done)."""
    for line in p.stderr:
        if " batches of " in line:
            return


def test_sigterm():
    """A slower campaign (500 steps, a few seconds of sampling), so that a signal lands in the
    middle of it, also at -np 3 where two workers share it."""
    slow = {"steps: 20": "steps: 500"}
    ref = os.path.join(TMP, "term-ref.h5")
    fresh(ref)
    t0 = time.time()
    run_ok(write_config("term-ref", ref, interval=600, **slow))
    seconds = time.time() - t0
    out = os.path.join(TMP, "term.h5")
    # SIGTERM to the process; SIGUSR1 to mpirun (it forwards it); SIGTERM to every rank, as
    # Slurm signals all processes of a job
    for sig, np_ in ((signal.SIGTERM, 1), (signal.SIGUSR1, 3), (signal.SIGTERM, 2)):
        fresh(out)
        cfg = write_config("term", out, interval=600, **slow)  # no commit before the signal
        p = start(cfg, np_)
        wait_started(p)
        time.sleep(seconds * 0.4)
        t0 = time.time()
        if np_ == 1:
            p.send_signal(sig)
        elif sig == signal.SIGUSR1:
            os.kill(p.pid, sig)  # mpirun forwards SIGUSR1 to the ranks
        else:
            subprocess.run(["pkill", "-TERM", "-P", str(p.pid)])  # the ranks, not mpirun
        p.communicate(timeout=60)
        dt = time.time() - t0
        check(p.returncode == 75, f"{sig.name} (-np {np_}): exit status 75, got {p.returncode}")
        check(dt < 30, f"{sig.name}: committed and exited in {dt:.1f} s (< 30)")
        done = len(archive_tools.load(out)[0]["batches"])
        check(0 < done < 8, f"{sig.name}: {done} of 8 batches committed before stopping")
        run_ok(cfg, np_)
        d = archive_tools.differences(ref, out)
        check(not d, f"{sig.name}: resumed archive equals the uninterrupted one {d}")


def mount_tmpfs(path, opts):
    os.makedirs(path, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", path],
                          capture_output=True).returncode == 0


def test_disk(ref):
    small = os.path.join(TMP, "small")
    if not mount_tmpfs(small, "size=4m"):
        print("skip: cannot mount a tmpfs (not root?): full-disk test not run")
        return
    try:
        out = os.path.join(small, "full.h5")
        cfg = write_config("full", out)
        p = start(cfg, 1)
        time.sleep(REF_SECONDS * 0.5)
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=60)
        before, _ = archive_tools.load(out)
        with open(os.path.join(small, "filler"), "wb") as f:  # fill the disk
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        r = screen(cfg)
        check(r.returncode == 1 and "full.h5" in r.stderr,
              f"full disk: exit 1 naming the archive ({r.returncode}: {r.stderr.strip()[-200:]})")
        after, _ = archive_tools.load(out)
        check(len(after["batches"]) == len(before["batches"]) and
              (after["sample_id"] == before["sample_id"]).all(), "full disk: committed data intact")
        os.unlink(os.path.join(small, "filler"))
        run_ok(cfg)
        check(not archive_tools.differences(ref, out), "full disk: resume after freeing space")
    finally:
        subprocess.run(["umount", small])
    ro = os.path.join(TMP, "readonly")
    if mount_tmpfs(ro, "ro,size=1m"):
        try:
            r = screen(write_config("ro", os.path.join(ro, "x.h5")))
            check(r.returncode == 1 and "x.h5" in r.stderr,
                  f"read-only directory: clear error ({r.stderr.strip()[-160:]})")
        finally:
            subprocess.run(["umount", ro])


def test_refusals(ref):
    out = os.path.join(TMP, "bad.h5")
    fresh(out)
    r = screen(write_config("nomodel", out, model=os.path.join(TMP, "missing.h5")))
    check(r.returncode == 1 and "missing.h5" in r.stderr and not os.path.exists(out),
          "missing model: error naming it, before any work")
    corrupt = os.path.join(TMP, "corrupt.h5")
    with open(MODEL, "rb") as f:
        data = f.read()
    with open(corrupt, "wb") as f:
        f.write(data[: len(data) // 2])
    r = screen(write_config("corrupt", out, model=corrupt))
    check(r.returncode == 1 and "corrupt.h5" in r.stderr and not os.path.exists(out),
          "truncated model: error naming it, before any work")
    # resume with another config: refused, archive untouched
    changed = write_config("changed", REF, **{"steps: 20": "steps: 21"})
    r = screen(changed)
    check(r.returncode == 1 and "another campaign config" in r.stderr,
          f"another config on an existing archive is refused ({r.stderr.strip()[-160:]})")
    same = os.path.join(TMP, "np2.h5")  # equal to the reference (test_ranks)
    check(not archive_tools.differences(same, REF), "the refused run left the archive as it was")


def main():
    global INDEX, REF, REF_SECONDS
    if not os.path.isdir(os.path.join(DATA, "mp_20")):
        print("skip: no MP-20 data at", DATA)
        sys.exit(77)
    if not os.path.exists(SHIPPED):
        print("skip: no shipped model", SHIPPED)
        sys.exit(77)
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    shutil.copy(SHIPPED, MODEL)
    INDEX = os.path.join(TMP, "mp20-train-index.h5")
    subprocess.run([DRUSE, "dedup", "--build-index", os.path.join(DATA, "mp_20", "train.csv.gz"),
                    "-o", INDEX], check=True, capture_output=True)
    REF = os.path.join(TMP, "np1.h5")
    t0 = time.time()
    r = run_ok(write_config("np1", REF))
    REF_SECONDS = time.time() - t0
    ref, attrs = archive_tools.load(REF)
    print(r.stderr.strip().splitlines()[-1])
    check(len(ref["batches"]) == 8 and attrs["sampled"] == 24, "reference: 8 batches, 24 samples")
    check(attrs["segments"] >= 2, f"reference committed in {attrs['segments']} segments")
    test_ranks(REF)
    test_shards_merge(REF)
    test_sigterm()
    test_kill9(REF, KILLS)
    test_disk(REF)
    test_refusals(REF)
    print("all screen checks passed")


if __name__ == "__main__":
    main()
