/* Lattice geometry: parameters, coordinate changes, minimum images, Niggli, density. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crystal/crystal.h"

char *progname = "test_lattice"; /* libcodcif needs it */

static void test_params_pymatgen_convention(void **state)
{
    (void)state;
    /* Reference: pymatgen 2022.11.7 Lattice.from_parameters(3, 4, 5, 80, 95, 100).matrix */
    const double want[3][3] = {{2.988584094275237, 0.0, -0.2614672282429747},
                               {-0.6364769540300975, 3.88747193601135, 0.6945927106677218},
                               {0.0, 0.0, 5.0}};
    double L[3][3], abc[3] = {3, 4, 5}, ang[3] = {80, 95, 100};
    assert_int_equal(xtal_lattice_from_params(abc, ang, L, NULL), XTAL_OK);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++) assert_true(fabs(L[i][k] - want[i][k]) < 1e-12);
    double abc2[3], ang2[3];
    xtal_lattice_to_params(L, abc2, ang2);
    for (int i = 0; i < 3; i++) {
        assert_true(fabs(abc2[i] - abc[i]) < 1e-12);
        assert_true(fabs(ang2[i] - ang[i]) < 1e-10);
    }
}

static void test_params_rejects_impossible_cells(void **state)
{
    (void)state;
    double L[3][3];
    xtal_err err;
    double abc[3] = {3, 4, 5};
    double flat[3] = {170, 170, 170}, zero[3] = {90, 90, 0}, sum[3] = {60, 60, 120};
    assert_int_equal(xtal_lattice_from_params(abc, flat, L, &err), XTAL_EINVALID);
    assert_non_null(strstr(err.msg, "do not form a cell"));
    assert_int_equal(xtal_lattice_from_params(abc, zero, L, &err), XTAL_EINVALID);
    assert_int_equal(xtal_lattice_from_params(abc, sum, L, &err), XTAL_EINVALID);
    double neg[3] = {3, -1, 5}, ok[3] = {90, 90, 90};
    assert_int_equal(xtal_lattice_from_params(neg, ok, L, &err), XTAL_EINVALID);
    double nan_abc[3] = {3, NAN, 5};
    assert_int_equal(xtal_lattice_from_params(nan_abc, ok, L, &err), XTAL_EINVALID);
}

static void test_inverse_and_frac_cart(void **state)
{
    (void)state;
    double L[3][3] = {{4.1, 0.3, -0.2}, {1.7, 3.9, 0.1}, {-0.8, 0.6, 6.2}}, inv[3][3];
    assert_int_equal(xtal_lattice_inverse(L, inv), 0);
    double f[3] = {0.13, -0.72, 1.4}, x[3], f2[3];
    xtal_frac_to_cart(L, f, x);
    xtal_cart_to_frac(inv, x, f2);
    for (int k = 0; k < 3; k++) assert_true(fabs(f[k] - f2[k]) < 1e-14);
    double recip[3][3];
    assert_int_equal(xtal_lattice_reciprocal(L, recip), 0);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            double d = L[i][0] * recip[j][0] + L[i][1] * recip[j][1] + L[i][2] * recip[j][2];
            assert_true(fabs(d - (i == j)) < 1e-14);
        }
    double singular[3][3] = {{1, 0, 0}, {2, 0, 0}, {0, 0, 1}};
    assert_int_equal(xtal_lattice_inverse(singular, inv), -1);
}

/* Brute force over a wide image shell: the reference for the exact minimum-image search. */
static double brute_distance(const xtal_crystal *c, int i, int j, int shell)
{
    double best = INFINITY;
    for (int n0 = -shell; n0 <= shell; n0++)
        for (int n1 = -shell; n1 <= shell; n1++)
            for (int n2 = -shell; n2 <= shell; n2++) {
                if (i == j && !n0 && !n1 && !n2) continue;
                double f[3], x[3];
                for (int k = 0; k < 3; k++) f[k] = c->frac[3 * j + k] - c->frac[3 * i + k];
                f[0] += n0, f[1] += n1, f[2] += n2;
                xtal_frac_to_cart(c->lattice, f, x);
                best = fmin(best, sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2]));
            }
    return best;
}

static double urand(unsigned *seed)
{
    return rand_r(seed) / (double)RAND_MAX;
}

static void test_min_image_skewed_cells(void **state)
{
    (void)state;
    unsigned seed = 12345;
    for (int trial = 0; trial < 60; trial++) {
        xtal_crystal c;
        assert_int_equal(xtal_crystal_init(&c, 4, NULL), XTAL_OK);
        /* Strongly skewed, unreduced bases: a short a, then b and c leaning far over it. */
        double L[3][3] = {
            {2.0 + urand(&seed), 0, 0},
            {(urand(&seed) - 0.5) * 12, 2.0 + 2 * urand(&seed), 0},
            {(urand(&seed) - 0.5) * 14, (urand(&seed) - 0.5) * 10, 2.5 + urand(&seed)}};
        memcpy(c.lattice, L, sizeof L);
        for (int a = 0; a < 4; a++) {
            c.Z[a] = 1 + a;
            for (int k = 0; k < 3; k++) c.frac[3 * a + k] = urand(&seed) * 3 - 1;
        }
        for (int i = 0; i < 4; i++)
            for (int j = i; j < 4; j++) {
                double d = xtal_min_image_distance(&c, i, j), ref = brute_distance(&c, i, j, 9);
                assert_true(fabs(d - ref) < 1e-10);
            }
        xtal_crystal_free(&c);
    }
}

static void test_min_distance_and_self_image(void **state)
{
    (void)state;
    xtal_crystal c;
    assert_int_equal(xtal_crystal_init(&c, 1, NULL), XTAL_OK);
    double L[3][3] = {{2.5, 0, 0}, {0, 3, 0}, {0, 0, 4}};
    memcpy(c.lattice, L, sizeof L);
    c.Z[0] = 6;
    assert_true(isinf(xtal_min_distance(&c, 0)));
    assert_true(fabs(xtal_min_distance(&c, 1) - 2.5) < 1e-12);
    xtal_crystal_free(&c);
}

static void test_niggli_keeps_structure(void **state)
{
    (void)state;
    xtal_crystal c, r;
    assert_int_equal(xtal_crystal_init(&c, 3, NULL), XTAL_OK);
    double L[3][3] = {{3, 0, 0}, {7.2, 3.1, 0}, {-5.5, 8.3, 3.3}};
    memcpy(c.lattice, L, sizeof L);
    double f[9] = {0.1, 0.2, 0.3, 0.55, 0.7, 0.05, 0.9, 0.4, 0.6};
    memcpy(c.frac, f, sizeof f);
    c.Z[0] = 8, c.Z[1] = 26, c.Z[2] = 8;
    assert_int_equal(xtal_crystal_copy(&r, &c, NULL), XTAL_OK);
    assert_int_equal(xtal_niggli_reduce(&r, 1e-5, NULL), XTAL_OK);
    assert_true(fabs(xtal_volume(&r) - xtal_volume(&c)) < 1e-9);
    double abc[3], ang[3];
    xtal_lattice_to_params(r.lattice, abc, ang);
    assert_true(abc[0] <= abc[1] + 1e-9 && abc[1] <= abc[2] + 1e-9);
    for (int i = 0; i < 3; i++)
        for (int j = i; j < 3; j++) {
            assert_true(fabs(xtal_min_image_distance(&r, i, j) - brute_distance(&c, i, j, 9)) <
                        1e-9);
            for (int k = 0; k < 3; k++)
                assert_true(r.frac[3 * i + k] >= 0 && r.frac[3 * i + k] < 1);
        }
    xtal_crystal_free(&c);
    xtal_crystal_free(&r);
}

static void test_density_and_formula(void **state)
{
    (void)state;
    xtal_crystal c;
    assert_int_equal(xtal_crystal_init(&c, 8, NULL), XTAL_OK);
    double L[3][3] = {{5.64, 0, 0}, {0, 5.64, 0}, {0, 0, 5.64}};
    memcpy(c.lattice, L, sizeof L);
    const double f[8][3] = {{0, 0, 0},    {0, .5, .5}, {.5, 0, .5}, {.5, .5, 0},
                            {.5, .5, .5}, {.5, 0, 0},  {0, .5, 0},  {0, 0, .5}};
    for (int a = 0; a < 8; a++) {
        c.Z[a] = a < 4 ? 11 : 17;
        memcpy(&c.frac[3 * a], f[a], sizeof f[a]);
    }
    /* pymatgen 2022.11.7: Structure(Lattice.cubic(5.64), rock salt).density */
    assert_true(fabs(xtal_density(&c) - 2.1637274930724866) < 1e-12);
    char buf[64];
    xtal_formula(&c, 1, buf, sizeof buf);
    assert_string_equal(buf, "NaCl");
    xtal_formula(&c, 0, buf, sizeof buf);
    assert_string_equal(buf, "Na4Cl4");
    c.Z[0] = c.Z[1] = 26, c.Z[2] = c.Z[3] = c.Z[4] = c.Z[5] = 8, c.Z[6] = 3, c.Z[7] = 15;
    xtal_formula(&c, 1, buf, sizeof buf);
    assert_string_equal(buf, "LiFe2PO4");
    xtal_crystal_free(&c);
}

static void test_wrap_and_validate(void **state)
{
    (void)state;
    xtal_crystal c;
    xtal_err err;
    assert_int_equal(xtal_crystal_init(&c, 2, NULL), XTAL_OK);
    double L[3][3] = {{3, 0, 0}, {0, 3, 0}, {0, 0, 3}};
    memcpy(c.lattice, L, sizeof L);
    c.Z[0] = 1, c.Z[1] = 2;
    double f[6] = {-1e-17, 1.0, 2.25, -0.75, 0.5, -3.0};
    memcpy(c.frac, f, sizeof f);
    xtal_wrap(&c);
    for (int i = 0; i < 6; i++) assert_true(c.frac[i] >= 0 && c.frac[i] < 1);
    assert_true(fabs(c.frac[2] - 0.25) < 1e-15 && fabs(c.frac[3] - 0.25) < 1e-15);
    strcpy(c.id, "x");
    assert_int_equal(xtal_crystal_validate(&c, &err), XTAL_OK);
    c.Z[1] = 104;
    assert_int_equal(xtal_crystal_validate(&c, &err), XTAL_EINVALID);
    c.Z[1] = 2;
    c.frac[4] = NAN;
    assert_int_equal(xtal_crystal_validate(&c, &err), XTAL_EINVALID);
    c.frac[4] = 0.5;
    c.lattice[2][2] = 0;
    assert_int_equal(xtal_crystal_validate(&c, &err), XTAL_EINVALID);
    assert_non_null(strstr(err.msg, "volume"));
    xtal_crystal_free(&c);
    assert_int_equal(xtal_crystal_init(&c, 1000000000, &err), XTAL_ELIMIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_pymatgen_convention),
        cmocka_unit_test(test_params_rejects_impossible_cells),
        cmocka_unit_test(test_inverse_and_frac_cart),
        cmocka_unit_test(test_min_image_skewed_cells),
        cmocka_unit_test(test_min_distance_and_self_image),
        cmocka_unit_test(test_niggli_keeps_structure),
        cmocka_unit_test(test_density_and_formula),
        cmocka_unit_test(test_wrap_and_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
