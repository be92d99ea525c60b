/* HDF5 cache of a parsed dataset CSV, so the CIF parse (seconds) is paid once and later loads
 * take milliseconds.
 *
 * Layout (CSR: one row per crystal, one per atom), readable by h5py without druse:
 *   /crystals/id          (n) fixed-length strings, NUL-padded: material ids
 *   /crystals/natoms      (n) int32
 *   /crystals/atom_offset (n) int64: row in /atoms of each crystal's first atom
 *   /crystals/lattice     (n x 3 x 3) float64, Angstrom, rows are the vectors a, b, c
 *   /atoms/Z              (m) int32 atomic numbers
 *   /atoms/frac           (m x 3) float64 fractional coordinates
 *   /properties/<column>  (n) float64, NaN where the CSV had no number (creation-ordered;
 *                         attribute "column" holds the exact CSV column name)
 * Root attributes: format, format_version, druse_version, source_path, source_size (bytes),
 * source_mtime / source_mtime_nsec (s, ns since the epoch), n_crystals, n_atoms,
 * content_crc32 (zlib crc32 over every array and property name, as read into memory).
 *
 * Trust: a cache is written under a temporary name and renamed once closed, so a killed
 * process never leaves a valid-looking half file. On load, the source's size and mtime must
 * match and the crc32 and the CSR structure must check out; otherwise the cache is rebuilt
 * (xtal_dataset_load) or reported (xtal_dataset_read_cache). No fsync: after a power loss a
 * torn cache fails those checks and is rebuilt.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>
#include <zlib.h>

#include "crystal/crystal.h"

#define CACHE_FORMAT         "druse dataset cache"
#define CACHE_FORMAT_VERSION 1

#ifndef DRUSE_VERSION
#define DRUSE_VERSION "unknown"
#endif

/* ------------------------------------------------------- HDF5 error handling */

static herr_t h5_first_desc(unsigned n, const H5E_error2_t *e, void *buf)
{
    if (n == 0 && e->desc) snprintf(buf, 160, "%s", e->desc);
    return 0;
}

/* The innermost message of HDF5's current error stack ("truncated file: eof = ...", ...). */
static const char *h5_detail(char buf[160])
{
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_first_desc, buf);
    if (!buf[0]) snprintf(buf, 160, "HDF5 error");
    return buf;
}

/* File access without file locking: caches are never written in place (temporary name, then
 * rename), and locking fails on some parallel file systems. */
static hid_t h5_fapl(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0) H5Pset_file_locking(fapl, 0, 1);
    return fapl;
}

/* ------------------------------------------------------------- attributes */

static int attr_write_i64(hid_t loc, const char *name, int64_t value)
{
    return xtal_h5_attr_put(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

static int attr_read_i64(hid_t loc, const char *name, int64_t *value)
{
    return xtal_h5_attr_get(loc, name, H5T_NATIVE_INT64, value);
}

/* --------------------------------------------------------------- datasets */

/* Opens a dataset and checks its shape: dims[0] may be -1 (any; returned), the rest exact. */
static hid_t dset_open_checked(hid_t loc, const char *name, int rank, hsize_t *dims)
{
    hid_t dset = H5Dopen2(loc, name, H5P_DEFAULT);
    if (dset < 0) return -1;
    hid_t space = H5Dget_space(dset);
    hsize_t got[3] = {0, 0, 0};
    int ok = space >= 0 && H5Sget_simple_extent_ndims(space) == rank &&
             H5Sget_simple_extent_dims(space, got, NULL) == rank;
    for (int i = 0; ok && i < rank; i++)
        if (dims[i] != (hsize_t)-1 && dims[i] != got[i]) ok = 0;
    xtal_h5_close(space);
    if (!ok) {
        xtal_h5_close(dset);
        return -1;
    }
    for (int i = 0; i < rank; i++) dims[i] = got[i];
    return dset;
}

static int dset_read(hid_t loc, const char *name, hid_t mem_type, int rank, hsize_t *dims,
                     void *data)
{
    hid_t dset = dset_open_checked(loc, name, rank, dims);
    int ok = dset >= 0 && H5Dread(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    xtal_h5_close(dset);
    return ok ? 0 : -1;
}

/* ----------------------------------------------------- flat (CSR) arrays */

typedef struct {
    hsize_t n, m;    /* crystals, atoms */
    size_t id_len;   /* bytes per fixed-length id */
    char *ids;       /* [n * id_len], NUL-padded */
    int *natoms;     /* [n] */
    int64_t *offset; /* [n] first atom of each crystal */
    double *lattice; /* [n * 9] Angstrom */
    int *Z;          /* [m] */
    double *frac;    /* [m * 3] */
    double *props;   /* [n_props * n], one column after the other */
} cache_arrays;

static void arrays_free(cache_arrays *a)
{
    free(a->ids);
    free(a->natoms);
    free(a->offset);
    free(a->lattice);
    free(a->Z);
    free(a->frac);
    free(a->props);
    memset(a, 0, sizeof *a);
}

/* Allocates for n crystals, m atoms, np properties (at least one element each, so HDF5 never
 * sees a NULL buffer for an empty dataset). */
static int arrays_alloc(cache_arrays *a, hsize_t n, hsize_t m, size_t id_len, int np)
{
    size_t n1 = n ? n : 1, m1 = m ? m : 1, p1 = np > 0 ? (size_t)np : 1;
    a->n = n;
    a->m = m;
    a->id_len = id_len;
    a->ids = calloc(n1, id_len);
    a->natoms = malloc(n1 * sizeof *a->natoms);
    a->offset = malloc(n1 * sizeof *a->offset);
    a->lattice = malloc(n1 * 9 * sizeof *a->lattice);
    a->Z = malloc(m1 * sizeof *a->Z);
    a->frac = malloc(m1 * 3 * sizeof *a->frac);
    a->props = malloc(n1 * p1 * sizeof *a->props);
    return a->ids && a->natoms && a->offset && a->lattice && a->Z && a->frac && a->props ? 0 : -1;
}

static int arrays_from_dataset(const xtal_dataset *ds, cache_arrays *a, xtal_err *err)
{
    const xtal_list *l = &ds->crystals;
    hsize_t m = 0;
    size_t id_len = 1;
    for (int i = 0; i < l->n; i++) {
        m += (hsize_t)l->items[i].natoms;
        size_t len = strnlen(l->items[i].id, sizeof l->items[i].id);
        if (len > id_len) id_len = len;
    }
    if (arrays_alloc(a, (hsize_t)l->n, m, id_len, ds->n_props))
        return xtal_err_set(err, XTAL_ENOMEM, "out of memory for the cache of %d crystals", l->n);
    int64_t at = 0;
    for (int i = 0; i < l->n; i++) {
        const xtal_crystal *c = &l->items[i];
        memcpy(a->ids + (size_t)i * id_len, c->id, strnlen(c->id, sizeof c->id));
        a->natoms[i] = c->natoms;
        a->offset[i] = at;
        memcpy(a->lattice + 9 * (size_t)i, c->lattice, sizeof c->lattice);
        memcpy(a->Z + at, c->Z, (size_t)c->natoms * sizeof *c->Z);
        memcpy(a->frac + 3 * at, c->frac, 3 * (size_t)c->natoms * sizeof *c->frac);
        at += c->natoms;
    }
    for (int p = 0; p < ds->n_props; p++)
        for (int i = 0; i < l->n; i++)
            a->props[(size_t)p * l->n + i] = ds->prop_values[(size_t)i * ds->n_props + p];
    return XTAL_OK;
}

/* crc32 over the arrays as they sit in memory, and over the property names. */
static uint32_t arrays_crc(const cache_arrays *a, int np, char *const *names)
{
    uLong crc = crc32_z(0L, Z_NULL, 0);
    crc = crc32_z(crc, (const Bytef *)a->ids, a->n * a->id_len);
    crc = crc32_z(crc, (const Bytef *)a->natoms, a->n * sizeof *a->natoms);
    crc = crc32_z(crc, (const Bytef *)a->offset, a->n * sizeof *a->offset);
    crc = crc32_z(crc, (const Bytef *)a->lattice, a->n * 9 * sizeof *a->lattice);
    crc = crc32_z(crc, (const Bytef *)a->Z, a->m * sizeof *a->Z);
    crc = crc32_z(crc, (const Bytef *)a->frac, a->m * 3 * sizeof *a->frac);
    for (int p = 0; p < np; p++) {
        crc = crc32_z(crc, (const Bytef *)names[p], strlen(names[p]) + 1);
        crc = crc32_z(crc, (const Bytef *)(a->props + (size_t)p * a->n), a->n * sizeof(double));
    }
    return (uint32_t)crc;
}

/* ------------------------------------------------------------------ writing */

/* Units of the properties we know; the rest keep the CSV's own. */
static const char *prop_units(const char *name)
{
    if (strcmp(name, "formation_energy_per_atom") == 0) return "eV/atom";
    if (strcmp(name, "band_gap") == 0) return "eV";
    if (strcmp(name, "spacegroup.number") == 0) return "1 (International Tables number)";
    return "as in the source CSV column";
}

/* An HDF5 link name for a property: the column name unless it cannot be one. */
static void prop_link_name(const char *column, int p, char *buf, size_t size)
{
    int usable = column[0] && !strchr(column, '/') && strcmp(column, ".") != 0;
    if (usable)
        snprintf(buf, size, "%s", column);
    else
        snprintf(buf, size, "property_%d", p);
}

static int write_properties(hid_t file, const xtal_dataset *ds, const cache_arrays *a)
{
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    int ok = gcpl >= 0 &&
             H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) >= 0;
    hid_t group = ok ? H5Gcreate2(file, "properties", H5P_DEFAULT, gcpl, H5P_DEFAULT) : -1;
    ok = group >= 0;
    hsize_t dims[1] = {a->n};
    for (int p = 0; ok && p < ds->n_props; p++) {
        char link[600];
        prop_link_name(ds->prop_names[p], p, link, sizeof link);
        ok = xtal_h5_dataset_put(group, link, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, dims,
                                 a->props + (size_t)p * a->n, "units",
                                 prop_units(ds->prop_names[p])) == 0;
        hid_t dset = ok ? H5Dopen2(group, link, H5P_DEFAULT) : -1;
        ok = dset >= 0 && xtal_h5_attr_put_string(dset, "column", ds->prop_names[p]) == 0;
        xtal_h5_close(dset);
    }
    xtal_h5_close(group);
    xtal_h5_close(gcpl);
    return ok ? 0 : -1;
}

static int write_structures(hid_t file, const cache_arrays *a)
{
    hid_t crystals = H5Gcreate2(file, "crystals", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t atoms = H5Gcreate2(file, "atoms", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t id_type = H5Tcopy(H5T_C_S1);
    int ok = crystals >= 0 && atoms >= 0 && id_type >= 0 && H5Tset_size(id_type, a->id_len) >= 0 &&
             H5Tset_strpad(id_type, H5T_STR_NULLPAD) >= 0;
    hsize_t n1[1] = {a->n}, n33[3] = {a->n, 3, 3}, m1[1] = {a->m}, m3[2] = {a->m, 3};
    ok = ok && xtal_h5_dataset_put(crystals, "id", id_type, id_type, 1, n1, a->ids, "units",
                                   "material id") == 0;
    ok = ok && xtal_h5_dataset_put(crystals, "natoms", H5T_STD_I32LE, H5T_NATIVE_INT, 1, n1,
                                   a->natoms, "units", "atoms in the cell") == 0;
    ok = ok &&
         xtal_h5_dataset_put(crystals, "atom_offset", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, n1,
                             a->offset, "units", "row in /atoms of the crystal's first atom") == 0;
    ok = ok && xtal_h5_dataset_put(crystals, "lattice", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 3, n33,
                                   a->lattice, "units",
                                   "Angstrom; rows are the lattice vectors a, b, c") == 0;
    ok = ok && xtal_h5_dataset_put(atoms, "Z", H5T_STD_I32LE, H5T_NATIVE_INT, 1, m1, a->Z, "units",
                                   "atomic number") == 0;
    ok = ok && xtal_h5_dataset_put(atoms, "frac", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, m3, a->frac,
                                   "units", "fractional (units of the lattice vectors)") == 0;
    xtal_h5_close(id_type);
    xtal_h5_close(atoms);
    xtal_h5_close(crystals);
    return ok ? 0 : -1;
}

static int write_root_attributes(hid_t file, const cache_arrays *a, uint32_t crc,
                                 const char *source_path, const struct stat *st)
{
    char resolved[PATH_MAX];
    const char *shown = source_path ? source_path : "";
    if (source_path && realpath(source_path, resolved)) shown = resolved;
    int ok =
        xtal_h5_attr_put_string(file, "format", CACHE_FORMAT) == 0 &&
        attr_write_i64(file, "format_version", CACHE_FORMAT_VERSION) == 0 &&
        xtal_h5_attr_put_string(file, "druse_version", DRUSE_VERSION) == 0 &&
        xtal_h5_attr_put_string(file, "source_path", shown) == 0 &&
        attr_write_i64(file, "source_size", st ? (int64_t)st->st_size : -1) == 0 &&
        attr_write_i64(file, "source_mtime", st ? (int64_t)st->st_mtim.tv_sec : -1) == 0 &&
        attr_write_i64(file, "source_mtime_nsec", st ? (int64_t)st->st_mtim.tv_nsec : -1) == 0 &&
        attr_write_i64(file, "n_crystals", (int64_t)a->n) == 0 &&
        attr_write_i64(file, "n_atoms", (int64_t)a->m) == 0 &&
        attr_write_i64(file, "content_crc32", (int64_t)crc) == 0 &&
        attr_write_i64(file, "created", (int64_t)time(NULL)) == 0 &&
        xtal_h5_attr_put_string(file, "units",
                                "lattice Angstrom (rows are vectors); frac fractional; "
                                "properties as in the CSV") == 0;
    return ok ? 0 : -1;
}

/* Temporary name beside the target, matching the repository's ignore rule "*.h5.tmp"; host and
 * pid keep concurrent writers (ranks on several nodes of a shared file system) apart. */
static void temp_name(const char *cache_path, char *buf, size_t size)
{
    size_t len = strlen(cache_path);
    int has_h5 = len > 3 && strcmp(cache_path + len - 3, ".h5") == 0;
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++)
        if (*p == '/') *p = '_';
    snprintf(buf, size, "%.*s.%s.%ld.h5.tmp", (int)(has_h5 ? len - 3 : len), cache_path, host,
             (long)getpid());
}

static int write_file(const char *tmp, const xtal_dataset *ds, const cache_arrays *a, uint32_t crc,
                      const char *source_path, const struct stat *st, xtal_err *err)
{
    hid_t fapl = h5_fapl();
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    char detail[160];
    if (file < 0) {
        int code = xtal_err_set(err, XTAL_EIO, "%s: cannot create: %s", tmp, h5_detail(detail));
        xtal_h5_close(fapl);
        return code;
    }
    int ok = write_structures(file, a) == 0 && write_properties(file, ds, a) == 0 &&
             write_root_attributes(file, a, crc, source_path, st) == 0;
    if (!ok) h5_detail(detail);
    ok = H5Fclose(file) >= 0 && ok;
    xtal_h5_close(fapl);
    if (!ok) return xtal_err_set(err, XTAL_EIO, "%s: cannot write the cache: %s", tmp, detail);
    return XTAL_OK;
}

/* Writes with the source's stat taken by the caller (before parsing, so a source changed
 * during the parse leaves a cache that reads as stale). */
static int write_cache_stat(const xtal_dataset *ds, const char *source_path, const struct stat *st,
                            const char *cache_path, xtal_err *err)
{
    cache_arrays a = {0};
    int rc = arrays_from_dataset(ds, &a, err);
    if (rc) return rc;
    uint32_t crc = arrays_crc(&a, ds->n_props, ds->prop_names);
    char tmp[PATH_MAX + 32];
    temp_name(cache_path, tmp, sizeof tmp);
    xtal_h5_quiet q = xtal_h5_quiet_begin();
    rc = write_file(tmp, ds, &a, crc, source_path, st, err);
    xtal_h5_quiet_end(q);
    arrays_free(&a);
    if (!rc && rename(tmp, cache_path) != 0)
        rc = xtal_err_set(err, XTAL_EIO, "%s: cannot rename to %s: %s", tmp, cache_path,
                          strerror(errno));
    if (rc) unlink(tmp);
    return rc;
}

int xtal_dataset_write_cache(const xtal_dataset *ds, const char *source_path,
                             const char *cache_path, xtal_err *err)
{
    struct stat st;
    if (source_path && stat(source_path, &st) != 0)
        return xtal_err_set(err, XTAL_EIO, "%s: %s", source_path, strerror(errno));
    return write_cache_stat(ds, source_path, source_path ? &st : NULL, cache_path, err);
}

/* ------------------------------------------------------------------ reading */

/* Reads and checks the structure arrays; fills a (n, m from the file). */
static int read_structures(hid_t file, cache_arrays *a, int np)
{
    hsize_t nd[1] = {(hsize_t)-1}, md[1] = {(hsize_t)-1};
    hid_t d = dset_open_checked(file, "crystals/natoms", 1, nd);
    xtal_h5_close(d);
    hid_t z = dset_open_checked(file, "atoms/Z", 1, md);
    xtal_h5_close(z);
    if (d < 0 || z < 0 || nd[0] > INT_MAX || md[0] > nd[0] * (hsize_t)XTAL_MAX_ATOMS) return -1;
    hid_t ids = H5Dopen2(file, "crystals/id", H5P_DEFAULT);
    hid_t type = ids >= 0 ? H5Dget_type(ids) : -1;
    int ok = type >= 0 && H5Tget_class(type) == H5T_STRING && !H5Tis_variable_str(type);
    size_t id_len = ok ? H5Tget_size(type) : 0;
    ok = ok && id_len >= 1 && id_len < sizeof(((xtal_crystal *)0)->id);
    ok = ok && arrays_alloc(a, nd[0], md[0], id_len, np) == 0;
    hsize_t n1[1] = {a->n}, n33[3] = {a->n, 3, 3}, m1[1] = {a->m}, m3[2] = {a->m, 3};
    ok = ok && dset_read(file, "crystals/id", type, 1, n1, a->ids) == 0;
    ok = ok && dset_read(file, "crystals/natoms", H5T_NATIVE_INT, 1, n1, a->natoms) == 0;
    ok = ok && dset_read(file, "crystals/atom_offset", H5T_NATIVE_INT64, 1, n1, a->offset) == 0;
    ok = ok && dset_read(file, "crystals/lattice", H5T_NATIVE_DOUBLE, 3, n33, a->lattice) == 0;
    ok = ok && dset_read(file, "atoms/Z", H5T_NATIVE_INT, 1, m1, a->Z) == 0;
    ok = ok && dset_read(file, "atoms/frac", H5T_NATIVE_DOUBLE, 2, m3, a->frac) == 0;
    xtal_h5_close(type);
    xtal_h5_close(ids);
    return ok ? 0 : -1;
}

/* Reads /properties in creation order: names (from the "column" attributes) and values. */
static int read_properties(hid_t file, cache_arrays *a, int np, char **names)
{
    hid_t group = H5Gopen2(file, "properties", H5P_DEFAULT);
    int ok = group >= 0;
    for (int p = 0; ok && p < np; p++) {
        char link[600];
        ok = H5Lget_name_by_idx(group, ".", H5_INDEX_CRT_ORDER, H5_ITER_INC, (hsize_t)p, link,
                                sizeof link, H5P_DEFAULT) > 0;
        hid_t dset = ok ? H5Dopen2(group, link, H5P_DEFAULT) : -1;
        char column[600];
        ok = dset >= 0 && xtal_h5_attr_get_string(dset, "column", column, sizeof column) == 0;
        xtal_h5_close(dset);
        names[p] = ok ? strdup(column) : NULL;
        hsize_t dims[1] = {a->n};
        ok = ok && names[p] &&
             dset_read(group, link, H5T_NATIVE_DOUBLE, 1, dims, a->props + (size_t)p * a->n) == 0;
    }
    xtal_h5_close(group);
    return ok ? 0 : -1;
}

/* CSR consistency: offsets follow natoms, atoms are counted once, elements are known. */
static const char *arrays_check(const cache_arrays *a)
{
    int64_t at = 0;
    for (hsize_t i = 0; i < a->n; i++) {
        if (a->natoms[i] < 1 || a->natoms[i] > XTAL_MAX_ATOMS) return "atom count out of range";
        if (a->offset[i] != at) return "atom offsets do not follow the atom counts";
        at += a->natoms[i];
    }
    if ((hsize_t)at != a->m) return "atom counts do not add up to /atoms";
    for (hsize_t k = 0; k < a->m; k++)
        if (a->Z[k] < 1 || a->Z[k] > XTAL_NUM_ELEMENTS) return "atomic number out of range";
    return NULL;
}

static int dataset_from_arrays(const cache_arrays *a, int np, char **names, xtal_dataset *ds,
                               xtal_err *err)
{
    memset(ds, 0, sizeof *ds);
    xtal_list *l = &ds->crystals;
    size_t n1 = a->n ? a->n : 1;
    l->items = calloc(n1, sizeof *l->items);
    ds->prop_values = np > 0 ? malloc(n1 * (size_t)np * sizeof(double)) : NULL;
    ds->prop_names = names;
    ds->n_props = np;
    if (!l->items || (np > 0 && !ds->prop_values))
        return xtal_err_set(err, XTAL_ENOMEM, "out of memory for %llu crystals",
                            (unsigned long long)a->n);
    l->cap = (int)n1;
    for (hsize_t i = 0; i < a->n; i++) {
        xtal_crystal *c = &l->items[i];
        int rc = xtal_crystal_init(c, a->natoms[i], err);
        if (rc) return rc;
        l->n++;
        memcpy(c->id, a->ids + i * a->id_len, a->id_len); /* id_len < sizeof id: terminated */
        memcpy(c->lattice, a->lattice + 9 * i, sizeof c->lattice);
        memcpy(c->Z, a->Z + a->offset[i], (size_t)c->natoms * sizeof *c->Z);
        memcpy(c->frac, a->frac + 3 * a->offset[i], 3 * (size_t)c->natoms * sizeof *c->frac);
        for (int p = 0; p < np; p++) ds->prop_values[i * np + p] = a->props[p * a->n + i];
    }
    return XTAL_OK;
}

/* Checks the format attributes; returns the number of properties or -1. */
static int check_format(hid_t file, const char **why)
{
    char format[64] = "";
    int64_t version = 0, n_props = -1;
    hid_t group = H5Gopen2(file, "properties", H5P_DEFAULT);
    H5G_info_t info;
    if (group >= 0 && H5Gget_info(group, &info) >= 0) n_props = (int64_t)info.nlinks;
    xtal_h5_close(group);
    if (xtal_h5_attr_get_string(file, "format", format, sizeof format) ||
        strcmp(format, CACHE_FORMAT)) {
        *why = "not a druse dataset cache";
        return -1;
    }
    if (attr_read_i64(file, "format_version", &version) || version != CACHE_FORMAT_VERSION) {
        *why = "written by another version of the cache format";
        return -1;
    }
    if (n_props < 0 || n_props > 4096) {
        *why = "no readable /properties group";
        return -1;
    }
    return (int)n_props;
}

/* Reads an open cache file into ds, checking format, shapes, crc and CSR structure. */
static int read_cache_file(hid_t file, const char *path, xtal_dataset *ds, xtal_err *err)
{
    const char *why = NULL;
    char detail[160];
    int np = check_format(file, &why);
    if (np < 0) return xtal_err_set(err, XTAL_EPARSE, "%s: %s", path, why);
    cache_arrays a = {0};
    char **names = calloc((size_t)np + 1, sizeof *names);
    int64_t crc_stored = -1;
    int ok = names && read_structures(file, &a, np) == 0;
    ok = ok && read_properties(file, &a, np, names) == 0;
    if (!ok) why = h5_detail(detail);
    if (ok && (attr_read_i64(file, "content_crc32", &crc_stored) ||
               crc_stored != (int64_t)arrays_crc(&a, np, names)))
        ok = 0, why = "checksum mismatch (corrupt file)";
    if (ok && (why = arrays_check(&a))) ok = 0;
    int rc = ok ? dataset_from_arrays(&a, np, names, ds, err)
                : xtal_err_set(err, XTAL_EPARSE, "%s: corrupt dataset cache: %s", path, why);
    if (ok) names = NULL; /* owned by ds now */
    for (int p = 0; names && p < np; p++) free(names[p]);
    free(names);
    arrays_free(&a);
    if (rc) xtal_dataset_free(ds);
    return rc;
}

static hid_t open_cache(const char *path, xtal_err *err)
{
    hid_t fapl = h5_fapl();
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    char detail[160];
    if (file < 0)
        xtal_err_set(err, XTAL_EPARSE, "%s: unreadable cache: %s", path, h5_detail(detail));
    xtal_h5_close(fapl);
    return file;
}

int xtal_dataset_read_cache(const char *cache_path, xtal_dataset *ds, xtal_err *err)
{
    memset(ds, 0, sizeof *ds);
    if (access(cache_path, R_OK) != 0)
        return xtal_err_set(err, XTAL_EIO, "%s: %s", cache_path, strerror(errno));
    xtal_h5_quiet q = xtal_h5_quiet_begin();
    hid_t file = open_cache(cache_path, err);
    int rc = file < 0 ? XTAL_EPARSE : read_cache_file(file, cache_path, ds, err);
    xtal_h5_close(file);
    xtal_h5_quiet_end(q);
    return rc;
}

/* ------------------------------------------------------------- freshness */

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* XTAL_OK when the cache was made from this very source file (same name, size and mtime);
 * else an error saying what differs. */
static int check_source(hid_t file, const char *cache_path, const char *csv_path,
                        const struct stat *st, xtal_err *err)
{
    char source[PATH_MAX] = "";
    int64_t size = -1, sec = -1, nsec = -1;
    if (xtal_h5_attr_get_string(file, "source_path", source, sizeof source) ||
        attr_read_i64(file, "source_size", &size) || attr_read_i64(file, "source_mtime", &sec) ||
        attr_read_i64(file, "source_mtime_nsec", &nsec))
        return xtal_err_set(err, XTAL_EPARSE, "%s: no source attributes", cache_path);
    if (strcmp(base_name(source), base_name(csv_path)) != 0)
        return xtal_err_set(err, XTAL_EINVALID, "%s: made from %s, not %s", cache_path, source,
                            csv_path);
    if (size != (int64_t)st->st_size)
        return xtal_err_set(err, XTAL_EINVALID, "%s: stale (source size %lld, now %lld)",
                            cache_path, (long long)size, (long long)st->st_size);
    if (sec != (int64_t)st->st_mtim.tv_sec || nsec != (int64_t)st->st_mtim.tv_nsec)
        return xtal_err_set(err, XTAL_EINVALID, "%s: stale (source modified since)", cache_path);
    return XTAL_OK;
}

/* Reads cache_path if it is fresh for the source; any failure is an error (the caller
 * rebuilds). */
static int read_if_fresh(const char *cache_path, const char *csv_path, const struct stat *st,
                         xtal_dataset *ds, xtal_err *err)
{
    if (access(cache_path, F_OK) != 0)
        return xtal_err_set(err, XTAL_EIO, "%s: no cache yet", cache_path);
    xtal_h5_quiet q = xtal_h5_quiet_begin();
    hid_t file = open_cache(cache_path, err);
    int rc = file < 0 ? XTAL_EPARSE : check_source(file, cache_path, csv_path, st, err);
    if (!rc) rc = read_cache_file(file, cache_path, ds, err);
    xtal_h5_close(file);
    xtal_h5_quiet_end(q);
    return rc;
}

/* ---------------------------------------------------------- cache location */

static int mkdir_p(const char *dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) return -1;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(path, 0777) != 0 && errno != EEXIST) return -1;
    return access(path, W_OK) == 0 ? 0 : -1;
}

/* FNV-1a, 64 bits: tells caches of same-named files in different folders apart. */
static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* The per-user cache folder: $DRUSE_CACHE_DIR, else $XDG_CACHE_HOME/druse, else
 * ~/.cache/druse. */
static int user_cache_dir(char *buf, size_t size)
{
    const char *env = getenv("DRUSE_CACHE_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int len;
    if (env && env[0])
        len = snprintf(buf, size, "%s", env);
    else if (xdg && xdg[0])
        len = snprintf(buf, size, "%s/druse", xdg);
    else if (home && home[0])
        len = snprintf(buf, size, "%s/.cache/druse", home);
    else
        return -1;
    return len > 0 && (size_t)len < size ? 0 : -1;
}

static void dir_name(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(buf, size, ".");
    else if (slash == path)
        snprintf(buf, size, "/");
    else
        snprintf(buf, size, "%.*s", (int)(slash - path), path);
}

/* Writable for us and meant to be written: root passes access(W_OK) everywhere, so a folder
 * without any write permission bit (such as the shared data folder) counts as read-only. */
static int dir_writable(const char *dir)
{
    struct stat st;
    return access(dir, W_OK) == 0 && stat(dir, &st) == 0 && (st.st_mode & 0222) != 0;
}

int xtal_dataset_cache_path(const char *csv_path, char *buf, size_t bufsize, xtal_err *err)
{
    char dir[PATH_MAX];
    dir_name(csv_path, dir, sizeof dir);
    if (dir_writable(dir)) {
        if (snprintf(buf, bufsize, "%s.h5", csv_path) >= (int)bufsize)
            return xtal_err_set(err, XTAL_ELIMIT, "%s: path too long", csv_path);
        return XTAL_OK;
    }
    char cache_dir[PATH_MAX], resolved[PATH_MAX];
    if (user_cache_dir(cache_dir, sizeof cache_dir) != 0)
        return xtal_err_set(err, XTAL_EIO,
                            "%s: folder is read-only and no cache folder is set (DRUSE_CACHE_DIR, "
                            "XDG_CACHE_HOME or HOME)",
                            csv_path);
    if (mkdir_p(cache_dir) != 0)
        return xtal_err_set(err, XTAL_EIO, "%s: cannot create or write: %s", cache_dir,
                            strerror(errno));
    const char *key = realpath(csv_path, resolved) ? resolved : csv_path;
    if (snprintf(buf, bufsize, "%s/%s.%016llx.h5", cache_dir, base_name(csv_path),
                 (unsigned long long)fnv1a64(key)) >= (int)bufsize)
        return xtal_err_set(err, XTAL_ELIMIT, "%s: cache path too long", cache_dir);
    return XTAL_OK;
}

/* ------------------------------------------------------------------ loading */

static void info_note(xtal_cache_info *info, const char *prefix, const xtal_err *e)
{
    if (!info || info->note[0]) return;
    /* prefix + message, cut to fit (by hand: snprintf here trips -Wformat-truncation) */
    size_t cap = sizeof info->note - 1, np = strnlen(prefix, cap);
    size_t nm = strnlen(e->msg, cap - np);
    memcpy(info->note, prefix, np);
    memcpy(info->note + np, e->msg, nm);
    info->note[np + nm] = '\0';
}

/* Tries the cache beside the CSV (it may have been built by someone allowed to write there)
 * and then the default location. Returns XTAL_OK when one was fresh. */
static int load_default_cache(const char *csv_path, const struct stat *st, xtal_dataset *ds,
                              char *target, size_t target_size, xtal_cache_info *info)
{
    char beside[PATH_MAX];
    xtal_err e = {{0}};
    snprintf(beside, sizeof beside, "%s.h5", csv_path);
    if (access(beside, F_OK) == 0) {
        if (read_if_fresh(beside, csv_path, st, ds, &e) == XTAL_OK) {
            snprintf(target, target_size, "%s", beside);
            return XTAL_OK;
        }
        info_note(info, "rebuilt: ", &e);
    }
    if (xtal_dataset_cache_path(csv_path, target, target_size, &e) != XTAL_OK) {
        target[0] = '\0';
        info_note(info, "not cached: ", &e);
        return XTAL_EIO;
    }
    if (strcmp(target, beside) == 0 || access(target, F_OK) != 0) return XTAL_EIO;
    if (read_if_fresh(target, csv_path, st, ds, &e) == XTAL_OK) return XTAL_OK;
    info_note(info, "rebuilt: ", &e);
    return XTAL_EPARSE;
}

int xtal_dataset_load_ex(const char *csv_path, const char *cache_path, xtal_dataset *ds,
                         xtal_cache_info *info, xtal_err *err)
{
    xtal_cache_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    memset(ds, 0, sizeof *ds);
    struct stat st;
    if (stat(csv_path, &st) != 0)
        return xtal_err_set(err, XTAL_EIO, "%s: %s", csv_path, strerror(errno));
    char target[PATH_MAX] = "";
    xtal_err e = {{0}};
    int found;
    if (cache_path) {
        snprintf(target, sizeof target, "%s", cache_path);
        found = read_if_fresh(target, csv_path, &st, ds, &e);
        if (found && access(target, F_OK) == 0) info_note(info, "rebuilt: ", &e);
    } else {
        found = load_default_cache(csv_path, &st, ds, target, sizeof target, info);
    }
    snprintf(info->cache_path, sizeof info->cache_path, "%s", target);
    if (found == XTAL_OK) {
        info->from_cache = 1;
        return XTAL_OK;
    }
    int rc = xtal_dataset_read_csv(csv_path, -1, ds, err);
    if (rc || !target[0]) return rc;
    rc = write_cache_stat(ds, csv_path, &st, target, &e);
    if (rc == XTAL_OK) {
        info->cache_written = 1;
    } else if (cache_path) { /* an explicit cache that cannot be written is an error */
        xtal_dataset_free(ds);
        if (err) *err = e;
        return rc;
    } else {
        info->note[0] = '\0';
        info_note(info, "not cached: ", &e);
    }
    return XTAL_OK;
}

int xtal_dataset_load(const char *csv_path, const char *cache_path, xtal_dataset *ds, xtal_err *err)
{
    return xtal_dataset_load_ex(csv_path, cache_path, ds, NULL, err);
}
