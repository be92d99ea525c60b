/* Extended XYZ writer (the format of ASE and QUIP): one frame per call, Cartesian positions in
 * Angstrom at full precision, read back by ase.io.read(..., format="extxyz"). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "crystal/crystal.h"
#include "crystal/io_util.h"

/* The comment line is one line: extra may not break it. */
static int check_extra(const char *extra, const char *path, xtal_err *err)
{
    if (extra && strpbrk(extra, "\n\r"))
        return xtal_err_set(err, XTAL_EINVALID, "%s: extra key=value text holds a line break",
                            path);
    return XTAL_OK;
}

static void write_frame(FILE *fp, const xtal_crystal *c, const char *extra)
{
    const double(*L)[3] = c->lattice;
    fprintf(fp, "%d\n", c->natoms);
    fprintf(fp, "Lattice=\"%.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g\" ", L[0][0],
            L[0][1], L[0][2], L[1][0], L[1][1], L[1][2], L[2][0], L[2][1], L[2][2]);
    fprintf(fp, "Properties=species:S:1:pos:R:3 pbc=\"T T T\"");
    if (extra && extra[0]) fprintf(fp, " %s", extra);
    fputc('\n', fp);
    for (int i = 0; i < c->natoms; i++) {
        double x[3];
        xtal_frac_to_cart(c->lattice, c->frac + 3 * i, x);
        fprintf(fp, "%-2s %.17g %.17g %.17g\n", xtal_element_by_Z(c->Z[i])->symbol, x[0], x[1],
                x[2]);
    }
}

int xtal_write_extxyz(const xtal_crystal *c, const char *extra, const char *path, int append,
                      xtal_err *err)
{
    int rc = check_extra(extra, path, err);
    if (rc) return rc;
    if (c->natoms < 1) return xtal_err_set(err, XTAL_EINVALID, "%s: no atoms to write", path);
    for (int i = 0; i < c->natoms; i++)
        if (!xtal_element_by_Z(c->Z[i]))
            return xtal_err_set(err, XTAL_EINVALID, "%s: atom %d has unknown atomic number %d",
                                path, i + 1, c->Z[i]);
    FILE *fp = fopen(path, append ? "a" : "w");
    if (!fp) return xtal_err_set(err, XTAL_EIO, "%s: %s", path, strerror(errno));
    write_frame(fp, c, extra);
    return xtal_io_close_written(fp, path, err);
}
