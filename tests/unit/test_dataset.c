/* Dataset CSVs and their HDF5 cache: RFC 4180 edge cases, chunking, hostile input, the cache
 * round trip (bit for bit), staleness and corruption, and (with $DRUSE_DATA) perov_5. */
#define _GNU_SOURCE /* memmem */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "crystal/crystal.h"

char *progname = "test"; /* libcodcif needs it */

/* ---------------------------------------------------------------- helpers */

static char tmp_dir[1024];

static const char *tmp_path(const char *name)
{
    static char buf[16][1200]; /* a ring: callers copy what they keep long */
    static int turn;
    char *out = buf[turn++ % 16];
    snprintf(out, sizeof buf[0], "%s/%s", tmp_dir, name);
    return out;
}

static void write_text(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void write_file(const char *path, const char *text)
{
    write_text(path, text, strlen(text));
}

static void write_gz(const char *path, const char *text, size_t len)
{
    gzFile gz = gzopen(path, "wb");
    assert_non_null(gz);
    assert_int_equal(gzwrite(gz, text, (unsigned)len), (int)len);
    assert_int_equal(gzclose(gz), Z_OK);
}

/* A small P1 CIF in pymatgen's style (as in the dataset CSVs): rock salt with edge a. */
static char *nacl_cif(double a, const char *anion)
{
    char *cif = malloc(4096);
    snprintf(cif, 4096,
             "# generated using pymatgen\n"
             "data_Na%s\n"
             "_symmetry_space_group_name_H-M   'P 1'\n"
             "_cell_length_a   %.8f\n_cell_length_b   %.8f\n_cell_length_c   %.8f\n"
             "_cell_angle_alpha   60.00000000\n_cell_angle_beta   60.00000000\n"
             "_cell_angle_gamma   60.00000000\n"
             "_symmetry_Int_Tables_number   1\n"
             "loop_\n _symmetry_equiv_pos_site_id\n _symmetry_equiv_pos_as_xyz\n  1  'x, y, z'\n"
             "loop_\n _atom_site_type_symbol\n _atom_site_label\n"
             " _atom_site_symmetry_multiplicity\n _atom_site_fract_x\n _atom_site_fract_y\n"
             " _atom_site_fract_z\n _atom_site_occupancy\n"
             "  Na  Na0  1  0.00000000  0.00000000  0.00000000  1.0\n"
             "  %s  %s1  1  0.50000000  0.50000000  0.50000000  1.0\n",
             anion, a, a, a, anion, anion);
    return cif;
}

/* Appends a dataset row: material_id, fe, band_gap, pretty_formula, elements, cif, sg, n. */
static void append_row(char **csv, size_t *len, const char *id, const char *fe, const char *gap,
                       double a, const char *anion)
{
    char *cif = nacl_cif(a, anion);
    size_t need = strlen(cif) + 512;
    *csv = realloc(*csv, *len + need);
    *len += (size_t)snprintf(*csv + *len, need, "%s,%s,%s,Na%s,\"['Na', '%s']\",\"%s\",225,2\n", id,
                             fe, gap, anion, anion, cif);
    free(cif);
}

#define DATASET_HEADER                                                                             \
    "material_id,formation_energy_per_atom,band_gap,pretty_formula,elements,cif,"                  \
    "spacegroup.number,n_atoms\n"

/* A dataset CSV with n rows (n >= 3): row 1 has an empty band gap, row 2 a non-number. */
static char *make_dataset_csv(int n, size_t *len_out)
{
    const char *anions[] = {"Cl", "Br", "I", "F"};
    char *csv = strdup(DATASET_HEADER);
    size_t len = strlen(csv);
    for (int i = 0; i < n; i++) {
        char id[32], fe[32], gap[32];
        snprintf(id, sizeof id, "mp-%d", 1000 + i);
        snprintf(fe, sizeof fe, "%.17g", -1.0 - 0.01 * i);
        snprintf(gap, sizeof gap, "%.17g", 0.5 * i);
        append_row(&csv, &len, id, fe,
                   i == 1   ? ""
                   : i == 2 ? "n/a"
                            : gap,
                   5.0 + 0.1 * i, anions[i % 4]);
    }
    *len_out = len;
    return csv;
}

/* All rows of a file through chunks of chunk_rows, serialized as text for comparison. */
static char *rows_as_text(const char *path, int chunk_rows)
{
    xtal_csv_reader *r = NULL;
    xtal_err err;
    assert_int_equal(xtal_csv_open(path, &r, &err), XTAL_OK);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    xtal_csv_chunk chunk = {0};
    int rc;
    while ((rc = xtal_csv_read_chunk(r, chunk_rows, &chunk, &err)) == XTAL_OK) {
        assert_true(chunk.n >= 1 && chunk.n <= chunk_rows);
        for (int i = 0; i < chunk.n; i++) {
            const xtal_csv_row *row = &chunk.rows[i];
            for (int f = -1; f < row->nfields; f++) {
                const char *text = f < 0 ? "" : row->fields[f];
                while (len + strlen(text) + 64 > cap) out = realloc(out, cap *= 2);
                if (f < 0)
                    len += (size_t)sprintf(out + len, "[%ld@%ld]", row->row, row->line);
                else
                    len += (size_t)sprintf(out + len, "%s\x1f", text);
            }
        }
    }
    assert_int_equal(rc, XTAL_EOF);
    out[len] = '\0';
    xtal_csv_chunk_free(&chunk);
    xtal_csv_close(r);
    return out;
}

/* Opens path and reads every row; returns the first error (XTAL_OK if none) with its text. */
static int read_all(const char *path, xtal_err *err)
{
    xtal_csv_reader *r = NULL;
    int rc = xtal_csv_open(path, &r, err);
    if (rc) return rc;
    xtal_csv_chunk chunk = {0};
    while ((rc = xtal_csv_read_chunk(r, 4, &chunk, err)) == XTAL_OK) {
    }
    xtal_csv_chunk_free(&chunk);
    xtal_csv_close(r);
    return rc == XTAL_EOF ? XTAL_OK : rc;
}

static void assert_contains(const char *text, const char *part)
{
    if (!strstr(text, part)) fail_msg("'%s' does not contain '%s'", text, part);
}

/* Bit-for-bit equality of two datasets. */
static void assert_same_dataset(const xtal_dataset *a, const xtal_dataset *b)
{
    assert_int_equal(a->crystals.n, b->crystals.n);
    assert_int_equal(a->n_props, b->n_props);
    for (int p = 0; p < a->n_props; p++) assert_string_equal(a->prop_names[p], b->prop_names[p]);
    for (int i = 0; i < a->crystals.n; i++) {
        const xtal_crystal *x = &a->crystals.items[i], *y = &b->crystals.items[i];
        assert_string_equal(x->id, y->id);
        assert_int_equal(x->natoms, y->natoms);
        assert_memory_equal(x->lattice, y->lattice, sizeof x->lattice);
        assert_memory_equal(x->Z, y->Z, (size_t)x->natoms * sizeof *x->Z);
        assert_memory_equal(x->frac, y->frac, 3 * (size_t)x->natoms * sizeof *x->frac);
    }
    if (a->n_props > 0 && a->crystals.n > 0)
        assert_memory_equal(a->prop_values, b->prop_values,
                            (size_t)a->crystals.n * a->n_props * sizeof(double));
}

static void bump_mtime(const char *path, int seconds)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    times[1].tv_sec += seconds;
    assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
}

/* --------------------------------------------------------- the CSV reader */

static void test_quoting_rules(void **state)
{
    (void)state;
    const char *path = tmp_path("quoting.csv");
    write_file(path, "material_id,cif,note\r\n"
                     "a,\"line one\nline two\",\"say \"\"hi\"\", then go\"\r\n"
                     "\n"
                     "b,,\"\"\n"
                     "c,\"x,y\",plain \"quote\" inside\n"
                     "d,\"\"\"\",last");
    char *text = rows_as_text(path, 100);
    assert_string_equal(text, "[0@2]a\x1fline one\nline two\x1fsay \"hi\", then go\x1f"
                              "[1@5]b\x1f\x1f\x1f"
                              "[2@6]c\x1fx,y\x1fplain \"quote\" inside\x1f"
                              "[3@7]d\x1f\"\x1flast\x1f");
    free(text);
    xtal_csv_reader *r = NULL;
    xtal_err err;
    assert_int_equal(xtal_csv_open(path, &r, &err), XTAL_OK);
    assert_int_equal(xtal_csv_ncols(r), 3);
    assert_string_equal(xtal_csv_colname(r, 2), "note");
    assert_null(xtal_csv_colname(r, 3));
    xtal_csv_close(r);
}

static void test_chunks_equal_whole_file_gz_and_plain(void **state)
{
    (void)state;
    size_t len;
    char *csv = make_dataset_csv(23, &len);
    const char *plain = tmp_path("chunks.csv"), *gz = tmp_path("chunks.csv.gz");
    write_text(plain, csv, len);
    write_gz(gz, csv, len);
    char *whole = rows_as_text(plain, 1 << 30);
    const int sizes[] = {1, 2, 7, 23, 24};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *a = rows_as_text(plain, sizes[i]), *b = rows_as_text(gz, sizes[i]);
        assert_string_equal(a, whole);
        assert_string_equal(b, whole);
        free(a);
        free(b);
    }
    free(whole);
    free(csv);
}

static void test_header_errors(void **state)
{
    (void)state;
    xtal_csv_reader *r = NULL;
    xtal_err err;
    const char *path = tmp_path("no_cif_column.csv");
    write_file(path, "material_id,formula\nmp-1,NaCl\n");
    assert_int_equal(xtal_csv_open(path, &r, &err), XTAL_EPARSE);
    assert_null(r);
    assert_contains(err.msg, "no_cif_column.csv");
    assert_contains(err.msg, "'cif'");

    path = tmp_path("no_id_column.csv.gz");
    write_gz(path, "cif,x\n\"data_x\",1\n", 17);
    assert_int_equal(xtal_csv_open(path, &r, &err), XTAL_EPARSE);
    assert_contains(err.msg, "no_id_column.csv.gz");
    assert_contains(err.msg, "'material_id'");

    path = tmp_path("empty.csv");
    write_file(path, "");
    assert_int_equal(xtal_csv_open(path, &r, &err), XTAL_EPARSE);
    assert_contains(err.msg, "empty.csv");
    assert_contains(err.msg, "empty");

    path = tmp_path("empty.csv.gz");
    write_gz(path, "", 0);
    assert_int_equal(xtal_csv_open(path, &r, &err), XTAL_EPARSE);
    assert_contains(err.msg, "empty");

    path = tmp_path("duplicate.csv");
    write_file(path, "material_id,cif,cif\n");
    assert_int_equal(xtal_csv_open(path, &r, &err), XTAL_EPARSE);
    assert_contains(err.msg, "twice");

    assert_int_equal(xtal_csv_open(tmp_path("does_not_exist.csv"), &r, &err), XTAL_EIO);
    assert_contains(err.msg, "does_not_exist.csv");
    assert_int_equal(xtal_csv_open(tmp_dir, &r, &err), XTAL_EIO);

    /* only a header: no rows, not an error */
    path = tmp_path("header_only.csv");
    write_file(path, "material_id,cif\n");
    assert_int_equal(read_all(path, &err), XTAL_OK);
    xtal_dataset ds;
    assert_int_equal(xtal_dataset_read_csv(path, -1, &ds, &err), XTAL_OK);
    assert_int_equal(ds.crystals.n, 0);
    xtal_dataset_free(&ds);
}

static void test_row_errors_name_file_and_line(void **state)
{
    (void)state;
    xtal_err err;
    const char *path = tmp_path("ragged.csv");
    write_file(path, "material_id,cif\na,\"x\ny\"\nb,z,extra\n");
    assert_int_equal(read_all(path, &err), XTAL_EPARSE);
    assert_contains(err.msg, "ragged.csv:4:");
    assert_contains(err.msg, "3 fields");

    path = tmp_path("short_row.csv");
    write_file(path, "material_id,cif,x\na,b,c\nd,e\n");
    assert_int_equal(read_all(path, &err), XTAL_EPARSE);
    assert_contains(err.msg, "short_row.csv:3:");

    path = tmp_path("unterminated.csv");
    write_file(path, "material_id,cif\na,\"never\nclosed\n");
    assert_int_equal(read_all(path, &err), XTAL_EPARSE);
    assert_contains(err.msg, "unterminated.csv");
    assert_contains(err.msg, "unterminated");
    assert_contains(err.msg, "line 2");

    path = tmp_path("after_quote.csv");
    write_file(path, "material_id,cif\na,\"x\"y\n");
    assert_int_equal(read_all(path, &err), XTAL_EPARSE);
    assert_contains(err.msg, "after_quote.csv:2:");

    path = tmp_path("nul.csv");
    write_text(path, "material_id,cif\na,b\0c\n", 22);
    assert_int_equal(read_all(path, &err), XTAL_EPARSE);
    assert_contains(err.msg, "NUL");

    /* a reader that failed keeps failing with the same message */
    xtal_csv_reader *r = NULL;
    write_file(path = tmp_path("sticky.csv"), "material_id,cif\na,b\nc\nd,e\n");
    assert_int_equal(xtal_csv_open(path, &r, &err), XTAL_OK);
    xtal_csv_chunk chunk = {0};
    assert_int_equal(xtal_csv_read_chunk(r, 1, &chunk, &err), XTAL_OK);
    assert_int_equal(xtal_csv_read_chunk(r, 1, &chunk, &err), XTAL_EPARSE);
    assert_int_equal(xtal_csv_read_chunk(r, 1, &chunk, &err), XTAL_EPARSE);
    assert_contains(err.msg, "sticky.csv:3:");
    assert_int_equal(xtal_csv_read_chunk(r, 0, &chunk, &err), XTAL_EPARSE);
    xtal_csv_chunk_free(&chunk);
    xtal_csv_close(r);
}

static void test_truncated_gzip_is_reported(void **state)
{
    (void)state;
    size_t len;
    char *csv = make_dataset_csv(400, &len);
    const char *path = tmp_path("truncated.csv.gz");
    write_gz(path, csv, len);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);
    xtal_err err;
    assert_int_equal(read_all(path, &err), XTAL_EPARSE);
    assert_contains(err.msg, "truncated.csv.gz");
    assert_contains(err.msg, "truncated");
    free(csv);
}

static void test_limits(void **state)
{
    (void)state;
    /* a field over 16 MiB is refused, not swallowed */
    size_t big = (17u << 20);
    char *text = malloc(big + 64);
    size_t len = (size_t)sprintf(text, "material_id,cif\na,\"");
    memset(text + len, 'x', big);
    len += big;
    len += (size_t)sprintf(text + len, "\"\n");
    const char *path = tmp_path("huge_field.csv");
    write_text(path, text, len);
    free(text);
    xtal_err err;
    assert_int_equal(read_all(path, &err), XTAL_ELIMIT);
    assert_contains(err.msg, "huge_field.csv:2:");
    unlink(path);
}

/* ----------------------------------------------------------- the dataset */

static void test_dataset_properties_and_chunks(void **state)
{
    (void)state;
    size_t len;
    char *csv = make_dataset_csv(9, &len);
    const char *path = tmp_path("dataset.csv.gz");
    write_gz(path, csv, len);
    free(csv);
    xtal_dataset ds;
    xtal_err err;
    int rc = xtal_dataset_read_csv(path, -1, &ds, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_int_equal(ds.crystals.n, 9);
    assert_int_equal(ds.n_props, 3);
    int fe = xtal_dataset_prop_index(&ds, "formation_energy_per_atom");
    int gap = xtal_dataset_prop_index(&ds, "band_gap");
    int sg = xtal_dataset_prop_index(&ds, "spacegroup.number");
    assert_true(fe >= 0 && gap >= 0 && sg >= 0);
    assert_int_equal(xtal_dataset_prop_index(&ds, "pretty_formula"), -1);
    assert_int_equal(xtal_dataset_prop_index(&ds, "n_atoms"), -1);
    assert_int_equal(xtal_dataset_prop_index(&ds, "elements"), -1);
    const double *v = ds.prop_values;
    assert_true(v[0 * 3 + fe] == -1.0 && v[0 * 3 + sg] == 225.0);
    assert_true(isnan(v[1 * 3 + gap])); /* empty */
    assert_true(isnan(v[2 * 3 + gap])); /* "n/a" */
    assert_true(v[3 * 3 + gap] == 1.5);
    const xtal_crystal *c = &ds.crystals.items[4];
    assert_string_equal(c->id, "mp-1004");
    assert_int_equal(c->natoms, 2);
    assert_int_equal(c->Z[0], 11);
    assert_int_equal(c->Z[1], 17); /* anions cycle Cl, Br, I, F: row 4 is Cl */
    assert_true(fabs(c->frac[3] - 0.5) < 1e-12);
    assert_true(fabs(xtal_volume(c) - pow(5.4, 3) / sqrt(2.0)) < 1e-6);

    /* begin + parse_chunk over small chunks gives the same dataset */
    xtal_csv_reader *r = NULL;
    xtal_dataset chunked;
    assert_int_equal(xtal_csv_open(path, &r, &err), XTAL_OK);
    assert_int_equal(xtal_dataset_begin(&chunked, r, &err), XTAL_OK);
    xtal_csv_chunk chunk = {0};
    while ((rc = xtal_csv_read_chunk(r, 2, &chunk, &err)) == XTAL_OK)
        assert_int_equal(xtal_dataset_parse_chunk(&chunked, r, &chunk, &err), XTAL_OK);
    assert_int_equal(rc, XTAL_EOF);
    assert_same_dataset(&ds, &chunked);
    xtal_csv_chunk_free(&chunk);
    xtal_csv_close(r);
    xtal_dataset_free(&chunked);

    xtal_dataset first;
    assert_int_equal(xtal_dataset_read_csv(path, 4, &first, &err), XTAL_OK);
    assert_int_equal(first.crystals.n, 4);
    xtal_dataset_free(&first);
    xtal_dataset_free(&ds);
}

static void test_dataset_bad_cif_names_row(void **state)
{
    (void)state;
    size_t len;
    char *csv = make_dataset_csv(3, &len);
    csv = realloc(csv, len + 200);
    strcpy(csv + len, "mp-bad,0,0,X,\"[]\",\"data_garbage\n_cell_length_a oops\n\",1,1\n");
    const char *path = tmp_path("bad_cif.csv");
    write_file(path, csv);
    free(csv);
    xtal_dataset ds;
    xtal_err err;
    int rc = xtal_dataset_read_csv(path, -1, &ds, &err);
    assert_true(rc != XTAL_OK);
    assert_contains(err.msg, "bad_cif.csv:");
    assert_contains(err.msg, "mp-bad");
    assert_int_equal(ds.crystals.n, 0); /* freed on error */
}

/* ---------------------------------------------------------------- the cache */

static void test_cache_round_trip_bit_for_bit(void **state)
{
    (void)state;
    size_t len;
    char *csv = make_dataset_csv(17, &len);
    const char *path = tmp_path("roundtrip.csv");
    write_text(path, csv, len);
    free(csv);
    xtal_dataset ds, back;
    xtal_err err;
    assert_int_equal(xtal_dataset_read_csv(path, -1, &ds, &err), XTAL_OK);
    const char *cache = tmp_path("roundtrip.h5");
    int rc = xtal_dataset_write_cache(&ds, path, cache, &err);
    if (rc) fail_msg("%s", err.msg);
    rc = xtal_dataset_read_cache(cache, &back, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_same_dataset(&ds, &back);
    xtal_dataset_free(&back);

    /* no temporary file left beside it */
    char tmp[1400], host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(tmp, sizeof tmp, "%s/roundtrip.%s.%ld.h5.tmp", tmp_dir, host, (long)getpid());
    assert_int_equal(access(tmp, F_OK), -1);

    /* an empty dataset round-trips too */
    xtal_dataset empty = {0};
    assert_int_equal(xtal_dataset_write_cache(&empty, NULL, tmp_path("empty.h5"), &err), XTAL_OK);
    assert_int_equal(xtal_dataset_read_cache(tmp_path("empty.h5"), &back, &err), XTAL_OK);
    assert_int_equal(back.crystals.n, 0);
    xtal_dataset_free(&back);
    xtal_dataset_free(&ds);
}

/* Flips one byte of the first occurrence of needle in the file. */
static void flip_byte_of(const char *path, const void *needle, size_t needle_len)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    char *data = malloc((size_t)size);
    fseek(f, 0, SEEK_SET);
    assert_int_equal(fread(data, 1, (size_t)size, f), (size_t)size);
    char *hit = memmem(data, (size_t)size, needle, needle_len);
    assert_non_null(hit);
    fseek(f, hit - data + 3, SEEK_SET);
    fputc(hit[3] ^ 0x10, f);
    fclose(f);
    free(data);
}

static void test_cache_staleness_and_corruption(void **state)
{
    (void)state;
    size_t len;
    char *csv = make_dataset_csv(6, &len);
    const char *path = tmp_path("stale.csv.gz"), *cache = tmp_path("stale.cache.h5");
    write_gz(path, csv, len);
    unlink(cache);
    xtal_dataset ds, again;
    xtal_cache_info info;
    xtal_err err;

    assert_int_equal(xtal_dataset_load_ex(path, cache, &ds, &info, &err), XTAL_OK);
    assert_int_equal(info.from_cache, 0);
    assert_int_equal(info.cache_written, 1);
    assert_string_equal(info.cache_path, cache);
    assert_int_equal(xtal_dataset_load_ex(path, cache, &again, &info, &err), XTAL_OK);
    assert_int_equal(info.from_cache, 1);
    assert_same_dataset(&ds, &again);
    xtal_dataset_free(&again);

    /* same size, newer mtime: rebuilt */
    bump_mtime(path, 10);
    assert_int_equal(xtal_dataset_load_ex(path, cache, &again, &info, &err), XTAL_OK);
    assert_int_equal(info.from_cache, 0);
    assert_int_equal(info.cache_written, 1);
    assert_contains(info.note, "stale");
    xtal_dataset_free(&again);

    /* a changed source: rebuilt with the new content */
    free(csv);
    csv = make_dataset_csv(7, &len);
    write_gz(path, csv, len);
    assert_int_equal(xtal_dataset_load_ex(path, cache, &again, &info, &err), XTAL_OK);
    assert_int_equal(info.from_cache, 0);
    assert_int_equal(again.crystals.n, 7);
    xtal_dataset_free(&again);
    xtal_dataset_free(&ds);
    assert_int_equal(xtal_dataset_load_ex(path, cache, &ds, &info, &err), XTAL_OK);
    assert_int_equal(info.from_cache, 1);

    /* a flipped bit in the data: the checksum catches it */
    flip_byte_of(cache, ds.crystals.items[0].lattice, sizeof ds.crystals.items[0].lattice);
    assert_int_equal(xtal_dataset_read_cache(cache, &again, &err), XTAL_EPARSE);
    assert_contains(err.msg, "checksum");
    assert_int_equal(xtal_dataset_load_ex(path, cache, &again, &info, &err), XTAL_OK);
    assert_int_equal(info.from_cache, 0);
    assert_contains(info.note, "checksum");
    assert_same_dataset(&ds, &again);
    xtal_dataset_free(&again);

    /* a truncated cache file */
    struct stat st;
    assert_int_equal(stat(cache, &st), 0);
    assert_int_equal(truncate(cache, st.st_size / 2), 0);
    assert_int_equal(xtal_dataset_read_cache(cache, &again, &err), XTAL_EPARSE);
    assert_contains(err.msg, "stale.cache.h5");
    assert_int_equal(xtal_dataset_load_ex(path, cache, &again, &info, &err), XTAL_OK);
    assert_int_equal(info.from_cache, 0);
    assert_int_equal(info.cache_written, 1);
    assert_same_dataset(&ds, &again);
    xtal_dataset_free(&again);

    /* not an HDF5 file at all */
    write_file(cache, "hello");
    assert_int_equal(xtal_dataset_read_cache(cache, &again, &err), XTAL_EPARSE);
    assert_int_equal(xtal_dataset_load_ex(path, cache, &again, &info, &err), XTAL_OK);
    assert_int_equal(info.from_cache, 0);
    xtal_dataset_free(&again);

    /* an explicit cache that cannot be written is an error */
    assert_int_not_equal(
        xtal_dataset_load_ex(path, tmp_path("no/such/dir/x.h5"), &again, &info, &err), XTAL_OK);
    xtal_dataset_free(&ds);
    free(csv);
}

/* Removes the *.h5.tmp files killed writers left in the scratch folder. */
static void remove_temp_files(void)
{
    DIR *dir = opendir(tmp_dir);
    assert_non_null(dir);
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 7 && strcmp(e->d_name + n - 7, ".h5.tmp") == 0) unlink(tmp_path(e->d_name));
    }
    closedir(dir);
}

/* A writer killed at any moment leaves either no cache or a complete one, never a torn file
 * under the cache's name (it writes to a temporary name and renames). */
static void test_killed_writer_leaves_no_torn_cache(void **state)
{
    (void)state;
    size_t len;
    char *csv = make_dataset_csv(3000, &len);
    char path[1200]; /* a copy: tmp_path's buffers are reused */
    snprintf(path, sizeof path, "%s", tmp_path("killed.csv"));
    write_text(path, csv, len);
    free(csv);
    xtal_dataset ds, back;
    xtal_err err;
    assert_int_equal(xtal_dataset_read_csv(path, -1, &ds, &err), XTAL_OK);
    const int delays_us[] = {500, 2000, 5000, 11000, 23000};
    for (size_t k = 0; k < sizeof delays_us / sizeof delays_us[0]; k++) {
        char cache_path[1200];
        snprintf(cache_path, sizeof cache_path, "%s/killed.%zu.h5", tmp_dir, k);
        unlink(cache_path);
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
            for (;;) xtal_dataset_write_cache(&ds, path, cache_path, NULL);
        }
        /* wait for the first complete cache, then kill the child while it rewrites it */
        for (int waited = 0; access(cache_path, F_OK) != 0 && waited < 20000; waited++) usleep(500);
        usleep((useconds_t)delays_us[k]);
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        int rc = xtal_dataset_read_cache(cache_path, &back, &err);
        if (rc) fail_msg("torn cache after kill: %s", err.msg);
        assert_same_dataset(&ds, &back);
        xtal_dataset_free(&back);
    }
    xtal_dataset_free(&ds);
    remove_temp_files();
}

static void test_default_cache_location(void **state)
{
    (void)state;
    size_t len;
    char *csv = make_dataset_csv(3, &len);
    char ro_dir[1200], cache_dir[1200], csv_path[1300], where[4096];
    snprintf(ro_dir, sizeof ro_dir, "%s", tmp_path("readonly"));
    snprintf(cache_dir, sizeof cache_dir, "%s", tmp_path("cachedir"));
    mkdir(ro_dir, 0755);
    chmod(ro_dir, 0755);
    snprintf(csv_path, sizeof csv_path, "%s/data.csv", ro_dir);
    write_text(csv_path, csv, len);
    free(csv);
    char old_h5[1400];
    snprintf(old_h5, sizeof old_h5, "%s.h5", csv_path);
    unlink(old_h5);
    xtal_err err;
    setenv("DRUSE_CACHE_DIR", cache_dir, 1);

    /* writable folder: beside the CSV */
    assert_int_equal(xtal_dataset_cache_path(csv_path, where, sizeof where, &err), XTAL_OK);
    assert_string_equal(where, old_h5);

    /* read-only folder (even for root, which ignores permissions): $DRUSE_CACHE_DIR */
    assert_int_equal(chmod(ro_dir, 0555), 0);
    assert_int_equal(xtal_dataset_cache_path(csv_path, where, sizeof where, &err), XTAL_OK);
    assert_true(strncmp(where, cache_dir, strlen(cache_dir)) == 0);
    assert_contains(where, "data.csv.");
    xtal_dataset ds;
    xtal_cache_info info;
    assert_int_equal(xtal_dataset_load_ex(csv_path, NULL, &ds, &info, &err), XTAL_OK);
    assert_int_equal(info.cache_written, 1);
    assert_string_equal(info.cache_path, where);
    assert_int_equal(access(old_h5, F_OK), -1);
    xtal_dataset_free(&ds);
    assert_int_equal(xtal_dataset_load_ex(csv_path, NULL, &ds, &info, &err), XTAL_OK);
    assert_int_equal(info.from_cache, 1);
    xtal_dataset_free(&ds);
    chmod(ro_dir, 0755);
}

/* --------------------------------------------------------- real data */

static void test_perov5_test_split(void **state)
{
    (void)state;
    const char *data = getenv("DRUSE_DATA");
    char path[2048];
    snprintf(path, sizeof path, "%s/perov_5/test.csv.gz", data ? data : "");
    if (!data || access(path, R_OK) != 0) {
        print_message("perov_5 not found under $DRUSE_DATA: skipped\n");
        skip();
    }
    char cache_dir[1200];
    snprintf(cache_dir, sizeof cache_dir, "%s", tmp_path("perov_cache"));
    setenv("DRUSE_CACHE_DIR", cache_dir, 1);
    xtal_dataset ds, cached;
    xtal_cache_info info;
    xtal_err err;
    /* a private cache, so an old one from another run cannot hide the CSV parse */
    char cache[1400];
    snprintf(cache, sizeof cache, "%s/perov_5_test.h5", cache_dir);
    mkdir(cache_dir, 0755);
    unlink(cache);
    int rc = xtal_dataset_load_ex(path, cache, &ds, &info, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_int_equal(info.from_cache, 0);
    assert_int_equal(ds.crystals.n, 3785);
    for (int i = 0; i < ds.crystals.n; i++) assert_int_equal(ds.crystals.items[i].natoms, 5);
    assert_true(xtal_dataset_prop_index(&ds, "heat_ref") >= 0);
    assert_int_equal(xtal_dataset_prop_index(&ds, "formula"), -1);
    assert_int_equal(xtal_dataset_load_ex(path, cache, &cached, &info, &err), XTAL_OK);
    assert_int_equal(info.from_cache, 1);
    assert_same_dataset(&ds, &cached);
    xtal_dataset_free(&cached);
    xtal_dataset_free(&ds);
}

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("DRUSE_TEST_TMP");
    if (base && base[0])
        snprintf(tmp_dir, sizeof tmp_dir, "%s/dataset", base);
    else
        snprintf(tmp_dir, sizeof tmp_dir, "/tmp/druse-test-dataset-%ld", (long)getpid());
    mkdir(base && base[0] ? base : "/tmp", 0755);
    if (mkdir(tmp_dir, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quoting_rules),
        cmocka_unit_test(test_chunks_equal_whole_file_gz_and_plain),
        cmocka_unit_test(test_header_errors),
        cmocka_unit_test(test_row_errors_name_file_and_line),
        cmocka_unit_test(test_truncated_gzip_is_reported),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_dataset_properties_and_chunks),
        cmocka_unit_test(test_dataset_bad_cif_names_row),
        cmocka_unit_test(test_cache_round_trip_bit_for_bit),
        cmocka_unit_test(test_cache_staleness_and_corruption),
        cmocka_unit_test(test_killed_writer_leaves_no_torn_cache),
        cmocka_unit_test(test_default_cache_location),
        cmocka_unit_test(test_perov5_test_split),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
