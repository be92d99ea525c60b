/* FIRE (Bitzek et al., PRL 97 (2006) 170201) on positions and cell together.
 *
 * The optimizer follows ase.optimize.FIRE step for step (same defaults, same velocity mixing,
 * the same cap of maxstep on the norm of the whole step), so that a relaxation here and one in
 * ASE with the same potential and filter land on the same energy. The cell enters through a
 * filter, as in ASE (ase/filters.py, ase/constraints.py):
 *   - atoms are moved as z = x F^-T, their positions in the undeformed cell L0, with
 *     forces f_z = f_x F;
 *   - the cell is L = L0 F^T with F = exp(U), and the degrees of freedom are c U;
 *   - FrechetCellFilter: c = natoms and force -dE/d(cU) = L(U^T, W F^-T) / c, where
 *     W = -V stress is the virial and L(A, E) the Frechet derivative of exp, which makes the
 *     cell force the exact gradient (one 6x6 exponential per step, by the adjoint identity
 *     sum_ij L(U, E_mn)_ij G_ij = L(U^T, G)_mn);
 *   - ExpCellFilter (ASE 3.22): c = 1 and force W, or L(U, W exp(-U)) when the two are far
 *     from parallel.
 * Guards stop the run (never crash, never loop): non-finite energy or forces, the volume
 * growing or shrinking past fixed ratios, the neighbour list outgrowing its bound, and the
 * step limit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relax/relax_internal.h"

void rlx_options_default(rlx_options *o)
{
    memset(o, 0, sizeof *o);
    o->fmax_eV_A = 0.05;
    o->max_stress_eV_A3 = 0.1 / RLX_EV_A3_TO_GPA; /* 0.1 GPa */
    o->max_steps = 1000;
    o->cell_filter = RLX_CELL_FRECHET;
    o->dt = 0.1, o->dtmax = 1.0, o->nmin = 5, o->finc = 1.1, o->fdec = 0.5;
    o->astart = 0.1, o->fa = 0.99, o->maxstep_A = 0.2;
    o->max_volume_ratio = 8.0, o->min_volume_ratio = 0.125, o->min_volume_per_atom_A3 = 1.0;
    o->skin_A = 1.0;
}

const char *rlx_stop_name(rlx_stop s)
{
    static const char *names[] = {"converged",     "max_steps",        "nan",
                                  "cell_exploded", "volume_collapsed", "too_many_pairs",
                                  "invalid_input"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "unknown";
}

/* ------------------------------------------------------------ the state */

typedef struct {
    int natoms, ndof, has_cell;
    rlx_cell_filter kind;
    double factor; /* scale of the cell degrees of freedom */
    double L0[3][3], L0inv[3][3];
    double U[3][3], F[3][3];   /* log deformation and deformation gradient */
    double L[3][3], volume_A3; /* current cell */
    double energy_eV, stress[3][3];
} fire_state;

static int ensure_arrays(rlx_workspace *ws, int natoms, xtal_err *err)
{
    long ndof = 3L * (natoms + 3);
    if (ndof <= ws->capdof) return XTAL_OK;
    double **arrays[] = {&ws->pos, &ws->vel, &ws->force, &ws->frac, &ws->fatoms};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        double *p = realloc(*arrays[i], sizeof(double) * ndof);
        if (!p) return xtal_err_set(err, XTAL_ENOMEM, "out of memory for %d atoms", natoms);
        *arrays[i] = p;
    }
    ws->capdof = ndof;
    return XTAL_OK;
}

/* Cell and fractional coordinates from the degrees of freedom in ws->pos. */
static void current_structure(fire_state *s, rlx_workspace *ws)
{
    const double *pos = ws->pos;
    if (s->has_cell) {
        const double *u = pos + 3 * s->natoms;
        double U[9], F[9], Ft[3][3];
        for (int e = 0; e < 9; e++) U[e] = u[e] / s->factor;
        rlx_expm(3, U, F);
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) s->U[a][b] = U[3 * a + b], s->F[a][b] = F[3 * a + b];
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) Ft[a][b] = F[3 * b + a];
        rlx_mat3_mul(s->L0, Ft, s->L);
    } else {
        memcpy(s->L, s->L0, sizeof s->L);
    }
    /* frac = z L0^-1 (with a cell filter z F^T (L0 F^T)^-1 = z L0^-1; fixed cell: x L0^-1) */
    for (int i = 0; i < s->natoms; i++)
        for (int k = 0; k < 3; k++)
            ws->frac[3 * i + k] = pos[3 * i] * s->L0inv[0][k] + pos[3 * i + 1] * s->L0inv[1][k] +
                                  pos[3 * i + 2] * s->L0inv[2][k];
    s->volume_A3 = fabs(rlx_mat3_det(s->L));
}

/* ExpCellFilter's cell force (ASE 3.22 ase/constraints.py): the virial itself unless the exact
 * gradient L(U, W exp(-U)) (off-diagonals symmetrized) points elsewhere (cosine <= 0.8). */
static void exp_filter_force(const double U[3][3], const double W[3][3], double out[3][3])
{
    double mU[3][3], emU[3][3], WemU[3][3], exact[3][3];
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) mU[a][b] = -U[a][b];
    rlx_expm(3, &mU[0][0], &emU[0][0]);
    rlx_mat3_mul(W, emU, WemU);
    rlx_expm_frechet3(U, WemU, exact);
    for (int a = 0; a < 3; a++)
        for (int b = a + 1; b < 3; b++)
            exact[a][b] = exact[b][a] = 0.5 * (exact[a][b] + exact[b][a]);
    int all_close = 1;
    double dot = 0, ne = 0, nw = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            if (!(fabs(exact[a][b] - W[a][b]) <= 1e-8 + 1e-5 * fabs(W[a][b]))) all_close = 0;
            dot += exact[a][b] * W[a][b], ne += exact[a][b] * exact[a][b], nw += W[a][b] * W[a][b];
        }
    int naive = all_close || dot / sqrt(ne * nw) > 0.8;
    memcpy(out, naive ? W : exact, sizeof exact);
}

/* Generalized forces on every degree of freedom from the atomic forces and the stress. */
static void filter_forces(fire_state *s, rlx_workspace *ws)
{
    int n = s->natoms;
    if (!s->has_cell) {
        memcpy(ws->force, ws->fatoms, sizeof(double) * 3 * n);
        return;
    }
    for (int i = 0; i < n; i++) /* f_z = f_x F */
        for (int k = 0; k < 3; k++)
            ws->force[3 * i + k] = ws->fatoms[3 * i] * s->F[0][k] +
                                   ws->fatoms[3 * i + 1] * s->F[1][k] +
                                   ws->fatoms[3 * i + 2] * s->F[2][k];
    double W[3][3], fcell[3][3];
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) W[a][b] = -s->volume_A3 * s->stress[a][b];
    if (s->kind == RLX_CELL_EXP) {
        exp_filter_force(s->U, W, fcell);
    } else {
        double Finv[3][3], FinvT[3][3], G[3][3], Ut[3][3];
        rlx_mat3_inv(s->F, Finv);
        rlx_mat3_transpose(Finv, FinvT);
        rlx_mat3_mul(W, FinvT, G); /* UnitCellFilter's gradient W F^-T */
        rlx_mat3_transpose(s->U, Ut);
        rlx_expm_frechet3(Ut, G, fcell);
    }
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) ws->force[3 * n + 3 * a + b] = fcell[a][b] / s->factor;
}

static double max_row_norm(const double *v, int rows)
{
    double best = 0;
    for (int i = 0; i < rows; i++) {
        double r2 = v[3 * i] * v[3 * i] + v[3 * i + 1] * v[3 * i + 1] + v[3 * i + 2] * v[3 * i + 2];
        if (r2 > best || isnan(r2)) best = r2;
    }
    return sqrt(best);
}

static double max_abs3(const double A[3][3])
{
    double m = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            if (fabs(A[a][b]) > m || isnan(A[a][b])) m = fabs(A[a][b]);
    return m;
}

/* ASE's test: every row of the generalized forces below fmax; plus our stress threshold. */
static int converged(const fire_state *s, const rlx_workspace *ws, const rlx_options *o)
{
    int rows = s->natoms + (s->has_cell ? 3 : 0);
    double fmax2 = 0;
    for (int i = 0; i < rows; i++) {
        const double *f = ws->force + 3 * i;
        double r2 = f[0] * f[0] + f[1] * f[1] + f[2] * f[2];
        if (r2 > fmax2) fmax2 = r2;
    }
    if (!(fmax2 < o->fmax_eV_A * o->fmax_eV_A)) return 0;
    if (s->has_cell && o->max_stress_eV_A3 > 0 && !(max_abs3(s->stress) < o->max_stress_eV_A3))
        return 0;
    return 1;
}

/* ------------------------------------------------------------- FIRE step */

typedef struct {
    double dt, a;
    int nsteps, started;
} fire_dyn;

static double dot(const double *x, const double *y, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i] * y[i];
    return s;
}

/* One step of ase.optimize.FIRE.step, in the same order of operations. */
static void fire_step(fire_dyn *d, const rlx_options *o, double *pos, double *v, const double *f,
                      int n)
{
    if (!d->started) {
        memset(v, 0, sizeof(double) * n);
        d->started = 1;
    } else {
        double vf = dot(f, v, n);
        if (vf > 0.0) {
            double scale = d->a * sqrt(dot(v, v, n)) / sqrt(dot(f, f, n));
            for (int i = 0; i < n; i++) v[i] = (1.0 - d->a) * v[i] + scale * f[i];
            if (d->nsteps > o->nmin) {
                d->dt = fmin(d->dt * o->finc, o->dtmax);
                d->a *= o->fa;
            }
            d->nsteps++;
        } else {
            memset(v, 0, sizeof(double) * n);
            d->a = o->astart;
            d->dt *= o->fdec;
            d->nsteps = 0;
        }
    }
    for (int i = 0; i < n; i++) v[i] += d->dt * f[i];
    double norm = d->dt * sqrt(dot(v, v, n));
    double cap = norm > o->maxstep_A ? o->maxstep_A / norm : 1.0;
    for (int i = 0; i < n; i++) pos[i] += cap * d->dt * v[i];
}

/* ------------------------------------------------------------ the driver */

static void set_stop(rlx_outcome *out, rlx_stop stop, const char *prefix, const char *detail)
{
    out->stop = stop;
    out->converged = stop == RLX_STOP_CONVERGED;
    size_t n = 0, cap = sizeof out->message - 1; /* truncating copy of prefix + detail */
    for (const char *p = prefix; *p && n < cap; p++) out->message[n++] = *p;
    for (const char *p = detail ? detail : ""; *p && n < cap; p++) out->message[n++] = *p;
    out->message[n] = 0;
}

/* Input check; fills the outcome and returns 0 when the structure cannot be relaxed. */
static int usable_input(const xtal_crystal *c, const rlx_options *o, rlx_outcome *out)
{
    char msg[128];
    xtal_err e;
    if (c->natoms < 1 || c->natoms > XTAL_MAX_ATOMS) {
        snprintf(msg, sizeof msg, "%d atoms", c->natoms);
        set_stop(out, RLX_STOP_INVALID_INPUT, "invalid input: ", msg);
        return 0;
    }
    if (xtal_crystal_validate(c, &e) != XTAL_OK) {
        set_stop(out, RLX_STOP_INVALID_INPUT, "invalid input: ", e.msg);
        return 0;
    }
    double v = fabs(rlx_mat3_det(c->lattice));
    if (!(v / c->natoms >= o->min_volume_per_atom_A3)) {
        snprintf(msg, sizeof msg, "flat or collapsed cell (%.3g A^3 per atom)", v / c->natoms);
        set_stop(out, RLX_STOP_INVALID_INPUT, "invalid input: ", msg);
        return 0;
    }
    return 1;
}

static int init_state(fire_state *s, const rlx_options *o, const xtal_crystal *c, rlx_workspace *ws)
{
    memset(s, 0, sizeof *s);
    s->natoms = c->natoms;
    s->kind = o->cell_filter;
    s->has_cell = o->cell_filter != RLX_CELL_FIXED;
    s->factor = o->cell_filter == RLX_CELL_FRECHET ? (double)c->natoms : 1.0;
    s->ndof = 3 * (c->natoms + (s->has_cell ? 3 : 0));
    memcpy(s->L0, c->lattice, sizeof s->L0);
    if (rlx_mat3_inv(s->L0, s->L0inv)) return -1;
    for (int i = 0; i < c->natoms; i++) /* z = frac L0 (Cartesian in the start cell) */
        xtal_frac_to_cart(s->L0, c->frac + 3 * i, ws->pos + 3 * i);
    memset(ws->pos + 3 * c->natoms, 0, sizeof(double) * 9);
    memset(ws->vel, 0, sizeof(double) * s->ndof);
    return 0;
}

/* Evaluates the current state. Returns 0, or the stop reason (> 0) and fills the message. */
static int evaluate_state(fire_state *s, rlx_workspace *ws, const rlx_options *o, rlx_outcome *out,
                          xtal_err *err)
{
    current_structure(s, ws);
    double ratio = s->volume_A3 / out->volume_initial_A3;
    char msg[96];
    if (!isfinite(ratio)) {
        set_stop(out, RLX_STOP_NAN, "the cell became non-finite", NULL);
        return 1;
    }
    if (ratio > o->max_volume_ratio) {
        snprintf(msg, sizeof msg, "%.3g times its start", ratio);
        set_stop(out, RLX_STOP_CELL_EXPLODED, "cell exploded: volume ", msg);
        return 1;
    }
    if (ratio < o->min_volume_ratio || s->volume_A3 / s->natoms < o->min_volume_per_atom_A3) {
        snprintf(msg, sizeof msg, "%.3g times its start", ratio);
        set_stop(out, RLX_STOP_VOLUME_COLLAPSED, "volume collapsed: volume ", msg);
        return 1;
    }
    int rc = rlx_ws_compute(ws, s->natoms, ws->frac, s->L, o->skin_A, &s->energy_eV, ws->fatoms,
                            s->stress, err);
    if (rc == XTAL_ENOMEM) return -1;
    if (rc == XTAL_ELIMIT) {
        set_stop(out, RLX_STOP_TOO_MANY_PAIRS, err->msg, NULL);
        return 1;
    }
    if (rc) {
        set_stop(out, RLX_STOP_NAN, err->msg, NULL);
        return 1;
    }
    filter_forces(s, ws);
    int finite = isfinite(s->energy_eV) && isfinite(max_abs3(s->stress));
    for (int i = 0; finite && i < s->ndof; i++) finite = isfinite(ws->force[i]);
    if (!finite) {
        set_stop(out, RLX_STOP_NAN, "energy or forces not finite",
                 isnan(s->energy_eV) ? " (coincident atoms?)" : "");
        return 1;
    }
    return 0;
}

static void record_final(rlx_outcome *out, const fire_state *s, const rlx_workspace *ws)
{
    out->energy_eV = s->energy_eV;
    out->energy_per_atom_eV = s->energy_eV / s->natoms;
    out->max_force_eV_A = max_row_norm(ws->fatoms, s->natoms);
    memcpy(out->stress_eV_A3, s->stress, sizeof out->stress_eV_A3);
    out->max_stress_eV_A3 = max_abs3(s->stress);
    out->volume_A3 = s->volume_A3;
}

static void write_back(xtal_crystal *c, const fire_state *s, const rlx_workspace *ws)
{
    memcpy(c->lattice, s->L, sizeof c->lattice);
    memcpy(c->frac, ws->frac, sizeof(double) * 3 * c->natoms);
    xtal_wrap(c);
}

int rlx_relax(const rlx_potential *pot, const rlx_options *opt, xtal_crystal *c, rlx_outcome *out,
              rlx_workspace *ws, xtal_err *err)
{
    rlx_options defaults;
    xtal_err local_err;
    if (!opt) rlx_options_default(&defaults), opt = &defaults;
    if (!err) err = &local_err;
    memset(out, 0, sizeof *out);
    out->energy_initial_eV = out->energy_eV = NAN;
    out->energy_per_atom_initial_eV = out->energy_per_atom_eV = NAN;
    out->max_force_eV_A = out->max_stress_eV_A3 = NAN;
    out->volume_initial_A3 = out->volume_A3 = fabs(rlx_mat3_det(c->lattice));
    if (!usable_input(c, opt, out)) return XTAL_OK;
    rlx_workspace *own = NULL;
    if (!ws && !(ws = own = rlx_workspace_new()))
        return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
    int rc = rlx_ws_prepare(ws, pot, c->natoms, c->Z, err);
    if (!rc) rc = ensure_arrays(ws, c->natoms, err);
    if (rc) {
        if (rc != XTAL_ENOMEM) {
            set_stop(out, RLX_STOP_INVALID_INPUT, "invalid input: ", err->msg);
            rc = XTAL_OK;
        }
        rlx_workspace_free(own);
        return rc;
    }
    fire_state s;
    rlx_outcome first; /* the input's figures, reported again after a guard stop */
    fire_dyn dyn = {opt->dt, opt->astart, 0, 0};
    if (init_state(&s, opt, c, ws)) {
        set_stop(out, RLX_STOP_INVALID_INPUT, "invalid input: ", "singular cell");
        rlx_workspace_free(own);
        return XTAL_OK;
    }
    for (int step = 0;; step++) {
        int stop = evaluate_state(&s, ws, opt, out, err);
        if (stop < 0) {
            rc = XTAL_ENOMEM;
            break;
        }
        if (stop > 0) {
            /* guard stop: c was never written, so it still holds the input; report the
             * input's figures (NaN when even the input could not be evaluated) */
            if (step > 0) {
                out->energy_eV = first.energy_eV;
                out->energy_per_atom_eV = first.energy_per_atom_eV;
                out->max_force_eV_A = first.max_force_eV_A;
                memcpy(out->stress_eV_A3, first.stress_eV_A3, sizeof first.stress_eV_A3);
                out->max_stress_eV_A3 = first.max_stress_eV_A3;
            }
            out->volume_A3 = out->volume_initial_A3;
            break;
        }
        out->steps = step;
        record_final(out, &s, ws);
        if (step == 0) {
            out->energy_initial_eV = s.energy_eV;
            out->energy_per_atom_initial_eV = s.energy_eV / s.natoms;
            first = *out;
        }
        if (converged(&s, ws, opt)) {
            set_stop(out, RLX_STOP_CONVERGED, "converged", NULL);
            write_back(c, &s, ws);
            break;
        }
        if (step >= opt->max_steps) {
            char msg[32];
            snprintf(msg, sizeof msg, "%d steps", step);
            set_stop(out, RLX_STOP_MAX_STEPS, "not converged, step limit reached: ", msg);
            write_back(c, &s, ws);
            break;
        }
        fire_step(&dyn, opt, ws->pos, ws->vel, ws->force, s.ndof);
    }
    rlx_workspace_free(own);
    return rc;
}
