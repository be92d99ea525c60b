/* `druse --version`: our version and the versions of the libraries found at run time (not the
 * headers we were built with), since on clusters modules change the libraries under us. */
#include <cblas.h>
#include <cyaml/cyaml.h>
#include <hdf5.h>
#include <mpi.h>
#include <spglib.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>
#include <zlib.h>

#include "pipeline/pipeline.h"

/* First line of MPI's library version string ("Open MPI v4.1.4, package: ..."). */
static void mpi_version(char *buf, size_t size)
{
    char s[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    /* MPI-3: callable before MPI_Init. */
    MPI_Get_library_version(s, &len);
    s[len < (int)sizeof s ? len : (int)sizeof s - 1] = 0;
    s[strcspn(s, ",\n")] = 0;
    snprintf(buf, size, "%s", s);
}

void pipe_print_version(FILE *out)
{
    unsigned h5maj = 0, h5min = 0, h5rel = 0;
    H5get_libversion(&h5maj, &h5min, &h5rel);
    char mpi[256];
    mpi_version(mpi, sizeof mpi);
    fprintf(out, "druse %s\n", DRUSE_VERSION);
    fprintf(out, "  spglib    %d.%d.%d\n", spg_get_major_version(), spg_get_minor_version(),
            spg_get_micro_version());
    fprintf(out, "  HDF5      %u.%u.%u\n", h5maj, h5min, h5rel);
    fprintf(out, "  OpenBLAS  %s\n", openblas_get_config());
    fprintf(out, "  MPI       %s\n", mpi);
    fprintf(out, "  libcyaml  %s\n", cyaml_version_str);
    fprintf(out, "  libyaml   %s\n", yaml_get_version_string());
    fprintf(out, "  zlib      %s\n", zlibVersion());
}
