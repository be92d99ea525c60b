/* Filters: distance rules, SMACT charge neutrality, spglib symmetry and the chain, on
 * hand-checked cases. Expected values are worked out in the comments. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "filters/filters.h"

char *progname = "test"; /* libcodcif needs it */

/* ------------------------------------------------------------------ builders */

static void make_crystal(xtal_crystal *c, const char *id, const double L[3][3], int n, const int *Z,
                         const double *frac)
{
    assert_int_equal(xtal_crystal_init(c, n, NULL), XTAL_OK);
    snprintf(c->id, sizeof c->id, "%s", id);
    memcpy(c->lattice, L, sizeof c->lattice);
    memcpy(c->Z, Z, (size_t)n * sizeof *Z);
    memcpy(c->frac, frac, 3 * (size_t)n * sizeof *frac);
}

static void cubic(double L[3][3], double a)
{
    memset(L, 0, 9 * sizeof(double));
    L[0][0] = L[1][1] = L[2][2] = a;
}

/* Conventional rock salt AB, a in Angstrom: A on 4a (0,0,0)+F, B on 4b (1/2,0,0)+F. */
static void rock_salt(xtal_crystal *c, int ZA, int ZB, double a)
{
    static const double fcc[4][3] = {{0, 0, 0}, {0, 0.5, 0.5}, {0.5, 0, 0.5}, {0.5, 0.5, 0}};
    double L[3][3], frac[24];
    int Z[8];
    cubic(L, a);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 3; k++) {
            frac[3 * i + k] = fcc[i][k];
            frac[3 * (i + 4) + k] = fmod(fcc[i][k] + (k == 0 ? 0.5 : 0.0), 1.0);
        }
    for (int i = 0; i < 4; i++) Z[i] = ZA, Z[i + 4] = ZB;
    make_crystal(c, "rocksalt", L, 8, Z, frac);
}

/* A crystal whose composition is given by (Z, count) pairs; positions on a simple grid in a
 * roomy cubic cell (charge tests only look at the composition). */
static void composition(xtal_crystal *c, int nel, const int *Z, const int *count)
{
    int n = 0;
    for (int e = 0; e < nel; e++) n += count[e];
    assert_int_equal(xtal_crystal_init(c, n, NULL), XTAL_OK);
    cubic(c->lattice, 10.0);
    for (int e = 0, a = 0; e < nel; e++)
        for (int k = 0; k < count[e]; k++, a++) {
            c->Z[a] = Z[e];
            c->frac[3 * a] = 0.1 * (a % 10);
            c->frac[3 * a + 1] = 0.1 * ((a / 10) % 10);
            c->frac[3 * a + 2] = 0.1 * (a / 100);
        }
}

static void check_charge(int nel, const int *Z, const int *count, flt_charge_outcome want,
                         const char *want_states)
{
    xtal_crystal c;
    composition(&c, nel, Z, count);
    flt_charge_result r;
    assert_int_equal(flt_charge_check(&c, &r, NULL), XTAL_OK);
    char states[256];
    flt_charge_format(&r, states, sizeof states);
    if (r.outcome != want || strcmp(states, want_states))
        fail_msg("got %s '%s', want %s '%s'", flt_charge_outcome_name(r.outcome), states,
                 flt_charge_outcome_name(want), want_states);
    assert_int_equal(r.pass, want <= FLT_CHARGE_BALANCED);
    xtal_crystal_free(&c);
}

/* ------------------------------------------------------------------ charge */

static void test_charge_hand_checked(void **state)
{
    (void)state;
    /* NaCl: Na {-1,+1}, Cl {-1..+7}; Na-1/Cl+1 balances but fails Pauling (anion Na less
     * electronegative than cation Cl), so the first pass is Na+1 Cl-1. */
    check_charge(2, (int[]){11, 17}, (int[]){4, 4}, FLT_CHARGE_BALANCED, "Na:+1 Cl:-1");
    /* Fe2O3, elements by Z: O first. O-2 is O's first state, then 3*(-2) + 2*Fe = 0 gives
     * Fe+3, the first Fe state that balances. */
    check_charge(2, (int[]){26, 8}, (int[]){4, 6}, FLT_CHARGE_BALANCED, "O:-2 Fe:+3");
    /* Li3PO4: Li+1, O-2 (first), P must be +5. */
    check_charge(3, (int[]){3, 15, 8}, (int[]){3, 1, 4}, FLT_CHARGE_BALANCED, "Li:+1 O:-2 P:+5");
    /* Cu3Au: both in smact.metals, the alloy rule passes without charges. */
    check_charge(2, (int[]){29, 79}, (int[]){3, 1}, FLT_CHARGE_ALLOY, "");
    /* XeF2: Xe has SMACT states {+1,+2,+4,+6,+8}, X_P 2.60 < F 3.98: F-1 Xe+2. */
    check_charge(2, (int[]){54, 9}, (int[]){1, 2}, FLT_CHARGE_BALANCED, "F:-1 Xe:+2");
    /* NaCl2: Na +-1 against 2 * Cl: odd against even, nothing balances. */
    check_charge(2, (int[]){11, 17}, (int[]){1, 2}, FLT_CHARGE_NOT_NEUTRAL, "");
    /* Elements alone pass whatever they are, even a noble gas. */
    check_charge(1, (int[]){18}, (int[]){5}, FLT_CHARGE_SINGLE_ELEMENT, "");
    /* ArCl: Ar has no oxidation states, the product is empty. */
    check_charge(2, (int[]){18, 17}, (int[]){1, 1}, FLT_CHARGE_NOT_NEUTRAL, "");
    /* PmCl3 balances (Pm+3) but Pm has no electronegativity: v2.6 fails the pair. */
    check_charge(2, (int[]){61, 17}, (int[]){1, 3}, FLT_CHARGE_NOT_NEUTRAL, "");
    /* Counts reduce by the gcd: Na2Cl2 behaves as NaCl. */
    check_charge(2, (int[]){11, 17}, (int[]){2, 2}, FLT_CHARGE_BALANCED, "Na:+1 Cl:-1");
}

static void test_charge_too_many_combinations(void **state)
{
    (void)state;
    /* Mn 10, Tc 9, Ru 9, Re 9, Os 10, Ir 10 states x S 8 x Cl 8 = 46.7e6 > 1e7. */
    int Z[] = {25, 43, 44, 75, 76, 77, 16, 17}, count[] = {1, 1, 1, 1, 1, 1, 1, 1};
    xtal_crystal c;
    composition(&c, 8, Z, count);
    flt_charge_result r;
    assert_int_equal(flt_charge_check(&c, &r, NULL), XTAL_OK);
    double want = 1;
    for (int e = 0; e < 8; e++) want *= xtal_element_by_Z(Z[e])->n_oxidation_states;
    assert_true(want > FLT_CHARGE_MAX_COMBINATIONS);
    assert_int_equal(r.outcome, FLT_CHARGE_TOO_MANY_COMBINATIONS);
    assert_false(r.pass);
    assert_true(r.ncombinations == want);
    xtal_crystal_free(&c);
}

/* ------------------------------------------------------------------ distance */

static void test_distance_rock_salt(void **state)
{
    (void)state;
    xtal_crystal c;
    rock_salt(&c, 11, 17, 5.64);
    flt_distance_result r;
    assert_int_equal(flt_distance_check(&c, FLT_RULE_COVALENT, 0.5, &r, NULL), XTAL_OK);
    assert_true(fabs(r.min_distance - 2.82) < 1e-12);      /* a / 2, Na-Cl */
    assert_true(fabs(r.min_self_distance - 5.64) < 1e-12); /* a: conventional cell */
    assert_true(r.ok && r.distance_ok && r.volume_ok);
    assert_int_not_equal(c.Z[r.min_i], c.Z[r.min_j]);
    assert_int_equal(flt_distance_check(&c, FLT_RULE_BENCHMARK, 0, &r, NULL), XTAL_OK);
    assert_true(r.ok);
    assert_true(fabs(r.threshold - 0.5) < 1e-15);
    /* k = 1.1: 1.1 * (1.66 + 1.02) = 2.948 > 2.82, too close. */
    assert_int_equal(flt_distance_check(&c, FLT_RULE_COVALENT, 1.1, &r, NULL), XTAL_OK);
    assert_false(r.ok);
    assert_true(fabs(r.threshold - 2.948) < 1e-12);
    /* The benchmark rule at a 3 A minimum distance instead of 0.5 A. */
    assert_int_equal(flt_distance_check(&c, FLT_RULE_BENCHMARK, 3.0, &r, NULL), XTAL_OK);
    assert_false(r.ok);
    assert_true(fabs(r.threshold - 3.0) < 1e-15);
    xtal_err err;
    assert_int_equal(flt_distance_check(&c, FLT_RULE_COVALENT, -1, &r, &err), XTAL_EINVALID);
    assert_non_null(strstr(err.msg, "covalent scale"));
    flt_options opt = flt_options_default();
    opt.covalent_scale = NAN;
    flt_result fr;
    assert_int_equal(flt_check(&c, &opt, &fr, &err), XTAL_EINVALID);
    flt_result_free(&fr);
    xtal_crystal_free(&c);
}

static void test_distance_self_image(void **state)
{
    (void)state;
    /* One Fe in a 1 A cube: no distinct pair, the benchmark rule passes (volume 1 A^3), but
     * Fe sees its own image at 1 A < 0.5 * 2 * 1.32 A. */
    double L[3][3];
    cubic(L, 1.0);
    xtal_crystal c;
    make_crystal(&c, "tiny", L, 1, (int[]){26}, (double[]){0.3, 0.3, 0.3});
    flt_distance_result r;
    assert_int_equal(flt_distance_check(&c, FLT_RULE_BENCHMARK, 0, &r, NULL), XTAL_OK);
    assert_true(r.ok);
    assert_true(isinf(r.min_distance));
    assert_int_equal(r.min_i, -1);
    assert_int_equal(flt_distance_check(&c, FLT_RULE_COVALENT, 0.5, &r, NULL), XTAL_OK);
    assert_false(r.ok);
    assert_int_equal(r.worst_i, 0);
    assert_int_equal(r.worst_j, 0);
    assert_true(fabs(r.min_self_distance - 1.0) < 1e-12);
    assert_true(fabs(r.threshold - 1.32) < 1e-12);
    xtal_crystal_free(&c);
}

/* Brute force over a wide image window, for comparison on skewed cells. */
static double brute_distance(const xtal_crystal *c, int i, int j)
{
    double best = INFINITY;
    for (int n0 = -12; n0 <= 12; n0++)
        for (int n1 = -12; n1 <= 12; n1++)
            for (int n2 = -12; n2 <= 12; n2++) {
                if (i == j && !n0 && !n1 && !n2) continue;
                double f[3] = {c->frac[3 * j] - c->frac[3 * i] + n0,
                               c->frac[3 * j + 1] - c->frac[3 * i + 1] + n1,
                               c->frac[3 * j + 2] - c->frac[3 * i + 2] + n2},
                       x[3];
                xtal_frac_to_cart(c->lattice, f, x);
                best = fmin(best, sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2]));
            }
    return best;
}

static void test_distance_skewed_cells_exact(void **state)
{
    (void)state;
    /* Very skewed (non-reduced) cells where a fixed +-1 shell is wrong. */
    const double cells[3][3][3] = {
        {{5, 0, 0}, {4.9, 0.5, 0}, {4.8, 0.3, 0.7}},
        {{3, 0, 0}, {-8.7, 2.1, 0}, {14.1, -3.3, 1.9}},
        {{2.5, 0.1, 0}, {0.2, 7.0, 0}, {0.1, 0.4, 30.0}},
    };
    srand(7);
    for (int t = 0; t < 3; t++) {
        xtal_crystal c;
        assert_int_equal(xtal_crystal_init(&c, 6, NULL), XTAL_OK);
        memcpy(c.lattice, cells[t], sizeof c.lattice);
        for (int a = 0; a < 6; a++) {
            c.Z[a] = 6;
            for (int k = 0; k < 3; k++) c.frac[3 * a + k] = 2.0 * rand() / RAND_MAX - 0.5;
        }
        flt_distance_result r;
        assert_int_equal(flt_distance_check(&c, FLT_RULE_BENCHMARK, 0, &r, NULL), XTAL_OK);
        double want = INFINITY;
        for (int i = 0; i < 6; i++)
            for (int j = i + 1; j < 6; j++) want = fmin(want, brute_distance(&c, i, j));
        assert_true(fabs(r.min_distance - want) < 1e-9);
        assert_true(fabs(r.min_distance - xtal_min_distance(&c, 0)) < 1e-9);
        assert_true(fabs(r.min_self_distance - brute_distance(&c, 0, 0)) < 1e-9);
        assert_true(fabs(brute_distance(&c, r.min_i, r.min_j) - want) < 1e-9);
        xtal_crystal_free(&c);
    }
}

/* ------------------------------------------------------------------ symmetry */

static void check_symmetry(const xtal_crystal *c, int want_sg, const char *want_symbol,
                           const char *want_wyckoffs)
{
    flt_symmetry_result r;
    assert_int_equal(flt_symmetry_analyze(c, FLT_DEFAULT_SYMPREC, -1, &r, NULL), XTAL_OK);
    assert_true(r.ok);
    assert_int_equal(r.spacegroup, want_sg);
    assert_string_equal(r.international, want_symbol);
    assert_string_equal(r.wyckoffs, want_wyckoffs);
    assert_true(r.hall_number > 0);
    flt_symmetry_result_free(&r);
}

static void test_symmetry_rock_salt(void **state)
{
    (void)state;
    xtal_crystal c, prim, conv;
    rock_salt(&c, 11, 17, 5.64);
    check_symmetry(&c, 225, "Fm-3m", "aaaabbbb");
    assert_int_equal(flt_standardize(&c, 1, 0.1, -1, &prim, NULL), XTAL_OK);
    assert_int_equal(prim.natoms, 2);
    assert_true(fabs(xtal_volume(&prim) - pow(5.64, 3) / 4) < 1e-9);
    assert_int_equal(flt_standardize(&c, 0, 0.1, -1, &conv, NULL), XTAL_OK);
    assert_int_equal(conv.natoms, 8);
    check_symmetry(&prim, 225, "Fm-3m", "ab");
    xtal_crystal_free(&prim);
    xtal_crystal_free(&conv);
    xtal_crystal_free(&c);
}

static void test_symmetry_rutile_wurtzite(void **state)
{
    (void)state;
    /* Rutile TiO2, P4_2/mnm (136): Ti 2a, O 4f (u, u, 0), u = 0.305. */
    double L[3][3] = {{4.594, 0, 0}, {0, 4.594, 0}, {0, 0, 2.959}}, u = 0.305;
    double rf[] = {0,     0,     0, 0.5,     0.5,     0.5, u,       u,       0,
                   1 - u, 1 - u, 0, 0.5 + u, 0.5 - u, 0.5, 0.5 - u, 0.5 + u, 0.5};
    xtal_crystal c;
    make_crystal(&c, "rutile", L, 6, (int[]){22, 22, 8, 8, 8, 8}, rf);
    check_symmetry(&c, 136, "P4_2/mnm", "aaffff");
    xtal_crystal_free(&c);
    /* Wurtzite ZnO, P6_3mc (186): Zn and O on 2b (1/3, 2/3, z). */
    double a = 3.25, h = 5.207, w = 0.382;
    double H[3][3] = {{a, 0, 0}, {-a / 2, a * sqrt(3) / 2, 0}, {0, 0, h}};
    double wf[] = {1.0 / 3, 2.0 / 3, 0, 2.0 / 3, 1.0 / 3, 0.5,
                   1.0 / 3, 2.0 / 3, w, 2.0 / 3, 1.0 / 3, 0.5 + w};
    make_crystal(&c, "wurtzite", H, 4, (int[]){30, 30, 8, 8}, wf);
    check_symmetry(&c, 186, "P6_3mc", "bbbb");
    xtal_crystal_free(&c);
}

static void test_symmetrize_noisy_rock_salt(void **state)
{
    (void)state;
    xtal_crystal c, ideal;
    rock_salt(&c, 11, 17, 5.64);
    srand(3);
    for (int i = 0; i < 24; i++) c.frac[i] += 0.004 * (2.0 * rand() / RAND_MAX - 1);
    flt_symmetry_result r;
    /* At a tight tolerance the noise breaks the symmetry... */
    assert_int_equal(flt_symmetry_analyze(&c, 1e-4, -1, &r, NULL), XTAL_OK);
    assert_true(r.ok && r.spacegroup < 225);
    flt_symmetry_result_free(&r);
    /* ...symmetrizing at 0.1 A puts every site back on its Wyckoff position. */
    assert_int_equal(flt_symmetrize(&c, 0.1, -1, &ideal, NULL), XTAL_OK);
    assert_int_equal(flt_symmetry_analyze(&ideal, 1e-5, -1, &r, NULL), XTAL_OK);
    assert_int_equal(r.spacegroup, 225);
    flt_symmetry_result_free(&r);
    xtal_crystal_free(&ideal);
    xtal_crystal_free(&c);
}

/* ------------------------------------------------------------------ the chain */

static void test_chain_passes_rock_salt(void **state)
{
    (void)state;
    xtal_crystal c;
    rock_salt(&c, 11, 17, 5.64);
    flt_options opt = flt_options_default();
    flt_result r;
    assert_int_equal(flt_check(&c, &opt, &r, NULL), XTAL_OK);
    assert_true(r.pass);
    assert_int_equal(r.reason, FLT_PASS);
    assert_int_equal(r.rejections, 0);
    assert_int_equal(r.symmetry.spacegroup, 225);
    assert_int_equal(r.charge.outcome, FLT_CHARGE_BALANCED);
    flt_counts counts = {0};
    flt_counts_add(&counts, &r);
    assert_int_equal(counts.passed, 1);
    flt_result_free(&r);
    xtal_crystal_free(&c);
}

static void test_chain_overlapping_atoms(void **state)
{
    (void)state;
    /* NaCl2 with two Cl on the same spot: too close (distance 0) and not neutral. */
    double L[3][3];
    cubic(L, 4.0);
    xtal_crystal c;
    make_crystal(&c, "overlap", L, 3, (int[]){11, 17, 17},
                 (double[]){0, 0, 0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5});
    flt_options opt = flt_options_default();
    flt_result r;
    assert_int_equal(flt_check(&c, &opt, &r, NULL), XTAL_OK);
    assert_false(r.pass);
    assert_int_equal(r.reason, FLT_REJECT_TOO_CLOSE);
    assert_true(r.rejections & (1u << FLT_REJECT_NOT_NEUTRAL));
    assert_true(r.distance.min_distance < 1e-12);
    assert_true(r.ran_symmetry); /* every check runs by default, whatever spglib says */
    flt_result_free(&r);
    opt.stop_at_first = 1;
    assert_int_equal(flt_check(&c, &opt, &r, NULL), XTAL_OK);
    assert_int_equal(r.rejections, 1u << FLT_REJECT_TOO_CLOSE);
    assert_false(r.ran_charge);
    flt_result_free(&r);
    xtal_crystal_free(&c);
}

static void test_chain_zero_volume(void **state)
{
    (void)state;
    /* c = a + b: a flat cell. */
    double L[3][3] = {{3, 0, 0}, {0, 3, 0}, {3, 3, 0}};
    xtal_crystal c;
    make_crystal(&c, "flat", L, 2, (int[]){11, 17}, (double[]){0, 0, 0, 0.5, 0.5, 0.5});
    flt_options opt = flt_options_default();
    flt_result r;
    assert_int_equal(flt_check(&c, &opt, &r, NULL), XTAL_OK);
    assert_false(r.pass);
    assert_int_equal(r.reason, FLT_REJECT_SMALL_VOLUME);
    assert_true(r.rejections & (1u << FLT_REJECT_TOO_CLOSE));
    assert_true(r.rejections & (1u << FLT_REJECT_SYMMETRY));
    assert_true(strlen(r.symmetry.message) > 0);
    flt_result_free(&r);
    xtal_crystal_free(&c);
}

static void test_chain_200_atoms(void **state)
{
    (void)state;
    /* 5 x 5 x 1 supercell of conventional rock salt: 200 atoms, still Fm-3m, passes. */
    xtal_crystal unit, c;
    rock_salt(&unit, 11, 17, 5.64);
    assert_int_equal(xtal_crystal_init(&c, 200, NULL), XTAL_OK);
    cubic(c.lattice, 5.64);
    c.lattice[0][0] = c.lattice[1][1] = 5 * 5.64;
    int a = 0;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++)
            for (int s = 0; s < 8; s++, a++) {
                c.Z[a] = unit.Z[s];
                c.frac[3 * a] = (unit.frac[3 * s] + i) / 5;
                c.frac[3 * a + 1] = (unit.frac[3 * s + 1] + j) / 5;
                c.frac[3 * a + 2] = unit.frac[3 * s + 2];
            }
    flt_options opt = flt_options_default();
    flt_result r;
    assert_int_equal(flt_check(&c, &opt, &r, NULL), XTAL_OK);
    assert_true(r.pass);
    assert_int_equal(r.symmetry.spacegroup, 225);
    assert_true(fabs(r.distance.min_distance - 2.82) < 1e-9);
    flt_result_free(&r);
    /* The same atoms scattered at random: whatever the verdict, a verdict. */
    srand(11);
    for (int i = 0; i < 600; i++) c.frac[i] = (double)rand() / RAND_MAX;
    assert_int_equal(flt_check(&c, &opt, &r, NULL), XTAL_OK);
    assert_false(r.pass);
    flt_result_free(&r);
    xtal_crystal_free(&c);
    xtal_crystal_free(&unit);
}

static void test_chain_unknown_element(void **state)
{
    (void)state;
    double L[3][3];
    cubic(L, 4.0);
    xtal_crystal c;
    make_crystal(&c, "bad", L, 2, (int[]){11, 150}, (double[]){0, 0, 0, 0.5, 0.5, 0.5});
    flt_result r;
    assert_int_equal(flt_check(&c, NULL, &r, NULL), XTAL_OK);
    assert_false(r.pass);
    assert_int_equal(r.reason, FLT_REJECT_INVALID);
    assert_non_null(strstr(r.message, "150"));
    flt_result_free(&r);
    /* The single filters report it as an error with a message instead. */
    xtal_err err;
    flt_distance_result d;
    assert_int_equal(flt_distance_check(&c, FLT_RULE_COVALENT, 0.5, &d, &err), XTAL_EINVALID);
    assert_non_null(strstr(err.msg, "unknown atomic number 150"));
    flt_charge_result q;
    assert_int_equal(flt_charge_check(&c, &q, &err), XTAL_EINVALID);
    assert_int_equal(q.outcome, FLT_CHARGE_INVALID);
    c.Z[1] = 17;
    c.frac[4] = NAN;
    assert_int_equal(flt_check(&c, NULL, &r, NULL), XTAL_OK);
    assert_int_equal(r.reason, FLT_REJECT_INVALID);
    flt_result_free(&r);
    xtal_crystal_free(&c);
}

static void test_reason_names(void **state)
{
    (void)state;
    assert_string_equal(flt_reason_name(FLT_REJECT_TOO_CLOSE), "too_close");
    assert_string_equal(flt_reason_name(FLT_REJECT_SYMMETRY), "symmetry_failed");
    for (int r = 0; r < FLT_NREASONS; r++)
        assert_string_not_equal(flt_reason_name((flt_reason)r), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_charge_hand_checked),
        cmocka_unit_test(test_charge_too_many_combinations),
        cmocka_unit_test(test_distance_rock_salt),
        cmocka_unit_test(test_distance_self_image),
        cmocka_unit_test(test_distance_skewed_cells_exact),
        cmocka_unit_test(test_symmetry_rock_salt),
        cmocka_unit_test(test_symmetry_rutile_wurtzite),
        cmocka_unit_test(test_symmetrize_noisy_rock_salt),
        cmocka_unit_test(test_chain_passes_rock_salt),
        cmocka_unit_test(test_chain_overlapping_atoms),
        cmocka_unit_test(test_chain_zero_volume),
        cmocka_unit_test(test_chain_200_atoms),
        cmocka_unit_test(test_chain_unknown_element),
        cmocka_unit_test(test_reason_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
