"""Sampling cost of the shipped model (issue 7), beside the published wall-clock figures:
  /usr/bin/python3 tests/bench/bench_model.py DRUSE [--model models/mp20.h5] [--n 64]
      [--no-record]
`druse sample` in one process, one OpenBLAS thread, at the default steps (N structures) and
at DiffCSP's 1000 steps (N / 8 structures, same seed), drawing atom counts from the model's
MP-20 histogram. The figure is structures per core-second of the druse process (CPU time,
robust to other load on a shared machine) with the wall time beside it. Writes the section
"Sampling cost of the shipped model" of BENCHMARKS.md unless --no-record."""
import argparse
import os
import platform
import resource
import subprocess
import tempfile
import time

from benchmarks_md import record

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def sample(druse, model, n, steps, tmp):
    out = os.path.join(tmp, f"s{steps}.xyz")
    cmd = [druse, "sample", "--model", model, "--n", str(n), "--seed", "1", "-o", out]
    if steps:
        cmd += ["--steps", str(steps)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    subprocess.run(cmd, check=True, capture_output=True,
                   env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    wall = time.time() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("druse")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "mp20.h5"))
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--no-record", action="store_true")
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        cpu_d, wall_d = sample(a.druse, a.model, a.n, 0, tmp)
        n_long = max(1, a.n // 8)
        cpu_l, wall_l = sample(a.druse, a.model, n_long, 1000, tmp)
    load1 = os.getloadavg()[0]
    rate_d, rate_l = a.n / cpu_d, n_long / cpu_l
    text = f"""## Sampling cost of the shipped model (issue 7)

- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; load average
  (1 min) {load0:.1f} at the start, {load1:.1f} at the end; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}
- command: `/usr/bin/python3 tests/bench/bench_model.py build/druse --n {a.n}` (one process,
  OPENBLAS_NUM_THREADS=1, `druse sample --model models/mp20.h5 --seed 1`, atom counts from the
  model's MP-20 histogram; rates per core-second of the process's CPU time, wall beside)

| sampler | structures | CPU s | wall s | structures / core-s | core-s per 1,000 |
|---|---:|---:|---:|---:|---:|
| default (100 steps) | {a.n} | {cpu_d:.1f} | {wall_d:.1f} | {rate_d:.3f} | {1000 / rate_d:,.0f} |
| 1000 steps (DiffCSP's) | {n_long} | {cpu_l:.1f} | {wall_l:.1f} | {rate_l:.3f} | {1000 / rate_l:,.0f} |

Published wall-clock figures for 1,000 MP-20 structures: DiffCSP 381 s on one GPU (1000
steps), MatterGen about 2 h on one V100. At the default steps druse needs {1000 / rate_d:,.0f}
core-seconds per 1,000, i.e. {1000 / rate_d / 381:.1f} cores match DiffCSP's GPU and
{1000 / rate_d / 7200:.2f} cores MatterGen's V100; at 1000 steps {1000 / rate_l / 381:.1f} and
{1000 / rate_l / 7200:.2f} cores. (Different models and hardware: a cost comparison, not a
speed race; the quality figures are in models/README.md.)
"""
    print(text)
    if a.no_record:
        return
    record("model", text)


if __name__ == "__main__":
    main()
