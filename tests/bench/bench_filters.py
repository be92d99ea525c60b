#!/usr/bin/python3
"""Benchmark: the filter chain (distance -> charge -> symmetry) on MP-20 test.

usage: /usr/bin/python3 tests/bench/bench_filters.py path/to/druse [--data DIR] [--repeat N]
       [--no-record]

Run by hand (not by ctest), on a Release build. Measures, with `druse filter --profile`
(druse times flt_check per structure and, separately, every spglib call the filters make):
  - the whole chain: structures/s over the 9,046 MP-20 test structures (reading the CSV is
    timed apart and not counted), the time inside spglib and its share, and our own overhead
    around it (chain time - spglib time);
  - each stage alone (--checks distance, charge, symmetry), and symmetry alone against the
    whole chain (the distance and charge filters are the rest of "our" time);
  - spglib with OMP_NUM_THREADS=1 (the chain runs one process per core in a campaign) and with
    OpenMP's default, since Debian's libsymspg is built with OpenMP.
Best of --repeat runs (default 3) per configuration. Writes (or replaces) the section between
<!-- bench:filters --> and <!-- /bench:filters --> of BENCHMARKS.md at the repository root
with the machine, date, commands and figures (unless --no-record).
"""
import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile

from benchmarks_md import record

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROFILE = re.compile(r"# profile: read ([\d.]+) s; filters ([\d.]+) s \(([\d.]+) structures/s\);"
                     r" inside spglib ([\d.]+) s \(([\d.]+)%\); ours ([\d.]+) s \(([\d.]+)%\)")
SUMMARY = re.compile(r"# summary: (\d+) structures, (\d+) pass")


def machine():
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"Model name:\s*(.+)", lscpu)
    return f"{model.group(1).strip() if model else 'unknown CPU'}, {os.cpu_count()} CPUs (`lscpu`)"


def run_once(druse, data, checks, omp):
    env = dict(os.environ)
    if omp is not None:
        env["OMP_NUM_THREADS"] = str(omp)
    else:
        env.pop("OMP_NUM_THREADS", None)
    cmd = [druse, "filter", data, "--profile"] + (["--checks", checks] if checks else [])
    # CPU time (user + sys, from wait4) as well as druse's wall-clock profile: on a shared
    # machine the CPU time of separate runs is comparable where their wall time is not.
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read()
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited with {p.returncode}\n{stderr}")
    m, s = PROFILE.search(stderr), SUMMARY.search(stderr)
    if not m or not s:
        sys.exit(f"no profile line from: {' '.join(cmd)}\n{stderr}")
    read, chain, rate, spg, spg_pct, ours, ours_pct = map(float, m.groups())
    return {"cmd": " ".join(cmd), "n": int(s.group(1)), "passed": int(s.group(2)), "read": read,
            "chain": chain, "rate": rate, "spglib": spg, "spglib_pct": spg_pct, "ours": ours,
            "ours_pct": ours_pct, "cpu": usage.ru_utime + usage.ru_stime}


def best_of(druse, data, checks, omp, repeat):
    runs = [run_once(druse, data, checks, omp) for _ in range(repeat)]
    best = min(runs, key=lambda r: r["chain"])
    best["all"] = [r["chain"] for r in runs]
    return best


def report(res, args, data):
    full, sym = res["full"], res["symmetry"]
    n = full["n"]
    load = os.getloadavg()
    lines = [
        "## Filter chain on MP-20 test (9,046 structures): throughput and the share of spglib",
        "",
        f"- machine: {machine()}; load average at the end {load[0]:.1f} / {load[1]:.1f} "
        f"(1 / 5 min; other work shares this machine); date "
        f"{datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC",
        f"- command: `/usr/bin/python3 tests/bench/bench_filters.py {args.druse}` (best of "
        f"{args.repeat} runs per line; `druse filter --profile` times flt_check per structure "
        "and every spglib call inside it; reading the CSV is not counted)",
        f"- whole chain (`{full['cmd'].replace(data, '$DRUSE_DATA/mp_20/test.csv.gz')}`, "
        f"OMP_NUM_THREADS=1): **{full['rate']:.0f} structures/s** ({full['chain']:.2f} s for "
        f"{n}; runs {', '.join(f'{t:.2f}' for t in full['all'])} s); inside spglib "
        f"{full['spglib']:.2f} s = **{full['spglib_pct']:.1f}%**; our own time around it "
        f"(distance, charge, wrapping spglib's input and output) {full['ours']:.3f} s = "
        f"**{full['ours_pct']:.2f}%** (target < 10%); {full['passed']} of {n} pass",
        f"- symmetry alone (`--checks symmetry`): {sym['chain']:.2f} s wall ({sym['rate']:.0f}/s), "
        f"spglib {sym['spglib_pct']:.1f}% of it. CPU time of the whole druse process (reading "
        f"included), which load disturbs less than wall time: whole chain {full['cpu']:.2f} s, "
        f"symmetry alone {sym['cpu']:.2f} s, difference {full['cpu'] - sym['cpu']:+.2f} s "
        f"({100 * (full['cpu'] - sym['cpu']) / full['cpu']:+.1f}%)",
        f"- distance alone (covalent rule, exact minimum images): {res['distance']['chain']:.3f}"
        f" s = {1e6 * res['distance']['chain'] / n:.1f} us per structure; charge alone (SMACT "
        f"rule): {res['charge']['chain']:.3f} s = {1e6 * res['charge']['chain'] / n:.1f} us "
        "per structure",
        f"- spglib with OpenMP's default threads instead of 1: whole chain "
        f"{res['full_omp']['chain']:.2f} s wall ({res['full_omp']['rate']:.0f}/s), "
        f"{res['full_omp']['cpu']:.2f} s CPU",
        "- where spglib's time goes: `perf` puts most of it in `cel_is_overlap` (the symmetry "
        "operation search); cubic cells cost tens of ms each, most others about 1 ms",
    ]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("druse")
    ap.add_argument("--data", default=os.environ.get("DRUSE_DATA",
                                                     os.path.join(ROOT, "..", "shared", "data")))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    data = os.path.join(args.data, "mp_20", "test.csv.gz")
    if not os.path.exists(data):
        sys.exit(f"{data} not found (--data or DRUSE_DATA)")
    res = {}
    for name, checks, omp in [("full", None, 1), ("symmetry", "symmetry", 1),
                              ("distance", "distance", 1), ("charge", "charge", 1),
                              ("full_omp", None, None)]:
        res[name] = best_of(args.druse, data, checks, omp, args.repeat)
        r = res[name]
        print(f"{name:9s} {r['chain']:8.3f} s  {r['rate']:9.1f}/s  spglib {r['spglib_pct']:5.1f}%"
              f"  ours {r['ours']:.3f} s ({r['ours_pct']:.2f}%)  cpu {r['cpu']:.2f} s"
              f"  runs {r['all']}", flush=True)
    section = report(res, args, data)
    print(section)
    if not args.no_record:
        record("filters", section)
        print("written to BENCHMARKS.md")


if __name__ == "__main__":
    main()
