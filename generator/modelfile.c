/* generator/modelfile.c: HDF5 model files (format "druse-generator", version 1).
 *
 * Layout (docs/generator.md): root attributes format, format_version, hidden, layers, n_freq,
 * time_dim, n_types, mask_type, n_params, params_sha256; one float32 dataset per tensor under
 * /params/<name> with the tensor's PyTorch shape; optionally /natoms_histogram (float64). Serial
 * HDF5 (H5Fcreate with default property lists) works on the parallel build as well.
 */
#include "generator/generator.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crystal/crystal.h" /* again, after <hdf5.h>: its HDF5 helpers */

#define GEN_FORMAT         "druse-generator"
#define GEN_FORMAT_VERSION 1

static int attr_write_long(hid_t obj, const char *name, long long v)
{
    return xtal_h5_attr_put(obj, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, &v);
}

static int attr_read_long(hid_t obj, const char *name, long long *v)
{
    return xtal_h5_attr_get(obj, name, H5T_NATIVE_LLONG, v);
}

/* The atom-count histogram: dataset /natoms_histogram (float64 little-endian, index = atoms per
 * cell) with the SHA-256 of its bytes as attribute "sha256". */
static int hist_write(hid_t f, const gen_model *m)
{
    hsize_t n = (hsize_t)m->natoms_hist_len;
    char sha[65];
    gen_sha256_hex(m->natoms_hist, n * sizeof(double), sha);
    if (xtal_h5_dataset_put(f, "natoms_histogram", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &n,
                            m->natoms_hist, "sha256", sha))
        return -1;
    hid_t ds = H5Dopen2(f, "natoms_histogram", H5P_DEFAULT);
    int bad = ds < 0 || xtal_h5_attr_put_string(
                            ds, "meaning", "training crystals with k atoms per cell at index k");
    xtal_h5_close(ds);
    return bad;
}

/* Reads /natoms_histogram when present (a model without one keeps NULL). */
static int hist_read(hid_t f, gen_model *m, const char *path, xtal_err *err)
{
    if (H5Lexists(f, "natoms_histogram", H5P_DEFAULT) <= 0) return XTAL_OK;
    hid_t ds = H5Dopen2(f, "natoms_histogram", H5P_DEFAULT);
    hid_t sp = ds < 0 ? -1 : H5Dget_space(ds);
    hsize_t n = 0;
    int ok = sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1 &&
             H5Sget_simple_extent_dims(sp, &n, NULL) == 1 && n >= 1 &&
             n <= (hsize_t)XTAL_MAX_ATOMS + 1;
    double *h = ok ? malloc(n * sizeof *h) : NULL;
    char sha_file[80] = "", sha[65] = "";
    if (ok && h && H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, h) >= 0 &&
        !xtal_h5_attr_get_string(ds, "sha256", sha_file, sizeof sha_file))
        gen_sha256_hex(h, n * sizeof(double), sha);
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
    int rc = XTAL_OK;
    xtal_err e2;
    if (!sha[0] || strcmp(sha, sha_file))
        rc = xtal_err_set(err, XTAL_EPARSE,
                          "model file %s: natoms_histogram is unreadable or fails its checksum",
                          path);
    else if (gen_model_set_natoms_hist(m, h, (int)n, &e2) < 0)
        rc = xtal_err_set(err, XTAL_EPARSE, "model file %s: natoms_histogram: %s", path, e2.msg);
    free(h);
    return rc;
}

int gen_model_save(const gen_model *m, const char *path, xtal_err *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    xtal_h5_quiet q = xtal_h5_quiet_begin();
    int rc = XTAL_OK;
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        xtal_h5_quiet_end(q);
        return xtal_err_set(err, XTAL_EIO, "model file %s: cannot create %s", path, tmp);
    }
    char sha[65];
    gen_params_sha256(m, sha);
    const gen_hparams *hp = &m->hp;
    int bad = xtal_h5_attr_put_string(f, "format", GEN_FORMAT);
    bad |= attr_write_long(f, "format_version", GEN_FORMAT_VERSION);
    bad |= attr_write_long(f, "hidden", hp->hidden);
    bad |= attr_write_long(f, "layers", hp->layers);
    bad |= attr_write_long(f, "n_freq", hp->n_freq);
    bad |= attr_write_long(f, "time_dim", hp->time_dim);
    bad |= attr_write_long(f, "n_types", hp->n_types);
    bad |= attr_write_long(f, "mask_type", GEN_MASK_TYPE);
    bad |= attr_write_long(f, "n_params", (long long)m->n_params);
    bad |= xtal_h5_attr_put_string(f, "params_sha256", sha);
    bad |= xtal_h5_attr_put_string(
        f, "type_vocabulary",
        "type 0 = MASK, type Z = element Z (1..n_types-1); type_head logit k "
        "= element k+1");
    hid_t g = H5Gcreate2(f, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) bad = 1;
    for (int i = 0; i < m->n_tensors && !bad; i++) {
        const gen_tensor *t = &m->tensors[i];
        hsize_t dims[2] = {(hsize_t)t->shape[0], (hsize_t)t->shape[1]};
        if (xtal_h5_dataset_put(g, t->name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t->ndim, dims,
                                m->params + t->offset, NULL, NULL))
            bad = 1;
    }
    if (g >= 0) H5Gclose(g);
    if (!bad && m->natoms_hist_len > 0) bad = hist_write(f, m);
    if (H5Fclose(f) < 0) bad = 1;
    xtal_h5_quiet_end(q);
    if (bad) {
        unlink(tmp);
        return xtal_err_set(err, XTAL_EIO, "model file %s: write failed", path);
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        rc = xtal_err_set(err, XTAL_EIO, "model file %s: cannot rename %s into place", path, tmp);
    }
    return rc;
}

int gen_model_load(gen_model *m, const char *path, xtal_err *err)
{
    memset(m, 0, sizeof *m);
    if (access(path, R_OK) != 0)
        return xtal_err_set(err, XTAL_EIO, "model file %s: cannot read (missing or no permission)",
                            path);
    xtal_h5_quiet q = xtal_h5_quiet_begin();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        xtal_h5_quiet_end(q);
        return xtal_err_set(err, XTAL_EPARSE,
                            "model file %s: not a readable HDF5 file (corrupt or truncated)", path);
    }
    int rc = XTAL_OK;
    char fmt[64] = "", sha_file[80] = "";
    long long ver = 0, v[5] = {0}, np = 0;
    static const char *names[5] = {"hidden", "layers", "n_freq", "time_dim", "n_types"};
    if (xtal_h5_attr_get_string(f, "format", fmt, sizeof fmt) || strcmp(fmt, GEN_FORMAT)) {
        rc = xtal_err_set(err, XTAL_EPARSE,
                          "model file %s: not a druse generator model "
                          "(attribute format is missing or not \"%s\")",
                          path, GEN_FORMAT);
        goto done;
    }
    if (attr_read_long(f, "format_version", &ver) || ver != GEN_FORMAT_VERSION) {
        rc = xtal_err_set(err, XTAL_EUNSUPPORTED, "model file %s: format version %lld, expected %d",
                          path, ver, GEN_FORMAT_VERSION);
        goto done;
    }
    for (int i = 0; i < 5; i++) {
        if (attr_read_long(f, names[i], &v[i]) || v[i] < 0 || v[i] > 1000000) {
            rc = xtal_err_set(err, XTAL_EPARSE, "model file %s: attribute %s missing or invalid",
                              path, names[i]);
            goto done;
        }
    }
    if (attr_read_long(f, "n_params", &np) ||
        xtal_h5_attr_get_string(f, "params_sha256", sha_file, sizeof sha_file)) {
        rc = xtal_err_set(err, XTAL_EPARSE,
                          "model file %s: attribute n_params or params_sha256 "
                          "missing",
                          path);
        goto done;
    }
    gen_hparams hp = {(int)v[0], (int)v[1], (int)v[2], (int)v[3], (int)v[4]};
    xtal_err e2;
    rc = gen_model_create(m, &hp, 0, &e2);
    if (rc) {
        rc = xtal_err_set(err, rc, "model file %s: %s", path, e2.msg);
        goto done;
    }
    if ((long long)m->n_params != np) {
        rc = xtal_err_set(err, XTAL_EPARSE,
                          "model file %s: n_params %lld does not match the hyperparameters (%zu)",
                          path, np, m->n_params);
        goto done;
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const gen_tensor *t = &m->tensors[i];
        char dname[GEN_NAME_MAX + 16];
        snprintf(dname, sizeof dname, "params/%s", t->name);
        hid_t ds = H5Dopen2(f, dname, H5P_DEFAULT);
        if (ds < 0) {
            rc = xtal_err_set(err, XTAL_EPARSE, "model file %s: tensor %s missing or unreadable",
                              path, t->name);
            goto done;
        }
        hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds);
        hsize_t dims[2] = {0, 0};
        int nd = H5Sget_simple_extent_ndims(sp);
        if (nd == t->ndim) H5Sget_simple_extent_dims(sp, dims, NULL);
        int ok = nd == t->ndim && H5Tget_class(ty) == H5T_FLOAT &&
                 dims[0] == (hsize_t)t->shape[0] && (nd == 1 || dims[1] == (hsize_t)t->shape[1]);
        herr_t re =
            ok ? H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, m->params + t->offset)
               : -1;
        H5Tclose(ty);
        H5Sclose(sp);
        H5Dclose(ds);
        if (!ok) {
            rc = xtal_err_set(err, XTAL_EPARSE,
                              "model file %s: tensor %s has the wrong type or shape (expected "
                              "float [%d x %d])",
                              path, t->name, t->shape[0], t->shape[1]);
            goto done;
        }
        if (re < 0) {
            rc = xtal_err_set(err, XTAL_EPARSE,
                              "model file %s: tensor %s cannot be read (corrupt or truncated)",
                              path, t->name);
            goto done;
        }
    }
    char sha[65];
    gen_params_sha256(m, sha);
    if (strcmp(sha, sha_file)) {
        rc = xtal_err_set(err, XTAL_EPARSE,
                          "model file %s: parameter checksum mismatch (sha256 %.16s... stored, "
                          "%.16s... computed): the file is corrupt",
                          path, sha_file, sha);
        goto done;
    }
    rc = hist_read(f, m, path, err);
done:
    H5Fclose(f);
    xtal_h5_quiet_end(q);
    if (rc) gen_model_free(m);
    return rc;
}
