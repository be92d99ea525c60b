/* The structure matcher, fingerprints and the dedup index (filters/match*.c): hand-made cases
 * with reference values from pymatgen 2022.11 StructureMatcher() (defaults), the internals
 * (assignment, primitive reduction), the HDF5 round trip, and bad structures. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "filters/filters.h"
#include "filters/match_internal.h"

char *progname = "test"; /* libcodcif needs it */

#define A_NACL 5.64 /* Angstrom */

/* ---------------------------------------------------------------- builders */

static void make(xtal_crystal *c, const char *id, int n, const int *Z, const double *frac,
                 const double L[3][3])
{
    assert_int_equal(xtal_crystal_init(c, n, NULL), XTAL_OK);
    snprintf(c->id, sizeof c->id, "%s", id);
    memcpy(c->Z, Z, (size_t)n * sizeof *Z);
    memcpy(c->frac, frac, 3 * (size_t)n * sizeof *frac);
    memcpy(c->lattice, L, 9 * sizeof(double));
}

/* Rock salt, conventional cubic cell: 4 Na + 4 Cl. */
static void rocksalt_conventional(xtal_crystal *c)
{
    const int Z[8] = {11, 11, 11, 11, 17, 17, 17, 17};
    const double f[24] = {0,  0,  0,  .5, .5, 0,  .5, 0,  .5, 0,  .5, .5,
                          .5, .5, .5, 0,  0,  .5, 0,  .5, 0,  .5, 0,  0};
    const double L[3][3] = {{A_NACL, 0, 0}, {0, A_NACL, 0}, {0, 0, A_NACL}};
    make(c, "nacl-conv", 8, Z, f, L);
}

/* Rock salt, primitive fcc cell: 1 Na + 1 Cl. */
static void rocksalt_primitive(xtal_crystal *c)
{
    const int Z[2] = {11, 17};
    const double f[6] = {0, 0, 0, .5, .5, .5};
    const double h = A_NACL / 2;
    const double L[3][3] = {{0, h, h}, {h, 0, h}, {h, h, 0}};
    make(c, "nacl-prim", 2, Z, f, L);
}

static void mat_vec_rows(const double M[3][3], const double L[3][3], double out[3][3])
{
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++)
            out[i][k] = M[i][0] * L[0][k] + M[i][1] * L[1][k] + M[i][2] * L[2][k];
}

/* A copy of c in another setting: lattice M . L (M unimodular), rotated, shifted by t
 * (fractional), sites in reverse order. */
static void resettle(const xtal_crystal *c, xtal_crystal *out)
{
    const double M[3][3] = {{1, 1, 0}, {0, 1, 0}, {-1, 0, 1}}; /* det 1 */
    const double th = 0.7, ph = -1.1;
    const double R[3][3] = {{cos(th), -sin(th), 0},
                            {sin(th) * cos(ph), cos(th) * cos(ph), -sin(ph)},
                            {sin(th) * sin(ph), cos(th) * sin(ph), cos(ph)}};
    const double t[3] = {0.13, 0.27, 0.61};
    double ML[3][3], Minv[3][3];
    assert_int_equal(xtal_crystal_init(out, c->natoms, NULL), XTAL_OK);
    snprintf(out->id, sizeof out->id, "moved %.80s", c->id);
    mat_vec_rows(M, c->lattice, ML);
    for (int i = 0; i < 3; i++) /* rows rotated: x -> R x */
        for (int k = 0; k < 3; k++)
            out->lattice[i][k] = R[k][0] * ML[i][0] + R[k][1] * ML[i][1] + R[k][2] * ML[i][2];
    assert_int_equal(xtal_lattice_inverse(M, Minv), 0);
    for (int a = 0; a < c->natoms; a++) {
        int b = c->natoms - 1 - a;
        double f[3];
        for (int k = 0; k < 3; k++) f[k] = c->frac[3 * a + k] + t[k];
        for (int k = 0; k < 3; k++)
            out->frac[3 * b + k] = f[0] * Minv[0][k] + f[1] * Minv[1][k] + f[2] * Minv[2][k];
        out->Z[b] = c->Z[a];
    }
}

static int fit(const xtal_crystal *a, const xtal_crystal *b, flt_match_result *res)
{
    flt_match_options o = flt_match_options_default();
    xtal_err err = {{0}};
    int rc = flt_match_fit(a, b, &o, res, &err);
    assert_int_equal(rc, XTAL_OK);
    return res->match;
}

/* ---------------------------------------------------------------- internals */

static void test_assignment_is_optimal(void **state)
{
    (void)state;
    srand(7);
    for (int trial = 0; trial < 50; trial++) {
        int n = 1 + trial % 5, perm[5] = {0, 1, 2, 3, 4}, got[5];
        double cost[25];
        for (int i = 0; i < n * n; i++) cost[i] = (double)(rand() % 1000) / 10.0;
        assert_int_equal(flt_linear_assignment(n, cost, got), 0);
        double best = INFINITY, mine = 0;
        for (int i = 0; i < n; i++) mine += cost[i * n + got[i]];
        /* brute force over all permutations (Heap's algorithm would do; n <= 5: nested swaps) */
        int c[5] = {0}, k = 0;
        double s = 0;
        for (int i = 0; i < n; i++) s += cost[i * n + perm[i]];
        best = s;
        while (k < n) {
            if (c[k] < k) {
                int j = k % 2 ? c[k] : 0, tmp = perm[j];
                perm[j] = perm[k];
                perm[k] = tmp;
                s = 0;
                for (int i = 0; i < n; i++) s += cost[i * n + perm[i]];
                best = fmin(best, s);
                c[k]++;
                k = 0;
            } else {
                c[k++] = 0;
            }
        }
        assert_true(fabs(mine - best) < 1e-9);
    }
}

static void test_primitive_reduction(void **state)
{
    (void)state;
    xtal_crystal conv, red;
    rocksalt_conventional(&conv);
    flt_match_options o = flt_match_options_default();
    assert_int_equal(flt_match_reduce(&conv, &o, &red, NULL), XTAL_OK);
    assert_int_equal(red.natoms, 2);
    assert_true(fabs(fabs(xtal_lattice_volume(red.lattice)) - pow(A_NACL, 3) / 4) < 1e-9);
    char fp[FLT_FINGERPRINT_LEN];
    flt_fingerprint(&red, fp);
    assert_string_equal(fp, "NaCl/2");
    xtal_crystal_free(&red);
    o.primitive_cell = 0;
    assert_int_equal(flt_match_reduce(&conv, &o, &red, NULL), XTAL_OK);
    assert_int_equal(red.natoms, 8);
    xtal_crystal_free(&red);
    xtal_crystal_free(&conv);
}

/* ---------------------------------------------------------------- verdicts */

static void test_rocksalt_settings_match(void **state)
{
    (void)state;
    xtal_crystal conv, prim, moved, moved_prim;
    flt_match_result res;
    rocksalt_conventional(&conv);
    rocksalt_primitive(&prim);
    resettle(&conv, &moved);
    resettle(&prim, &moved_prim);
    assert_true(fit(&conv, &prim, &res));
    assert_true(res.rms < 1e-9);
    assert_true(fit(&prim, &conv, &res));
    assert_true(fit(&conv, &moved, &res));
    assert_true(res.max_dist < 1e-9);
    assert_true(fit(&moved, &prim, &res));
    assert_true(fit(&moved_prim, &conv, &res));
    xtal_crystal_free(&conv);
    xtal_crystal_free(&prim);
    xtal_crystal_free(&moved);
    xtal_crystal_free(&moved_prim);
}

/* Cl moved by d Angstrom along -[111]: pymatgen gives fit True with rms = max = (d/2)/(V/n)^1/3
 * up to d = 1.6 (0.28369), and False from 1.7 on. */
static void test_displacement_threshold(void **state)
{
    (void)state;
    const double d_list[4] = {0.5, 1.6, 1.7, 1.9};
    const double rms_pmg[4] = {0.0886524822695036, 0.2836879432624113, NAN, NAN};
    xtal_crystal prim, moved;
    rocksalt_primitive(&prim);
    for (int k = 0; k < 4; k++) {
        assert_int_equal(xtal_crystal_copy(&moved, &prim, NULL), XTAL_OK);
        double inv[3][3], dx[3], df[3];
        for (int i = 0; i < 3; i++) dx[i] = -d_list[k] / sqrt(3.0);
        assert_int_equal(xtal_lattice_inverse(prim.lattice, inv), 0);
        xtal_cart_to_frac(inv, dx, df);
        for (int i = 0; i < 3; i++) moved.frac[3 + i] += df[i];
        flt_match_result res;
        flt_match_options o = flt_match_options_default();
        assert_int_equal(flt_match_rms_dist(&prim, &moved, &o, &res, NULL), XTAL_OK);
        int want = !isnan(rms_pmg[k]);
        assert_int_equal(fit(&prim, &moved, &res), want);
        assert_int_equal(flt_match_rms_dist(&prim, &moved, &o, &res, NULL), XTAL_OK);
        assert_int_equal(res.match, want);
        if (want) assert_true(fabs(res.rms - rms_pmg[k]) < 1e-9);
        xtal_crystal_free(&moved);
    }
    xtal_crystal_free(&prim);
}

/* One lattice vector stretched (beyond ltol after volume scaling): pymatgen says no from 1.3 on. */
static void test_lattice_distortion(void **state)
{
    (void)state;
    const double stretch[3] = {1.1, 1.3, 1.5};
    const int want[3] = {1, 0, 0};
    xtal_crystal prim, s;
    rocksalt_primitive(&prim);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(xtal_crystal_copy(&s, &prim, NULL), XTAL_OK);
        for (int i = 0; i < 3; i++) s.lattice[0][i] *= stretch[k];
        flt_match_result res;
        assert_int_equal(fit(&prim, &s, &res), want[k]);
        xtal_crystal_free(&s);
    }
    xtal_crystal_free(&prim);
}

static void test_compositions_never_match(void **state)
{
    (void)state;
    xtal_crystal prim, other;
    flt_match_result res;
    rocksalt_primitive(&prim);
    const int KCl[2] = {19, 17}, NaNa[2] = {11, 11};
    assert_int_equal(xtal_crystal_copy(&other, &prim, NULL), XTAL_OK);
    memcpy(other.Z, KCl, sizeof KCl);
    assert_false(fit(&prim, &other, &res));
    memcpy(other.Z, NaNa, sizeof NaNa);
    assert_false(fit(&prim, &other, &res));
    xtal_crystal_free(&other);
    /* Na2Cl2 in a doubled cell is still NaCl; Na3Cl is not */
    xtal_crystal conv;
    rocksalt_conventional(&conv);
    conv.Z[4] = 11;
    assert_false(fit(&prim, &conv, &res));
    xtal_crystal_free(&conv);
    xtal_crystal_free(&prim);
}

/* A chiral cell and its mirror image match (pymatgen allows left-handed lattice mappings). */
static void test_mirror_image_matches(void **state)
{
    (void)state;
    const int Z[4] = {14, 8, 8, 6};
    const double f[12] = {0.1, 0.2, 0.3, 0.4, 0.1, 0.8, 0.7, 0.6, 0.2, 0.3, 0.9, 0.5};
    double abc[3] = {4, 5, 6}, ang[3] = {80, 85, 95}, L[3][3];
    assert_int_equal(xtal_lattice_from_params(abc, ang, L, NULL), XTAL_OK);
    xtal_crystal s, m;
    make(&s, "chiral", 4, Z, f, L);
    assert_int_equal(xtal_crystal_copy(&m, &s, NULL), XTAL_OK);
    for (int i = 0; i < 12; i++) m.frac[i] = -m.frac[i];
    flt_match_result res;
    assert_true(fit(&s, &m, &res));
    xtal_crystal_free(&s);
    xtal_crystal_free(&m);
}

/* ---------------------------------------------------------------- the index */

static void test_index_and_hdf5_round_trip(void **state)
{
    (void)state;
    xtal_crystal conv, prim, moved, kcl;
    rocksalt_conventional(&conv);
    rocksalt_primitive(&prim);
    resettle(&conv, &moved);
    assert_int_equal(xtal_crystal_copy(&kcl, &prim, NULL), XTAL_OK);
    kcl.Z[0] = 19;
    snprintf(kcl.id, sizeof kcl.id, "kcl");
    flt_index *ix;
    assert_int_equal(flt_index_new(NULL, &ix, NULL), XTAL_OK);
    long e;
    int added;
    assert_int_equal(flt_index_add(ix, &conv, &e, &added, NULL), XTAL_OK);
    assert_true(added && e == 0);
    assert_int_equal(flt_index_add(ix, &prim, &e, &added, NULL), XTAL_OK);
    assert_true(!added && e == 0);
    assert_int_equal(flt_index_add(ix, &kcl, &e, &added, NULL), XTAL_OK);
    assert_true(added && e == 1);
    assert_int_equal(flt_index_add(ix, &moved, &e, &added, NULL), XTAL_OK);
    assert_true(!added && e == 0);
    assert_int_equal(flt_index_count(ix), 2);
    assert_string_equal(flt_index_id(ix, 1), "kcl");

    char path[256];
    const char *dir = getenv("DRUSE_TEST_TMP");
    snprintf(path, sizeof path, "%s/test_match_%ld.h5", dir ? dir : "/tmp", (long)getpid());
    xtal_err err = {{0}};
    assert_int_equal(flt_index_save(ix, path, "unit test", &err), XTAL_OK);
    flt_index *back;
    assert_int_equal(flt_index_load(path, &back, &err), XTAL_OK);
    assert_int_equal(flt_index_count(back), 2);
    assert_string_equal(flt_index_source(back), "unit test");
    assert_string_equal(flt_index_fingerprint(back, 0), "NaCl/2");
    assert_int_equal(flt_index_find(back, &moved, &e, NULL), XTAL_OK);
    assert_int_equal(e, 0);
    assert_int_equal(flt_index_find(back, &kcl, &e, NULL), XTAL_OK);
    assert_int_equal(e, 1);
    kcl.Z[0] = 37; /* RbCl: novel */
    assert_int_equal(flt_index_find(back, &kcl, &e, NULL), XTAL_OK);
    assert_int_equal(e, -1);
    flt_index_free(back);

    /* not an index, a missing file: errors, not crashes */
    FILE *f = fopen(path, "w");
    fputs("not hdf5", f);
    fclose(f);
    assert_int_equal(flt_index_load(path, &back, &err), XTAL_EPARSE);
    assert_null(back);
    unlink(path);
    assert_int_equal(flt_index_load(path, &back, &err), XTAL_EIO);
    flt_index_free(ix);
    xtal_crystal_free(&conv);
    xtal_crystal_free(&prim);
    xtal_crystal_free(&moved);
    xtal_crystal_free(&kcl);
}

/* ---------------------------------------------------------------- bad structures */

static void test_bad_structures_never_crash(void **state)
{
    (void)state;
    xtal_crystal good, bad;
    flt_match_options o = flt_match_options_default();
    flt_match_result res;
    xtal_err err;
    rocksalt_primitive(&good);

    /* zero volume, NaN coordinate, unknown element, no atoms: XTAL_EINVALID */
    assert_int_equal(xtal_crystal_copy(&bad, &good, NULL), XTAL_OK);
    memset(bad.lattice[2], 0, sizeof bad.lattice[2]);
    assert_int_equal(flt_match_fit(&good, &bad, &o, &res, &err), XTAL_EINVALID);
    assert_false(res.match);
    memcpy(bad.lattice, good.lattice, sizeof bad.lattice);
    bad.frac[1] = NAN;
    assert_int_equal(flt_match_fit(&bad, &good, &o, &res, &err), XTAL_EINVALID);
    bad.frac[1] = 0;
    bad.Z[0] = 0;
    assert_int_equal(flt_match_fit(&good, &bad, &o, &res, &err), XTAL_EINVALID);
    xtal_crystal_free(&bad);
    assert_int_equal(xtal_crystal_init(&bad, 0, NULL), XTAL_OK);
    memcpy(bad.lattice, good.lattice, sizeof bad.lattice);
    assert_int_equal(flt_match_fit(&good, &bad, &o, &res, &err), XTAL_EINVALID);
    flt_index *ix;
    long e;
    int added;
    assert_int_equal(flt_index_new(&o, &ix, NULL), XTAL_OK);
    assert_int_equal(flt_index_add(ix, &bad, &e, &added, &err), XTAL_EINVALID);
    assert_int_equal(flt_index_count(ix), 0);
    xtal_crystal_free(&bad);

    /* overlapping atoms, a needle cell, 200 atoms: valid, so a verdict */
    assert_int_equal(xtal_crystal_copy(&bad, &good, NULL), XTAL_OK);
    bad.frac[3] = bad.frac[4] = bad.frac[5] = 0;
    assert_int_equal(flt_match_fit(&good, &bad, &o, &res, &err), XTAL_OK);
    assert_false(res.match);
    assert_int_equal(flt_index_add(ix, &bad, &e, &added, &err), XTAL_OK);
    for (int i = 0; i < 3; i++) bad.lattice[2][i] *= 1e4;
    int rc = flt_match_fit(&bad, &good, &o, &res, &err); /* Niggli may give up on it */
    assert_true(rc == XTAL_OK || rc == XTAL_EINVALID);
    assert_false(res.match);
    xtal_crystal_free(&bad);

    /* 200 Fe 0.2 A apart on a line: too close for the 0.25 A primitive search, which (like
     * pymatgen's) keeps the cell: "Fe/200" */
    assert_int_equal(xtal_crystal_init(&bad, 200, NULL), XTAL_OK);
    snprintf(bad.id, sizeof bad.id, "two-hundred");
    for (int i = 0; i < 3; i++) bad.lattice[i][i] = i == 0 ? 40 : 5;
    for (int a = 0; a < 200; a++) {
        bad.Z[a] = 26;
        bad.frac[3 * a] = a / 200.0;
    }
    assert_int_equal(flt_index_add(ix, &bad, &e, &added, &err), XTAL_OK);
    assert_string_equal(flt_index_fingerprint(ix, e), "Fe/200");
    xtal_crystal_free(&bad);
    /* a 5 x 5 x 4 supercell of bcc Fe (200 atoms) folds back to one atom, as in pymatgen */
    assert_int_equal(xtal_crystal_init(&bad, 200, NULL), XTAL_OK);
    for (int i = 0; i < 3; i++) bad.lattice[i][i] = 2.87 * (i == 2 ? 4 : 5);
    for (int a = 0, i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++)
            for (int k = 0; k < 4; k++)
                for (int h = 0; h < 2; h++, a++) {
                    bad.Z[a] = 26;
                    bad.frac[3 * a] = (i + 0.5 * h) / 5;
                    bad.frac[3 * a + 1] = (j + 0.5 * h) / 5;
                    bad.frac[3 * a + 2] = (k + 0.5 * h) / 4;
                }
    xtal_crystal red;
    assert_int_equal(flt_match_reduce(&bad, &o, &red, &err), XTAL_OK);
    assert_int_equal(red.natoms, 1);
    xtal_crystal_free(&red);
    xtal_crystal_free(&bad);
    flt_index_free(ix);
    xtal_crystal_free(&good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_assignment_is_optimal),
        cmocka_unit_test(test_primitive_reduction),
        cmocka_unit_test(test_rocksalt_settings_match),
        cmocka_unit_test(test_displacement_threshold),
        cmocka_unit_test(test_lattice_distortion),
        cmocka_unit_test(test_compositions_never_match),
        cmocka_unit_test(test_mirror_image_matches),
        cmocka_unit_test(test_index_and_hdf5_round_trip),
        cmocka_unit_test(test_bad_structures_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
