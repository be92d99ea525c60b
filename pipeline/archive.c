/* pipeline/archive.c: records, the archive file layout, reading, dedup, merged files.
 * The segment/master machinery of a running campaign is in pipeline/archive_mpi.c.
 *
 * Every column is one row of the table `columns`: its group, name, element type, elements
 * per row, unit, and where it lives in pipe_records. Growing buffers, writing, reading and the
 * master's virtual datasets all walk that table, so a new column is one line. */
#include "pipeline/archive.h"

#include <hdf5.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crystal/crystal.h" /* again, after <hdf5.h>: its HDF5 helpers */
#include "pipeline/archive_int.h"

static const char *const count_names[PIPE_NCOUNTS] = {
    "sampled", "invalid", "too_close", "not_neutral", "symmetry_failed", "relax_failed", "passed"};

const char *pipe_count_name(int k)
{
    return k >= 0 && k < PIPE_NCOUNTS ? count_names[k] : "?";
}

#define COL(g, n, t, w, u, f)                                                                      \
    {                                                                                              \
        g, n, t, w, u, offsetof(pipe_records, f)                                                   \
    }
const arc_column arc_columns[] = {
    COL(ARC_CRYSTAL, "sample_id", ARC_U64, 1, "batch_id * batch_size + index in batch", sample_id),
    COL(ARC_CRYSTAL, "batch_id", ARC_U32, 1, "sampling batch", batch_id),
    COL(ARC_CRYSTAL, "natoms", ARC_I32, 1, "atoms in the cell", natoms),
    COL(ARC_CRYSTAL, "atom_offset", ARC_I64, 1, "first row of atoms/", atom_offset),
    COL(ARC_CRYSTAL, "lattice", ARC_F64, 9, "Angstrom, rows are the vectors a, b, c (relaxed)",
        lattice),
    COL(ARC_CRYSTAL, "lattice_unrelaxed", ARC_F64, 9, "Angstrom, as sampled", lattice_unrelaxed),
    COL(ARC_CRYSTAL, "spacegroup", ARC_I32, 1, "ITA number (spglib) after relaxation", spacegroup),
    COL(ARC_CRYSTAL, "spacegroup_unrelaxed", ARC_I32, 1, "ITA number (spglib) as sampled",
        spacegroup_unrelaxed),
    COL(ARC_CRYSTAL, "energy_per_atom", ARC_F64, 1, "eV per atom (relax potential)",
        energy_per_atom),
    COL(ARC_CRYSTAL, "max_force", ARC_F64, 1, "eV/Angstrom after relaxation", max_force),
    COL(ARC_CRYSTAL, "relax_steps", ARC_I32, 1, "FIRE steps", relax_steps),
    COL(ARC_CRYSTAL, "converged", ARC_I8, 1, "1 when the relaxation converged", converged),
    COL(ARC_CRYSTAL, "min_distance", ARC_F64, 1, "Angstrom, shortest interatomic distance",
        min_distance),
    COL(ARC_CRYSTAL, "novel", ARC_I8, 1, "1 novel, 0 in the reference set, -1 no reference", novel),
    COL(ARC_CRYSTAL, "formula", ARC_STR64, 1, "reduced formula", formula),
    COL(ARC_CRYSTAL, "fingerprint", ARC_STRFP, 1, "reduced formula / sites of the reduced cell",
        fingerprint),
    COL(ARC_ATOM, "Z", ARC_I32, 1, "atomic number", Z),
    COL(ARC_ATOM, "frac", ARC_F64, 3, "fractional (relaxed)", frac),
    COL(ARC_ATOM, "frac_unrelaxed", ARC_F64, 3, "fractional, as sampled", frac_unrelaxed),
    COL(ARC_BATCH, "batch_id", ARC_U32, 1, "batches done", done_batch),
    COL(ARC_BATCH, "counts", ARC_I64, PIPE_NCOUNTS,
        "funnel per batch: sampled invalid too_close not_neutral symmetry_failed relax_failed "
        "passed",
        counts),
};
const int arc_ncolumns = (int)(sizeof arc_columns / sizeof arc_columns[0]);
const char *const arc_group_names[3] = {"crystals", "atoms", "batches"};

size_t arc_elem_size(arc_type t)
{
    static const size_t sizes[] = {8, 4, 4, 8, 8, 1, PIPE_FORMULA_LEN, FLT_FINGERPRINT_LEN};
    return sizes[t];
}

/* Memory and file types (file types little-endian, fixed: the same bytes on every machine). */
hid_t arc_h5_type(arc_type t, int file)
{
    switch (t) {
    case ARC_U64:
        return file ? H5T_STD_U64LE : H5T_NATIVE_UINT64;
    case ARC_U32:
        return file ? H5T_STD_U32LE : H5T_NATIVE_UINT32;
    case ARC_I32:
        return file ? H5T_STD_I32LE : H5T_NATIVE_INT32;
    case ARC_I64:
        return file ? H5T_STD_I64LE : H5T_NATIVE_INT64;
    case ARC_F64:
        return file ? H5T_IEEE_F64LE : H5T_NATIVE_DOUBLE;
    case ARC_I8:
        return file ? H5T_STD_I8LE : H5T_NATIVE_INT8;
    default:
        break;
    }
    hid_t s = H5Tcopy(H5T_C_S1); /* fixed-length, NUL-padded: h5py reads bytes */
    H5Tset_size(s, arc_elem_size(t));
    H5Tset_strpad(s, H5T_STR_NULLTERM);
    return s;
}

void arc_h5_type_close(arc_type t, hid_t h)
{
    if (t == ARC_STR64 || t == ARC_STRFP) H5Tclose(h);
}

void **arc_column_ptr(const pipe_records *r, const arc_column *c)
{
    return (void **)((char *)r + c->offset);
}

long arc_rows(const pipe_records *r, arc_group g)
{
    return g == ARC_CRYSTAL ? r->n : g == ARC_ATOM ? r->n_atoms : r->n_batches;
}

/* Dataspace of `rows` rows of column c: [rows], [rows x w], or [rows x 3 x 3] for 9. */
int arc_dims(const arc_column *c, hsize_t rows, hsize_t dims[3])
{
    dims[0] = rows;
    if (c->width == 1) return 1;
    if (c->width == 9) {
        dims[1] = dims[2] = 3;
        return 3;
    }
    dims[1] = (hsize_t)c->width;
    return 2;
}

/* ----------------------------------------------------------------- records */

static long *cap_of(pipe_records *r, arc_group g)
{
    return g == ARC_CRYSTAL ? &r->cap : g == ARC_ATOM ? &r->cap_atoms : &r->cap_batches;
}

/* Grows every column of group g to hold `need` rows. */
int arc_reserve(pipe_records *r, arc_group g, long need, xtal_err *err)
{
    long *cap = cap_of(r, g);
    if (need <= *cap) return XTAL_OK;
    long ncap = *cap ? *cap : 64;
    while (ncap < need) ncap *= 2;
    for (int i = 0; i < arc_ncolumns; i++) {
        const arc_column *c = &arc_columns[i];
        if (c->group != g) continue;
        void **p = arc_column_ptr(r, c);
        void *q = realloc(*p, (size_t)ncap * (size_t)c->width * arc_elem_size(c->type));
        if (!q) return xtal_err_set(err, XTAL_ENOMEM, "archive records: out of memory");
        *p = q;
    }
    *cap = ncap;
    return XTAL_OK;
}

void pipe_records_free(pipe_records *r)
{
    for (int i = 0; i < arc_ncolumns; i++) free(*arc_column_ptr(r, &arc_columns[i]));
    memset(r, 0, sizeof *r);
}

void pipe_records_clear(pipe_records *r)
{
    r->n = r->n_atoms = r->n_batches = 0;
}

/* Zeroes row `row` of every column of group g. */
static void zero_row(pipe_records *r, arc_group g, long row)
{
    for (int i = 0; i < arc_ncolumns; i++) {
        const arc_column *c = &arc_columns[i];
        if (c->group != g) continue;
        size_t sz = (size_t)c->width * arc_elem_size(c->type);
        memset((char *)*arc_column_ptr(r, c) + (size_t)row * sz, 0, sz);
    }
}

int pipe_records_add(pipe_records *r, const xtal_crystal *relaxed, const xtal_crystal *unrelaxed,
                     xtal_err *err)
{
    int n = relaxed->natoms;
    if (unrelaxed->natoms != n)
        return xtal_err_set(err, XTAL_EINVALID, "archive records: atom counts differ");
    int rc = arc_reserve(r, ARC_CRYSTAL, r->n + 1, err);
    if (!rc) rc = arc_reserve(r, ARC_ATOM, r->n_atoms + n, err);
    if (rc) return rc;
    long i = r->n++;
    zero_row(r, ARC_CRYSTAL, i);
    r->natoms[i] = n;
    r->atom_offset[i] = r->n_atoms;
    memcpy(r->lattice + 9 * i, relaxed->lattice, 9 * sizeof(double));
    memcpy(r->lattice_unrelaxed + 9 * i, unrelaxed->lattice, 9 * sizeof(double));
    for (int k = 0; k < n; k++) r->Z[r->n_atoms + k] = relaxed->Z[k];
    memcpy(r->frac + 3 * r->n_atoms, relaxed->frac, 3 * (size_t)n * sizeof(double));
    memcpy(r->frac_unrelaxed + 3 * r->n_atoms, unrelaxed->frac, 3 * (size_t)n * sizeof(double));
    r->n_atoms += n;
    return XTAL_OK;
}

int pipe_records_add_batch(pipe_records *r, uint32_t batch_id, const int64_t counts[PIPE_NCOUNTS],
                           xtal_err *err)
{
    int rc = arc_reserve(r, ARC_BATCH, r->n_batches + 1, err);
    if (rc) return rc;
    r->done_batch[r->n_batches] = batch_id;
    memcpy(r->counts + PIPE_NCOUNTS * r->n_batches, counts, PIPE_NCOUNTS * sizeof(int64_t));
    r->n_batches++;
    return XTAL_OK;
}

int pipe_records_crystal(const pipe_records *r, long i, int unrelaxed, xtal_crystal *out,
                         xtal_err *err)
{
    int n = r->natoms[i];
    int64_t off = r->atom_offset[i];
    if (n < 1 || off < 0 || off + n > r->n_atoms)
        return xtal_err_set(err, XTAL_EPARSE, "archive: crystal %ld has bad atom rows", i);
    int rc = xtal_crystal_init(out, n, err);
    if (rc) return rc;
    snprintf(out->id, sizeof out->id, "%llu", (unsigned long long)r->sample_id[i]);
    memcpy(out->lattice, (unrelaxed ? r->lattice_unrelaxed : r->lattice) + 9 * i,
           9 * sizeof(double));
    for (int k = 0; k < n; k++) out->Z[k] = r->Z[off + k];
    memcpy(out->frac, (unrelaxed ? r->frac_unrelaxed : r->frac) + 3 * off,
           3 * (size_t)n * sizeof(double));
    return XTAL_OK;
}

/* ------------------------------------------------------------------ writing */

/* Creates (or opens, when it exists) group g of file f. */
static hid_t group_at(hid_t f, const char *name)
{
    if (H5Lexists(f, name, H5P_DEFAULT) > 0) return H5Gopen2(f, name, H5P_DEFAULT);
    return H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
}

/* Writes rows [first, first + r rows) of a dataset of `total` rows per column, for every
 * column of r; `dxpl` selects independent or collective transfer. With MPI every rank calls
 * this with its own slice (first/total per group). */
int arc_write_columns(hid_t f, const pipe_records *r, const long first[3], const long total[3],
                      hid_t dxpl)
{
    int bad = 0;
    for (int g = 0; g < 3; g++) {
        hid_t grp = group_at(f, arc_group_names[g]);
        if (grp < 0) return 1;
        H5Gclose(grp);
    }
    for (int i = 0; i < arc_ncolumns && !bad; i++) {
        const arc_column *c = &arc_columns[i];
        hsize_t dims[3], start[3] = {0, 0, 0}, count[3];
        int nd = arc_dims(c, (hsize_t)total[c->group], dims);
        arc_dims(c, (hsize_t)arc_rows(r, c->group), count);
        start[0] = (hsize_t)first[c->group];
        char path[96];
        snprintf(path, sizeof path, "%s/%s", arc_group_names[c->group], c->name);
        hid_t ft = arc_h5_type(c->type, 1), mt = arc_h5_type(c->type, 0);
        hid_t fs = H5Screate_simple(nd, dims, NULL);
        hid_t ds = H5Dcreate2(f, path, ft, fs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        hid_t ms = H5Screate_simple(nd, count, NULL);
        if (count[0] == 0) {
            H5Sselect_none(ms);
            H5Sselect_none(fs);
        } else {
            H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
        }
        bad = ds < 0 || H5Dwrite(ds, mt, ms, fs, dxpl, *arc_column_ptr(r, c)) < 0;
        if (!bad) bad = xtal_h5_attr_put_string(ds, "units", c->units);
        if (ds >= 0) H5Dclose(ds);
        H5Sclose(ms);
        H5Sclose(fs);
        arc_h5_type_close(c->type, ft);
        arc_h5_type_close(c->type, mt);
    }
    return bad;
}

static int attr_long(hid_t obj, const char *name, long long v)
{
    return xtal_h5_attr_put(obj, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, &v);
}

/* campaign/ attributes: identity, plan, druse version, the funnel totals. */
int arc_write_campaign(hid_t f, const pipe_campaign_id *id, const int64_t counts[PIPE_NCOUNTS],
                       long duplicates, long n_segments)
{
    hid_t g = group_at(f, "campaign");
    if (g < 0) return 1;
    int bad = xtal_h5_attr_put_string(g, "name", id->name);
    bad |= xtal_h5_attr_put_string(g, "format", "druse-archive");
    bad |= attr_long(g, "format_version", 1);
    bad |= xtal_h5_attr_put_string(g, "druse_version", DRUSE_VERSION);
    bad |= xtal_h5_attr_put_string(g, "identity_sha256", id->identity_sha256);
    bad |= xtal_h5_attr_put_string(g, "model_sha256", id->model_sha256);
    bad |= xtal_h5_attr_put_string(g, "model", id->model_path ? id->model_path : id->model_stored);
    bad |= xtal_h5_attr_put_string(g, "config", id->config_text ? id->config_text : "");
    bad |= attr_long(g, "batches_planned", id->batches);
    bad |= attr_long(g, "batch_size", id->batch_size);
    bad |= attr_long(g, "segments", n_segments);
    if (counts) {
        for (int k = 0; k < PIPE_NCOUNTS; k++) bad |= attr_long(g, count_names[k], counts[k]);
        bad |= attr_long(g, "duplicate", duplicates);
        bad |= attr_long(g, "archived", counts[PIPE_COUNT_PASSED] - duplicates);
    }
    H5Gclose(g);
    return bad;
}

/* crystals/duplicate_of (a real dataset, also in the master). */
int arc_write_duplicates(hid_t f, const int64_t *dup, long n)
{
    hsize_t dims[1] = {(hsize_t)n};
    return xtal_h5_dataset_put(f, "crystals/duplicate_of", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, dims,
                               dup, "units", "sample_id of the first matching record, -1 = unique");
}

int arc_rename_into_place(const char *tmp, const char *path, xtal_err *err)
{
    if (rename(tmp, path) == 0) return XTAL_OK;
    unlink(tmp);
    return xtal_err_set(err, XTAL_EIO, "%s: cannot rename %s into place", path, tmp);
}

int pipe_archive_write_file(const char *path, const pipe_records *r, const pipe_campaign_id *id,
                            xtal_err *err)
{
    int64_t *dup = malloc((size_t)(r->n ? r->n : 1) * sizeof *dup);
    if (!dup) return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
    int rc = pipe_dedup_records(r, dup, err);
    if (rc) {
        free(dup);
        return rc;
    }
    int64_t counts[PIPE_NCOUNTS] = {0};
    arc_sum_counts(r, counts);
    long ndup = 0;
    for (long i = 0; i < r->n; i++) ndup += dup[i] >= 0;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    xtal_h5_quiet q = xtal_h5_quiet_begin();
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    long first[3] = {0, 0, 0}, total[3] = {r->n, r->n_atoms, r->n_batches};
    int bad = f < 0 || arc_write_columns(f, r, first, total, H5P_DEFAULT) ||
              arc_write_duplicates(f, dup, r->n) || arc_write_campaign(f, id, counts, ndup, 0);
    if (f >= 0 && H5Fclose(f) < 0) bad = 1;
    xtal_h5_quiet_end(q);
    free(dup);
    if (bad) {
        unlink(tmp);
        return xtal_err_set(err, XTAL_EIO, "%s: cannot write the archive (disk full?)", path);
    }
    return arc_rename_into_place(tmp, path, err);
}

void arc_sum_counts(const pipe_records *r, int64_t counts[PIPE_NCOUNTS])
{
    for (long b = 0; b < r->n_batches; b++)
        for (int k = 0; k < PIPE_NCOUNTS; k++) counts[k] += r->counts[PIPE_NCOUNTS * b + k];
}

/* ------------------------------------------------------------------ reading */

static int read_column(hid_t f, pipe_records *r, const arc_column *c, long rows, const char *path,
                       xtal_err *err)
{
    char name[96];
    snprintf(name, sizeof name, "%s/%s", arc_group_names[c->group], c->name);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) return xtal_err_set(err, XTAL_EPARSE, "archive %s: dataset %s missing", path, name);
    hid_t sp = H5Dget_space(ds);
    hsize_t dims[3] = {0, 0, 0}, want[3];
    int nd = arc_dims(c, (hsize_t)rows, want);
    int ok = H5Sget_simple_extent_ndims(sp) == nd;
    if (ok) H5Sget_simple_extent_dims(sp, dims, NULL);
    for (int k = 0; ok && k < nd; k++) ok = dims[k] == want[k];
    hid_t mt = arc_h5_type(c->type, 0);
    herr_t re =
        ok && rows > 0 ? H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, *arc_column_ptr(r, c)) : 0;
    arc_h5_type_close(c->type, mt);
    H5Sclose(sp);
    H5Dclose(ds);
    if (!ok)
        return xtal_err_set(err, XTAL_EPARSE, "archive %s: dataset %s has the wrong shape", path,
                            name);
    if (re < 0)
        return xtal_err_set(err, XTAL_EPARSE,
                            "archive %s: dataset %s cannot be read (corrupt, truncated, or a "
                            "segment file is missing)",
                            path, name);
    return XTAL_OK;
}

static long rows_of(hid_t f, const char *name)
{
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) return -1;
    hid_t sp = H5Dget_space(ds);
    hsize_t d[3] = {0, 0, 0};
    long n = H5Sget_simple_extent_ndims(sp) >= 1 && H5Sget_simple_extent_dims(sp, d, NULL) >= 1
                 ? (long)d[0]
                 : -1;
    H5Sclose(sp);
    H5Dclose(ds);
    return n;
}

static int read_id(hid_t f, pipe_campaign_id *id, const char *path, xtal_err *err)
{
    memset(id, 0, sizeof *id);
    hid_t g = H5Gopen2(f, "campaign", H5P_DEFAULT);
    if (g < 0) return xtal_err_set(err, XTAL_EPARSE, "archive %s: no campaign group", path);
    long long b = 0, bs = 0;
    int bad = xtal_h5_attr_get_string(g, "name", id->name, sizeof id->name);
    bad |= xtal_h5_attr_get_string(g, "identity_sha256", id->identity_sha256, 65);
    bad |= xtal_h5_attr_get_string(g, "model_sha256", id->model_sha256, 65);
    bad |= xtal_h5_attr_get(g, "batches_planned", H5T_NATIVE_LLONG, &b);
    bad |= xtal_h5_attr_get(g, "batch_size", H5T_NATIVE_LLONG, &bs);
    id->batches = (long)b;
    id->batch_size = (long)bs;
    if (!bad) xtal_h5_attr_get_string(g, "model", id->model_stored, sizeof id->model_stored);
    if (!bad && H5Aexists(g, "config") > 0) {
        hid_t a = H5Aopen(g, "config", H5P_DEFAULT);
        hid_t t = H5Aget_type(a);
        size_t len = H5Tget_size(t);
        id->config_text = calloc(len + 1, 1);
        if (!id->config_text || xtal_h5_attr_get_string(g, "config", id->config_text, len + 1))
            bad = 1;
        H5Tclose(t);
        H5Aclose(a);
    }
    H5Gclose(g);
    if (bad) {
        free(id->config_text);
        id->config_text = NULL;
        return xtal_err_set(err, XTAL_EPARSE, "archive %s: campaign attributes missing", path);
    }
    return XTAL_OK;
}

int pipe_archive_read(const char *path, pipe_records *out, pipe_campaign_id *id, xtal_err *err)
{
    memset(out, 0, sizeof *out);
    if (access(path, R_OK) != 0)
        return xtal_err_set(err, XTAL_EIO, "archive %s: cannot read (missing or no permission)",
                            path);
    xtal_h5_quiet q = xtal_h5_quiet_begin();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    int rc = XTAL_OK;
    if (f < 0) {
        xtal_h5_quiet_end(q);
        return xtal_err_set(err, XTAL_EPARSE, "archive %s: not a readable HDF5 file", path);
    }
    long rows[3] = {rows_of(f, "crystals/sample_id"), rows_of(f, "atoms/Z"),
                    rows_of(f, "batches/batch_id")};
    if (rows[0] < 0 || rows[1] < 0 || rows[2] < 0) {
        rc = xtal_err_set(err, XTAL_EPARSE, "archive %s: not a druse archive", path);
        goto done;
    }
    for (int g = 0; g < 3 && !rc; g++) rc = arc_reserve(out, (arc_group)g, rows[g] + 1, err);
    for (int i = 0; i < arc_ncolumns && !rc; i++)
        rc = read_column(f, out, &arc_columns[i], rows[arc_columns[i].group], path, err);
    if (rc) goto done;
    out->n = rows[0];
    out->n_atoms = rows[1];
    out->n_batches = rows[2];
    out->atom_base = out->n > 0 ? out->atom_offset[0] : 0;
    for (long i = 0; i < out->n; i++) out->atom_offset[i] -= out->atom_base;
    for (long i = 0; i < out->n && !rc; i++)
        if (out->natoms[i] < 1 || out->atom_offset[i] < 0 ||
            out->atom_offset[i] + out->natoms[i] > out->n_atoms)
            rc = xtal_err_set(err, XTAL_EPARSE, "archive %s: crystal row %ld has bad atom rows",
                              path, i);
    if (!rc && id) rc = read_id(f, id, path, err);
done:
    H5Fclose(f);
    xtal_h5_quiet_end(q);
    if (rc) pipe_records_free(out);
    return rc;
}

/* ------------------------------------------------------------------ dedup */

static const pipe_records *sort_ctx;

static int by_sample_id(const void *a, const void *b)
{
    uint64_t x = sort_ctx->sample_id[*(const long *)a], y = sort_ctx->sample_id[*(const long *)b];
    return x < y ? -1 : x > y;
}

int pipe_dedup_records(const pipe_records *r, int64_t *duplicate_of, xtal_err *err)
{
    long *order = malloc((size_t)(r->n ? r->n : 1) * sizeof *order);
    int64_t *rep = malloc((size_t)(r->n ? r->n : 1) * sizeof *rep);
    flt_index *ix = NULL;
    flt_match_options mo = flt_match_options_default();
    int rc = order && rep ? flt_index_new(&mo, &ix, err)
                          : xtal_err_set(err, XTAL_ENOMEM, "out of memory");
    for (long i = 0; i < r->n; i++) order[i] = i;
    sort_ctx = r; /* qsort has no context argument; dedup runs on one thread */
    if (!rc) qsort(order, (size_t)r->n, sizeof *order, by_sample_id);
    for (long k = 0; k < r->n && !rc; k++) {
        long i = order[k];
        xtal_crystal c = {0};
        long entry = -1;
        int added = 0;
        duplicate_of[i] = -1;
        if ((rc = pipe_records_crystal(r, i, 0, &c, err)) == XTAL_OK) {
            rc = flt_index_add(ix, &c, &entry, &added, err);
            if (rc == XTAL_OK) {
                if (added) rep[entry] = (int64_t)r->sample_id[i];
                duplicate_of[i] = added ? -1 : rep[entry];
            } else if (rc != XTAL_ENOMEM) {
                rc = XTAL_OK; /* a cell the matcher cannot reduce counts as unique */
            }
        }
        xtal_crystal_free(&c);
    }
    flt_index_free(ix);
    free(order);
    free(rep);
    return rc;
}

/* ------------------------------------------------------------------ gathering */

int pipe_records_append(pipe_records *dst, const pipe_records *src, long i, xtal_err *err)
{
    long na = src->natoms[i];
    int rc = arc_reserve(dst, ARC_CRYSTAL, dst->n + 1, err);
    if (!rc) rc = arc_reserve(dst, ARC_ATOM, dst->n_atoms + na, err);
    if (rc) return rc;
    for (int k = 0; k < arc_ncolumns; k++) {
        const arc_column *c = &arc_columns[k];
        size_t row = (size_t)c->width * arc_elem_size(c->type);
        char *d = *arc_column_ptr(dst, c);
        const char *s = *arc_column_ptr(src, c);
        if (c->group == ARC_CRYSTAL)
            memcpy(d + row * (size_t)dst->n, s + row * (size_t)i, row);
        else if (c->group == ARC_ATOM)
            memcpy(d + row * (size_t)dst->n_atoms, s + row * (size_t)src->atom_offset[i],
                   row * (size_t)na);
    }
    dst->atom_offset[dst->n++] = dst->n_atoms;
    dst->n_atoms += na;
    return XTAL_OK;
}

int pipe_archive_read_duplicates(const char *path, long n, int64_t *duplicate_of, xtal_err *err)
{
    xtal_h5_quiet q = xtal_h5_quiet_begin();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    int ok = f >= 0 && rows_of(f, "crystals/duplicate_of") == n;
    if (ok && n > 0) {
        hid_t ds = H5Dopen2(f, "crystals/duplicate_of", H5P_DEFAULT);
        ok = H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, duplicate_of) >= 0;
        H5Dclose(ds);
    }
    if (f >= 0) H5Fclose(f);
    xtal_h5_quiet_end(q);
    return ok ? XTAL_OK
              : xtal_err_set(err, XTAL_EPARSE, "archive %s: crystals/duplicate_of unreadable",
                             path);
}
