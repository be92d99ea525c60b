/* Symmetry filter through spglib (Togo et al., Sci. Technol. Adv. Mater. Meth. 4 (2024)
 * 2384822; Debian libsymspg 2.0.2): space group, Hall number, Wyckoff letters, standardized
 * cells and symmetrization. spglib takes lattice vectors as columns: we transpose our rows.
 * Every spglib call is timed so that benchmarks can tell spglib's cost from ours.
 */
#define _POSIX_C_SOURCE 200809L
#include "filters/filters.h"

#include <math.h>
#include <spglib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local double spglib_seconds;

double flt_spglib_seconds(void)
{
    return spglib_seconds;
}
void flt_spglib_seconds_reset(void)
{
    spglib_seconds = 0;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* spglib's input: column lattice, positions, types; positions has room for 4 * natoms so that
 * a conventional cell (at most 4x a primitive one) fits when standardizing in place. */
typedef struct {
    double lattice[3][3]; /* lattice[k][i]: component k of vector i, Angstrom */
    double (*position)[3];
    int *types;
    int natoms;
} spg_cell;

static int spg_cell_init(spg_cell *s, const xtal_crystal *c, int room_factor, xtal_err *err)
{
    memset(s, 0, sizeof *s);
    if (c->natoms < 1) return xtal_err_set(err, XTAL_EINVALID, "%s: no atoms", c->id);
    size_t room = (size_t)c->natoms * (size_t)room_factor;
    s->position = malloc(room * sizeof *s->position);
    s->types = malloc(room * sizeof *s->types);
    if (!s->position || !s->types) {
        free(s->position);
        free(s->types);
        return xtal_err_set(err, XTAL_ENOMEM, "%s: out of memory for spglib", c->id);
    }
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++) s->lattice[k][i] = c->lattice[i][k];
    memcpy(s->position, c->frac, 3 * (size_t)c->natoms * sizeof(double));
    memcpy(s->types, c->Z, (size_t)c->natoms * sizeof(int));
    s->natoms = c->natoms;
    return XTAL_OK;
}

static void spg_cell_free(spg_cell *s)
{
    free(s->position);
    free(s->types);
    memset(s, 0, sizeof *s);
}

/* spglib's message for its last error; "" on success. */
static const char *spglib_message(void)
{
    SpglibError code = spg_get_error_code();
    return code == SPGLIB_SUCCESS ? "" : spg_get_error_message(code);
}

static void copy_dataset(flt_symmetry_result *out, const SpglibDataset *ds)
{
    out->ok = 1;
    out->spacegroup = ds->spacegroup_number;
    out->hall_number = ds->hall_number;
    snprintf(out->international, sizeof out->international, "%s", ds->international_symbol);
    snprintf(out->hall_symbol, sizeof out->hall_symbol, "%s", ds->hall_symbol);
    snprintf(out->pointgroup, sizeof out->pointgroup, "%s", ds->pointgroup_symbol);
    for (int a = 0; a < out->natoms; a++) {
        int w = ds->wyckoffs[a];
        out->wyckoffs[a] = (char)(w >= 0 && w < 26 ? 'a' + w : '?');
        out->equivalent_atoms[a] = ds->equivalent_atoms[a];
    }
    out->wyckoffs[out->natoms] = 0;
    out->n_operations = ds->n_operations;
    out->n_std_atoms = ds->n_std_atoms;
}

static int symmetry_result_init(flt_symmetry_result *out, const xtal_crystal *c, double symprec,
                                double angle_tolerance, xtal_err *err)
{
    memset(out, 0, sizeof *out);
    out->symprec = symprec;
    out->angle_tolerance = angle_tolerance;
    out->natoms = c->natoms;
    if (c->natoms < 1) return xtal_err_set(err, XTAL_EINVALID, "%s: no atoms", c->id);
    out->wyckoffs = calloc((size_t)c->natoms + 1, 1);
    out->equivalent_atoms = calloc((size_t)c->natoms, sizeof(int));
    if (!out->wyckoffs || !out->equivalent_atoms) {
        flt_symmetry_result_free(out);
        return xtal_err_set(err, XTAL_ENOMEM, "%s: out of memory", c->id);
    }
    return XTAL_OK;
}

int flt_symmetry_analyze(const xtal_crystal *c, double symprec, double angle_tolerance,
                         flt_symmetry_result *out, xtal_err *err)
{
    int rc = symmetry_result_init(out, c, symprec, angle_tolerance, err);
    if (rc) return rc;
    spg_cell s;
    rc = spg_cell_init(&s, c, 1, err);
    if (rc) {
        flt_symmetry_result_free(out);
        return rc;
    }
    double t0 = now_seconds();
    SpglibDataset *ds =
        spgat_get_dataset(s.lattice, s.position, s.types, s.natoms, symprec, angle_tolerance);
    const char *message = spglib_message();
    spglib_seconds += now_seconds() - t0;
    if (ds && ds->spacegroup_number > 0 && ds->n_atoms == c->natoms) {
        copy_dataset(out, ds);
    } else {
        snprintf(out->message, sizeof out->message, "spglib: %s",
                 *message ? message : "no space group found");
    }
    if (ds) spg_free_dataset(ds);
    spg_cell_free(&s);
    return XTAL_OK;
}

void flt_symmetry_result_free(flt_symmetry_result *r)
{
    if (!r) return;
    free(r->wyckoffs);
    free(r->equivalent_atoms);
    r->wyckoffs = NULL;
    r->equivalent_atoms = NULL;
}

/* spgat_standardize_cell into a new crystal (rows again). */
static int standardize(const xtal_crystal *c, int to_primitive, double symprec,
                       double angle_tolerance, xtal_crystal *out, xtal_err *err)
{
    memset(out, 0, sizeof *out);
    spg_cell s;
    int rc = spg_cell_init(&s, c, 4, err);
    if (rc) return rc;
    double t0 = now_seconds();
    int n = spgat_standardize_cell(s.lattice, s.position, s.types, s.natoms, to_primitive, 0,
                                   symprec, angle_tolerance);
    const char *message = spglib_message();
    spglib_seconds += now_seconds() - t0;
    if (n < 1 || n > 4 * s.natoms) {
        rc = xtal_err_set(err, XTAL_EINVALID, "%s: spglib could not standardize the cell: %s",
                          c->id, *message ? message : "no symmetry found");
    } else if ((rc = xtal_crystal_init(out, n, err)) == XTAL_OK) {
        memcpy(out->id, c->id, sizeof out->id);
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < 3; k++) out->lattice[i][k] = s.lattice[k][i];
        memcpy(out->frac, s.position, 3 * (size_t)n * sizeof(double));
        memcpy(out->Z, s.types, (size_t)n * sizeof(int));
    }
    spg_cell_free(&s);
    return rc;
}

int flt_standardize(const xtal_crystal *c, int to_primitive, double symprec, double angle_tolerance,
                    xtal_crystal *out, xtal_err *err)
{
    return standardize(c, to_primitive ? 1 : 0, symprec, angle_tolerance, out, err);
}

int flt_symmetrize(const xtal_crystal *c, double symprec, double angle_tolerance, xtal_crystal *out,
                   xtal_err *err)
{
    /* spglib's refinement: the conventional cell idealized to the group found at symprec. */
    return standardize(c, 0, symprec, angle_tolerance, out, err);
}
