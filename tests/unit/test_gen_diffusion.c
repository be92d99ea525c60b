/* Diffusion processes and counter-based randomness (generator/rng.c, generator/diffusion.c):
 * Philox4x32-10 known answers, wrapped-normal score against the numerical derivative of its log
 * density, E[score^2], and noising statistics within Monte-Carlo error for a fixed seed. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crystal/crystal.h"
#include "generator/generator.h"

char *progname = "test"; /* libcodcif needs it */

/* Random123 1.14 examples/kat_vectors, the philox4x32 10 lines. */
static void test_philox_kat(void **state)
{
    (void)state;
    static const uint32_t v[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d,
         0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09,
         0x94fdcceb, 0x5001e420, 0x24126ea1}};
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        gen_philox4x32_10(v[i], v[i] + 4, out);
        for (int k = 0; k < 4; k++) assert_int_equal(out[k], v[i][6 + k]);
    }
}

static void test_rng_draws(void **state)
{
    (void)state;
    gen_rng_key k = {12345, 7, 3, 11, GEN_STREAM_PRED_F};
    enum { M = 200000 };
    double *z = malloc(M * sizeof(double)), *u = malloc(M * sizeof(double)), part[7];
    gen_rng_normal(&k, 0, M, z);
    gen_rng_uniform(&k, 0, M, u);
    /* draw j is the same whatever the window */
    gen_rng_normal(&k, 5, 7, part);
    for (int i = 0; i < 7; i++) assert_true(part[i] == z[5 + i]);
    gen_rng_uniform(&k, 1001, 7, part);
    for (int i = 0; i < 7; i++) assert_true(part[i] == u[1001 + i]);
    double s1 = 0, s2 = 0, us = 0;
    for (int i = 0; i < M; i++) {
        s1 += z[i];
        s2 += z[i] * z[i];
        us += u[i];
        assert_true(u[i] > 0 && u[i] < 1);
    }
    assert_true(fabs(s1 / M) < 5 / sqrt(M));
    assert_true(fabs(s2 / M - 1) < 5 * sqrt(2.0 / M));
    assert_true(fabs(us / M - 0.5) < 5 * sqrt(1 / 12.0 / M));
    /* another stream, step, index, batch or seed gives other numbers */
    gen_rng_key o[5] = {{12345, 7, 3, 11, GEN_STREAM_CORR_F},
                        {12345, 7, 3, 12, GEN_STREAM_PRED_F},
                        {12345, 7, 4, 11, GEN_STREAM_PRED_F},
                        {12345, 8, 3, 11, GEN_STREAM_PRED_F},
                        {12346, 7, 3, 11, GEN_STREAM_PRED_F}};
    for (int i = 0; i < 5; i++) {
        gen_rng_normal(&o[i], 0, 1, part);
        assert_true(part[0] != z[0]);
    }
    free(z);
    free(u);
}

static void test_wrapped_normal_score(void **state)
{
    (void)state;
    const double sig[] = {0.005, 0.01, 0.03, 0.1, 0.2, 0.35, 0.5};
    double worst = 0;
    for (size_t s = 0; s < sizeof sig / sizeof sig[0]; s++) {
        for (int q = -60; q <= 60; q++) {
            double x = q / 100.0 * (sig[s] < 0.1 ? 4 * sig[s] / 0.6 : 1.0) + 1e-3 * sig[s];
            double h = 1e-4 * sig[s];
            /* reference: 50 images */
            double num = (gen_wrapped_normal_logp(x + h, sig[s], 50) -
                          gen_wrapped_normal_logp(x - h, sig[s], 50)) /
                         (2 * h);
            double sc = gen_wrapped_normal_score(x, sig[s], gen_diffusion_default().n_images);
            double e = fabs(sc - num) / fmax(1.0, fabs(num));
            if (e > worst) worst = e;
            /* periodic */
            assert_true(fabs(gen_wrapped_normal_score(x + 3, sig[s], 5) - sc) <=
                        1e-9 * fmax(1, fabs(sc)));
        }
        /* the density integrates to 1 over a period */
        double tot = 0;
        for (int q = 0; q < 20000; q++)
            tot += exp(gen_wrapped_normal_logp(-0.5 + q / 20000.0, sig[s], 5)) / 20000.0;
        assert_true(fabs(tot - 1) < 1e-9);
    }
    print_message("wrapped-normal score vs numerical derivative (50 images): worst %.2e\n", worst);
    assert_true(worst < 1e-6);
}

static void test_score_norm(void **state)
{
    (void)state;
    const double sig[] = {0.01, 0.06, 0.0626, 0.15, 0.3, 0.5};
    enum { M = 200000 };
    double *z = malloc(M * sizeof(double));
    gen_rng_key k = {99, 0, 0, 0, 1};
    gen_rng_normal(&k, 0, M, z);
    for (size_t s = 0; s < sizeof sig / sizeof sig[0]; s++) {
        double e = gen_wrapped_normal_score_norm(sig[s], 5);
        double s1 = 0, s2 = 0;
        for (int i = 0; i < M; i++) {
            double v = gen_wrapped_normal_score(sig[s] * z[i], sig[s], 5);
            s1 += v * v;
            s2 += v * v * v * v;
        }
        double mean = s1 / M, se = sqrt((s2 / M - mean * mean) / M);
        print_message("sigma %.4f: E[score^2] quadrature %.6g, Monte Carlo %.6g +- %.2g\n", sig[s],
                      e, mean, se);
        assert_true(fabs(e - mean) < 5 * se);
    }
    /* the 256-point rule against a 20000-point one */
    const double sq[] = {0.0626, 0.1, 0.2, 0.5};
    for (int s = 0; s < 4; s++) {
        double fine = 0;
        for (int q = 0; q < 20000; q++) {
            double x = -0.5 + q / 20000.0, v = gen_wrapped_normal_score(x, sq[s], 5);
            fine += exp(gen_wrapped_normal_logp(x, sq[s], 5)) * v * v / 20000.0;
        }
        assert_true(fabs(gen_wrapped_normal_score_norm(sq[s], 5) / fine - 1) < 1e-10);
    }
    /* the two branches agree at the switch */
    double a = gen_wrapped_normal_score_norm(0.0624999, 5) * 0.0624999 * 0.0624999;
    double b = gen_wrapped_normal_score_norm(0.0625001, 5) * 0.0625001 * 0.0625001;
    assert_true(fabs(a - b) < 1e-9);
    free(z);
}

static void test_schedules(void **state)
{
    (void)state;
    gen_diffusion d = gen_diffusion_default();
    assert_int_equal(gen_diffusion_check(&d, NULL), XTAL_OK);
    assert_true(fabs(gen_sigma_at(&d, 0) - 0.005) < 1e-15);
    assert_true(fabs(gen_sigma_at(&d, 1) - 0.5) < 1e-12);
    assert_true(fabs(gen_sigma_at(&d, 0.5) - 0.05) < 1e-12); /* log-spaced */
    assert_true(gen_alpha_bar_at(&d, 0) == 1.0);
    assert_true(fabs(gen_alpha_bar_at(&d, 1) - d.abar_min) < 1e-15);
    double prev = 1;
    for (int i = 1; i <= 100; i++) {
        double a = gen_alpha_bar_at(&d, i / 100.0);
        assert_true(a <= prev);
        prev = a;
    }
    assert_true(gen_mask_prob_at(&d, 0) == 0 && gen_mask_prob_at(&d, 1) == 1);
    assert_true(fabs(gen_mask_prob_at(&d, 0.5) - (1 - cos(M_PI / 4))) < 1e-15);
    d.mask_schedule = GEN_MASK_LINEAR;
    assert_true(gen_mask_prob_at(&d, 0.3) == 0.3);
    assert_true(fabs(gen_lattice_scale(&d, 10) - cbrt(200.0)) < 1e-12);
    d.sigma_min = -1;
    xtal_err err;
    assert_int_not_equal(gen_diffusion_check(&d, &err), XTAL_OK);
}

/* B crystals of n atoms each at time t. */
typedef struct {
    int *offsets, *types;
    float *frac, *lattice, *t;
    gen_batch b;
} clean_batch;

static void make_clean(clean_batch *c, int B, int n, float t)
{
    c->offsets = malloc((size_t)(B + 1) * sizeof(int));
    c->types = malloc((size_t)B * n * sizeof(int));
    c->frac = malloc((size_t)B * n * 3 * sizeof(float));
    c->lattice = malloc((size_t)B * 9 * sizeof(float));
    c->t = malloc((size_t)B * sizeof(float));
    static const float L0[9] = {4.0f, 0.1f, 0.0f, -0.5f, 5.0f, 0.2f, 0.3f, 0.0f, 6.0f};
    for (int b = 0; b <= B; b++) c->offsets[b] = b * n;
    for (int b = 0; b < B; b++) {
        memcpy(c->lattice + 9 * b, L0, sizeof L0);
        c->t[b] = t;
    }
    for (int i = 0; i < B * n; i++) {
        c->types[i] = 1 + (i * 7) % 90;
        for (int k = 0; k < 3; k++)
            c->frac[3 * i + k] = (float)((i * 0.137 + k * 0.29) - floor(i * 0.137 + k * 0.29));
    }
    gen_batch g = {B, B * n, c->offsets, c->types, c->frac, c->lattice, c->t};
    c->b = g;
}

static void free_clean(clean_batch *c)
{
    free(c->offsets);
    free(c->types);
    free(c->frac);
    free(c->lattice);
    free(c->t);
}

static void test_noise_statistics(void **state)
{
    (void)state;
    gen_diffusion d = gen_diffusion_default();
    xtal_err err;
    const int B = 4000, n = 4;
    const float ts[] = {0.2f, 0.5f, 0.9f};
    for (size_t it = 0; it < 3; it++) {
        clean_batch c;
        make_clean(&c, B, n, ts[it]);
        gen_noised nz;
        memset(&nz, 0, sizeof nz);
        int rc = gen_diffusion_noise_batch(&d, &c.b, 2024, 17, NULL, &nz, &err);
        assert_int_equal(rc, XTAL_OK);
        double t = ts[it], ab = gen_alpha_bar_at(&d, t), sN = gen_lattice_scale(&d, n);
        /* lattice: mean sqrt(abar) L0, variance (1 - abar) sN^2 per element */
        double worst_m = 0, worst_v = 0;
        for (int e = 0; e < 9; e++) {
            double s1 = 0, s2 = 0;
            for (int b = 0; b < B; b++) {
                double v = nz.lattice[9 * b + e];
                s1 += v;
                s2 += v * v;
            }
            double mean = s1 / B, var = s2 / B - mean * mean;
            double want_m = sqrt(ab) * c.lattice[e], want_v = (1 - ab) * sN * sN;
            double zm = fabs(mean - want_m) / sqrt(want_v / B);
            double zv = fabs(var - want_v) / (want_v * sqrt(2.0 / B));
            if (zm > worst_m) worst_m = zm;
            if (zv > worst_v) worst_v = zv;
        }
        /* types: kept share p_keep, mask rate m(t) among the others */
        long kept = 0, masked = 0, others = 0;
        for (int b = 0; b < B; b++) {
            kept += nz.kept[b];
            for (int i = b * n; i < (b + 1) * n; i++) {
                assert_int_equal(nz.target_types[i], c.types[i]);
                if (nz.kept[b]) {
                    assert_int_equal(nz.types[i], c.types[i]);
                } else {
                    others++;
                    masked += nz.types[i] == GEN_MASK_TYPE;
                    if (nz.types[i] != GEN_MASK_TYPE) assert_int_equal(nz.types[i], c.types[i]);
                }
            }
        }
        double pk = d.p_keep_types, pm = gen_mask_prob_at(&d, t);
        double zk = fabs((double)kept / B - pk) / sqrt(pk * (1 - pk) / B);
        double zmask = fabs((double)masked / others - pm) / sqrt(pm * (1 - pm) / others);
        /* coordinates: wrapped displacement, normalized target has E[target^2] = 1 */
        double sigma = gen_sigma_at(&d, t), s1 = 0, s2 = 0, q1 = 0, q2 = 0;
        long M = (long)B * n * 3;
        for (long i = 0; i < M; i++) {
            double disp = (double)nz.frac[i] - c.frac[i];
            disp -= floor(disp + 0.5);
            s1 += disp * disp;
            double tg = nz.target_coord[i];
            q1 += tg * tg;
            q2 += tg * tg * tg * tg;
            assert_true(nz.frac[i] >= 0 && nz.frac[i] < 1);
        }
        double qm = q1 / M, qse = sqrt((q2 / M - qm * qm) / M);
        double zq = fabs(qm - 1) / qse;
        (void)s2;
        print_message("t %.1f: lattice mean/var worst z %.2f/%.2f, keep z %.2f, mask rate %.4f "
                      "(want %.4f, z %.2f), E[target^2] %.4f (z %.2f), rms disp %.4g (sigma "
                      "%.4g)\n",
                      t, worst_m, worst_v, zk, (double)masked / others, pm, zmask, qm, zq,
                      sqrt(s1 / M), sigma);
        assert_true(worst_m < 4.5 && worst_v < 4.5 && zk < 4.5 && zmask < 4.5 && zq < 4.5);
        if (sigma < 0.1) assert_true(fabs(sqrt(s1 / M) / sigma - 1) < 0.02);
        gen_noised_free(&nz);
        free_clean(&c);
    }
}

/* A crystal's noise depends on (seed, step, id), not on its place in the batch. */
static void test_noise_ids(void **state)
{
    (void)state;
    gen_diffusion d = gen_diffusion_default();
    clean_batch c;
    make_clean(&c, 6, 3, 0.6f);
    uint32_t ids[6] = {10, 11, 12, 13, 14, 15};
    gen_noised a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    assert_int_equal(gen_diffusion_noise_batch(&d, &c.b, 5, 3, ids, &a, NULL), XTAL_OK);
    /* crystals 2..3 alone, as ids 12, 13 */
    gen_batch sub = c.b;
    int off2[3] = {0, 3, 6};
    sub.n_crystals = 2;
    sub.n_atoms = 6;
    sub.offsets = off2;
    sub.types = c.types + 6;
    sub.frac = c.frac + 18;
    sub.lattice = c.lattice + 18;
    sub.t = c.t + 2;
    assert_int_equal(gen_diffusion_noise_batch(&d, &sub, 5, 3, ids + 2, &b, NULL), XTAL_OK);
    assert_memory_equal(b.frac, a.frac + 18, 18 * sizeof(float));
    assert_memory_equal(b.target_coord, a.target_coord + 18, 18 * sizeof(float));
    assert_memory_equal(b.lattice, a.lattice + 18, 18 * sizeof(float));
    assert_memory_equal(b.types, a.types + 6, 6 * sizeof(int));
    assert_true(b.batch.types == b.types && b.targets.coord == b.target_coord);
    /* another step differs */
    assert_int_equal(gen_diffusion_noise_batch(&d, &sub, 5, 4, ids + 2, &b, NULL), XTAL_OK);
    assert_true(memcmp(b.frac, a.frac + 18, 18 * sizeof(float)) != 0);
    /* bad input */
    xtal_err err;
    c.t[0] = 1.5f;
    assert_int_not_equal(gen_diffusion_noise_batch(&d, &c.b, 5, 3, ids, &a, &err), XTAL_OK);
    gen_noised_free(&a);
    gen_noised_free(&b);
    free_clean(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_kat),
        cmocka_unit_test(test_rng_draws),
        cmocka_unit_test(test_wrapped_normal_score),
        cmocka_unit_test(test_score_norm),
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_noise_statistics),
        cmocka_unit_test(test_noise_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
