/* Small HDF5 helpers shared by every druse file format (dataset cache, novelty index, model
 * files, checkpoints): scalar attributes, closing ids of any kind, and a quiet error stack. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crystal/crystal.h"

xtal_h5_quiet xtal_h5_quiet_begin(void)
{
    xtal_h5_quiet q;
    H5Eget_auto2(H5E_DEFAULT, &q.func, &q.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}

void xtal_h5_quiet_end(xtal_h5_quiet q)
{
    H5Eset_auto2(H5E_DEFAULT, q.func, q.data);
}

void xtal_h5_close(hid_t id)
{
    if (id < 0) return;
    switch (H5Iget_type(id)) {
    case H5I_FILE:
        H5Fclose(id);
        break;
    case H5I_GROUP:
        H5Gclose(id);
        break;
    case H5I_DATASET:
        H5Dclose(id);
        break;
    case H5I_DATASPACE:
        H5Sclose(id);
        break;
    case H5I_DATATYPE:
        H5Tclose(id);
        break;
    case H5I_ATTR:
        H5Aclose(id);
        break;
    case H5I_GENPROP_LST:
        H5Pclose(id);
        break;
    default:
        break;
    }
}

int xtal_h5_attr_put(hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
                     const void *value)
{
    hid_t space = H5Screate(H5S_SCALAR), attr = -1;
    if (space >= 0) attr = H5Acreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    int ok = attr >= 0 && H5Awrite(attr, mem_type, value) >= 0;
    xtal_h5_close(attr);
    xtal_h5_close(space);
    return ok ? 0 : -1;
}

int xtal_h5_attr_put_string(hid_t loc, const char *name, const char *value)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    int ok = type >= 0 && H5Tset_size(type, strlen(value) + 1) >= 0 &&
             H5Tset_strpad(type, H5T_STR_NULLTERM) >= 0 &&
             xtal_h5_attr_put(loc, name, type, type, value) == 0;
    xtal_h5_close(type);
    return ok ? 0 : -1;
}

int xtal_h5_attr_get(hid_t loc, const char *name, hid_t mem_type, void *value)
{
    if (H5Aexists(loc, name) <= 0) return -1;
    hid_t attr = H5Aopen(loc, name, H5P_DEFAULT);
    int ok = attr >= 0 && H5Aread(attr, mem_type, value) >= 0;
    xtal_h5_close(attr);
    return ok ? 0 : -1;
}

int xtal_h5_attr_get_string(hid_t loc, const char *name, char *buf, size_t size)
{
    if (H5Aexists(loc, name) <= 0) return -1;
    hid_t attr = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t type = attr >= 0 ? H5Aget_type(attr) : -1;
    int ok = type >= 0 && H5Tget_class(type) == H5T_STRING && !H5Tis_variable_str(type);
    size_t len = ok ? H5Tget_size(type) : 0;
    char *tmp = ok ? calloc(len + 1, 1) : NULL;
    ok = tmp && H5Aread(attr, type, tmp) >= 0;
    if (ok) snprintf(buf, size, "%s", tmp);
    free(tmp);
    xtal_h5_close(type);
    xtal_h5_close(attr);
    return ok ? 0 : -1;
}

int xtal_h5_dataset_put(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, int rank,
                        const hsize_t *dims, const void *data, const char *attr, const char *value)
{
    hsize_t count = 1;
    for (int i = 0; i < rank; i++) count *= dims[i];
    hid_t space = H5Screate_simple(rank, dims, NULL), dset = -1;
    if (space >= 0)
        dset = H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int ok = dset >= 0 &&
             (count == 0 || H5Dwrite(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    ok = ok && (!attr || xtal_h5_attr_put_string(dset, attr, value) == 0);
    xtal_h5_close(dset);
    xtal_h5_close(space);
    return ok ? 0 : -1;
}
