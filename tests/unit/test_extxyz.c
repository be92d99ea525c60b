/* Extended XYZ writer: the comment line (Lattice, Properties, pbc, extra keys), full-precision
 * Cartesian positions, appended frames, and the error paths. ASE reading the output is checked
 * by tests/referee/test_roundtrip.py. Reader: write -> read round trips (lattice, species,
 * positions, ids), other column layouts, and bad input (errors name the file and line, nothing
 * is appended). */
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

char *progname = "test_extxyz"; /* libcodcif needs it */

static char tmp_dir[512];

static int make_tmp_dir(void **state)
{
    (void)state;
    const char *base = getenv("DRUSE_TEST_TMP");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/test_extxyz.XXXXXX", base && base[0] ? base : "/tmp");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int remove_tmp_dir(void **state)
{
    (void)state;
    return rmdir(tmp_dir);
}

static char *read_all(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static void make_crystal(xtal_crystal *c)
{
    assert_int_equal(xtal_crystal_init(c, 3, NULL), XTAL_OK);
    double abc[3] = {3.1, 4.2, 5.3}, ang[3] = {81, 95, 102};
    assert_int_equal(xtal_lattice_from_params(abc, ang, c->lattice, NULL), XTAL_OK);
    const int Z[3] = {3, 26, 8};
    const double f[9] = {0.1, 0.2, 0.3, 1.0 / 3.0, 0.123456789012345678, 0.9, 0, 0.5, 0.75};
    memcpy(c->Z, Z, sizeof Z);
    memcpy(c->frac, f, sizeof f);
}

/* Parses n numbers separated by spaces from s into out; returns the end. */
static const char *parse_numbers(const char *s, int n, double *out)
{
    for (int i = 0; i < n; i++) {
        char *end;
        out[i] = strtod(s, &end);
        assert_true(end != s);
        s = end;
    }
    return s;
}

/* Checks one frame at text: count line, comment line, atom lines; returns the next frame. */
static const char *check_frame(const char *text, const xtal_crystal *c, const char *extra)
{
    int n = atoi(text);
    assert_int_equal(n, c->natoms);
    const char *comment = strchr(text, '\n') + 1;
    const char *lattice = strstr(comment, "Lattice=\"");
    assert_ptr_equal(lattice, comment);
    double L[9];
    const char *end = parse_numbers(lattice + 9, 9, L);
    assert_int_equal(*end, '"');
    /* Bit-for-bit: %.17g round-trips every double. */
    assert_memory_equal(L, c->lattice, sizeof L);
    const char *eol = strchr(comment, '\n');
    assert_non_null(strstr(comment, "Properties=species:S:1:pos:R:3"));
    assert_non_null(strstr(comment, "pbc=\"T T T\""));
    assert_true(strstr(comment, "Properties") < eol && strstr(comment, "pbc=") < eol);
    if (extra) assert_true(strstr(comment, extra) && strstr(comment, extra) < eol);
    const char *line = eol + 1;
    for (int i = 0; i < c->natoms; i++) {
        char sym[4];
        assert_int_equal(sscanf(line, "%3s", sym), 1);
        assert_string_equal(sym, xtal_element_by_Z(c->Z[i])->symbol);
        double x[3], want[3];
        parse_numbers(line + strlen(sym), 3, x);
        xtal_frac_to_cart(c->lattice, c->frac + 3 * i, want);
        assert_memory_equal(x, want, sizeof x);
        line = strchr(line, '\n') + 1;
    }
    return line;
}

static void test_one_frame(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/one.xyz", tmp_dir);
    xtal_crystal c;
    make_crystal(&c);
    xtal_err err;
    assert_int_equal(xtal_write_extxyz(&c, "id=\"mp-1\" energy=-1.5", path, 0, &err), XTAL_OK);
    const char *text = read_all(path);
    const char *rest = check_frame(text, &c, "id=\"mp-1\" energy=-1.5");
    assert_int_equal(*rest, '\0');
    /* Without append the file is replaced; NULL extra adds nothing. */
    assert_int_equal(xtal_write_extxyz(&c, NULL, path, 0, &err), XTAL_OK);
    text = read_all(path);
    assert_null(strstr(text, "mp-1"));
    assert_int_equal(*check_frame(text, &c, NULL), '\0');
    xtal_crystal_free(&c);
    unlink(path);
}

static void test_append_frames(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/two.xyz", tmp_dir);
    xtal_crystal a, b;
    make_crystal(&a);
    make_crystal(&b);
    b.Z[0] = 92;
    b.lattice[2][2] = 7.25;
    xtal_err err;
    assert_int_equal(xtal_write_extxyz(&a, "id=a", path, 0, &err), XTAL_OK);
    assert_int_equal(xtal_write_extxyz(&b, "id=b", path, 1, &err), XTAL_OK);
    const char *text = read_all(path);
    const char *second = check_frame(text, &a, "id=a");
    assert_int_equal(*check_frame(second, &b, "id=b"), '\0');
    xtal_crystal_free(&a);
    xtal_crystal_free(&b);
    unlink(path);
}

static void test_errors(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/bad.xyz", tmp_dir);
    xtal_crystal c;
    make_crystal(&c);
    xtal_err err;
    assert_int_equal(xtal_write_extxyz(&c, "a=1\nb=2", path, 0, &err), XTAL_EINVALID);
    assert_non_null(strstr(err.msg, "bad.xyz"));
    assert_int_equal(access(path, F_OK), -1); /* refused before creating the file */
    assert_int_equal(xtal_write_extxyz(&c, NULL, "/nonexistent-dir/x.xyz", 0, &err), XTAL_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x.xyz"));
    c.Z[2] = -1;
    assert_int_equal(xtal_write_extxyz(&c, NULL, path, 0, &err), XTAL_EINVALID);
    xtal_crystal_free(&c);
}


/* ------------------------------------------------------------------ reader */

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

/* Periodic distance of two fractional coordinates. */
static double frac_gap(double a, double b)
{
    double d = a - b;
    return fabs(d - nearbyint(d));
}

static void assert_same_crystal(const xtal_crystal *got, const xtal_crystal *want)
{
    assert_int_equal(got->natoms, want->natoms);
    assert_memory_equal(got->lattice, want->lattice, sizeof got->lattice); /* %.17g: exact */
    for (int i = 0; i < want->natoms; i++) {
        assert_int_equal(got->Z[i], want->Z[i]);
        for (int k = 0; k < 3; k++) {
            double f = got->frac[3 * i + k];
            assert_true(f >= 0 && f < 1);
            assert_true(frac_gap(f, want->frac[3 * i + k]) < 1e-9);
        }
    }
}

static void test_read_roundtrip(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/rt.xyz", tmp_dir);
    xtal_crystal c[4];
    make_crystal(&c[0]); /* triclinic, Li Fe O */
    assert_int_equal(xtal_crystal_init(&c[1], 1, NULL), XTAL_OK); /* cubic Na */
    c[1].lattice[0][0] = c[1].lattice[1][1] = c[1].lattice[2][2] = 4.29;
    c[1].Z[0] = 11;
    assert_int_equal(xtal_crystal_init(&c[2], 6, NULL), XTAL_OK); /* hexagonal, heavy */
    double abc[3] = {5.9, 5.9, 9.7}, ang[3] = {90, 90, 120};
    assert_int_equal(xtal_lattice_from_params(abc, ang, c[2].lattice, NULL), XTAL_OK);
    for (int i = 0; i < 6; i++) {
        c[2].Z[i] = i % 2 ? 83 : 52; /* Bi, Te */
        c[2].frac[3 * i] = (i + 0.25) / 6.0;
        c[2].frac[3 * i + 1] = 2.0 / 3.0;
        c[2].frac[3 * i + 2] = 0.999999999;
    }
    make_crystal(&c[3]);
    c[3].lattice[1][0] = -2.5; /* sheared */
    c[3].Z[1] = 1;
    xtal_err err;
    const char *extra[4] = {"id=\"mp-1\" energy=-1.5", "material_id=mp-22 id=other",
                            "sample=7 pbc_extra=x", NULL};
    for (int k = 0; k < 4; k++)
        assert_int_equal(xtal_write_extxyz(&c[k], extra[k], path, k > 0, &err), XTAL_OK);
    xtal_list l = {0};
    assert_int_equal(xtal_read_extxyz(path, &l, &err), XTAL_OK);
    assert_int_equal(l.n, 4);
    for (int k = 0; k < 4; k++) assert_same_crystal(&l.items[k], &c[k]);
    assert_string_equal(l.items[0].id, "mp-1");
    assert_string_equal(l.items[1].id, "mp-22"); /* material_id= before id= */
    assert_string_equal(l.items[2].id, "sample_000007");
    assert_string_equal(l.items[3].id, "rt.xyz:4"); /* FILE:FRAME, 1-based */
    /* xtal_read_any reads it too, appending after what the list holds. */
    assert_int_equal(xtal_read_any(path, &l, &err), XTAL_OK);
    assert_int_equal(l.n, 8);
    assert_same_crystal(&l.items[6], &c[2]);
    xtal_list_free(&l);
    for (int k = 0; k < 4; k++) xtal_crystal_free(&c[k]);
    unlink(path);
}

static void test_read_layouts(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/layout.extxyz", tmp_dir);
    /* Extra columns before and after, lower-case keys, CRLF, blank lines between frames, no
     * Properties= (species and pos), a quoted id with a space, lenient symbols. */
    write_text(path, "2\r\n"
                     "lattice=\"4 0 0 0 4 0 0 0 4\" "
                     "properties=forces:R:3:species:S:1:pos:R:3:tag:I:1 id=\"a b\"\r\n"
                     "0.1 0.2 0.3 Cs 0 0 0 7\r\n"
                     "9 9 9 cl 2 2 2 8\r\n"
                     "\n"
                     "  1  \n"
                     "Lattice=\"3 0 0 0 3 0 0 0 3\"\n"
                     "Fe -0.75 3.75 1.5\n");
    xtal_list l = {0};
    xtal_err err;
    assert_int_equal(xtal_read_extxyz(path, &l, &err), XTAL_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].id, "a b");
    assert_int_equal(l.items[0].Z[0], 55);
    assert_int_equal(l.items[0].Z[1], 17);
    assert_true(fabs(l.items[0].frac[3] - 0.5) < 1e-12);
    assert_string_equal(l.items[1].id, "layout.extxyz:2");
    assert_int_equal(l.items[1].Z[0], 26);
    assert_true(fabs(l.items[1].frac[0] - 0.75) < 1e-12); /* wrapped */
    assert_true(fabs(l.items[1].frac[1] - 0.25) < 1e-12);
    assert_true(fabs(l.items[1].frac[2] - 0.5) < 1e-12);
    xtal_list_free(&l);
    unlink(path);
}

/* Reads text as bad.xyz into a list that already holds one crystal: the read must fail with
 * code, a message holding each of the NULL-terminated words, and append nothing. */
static void expect_bad(const char *text, int code, ...)
{
    char path[600];
    snprintf(path, sizeof path, "%s/bad.xyz", tmp_dir);
    write_text(path, text);
    xtal_list l = {0};
    xtal_crystal keep;
    make_crystal(&keep);
    assert_int_equal(xtal_list_push(&l, &keep, NULL), XTAL_OK);
    xtal_err err = {{0}};
    int rc = xtal_read_extxyz(path, &l, &err);
    if (rc != code) fprintf(stderr, "got %d (%s), want %d\n", rc, err.msg, code);
    assert_int_equal(rc, code);
    assert_int_equal(l.n, 1);
    va_list ap;
    va_start(ap, code);
    for (const char *w = va_arg(ap, const char *); w; w = va_arg(ap, const char *)) {
        if (!strstr(err.msg, w)) fprintf(stderr, "'%s' not in '%s'\n", w, err.msg);
        assert_non_null(strstr(err.msg, w));
    }
    va_end(ap);
    xtal_list_free(&l);
    unlink(path);
}

#define CUBE "Lattice=\"4 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R:3\n"

static void test_read_bad_input(void **state)
{
    (void)state;
    /* truncated: inside the atoms, before the comment line */
    expect_bad("3\n" CUBE "Na 0 0 0\nCl 2 2 2\n", XTAL_EPARSE, "bad.xyz:5", "frame 1",
               "atom 3 of 3", NULL);
    expect_bad("2\n" CUBE "Na 0 0 0\nCl 2 2 2\n2\n", XTAL_EPARSE, "bad.xyz:6",
               "before the comment line of frame 2", NULL);
    /* wrong atom counts: too small (an atom line where the next count should be), too large
     * (the next frame's count where an atom line should be) */
    expect_bad("1\n" CUBE "Na 0 0 0\nCl 2 2 2\n", XTAL_EPARSE, "bad.xyz:4",
               "atom count of frame 2", NULL);
    expect_bad("3\n" CUBE "Na 0 0 0\nCl 2 2 2\n2\n" CUBE "Na 0 0 0\nCl 2 2 2\n", XTAL_EPARSE,
               "bad.xyz:5", "atom 3 of 3", NULL);
    expect_bad("0\n" CUBE, XTAL_EPARSE, "bad.xyz:1", "atom count", NULL);
    expect_bad("-2\n" CUBE, XTAL_EPARSE, "bad.xyz:1", NULL);
    expect_bad("999999999\n" CUBE, XTAL_EPARSE, "bad.xyz:1", NULL);
    expect_bad("two\n" CUBE, XTAL_EPARSE, "bad.xyz:1", "'two'", NULL);
    /* missing or broken Lattice, Properties without species or pos */
    expect_bad("1\nProperties=species:S:1:pos:R:3\nNa 0 0 0\n", XTAL_EPARSE, "bad.xyz:2",
               "Lattice", NULL);
    expect_bad("1\nLattice=\"4 0 0 0 4 0 0 0\"\nNa 0 0 0\n", XTAL_EPARSE, "bad.xyz:2", "Lattice",
               NULL);
    expect_bad("1\n" CUBE "Na 0 0 0\n1\nenergy=3\nNa 0 0 0\n", XTAL_EPARSE, "bad.xyz:5",
               "Lattice", NULL);
    expect_bad("1\nLattice=\"4 0 0 0 4 0 0 0 4\" Properties=species:S:1:x:R:3\nNa 0 0 0\n",
               XTAL_EPARSE, "bad.xyz:2", "Properties", NULL);
    expect_bad("1\nLattice=\"0 0 0 0 4 0 0 0 4\"\nNa 0 0 0\n", XTAL_EINVALID, "bad.xyz:2",
               "singular", NULL);
    /* unknown species, bad coordinates, short atom lines */
    expect_bad("2\n" CUBE "Na 0 0 0\nXx 2 2 2\n", XTAL_EPARSE, "bad.xyz:4", "unknown element 'Xx'",
               NULL);
    expect_bad("1\n" CUBE "X 0 0 0\n", XTAL_EPARSE, "bad.xyz:3", "'X'", NULL);
    expect_bad("1\n" CUBE "Na 0 0.5x 0\n", XTAL_EPARSE, "bad.xyz:3", "bad coordinate '0.5x'",
               NULL);
    expect_bad("1\n" CUBE "Na 0 0\n", XTAL_EPARSE, "bad.xyz:3", "atom line", NULL);
    expect_bad("1\n" CUBE "Na 0 nan 0\n", XTAL_EINVALID, "bad.xyz:2", "non-finite", NULL);
    /* nothing at all */
    expect_bad("", XTAL_EPARSE, "bad.xyz", "no frames", NULL);
    expect_bad("\n\n", XTAL_EPARSE, "bad.xyz", "no frames", NULL);
    /* not a file */
    xtal_list l = {0};
    xtal_err err;
    assert_int_equal(xtal_read_extxyz("/nonexistent/x.xyz", &l, &err), XTAL_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/x.xyz"));
    assert_int_equal(xtal_read_extxyz(tmp_dir, &l, &err), XTAL_EIO);
    assert_int_equal(l.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_frame),
        cmocka_unit_test(test_append_frames),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_read_roundtrip),
        cmocka_unit_test(test_read_layouts),
        cmocka_unit_test(test_read_bad_input),
    };
    return cmocka_run_group_tests(tests, make_tmp_dir, remove_tmp_dir);
}
