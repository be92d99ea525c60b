/* relax/: derivatives against finite differences, the energy against a brute-force reference,
 * the matrix exponential, the Verlet skin, and FIRE's outcomes on good and bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relax/relax.h"
#include "relax/relax_internal.h"

char *progname = "test";

/* --------------------------------------------------------------- helpers */

static double urand(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return ((*state >> 8) & 0xffffff) / (double)0x1000000;
}

/* A random cell: lengths in [len_lo, len_lo + 1.5] A, shear up to `skew`, atoms from a mixed
 * element set, no two sites (or images) closer than 1.2 A. */
static void random_cell(xtal_crystal *c, int natoms, double len_lo, double skew, unsigned seed)
{
    static const int elems[] = {8, 14, 26, 11, 17, 1, 6, 22, 56, 79};
    xtal_err err;
    unsigned st = seed;
    assert_int_equal(xtal_crystal_init(c, natoms, &err), XTAL_OK);
    for (int tries = 0; tries < 1000; tries++) {
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
                c->lattice[a][b] = a == b ? len_lo + 1.5 * urand(&st) : skew * (2 * urand(&st) - 1);
        for (int i = 0; i < natoms; i++) {
            c->Z[i] = elems[(int)(urand(&st) * 10) % 10];
            for (int k = 0; k < 3; k++) c->frac[3 * i + k] = urand(&st);
        }
        if (xtal_min_distance(c, 1) > 1.2) return;
    }
    fail_msg("no random cell without overlaps");
}

static double energy_of(const rlx_potential *pot, const xtal_crystal *c)
{
    double e;
    xtal_err err;
    assert_int_equal(rlx_evaluate(pot, c, &e, NULL, NULL, NULL, &err), XTAL_OK);
    return e;
}

static double max_abs(const double *v, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
    return m;
}

/* Forces = -dE/dx and stress = (1/V) dE/d(strain) by central differences, 1e-5 relative. */
static void check_derivatives(const rlx_potential *pot, xtal_crystal *c)
{
    int n = c->natoms;
    double e, stress[3][3], inv[3][3];
    double *f = calloc(3 * n, sizeof *f), *fnum = calloc(3 * n, sizeof *fnum);
    xtal_err err;
    assert_int_equal(rlx_evaluate(pot, c, &e, f, stress, NULL, &err), XTAL_OK);
    assert_int_equal(xtal_lattice_inverse(c->lattice, inv), 0);
    const double h = 1e-5; /* Angstrom */
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) {
            double save[3], d[3] = {0};
            memcpy(save, c->frac + 3 * i, sizeof save);
            d[k] = h;
            double df[3];
            xtal_cart_to_frac(inv, d, df);
            for (int q = 0; q < 3; q++) c->frac[3 * i + q] = save[q] + df[q];
            double ep = energy_of(pot, c);
            for (int q = 0; q < 3; q++) c->frac[3 * i + q] = save[q] - df[q];
            double em = energy_of(pot, c);
            memcpy(c->frac + 3 * i, save, sizeof save);
            fnum[3 * i + k] = -(ep - em) / (2 * h);
        }
    double scale = fmax(max_abs(f, 3 * n), 1e-3);
    for (int i = 0; i < 3 * n; i++)
        if (fabs(f[i] - fnum[i]) > 1e-5 * scale)
            fail_msg("%s: force %d: analytic %.10g numeric %.10g", rlx_potential_name(pot), i, f[i],
                     fnum[i]);
    /* strain: L' = L (I + eps), fractional coordinates fixed */
    double L0[3][3], V = xtal_lattice_volume(c->lattice), snum[3][3];
    memcpy(L0, c->lattice, sizeof L0);
    for (int a = 0; a < 3; a++)
        for (int b = a; b < 3; b++) {
            double es[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                double eps[3][3] = {{0}};
                double t = sgn ? -h : h;
                eps[a][b] += a == b ? t : t / 2;
                if (a != b) eps[b][a] += t / 2;
                for (int r = 0; r < 3; r++)
                    for (int q = 0; q < 3; q++)
                        c->lattice[r][q] = L0[r][q] + L0[r][0] * eps[0][q] + L0[r][1] * eps[1][q] +
                                           L0[r][2] * eps[2][q];
                es[sgn] = energy_of(pot, c);
            }
            memcpy(c->lattice, L0, sizeof L0);
            snum[a][b] = snum[b][a] = (es[0] - es[1]) / (2 * h) / fabs(V);
        }
    double smax = fmax(max_abs(&stress[0][0], 9), 1e-5);
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            if (fabs(stress[a][b] - snum[a][b]) > 1e-5 * smax)
                fail_msg("%s: stress %d%d: analytic %.10g numeric %.10g", rlx_potential_name(pot),
                         a, b, stress[a][b], snum[a][b]);
    free(f);
    free(fnum);
}

/* ------------------------------------------------------------------ tests */

static void test_derivatives(void **state)
{
    (void)state;
    const char *specs[] = {"mp20", "uff-lj", "lj:sigma=1.6,epsilon=0.5,rc=5.5",
                           "lj:sigma=1.6,epsilon=0.5,rc=5.5,shift=1",
                           "mp20:rc_factor=1.6,r_scale=1.1"};
    xtal_err err;
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        rlx_potential *pot;
        assert_int_equal(rlx_potential_parse(specs[s], &pot, &err), XTAL_OK);
        for (unsigned seed = 1; seed <= 6; seed++) {
            xtal_crystal c;
            /* odd seeds: skewed cells of 2.5-4 A, smaller than every cutoff used here */
            if (seed % 2)
                random_cell(&c, 1 + seed % 4, 2.5, 1.2, seed * 7919);
            else
                random_cell(&c, 4 + seed, 4.0, 0.8, seed * 104729);
            check_derivatives(pot, &c);
            xtal_crystal_free(&c);
        }
        rlx_potential_free(pot);
    }
}

/* Plain LJ against a direct double sum over a generous fixed block of images. */
static void test_energy_reference(void **state)
{
    (void)state;
    rlx_potential *pot;
    xtal_err err;
    const double sigma = 1.5, eps = 0.7, rc = 6.0;
    assert_int_equal(rlx_potential_parse("lj:sigma=1.5,epsilon=0.7,rc=6", &pot, &err), XTAL_OK);
    for (unsigned seed = 1; seed <= 4; seed++) {
        xtal_crystal c;
        random_cell(&c, 3 + seed, 2.6, 0.9, seed * 31337);
        double ref = 0, e_rc = 4 * eps * (pow(sigma / rc, 12) - pow(sigma / rc, 6));
        const int M = 8; /* cells >= 2.6 A with shear <= 0.9: 8 images reach past 6 A */
        for (int i = 0; i < c.natoms; i++)
            for (int j = 0; j < c.natoms; j++)
                for (int n0 = -M; n0 <= M; n0++)
                    for (int n1 = -M; n1 <= M; n1++)
                        for (int n2 = -M; n2 <= M; n2++) {
                            if (i == j && !n0 && !n1 && !n2) continue;
                            double s[3] = {c.frac[3 * j] - c.frac[3 * i] + n0,
                                           c.frac[3 * j + 1] - c.frac[3 * i + 1] + n1,
                                           c.frac[3 * j + 2] - c.frac[3 * i + 2] + n2};
                            double d[3];
                            xtal_frac_to_cart(c.lattice, s, d);
                            double r = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
                            if (r < rc)
                                ref += 0.5 *
                                       (4 * eps * (pow(sigma / r, 12) - pow(sigma / r, 6)) - e_rc);
                        }
        double e = energy_of(pot, &c);
        assert_true(fabs(e - ref) <= 1e-10 * fmax(1.0, fabs(ref)));
        xtal_crystal_free(&c);
    }
    rlx_potential_free(pot);
}

static void test_expm(void **state)
{
    (void)state;
    /* exp of a diagonal and of a nilpotent matrix are known in closed form */
    double D[9] = {0.3, 0, 0, 0, -1.2, 0, 0, 0, 7.5}, E[9];
    rlx_expm(3, D, E);
    assert_true(fabs(E[0] - exp(0.3)) < 1e-14 * exp(0.3));
    assert_true(fabs(E[4] - exp(-1.2)) < 1e-14);
    assert_true(fabs(E[8] - exp(7.5)) < 1e-12 * exp(7.5));
    double N[9] = {0, 2, 3, 0, 0, 5, 0, 0, 0}; /* exp = I + N + N^2/2 */
    rlx_expm(3, N, E);
    double want[9] = {1, 2, 3 + 5, 0, 1, 5, 0, 0, 1};
    for (int i = 0; i < 9; i++) assert_true(fabs(E[i] - want[i]) < 1e-13);
    /* Frechet derivative against central differences */
    double A[3][3] = {{0.1, -0.3, 0.05}, {0.2, -0.1, 0.4}, {-0.15, 0.25, 0.3}};
    double dir[3][3] = {{0.3, 0.1, -0.2}, {0.0, 0.5, 0.1}, {0.2, -0.4, 0.1}}, Lf[3][3];
    rlx_expm_frechet3(A, dir, Lf);
    const double h = 1e-6;
    double Ap[9], Am[9], Ep[9], Em[9];
    for (int i = 0; i < 9; i++) {
        Ap[i] = (&A[0][0])[i] + h * (&dir[0][0])[i];
        Am[i] = (&A[0][0])[i] - h * (&dir[0][0])[i];
    }
    rlx_expm(3, Ap, Ep);
    rlx_expm(3, Am, Em);
    for (int i = 0; i < 9; i++)
        assert_true(fabs((Ep[i] - Em[i]) / (2 * h) - (&Lf[0][0])[i]) < 1e-8);
}

/* The Verlet list with a skin, after moves and a strain, gives what a fresh list gives. */
static void test_skin(void **state)
{
    (void)state;
    rlx_potential *pot;
    xtal_err err;
    assert_int_equal(rlx_potential_new("uff-lj", &pot, &err), XTAL_OK);
    xtal_crystal c;
    random_cell(&c, 8, 3.0, 0.7, 4242);
    rlx_workspace *ws = rlx_workspace_new();
    assert_int_equal(rlx_ws_prepare(ws, pot, c.natoms, c.Z, &err), XTAL_OK);
    unsigned st = 99;
    for (int it = 0; it < 40; it++) {
        double e_skin, e_fresh;
        assert_int_equal(
            rlx_ws_compute(ws, c.natoms, c.frac, c.lattice, 1.0, &e_skin, NULL, NULL, &err),
            XTAL_OK);
        e_fresh = energy_of(pot, &c);
        assert_true(fabs(e_skin - e_fresh) <= 1e-9 * fmax(1.0, fabs(e_fresh)));
        for (int i = 0; i < 3 * c.natoms; i++) c.frac[i] += 0.01 * (urand(&st) - 0.5);
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) c.lattice[a][b] *= 1 + 0.004 * (urand(&st) - 0.5);
    }
    rlx_workspace_free(ws);
    xtal_crystal_free(&c);
    rlx_potential_free(pot);
}

/* Rock salt NaCl, shaken: relaxes, converges, lowers the energy; fixed cell keeps the cell. */
static void test_fire_converges(void **state)
{
    (void)state;
    rlx_potential *pot;
    xtal_err err;
    assert_int_equal(rlx_potential_new(NULL, &pot, &err), XTAL_OK);
    for (int fixed = 0; fixed < 2; fixed++) {
        xtal_crystal c;
        assert_int_equal(xtal_crystal_init(&c, 8, &err), XTAL_OK);
        const double a = 5.64;
        static const double base[4][3] = {{0, 0, 0}, {0, .5, .5}, {.5, 0, .5}, {.5, .5, 0}};
        unsigned st = 7;
        for (int i = 0; i < 8; i++) {
            c.Z[i] = i < 4 ? 11 : 17;
            for (int k = 0; k < 3; k++)
                c.frac[3 * i + k] =
                    base[i % 4][k] + (i < 4 ? 0 : 0.5) * (k == 0) + 0.02 * (urand(&st) - 0.5);
        }
        for (int k = 0; k < 3; k++) c.lattice[k][k] = a * (1 + 0.03 * k);
        rlx_options o;
        rlx_options_default(&o);
        if (fixed) o.cell_filter = RLX_CELL_FIXED;
        rlx_outcome out;
        double V0 = xtal_volume(&c);
        assert_int_equal(rlx_relax(pot, &o, &c, &out, NULL, &err), XTAL_OK);
        assert_int_equal(out.stop, RLX_STOP_CONVERGED);
        assert_true(out.converged && out.steps <= o.max_steps);
        assert_true(out.energy_eV <= out.energy_initial_eV + 1e-12);
        assert_true(out.max_force_eV_A < o.fmax_eV_A);
        if (fixed)
            assert_true(fabs(xtal_volume(&c) - V0) < 1e-9 * V0);
        else
            assert_true(out.max_stress_eV_A3 < o.max_stress_eV_A3);
        xtal_crystal_free(&c);
    }
    rlx_potential_free(pot);
}

static void relax_bad(xtal_crystal *c, const char *spec, int max_steps, rlx_outcome *out)
{
    rlx_potential *pot;
    xtal_err err;
    assert_int_equal(rlx_potential_parse(spec, &pot, &err), XTAL_OK);
    rlx_options o;
    rlx_options_default(&o);
    o.max_steps = max_steps;
    assert_int_equal(rlx_relax(pot, &o, c, out, NULL, &err), XTAL_OK);
    assert_true(out->steps <= max_steps);
    assert_true(out->message[0] != 0);
    rlx_potential_free(pot);
}

static void test_bad_input(void **state)
{
    (void)state;
    const char *specs[] = {"mp20", "uff-lj", "lj:sigma=2,epsilon=1,rc=6"};
    for (size_t s = 0; s < 3; s++) {
        xtal_crystal c;
        rlx_outcome out;
        /* two atoms 0.01 A apart */
        random_cell(&c, 4, 4.0, 0.3, 555);
        double inv[3][3], d[3] = {0.01, 0, 0}, df[3];
        xtal_lattice_inverse(c.lattice, inv);
        xtal_cart_to_frac(inv, d, df);
        for (int k = 0; k < 3; k++) c.frac[3 + k] = c.frac[k] + df[k];
        relax_bad(&c, specs[s], 300, &out);
        assert_true(out.stop != RLX_STOP_INVALID_INPUT);
        /* exactly on top of each other: no direction to push, a clean stop */
        for (int k = 0; k < 3; k++) c.frac[3 + k] = c.frac[k];
        relax_bad(&c, specs[s], 300, &out);
        assert_true(out.stop == RLX_STOP_NAN);
        /* a flat cell */
        for (int k = 0; k < 3; k++) c.lattice[2][k] = 0.5 * c.lattice[0][k] + 0.5 * c.lattice[1][k];
        relax_bad(&c, specs[s], 300, &out);
        assert_int_equal(out.stop, RLX_STOP_INVALID_INPUT);
        xtal_crystal_free(&c);
        /* a NaN coordinate */
        random_cell(&c, 3, 4.0, 0.3, 556);
        c.frac[4] = NAN;
        relax_bad(&c, specs[s], 300, &out);
        assert_int_equal(out.stop, RLX_STOP_INVALID_INPUT);
        xtal_crystal_free(&c);
        /* a nearly flat cell (0.2 A thick): the guards, not a hang or an explosion of memory */
        random_cell(&c, 3, 4.0, 0.3, 557);
        for (int k = 0; k < 3; k++) c.lattice[2][k] *= 0.05;
        relax_bad(&c, specs[s], 300, &out);
        xtal_crystal_free(&c);
    }
}

/* 500 random atoms in a box, some too close: an outcome within the step bound. */
static void test_500_atoms(void **state)
{
    (void)state;
    xtal_crystal c;
    xtal_err err;
    assert_int_equal(xtal_crystal_init(&c, 500, &err), XTAL_OK);
    unsigned st = 12345;
    for (int i = 0; i < 500; i++) {
        c.Z[i] = (i % 3) ? 8 : 14;
        for (int k = 0; k < 3; k++) c.frac[3 * i + k] = urand(&st);
    }
    for (int k = 0; k < 3; k++) c.lattice[k][k] = 18.0;
    rlx_outcome out;
    relax_bad(&c, "mp20", 200, &out);
    assert_true(out.stop == RLX_STOP_CONVERGED || out.stop == RLX_STOP_MAX_STEPS);
    assert_true(isfinite(out.energy_per_atom_eV));
    xtal_crystal_free(&c);
}

static void test_params(void **state)
{
    (void)state;
    rlx_potential *pot;
    xtal_err err;
    assert_int_not_equal(rlx_potential_parse("nope", &pot, &err), XTAL_OK);
    assert_int_not_equal(rlx_potential_parse("lj:sigma=x", &pot, &err), XTAL_OK);
    assert_int_not_equal(rlx_potential_parse("lj:bogus=1", &pot, &err), XTAL_OK);
    assert_int_not_equal(rlx_potential_parse("lj:sigma=-1", &pot, &err), XTAL_OK);
    assert_int_equal(rlx_potential_parse("uff-lj:r_scale=0.9", &pot, &err), XTAL_OK);
    rlx_pair p;
    const xtal_element *fe = xtal_element_by_Z(26), *o = xtal_element_by_Z(8);
    assert_int_equal(rlx_pair_params(pot, 26, 8, &p), XTAL_OK);
    assert_true(fabs(p.rmin_A - 0.9 * sqrt(fe->uff_x1 * o->uff_x1)) < 1e-12);
    assert_true(fabs(p.depth_eV - sqrt(fe->uff_D1 * o->uff_D1)) < 1e-12);
    rlx_potential_free(pot);
    /* the fitted table covers Si-O near its bond length */
    assert_int_equal(rlx_potential_new("mp20", &pot, &err), XTAL_OK);
    assert_int_equal(rlx_pair_params(pot, 14, 8, &p), XTAL_OK);
    assert_int_equal(p.source, 1);
    assert_true(p.rmin_A > 1.55 && p.rmin_A < 1.7);
    /* a pair override file */
    char path[] = "/tmp/druse_test_pairsXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *fp = fdopen(fd, "w");
    fputs("# test\nSi O 1.7 0.5\n", fp);
    fclose(fp);
    assert_int_equal(rlx_potential_load_pairs(pot, path, &err), XTAL_OK);
    assert_int_equal(rlx_pair_params(pot, 8, 14, &p), XTAL_OK);
    assert_true(p.source == 2 && p.rmin_A == 1.7 && p.depth_eV == 0.5);
    fp = fopen(path, "w");
    fputs("Si Xx 1.7 0.5\n", fp);
    fclose(fp);
    assert_int_not_equal(rlx_potential_load_pairs(pot, path, &err), XTAL_OK);
    remove(path);
    rlx_potential_free(pot);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_derivatives),    cmocka_unit_test(test_energy_reference),
        cmocka_unit_test(test_expm),           cmocka_unit_test(test_skin),
        cmocka_unit_test(test_fire_converges), cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_500_atoms),      cmocka_unit_test(test_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
