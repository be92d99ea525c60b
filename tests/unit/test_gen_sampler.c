/* The sampler (generator/sampler.c) with a randomly initialized model: determinism across batch
 * packing (the campaign's contract), seeds, composition and element-set conditioning, no NaN
 * for T = 10 and T = 100, strided schedules, a degenerate outcome reported, errors named; and
 * `druse sample` end to end when $DRUSE is set. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "crystal/crystal.h"
#include "generator/generator.h"

char *progname = "test"; /* libcodcif needs it */

static const gen_hparams small_hp = {
    .hidden = 16, .layers = 2, .n_freq = 4, .time_dim = 8, .n_types = GEN_DEFAULT_TYPES};

static gen_model model;

static int setup(void **state)
{
    (void)state;
    return gen_model_create(&model, &small_hp, 7, NULL) == XTAL_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    gen_model_free(&model);
    return 0;
}

static const double hist[9] = {0, 1, 2, 1, 3, 0, 2, 0, 1}; /* N in 1..8 */

static gen_sampler_opts opts_T(int T)
{
    gen_sampler_opts o = gen_sampler_opts_default();
    o.steps = T;
    o.natoms_hist = hist;
    o.hist_len = 9;
    return o;
}

static void free_all(xtal_crystal *c, int n)
{
    for (int i = 0; i < n; i++) xtal_crystal_free(&c[i]);
}

static void assert_same(const xtal_crystal *a, const xtal_crystal *b)
{
    assert_int_equal(a->natoms, b->natoms);
    assert_memory_equal(a->Z, b->Z, (size_t)a->natoms * sizeof(int));
    assert_memory_equal(a->frac, b->frac, (size_t)a->natoms * 3 * sizeof(double));
    assert_memory_equal(a->lattice, b->lattice, sizeof a->lattice);
}

static void assert_finite(const xtal_crystal *c)
{
    for (int k = 0; k < 9; k++) assert_true(isfinite(c->lattice[k / 3][k % 3]));
    for (int a = 0; a < c->natoms; a++) {
        assert_true(c->Z[a] >= 1 && c->Z[a] <= 100);
        for (int k = 0; k < 3; k++) assert_true(c->frac[3 * a + k] >= 0 && c->frac[3 * a + k] < 1);
    }
}

static void test_packing_determinism(void **state)
{
    (void)state;
    gen_sampler_opts o = opts_T(10);
    xtal_crystal one[8], split[8], other[8];
    int st1[8], st2[8], st3[8];
    memset(one, 0, sizeof one);
    memset(split, 0, sizeof split);
    memset(other, 0, sizeof other);
    xtal_err err;
    gen_workspace *w = gen_workspace_new();
    assert_int_equal(gen_sample(&model, w, &o, 42, 3, 0, 8, one, st1, NULL, 1, NULL, &err),
                     XTAL_OK);
    assert_int_equal(gen_sample(&model, w, &o, 42, 3, 0, 3, split, st2, NULL, 1, NULL, &err),
                     XTAL_OK);
    assert_int_equal(
        gen_sample(&model, NULL, &o, 42, 3, 3, 5, split + 3, st2 + 3, NULL, 1, NULL, &err),
        XTAL_OK);
    int sizes_differ = 0;
    for (int i = 0; i < 8; i++) {
        assert_same(&one[i], &split[i]);
        assert_int_equal(st1[i], st2[i]);
        assert_finite(&one[i]);
        sizes_differ |= one[i].natoms != one[0].natoms;
    }
    assert_true(sizes_differ); /* mixed sizes were packed */
    /* another seed or batch id gives other samples */
    assert_int_equal(gen_sample(&model, w, &o, 43, 3, 0, 8, other, st3, NULL, 1, NULL, &err),
                     XTAL_OK);
    int differ = 0;
    for (int i = 0; i < 8; i++)
        differ += one[i].natoms != other[i].natoms ||
                  memcmp(one[i].lattice, other[i].lattice, sizeof one[i].lattice) != 0;
    assert_true(differ >= 7);
    free_all(other, 8);
    memset(other, 0, sizeof other);
    assert_int_equal(gen_sample(&model, w, &o, 42, 4, 0, 8, other, st3, NULL, 1, NULL, &err),
                     XTAL_OK);
    differ = 0;
    for (int i = 0; i < 8; i++)
        differ += one[i].natoms != other[i].natoms ||
                  memcmp(one[i].lattice, other[i].lattice, sizeof one[i].lattice) != 0;
    assert_true(differ >= 7);
    /* samples within a batch differ from each other */
    assert_true(memcmp(one[0].lattice, one[1].lattice, sizeof one[0].lattice) != 0);
    /* packed mode (one forward over the batch): reproducible for the same packing */
    o.packed = 1;
    free_all(other, 8);
    memset(other, 0, sizeof other);
    xtal_crystal again[8];
    memset(again, 0, sizeof again);
    assert_int_equal(gen_sample(&model, w, &o, 42, 3, 0, 8, other, st3, NULL, 1, NULL, &err),
                     XTAL_OK);
    assert_int_equal(gen_sample(&model, NULL, &o, 42, 3, 0, 8, again, st2, NULL, 1, NULL, &err),
                     XTAL_OK);
    int same_as_canonical = 0;
    for (int i = 0; i < 8; i++) {
        assert_same(&other[i], &again[i]);
        assert_finite(&other[i]);
        assert_int_equal(other[i].natoms, one[i].natoms);
        same_as_canonical +=
            memcmp(other[i].frac, one[i].frac, (size_t)one[i].natoms * 3 * sizeof(double)) == 0;
    }
    print_message("packed vs per-crystal forward: %d of 8 samples bit-identical\n",
                  same_as_canonical);
    /* the forward GEMM's rounding does not depend on the other rows: packing changes nothing */
    assert_int_equal(same_as_canonical, 8);
    assert_false(gen_workspace_bound(w, &model)); /* gen_sample restored the workspace */
    free_all(again, 8);
    free_all(one, 8);
    free_all(split, 8);
    free_all(other, 8);
    gen_workspace_free(w);
}

static void test_composition(void **state)
{
    (void)state;
    gen_sampler_opts o = opts_T(10);
    const int fe2o3[5] = {26, 26, 8, 8, 8};
    o.composition = fe2o3;
    o.comp_len = 5;
    o.natoms = 10;
    xtal_crystal c[4];
    int st[4];
    memset(c, 0, sizeof c);
    assert_int_equal(gen_sample(&model, NULL, &o, 1, 0, 0, 4, c, st, NULL, 1, NULL, NULL), XTAL_OK);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(c[i].natoms, 10);
        int nfe = 0, no = 0;
        for (int a = 0; a < 10; a++) {
            nfe += c[i].Z[a] == 26;
            no += c[i].Z[a] == 8;
        }
        assert_int_equal(nfe, 4);
        assert_int_equal(no, 6);
        assert_finite(&c[i]);
    }
    free_all(c, 4);
    /* natoms from the histogram: multiples of the formula unit only */
    o.natoms = 0;
    double h[16] = {0};
    h[3] = 5;
    h[5] = 1;
    h[10] = 1;
    h[15] = 1;
    o.natoms_hist = h;
    o.hist_len = 16;
    xtal_crystal d[6];
    int sd[6];
    memset(d, 0, sizeof d);
    assert_int_equal(gen_sample(&model, NULL, &o, 2, 0, 0, 6, d, sd, NULL, 1, NULL, NULL), XTAL_OK);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(d[i].natoms % 5, 0);
        char f[64];
        xtal_formula(&d[i], 1, f, sizeof f);
        assert_string_equal(f, "Fe2O3");
    }
    free_all(d, 6);
    /* natoms not a multiple of the formula unit is an error */
    o.natoms = 7;
    xtal_err err;
    xtal_crystal e[1];
    memset(e, 0, sizeof e);
    assert_int_not_equal(gen_sample(&model, NULL, &o, 2, 0, 0, 1, e, sd, NULL, 1, NULL, &err),
                         XTAL_OK);
    assert_non_null(strstr(err.msg, "multiple"));
}

static void test_elements(void **state)
{
    (void)state;
    gen_sampler_opts o = opts_T(10);
    const int allowed[4] = {3, 26, 15, 8};
    o.elements = allowed;
    o.n_elements = 4;
    enum { C = 16 };
    xtal_crystal c[C];
    int st[C];
    memset(c, 0, sizeof c);
    assert_int_equal(gen_sample(&model, NULL, &o, 11, 0, 0, C, c, st, NULL, 1, NULL, NULL),
                     XTAL_OK);
    int seen[4] = {0};
    for (int i = 0; i < C; i++)
        for (int a = 0; a < c[i].natoms; a++) {
            int ok = 0;
            for (int k = 0; k < 4; k++)
                if (c[i].Z[a] == allowed[k]) ok = 1, seen[k] = 1;
            assert_true(ok);
        }
    assert_true(seen[0] + seen[1] + seen[2] + seen[3] >= 2);
    free_all(c, C);
    /* an element outside the vocabulary is an error */
    const int bad[1] = {150};
    o.elements = bad;
    o.n_elements = 1;
    xtal_err err;
    assert_int_not_equal(gen_sample(&model, NULL, &o, 11, 0, 0, 1, c, st, NULL, 1, NULL, &err),
                         XTAL_OK);
}

typedef struct {
    int calls, last_step;
    int masked_first, masked_last;
} traj_count;

static void count_traj(void *ctx, int step, double t, const gen_batch *s)
{
    traj_count *tc = ctx;
    int masked = 0;
    for (int i = 0; i < s->n_atoms; i++) masked += s->types[i] == GEN_MASK_TYPE;
    if (tc->calls == 0) tc->masked_first = masked;
    tc->masked_last = masked;
    tc->calls++;
    tc->last_step = step;
    (void)t;
}

static void test_no_nan(void **state)
{
    (void)state;
    const int Ts[2] = {10, 100};
    for (int k = 0; k < 2; k++) {
        gen_sampler_opts o = opts_T(Ts[k]);
        xtal_crystal c[6];
        int st[6];
        memset(c, 0, sizeof c);
        traj_count tc = {0, -1, 0, 0};
        assert_int_equal(gen_sample(&model, NULL, &o, 5, 1, 0, 6, c, st, count_traj, 5, &tc, NULL),
                         XTAL_OK);
        int ok = 0;
        for (int i = 0; i < 6; i++) {
            assert_finite(&c[i]);
            ok += st[i] == GEN_SAMPLE_OK;
        }
        print_message("T = %d: %d of 6 samples not degenerate, %d trajectory frames\n", Ts[k], ok,
                      tc.calls);
        assert_int_equal(tc.calls, Ts[k] / 5);
        assert_int_equal(tc.last_step, 0);
        assert_int_equal(tc.masked_last, 0);
        free_all(c, 6);
    }
    /* strided: 100 grid points visited every 10th, T = 100 stride 7 (last step shorter) */
    const int strides[2] = {10, 7};
    for (int k = 0; k < 2; k++) {
        gen_sampler_opts o = opts_T(100);
        o.stride = strides[k];
        xtal_crystal c[3];
        int st[3];
        memset(c, 0, sizeof c);
        traj_count tc = {0, -1, 0, 0};
        assert_int_equal(gen_sample(&model, NULL, &o, 5, 1, 0, 3, c, st, count_traj, 1, &tc, NULL),
                         XTAL_OK);
        assert_int_equal(tc.calls, (100 + strides[k] - 1) / strides[k]);
        for (int i = 0; i < 3; i++) assert_finite(&c[i]);
        free_all(c, 3);
    }
}

static void test_degenerate(void **state)
{
    (void)state;
    gen_model m;
    assert_int_equal(gen_model_create(&m, &small_hp, 7, NULL), XTAL_OK);
    const gen_tensor *lh = gen_model_tensor(&m, "lattice_head.weight");
    assert_non_null(lh);
    for (size_t k = 0; k < lh->size; k++) m.params[lh->offset + k] *= 1e30f;
    gen_sampler_opts o = opts_T(10);
    xtal_crystal c[3];
    int st[3];
    memset(c, 0, sizeof c);
    xtal_err err;
    assert_int_equal(gen_sample(&m, NULL, &o, 5, 0, 0, 3, c, st, NULL, 1, NULL, &err), XTAL_OK);
    for (int i = 0; i < 3; i++) assert_int_equal(st[i], GEN_SAMPLE_DEGENERATE);
    free_all(c, 3);
    /* a zero lattice head: the lattice shrinks to nothing? it must not crash either way */
    for (size_t k = 0; k < lh->size; k++) m.params[lh->offset + k] = 0;
    memset(c, 0, sizeof c);
    assert_int_equal(gen_sample(&m, NULL, &o, 5, 0, 0, 3, c, st, NULL, 1, NULL, &err), XTAL_OK);
    free_all(c, 3);
    gen_model_free(&m);
}

/* An analytic denoiser for one known crystal (f0, L0, Z0): the exact wrapped-normal score of
 * the noised coordinates (normalized as in training), the exact lattice noise and logits that
 * name Z0. The reverse process must then return the crystal itself: this checks the signs and
 * scales of the predictor, the corrector and the ancestral lattice step. */
static const double f0[4][3] = {
    {0.1, 0.2, 0.3}, {0.5, 0.5, 0.5}, {0.9, 0.05, 0.7}, {0.3, 0.8, 0.0}};
static const double L0[9] = {4.1, 0.0, 0.0, 0.5, 3.9, 0.0, -0.3, 0.4, 5.2};
static const int Z0[4] = {3, 8, 8, 26};

static int oracle(void *ctx, const gen_batch *s, float *coord, float *lattice, float *logits,
                  xtal_err *err)
{
    const gen_diffusion *d = ctx;
    (void)err;
    double t_norm = -1, norm = 1;
    for (int b = 0; b < s->n_crystals; b++) {
        double t = s->t[b], sig = gen_sigma_at(d, t);
        if (t != t_norm) norm = sqrt(gen_wrapped_normal_score_norm(sig, d->n_images));
        t_norm = t;
        double ab = gen_alpha_bar_at(d, t), sN = gen_lattice_scale(d, 4);
        for (int e = 0; e < 9; e++)
            lattice[9 * b + e] =
                (float)((s->lattice[9 * b + e] / sN - sqrt(ab) * L0[e] / sN) / sqrt(1 - ab));
        for (int a = 0; a < 4; a++) {
            int g = s->offsets[b] + a;
            for (int c = 0; c < 3; c++)
                coord[3 * g + c] = (float)(gen_wrapped_normal_score(s->frac[3 * g + c] - f0[a][c],
                                                                    sig, d->n_images) /
                                           norm);
            for (int v = 0; v < 100; v++) logits[100 * g + v] = v + 1 == Z0[a] ? 30.0f : 0.0f;
        }
    }
    return XTAL_OK;
}

static void test_oracle(void **state)
{
    (void)state;
    const int strides[3] = {1, 10, 7};
    for (int k = 0; k < 3; k++) {
        gen_sampler_opts o = opts_T(200);
        o.natoms = 4;
        o.stride = strides[k];
        xtal_crystal c[4];
        int st[4];
        memset(c, 0, sizeof c);
        xtal_err err;
        assert_int_equal(gen_sample_eval(oracle, &o.diffusion, GEN_DEFAULT_TYPES, &o, 9, 0, 0, 4, c,
                                         st, NULL, 1, NULL, &err),
                         XTAL_OK);
        double worst_f = 0, worst_l = 0;
        for (int i = 0; i < 4; i++) {
            assert_int_equal(st[i], GEN_SAMPLE_OK);
            for (int a = 0; a < 4; a++) {
                assert_int_equal(c[i].Z[a], Z0[a]);
                for (int q = 0; q < 3; q++) {
                    double df = c[i].frac[3 * a + q] - f0[a][q];
                    df -= floor(df + 0.5);
                    worst_f = fmax(worst_f, fabs(df));
                }
            }
            for (int e = 0; e < 9; e++)
                worst_l = fmax(worst_l, fabs(c[i].lattice[e / 3][e % 3] - L0[e]));
        }
        print_message("oracle denoiser, T 200 stride %d: max |frac - f0| %.2e, max |L - L0| "
                      "%.2e A\n",
                      strides[k], worst_f, worst_l);
        assert_true(worst_f < 1e-4);
        assert_true(worst_l < 1e-3);
        free_all(c, 4);
    }
}

typedef struct {
    const gen_diffusion *d;
    double s_f, s_l, s_l1;
    long n_f, n_l, masked, atoms;
} marginal;

/* At the frame t = 0.5: deviations from the crystal, to compare with the forward marginals. */
static void marginal_frame(void *ctx, int step, double t, const gen_batch *s)
{
    marginal *mg = ctx;
    if (step != 100) return;
    double ab = gen_alpha_bar_at(mg->d, t), sN = gen_lattice_scale(mg->d, 4);
    for (int b = 0; b < s->n_crystals; b++) {
        for (int e = 0; e < 9; e++) {
            double r = s->lattice[9 * b + e] / sN - sqrt(ab) * L0[e] / sN;
            mg->s_l += r * r;
            mg->s_l1 += r;
            mg->n_l++;
        }
        for (int a = 0; a < 4; a++) {
            int g = s->offsets[b] + a;
            mg->masked += s->types[g] == GEN_MASK_TYPE;
            mg->atoms++;
            for (int c = 0; c < 3; c++) {
                double df = s->frac[3 * g + c] - f0[a][c];
                df -= floor(df + 0.5);
                mg->s_f += df * df;
                mg->n_f++;
            }
        }
    }
}

/* With the exact denoiser, the reverse process at t = 0.5 has the forward marginals: wrapped
 * displacement rms sigma(0.5), lattice residual variance 1 - alpha_bar(0.5), mask rate m(0.5). */
static void test_oracle_marginals(void **state)
{
    (void)state;
    gen_sampler_opts o = opts_T(200);
    o.natoms = 4;
    o.corrector =
        0; /* the predictor alone is exact for this Gaussian; see docs for the corrector */
    enum { C = 150 };
    xtal_crystal *c = calloc(C, sizeof *c);
    int st[C];
    marginal mg = {&o.diffusion, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(gen_sample_eval(oracle, &o.diffusion, GEN_DEFAULT_TYPES, &o, 21, 0, 0, C, c,
                                     st, marginal_frame, 100, &mg, NULL),
                     XTAL_OK);
    double rms_f = sqrt(mg.s_f / mg.n_f), sig = gen_sigma_at(&o.diffusion, 0.5);
    double var_l = mg.s_l / mg.n_l, want_l = 1 - gen_alpha_bar_at(&o.diffusion, 0.5);
    double rate = (double)mg.masked / mg.atoms, want_m = gen_mask_prob_at(&o.diffusion, 0.5);
    print_message("oracle marginals at t 0.5: frac rms %.4f (sigma %.4f), lattice residual var "
                  "%.4f (1 - abar %.4f), mean %.4f, mask rate %.3f (m %.3f)\n",
                  rms_f, sig, var_l, want_l, mg.s_l1 / mg.n_l, rate, want_m);
    assert_true(fabs(rms_f / sig - 1) < 4 / sqrt(2.0 * mg.n_f) + 0.02);
    assert_true(fabs(var_l / want_l - 1) < 4 * sqrt(2.0 / mg.n_l));
    assert_true(fabs(rate - want_m) < 4 * sqrt(want_m * (1 - want_m) / mg.atoms));
    free_all(c, C);
    /* with DiffCSP's corrector (step_lr 1e-5): Langevin at a fixed sigma with eta / sigma^2 =
     * step_lr / sigma_min^2 = 0.4 has a stationary rms (1 - 0.2)^(-1/2) = 1.118 times sigma */
    o.corrector = 1;
    memset(&mg, 0, sizeof mg);
    mg.d = &o.diffusion;
    memset(c, 0, C * sizeof *c);
    assert_int_equal(gen_sample_eval(oracle, &o.diffusion, GEN_DEFAULT_TYPES, &o, 21, 0, 0, C, c,
                                     st, marginal_frame, 100, &mg, NULL),
                     XTAL_OK);
    print_message("with the corrector: frac rms / sigma %.4f\n", sqrt(mg.s_f / mg.n_f) / sig);
    free_all(c, C);
    free(c);
}

/* A denoiser that predicts nothing: score 0, lattice noise 0, flat logits. */
static int null_net(void *ctx, const gen_batch *s, float *coord, float *lattice, float *logits,
                    xtal_err *err)
{
    (void)ctx, (void)err;
    memset(coord, 0, (size_t)s->n_atoms * 3 * sizeof *coord);
    memset(lattice, 0, (size_t)s->n_crystals * 9 * sizeof *lattice);
    memset(logits, 0, (size_t)s->n_atoms * 100 * sizeof *logits);
    return XTAL_OK;
}

static void sample_null(double noise_scale, xtal_crystal *c)
{
    gen_sampler_opts o = opts_T(50);
    o.natoms = 4;
    o.diffusion.sigma_max = 0.01; /* small displacements: no wrap across the cell */
    o.noise_scale = noise_scale;
    int st[3];
    memset(c, 0, 3 * sizeof *c);
    assert_int_equal(
        gen_sample_eval(null_net, NULL, GEN_DEFAULT_TYPES, &o, 5, 0, 0, 3, c, st, NULL, 1, NULL, NULL),
        XTAL_OK);
}

/* noise_scale multiplies every Gaussian term: with a null denoiser the reverse process is
 * linear in them, so the end state is x(0) + s (x(1) - x(0)) for frac and lattice alike. */
static void test_noise_scale(void **state)
{
    (void)state;
    xtal_crystal c0[3], c1[3], ch[3];
    sample_null(0.0, c0);
    sample_null(1.0, c1);
    sample_null(0.5, ch);
    double worst = 0, moved = 0;
    for (int i = 0; i < 3; i++) {
        for (int q = 0; q < 12; q++) {
            double d1 = c1[i].frac[q] - c0[i].frac[q], dh = ch[i].frac[q] - c0[i].frac[q];
            d1 -= floor(d1 + 0.5);
            dh -= floor(dh + 0.5);
            moved = fmax(moved, fabs(d1));
            worst = fmax(worst, fabs(dh - 0.5 * d1));
        }
        for (int e = 0; e < 9; e++) {
            double l0 = c0[i].lattice[e / 3][e % 3];
            double d1 = c1[i].lattice[e / 3][e % 3] - l0, dh = ch[i].lattice[e / 3][e % 3] - l0;
            worst = fmax(worst, fabs(dh - 0.5 * d1) / (1 + fabs(l0)));
        }
    }
    print_message("noise_scale 0.5 against 0 and 1: max deviation from linear %.2e (noise moved "
                  "frac up to %.2e)\n",
                  worst, moved);
    assert_true(moved > 1e-3);
    assert_true(worst < 1e-9);
    free_all(c0, 3);
    free_all(c1, 3);
    free_all(ch, 3);
    gen_sampler_opts o = opts_T(10);
    o.natoms = 4;
    o.noise_scale = 2.5;
    xtal_err err;
    int st[1];
    assert_int_not_equal(
        gen_sample_eval(null_net, NULL, GEN_DEFAULT_TYPES, &o, 5, 0, 0, 1, c0, st, NULL, 1, NULL, &err),
        XTAL_OK);
    assert_non_null(strstr(err.msg, "noise scale"));
}

static void test_errors(void **state)
{
    (void)state;
    gen_sampler_opts o = gen_sampler_opts_default();
    xtal_crystal c[1];
    int st[1];
    xtal_err err;
    memset(c, 0, sizeof c);
    assert_int_not_equal(gen_sample(&model, NULL, &o, 1, 0, 0, 1, c, st, NULL, 1, NULL, &err),
                         XTAL_OK);
    assert_non_null(strstr(err.msg, "histogram"));
    o.natoms = 3;
    o.stride = 0;
    assert_int_not_equal(gen_sample(&model, NULL, &o, 1, 0, 0, 1, c, st, NULL, 1, NULL, &err),
                         XTAL_OK);
    o.stride = 1;
    o.steps = 0;
    assert_int_not_equal(gen_sample(&model, NULL, &o, 1, 0, 0, 1, c, st, NULL, 1, NULL, &err),
                         XTAL_OK);
}

/* `druse sample` end to end (needs $DRUSE and $DRUSE_TEST_TMP, set by ctest). */
static void test_command(void **state)
{
    (void)state;
    const char *druse = getenv("DRUSE"), *tmp = getenv("DRUSE_TEST_TMP");
    if (!druse || !tmp || access(druse, X_OK) != 0) skip();
    char dir[512], mpath[600], cmd[16384], out1[600], out2[600], cifs[600];
    snprintf(dir, sizeof dir, "%s/test_gen_sampler.XXXXXX", tmp);
    assert_non_null(mkdtemp(dir));
    snprintf(mpath, sizeof mpath, "%s/m.h5", dir);
    assert_int_equal(gen_model_save(&model, mpath, NULL), XTAL_OK);
    snprintf(out1, sizeof out1, "%s/a.xyz", dir);
    snprintf(out2, sizeof out2, "%s/b.xyz", dir);
    snprintf(cifs, sizeof cifs, "%s/cifs", dir);
    snprintf(cmd, sizeof cmd,
             "%s sample --model %s --n 5 --seed 3 --steps 10 --batch 5 --elements Li,Fe,P,O "
             "--trajectory 5 -o %s 2>/dev/null && %s sample --model %s --n 5 --seed 3 --steps "
             "10 --batch 2 --elements Li,Fe,P,O -o %s 2>/dev/null && cmp -s %s %s && %s sample "
             "--model %s --n 6 --seed 3 --steps 10 --composition Fe2O3 -o %s 2>/dev/null",
             druse, mpath, out1, druse, mpath, out2, out1, out2, druse, mpath, cifs);
    assert_int_equal(system(cmd), 0);
    /* the CIFs written (degenerate samples are not) hold the composition */
    int nfiles = 0;
    for (int i = 0; i < 6; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/sample_%06d.cif", cifs, i);
        if (access(p, F_OK) != 0) continue;
        nfiles++;
        xtal_list l = {0};
        xtal_err err;
        int rc = xtal_read_cif_file(p, &l, &err);
        if (rc) print_message("%s\n", err.msg);
        assert_int_equal(rc, XTAL_OK);
        assert_int_equal(l.n, 1);
        char f[64];
        xtal_formula(&l.items[0], 1, f, sizeof f);
        assert_string_equal(f, "Fe2O3");
        xtal_list_free(&l);
    }
    print_message("druse sample: %d of 6 Fe2O3 samples written as CIF\n", nfiles);
    /* usage errors exit 2, a missing model exits 1 */
    snprintf(cmd, sizeof cmd, "%s sample --n 2 -o %s/x.xyz 2>/dev/null", druse, dir);
    int rc = system(cmd);
    assert_int_equal(WEXITSTATUS(rc), 2);
    snprintf(cmd, sizeof cmd, "%s sample --model %s/none.h5 --n 2 -o %s/x.xyz 2>/dev/null", druse,
             dir, dir);
    rc = system(cmd);
    assert_int_equal(WEXITSTATUS(rc), 1);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packing_determinism),
        cmocka_unit_test(test_composition),
        cmocka_unit_test(test_elements),
        cmocka_unit_test(test_no_nan),
        cmocka_unit_test(test_degenerate),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_oracle),
        cmocka_unit_test(test_oracle_marginals),
        cmocka_unit_test(test_noise_scale),
        cmocka_unit_test(test_command),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
