#!/usr/bin/python3
"""Benchmark: the generator network and sampler (issue 5, "Speed" and "Memory").

usage: /usr/bin/python3 tests/bench/bench_gen.py [BUILD_DIR (default build-rel)] [--no-record]
                                                 [--cpu-time]

--cpu-time times both sides by their process CPU time instead of wall time (bench_gen with
DRUSE_BENCH_CLOCK=cpu, torch with time.process_time): on a machine with more runnable processes
than cores the wall clock also counts time slices given to other processes.

Run by hand (not by ctest). Compiles tests/bench/bench_gen.c against BUILD_DIR/libdruse.a
(Release build), runs it with OPENBLAS_NUM_THREADS=1 and, in the same run on one thread, a
PyTorch implementation of the same architecture (the brute-force formulation of
tests/referee/test_gen_torch.py, written out here because the referee defines it inside main()),
and writes the section between <!-- bench:generator --> and <!-- /bench:generator --> of
BENCHMARKS.md (unless --no-record).
"""
import datetime
import os
import re
import resource
import subprocess
import sys
import time

import numpy as np

from benchmarks_md import record

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
D, LAYERS, K, T, NT = 128, 4, 32, 64, 101  # gen_hparams_default()


def build(bdir):
    exe = os.path.join(bdir, "bench_gen")
    libs = subprocess.check_output(
        ["pkg-config", "--cflags", "--libs", "hdf5-openmpi", "openblas", "spglib", "libcyaml",
         "yaml-0.1", "zlib"], text=True).split()
    cmd = (["cc", "-O2", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-I" + ROOT,
            os.path.join(ROOT, "tests/bench/bench_gen.c"), "-o", exe,
            os.path.join(bdir, "libdruse.a"), os.path.join(bdir, "codcif/libcodcif_druse.a")]
           + libs + ["-lcexceptions", "-lmpi", "-lm"])
    subprocess.check_call(cmd)
    return exe


def kv(text):
    return {k: float(v) for k, v in re.findall(r"^(\w+)=([-\d.e+]+)$", text, re.M)}


def torch_bench(exe, env, reps, clock=time.perf_counter):
    import torch
    import torch.nn.functional as Fn
    torch.set_num_threads(1)
    lines = subprocess.check_output([exe, "dump", "256"], env=env, text=True).split("\n")
    B, N = map(int, lines[0].split())
    offsets = np.array(lines[1].split(), dtype=int)
    types = torch.tensor(np.array(lines[2].split(), dtype=int))
    frac = torch.tensor(np.array(lines[3].split(), dtype=np.float64).reshape(N, 3))
    lat = torch.tensor(np.array(lines[4].split(), dtype=np.float32).reshape(B, 3, 3))
    t = torch.tensor(np.array(lines[5].split(), dtype=np.float64))
    tz = torch.tensor(np.array(lines[6].split(), dtype=int)) - 1
    sizes = np.diff(offsets)
    V = NT - 1
    g = torch.Generator().manual_seed(0)
    shapes = {"type_embed.weight": (NT, D), "time_mlp.0.weight": (D, T), "time_mlp.0.bias": (D,),
              "time_mlp.2.weight": (D, D), "time_mlp.2.bias": (D,),
              "final_ln.weight": (D,), "final_ln.bias": (D,), "coord_head.weight": (3, D),
              "lattice_head.weight": (9, D), "type_head.weight": (V, D), "type_head.bias": (V,)}
    for l in range(LAYERS):
        p = "layers.%d." % l
        shapes.update({p + "ln.weight": (D,), p + "ln.bias": (D,),
                       p + "edge_mlp.0.weight": (D, 2 * D + 6 + 6 * K), p + "edge_mlp.0.bias": (D,),
                       p + "edge_mlp.2.weight": (D, D), p + "edge_mlp.2.bias": (D,),
                       p + "node_mlp.0.weight": (D, 2 * D), p + "node_mlp.0.bias": (D,),
                       p + "node_mlp.2.weight": (D, D), p + "node_mlp.2.bias": (D,)})
    P = {k: (torch.rand(s, generator=g) * 2 - 1) / np.sqrt(s[-1]) for k, s in shapes.items()}
    for k in P:
        P[k].requires_grad_(True)

    def edges(off, sz):
        ei, ej = [], []
        for b in range(len(sz)):
            o, n = int(off[b]), int(sz[b])
            ii, jj = np.meshgrid(np.arange(o, o + n), np.arange(o, o + n), indexing="ij")
            ei.append(ii.ravel())
            ej.append(jj.ravel())
        return (torch.tensor(np.concatenate(ei)), torch.tensor(np.concatenate(ej)))

    def forward(a0, a1, b0, b1):
        """Crystals b0..b1-1 (atoms a0..a1-1): the referee's formulation (float32)."""
        sz = sizes[b0:b1]
        off = offsets[b0:b1 + 1] - offsets[b0]
        n, nb = a1 - a0, b1 - b0
        ei, ej = edges(off, sz)
        node_b = torch.tensor(np.repeat(np.arange(nb), sz))
        cnt = torch.tensor(sz, dtype=torch.float32)
        lin = lambda x, nm, bias=True: Fn.linear(x, P[nm + ".weight"],
                                                 P[nm + ".bias"] if bias else None)
        ln = lambda x, nm: Fn.layer_norm(x, (D,), P[nm + ".weight"], P[nm + ".bias"], eps=1e-5)
        half = T // 2
        om = torch.exp(-np.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
        a = 1000.0 * t[b0:b1, None] * om[None, :]
        temb = torch.cat([torch.sin(a), torch.cos(a)], 1).float()
        u = lin(Fn.silu(lin(temb, "time_mlp.0")), "time_mlp.2")
        h = P["type_embed.weight"][types[a0:a1]] + u[node_b]
        L = lat[b0:b1]
        G = L @ L.transpose(1, 2)
        gg = torch.stack([G[:, 0, 0], G[:, 1, 1], G[:, 2, 2], G[:, 0, 1], G[:, 0, 2], G[:, 1, 2]], 1)
        f = frac[a0:a1]
        delta = f[ej] - f[ei]
        ang = 2 * np.pi * delta[:, :, None] * torch.arange(1, K + 1, dtype=torch.float64)
        phi = torch.cat([torch.sin(ang), torch.cos(ang)], 2).reshape(-1, 6 * K).float()
        nb_e = node_b[ei]
        for l in range(LAYERS):
            pre = "layers.%d." % l
            x = ln(h, pre + "ln")
            ein = torch.cat([x[ei], x[ej], gg[nb_e], phi], 1)
            msg = Fn.silu(lin(Fn.silu(lin(ein, pre + "edge_mlp.0")), pre + "edge_mlp.2"))
            m = torch.zeros(n, D).index_add(0, ei, msg) / cnt[node_b][:, None]
            h = h + lin(Fn.silu(lin(torch.cat([x, m], 1), pre + "node_mlp.0")), pre + "node_mlp.2")
        hf = ln(h, "final_ln")
        coord = lin(hf, "coord_head", bias=False)
        logits = lin(hf, "type_head")
        pool = torch.zeros(nb, D).index_add(0, node_b, hf) / cnt[:, None]
        latout = lin(pool, "lattice_head", bias=False).reshape(nb, 3, 3) @ L
        return coord, latout, logits

    def best(fn, r):
        ts = []
        for _ in range(r):
            t0 = clock()
            fn()
            ts.append(clock() - t0)
        return min(ts)

    def fwd_packed():
        with torch.no_grad():
            forward(0, N, 0, B)

    def fwd_per():
        with torch.no_grad():
            for b in range(B):
                forward(int(offsets[b]), int(offsets[b + 1]), b, b + 1)

    masked = types == 0

    def train():
        for p in P.values():
            p.grad = None
        coord, latout, logits = forward(0, N, 0, B)
        loss = ((coord - 0.1) ** 2).mean() + ((latout - 0.1) ** 2).mean() + \
            Fn.cross_entropy(logits[masked], tz[masked])
        loss.backward()

    fwd_packed()
    train()
    return {"torch_version": torch.__version__, "t_fwd_packed_s": best(fwd_packed, reps),
            "t_fwd_percrystal_s": best(fwd_per, reps), "t_train_s": best(train, reps)}


def machine():
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"Model name:\s*(.+)", out)
    cpus = re.search(r"^CPU\(s\):\s*(\d+)", out, re.M)
    return "%s, %s CPUs (`lscpu`)" % (model.group(1).strip() if model else "?",
                                       cpus.group(1) if cpus else "?")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    write = "--no-record" not in sys.argv
    bdir = os.path.abspath(args[0] if args else os.path.join(ROOT, "build-rel"))
    cpu = "--cpu-time" in sys.argv
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               DRUSE_BENCH_CLOCK="cpu" if cpu else "wall")
    exe = build(bdir)
    load0 = os.getloadavg()
    print("built", exe, flush=True)
    c = kv(subprocess.check_output([exe, "all", "256", "5", "32", "20"], env=env, text=True))
    print(c, flush=True)
    mem = kv(subprocess.check_output([exe, "mem", "256"], env=env, text=True))
    print(mem, flush=True)
    tr = torch_bench(exe, env, 5, time.process_time if cpu else time.perf_counter)
    print(tr, flush=True)
    load = os.getloadavg()

    B, N, E = int(c["B"]), int(c["N"]), int(c["E"])
    peak = c["sgemm_gflops"]
    ff = c["fwd_gflop"]
    gf_p = ff / c["fwd_packed_s"]
    gf_c = ff / c["fwd_percrystal_s"]
    gf_t = c["train_gflop"] / c["train_s"]
    # GEMM FLOPs druse executes: the phi GEMM (and its weight gradient) runs over the
    # Ep = sum n (n+1) / 2 = (E + N) / 2 atom pairs i <= j instead of the E edges
    saved = 2.0 * LAYERS * (E - (E + N) / 2) * 6 * K * D / 1e9
    ex_f, ex_t = ff - saved, c["train_gflop"] - 2 * saved
    evals_per_step = c["sample_evals"] / (c["sample_steps"] * c["sample_count"])
    step_s = c["sample_s"] / c["sample_steps"]
    t1000 = 1000 * step_s
    sps = c["sample_count"] / t1000
    eval_rate = c["sample_evals"] / c["sample_s"]
    r_fp = tr["t_fwd_packed_s"] / c["fwd_packed_s"]
    r_fc = tr["t_fwd_percrystal_s"] / c["fwd_percrystal_s"]
    r_tr = tr["t_train_s"] / c["train_s"]
    rss_mb = mem["maxrss_kb"] / 1024
    yes = lambda ok: "met" if ok else "**not met**"
    rows = [
        ("OpenBLAS sgemm peak, 1024^3, best of 7", "%.1f GFLOP/s" % peak, ""),
        ("forward, packed (256 crystals per call)", "%.0f crystal-evals/s (%.1f ms)" % (
            B / c["fwd_packed_s"], 1e3 * c["fwd_packed_s"]),
         "%.1f GFLOP/s = %.0f%% of peak (executed: %.1f GFLOP/s = %.0f%%)" % (
             gf_p, 100 * gf_p / peak, ex_f / c["fwd_packed_s"],
             100 * ex_f / c["fwd_packed_s"] / peak)),
        ("forward, one crystal per call (as gen_sample)", "%.0f crystal-evals/s (%.1f ms)" % (
            B / c["fwd_percrystal_s"], 1e3 * c["fwd_percrystal_s"]),
         "%.1f GFLOP/s = %.0f%% of peak (executed: %.1f GFLOP/s = %.0f%%)" % (
             gf_c, 100 * gf_c / peak, ex_f / c["fwd_percrystal_s"],
             100 * ex_f / c["fwd_percrystal_s"] / peak)),
        ("gen_sample network evaluations", "%.0f crystal-evals/s" % eval_rate,
         "%.0f evaluations per crystal per reverse step" % evals_per_step),
        ("sampling at 1000 PC steps (extrapolated)", "%.3f structures/s" % sps,
         "%.1f s per batch of %d" % (t1000, c["sample_count"])),
        ("training step (forward+loss+backward, 256 crystals)", "%.2f steps/s = %.0f crystals/s" % (
            1 / c["train_s"], B / c["train_s"]),
         "%.1f GFLOP/s = %.0f%% of peak (executed: %.1f GFLOP/s = %.0f%%)" % (
             gf_t, 100 * gf_t / peak, ex_t / c["train_s"], 100 * ex_t / c["train_s"] / peak)),
        ("torch %s forward, packed" % tr["torch_version"], "%.0f crystal-evals/s" % (
            B / tr["t_fwd_packed_s"]), "ours %.2fx faster" % r_fp),
        ("torch forward, one crystal per call", "%.0f crystal-evals/s" % (
            B / tr["t_fwd_percrystal_s"]), "ours %.2fx faster (aim >= 5x: %s)" % (r_fc, yes(r_fc >= 5))),
        ("torch training step", "%.2f steps/s" % (1 / tr["t_train_s"]),
         "ours %.2fx faster (aim >= 2x: %s)" % (r_tr, yes(r_tr >= 2))),
        ("peak RSS, gen_sample of 256 structures", "%.0f MiB" % rss_mb,
         "aim < 1 GB: %s" % yes(rss_mb < 1000)),
    ]
    now = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
    lines = ["## Generator network and sampler (generator/, issue 5)", "",
             "- machine: %s; load average (1 min) at the start %.1f, at the end %.1f; date %s" % (
                 machine(), load0[0], load[0], now),
             "- command: `/usr/bin/python3 tests/bench/bench_gen.py %s%s` (Release build; "
             "OPENBLAS_NUM_THREADS=1 and torch.set_num_threads(1), one process, run back to back); "
             "times are %s" % (os.path.relpath(bdir, ROOT), " --cpu-time" if cpu else "",
                               "process CPU time (both sides)" if cpu else "wall time"),
             "- model: default size (d 128, 4 layers, K 32, T 64, 101 types, %s parameters), "
             "randomly initialized" % "550,116",
             "- batch: 256 crystals with atom counts drawn from a fixed MP-20-like mix of N = 1..20 "
             "(weights in bench_gen.c, not the real histogram): N = %d atoms, E = sum n_b^2 = %d "
             "edges; 30%% of atoms masked" % (N, E),
             "- FLOPs (GEMMs only, 2mnk each): forward = 2 [B (T d + d^2 + 9 d + 6 d layers) + "
             "layers (E (6K + d) d + 5 N d^2) + N d (3 + V)] = %.2f GFLOP for this batch "
             "(the edge term layers E (6K+d) d is %.0f%% of it); backward counted as 2x every "
             "forward GEMM minus phi's input gradient: forward+backward %.2f GFLOP. These are the dense "
             "formulation's FLOPs (GFLOP/s below are per them); druse executes fewer: its phi GEMM "
             "runs over the %d atom pairs i <= j, not the E edges (forward %.2f, forward+backward "
             "%.2f GFLOP executed)" % (
                 ff, 100 * 2 * LAYERS * E * (6 * K + D) * D / 1e9 / ff, c["train_gflop"],
                 (E + N) // 2, ex_f, ex_t),
             "- sampling: gen_sample (packed = 0, corrector on) of %d structures timed over %d "
             "reverse steps (steps 1000, stride %d); extrapolation: time per reverse step x 1000 "
             "(setup and the final decode are included in the measured time, so this slightly "
             "overstates the per-step cost)" % (c["sample_count"], c["sample_steps"],
                                                 1000 // c["sample_steps"]),
             "- memory: a separate process samples 256 structures (4 reverse steps; the "
             "workspace does not grow with steps) and reports getrusage ru_maxrss", "",
             "| what | throughput | notes |", "|---|---|---|"]
    lines += ["| %s | %s | %s |" % r for r in rows]
    text = "\n".join(lines)
    print(text)
    if write:
        record("generator", text)


if __name__ == "__main__":
    main()
