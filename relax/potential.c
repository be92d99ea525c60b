/* The pair potentials: models, parameters, and energy/forces/stress over a neighbour list.
 *
 * Every model is a sum of pair terms e_ab(r) over all pairs within their cutoff, periodic
 * images included. Forward and backward of one pair are rlx_coef_eval; the loop over pairs
 * (evaluate_pairs) accumulates energy, forces F_i = -dE/dx_i and the virial sum
 * W = sum g d (x) d, where g = e'(r)/r and d = x_j + n L - x_i; stress = W / V, which is
 * (1/V) dE/d(strain) (ASE's convention). tests/unit/test_relax.c checks both derivatives
 * against finite differences. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relax/relax_internal.h"

#define NZ (XTAL_NUM_ELEMENTS + 1)

typedef struct {
    double rmin_A, depth_eV, alpha_per_A, rc_over_rmin;
    int source; /* 0 = none, 1 = fitted table, 2 = user override */
} pair_slot;

struct rlx_potential {
    rlx_model model;
    double sigma_A, epsilon_eV, rc_A; /* plain LJ */
    double rc_factor, rc_max_A, r_scale, depth_scale, alpha_r0;
    rlx_shift shift;
    pair_slot pairs[NZ * NZ]; /* symmetric, [za * NZ + zb] */
};

static const char *const model_names[] = {"mp20", "uff-lj", "lj"};

/* ------------------------------------------------------------ pair terms */

double rlx_coef_eval(const rlx_coef *k, double r2, double *g)
{
    if (k->form == RLX_FORM_LJ) {
        double s2 = k->rmin2_A2 / r2, s6 = s2 * s2 * s2;
        double e = k->depth_eV * (s6 * s6 - 2.0 * s6) - k->e_rc_eV;
        /* de/dr = D (-12 s12 + 12 s6) / r, so g = de/dr / r = 12 D (s6 - s12) / r^2 */
        *g = 12.0 * k->depth_eV * (s6 - s6 * s6) / r2;
        if (k->de_rc_eV_A != 0.0) {
            double r = sqrt(r2);
            e -= (r - k->rc_A) * k->de_rc_eV_A;
            *g -= k->de_rc_eV_A / r;
        }
        return e;
    }
    double r = sqrt(r2);
    double x = exp(-k->alpha_per_A * (r - k->rmin_A));
    double e = k->depth_eV * (x * x - 2.0 * x) - k->e_rc_eV - (r - k->rc_A) * k->de_rc_eV_A;
    /* de/dr = 2 alpha D (x - x^2) */
    double de = 2.0 * k->alpha_per_A * k->depth_eV * (x - x * x) - k->de_rc_eV_A;
    *g = de / r;
    return e;
}

void rlx_coef_init(rlx_coef *k, const rlx_pair *p, rlx_shift shift)
{
    memset(k, 0, sizeof *k);
    k->form = p->form;
    k->rmin_A = p->rmin_A;
    k->rmin2_A2 = p->rmin_A * p->rmin_A;
    k->depth_eV = p->depth_eV;
    k->alpha_per_A = p->alpha_per_A;
    k->rc_A = p->rc_A;
    k->rc2_A2 = p->rc_A * p->rc_A;
    double g;
    k->e_rc_eV = rlx_coef_eval(k, k->rc2_A2, &g); /* shifts still zero here */
    if (shift == RLX_SHIFT_FORCE) k->de_rc_eV_A = g * p->rc_A;
}

/* ------------------------------------------------------------- models */

static void fill_fitted_table(rlx_potential *pot)
{
    for (int i = 0; i < rlx_mp20_npairs; i++) {
        const rlx_pair_entry *e = &rlx_mp20_pairs[i];
        pair_slot s = {e->rmin_A, e->depth_eV, e->alpha_per_A, e->rc_over_rmin, 1};
        pot->pairs[e->za * NZ + e->zb] = s;
        pot->pairs[e->zb * NZ + e->za] = s;
    }
}

int rlx_potential_new(const char *name, rlx_potential **out, xtal_err *err)
{
    *out = NULL;
    int model = -1;
    if (!name || !*name) name = "mp20";
    for (int m = 0; m < 3; m++)
        if (!strcmp(name, model_names[m])) model = m;
    if (model < 0)
        return xtal_err_set(err, XTAL_EINVALID,
                            "unknown potential '%s' (expected mp20, uff-lj or lj)", name);
    rlx_potential *pot = calloc(1, sizeof *pot);
    if (!pot) return xtal_err_set(err, XTAL_ENOMEM, "out of memory for the potential");
    pot->model = (rlx_model)model;
    pot->sigma_A = 1.0, pot->epsilon_eV = 1.0, pot->rc_A = 3.0; /* ASE's LennardJones */
    pot->r_scale = 1.0, pot->depth_scale = 1.0;
    pot->rc_max_A = 12.0;
    if (pot->model == RLX_MODEL_LJ) {
        pot->shift = RLX_SHIFT_ENERGY;
    } else if (pot->model == RLX_MODEL_UFF_LJ) {
        pot->rc_factor = 2.5;
        pot->shift = RLX_SHIFT_FORCE;
    } else {
        pot->rc_factor = 1.3;
        pot->alpha_r0 = rlx_mp20_default_alpha_r0;
        pot->shift = RLX_SHIFT_FORCE;
        fill_fitted_table(pot);
    }
    *out = pot;
    return XTAL_OK;
}

void rlx_potential_free(rlx_potential *pot)
{
    free(pot);
}

const char *rlx_potential_name(const rlx_potential *pot)
{
    return model_names[pot->model];
}

rlx_shift rlx_potential_shift(const rlx_potential *pot)
{
    return pot->shift;
}

int rlx_potential_set(rlx_potential *pot, const char *key, double v, xtal_err *err)
{
    if (!isfinite(v))
        return xtal_err_set(err, XTAL_EINVALID, "potential parameter %s: %g is not finite", key, v);
    struct {
        const char *key;
        double *dst;
        double lo;
    } keys[] = {{"sigma", &pot->sigma_A, 0},
                {"epsilon", &pot->epsilon_eV, 0},
                {"rc", &pot->rc_A, 0},
                {"rc_factor", &pot->rc_factor, 1},
                {"rc_max", &pot->rc_max_A, 0},
                {"r_scale", &pot->r_scale, 0},
                {"depth_scale", &pot->depth_scale, 0},
                {"alpha_r0", &pot->alpha_r0, 0}};
    if (!strcmp(key, "shift")) {
        if (v != 0 && v != 1)
            return xtal_err_set(err, XTAL_EINVALID,
                                "potential parameter shift: expected 0 (energy) or 1 (force)");
        pot->shift = v == 1 ? RLX_SHIFT_FORCE : RLX_SHIFT_ENERGY;
        return XTAL_OK;
    }
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strcmp(key, keys[i].key)) continue;
        if (!(v > keys[i].lo))
            return xtal_err_set(err, XTAL_EINVALID, "potential parameter %s: %g must be > %g", key,
                                v, keys[i].lo);
        *keys[i].dst = v;
        return XTAL_OK;
    }
    return xtal_err_set(err, XTAL_EINVALID,
                        "unknown potential parameter '%s' (expected sigma, epsilon, rc, "
                        "rc_factor, rc_max, r_scale, depth_scale, alpha_r0 or shift)",
                        key);
}

/* "name:key=value,key=value" */
int rlx_potential_parse(const char *spec, rlx_potential **out, xtal_err *err)
{
    char buf[512];
    *out = NULL;
    if (!spec) spec = "";
    if (strlen(spec) >= sizeof buf)
        return xtal_err_set(err, XTAL_EINVALID, "potential spec is too long");
    strcpy(buf, spec);
    char *colon = strchr(buf, ':');
    if (colon) *colon = 0;
    int rc = rlx_potential_new(buf, out, err);
    if (rc || !colon) return rc;
    for (char *tok = strtok(colon + 1, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        char *end = NULL;
        if (!eq) {
            rc = xtal_err_set(err, XTAL_EINVALID, "potential spec: '%s' is not key=value", tok);
            break;
        }
        *eq = 0;
        errno = 0;
        double v = strtod(eq + 1, &end);
        if (end == eq + 1 || *end || errno) {
            rc = xtal_err_set(err, XTAL_EINVALID, "potential spec: %s=%s is not a number", tok,
                              eq + 1);
            break;
        }
        if ((rc = rlx_potential_set(*out, tok, v, err))) break;
    }
    if (rc) {
        rlx_potential_free(*out);
        *out = NULL;
    }
    return rc;
}

int rlx_potential_load_pairs(rlx_potential *pot, const char *path, xtal_err *err)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return xtal_err_set(err, XTAL_EIO, "%s: cannot open (%s)", path, strerror(errno));
    char line[512];
    int lineno = 0, rc = XTAL_OK;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char a[16], b[16];
        double rmin, depth, alpha = NAN, rcf = NAN;
        int n = sscanf(line, "%15s %15s %lf %lf %lf %lf", a, b, &rmin, &depth, &alpha, &rcf);
        if (n <= 0) continue;
        int za = xtal_element_from_symbol(a), zb = xtal_element_from_symbol(b);
        if (n < 4 || !za || !zb || !(rmin > 0) || !(depth > 0) || (n >= 5 && !(alpha > 0)) ||
            (n == 6 && !(rcf >= 1))) {
            rc = xtal_err_set(err, XTAL_EPARSE,
                              "%s:%d: expected 'A B r_min_A depth_eV [alpha_per_A "
                              "[rc_over_rmin]]' with known elements and positive numbers",
                              path, lineno);
            break;
        }
        pair_slot s = {rmin, depth, alpha, rcf, 2};
        pot->pairs[za * NZ + zb] = s;
        pot->pairs[zb * NZ + za] = s;
    }
    fclose(fp);
    return rc;
}

/* Radius for the fitted model's fallback: the fitted element radius, else the covalent one. */
static double fallback_radius(int z)
{
    double r = rlx_mp20_radius_A[z];
    if (isfinite(r)) return r;
    const xtal_element *e = xtal_element_by_Z(z);
    return e && isfinite(e->covalent_radius) ? e->covalent_radius : 1.5;
}

int rlx_pair_params(const rlx_potential *pot, int za, int zb, rlx_pair *p)
{
    const xtal_element *ea = xtal_element_by_Z(za), *eb = xtal_element_by_Z(zb);
    memset(p, 0, sizeof *p);
    if (!ea || !eb) return XTAL_EINVALID;
    const pair_slot *s = &pot->pairs[za * NZ + zb];
    if (pot->model == RLX_MODEL_LJ) {
        p->form = RLX_FORM_LJ;
        p->rmin_A = pow(2.0, 1.0 / 6.0) * pot->sigma_A;
        p->depth_eV = pot->epsilon_eV;
        p->rc_A = pot->rc_A;
        return XTAL_OK;
    }
    if (pot->model == RLX_MODEL_UFF_LJ) {
        p->form = RLX_FORM_LJ;
        p->rmin_A = sqrt(ea->uff_x1 * eb->uff_x1);
        p->depth_eV = sqrt(ea->uff_D1 * eb->uff_D1);
    } else {
        p->form = RLX_FORM_MORSE;
        p->rmin_A = fallback_radius(za) + fallback_radius(zb);
        p->depth_eV = rlx_mp20_default_depth_eV;
        p->alpha_per_A = NAN;
    }
    if (s->source) {
        p->rmin_A = s->rmin_A;
        p->depth_eV = s->depth_eV;
        p->alpha_per_A = s->alpha_per_A;
        p->source = s->source;
    }
    double rc_over_rmin = s->source ? s->rc_over_rmin : NAN;
    p->rmin_A *= pot->r_scale;
    p->depth_eV *= pot->depth_scale;
    if (p->form == RLX_FORM_MORSE && !isfinite(p->alpha_per_A))
        p->alpha_per_A = pot->alpha_r0 / p->rmin_A;
    p->rc_A = isfinite(rc_over_rmin) ? rc_over_rmin * p->rmin_A
                                     : fmin(pot->rc_factor * p->rmin_A, pot->rc_max_A);
    return XTAL_OK;
}

/* ------------------------------------------------------------ workspace */

rlx_workspace *rlx_workspace_new(void)
{
    return calloc(1, sizeof(rlx_workspace));
}

void rlx_workspace_free(rlx_workspace *ws)
{
    if (!ws) return;
    free(ws->species);
    free(ws->coef);
    rlx_nlist_free(&ws->nl);
    free(ws->pos);
    free(ws->vel);
    free(ws->force);
    free(ws->frac);
    free(ws->fatoms);
    free(ws);
}

int rlx_ws_prepare(rlx_workspace *ws, const rlx_potential *pot, int natoms, const int *Z,
                   xtal_err *err)
{
    if (natoms > ws->capatoms) {
        int *s = realloc(ws->species, sizeof(int) * natoms);
        if (!s) return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
        ws->species = s;
        ws->capatoms = natoms;
    }
    int index[NZ];
    for (int z = 0; z < NZ; z++) index[z] = -1;
    ws->nspecies = 0;
    for (int i = 0; i < natoms; i++) {
        int z = Z[i];
        if (!xtal_element_by_Z(z))
            return xtal_err_set(err, XTAL_EINVALID, "atom %d: unknown element Z = %d", i + 1, z);
        if (index[z] < 0) index[z] = ws->nspecies, ws->zlist[ws->nspecies++] = z;
        ws->species[i] = index[z];
    }
    int ns = ws->nspecies;
    if (ns * ns > ws->capcoef) {
        rlx_coef *k = realloc(ws->coef, sizeof(rlx_coef) * ns * ns);
        if (!k) return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
        ws->coef = k;
        ws->capcoef = ns * ns;
    }
    ws->cutoff_A = 0;
    for (int a = 0; a < ns; a++)
        for (int b = 0; b < ns; b++) {
            rlx_pair p;
            rlx_pair_params(pot, ws->zlist[a], ws->zlist[b], &p);
            rlx_coef_init(&ws->coef[a * ns + b], &p, pot->shift);
            if (p.rc_A > ws->cutoff_A) ws->cutoff_A = p.rc_A;
        }
    ws->natoms = natoms;
    ws->nl.valid = 0; /* species changed: the list belongs to another structure */
    return XTAL_OK;
}

/* Energy, forces (may be NULL) and virial sum over the listed pairs. */
static double evaluate_pairs(const rlx_workspace *ws, const double *frac, const double L[3][3],
                             double *forces, double W[3][3])
{
    const rlx_nlist *nl = &ws->nl;
    const int ns = ws->nspecies;
    double energy = 0;
    double w[6] = {0}; /* xx yy zz yz xz xy */
    for (long p = 0; p < nl->npairs; p++) {
        int i = nl->ij[2 * p], j = nl->ij[2 * p + 1];
        const int *n = nl->img + 3 * p;
        const rlx_coef *k = &ws->coef[ws->species[i] * ns + ws->species[j]];
        double s[3], d[3];
        for (int c = 0; c < 3; c++) s[c] = frac[3 * j + c] - frac[3 * i + c] + n[c];
        for (int c = 0; c < 3; c++) d[c] = s[0] * L[0][c] + s[1] * L[1][c] + s[2] * L[2][c];
        double r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
        if (r2 >= k->rc2_A2) continue;
        double g;
        energy += rlx_coef_eval(k, r2, &g);
        if (forces) {
            /* e depends on d = x_j - x_i: F_i = +g d, F_j = -g d */
            for (int c = 0; c < 3; c++) {
                forces[3 * i + c] += g * d[c];
                forces[3 * j + c] -= g * d[c];
            }
        }
        w[0] += g * d[0] * d[0], w[1] += g * d[1] * d[1], w[2] += g * d[2] * d[2];
        w[3] += g * d[1] * d[2], w[4] += g * d[0] * d[2], w[5] += g * d[0] * d[1];
    }
    double full[3][3] = {{w[0], w[5], w[4]}, {w[5], w[1], w[3]}, {w[4], w[3], w[2]}};
    memcpy(W, full, sizeof full);
    return energy;
}

int rlx_ws_compute(rlx_workspace *ws, int natoms, const double *frac, const double L[3][3],
                   double skin_A, double *energy_eV, double *forces_eV_A, double stress_eV_A3[3][3],
                   xtal_err *err)
{
    if (rlx_nlist_stale(&ws->nl, natoms, frac, L, ws->cutoff_A)) {
        int rc = rlx_nlist_build(&ws->nl, natoms, frac, L, ws->cutoff_A, skin_A, err);
        if (rc) return rc;
    }
    if (forces_eV_A) memset(forces_eV_A, 0, sizeof(double) * 3 * natoms);
    double W[3][3];
    *energy_eV = evaluate_pairs(ws, frac, L, forces_eV_A, W);
    if (stress_eV_A3) {
        double V = fabs(rlx_mat3_det(L));
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) stress_eV_A3[a][b] = W[a][b] / V;
    }
    return XTAL_OK;
}

/* Checks what an evaluation needs: finite coordinates, a non-singular finite cell. */
static int check_input(const xtal_crystal *c, xtal_err *err)
{
    if (c->natoms < 1 || c->natoms > XTAL_MAX_ATOMS)
        return xtal_err_set(err, XTAL_EINVALID, "%d atoms (expected 1..%d)", c->natoms,
                            XTAL_MAX_ATOMS);
    for (int i = 0; i < 3 * c->natoms; i++)
        if (!isfinite(c->frac[i]))
            return xtal_err_set(err, XTAL_EINVALID, "atom %d has a non-finite coordinate",
                                i / 3 + 1);
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            if (!isfinite(c->lattice[a][b]))
                return xtal_err_set(err, XTAL_EINVALID, "the cell is not finite");
    double V = fabs(rlx_mat3_det(c->lattice));
    if (!(V > 1e-6)) return xtal_err_set(err, XTAL_EINVALID, "flat cell (volume %.3g A^3)", V);
    return XTAL_OK;
}

int rlx_evaluate(const rlx_potential *pot, const xtal_crystal *c, double *energy_eV,
                 double *forces_eV_A, double stress_eV_A3[3][3], rlx_workspace *ws, xtal_err *err)
{
    int rc = check_input(c, err);
    if (rc) return rc;
    rlx_workspace *own = NULL;
    if (!ws && !(ws = own = rlx_workspace_new()))
        return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
    rc = rlx_ws_prepare(ws, pot, c->natoms, c->Z, err);
    if (!rc)
        rc = rlx_ws_compute(ws, c->natoms, c->frac, c->lattice, 0.0, energy_eV, forces_eV_A,
                            stress_eV_A3, err);
    rlx_workspace_free(own);
    if (!rc && !isfinite(*energy_eV))
        rc = xtal_err_set(err, XTAL_EINVALID,
                          "the energy is not finite (two atoms on top of each other?)");
    return rc;
}
