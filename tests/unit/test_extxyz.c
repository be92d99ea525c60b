/* Extended XYZ writer: the comment line (Lattice, Properties, pbc, extra keys), full-precision
 * Cartesian positions, appended frames, and the error paths. ASE reading the output is checked
 * by tests/referee/test_roundtrip.py. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_frame),
        cmocka_unit_test(test_append_frames),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, make_tmp_dir, remove_tmp_dir);
}
