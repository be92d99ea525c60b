/* The crystal type: allocation, validation, lists, and the error helper of all modules. */
#include "crystal/crystal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int xtal_err_set(xtal_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *xtal_status_name(int code)
{
    switch (code) {
    case XTAL_OK:
        return "ok";
    case XTAL_EIO:
        return "I/O error";
    case XTAL_EPARSE:
        return "parse error";
    case XTAL_EINVALID:
        return "invalid structure";
    case XTAL_EUNSUPPORTED:
        return "unsupported";
    case XTAL_ENOMEM:
        return "out of memory";
    case XTAL_ELIMIT:
        return "limit exceeded";
    case XTAL_EOF:
        return "end of file";
    default:
        return "unknown error";
    }
}

int xtal_crystal_init(xtal_crystal *c, int natoms, xtal_err *err)
{
    memset(c, 0, sizeof *c);
    if (natoms < 0 || natoms > XTAL_MAX_ATOMS)
        return xtal_err_set(err, XTAL_ELIMIT, "%d atoms is outside 0..%d", natoms, XTAL_MAX_ATOMS);
    /* calloc(0) may return NULL legitimately; allocate at least one slot. */
    size_t n = natoms > 0 ? (size_t)natoms : 1;
    c->Z = calloc(n, sizeof *c->Z);
    c->frac = calloc(3 * n, sizeof *c->frac);
    if (!c->Z || !c->frac) {
        xtal_crystal_free(c);
        return xtal_err_set(err, XTAL_ENOMEM, "out of memory for %d atoms", natoms);
    }
    c->natoms = natoms;
    return XTAL_OK;
}

void xtal_crystal_free(xtal_crystal *c)
{
    if (!c) return;
    free(c->Z);
    free(c->frac);
    c->Z = NULL;
    c->frac = NULL;
    c->natoms = 0;
}

int xtal_crystal_copy(xtal_crystal *dst, const xtal_crystal *src, xtal_err *err)
{
    int rc = xtal_crystal_init(dst, src->natoms, err);
    if (rc) return rc;
    memcpy(dst->id, src->id, sizeof dst->id);
    memcpy(dst->lattice, src->lattice, sizeof dst->lattice);
    memcpy(dst->Z, src->Z, (size_t)src->natoms * sizeof *src->Z);
    memcpy(dst->frac, src->frac, 3 * (size_t)src->natoms * sizeof *src->frac);
    return XTAL_OK;
}

int xtal_crystal_validate(const xtal_crystal *c, xtal_err *err)
{
    if (c->natoms < 1 || c->natoms > XTAL_MAX_ATOMS)
        return xtal_err_set(err, XTAL_EINVALID, "%s: %d atoms (need 1..%d)", c->id, c->natoms,
                            XTAL_MAX_ATOMS);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++)
            if (!isfinite(c->lattice[i][k]))
                return xtal_err_set(err, XTAL_EINVALID, "%s: lattice is not finite", c->id);
    double volume = xtal_lattice_volume(c->lattice);
    if (!(fabs(volume) > 1e-6))
        return xtal_err_set(err, XTAL_EINVALID, "%s: cell volume %g A^3 is zero or degenerate",
                            c->id, volume);
    for (int a = 0; a < c->natoms; a++) {
        if (!xtal_element_by_Z(c->Z[a]))
            return xtal_err_set(err, XTAL_EINVALID, "%s: atom %d has unknown atomic number %d",
                                c->id, a + 1, c->Z[a]);
        for (int k = 0; k < 3; k++)
            if (!isfinite(c->frac[3 * a + k]))
                return xtal_err_set(err, XTAL_EINVALID, "%s: atom %d has a non-finite coordinate",
                                    c->id, a + 1);
    }
    return XTAL_OK;
}

int xtal_list_push(xtal_list *l, xtal_crystal *c, xtal_err *err)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        xtal_crystal *items = realloc(l->items, (size_t)cap * sizeof *items);
        if (!items) return xtal_err_set(err, XTAL_ENOMEM, "out of memory for %d crystals", cap);
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = *c;
    memset(c, 0, sizeof *c);
    return XTAL_OK;
}

void xtal_list_free(xtal_list *l)
{
    if (!l) return;
    for (int i = 0; i < l->n; i++) xtal_crystal_free(&l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}
