/* Format guessing and xtal_read_any: single files (CIF, POSCAR, extended XYZ), directories
 * (sorted, other files skipped, all-or-nothing on errors), and the refusals. */
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

char *progname = "test_io"; /* libcodcif needs it */

static char tmp_dir[512];

static int make_tmp_dir(void **state)
{
    (void)state;
    const char *base = getenv("DRUSE_TEST_TMP");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/test_io.XXXXXX", base && base[0] ? base : "/tmp");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int remove_tmp_dir(void **state)
{
    (void)state;
    return rmdir(tmp_dir);
}

static void path_in(const char *dir, const char *name, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < size);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[700];
    path_in(dir, name, path, sizeof path);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static void remove_file(const char *dir, const char *name)
{
    char path[700];
    path_in(dir, name, path, sizeof path);
    assert_int_equal(unlink(path), 0);
}

static const char cu_cif[] = "data_Cu\n_cell_length_a 3.6\n_cell_length_b 3.6\n"
                             "_cell_length_c 3.6\n_cell_angle_alpha 90\n_cell_angle_beta 90\n"
                             "_cell_angle_gamma 90\nloop_\n_atom_site_type_symbol\n"
                             "_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
                             "Cu 0 0 0\n";
static const char au_poscar[] = "Au\n1.0\n4 0 0\n0 4 0\n0 0 4\nAu\n1\nDirect\n0 0 0\n";
static const char na_xyz[] = "1\nLattice=\"5 0 0 0 5 0 0 0 5\" Properties=species:S:1:pos:R:3 "
                             "id=na\nNa 0 0 0\n";

static void test_guess_format(void **state)
{
    (void)state;
    assert_int_equal(xtal_guess_format("a/b/x.cif"), XTAL_FMT_CIF);
    assert_int_equal(xtal_guess_format("X.CIF"), XTAL_FMT_CIF);
    assert_int_equal(xtal_guess_format("run/POSCAR"), XTAL_FMT_POSCAR);
    assert_int_equal(xtal_guess_format("CONTCAR_relaxed"), XTAL_FMT_POSCAR);
    assert_int_equal(xtal_guess_format("mp-1.vasp"), XTAL_FMT_POSCAR);
    assert_int_equal(xtal_guess_format("x.poscar"), XTAL_FMT_POSCAR);
    assert_int_equal(xtal_guess_format("all.xyz"), XTAL_FMT_EXTXYZ);
    assert_int_equal(xtal_guess_format("all.extxyz"), XTAL_FMT_EXTXYZ);
    assert_int_equal(xtal_guess_format("test.csv.gz"), XTAL_FMT_CSV);
    assert_int_equal(xtal_guess_format("train.csv"), XTAL_FMT_CSV);
    assert_int_equal(xtal_guess_format("notes.txt"), XTAL_FMT_UNKNOWN);
    assert_int_equal(xtal_guess_format(tmp_dir), XTAL_FMT_DIR);
    /* By name only: a directory named like a CIF is still CIF for an output name. */
    char dir_cif[700];
    path_in(tmp_dir, "out.cif", dir_cif, sizeof dir_cif);
    assert_int_equal(mkdir(dir_cif, 0777), 0);
    assert_int_equal(xtal_guess_format(dir_cif), XTAL_FMT_DIR);
    assert_int_equal(xtal_format_from_name(dir_cif), XTAL_FMT_CIF);
    assert_int_equal(rmdir(dir_cif), 0);
}

static void test_read_directory_sorted(void **state)
{
    (void)state;
    char dir[700];
    path_in(tmp_dir, "structures", dir, sizeof dir);
    assert_int_equal(mkdir(dir, 0777), 0);
    write_text(dir, "b.cif", cu_cif);
    write_text(dir, "a.vasp", au_poscar);
    write_text(dir, "c.xyz", na_xyz);
    write_text(dir, "README.md", "not a structure\n");
    write_text(dir, ".hidden.cif", "garbage");
    xtal_list l = {0};
    xtal_err err;
    assert_int_equal(xtal_read_any(dir, &l, &err), XTAL_OK);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.items[0].id, "a");
    assert_int_equal(l.items[0].Z[0], 79);
    assert_string_equal(l.items[1].id, "b");
    assert_int_equal(l.items[1].Z[0], 29);
    assert_string_equal(l.items[2].id, "na");
    assert_int_equal(l.items[2].Z[0], 11);
    /* One bad file fails the whole directory and appends nothing. */
    write_text(dir, "c.cif", "data_c\n_cell_length_a 3\n");
    assert_int_equal(xtal_read_any(dir, &l, &err), XTAL_EINVALID);
    assert_non_null(strstr(err.msg, "c.cif"));
    assert_int_equal(l.n, 3);
    remove_file(dir, "c.cif");
    write_text(dir, "d.xyz", "1\nProperties=species:S:1:pos:R:3\nNa 0 0 0\n");
    assert_int_equal(xtal_read_any(dir, &l, &err), XTAL_EPARSE);
    assert_non_null(strstr(err.msg, "d.xyz:2"));
    assert_int_equal(l.n, 3);
    xtal_list_free(&l);
    remove_file(dir, "b.cif");
    remove_file(dir, "a.vasp");
    remove_file(dir, "c.xyz");
    remove_file(dir, "d.xyz");
    remove_file(dir, "README.md");
    remove_file(dir, ".hidden.cif");
    /* A directory with nothing to read is an error. */
    assert_int_equal(xtal_read_any(dir, &l, &err), XTAL_EINVALID);
    assert_non_null(strstr(err.msg, "no structure files"));
    assert_int_equal(rmdir(dir), 0);
}

static void test_read_any_refusals(void **state)
{
    (void)state;
    xtal_list l = {0};
    xtal_err err;
    assert_int_equal(xtal_read_any("/nonexistent/x.cif", &l, &err), XTAL_EIO);
    assert_int_equal(xtal_read_any("/nonexistent/notes.txt", &l, &err), XTAL_EIO);
    assert_non_null(strstr(err.msg, "notes.txt"));
    write_text(tmp_dir, "notes.txt", cu_cif);
    char path[700];
    path_in(tmp_dir, "notes.txt", path, sizeof path);
    assert_int_equal(xtal_read_any(path, &l, &err), XTAL_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "notes.txt"));
    remove_file(tmp_dir, "notes.txt");
    assert_int_equal(xtal_read_any("/nonexistent/frames.xyz", &l, &err), XTAL_EIO);
    assert_non_null(strstr(err.msg, "frames.xyz"));
    assert_int_equal(xtal_read_any("", &l, &err), XTAL_EIO);
    /* Single files of each format. */
    write_text(tmp_dir, "POSCAR", au_poscar);
    path_in(tmp_dir, "POSCAR", path, sizeof path);
    assert_int_equal(xtal_read_any(path, &l, &err), XTAL_OK);
    assert_int_equal(l.n, 1);
    remove_file(tmp_dir, "POSCAR");
    write_text(tmp_dir, "na.extxyz", na_xyz);
    path_in(tmp_dir, "na.extxyz", path, sizeof path);
    assert_int_equal(xtal_read_any(path, &l, &err), XTAL_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[1].id, "na");
    remove_file(tmp_dir, "na.extxyz");
    xtal_list_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guess_format),
        cmocka_unit_test(test_read_directory_sorted),
        cmocka_unit_test(test_read_any_refusals),
    };
    return cmocka_run_group_tests(tests, make_tmp_dir, remove_tmp_dir);
}
