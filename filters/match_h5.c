/* The dedup / novelty index on disk (HDF5, serial, default property lists).
 *
 * Layout (CSR, readable by h5py without druse):
 *   /            attributes format = "druse-match-index", version, ltol, stol, angle_tol,
 *                prim_tol, primitive_cell, scale, source, druse_version
 *   entries/id           n fixed-length strings (material ids)
 *   entries/fingerprint  n fixed-length strings ("Fe2O3/10")
 *   entries/natoms       n int32: sites of the reduced (primitive, Niggli) cell
 *   entries/atom_offset  n int64: first row in atoms/
 *   entries/lattice      n x 3 x 3 float64, rows are vectors, Angstrom
 *   atoms/Z              m int32
 *   atoms/frac           m x 3 float64, fractional
 * The stored structures are already reduced, so loading computes nothing but the hash table.
 * Written under a temporary name and renamed when closed: a reader never sees half a file.
 */
#include "filters/match_internal.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crystal/crystal.h" /* again, after <hdf5.h>: its HDF5 helpers */

#ifndef DRUSE_VERSION
#define DRUSE_VERSION "unknown"
#endif

#define INDEX_FORMAT  "druse-match-index"
#define INDEX_VERSION 1
#define ID_LEN        ((size_t)sizeof(((xtal_crystal *)0)->id))

/* ------------------------------------------------------------ attributes */

static int attr_put_double(hid_t loc, const char *name, double v)
{
    return xtal_h5_attr_put(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

static int attr_put_long(hid_t loc, const char *name, long v)
{
    return xtal_h5_attr_put(loc, name, H5T_STD_I64LE, H5T_NATIVE_LONG, &v);
}

/* ------------------------------------------------------------ datasets */

static int dset_put(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, int rank,
                    const hsize_t *dims, const void *data)
{
    hid_t space = H5Screate_simple(rank, dims, NULL), dset = -1;
    if (space >= 0)
        dset = H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int ok = dset >= 0 &&
             (dims[0] == 0 || H5Dwrite(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    xtal_h5_close(dset);
    xtal_h5_close(space);
    return ok ? 0 : -1;
}

/* Reads a dataset whose shape must be exactly dims (rank 1..3). */
static int dset_get(hid_t loc, const char *name, hid_t mem_type, int rank, const hsize_t *dims,
                    void *data)
{
    hid_t dset = H5Dopen2(loc, name, H5P_DEFAULT);
    hid_t space = dset >= 0 ? H5Dget_space(dset) : -1;
    hsize_t got[3] = {0, 0, 0};
    int ok = space >= 0 && H5Sget_simple_extent_ndims(space) == rank &&
             H5Sget_simple_extent_dims(space, got, NULL) == rank;
    for (int i = 0; ok && i < rank; i++) ok = got[i] == dims[i];
    ok = ok && (dims[0] == 0 || H5Dread(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    xtal_h5_close(space);
    xtal_h5_close(dset);
    return ok ? 0 : -1;
}

static hsize_t dset_len(hid_t loc, const char *name)
{
    hid_t dset = H5Dopen2(loc, name, H5P_DEFAULT);
    hid_t space = dset >= 0 ? H5Dget_space(dset) : -1;
    hsize_t dims[3] = {0, 0, 0};
    int ok = space >= 0 && H5Sget_simple_extent_ndims(space) >= 1 &&
             H5Sget_simple_extent_dims(space, dims, NULL) >= 1;
    xtal_h5_close(space);
    xtal_h5_close(dset);
    return ok ? dims[0] : (hsize_t)-1;
}

/* ------------------------------------------------------------ save */

typedef struct {
    long n, m;
    char *ids, *fps;
    int *natoms, *Z;
    long *offset;
    double *lattice, *frac;
} index_arrays;

static void arrays_free(index_arrays *a)
{
    free(a->ids);
    free(a->fps);
    free(a->natoms);
    free(a->Z);
    free(a->offset);
    free(a->lattice);
    free(a->frac);
}

static int arrays_alloc(index_arrays *a)
{
    size_t n = (size_t)(a->n ? a->n : 1), m = (size_t)(a->m ? a->m : 1);
    a->ids = calloc(n, ID_LEN);
    a->fps = calloc(n, FLT_FINGERPRINT_LEN);
    a->natoms = calloc(n, sizeof *a->natoms);
    a->offset = calloc(n, sizeof *a->offset);
    a->lattice = calloc(9 * n, sizeof *a->lattice);
    a->Z = calloc(m, sizeof *a->Z);
    a->frac = calloc(3 * m, sizeof *a->frac);
    return a->ids && a->fps && a->natoms && a->offset && a->lattice && a->Z && a->frac ? 0 : -1;
}

static int arrays_from_index(const flt_index *ix, index_arrays *a)
{
    a->n = flt_index_count(ix);
    a->m = 0;
    for (long e = 0; e < a->n; e++) a->m += flt_index_reduced(ix, e)->natoms;
    if (arrays_alloc(a)) return -1;
    long row = 0;
    for (long e = 0; e < a->n; e++) {
        const xtal_crystal *c = flt_index_reduced(ix, e);
        snprintf(a->ids + (size_t)e * ID_LEN, ID_LEN, "%s", c->id);
        snprintf(a->fps + (size_t)e * FLT_FINGERPRINT_LEN, FLT_FINGERPRINT_LEN, "%s",
                 flt_index_fingerprint(ix, e));
        a->natoms[e] = c->natoms;
        a->offset[e] = row;
        memcpy(&a->lattice[9 * e], c->lattice, sizeof c->lattice);
        memcpy(&a->Z[row], c->Z, (size_t)c->natoms * sizeof *c->Z);
        memcpy(&a->frac[3 * row], c->frac, 3 * (size_t)c->natoms * sizeof *c->frac);
        row += c->natoms;
    }
    return 0;
}

static int write_attrs(hid_t file, const flt_index *ix, const char *source)
{
    const flt_match_options *o = flt_index_options(ix);
    return xtal_h5_attr_put_string(file, "format", INDEX_FORMAT) ||
           attr_put_long(file, "version", INDEX_VERSION) ||
           attr_put_double(file, "ltol", o->ltol) || attr_put_double(file, "stol", o->stol) ||
           attr_put_double(file, "angle_tol", o->angle_tol) ||
           attr_put_double(file, "prim_tol", o->prim_tol) ||
           attr_put_long(file, "primitive_cell", o->primitive_cell) ||
           attr_put_long(file, "scale", o->scale) ||
           xtal_h5_attr_put_string(file, "source", source) ||
           xtal_h5_attr_put_string(file, "druse_version", DRUSE_VERSION) ||
           attr_put_long(file, "entries", flt_index_count(ix));
}

static int write_arrays(hid_t file, const index_arrays *a)
{
    hid_t entries = H5Gcreate2(file, "entries", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t atoms = H5Gcreate2(file, "atoms", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t id_t = H5Tcopy(H5T_C_S1), fp_t = H5Tcopy(H5T_C_S1);
    int ok = entries >= 0 && atoms >= 0 && id_t >= 0 && fp_t >= 0 &&
             H5Tset_size(id_t, ID_LEN) >= 0 && H5Tset_size(fp_t, FLT_FINGERPRINT_LEN) >= 0;
    hsize_t n1[1] = {(hsize_t)a->n}, n33[3] = {(hsize_t)a->n, 3, 3};
    hsize_t m1[1] = {(hsize_t)a->m}, m3[2] = {(hsize_t)a->m, 3};
    ok = ok && !dset_put(entries, "id", id_t, id_t, 1, n1, a->ids) &&
         !dset_put(entries, "fingerprint", fp_t, fp_t, 1, n1, a->fps) &&
         !dset_put(entries, "natoms", H5T_STD_I32LE, H5T_NATIVE_INT, 1, n1, a->natoms) &&
         !dset_put(entries, "atom_offset", H5T_STD_I64LE, H5T_NATIVE_LONG, 1, n1, a->offset) &&
         !dset_put(entries, "lattice", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 3, n33, a->lattice) &&
         !dset_put(atoms, "Z", H5T_STD_I32LE, H5T_NATIVE_INT, 1, m1, a->Z) &&
         !dset_put(atoms, "frac", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, m3, a->frac);
    xtal_h5_close(id_t);
    xtal_h5_close(fp_t);
    xtal_h5_close(atoms);
    xtal_h5_close(entries);
    return ok ? 0 : -1;
}

int flt_index_save(const flt_index *ix, const char *path, const char *source, xtal_err *err)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return xtal_err_set(err, XTAL_EIO, "%s: path too long", path);
    index_arrays a = {0};
    if (arrays_from_index(ix, &a)) {
        arrays_free(&a);
        return xtal_err_set(err, XTAL_ENOMEM, "out of memory writing %s", path);
    }
    xtal_h5_quiet q = xtal_h5_quiet_begin();
    int rc = XTAL_OK;
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) {
        rc = xtal_err_set(err, XTAL_EIO, "%s: cannot create (HDF5)", tmp);
    } else {
        if (write_attrs(file, ix, source ? source : "") || write_arrays(file, &a))
            rc = xtal_err_set(err, XTAL_EIO, "%s: HDF5 write failed", tmp);
        if (H5Fclose(file) < 0 && rc == XTAL_OK)
            rc = xtal_err_set(err, XTAL_EIO, "%s: HDF5 close failed", tmp);
    }
    xtal_h5_quiet_end(q);
    arrays_free(&a);
    if (rc == XTAL_OK && rename(tmp, path) != 0)
        rc = xtal_err_set(err, XTAL_EIO, "%s: cannot rename to %s", tmp, path);
    if (rc != XTAL_OK) unlink(tmp);
    return rc;
}

/* ------------------------------------------------------------ load */

static int read_options(hid_t file, flt_match_options *o, char *source, size_t size)
{
    char format[64] = "";
    long version = 0, prim = 1, scale = 1;
    if (xtal_h5_attr_get_string(file, "format", format, sizeof format) ||
        strcmp(format, INDEX_FORMAT))
        return -1;
    if (xtal_h5_attr_get(file, "version", H5T_NATIVE_LONG, &version) || version != INDEX_VERSION)
        return -2;
    int bad = xtal_h5_attr_get(file, "ltol", H5T_NATIVE_DOUBLE, &o->ltol) ||
              xtal_h5_attr_get(file, "stol", H5T_NATIVE_DOUBLE, &o->stol) ||
              xtal_h5_attr_get(file, "angle_tol", H5T_NATIVE_DOUBLE, &o->angle_tol) ||
              xtal_h5_attr_get(file, "prim_tol", H5T_NATIVE_DOUBLE, &o->prim_tol) ||
              xtal_h5_attr_get(file, "primitive_cell", H5T_NATIVE_LONG, &prim) ||
              xtal_h5_attr_get(file, "scale", H5T_NATIVE_LONG, &scale);
    o->primitive_cell = prim != 0;
    o->scale = scale != 0;
    if (xtal_h5_attr_get_string(file, "source", source, size)) source[0] = '\0';
    return bad ? -3 : 0;
}

static int read_arrays(hid_t file, index_arrays *a)
{
    a->n = (long)dset_len(file, "entries/natoms");
    a->m = (long)dset_len(file, "atoms/Z");
    if (a->n < 0 || a->m < 0 || a->m > 100000000L) return -1;
    if (arrays_alloc(a)) return -2;
    hid_t id_t = H5Tcopy(H5T_C_S1), fp_t = H5Tcopy(H5T_C_S1);
    int ok = id_t >= 0 && fp_t >= 0 && H5Tset_size(id_t, ID_LEN) >= 0 &&
             H5Tset_size(fp_t, FLT_FINGERPRINT_LEN) >= 0;
    hsize_t n1[1] = {(hsize_t)a->n}, n33[3] = {(hsize_t)a->n, 3, 3};
    hsize_t m1[1] = {(hsize_t)a->m}, m3[2] = {(hsize_t)a->m, 3};
    ok = ok && !dset_get(file, "entries/id", id_t, 1, n1, a->ids) &&
         !dset_get(file, "entries/natoms", H5T_NATIVE_INT, 1, n1, a->natoms) &&
         !dset_get(file, "entries/atom_offset", H5T_NATIVE_LONG, 1, n1, a->offset) &&
         !dset_get(file, "entries/lattice", H5T_NATIVE_DOUBLE, 3, n33, a->lattice) &&
         !dset_get(file, "atoms/Z", H5T_NATIVE_INT, 1, m1, a->Z) &&
         !dset_get(file, "atoms/frac", H5T_NATIVE_DOUBLE, 2, m3, a->frac);
    xtal_h5_close(id_t);
    xtal_h5_close(fp_t);
    return ok ? 0 : -1;
}

/* Builds the index from the arrays, checking the CSR structure. Returns the entry that is
 * wrong, or -1 when all are fine; *rc gets an error code. */
static long fill_index(flt_index *ix, const index_arrays *a, int *rc, xtal_err *err)
{
    *rc = XTAL_OK;
    for (long e = 0; e < a->n; e++) {
        long off = a->offset[e], k = a->natoms[e];
        if (k < 1 || k > FLT_MATCH_MAX_ATOMS || off < 0 || off + k > a->m) {
            *rc = XTAL_EPARSE;
            return e;
        }
        xtal_crystal c;
        *rc = xtal_crystal_init(&c, (int)k, err);
        if (*rc != XTAL_OK) return e;
        memcpy(c.id, a->ids + (size_t)e * ID_LEN, ID_LEN);
        c.id[ID_LEN - 1] = '\0';
        memcpy(c.lattice, &a->lattice[9 * e], sizeof c.lattice);
        memcpy(c.Z, &a->Z[off], (size_t)k * sizeof *c.Z);
        memcpy(c.frac, &a->frac[3 * off], 3 * (size_t)k * sizeof *c.frac);
        *rc = xtal_crystal_validate(&c, err);
        if (*rc == XTAL_OK) *rc = flt_index_append_loaded(ix, &c, err);
        if (*rc != XTAL_OK) {
            xtal_crystal_free(&c);
            return e;
        }
    }
    return -1;
}

int flt_index_load(const char *path, flt_index **out, xtal_err *err)
{
    *out = NULL;
    if (access(path, R_OK) != 0) return xtal_err_set(err, XTAL_EIO, "%s: cannot read", path);
    xtal_h5_quiet q = xtal_h5_quiet_begin();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0) H5Pset_file_locking(fapl, 0, 1); /* read-only; locks fail on some file systems */
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl >= 0 ? fapl : H5P_DEFAULT);
    if (fapl >= 0) H5Pclose(fapl);
    flt_match_options opt = flt_match_options_default();
    char source[1024] = "";
    index_arrays a = {0};
    int rc = XTAL_OK, why;
    flt_index *ix = NULL;
    if (file < 0) {
        rc = xtal_err_set(err, XTAL_EPARSE, "%s: not an HDF5 file", path);
    } else if ((why = read_options(file, &opt, source, sizeof source)) != 0) {
        rc = xtal_err_set(err, XTAL_EPARSE,
                          why == -1   ? "%s: not a druse match index (format attribute)"
                          : why == -2 ? "%s: unsupported index version"
                                      : "%s: index options missing",
                          path);
    } else if ((why = read_arrays(file, &a)) != 0) {
        rc = why == -2 ? xtal_err_set(err, XTAL_ENOMEM, "%s: out of memory", path)
                       : xtal_err_set(err, XTAL_EPARSE,
                                      "%s: entries/ or atoms/ missing or malformed", path);
    }
    if (file >= 0) H5Fclose(file);
    xtal_h5_quiet_end(q);
    if (rc == XTAL_OK) rc = flt_index_new(&opt, &ix, err);
    if (rc == XTAL_OK) {
        xtal_err inner = {{0}};
        long bad = fill_index(ix, &a, &rc, &inner);
        if (bad >= 0)
            rc = xtal_err_set(err, rc == XTAL_ENOMEM ? XTAL_ENOMEM : XTAL_EPARSE,
                              "%s: entry %ld is malformed%s%s", path, bad, inner.msg[0] ? ": " : "",
                              inner.msg);
        flt_index_set_source(ix, source);
    }
    arrays_free(&a);
    if (rc != XTAL_OK) {
        flt_index_free(ix);
        return rc;
    }
    *out = ix;
    return XTAL_OK;
}
