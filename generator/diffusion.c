/* The forward diffusion processes of druse's generator (docs/generator.md, "Diffusion and
 * sampling"): a variance-exploding wrapped normal on fractional coordinates, DDPM with a cosine
 * schedule on the density-scaled lattice, absorbing-state masking of atom types. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "generator/generator.h"

gen_diffusion gen_diffusion_default(void)
{
    gen_diffusion d;
    memset(&d, 0, sizeof d);
    d.sigma_min = 0.005;
    d.sigma_max = 0.5;
    d.n_images = 5;
    d.normalize_score = 1;
    d.cosine_s = 0.008;
    d.abar_min = 1e-4;
    d.v_atom = 20.0;
    d.mask_schedule = GEN_MASK_COSINE;
    d.p_keep_types = 0.25;
    d.w_coord = 1.0f;
    d.w_lattice = 1.0f;
    d.w_type = 1.0f;
    return d;
}

int gen_diffusion_check(const gen_diffusion *d, xtal_err *err)
{
    if (!(d->sigma_min > 0) || !(d->sigma_max >= d->sigma_min) || !(d->sigma_max <= 10))
        return xtal_err_set(err, XTAL_EINVALID,
                            "diffusion: need 0 < sigma_min <= sigma_max <= 10 (got %g, %g)",
                            d->sigma_min, d->sigma_max);
    if (d->n_images < 1 || d->n_images > 100)
        return xtal_err_set(err, XTAL_EINVALID, "diffusion: n_images %d outside 1..100",
                            d->n_images);
    if (!(d->cosine_s >= 0 && d->cosine_s < 1))
        return xtal_err_set(err, XTAL_EINVALID, "diffusion: cosine_s %g outside [0, 1)",
                            d->cosine_s);
    if (!(d->abar_min > 0 && d->abar_min < 1))
        return xtal_err_set(err, XTAL_EINVALID, "diffusion: abar_min %g outside (0, 1)",
                            d->abar_min);
    if (!(d->v_atom > 0 && d->v_atom < 1e4))
        return xtal_err_set(err, XTAL_EINVALID, "diffusion: v_atom %g outside (0, 1e4) A^3",
                            d->v_atom);
    if (d->mask_schedule != GEN_MASK_LINEAR && d->mask_schedule != GEN_MASK_COSINE)
        return xtal_err_set(err, XTAL_EINVALID, "diffusion: unknown mask schedule %d",
                            (int)d->mask_schedule);
    if (!(d->p_keep_types >= 0 && d->p_keep_types <= 1))
        return xtal_err_set(err, XTAL_EINVALID, "diffusion: p_keep_types %g outside [0, 1]",
                            d->p_keep_types);
    return XTAL_OK;
}

double gen_sigma_at(const gen_diffusion *d, double t)
{
    return d->sigma_min * pow(d->sigma_max / d->sigma_min, t);
}

double gen_alpha_bar_at(const gen_diffusion *d, double t)
{
    double s = d->cosine_s;
    double f0 = cos(s / (1 + s) * M_PI / 2), ft = cos((t + s) / (1 + s) * M_PI / 2);
    double a = (ft * ft) / (f0 * f0);
    if (t <= 0) a = 1.0;
    if (a < d->abar_min) a = d->abar_min;
    if (a > 1) a = 1;
    return a;
}

double gen_mask_prob_at(const gen_diffusion *d, double t)
{
    if (t <= 0) return 0;
    if (t >= 1) return 1;
    return d->mask_schedule == GEN_MASK_LINEAR ? t : 1 - cos(M_PI * t / 2);
}

double gen_lattice_scale(const gen_diffusion *d, int natoms)
{
    return cbrt((double)natoms * d->v_atom);
}

/* Exponents -(x+k)^2 / (2 sigma^2) for k = -n..n with x reduced to [-0.5, 0.5). */
static double reduce(double x)
{
    return x - floor(x + 0.5);
}

double gen_wrapped_normal_logp(double x, double sigma, int n_images)
{
    double xr = reduce(x), s2 = sigma * sigma, mx = -INFINITY;
    for (int k = -n_images; k <= n_images; k++) {
        double e = -(xr + k) * (xr + k) / (2 * s2);
        if (e > mx) mx = e;
    }
    double sum = 0;
    for (int k = -n_images; k <= n_images; k++) sum += exp(-(xr + k) * (xr + k) / (2 * s2) - mx);
    return mx + log(sum) - log(sigma * sqrt(2 * M_PI));
}

double gen_wrapped_normal_score(double x, double sigma, int n_images)
{
    double xr = reduce(x), s2 = sigma * sigma, mx = -INFINITY;
    for (int k = -n_images; k <= n_images; k++) {
        double e = -(xr + k) * (xr + k) / (2 * s2);
        if (e > mx) mx = e;
    }
    double num = 0, den = 0;
    for (int k = -n_images; k <= n_images; k++) {
        double w = exp(-(xr + k) * (xr + k) / (2 * s2) - mx);
        num += w * (-(xr + k) / s2);
        den += w;
    }
    return num / den;
}

double gen_wrapped_normal_score_norm(double sigma, int n_images)
{
    if (sigma < 1.0 / 16) return 1.0 / (sigma * sigma);
    enum { NQ = 256 };
    double sum = 0, h = 1.0 / NQ;
    for (int q = 0; q < NQ; q++) {
        double x = -0.5 + q * h;
        double s = gen_wrapped_normal_score(x, sigma, n_images);
        sum += exp(gen_wrapped_normal_logp(x, sigma, n_images)) * s * s;
    }
    return sum * h;
}

void gen_noised_free(gen_noised *nz)
{
    free(nz->types);
    free(nz->frac);
    free(nz->lattice);
    free(nz->target_coord);
    free(nz->target_lattice);
    free(nz->target_types);
    free(nz->kept);
    memset(nz, 0, sizeof *nz);
}

static int grow(gen_noised *nz, int N, int B, xtal_err *err)
{
    if (N > nz->cap_n) {
        int *a = realloc(nz->types, (size_t)N * sizeof(int));
        if (a) nz->types = a;
        float *f = realloc(nz->frac, (size_t)N * 3 * sizeof(float));
        if (f) nz->frac = f;
        float *g = realloc(nz->target_coord, (size_t)N * 3 * sizeof(float));
        if (g) nz->target_coord = g;
        int *c = realloc(nz->target_types, (size_t)N * sizeof(int));
        if (c) nz->target_types = c;
        if (!a || !f || !g || !c) return xtal_err_set(err, XTAL_ENOMEM, "out of memory (noise)");
        nz->cap_n = N;
    }
    if (B > nz->cap_b) {
        float *l = realloc(nz->lattice, (size_t)B * 9 * sizeof(float));
        if (l) nz->lattice = l;
        float *tl = realloc(nz->target_lattice, (size_t)B * 9 * sizeof(float));
        if (tl) nz->target_lattice = tl;
        int *k = realloc(nz->kept, (size_t)B * sizeof(int));
        if (k) nz->kept = k;
        if (!l || !tl || !k) return xtal_err_set(err, XTAL_ENOMEM, "out of memory (noise)");
        nz->cap_b = B;
    }
    return XTAL_OK;
}

int gen_diffusion_noise_batch(const gen_diffusion *d, const gen_batch *clean, uint64_t seed,
                              uint32_t step, const uint32_t *ids, gen_noised *out, xtal_err *err)
{
    int rc = gen_diffusion_check(d, err);
    if (rc) return rc;
    if (!clean || clean->n_crystals < 1 || !clean->offsets || !clean->types || !clean->frac ||
        !clean->lattice || !clean->t)
        return xtal_err_set(err, XTAL_EINVALID, "noise: empty or missing batch arrays");
    int B = clean->n_crystals, N = clean->n_atoms;
    if (clean->offsets[0] != 0 || clean->offsets[B] != N)
        return xtal_err_set(err, XTAL_EINVALID, "noise: offsets do not span %d atoms", N);
    rc = grow(out, N > 0 ? N : 1, B, err);
    if (rc) return rc;
    double buf[9];
    for (int b = 0; b < B; b++) {
        int a0 = clean->offsets[b], a1 = clean->offsets[b + 1], n = a1 - a0;
        if (n < 1) return xtal_err_set(err, XTAL_EINVALID, "noise: crystal %d has %d atoms", b, n);
        double t = clean->t[b];
        if (!(t >= 0 && t <= 1))
            return xtal_err_set(err, XTAL_EINVALID, "noise: crystal %d: time %g outside [0, 1]", b,
                                t);
        gen_rng_key k = {seed, step, ids ? ids[b] : (uint32_t)b, 0, 0};
        /* fractional coordinates */
        double sigma = gen_sigma_at(d, t);
        double norm =
            d->normalize_score ? sqrt(gen_wrapped_normal_score_norm(sigma, d->n_images)) : 1.0;
        k.stream = GEN_STREAM_NOISE_F;
        for (int i = a0; i < a1; i++) {
            gen_rng_normal(&k, (uint32_t)(3 * (i - a0)), 3, buf);
            for (int c = 0; c < 3; c++) {
                double disp = sigma * buf[c];
                double f = (double)clean->frac[3 * i + c] + disp;
                f -= floor(f);
                if (f >= 1.0) f = 0.0;
                out->frac[3 * i + c] = (float)f;
                if (!(out->frac[3 * i + c] < 1.0f)) out->frac[3 * i + c] = 0.0f;
                out->target_coord[3 * i + c] =
                    (float)(gen_wrapped_normal_score(disp, sigma, d->n_images) / norm);
            }
        }
        /* lattice */
        double ab = gen_alpha_bar_at(d, t), sN = gen_lattice_scale(d, n);
        k.stream = GEN_STREAM_NOISE_L;
        gen_rng_normal(&k, 0, 9, buf);
        for (int e = 0; e < 9; e++) {
            out->lattice[9 * b + e] =
                (float)(sqrt(ab) * clean->lattice[9 * b + e] + sqrt(1 - ab) * sN * buf[e]);
            out->target_lattice[9 * b + e] = (float)buf[e];
        }
        /* types: draw 0 decides keep, draw 1 + a masks atom a */
        double pm = gen_mask_prob_at(d, t), u;
        k.stream = GEN_STREAM_NOISE_A;
        gen_rng_uniform(&k, 0, 1, &u);
        out->kept[b] = u < d->p_keep_types;
        for (int i = a0; i < a1; i++) {
            if (clean->types[i] < 1)
                return xtal_err_set(err, XTAL_EINVALID,
                                    "noise: atom %d has type %d (clean types must be elements)", i,
                                    clean->types[i]);
            out->target_types[i] = clean->types[i];
            gen_rng_uniform(&k, (uint32_t)(1 + i - a0), 1, &u);
            out->types[i] = (!out->kept[b] && u < pm) ? GEN_MASK_TYPE : clean->types[i];
        }
    }
    out->batch = *clean;
    out->batch.types = out->types;
    out->batch.frac = out->frac;
    out->batch.lattice = out->lattice;
    out->targets.coord = out->target_coord;
    out->targets.lattice = out->target_lattice;
    out->targets.types = out->target_types;
    out->targets.w_coord = d->w_coord;
    out->targets.w_lattice = d->w_lattice;
    out->targets.w_type = d->w_type;
    return XTAL_OK;
}
