/* The reverse process (docs/generator.md, "Diffusion and sampling"): predictor-corrector on
 * fractional coordinates (DiffCSP), ancestral DDPM steps on the density-scaled lattice, and
 * unmasking of atom types. Every random number of sample i is a Philox draw keyed on (seed,
 * batch id, index i, step, stream), so a sample does not depend on how samples are packed into
 * network batches. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generator/generator.h"

gen_sampler_opts gen_sampler_opts_default(void)
{
    gen_sampler_opts o;
    memset(&o, 0, sizeof o);
    o.diffusion = gen_diffusion_default();
    o.steps = 100; /* docs/eval.md: the shipped model is no better at 1000 (DiffCSP's) */
    o.stride = 1;
    o.corrector = 1;
    o.step_lr = 1e-5;
    o.type_temperature = 1.0;
    o.noise_scale = 1.0;
    return o;
}

typedef struct {
    int n;       /* atoms */
    int off;     /* first atom in the packed arrays */
    double sN;   /* lattice scale, Angstrom */
    double y[9]; /* lattice / sN */
    int failed;
} sample_state;

static int check_opts(int n_types, const gen_sampler_opts *o, int count, xtal_err *err)
{
    int rc = gen_diffusion_check(&o->diffusion, err);
    if (rc) return rc;
    if (count < 1) return xtal_err_set(err, XTAL_EINVALID, "sample: count %d < 1", count);
    if (o->steps < 1 || o->steps > (1 << 23))
        return xtal_err_set(err, XTAL_EINVALID, "sample: steps %d outside 1..%d", o->steps,
                            1 << 23);
    if (o->stride < 1 || o->stride > o->steps)
        return xtal_err_set(err, XTAL_EINVALID, "sample: stride %d outside 1..steps (%d)",
                            o->stride, o->steps);
    if (!(o->step_lr >= 0 && o->step_lr < 1))
        return xtal_err_set(err, XTAL_EINVALID, "sample: step_lr %g outside [0, 1)", o->step_lr);
    if (!(o->noise_scale >= 0 && o->noise_scale <= 2))
        return xtal_err_set(err, XTAL_EINVALID, "sample: noise scale %g outside [0, 2]",
                            o->noise_scale);
    if (!(o->type_temperature > 0))
        return xtal_err_set(err, XTAL_EINVALID, "sample: type temperature %g must be > 0",
                            o->type_temperature);
    if (o->natoms < 0 || o->natoms > XTAL_MAX_ATOMS)
        return xtal_err_set(err, XTAL_EINVALID, "sample: natoms %d outside 0..%d", o->natoms,
                            XTAL_MAX_ATOMS);
    if (o->comp_len > 0) {
        if (!o->composition) return xtal_err_set(err, XTAL_EINVALID, "sample: composition missing");
        for (int i = 0; i < o->comp_len; i++)
            if (o->composition[i] < 1 || o->composition[i] >= n_types)
                return xtal_err_set(err, XTAL_EINVALID,
                                    "sample: composition element Z = %d outside the model's "
                                    "vocabulary 1..%d",
                                    o->composition[i], n_types - 1);
        if (o->natoms > 0 && o->natoms % o->comp_len)
            return xtal_err_set(err, XTAL_EINVALID,
                                "sample: natoms %d is not a multiple of the formula unit (%d "
                                "atoms)",
                                o->natoms, o->comp_len);
    }
    if (o->n_elements > 0) {
        if (!o->elements) return xtal_err_set(err, XTAL_EINVALID, "sample: element set missing");
        for (int i = 0; i < o->n_elements; i++)
            if (o->elements[i] < 1 || o->elements[i] >= n_types)
                return xtal_err_set(err, XTAL_EINVALID,
                                    "sample: allowed element Z = %d outside the model's "
                                    "vocabulary 1..%d",
                                    o->elements[i], n_types - 1);
    }
    if (o->natoms == 0 && o->comp_len == 0) {
        if (!o->natoms_hist || o->hist_len < 2)
            return xtal_err_set(err, XTAL_EINVALID,
                                "sample: no atom count given and no atom-count histogram");
    }
    if (o->natoms_hist && o->hist_len > 1) {
        double tot = 0;
        for (int k = 1; k < o->hist_len; k++) {
            if (!(o->natoms_hist[k] >= 0) || !isfinite(o->natoms_hist[k]))
                return xtal_err_set(err, XTAL_EINVALID, "sample: histogram weight %d is %g", k,
                                    o->natoms_hist[k]);
            tot += o->natoms_hist[k];
        }
        if (!(tot > 0) && o->natoms == 0)
            return xtal_err_set(err, XTAL_EINVALID, "sample: atom-count histogram is empty");
        if (o->hist_len - 1 > XTAL_MAX_ATOMS)
            return xtal_err_set(err, XTAL_ELIMIT, "sample: histogram longer than %d atoms",
                                XTAL_MAX_ATOMS);
    }
    return XTAL_OK;
}

/* Atom count of one sample: given, or drawn from the histogram (restricted to multiples of the
 * formula unit when a composition is given; one formula unit when none has weight). */
static int draw_natoms(const gen_sampler_opts *o, const gen_rng_key *base)
{
    if (o->natoms > 0) return o->natoms;
    int unit = o->comp_len > 0 ? o->comp_len : 1;
    double tot = 0;
    if (o->natoms_hist)
        for (int k = unit; k < o->hist_len; k += unit) tot += o->natoms_hist[k];
    if (!(tot > 0)) return unit;
    gen_rng_key k = *base;
    k.step = 0;
    k.stream = GEN_STREAM_NATOMS;
    double u;
    gen_rng_uniform(&k, 0, 1, &u);
    double acc = 0, target = u * tot;
    int last = unit;
    for (int n = unit; n < o->hist_len; n += unit) {
        if (o->natoms_hist[n] <= 0) continue;
        last = n;
        acc += o->natoms_hist[n];
        if (target < acc) return n;
    }
    return last;
}

static double wrap01(double f)
{
    f -= floor(f);
    if (!(f < 1.0) || !(f >= 0.0)) f = 0.0;
    return f;
}

/* Float copy of the state for the network. */
static void pack(int count, const sample_state *st, const double *x, float *ff, float *lf,
                 float *tf, double t)
{
    for (int i = 0; i < count; i++) {
        for (int e = 0; e < 9; e++) lf[9 * i + e] = (float)(st[i].sN * st[i].y[e]);
        tf[i] = (float)t;
        for (int a = st[i].off; a < st[i].off + st[i].n; a++)
            for (int c = 0; c < 3; c++) {
                float v = (float)x[3 * a + c];
                ff[3 * a + c] = v < 1.0f ? v : 0.0f;
            }
    }
}

/* A sample whose state went non-finite is failed and parked at a finite state (frac 0, the
 * unit cube), so the rest of the batch runs on. */
static void guard(int count, sample_state *st, double *x)
{
    for (int i = 0; i < count; i++) {
        int bad = 0;
        for (int e = 0; e < 9; e++) bad |= !isfinite(st[i].y[e]) || fabs(st[i].y[e]) > 1e6;
        for (int a = st[i].off; a < st[i].off + st[i].n; a++)
            for (int c = 0; c < 3; c++) bad |= !isfinite(x[3 * a + c]);
        if (bad) st[i].failed = 1;
        if (st[i].failed) {
            for (int e = 0; e < 9; e++) st[i].y[e] = (e % 4 == 0) ? 1.0 : 0.0;
            for (int a = st[i].off; a < st[i].off + st[i].n; a++)
                for (int c = 0; c < 3; c++) x[3 * a + c] = 0.0;
        }
    }
}

/* One network evaluation of the whole state. packed = 0 (canonical): one forward per crystal,
 * so a sample's numbers never depend on its neighbours in the batch (with OpenBLAS in the
 * forward they did: 2-5e-7 differences between packings; gen_gemm's rounding is row-independent,
 * so packed = 1, one forward over the batch, now gives the same bits, but the contract does not
 * rest on it). Outputs are copied into co/lo/go. */
static int evaluate(const gen_model *m, gen_workspace *w, const gen_batch *batch, int packed,
                    float *co, float *lo, float *go, xtal_err *err)
{
    const int V = m->hp.n_types - 1;
    gen_outputs out;
    if (packed) {
        int rc = gen_forward(m, w, batch, 0, &out, err);
        if (rc) return rc;
        memcpy(co, out.coord, (size_t)batch->n_atoms * 3 * sizeof(float));
        memcpy(lo, out.lattice, (size_t)batch->n_crystals * 9 * sizeof(float));
        memcpy(go, out.logits, (size_t)batch->n_atoms * V * sizeof(float));
        return XTAL_OK;
    }
    for (int i = 0; i < batch->n_crystals; i++) {
        int a0 = batch->offsets[i], n = batch->offsets[i + 1] - a0;
        int off1[2] = {0, n};
        gen_batch one = {1,
                         n,
                         off1,
                         batch->types + a0,
                         batch->frac + 3 * (size_t)a0,
                         batch->lattice + 9 * (size_t)i,
                         batch->t + i};
        int rc = gen_forward(m, w, &one, 0, &out, err);
        if (rc) return rc;
        memcpy(co + 3 * (size_t)a0, out.coord, (size_t)n * 3 * sizeof(float));
        memcpy(lo + 9 * (size_t)i, out.lattice, 9 * sizeof(float));
        memcpy(go + (size_t)a0 * V, out.logits, (size_t)n * V * sizeof(float));
    }
    return XTAL_OK;
}

typedef struct {
    const gen_model *m;
    gen_workspace *w;
    int packed;
} net_ctx;

static int net_eval(void *ctx, const gen_batch *state, float *coord, float *lattice, float *logits,
                    xtal_err *err)
{
    net_ctx *c = ctx;
    return evaluate(c->m, c->w, state, c->packed, coord, lattice, logits, err);
}

int gen_sample(const gen_model *m, gen_workspace *w, const gen_sampler_opts *o, uint64_t seed,
               uint32_t batch_id, uint32_t first, int count, xtal_crystal *out, int *status,
               gen_trajectory_fn traj, int traj_every, void *traj_ctx, xtal_err *err)
{
    gen_workspace *own = NULL;
    if (!w) {
        own = gen_workspace_new();
        if (!own) return xtal_err_set(err, XTAL_ENOMEM, "out of memory (workspace)");
        w = own;
    }
    /* the weights are packed once for the whole run (the model is const during the call) */
    int was_bound = gen_workspace_bound(w, m);
    int rc = gen_workspace_bind(w, m, err);
    if (rc) {
        gen_workspace_free(own);
        return rc;
    }
    net_ctx c = {m, w, o->packed};
    rc = gen_sample_eval(net_eval, &c, m->hp.n_types, o, seed, batch_id, first, count, out, status,
                         traj, traj_every, traj_ctx, err);
    if (!was_bound) gen_workspace_unbind(w);
    gen_workspace_free(own);
    return rc;
}

int gen_sample_eval(gen_eval_fn eval, void *eval_ctx, int n_types, const gen_sampler_opts *o,
                    uint64_t seed, uint32_t batch_id, uint32_t first, int count, xtal_crystal *out,
                    int *status, gen_trajectory_fn traj, int traj_every, void *traj_ctx,
                    xtal_err *err)
{
    if (n_types < 2 || n_types > 200)
        return xtal_err_set(err, XTAL_EINVALID, "sample: n_types %d outside 2..200", n_types);
    int rc = check_opts(n_types, o, count, err);
    if (rc) return rc;
    const gen_diffusion *d = &o->diffusion;
    const int V = n_types - 1;
    sample_state *st = calloc((size_t)count, sizeof *st);
    int *offsets = calloc((size_t)count + 1, sizeof(int));
    int *allowed = calloc((size_t)V, sizeof(int));
    double *prob = calloc((size_t)V, sizeof(double));
    float *lf = calloc((size_t)count * 9, sizeof(float));
    float *tf = calloc((size_t)count, sizeof(float));
    int *types = NULL, *fixed = NULL;
    double *x = NULL, *noise = NULL;
    float *ff = NULL, *oc = NULL, *og = NULL;
    float *ol = calloc((size_t)count * 9, sizeof(float));
    if (!st || !offsets || !allowed || !prob || !lf || !tf || !ol) {
        rc = xtal_err_set(err, XTAL_ENOMEM, "out of memory (sampler)");
        goto done;
    }
    if (o->n_elements > 0)
        for (int i = 0; i < o->n_elements; i++) allowed[o->elements[i] - 1] = 1;
    else
        for (int v = 0; v < V; v++) allowed[v] = 1;

    /* atom counts and layout */
    long total = 0;
    for (int i = 0; i < count; i++) {
        gen_rng_key base = {seed, batch_id, first + (uint32_t)i, 0, 0};
        st[i].n = draw_natoms(o, &base);
        st[i].off = (int)total;
        total += st[i].n;
        offsets[i + 1] = (int)total;
        if (total > 0x7fffffffL / 4) {
            rc = xtal_err_set(err, XTAL_ELIMIT, "sample: too many atoms in one batch (%ld)", total);
            goto done;
        }
    }
    const int N = (int)total;
    types = calloc((size_t)N, sizeof(int));
    fixed = calloc((size_t)N, sizeof(int));
    x = calloc((size_t)N * 3, sizeof(double));
    noise = calloc((size_t)N * 3, sizeof(double));
    ff = calloc((size_t)N * 3, sizeof(float));
    oc = calloc((size_t)N * 3, sizeof(float));
    og = calloc((size_t)N * V, sizeof(float));
    if (!types || !fixed || !x || !noise || !ff || !oc || !og) {
        rc = xtal_err_set(err, XTAL_ENOMEM, "out of memory (sampler, %d atoms)", N);
        goto done;
    }

    /* priors: frac uniform on the torus, lattice N(0, I) in units of s_N, types masked */
    for (int i = 0; i < count; i++) {
        gen_rng_key k = {seed, batch_id, first + (uint32_t)i, 0, GEN_STREAM_INIT_F};
        st[i].sN = gen_lattice_scale(d, st[i].n);
        gen_rng_uniform(&k, 0, 3 * st[i].n, x + 3 * (size_t)st[i].off);
        k.stream = GEN_STREAM_INIT_L;
        gen_rng_normal(&k, 0, 9, st[i].y);
        for (int a = 0; a < st[i].n; a++) {
            int g = st[i].off + a;
            if (o->comp_len > 0) {
                types[g] = o->composition[a % o->comp_len];
                fixed[g] = 1;
            } else {
                types[g] = GEN_MASK_TYPE;
            }
        }
    }

    gen_batch batch = {count, N, offsets, types, ff, lf, tf};
    gen_outputs nout = {oc, ol, og};
    const int T = o->steps;
    int k_cur = T, nstep = 0;
    while (k_cur > 0) {
        int k_next = k_cur - o->stride;
        if (k_next < 0) k_next = 0;
        double t = (double)k_cur / T, s = (double)k_next / T;
        double sig_t = gen_sigma_at(d, t), sig_s = k_next > 0 ? gen_sigma_at(d, s) : 0.0;
        double snorm =
            d->normalize_score ? sqrt(gen_wrapped_normal_score_norm(sig_t, d->n_images)) : 1.0;
        /* corrector: Langevin at sigma_t */
        if (o->corrector && o->step_lr > 0) {
            pack(count, st, x, ff, lf, tf, t);
            rc = eval(eval_ctx, &batch, oc, ol, og, err);
            if (rc) goto done;
            double eps = o->step_lr * (sig_t / d->sigma_min) * (sig_t / d->sigma_min);
            double sd = o->noise_scale * sqrt(2 * eps);
            for (int i = 0; i < count; i++) {
                gen_rng_key k = {seed, batch_id, first + (uint32_t)i, (uint32_t)k_cur,
                                 GEN_STREAM_CORR_F};
                double *xi = x + 3 * (size_t)st[i].off;
                gen_rng_normal(&k, 0, 3 * st[i].n, noise + 3 * (size_t)st[i].off);
                for (int q = 0; q < 3 * st[i].n; q++) {
                    double sc = (double)nout.coord[3 * (size_t)st[i].off + q] * snorm;
                    xi[q] = wrap01(xi[q] + eps * sc + sd * noise[3 * (size_t)st[i].off + q]);
                }
            }
            guard(count, st, x);
        }
        /* predictor, lattice step, unmasking: one evaluation at (x, L, types, t) */
        pack(count, st, x, ff, lf, tf, t);
        rc = eval(eval_ctx, &batch, oc, ol, og, err);
        if (rc) goto done;
        double dv = sig_t * sig_t - sig_s * sig_s;
        double sd = o->noise_scale * sqrt(sig_s * sig_s * dv / (sig_t * sig_t));
        double ab_t = gen_alpha_bar_at(d, t), ab_s = gen_alpha_bar_at(d, s);
        double al = ab_t / ab_s, be = 1 - al;
        double lvar = be * (1 - ab_s) / (1 - ab_t);
        double m_t = gen_mask_prob_at(d, t), m_s = gen_mask_prob_at(d, s);
        double p_un = k_next == 0 ? 1.0 : (m_t > 0 ? (m_t - m_s) / m_t : 1.0);
        for (int i = 0; i < count; i++) {
            gen_rng_key k = {seed, batch_id, first + (uint32_t)i, (uint32_t)k_cur,
                             GEN_STREAM_PRED_F};
            size_t o3 = 3 * (size_t)st[i].off;
            gen_rng_normal(&k, 0, 3 * st[i].n, noise + o3);
            for (int q = 0; q < 3 * st[i].n; q++) {
                double sc = (double)nout.coord[o3 + q] * snorm;
                x[o3 + q] = wrap01(x[o3 + q] + dv * sc + sd * noise[o3 + q]);
            }
            /* lattice: DDPM posterior between grid points t > s, eps parameterization */
            double z[9];
            k.stream = GEN_STREAM_STEP_L;
            gen_rng_normal(&k, 0, 9, z);
            for (int e = 0; e < 9; e++) {
                double eh = nout.lattice[9 * (size_t)i + e];
                double mean = (st[i].y[e] - be / sqrt(1 - ab_t) * eh) / sqrt(al);
                st[i].y[e] = mean + (k_next > 0 ? o->noise_scale * sqrt(lvar) * z[e] : 0.0);
            }
            /* types: each masked atom unmasks with probability (m(t) - m(s)) / m(t) */
            k.stream = GEN_STREAM_UNMASK;
            for (int a = 0; a < st[i].n; a++) {
                int g = st[i].off + a;
                if (fixed[g] || types[g] != GEN_MASK_TYPE) continue;
                double u[2];
                gen_rng_uniform(&k, (uint32_t)(2 * a), 2, u);
                if (u[0] >= p_un) continue;
                const float *lg = nout.logits + (size_t)g * V;
                double mx = -INFINITY, tot = 0;
                for (int v = 0; v < V; v++)
                    if (allowed[v] && isfinite(lg[v]) && lg[v] / o->type_temperature > mx)
                        mx = lg[v] / o->type_temperature;
                int pick = -1;
                if (isfinite(mx)) {
                    for (int v = 0; v < V; v++) {
                        prob[v] = (allowed[v] && isfinite(lg[v]))
                                      ? exp(lg[v] / o->type_temperature - mx)
                                      : 0.0;
                        tot += prob[v];
                    }
                    double acc = 0, target = u[1] * tot;
                    for (int v = 0; v < V; v++) {
                        if (prob[v] <= 0) continue;
                        pick = v;
                        acc += prob[v];
                        if (target < acc) break;
                    }
                }
                if (pick < 0) { /* non-finite logits: first allowed element, sample failed */
                    for (int v = V - 1; v >= 0; v--)
                        if (allowed[v]) pick = v;
                    st[i].failed = 1;
                }
                types[g] = pick + 1;
            }
        }
        guard(count, st, x);
        nstep++;
        k_cur = k_next;
        if (traj && traj_every > 0 && (nstep % traj_every == 0 || k_cur == 0)) {
            pack(count, st, x, ff, lf, tf, (double)k_cur / T);
            traj(traj_ctx, k_cur, (double)k_cur / T, &batch);
        }
    }

    /* output crystals */
    for (int i = 0; i < count; i++) {
        rc = xtal_crystal_init(&out[i], st[i].n, err);
        if (rc) {
            for (int j = 0; j < i; j++) xtal_crystal_free(&out[j]);
            goto done;
        }
        snprintf(out[i].id, sizeof out[i].id, "b%u-i%u", batch_id, first + (uint32_t)i);
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 3; c++) out[i].lattice[r][c] = st[i].sN * st[i].y[3 * r + c];
        for (int a = 0; a < st[i].n; a++) {
            int g = st[i].off + a;
            out[i].Z[a] = types[g];
            for (int c = 0; c < 3; c++) out[i].frac[3 * a + c] = wrap01(x[3 * (size_t)g + c]);
        }
        double vol = fabs(xtal_lattice_volume(out[i].lattice)), abc = 1;
        for (int r = 0; r < 3; r++)
            abc *= sqrt(out[i].lattice[r][0] * out[i].lattice[r][0] +
                        out[i].lattice[r][1] * out[i].lattice[r][1] +
                        out[i].lattice[r][2] * out[i].lattice[r][2]);
        status[i] = (st[i].failed || !isfinite(vol) || !isfinite(abc) ||
                     vol / st[i].n < GEN_MIN_VOLUME_PER_ATOM || vol < GEN_MIN_CELL_FLATNESS * abc)
                        ? GEN_SAMPLE_DEGENERATE
                        : GEN_SAMPLE_OK;
    }
    rc = XTAL_OK;
done:
    free(st);
    free(offsets);
    free(allowed);
    free(prob);
    free(lf);
    free(tf);
    free(types);
    free(fixed);
    free(x);
    free(noise);
    free(ff);
    free(oc);
    free(ol);
    free(og);
    return rc;
}
