/* POSCAR reading (Direct, Cartesian, scale factors, Selective dynamics, POTCAR-style species)
 * and writing (full precision, species grouped by first appearance), and every error path. */
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

#include "crystal/crystal.h"

char *progname = "test_poscar"; /* libcodcif needs it */

static char tmp_dir[512];

static int make_tmp_dir(void **state)
{
    (void)state;
    const char *base = getenv("DRUSE_TEST_TMP");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/test_poscar.XXXXXX", base && base[0] ? base : "/tmp");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int remove_tmp_dir(void **state)
{
    (void)state;
    return rmdir(tmp_dir);
}

/* Writes text to a file of the scratch directory; returns its path (static buffer). */
static const char *scratch_file(const char *name, const char *text, size_t len)
{
    static char path[600];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
    return path;
}

static const char *scratch_text(const char *name, const char *text)
{
    return scratch_file(name, text, strlen(text));
}

static void assert_near(double a, double b, double tol)
{
    if (!(fabs(a - b) <= tol)) fail_msg("%.17g != %.17g (tolerance %g)", a, b, tol);
}

/* ------------------------------------------------------------------ reading */

static void test_direct(void **state)
{
    (void)state;
    const char *path = scratch_text("NaCl.vasp", "rock salt, primitive\n"
                                                 "1.0\n"
                                                 "  0.0 2.82 2.82\n"
                                                 "  2.82 0.0 2.82\n"
                                                 "  2.82 2.82 0.0\n"
                                                 "  Na Cl\n"
                                                 "  1 1\n"
                                                 "Direct\n"
                                                 "  0.0 0.0 0.0 Na\n"
                                                 "  0.5 0.5 0.5 Cl\n");
    xtal_crystal c;
    xtal_err err;
    assert_int_equal(xtal_read_poscar(path, &c, &err), XTAL_OK);
    assert_string_equal(c.id, "NaCl");
    assert_int_equal(c.natoms, 2);
    assert_int_equal(c.Z[0], 11);
    assert_int_equal(c.Z[1], 17);
    assert_near(c.lattice[0][1], 2.82, 0);
    assert_near(c.frac[3], 0.5, 0);
    xtal_crystal_free(&c);
    unlink(path);
}

static void test_cartesian_and_scale(void **state)
{
    (void)state;
    /* Scale 2 applies to the lattice and to Cartesian positions. */
    const char *path = scratch_text("POSCAR", "cart\n2.0\n2 0 0\n0 3 0\n1 0 4\nSi\n2\n"
                                              "Cartesian\n0 0 0\n1 1.5 2\n");
    xtal_crystal c;
    xtal_err err;
    assert_int_equal(xtal_read_poscar(path, &c, &err), XTAL_OK);
    assert_string_equal(c.id, "POSCAR");
    assert_near(c.lattice[0][0], 4, 0);
    assert_near(c.lattice[2][0], 2, 0);
    /* 2 (1, 1.5, 2) = 0.25 a + 0.5 b + 0.5 c with a = (4,0,0), b = (0,6,0), c = (2,0,8) */
    assert_near(c.frac[3], 0.25, 1e-15);
    assert_near(c.frac[4], 0.5, 1e-15);
    assert_near(c.frac[5], 0.5, 1e-15);
    xtal_crystal_free(&c);
    unlink(path);
}

static void test_negative_scale_is_volume(void **state)
{
    (void)state;
    const char *path = scratch_text("vol.poscar", "volume 64\n-64\n1 0 0\n0 1 0\n0 0 1\nCu\n1\n"
                                                  "Direct\n0.5 0.5 0.5\n");
    xtal_crystal c;
    xtal_err err;
    assert_int_equal(xtal_read_poscar(path, &c, &err), XTAL_OK);
    assert_near(c.lattice[1][1], 4, 1e-14);
    assert_near(xtal_volume(&c), 64, 1e-12);
    xtal_crystal_free(&c);
    unlink(path);
}

static void test_selective_dynamics_potcar_names_crlf(void **state)
{
    (void)state;
    /* CRLF endings, POTCAR-style names, flags after positions, a velocity block after. */
    const char *path = scratch_text("CONTCAR", "relaxed\r\n 1.0\r\n 3 0 0\r\n 0 3 0\r\n 0 0 3\r\n"
                                               " Fe_pv O/a1b2c3\r\n 1 2\r\n"
                                               "Selective dynamics\r\n"
                                               "direct\r\n"
                                               " 0 0 0 F F F\r\n"
                                               " 0.5 0.5 0 T T T\r\n"
                                               " 0.5 0 0.5 T T F\r\n"
                                               "\r\n 0 0 0\r\n 0 0 0\r\n 0 0 0\r\n");
    xtal_crystal c;
    xtal_err err;
    assert_int_equal(xtal_read_poscar(path, &c, &err), XTAL_OK);
    assert_int_equal(c.natoms, 3);
    assert_int_equal(c.Z[0], 26);
    assert_int_equal(c.Z[1], 8);
    assert_int_equal(c.Z[2], 8);
    assert_near(c.frac[8], 0.5, 0);
    xtal_crystal_free(&c);
    unlink(path);
}

static void test_per_axis_scale(void **state)
{
    (void)state;
    const char *path = scratch_text("axes.vasp", "three factors\n1 2 3\n1 0 0\n0 1 0\n0 0 1\n"
                                                 "Al\n1\nC\n1 1 1\n");
    xtal_crystal c;
    xtal_err err;
    assert_int_equal(xtal_read_poscar(path, &c, &err), XTAL_OK);
    assert_near(c.lattice[1][1], 2, 0);
    assert_near(c.lattice[2][2], 3, 0);
    assert_near(c.frac[0], 1, 1e-15); /* Cartesian (1,2,3) after scaling is (1,1,1) frac */
    xtal_crystal_free(&c);
    unlink(path);
}

/* ------------------------------------------------------------------ writing */

static void make_ungrouped(xtal_crystal *c)
{
    assert_int_equal(xtal_crystal_init(c, 4, NULL), XTAL_OK);
    snprintf(c->id, sizeof c->id, "mixed\norder");
    double abc[3] = {3.3, 4.4, 5.5}, ang[3] = {70, 100, 110};
    assert_int_equal(xtal_lattice_from_params(abc, ang, c->lattice, NULL), XTAL_OK);
    const int Z[4] = {8, 26, 8, 26};
    const double f[12] = {0.1,   0.2,   0.3, 1.0 / 3.0, 0.123456789012345678,
                          0.9,   -0.25, 1.5, 0.7,       0.999999999999999,
                          1e-17, 0.5};
    memcpy(c->Z, Z, sizeof Z);
    memcpy(c->frac, f, sizeof f);
}

static void test_write_read_roundtrip(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/out.vasp", tmp_dir);
    xtal_crystal c, r;
    make_ungrouped(&c);
    xtal_err err;
    assert_int_equal(xtal_write_poscar(&c, path, &err), XTAL_OK);
    assert_int_equal(xtal_read_poscar(path, &r, &err), XTAL_OK);
    assert_string_equal(r.id, "out");
    assert_memory_equal(r.lattice, c.lattice, sizeof c.lattice);
    /* Grouped by first appearance, crystal order kept within a species: O0 O2 Fe1 Fe3. */
    const int order[4] = {0, 2, 1, 3};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(r.Z[i], c.Z[order[i]]);
        assert_memory_equal(r.frac + 3 * i, c.frac + 3 * order[i], 3 * sizeof(double));
    }
    /* A grouped crystal comes back exactly, in its order. */
    xtal_crystal r2;
    assert_int_equal(xtal_write_poscar(&r, path, &err), XTAL_OK);
    assert_int_equal(xtal_read_poscar(path, &r2, &err), XTAL_OK);
    assert_memory_equal(r2.Z, r.Z, 4 * sizeof(int));
    assert_memory_equal(r2.frac, r.frac, 12 * sizeof(double));
    xtal_crystal_free(&r2);
    xtal_crystal_free(&r);
    xtal_crystal_free(&c);
    unlink(path);
}

static void test_write_errors(void **state)
{
    (void)state;
    xtal_crystal c;
    make_ungrouped(&c);
    xtal_err err;
    assert_int_equal(xtal_write_poscar(&c, "/nonexistent-dir/POSCAR", &err), XTAL_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/POSCAR"));
    c.Z[2] = 500;
    assert_int_equal(xtal_write_poscar(&c, "/nonexistent-dir/POSCAR", &err), XTAL_EINVALID);
    xtal_crystal_free(&c);
}

/* ------------------------------------------------------------------- errors */

#define CELL "1.0\n4 0 0\n0 4 0\n0 0 4\n"

typedef struct {
    const char *what;
    const char *text;
    int code;
    const char *needle; /* must appear in the message, besides the file name */
} bad_case;

static const bad_case bad_cases[] = {
    {"empty", "", XTAL_EPARSE, "empty file"},
    {"VASP 4", "old\n" CELL "2\nDirect\n0 0 0\n0.5 0.5 0.5\n", XTAL_EUNSUPPORTED, ":6: "},
    {"10^9 atoms", "big\n" CELL "Fe\n1000000000\nDirect\n0 0 0\n", XTAL_ELIMIT, ":7: 1000000000"},
    {"sum over limit", "big\n" CELL "Fe O\n60000 60000\nDirect\n0 0 0\n", XTAL_ELIMIT, ":7: "},
    {"count overflow", "big\n" CELL "Fe\n99999999999999999999999\nDirect\n0 0 0\n", XTAL_ELIMIT,
     ":7: "},
    {"truncated positions", "t\n" CELL "Fe\n3\nDirect\n0 0 0\n0.5 0.5 0.5\n", XTAL_EPARSE,
     ":11: file ends after 2 of 3"},
    {"truncated header", "t\n1.0\n4 0 0\n0 4 0\n", XTAL_EPARSE, ":5: "},
    {"short lattice line", "t\n1.0\n4 0 0\n0 4\n0 0 4\nFe\n1\nD\n0 0 0\n", XTAL_EPARSE,
     ":4: expected 3 numbers"},
    {"count mismatch", "t\n" CELL "Fe O\n1\nDirect\n0 0 0\n", XTAL_EPARSE, ":7: 1 atom counts"},
    {"bad count", "t\n" CELL "Fe\nx\nDirect\n0 0 0\n", XTAL_EPARSE, ":7: 'x'"},
    {"NaN coordinate", "t\n" CELL "Fe\n1\nDirect\nnan 0 0\n", XTAL_EINVALID, ":9: "},
    {"Inf lattice", "t\n1.0\ninf 0 0\n0 4 0\n0 0 4\nFe\n1\nDirect\n0 0 0\n", XTAL_EINVALID, ":3: "},
    {"word coordinate", "t\n" CELL "Fe\n1\nDirect\n0 zero 0\n", XTAL_EPARSE, ":9: "},
    {"bad mode", "t\n" CELL "Fe\n1\nFractional\n0 0 0\n", XTAL_EPARSE, ":8: expected 'Direct'"},
    {"zero scale", "t\n0\n4 0 0\n0 4 0\n0 0 4\nFe\n1\nD\n0 0 0\n", XTAL_EINVALID, ":2: "},
    {"flat lattice", "t\n1.0\n4 0 0\n0 4 0\n4 4 0\nFe\n1\nD\n0 0 0\n", XTAL_EINVALID, "degenerate"},
    {"unknown element", "t\n" CELL "Fe Qq\n1 1\nD\n0 0 0\n0.5 0 0\n", XTAL_EINVALID,
     ":6: unknown element 'Qq'"},
    {"element with junk", "t\n" CELL "Fe2O3\n1\nD\n0 0 0\n", XTAL_EINVALID, "'Fe2O3'"},
    {"no atoms", "t\n" CELL "Fe\n0\nD\n", XTAL_EINVALID, ":7: no atoms"},
};

static void test_error_paths(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *b = &bad_cases[i];
        const char *path = scratch_text("bad case.vasp", b->text);
        xtal_crystal c;
        xtal_err err = {{0}};
        int rc = xtal_read_poscar(path, &c, &err);
        if (rc != b->code || !strstr(err.msg, b->needle) || !strstr(err.msg, "bad case.vasp"))
            fail_msg("case '%s': code %d (want %d), message '%s' (want '%s')", b->what, rc, b->code,
                     err.msg, b->needle);
        assert_null(c.Z); /* nothing left allocated */
        unlink(path);
    }
}

static void test_file_errors(void **state)
{
    (void)state;
    xtal_crystal c;
    xtal_err err;
    assert_int_equal(xtal_read_poscar("/nonexistent/POSCAR", &c, &err), XTAL_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/POSCAR"));
    static const char garbage[] = "\x7f"
                                  "ELF\x02\x01\x01\0\0\0\x03";
    const char *path = scratch_file("POSCAR_binary", garbage, sizeof garbage);
    assert_int_equal(xtal_read_poscar(path, &c, &err), XTAL_EPARSE);
    assert_non_null(strstr(err.msg, "binary"));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_direct),
        cmocka_unit_test(test_cartesian_and_scale),
        cmocka_unit_test(test_negative_scale_is_volume),
        cmocka_unit_test(test_selective_dynamics_potcar_names_crlf),
        cmocka_unit_test(test_per_axis_scale),
        cmocka_unit_test(test_write_read_roundtrip),
        cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_error_paths),
        cmocka_unit_test(test_file_errors),
    };
    return cmocka_run_group_tests(tests, make_tmp_dir, remove_tmp_dir);
}
