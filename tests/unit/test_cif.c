/* CIF reading (libcodcif): symmetry expansion, uncertainties, labels, Cartesian sites, data
 * blocks, every error path; and write/read round trips of the P1 writer. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "crystal/crystal.h"

char *progname = "test_cif"; /* libcodcif needs it */

/* ---------------------------------------------------------------- helpers */

static char tmp_dir[512];

static int make_tmp_dir(void **state)
{
    (void)state;
    const char *base = getenv("DRUSE_TEST_TMP");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/test_cif.XXXXXX", base && base[0] ? base : "/tmp");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int remove_tmp_dir(void **state)
{
    (void)state;
    return rmdir(tmp_dir); /* every test removes its own files */
}

static void tmp_path(const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", tmp_dir, name);
}

static void write_text(const char *path, const char *text, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

/* A P1 block header with a cell; callers append sites. */
#define CUBIC_CELL(a)                                                                              \
    "_cell_length_a " a "\n_cell_length_b " a "\n_cell_length_c " a "\n"                           \
    "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"

#define SITES_HEADER                                                                               \
    "loop_\n_atom_site_type_symbol\n_atom_site_label\n_atom_site_fract_x\n"                        \
    "_atom_site_fract_y\n_atom_site_fract_z\n_atom_site_occupancy\n"

/* Fractional coordinates equal modulo 1 within tol. */
static void assert_frac_near(const double *f, double x, double y, double z, double tol)
{
    const double want[3] = {x, y, z};
    for (int k = 0; k < 3; k++) {
        double d = f[k] - want[k];
        if (!(fabs(d - round(d)) < tol))
            fail_msg("coordinate %d: %.17g, want %.17g", k, f[k], want[k]);
    }
}

/* Index of the atom of element Z at (x, y, z) modulo 1, or -1. */
static int find_atom(const xtal_crystal *c, int Z, double x, double y, double z)
{
    const double want[3] = {x, y, z};
    for (int i = 0; i < c->natoms; i++) {
        int same = c->Z[i] == Z;
        for (int k = 0; k < 3 && same; k++) {
            double d = c->frac[3 * i + k] - want[k];
            same = fabs(d - round(d)) < 1e-9;
        }
        if (same) return i;
    }
    return -1;
}

/* ------------------------------------------------------------------ reading */

static const char gate_cif[] = "# generated using pymatgen\n"
                               "data_GaTe\n"
                               "_symmetry_space_group_name_H-M   'P 1'\n"
                               "_cell_length_a   4.13459945\n"
                               "_cell_length_b   4.13459945\n"
                               "_cell_length_c   18.42557000\n"
                               "_cell_angle_alpha   90.00000000\n"
                               "_cell_angle_beta   90.00000000\n"
                               "_cell_angle_gamma   119.99999121\n"
                               "loop_\n _symmetry_equiv_pos_site_id\n _symmetry_equiv_pos_as_xyz\n"
                               "  1  'x, y, z'\n"
                               "loop_\n _atom_site_type_symbol\n _atom_site_label\n"
                               " _atom_site_symmetry_multiplicity\n _atom_site_fract_x\n"
                               " _atom_site_fract_y\n _atom_site_fract_z\n _atom_site_occupancy\n"
                               "  Ga  Ga0  1  0.33333333  0.66666667  0.18295900  1.0\n"
                               "  Te  Te1  1  0.66666667  0.33333333  0.38620400  1.0\n";

static void test_p1_string(void **state)
{
    (void)state;
    xtal_list l = {0};
    xtal_err err;
    assert_int_equal(xtal_read_cif_string(gate_cif, "mp-10009", &l, &err), XTAL_OK);
    assert_int_equal(l.n, 1);
    const xtal_crystal *c = &l.items[0];
    assert_string_equal(c->id, "mp-10009");
    assert_int_equal(c->natoms, 2);
    assert_int_equal(c->Z[0], 31);
    assert_int_equal(c->Z[1], 52);
    double L[3][3], abc[3] = {4.13459945, 4.13459945, 18.42557}, ang[3] = {90, 90, 119.99999121};
    assert_int_equal(xtal_lattice_from_params(abc, ang, L, NULL), XTAL_OK);
    assert_memory_equal(c->lattice, L, sizeof L);
    /* 8-decimal thirds are snapped to the exact values, as pymatgen's CifParser does. */
    assert_true(c->frac[0] == 1.0 / 3.0 && c->frac[1] == 2.0 / 3.0);
    assert_true(c->frac[2] == 0.182959);
    xtal_list_free(&l);
}

/* The 192 operations of Fm-3m: 48 signed permutations times 4 face centerings. */
static void append_fm3m_ops(char *buf, size_t size)
{
    static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                    {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    static const char *const centering[4][3] = {
        {"", "", ""}, {"", "+1/2", "+1/2"}, {"+1/2", "", "+1/2"}, {"+1/2", "+1/2", ""}};
    const char *axes = "xyz";
    for (int t = 0; t < 4; t++)
        for (int p = 0; p < 6; p++)
            for (int s = 0; s < 8; s++) {
                char op[64];
                size_t n = 0;
                op[n++] = '\'';
                for (int r = 0; r < 3; r++) {
                    n += (size_t)snprintf(op + n, sizeof op - n, "%s%s%c%s", r ? ", " : "",
                                          (s >> r) & 1 ? "-" : "", axes[perms[p][r]],
                                          centering[t][r]);
                }
                snprintf(op + n, sizeof op - n, "'\n");
                strncat(buf, op, size - strlen(buf) - 1);
            }
}

static void test_rocksalt_fm3m_expansion(void **state)
{
    (void)state;
    static char text[32768];
    snprintf(text, sizeof text,
             "data_NaCl\n_symmetry_space_group_name_H-M 'F m -3 m'\n" CUBIC_CELL(
                 "5.6402") "loop_\n_space_group_symop_operation_xyz\n");
    append_fm3m_ops(text, sizeof text);
    strncat(text, SITES_HEADER "Na Na1 0 0 0 1\nCl Cl1 0.5 0.5 0.5 1\n",
            sizeof text - strlen(text) - 1);
    xtal_list l = {0};
    xtal_err err;
    assert_int_equal(xtal_read_cif_string(text, "NaCl", &l, &err), XTAL_OK);
    assert_int_equal(l.n, 1);
    const xtal_crystal *c = &l.items[0];
    assert_int_equal(c->natoms, 8);
    /* Site order kept: the 4 Na images first, then the 4 Cl images. */
    for (int i = 0; i < 4; i++) assert_int_equal(c->Z[i], 11);
    for (int i = 4; i < 8; i++) assert_int_equal(c->Z[i], 17);
    assert_true(find_atom(c, 11, 0, 0, 0) >= 0 && find_atom(c, 11, 0, 0.5, 0.5) >= 0);
    assert_true(find_atom(c, 11, 0.5, 0, 0.5) >= 0 && find_atom(c, 11, 0.5, 0.5, 0) >= 0);
    assert_true(find_atom(c, 17, 0.5, 0.5, 0.5) >= 0 && find_atom(c, 17, 0.5, 0, 0) >= 0);
    assert_true(find_atom(c, 17, 0, 0.5, 0) >= 0 && find_atom(c, 17, 0, 0, 0.5) >= 0);
    for (int i = 0; i < 24; i++) assert_true(c->frac[i] >= 0 && c->frac[i] < 1);
    xtal_list_free(&l);
}

static void test_uncertainties_and_labels(void **state)
{
    (void)state;
    /* No type symbols: elements come from the labels; values carry standard uncertainties. */
    static const char text[] = "data_x\n"
                               "_cell_length_a 4.123(5)\n_cell_length_b 5.5(12)\n"
                               "_cell_length_c 6.25\n_cell_angle_alpha 90.00(3)\n"
                               "_cell_angle_beta 101.5(2)\n_cell_angle_gamma 90\n"
                               "loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n"
                               "_atom_site_fract_z\n_atom_site_occupancy\n"
                               "Fe1 0.125(4) 0.25 0.5(1) 1.00(2)\n"
                               "O2a -0.25 1.25 0 .\n"
                               "Ob3 0.5 0.5 0.5 ?\n";
    xtal_list l = {0};
    xtal_err err;
    assert_int_equal(xtal_read_cif_string(text, "u", &l, &err), XTAL_OK);
    const xtal_crystal *c = &l.items[0];
    assert_int_equal(c->natoms, 3);
    assert_int_equal(c->Z[0], 26);
    assert_int_equal(c->Z[1], 8);
    assert_int_equal(c->Z[2], 8); /* "Ob3": no element Ob, so O, as pymatgen reads labels */
    double abc[3], ang[3];
    xtal_lattice_to_params(c->lattice, abc, ang);
    assert_true(fabs(abc[0] - 4.123) < 1e-12 && fabs(abc[1] - 5.5) < 1e-12);
    assert_true(fabs(ang[1] - 101.5) < 1e-10);
    assert_frac_near(c->frac, 0.125, 0.25, 0.5, 1e-15);
    /* -0.25 and 1.25 are wrapped into [0, 1) */
    assert_true(fabs(c->frac[3] - 0.75) < 1e-15 && fabs(c->frac[4] - 0.25) < 1e-15);
    xtal_list_free(&l);
}

static void test_symop_forms(void **state)
{
    (void)state;
    static const char text[] = "data_ops\n" CUBIC_CELL(
        "10") "loop_\n_symmetry_equiv_pos_as_xyz\n"
              "'x, y, z'\n'-y+1/2, x-y, z+0.25'\n'1/2+x,Y,z'\n' -x , -y , -z '\n"
              "'+X-Y, 2*y - x, z'\n" SITES_HEADER "C C1 0.1 0.2 0.3 1\n";
    xtal_list l = {0};
    xtal_err err;
    assert_int_equal(xtal_read_cif_string(text, "ops", &l, &err), XTAL_OK);
    const xtal_crystal *c = &l.items[0];
    assert_int_equal(c->natoms, 5);
    assert_frac_near(c->frac, 0.1, 0.2, 0.3, 1e-15);
    assert_frac_near(c->frac + 3, 0.3, 0.9, 0.55, 1e-15);
    assert_frac_near(c->frac + 6, 0.6, 0.2, 0.3, 1e-15);
    assert_frac_near(c->frac + 9, 0.9, 0.8, 0.7, 1e-15);
    assert_frac_near(c->frac + 12, 0.9, 0.3, 0.3, 1e-15);
    xtal_list_free(&l);
}

static void test_special_positions_merge(void **state)
{
    (void)state;
    /* P-3: a site on the 3-fold axis has 2 images, a general one 6. */
    static const char text[] =
        "data_p3\n_cell_length_a 5\n_cell_length_b 5\n_cell_length_c 7\n"
        "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 120\n"
        "loop_\n_symmetry_equiv_pos_as_xyz\n"
        "x,y,z\n-y,x-y,z\n-x+y,-x,z\n-x,-y,-z\ny,-x+y,-z\nx-y,x,-z\n" SITES_HEADER
        "Zn Zn1 0.33333333 0.66666667 0.25 1\n"
        "S S1 0.1 0.2 0.3 1\n";
    xtal_list l = {0};
    xtal_err err;
    assert_int_equal(xtal_read_cif_string(text, "p3", &l, &err), XTAL_OK);
    const xtal_crystal *c = &l.items[0];
    assert_int_equal(c->natoms, 8);
    assert_true(find_atom(c, 30, 1.0 / 3, 2.0 / 3, 0.25) >= 0);
    assert_true(find_atom(c, 30, 2.0 / 3, 1.0 / 3, 0.75) >= 0);
    xtal_list_free(&l);
}

static void test_cartesian_sites(void **state)
{
    (void)state;
    /* CIF frame: a along x, b in the xy plane; (0, a sqrt(3)/3, 0) is (1/3, 2/3, 0). */
    char text[1024];
    double a = 4.0;
    snprintf(text, sizeof text,
             "data_cart\n_cell_length_a 4\n_cell_length_b 4\n_cell_length_c 6\n"
             "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 120\n"
             "loop_\n_atom_site_type_symbol\n_atom_site_Cartn_x\n_atom_site_Cartn_y\n"
             "_atom_site_Cartn_z\nB 0 %.17g 0\nN 2 0 3\n",
             a * sqrt(3.0) / 3.0);
    xtal_list l = {0};
    xtal_err err;
    assert_int_equal(xtal_read_cif_string(text, "cart", &l, &err), XTAL_OK);
    const xtal_crystal *c = &l.items[0];
    assert_frac_near(c->frac, 1.0 / 3, 2.0 / 3, 0, 1e-12);
    assert_frac_near(c->frac + 3, 0.5, 0, 0.5, 1e-12);
    xtal_list_free(&l);
}

static void test_data_blocks_and_ids(void **state)
{
    (void)state;
    char path[600];
    static const char two[] = "data_global\n_journal_year 2024\n"
                              "data_A\n" CUBIC_CELL("3") SITES_HEADER
        "Cu Cu1 0 0 0 1\n"
        "data_B\n" CUBIC_CELL("4") SITES_HEADER "Au Au1 0 0 0 1\n";
    tmp_path("two blocks.cif", path, sizeof path);
    write_text(path, two, strlen(two));
    xtal_list l = {0};
    xtal_err err;
    assert_int_equal(xtal_read_cif_file(path, &l, &err), XTAL_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].id, "two blocks:A");
    assert_string_equal(l.items[1].id, "two blocks:B");
    assert_int_equal(l.items[1].Z[0], 79);
    unlink(path);
    /* One block: the file's base name. */
    tmp_path("gate.CIF", path, sizeof path);
    write_text(path, gate_cif, strlen(gate_cif));
    assert_int_equal(xtal_read_cif_file(path, &l, &err), XTAL_OK);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.items[2].id, "gate");
    unlink(path);
    xtal_list_free(&l);
}

/* ------------------------------------------------------------------ writing */

static void make_triclinic(xtal_crystal *c)
{
    assert_int_equal(xtal_crystal_init(c, 5, NULL), XTAL_OK);
    snprintf(c->id, sizeof c->id, "tri clinic#1");
    double abc[3] = {3.1, 4.2, 5.3}, ang[3] = {81, 95, 102};
    assert_int_equal(xtal_lattice_from_params(abc, ang, c->lattice, NULL), XTAL_OK);
    const int Z[5] = {8, 26, 8, 1, 92};
    const double f[15] = {0.1,       0.2,
                          0.3,       1.0 / 3.0,
                          2.0 / 3.0, 0.33334,
                          0.0,       0.999999999999,
                          0.5,       0.123456789012345678,
                          0.7,       0.3333333,
                          0.9,       0.05,
                          0.6};
    memcpy(c->Z, Z, sizeof Z);
    memcpy(c->frac, f, sizeof f);
}

static void test_write_read_roundtrip(void **state)
{
    (void)state;
    char path[600];
    tmp_path("roundtrip.cif", path, sizeof path);
    xtal_crystal c;
    make_triclinic(&c);
    xtal_err err;
    assert_int_equal(xtal_write_cif(&c, path, &err), XTAL_OK);
    xtal_list l = {0};
    assert_int_equal(xtal_read_cif_file(path, &l, &err), XTAL_OK);
    assert_int_equal(l.n, 1);
    const xtal_crystal *r = &l.items[0];
    assert_string_equal(r->id, "roundtrip");
    assert_int_equal(r->natoms, c.natoms);
    assert_memory_equal(r->Z, c.Z, sizeof(int) * 5);
    /* Full precision: coordinates come back bit for bit (near-thirds are not snapped). */
    assert_memory_equal(r->frac, c.frac, sizeof(double) * 15);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++) assert_true(fabs(r->lattice[i][k] - c.lattice[i][k]) < 1e-13);
    xtal_list_free(&l);
    xtal_crystal_free(&c);
    unlink(path);
}

static void test_write_errors(void **state)
{
    (void)state;
    xtal_crystal c;
    make_triclinic(&c);
    xtal_err err;
    assert_int_equal(xtal_write_cif(&c, "/nonexistent-dir/x.cif", &err), XTAL_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x.cif"));
    c.Z[1] = 0;
    assert_int_equal(xtal_write_cif(&c, "/nonexistent-dir/x.cif", &err), XTAL_EINVALID);
    xtal_crystal_free(&c);
}

/* ------------------------------------------------------------------- errors */

typedef struct {
    const char *what;
    const char *text;
    int code;
    const char *needle; /* must appear in the message */
} bad_case;

#define BLOCK "data_bad\n"
static const bad_case bad_cases[] = {
    {"empty", "", XTAL_EPARSE, "no data block"},
    {"no sites", BLOCK CUBIC_CELL("4"), XTAL_EINVALID, "no data block with atom sites"},
    {"no cell", BLOCK SITES_HEADER "Fe Fe1 0 0 0 1\n", XTAL_EINVALID, "_cell_length_a"},
    {"NaN cell",
     BLOCK "_cell_length_a nan\n_cell_length_b 4\n_cell_length_c 4\n"
           "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n" SITES_HEADER
           "Fe Fe1 0 0 0 1\n",
     XTAL_EINVALID, "not finite"},
    {"Inf coordinate", BLOCK CUBIC_CELL("4") SITES_HEADER "Fe Fe1 inf 0 0 1\n", XTAL_EINVALID,
     "'Fe1'"},
    {"huge coordinate", BLOCK CUBIC_CELL("4") SITES_HEADER "Fe Fe1 1e400 0 0 1\n", XTAL_EINVALID,
     "not finite"},
    {"zero length", BLOCK CUBIC_CELL("0") SITES_HEADER "Fe Fe1 0 0 0 1\n", XTAL_EINVALID,
     "not positive"},
    {"negative length", BLOCK CUBIC_CELL("-4") SITES_HEADER "Fe Fe1 0 0 0 1\n", XTAL_EINVALID,
     "not positive"},
    {"angles 170",
     BLOCK "_cell_length_a 4\n_cell_length_b 4\n_cell_length_c 4\n"
           "_cell_angle_alpha 170\n_cell_angle_beta 170\n_cell_angle_gamma 170\n" SITES_HEADER
           "Fe Fe1 0 0 0 1\n",
     XTAL_EINVALID, "do not form a cell"},
    {"flat cell",
     BLOCK "_cell_length_a 4\n_cell_length_b 4\n_cell_length_c 4\n"
           "_cell_angle_alpha 120\n_cell_angle_beta 120\n_cell_angle_gamma 120\n" SITES_HEADER
           "Fe Fe1 0 0 0 1\n",
     XTAL_EINVALID, "do not form a cell"},
    {"unknown element", BLOCK CUBIC_CELL("4") SITES_HEADER "Xx Xx1 0 0 0 1\n", XTAL_EINVALID,
     "unknown element 'Xx'"},
    {"partial occupancy", BLOCK CUBIC_CELL("4") SITES_HEADER "Fe Fe1 0 0 0 0.5\n",
     XTAL_EUNSUPPORTED, "disordered structures are not supported"},
    {"occupancy > 1", BLOCK CUBIC_CELL("4") SITES_HEADER "Fe Fe1 0 0 0 1.5\n", XTAL_EINVALID,
     "occupancy"},
    {"two species, one site",
     BLOCK CUBIC_CELL("4") SITES_HEADER "Fe Fe1 0 0 0 1\n"
                                        "Ni Ni1 0.00001 0 0 1\n",
     XTAL_EUNSUPPORTED, "disordered structures are not supported"},
    {"site listed twice",
     BLOCK CUBIC_CELL("4") SITES_HEADER "Fe Fe1 0.5 0 0 1\n"
                                        "Fe Fe2 0.5 0 1.0002 1\n",
     XTAL_EINVALID, "same position"},
    {"bad symop",
     BLOCK CUBIC_CELL("4") "loop_\n_symmetry_equiv_pos_as_xyz\n'x, y, w'\n" SITES_HEADER
                           "Fe Fe1 0 0 0 1\n",
     XTAL_EPARSE, "'x, y, w'"},
    {"singular symop",
     BLOCK CUBIC_CELL("4") "loop_\n_symmetry_equiv_pos_as_xyz\n'x, x, z'\n" SITES_HEADER
                           "Fe Fe1 0 0 0 1\n",
     XTAL_EPARSE, "not a symmetry operation"},
    {"space group without ops",
     BLOCK "_symmetry_space_group_name_H-M 'F m -3 m'\n" CUBIC_CELL("4") SITES_HEADER
     "Fe Fe1 0 0 0 1\n",
     XTAL_EUNSUPPORTED, "F m -3 m"},
    {"word coordinate", BLOCK CUBIC_CELL("4") SITES_HEADER "Fe Fe1 abc 0 0 1\n", XTAL_EPARSE,
     "'abc' is not a number"},
    {"unknown coordinate", BLOCK CUBIC_CELL("4") SITES_HEADER "Fe Fe1 ? 0 0 1\n", XTAL_EINVALID,
     "unknown"},
    {"no coordinates", BLOCK CUBIC_CELL("4") "loop_\n_atom_site_label\nFe1\n", XTAL_EINVALID,
     "without coordinates"},
    {"no element",
     BLOCK CUBIC_CELL("4") "loop_\n_atom_site_fract_x\n_atom_site_fract_y\n"
                           "_atom_site_fract_z\n0 0 0\n",
     XTAL_EINVALID, "_atom_site_label"},
};

static void test_error_paths(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *b = &bad_cases[i];
        xtal_list l = {0};
        xtal_err err = {{0}};
        int rc = xtal_read_cif_string(b->text, "bad.cif", &l, &err);
        if (rc != b->code || !strstr(err.msg, b->needle) || !strstr(err.msg, "bad.cif"))
            fail_msg("case '%s': code %d (want %d), message '%s' (want '%s')", b->what, rc, b->code,
                     err.msg, b->needle);
        assert_int_equal(l.n, 0); /* nothing appended on error */
        xtal_list_free(&l);
    }
}

/* CIF syntax errors go through libcodcif's own error path, which calls its function
 * print_message; cmocka exports a function of the same name, and in a test executable one of
 * the two wins for both libraries. So syntax errors are checked through the druse binary
 * ($DRUSE, set by ctest), which has no cmocka. */
static void run_druse_inspect(const char *path, char *output, size_t size, int *status)
{
    const char *druse = getenv("DRUSE");
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' 2>&1", druse, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(output, 1, size - 1, p);
    output[n] = '\0';
    int rc = pclose(p);
    *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static void test_syntax_errors_via_druse(void **state)
{
    (void)state;
    if (!getenv("DRUSE") || !getenv("DRUSE")[0]) skip();
    static const struct {
        const char *name, *text, *needle;
    } cases[] = {
        {"truncated.cif", "data_bad\n" CUBIC_CELL("4") SITES_HEADER "Fe Fe1 0.1 0.2\n",
         ":16: wrong number of elements"},
        {"quote.cif", "data_bad\n_cell_length_a 'unterminated\n", ":2: incorrect CIF syntax"},
        {"stray.cif", "loose values\ndata_x\n", "stray CIF values"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[600], output[4096];
        int status;
        tmp_path(cases[i].name, path, sizeof path);
        write_text(path, cases[i].text, strlen(cases[i].text));
        run_druse_inspect(path, output, sizeof output, &status);
        if (status != 1 || !strstr(output, cases[i].needle) || !strstr(output, cases[i].name))
            fail_msg("%s: exit %d, output '%s' (want '%s')", cases[i].name, status, output,
                     cases[i].needle);
        unlink(path);
    }
}

/* Over 64 atoms, coinciding sites are found on a grid: check it finds a pair across the cell
 * boundary in a skewed cell, and no false pair among 125 distinct atoms. */
static char *grid_cif(int with_duplicate)
{
    size_t size = 16384, n = 0;
    char *text = malloc(size);
    assert_non_null(text);
    n += (size_t)snprintf(
        text + n, size - n,
        "data_grid\n_cell_length_a 20\n_cell_length_b 21\n_cell_length_c 22\n"
        "_cell_angle_alpha 70\n_cell_angle_beta 80\n_cell_angle_gamma 110\n" SITES_HEADER);
    for (int i = 0; i < 125; i++)
        n += (size_t)snprintf(text + n, size - n, "Si Si%d %.3f %.3f %.3f 1\n", i,
                              0.1 + (i % 5) / 5.0, 0.1 + (i / 5 % 5) / 5.0, 0.1 + (i / 25) / 5.0);
    /* 0.99999 and 0.000005 in b: 1.5e-5 apart across the boundary */
    n += (size_t)snprintf(text + n, size - n, "Ge Ge1 0.5 0.99999 0.5 1\n");
    if (with_duplicate) snprintf(text + n, size - n, "Sn Sn1 0.5 0.000005 0.5 1\n");
    return text;
}

static void test_many_atoms_grid(void **state)
{
    (void)state;
    xtal_list l = {0};
    xtal_err err;
    char *text = grid_cif(0);
    assert_int_equal(xtal_read_cif_string(text, "grid", &l, &err), XTAL_OK);
    assert_int_equal(l.items[0].natoms, 126);
    free(text);
    text = grid_cif(1);
    assert_int_equal(xtal_read_cif_string(text, "grid", &l, &err), XTAL_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "'Ge1' (Ge) and 'Sn1' (Sn)"));
    assert_int_equal(l.n, 1);
    free(text);
    xtal_list_free(&l);
}

static void test_too_many_atoms(void **state)
{
    (void)state;
    /* 1000 sites times 101 translations: more than XTAL_MAX_ATOMS after expansion. */
    size_t size = 200000;
    char *text = malloc(size);
    assert_non_null(text);
    size_t n = (size_t)snprintf(
        text, size, "data_big\n" CUBIC_CELL("400") "loop_\n_symmetry_equiv_pos_as_xyz\n");
    for (int t = 0; t < 101; t++) n += (size_t)snprintf(text + n, size - n, "'x+%d/101,y,z'\n", t);
    n += (size_t)snprintf(text + n, size - n, SITES_HEADER);
    for (int s = 0; s < 1000; s++)
        n += (size_t)snprintf(text + n, size - n, "H H%d 0.001 %.6f %.6f 1\n", s, (s % 40) / 40.0,
                              (s / 40) / 25.0);
    xtal_list l = {0};
    xtal_err err;
    assert_int_equal(xtal_read_cif_string(text, "big", &l, &err), XTAL_ELIMIT);
    assert_non_null(strstr(err.msg, "100000"));
    free(text);
}

static void test_file_errors(void **state)
{
    (void)state;
    xtal_list l = {0};
    xtal_err err;
    assert_int_equal(xtal_read_cif_file("/nonexistent/x.cif", &l, &err), XTAL_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/x.cif"));
    assert_int_equal(xtal_read_cif_file(tmp_dir, &l, &err), XTAL_EIO);
    assert_non_null(strstr(err.msg, "directory"));
    char path[600];
    tmp_path("binary.cif", path, sizeof path);
    const char garbage[] = "data_x\n\0\x01\x02\xff";
    write_text(path, garbage, sizeof garbage);
    assert_int_equal(xtal_read_cif_file(path, &l, &err), XTAL_EPARSE);
    assert_non_null(strstr(err.msg, "binary"));
    assert_non_null(strstr(err.msg, "binary.cif"));
    unlink(path);
    assert_int_equal(l.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_p1_string),
        cmocka_unit_test(test_rocksalt_fm3m_expansion),
        cmocka_unit_test(test_uncertainties_and_labels),
        cmocka_unit_test(test_symop_forms),
        cmocka_unit_test(test_special_positions_merge),
        cmocka_unit_test(test_cartesian_sites),
        cmocka_unit_test(test_data_blocks_and_ids),
        cmocka_unit_test(test_write_read_roundtrip),
        cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_error_paths),
        cmocka_unit_test(test_syntax_errors_via_druse),
        cmocka_unit_test(test_many_atoms_grid),
        cmocka_unit_test(test_too_many_atoms),
        cmocka_unit_test(test_file_errors),
    };
    return cmocka_run_group_tests(tests, make_tmp_dir, remove_tmp_dir);
}
