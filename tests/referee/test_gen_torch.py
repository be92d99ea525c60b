#!/usr/bin/python3
"""Referee for the denoiser network (generator/net.c), in the manner of llm.c's test_gpt2.c.

Runs the C unit test tests/test_gen_net with DRUSE_GEN_DUMP set: it writes the model file
(gen_model_save) plus /check: the batch (real MP-20 test structures of mixed sizes, 1 to 52
atoms), targets, outputs, loss and every parameter's gradient. This script then
  1. checks the model file independently (h5py: shapes, the sha256 of the parameter block),
  2. rebuilds the batch from the MP-20 CSV with pymatgen and checks the dumped one against it,
  3. runs the same architecture and loss in PyTorch, brute force (every edge's full input
     vector through nn.functional.linear, trigonometry per edge, scatter means), on the same
     weights, in float32 and in float64,
  4. compares outputs, loss and every gradient (norm-relative error per tensor) with the C
     results: they must agree with torch float32 to 1e-4.
Exit 77 (skipped) when $DRUSE_DATA/mp_20 is absent.
"""
import csv
import gzip
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import time
import warnings

TOL = 1e-4


def skip(msg):
    print("SKIP:", msg)
    sys.exit(77)


def find_exe():
    cands = []
    if os.environ.get("DRUSE_BUILD_DIR"):
        cands.append(os.path.join(os.environ["DRUSE_BUILD_DIR"], "tests", "test_gen_net"))
    if os.environ.get("DRUSE"):
        cands.append(os.path.join(os.path.dirname(os.environ["DRUSE"]), "tests", "test_gen_net"))
    for c in cands:
        if os.access(c, os.X_OK):
            return c
    print("FAIL: test_gen_net executable not found (tried %s); set DRUSE or DRUSE_BUILD_DIR" % cands)
    sys.exit(1)


def read_rows(path, wanted):
    csv.field_size_limit(1 << 30)
    out = {}
    with gzip.open(path, "rt", newline="") as fh:
        r = csv.DictReader(fh)
        for k, row in enumerate(r):
            if k in wanted:
                out[k] = row
            if len(out) == len(wanted):
                break
    return out


def main():
    data = os.environ.get("DRUSE_DATA", "")
    csv_path = os.path.join(data, "mp_20", "test.csv.gz")
    if not data or not os.path.exists(csv_path):
        skip("MP-20 not found under $DRUSE_DATA (%r)" % data)
    exe = find_exe()
    tmpdir = os.environ.get("DRUSE_TEST_TMP") or tempfile.gettempdir()
    os.makedirs(tmpdir, exist_ok=True)
    dump = os.path.join(tmpdir, "gen_torch_ref.%d.h5" % os.getpid())
    env = dict(os.environ, DRUSE_GEN_DUMP=dump, OPENBLAS_NUM_THREADS="1")
    t0 = time.time()
    p = subprocess.run([exe], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0 or not os.path.exists(dump):
        print(p.stdout)
        print("FAIL: %s exited %d" % (exe, p.returncode))
        return 1
    t_c = time.time() - t0

    import numpy as np
    import h5py
    import torch
    import torch.nn.functional as Fn
    from pymatgen.io.cif import CifParser

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", module="pymatgen")
    ok = True
    with h5py.File(dump, "r") as f:
        A = dict(f.attrs)
        hp = {k: int(A[k]) for k in ("hidden", "layers", "n_freq", "time_dim", "n_types")}
        names = list(f["params"].keys())
        params = {k: f["params"][k][...] for k in names}
        ck = {k: f["check"][k][...] for k in f["check"].keys() if k != "grad"}
        grads = {k: f["check/grad"][k][...] for k in f["check/grad"].keys()}
        sha_attr = A["params_sha256"]
        sha_attr = sha_attr.decode() if isinstance(sha_attr, bytes) else str(sha_attr)
    os.unlink(dump)

    d, L, K, T, NT = hp["hidden"], hp["layers"], hp["n_freq"], hp["time_dim"], hp["n_types"]
    V = NT - 1
    # 1. the file: tensor order and shapes, and the checksum over the block in table order
    order = ["type_embed.weight", "time_mlp.0.weight", "time_mlp.0.bias", "time_mlp.2.weight",
             "time_mlp.2.bias"]
    for l in range(L):
        order += ["layers.%d.%s" % (l, s) for s in (
            "ln.weight", "ln.bias", "edge_mlp.0.weight", "edge_mlp.0.bias", "edge_mlp.2.weight",
            "edge_mlp.2.bias", "node_mlp.0.weight", "node_mlp.0.bias", "node_mlp.2.weight",
            "node_mlp.2.bias")]
    order += ["final_ln.weight", "final_ln.bias", "coord_head.weight", "lattice_head.weight",
              "type_head.weight", "type_head.bias"]
    assert sorted(order) == sorted(names), "tensor names differ: %s" % sorted(set(order) ^ set(names))
    assert int(A["n_params"]) == sum(params[k].size for k in order)
    sha = hashlib.sha256(b"".join(params[k].astype("<f4").tobytes() for k in order)).hexdigest()
    print("model file: %d tensors, %d parameters, sha256 %s (%s)" % (
        len(order), int(A["n_params"]), sha[:16], "matches" if sha == sha_attr else "MISMATCH"))
    ok &= sha == sha_attr
    assert params["layers.0.edge_mlp.0.weight"].shape == (d, 2 * d + 6 + 6 * K)

    # 2. the batch against pymatgen
    offsets, rows, sc = ck["offsets"], ck["rows"], ck["supercell"]
    B = len(rows)
    N = int(offsets[-1])
    src = read_rows(csv_path, set(int(r) for r in rows))
    frac_pm = np.zeros((N, 3))
    lat_pm = np.zeros((B, 3, 3))
    z_pm = np.zeros(N, dtype=int)
    for b in range(B):
        s = CifParser.from_string(src[int(rows[b])]["cif"]).get_structures(primitive=False)[0]
        rep = sc[b]
        lat_pm[b] = np.diag(rep) @ s.lattice.matrix
        k = int(offsets[b])
        for a0 in range(rep[0]):
            for a1 in range(rep[1]):
                for a2 in range(rep[2]):
                    for site in s:
                        frac_pm[k] = (np.mod(site.frac_coords, 1.0) + [a0, a1, a2]) / rep
                        z_pm[k] = site.specie.Z
                        k += 1
        assert k == offsets[b + 1], "row %d: atom count differs" % rows[b]
    df = ck["frac"] - frac_pm
    df -= np.round(df)
    err_f = np.abs(df).max()
    err_l = np.abs(ck["lattice"].reshape(B, 3, 3) - lat_pm).max()
    sizes = np.diff(offsets)
    print("batch: %d MP-20 test crystals, sizes %s, %d atoms, %d edges; vs pymatgen: frac %.1e, "
          "lattice %.1e A, Z %s" % (B, list(sizes), N, int((sizes ** 2).sum()), err_f, err_l,
                                   "equal" if (z_pm == ck["target_types"]).all() else "DIFFER"))
    ok &= err_f < 1e-6 and err_l < 1e-5 and (z_pm == ck["target_types"]).all()

    # 3. the torch reference, brute force
    def run(dtype):
        P = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in params.items()}
        types = torch.tensor(ck["types"], dtype=torch.long)
        frac = torch.tensor(frac_pm, dtype=torch.float32).to(torch.float64)  # float32 inputs
        lat = torch.tensor(lat_pm, dtype=torch.float32).to(dtype)
        t = torch.tensor(ck["t"], dtype=torch.float64)
        node_b = torch.tensor(np.repeat(np.arange(B), sizes), dtype=torch.long)
        ei, ej = [], []
        for b in range(B):
            o, n = int(offsets[b]), int(sizes[b])
            ii, jj = np.meshgrid(np.arange(o, o + n), np.arange(o, o + n), indexing="ij")
            ei.append(ii.ravel())
            ej.append(jj.ravel())
        ei = torch.tensor(np.concatenate(ei), dtype=torch.long)
        ej = torch.tensor(np.concatenate(ej), dtype=torch.long)
        cnt = torch.tensor(sizes, dtype=dtype)

        def lin(x, name, bias=True):
            return Fn.linear(x, P[name + ".weight"], P[name + ".bias"] if bias else None)

        def ln(x, name):
            return Fn.layer_norm(x, (d,), P[name + ".weight"], P[name + ".bias"], eps=1e-5)

        half = T // 2
        om = torch.exp(-np.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
        a = 1000.0 * t[:, None] * om[None, :]
        temb = torch.cat([torch.sin(a), torch.cos(a)], 1).to(torch.float32).to(dtype)
        u = lin(Fn.silu(lin(temb, "time_mlp.0")), "time_mlp.2")
        h = P["type_embed.weight"][types] + u[node_b]
        G = lat @ lat.transpose(1, 2)
        g = torch.stack([G[:, 0, 0], G[:, 1, 1], G[:, 2, 2], G[:, 0, 1], G[:, 0, 2], G[:, 1, 2]], 1)
        delta = frac[ej] - frac[ei]  # [E, 3], float64
        ang = 2 * np.pi * delta[:, :, None] * torch.arange(1, K + 1, dtype=torch.float64)
        phi = torch.cat([torch.sin(ang), torch.cos(ang)], 2).reshape(-1, 6 * K)
        phi = phi.to(torch.float32).to(dtype)
        nb_e = node_b[ei]
        for l in range(L):
            pre = "layers.%d." % l
            x = ln(h, pre + "ln")
            ein = torch.cat([x[ei], x[ej], g[nb_e], phi], 1)
            msg = Fn.silu(lin(Fn.silu(lin(ein, pre + "edge_mlp.0")), pre + "edge_mlp.2"))
            m = torch.zeros(N, d, dtype=dtype).index_add(0, ei, msg) / cnt[node_b][:, None]
            h = h + lin(Fn.silu(lin(torch.cat([x, m], 1), pre + "node_mlp.0")), pre + "node_mlp.2")
        hf = ln(h, "final_ln")
        coord = lin(hf, "coord_head", bias=False)
        logits = lin(hf, "type_head")
        pool = torch.zeros(B, d, dtype=dtype).index_add(0, node_b, hf) / cnt[:, None]
        M = lin(pool, "lattice_head", bias=False).reshape(B, 3, 3)
        latout = M @ lat
        wc, wl, wa = [float(v) for v in ck["loss_weights"]]
        tc = torch.tensor(ck["target_coord"], dtype=dtype)
        tl = torch.tensor(ck["target_lattice"], dtype=dtype).reshape(B, 3, 3)
        masked = types == 0
        tz = torch.tensor(ck["target_types"], dtype=torch.long) - 1
        loss = (wc * ((coord - tc) ** 2).mean() + wl * ((latout - tl) ** 2).mean() +
                wa * Fn.cross_entropy(logits[masked], tz[masked]))
        loss.backward()
        outs = {"out_coord": coord.detach().numpy(), "out_lattice": latout.detach().numpy(),
                "out_logits": logits.detach().numpy()}
        return float(loss), outs, {k: v.grad.numpy() for k, v in P.items()}, int(masked.sum())

    t0 = time.time()
    loss32, out32, g32, nmask = run(torch.float32)
    t_torch = time.time() - t0
    loss64, out64, g64, _ = run(torch.float64)

    def rel(a, b):
        a = np.asarray(a, dtype=np.float64).ravel()
        b = np.asarray(b, dtype=np.float64).ravel()
        return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)

    # 4. compare
    c_loss = float(ck["loss"][0])
    print("loss: C %.9f, torch32 %.9f, torch64 %.9f (%d masked atoms); rel C-torch32 %.2e" % (
        c_loss, loss32, loss64, nmask, abs(c_loss - loss32) / abs(loss32)))
    ok &= abs(c_loss - loss32) / abs(loss32) < TOL
    worst = (0.0, "")
    for k in ("out_coord", "out_lattice", "out_logits"):
        e32 = rel(ck[k].reshape(out32[k].shape), out32[k])
        e64 = rel(ck[k].reshape(out64[k].shape), out64[k])
        print("  %-28s C-torch32 %.2e   C-torch64 %.2e   torch32-torch64 %.2e" % (
            k, e32, e64, rel(out32[k], out64[k])))
        ok &= e32 < TOL
        worst = max(worst, (e32, k))
    wg = (0.0, "")
    for k in order:
        e32 = rel(grads[k], g32[k])
        e64 = rel(grads[k], g64[k])
        print("  grad %-23s C-torch32 %.2e   C-torch64 %.2e   torch32-torch64 %.2e  |g| %.2e" % (
            k, e32, e64, rel(g32[k], g64[k]), np.linalg.norm(g64[k])))
        if not e32 < TOL:
            print("  ^^^ exceeds %.0e" % TOL)
            ok = False
        wg = max(wg, (e32, k))
    print("worst output error %.2e (%s); worst gradient error %.2e (%s); tolerance %.0e" % (
        worst[0], worst[1], wg[0], wg[1], TOL))
    print("time: C test executable %.2f s (all its tests), torch float32 forward+backward %.2f s" % (
        t_c, t_torch))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
