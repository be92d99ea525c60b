/* Distance filter: exact minimum-image distances and the two rules (benchmark, covalent).
 *
 * Same idea as crystal's xtal_min_image_distance (Niggli-reduce the cell, bound the images by
 * the reciprocal vector lengths), made cheaper per pair: the basis is reduced once per
 * structure, and along one axis the best image is solved in closed form (|u + n c|^2 is a
 * parabola in n), so only a 2-D window of images is enumerated. Exact for any cell shape.
 *
 * References: CDVAE/DiffCSP structural validity (DiffCSP scripts/eval_utils.py,
 * structure_validity: pymatgen distance_matrix with the diagonal masked, cutoff 0.5 A, volume
 * 0.1 A^3); covalent radii Cordero et al., Dalton Trans. (2008) 2832, via the element table.
 */
#include "filters/filters.h"

#include <math.h>
#include <string.h>

/* More images than this per pair means a degenerate (needle or flat) cell that fails the rules
 * anyway; we stop rather than hang and report the distance as NaN. */
#define MAX_IMAGES_PER_PAIR 4000000.0

typedef struct {
    double L[3][3];       /* reduced lattice, rows, Angstrom */
    double recip_norm[3]; /* |b*_k| of the reduced lattice, 1/Angstrom */
    double free_len2;     /* |L[free]|^2, Angstrom^2 */
    int free_axis;        /* the axis solved in closed form: the one with the widest window */
    int ax0, ax1;         /* the two enumerated axes */
    const double *frac;   /* [natoms*3] fractional coordinates in the reduced basis */
} image_cell;

static double dot3(const double *u, const double *v)
{
    return u[0] * v[0] + u[1] * v[1] + u[2] * v[2];
}

/* Prepares the image search on the Niggli-reduced copy red (crystal's xtal_niggli_reduce, the
 * same reduction xtal_min_image_distance uses). Returns -1 for a singular lattice. */
static int image_cell_init(image_cell *ic, const xtal_crystal *red)
{
    double recip[3][3];
    memcpy(ic->L, red->lattice, sizeof ic->L);
    if (xtal_lattice_reciprocal(ic->L, recip)) return -1;
    for (int k = 0; k < 3; k++) ic->recip_norm[k] = sqrt(dot3(recip[k], recip[k]));
    /* The widest window is along the axis with the largest |b*_k| (the shortest spacing). */
    int f = 0;
    for (int k = 1; k < 3; k++)
        if (ic->recip_norm[k] > ic->recip_norm[f]) f = k;
    ic->free_axis = f;
    ic->ax0 = (f + 1) % 3;
    ic->ax1 = (f + 2) % 3;
    ic->free_len2 = dot3(ic->L[f], ic->L[f]);
    ic->frac = red->frac;
    return isfinite(ic->recip_norm[0] + ic->recip_norm[1] + ic->recip_norm[2]) ? 0 : -1;
}

/* Shortest |u + n * L[free]|^2 over integer n (n != 0 when exclude_zero and u == 0). */
static double best_along_free_axis(const image_cell *ic, const double u[3], int u_is_zero)
{
    const double *c = ic->L[ic->free_axis];
    if (u_is_zero) return ic->free_len2; /* n = +-1 */
    double t = -dot3(u, c) / ic->free_len2;
    double best = INFINITY;
    for (double n = floor(t); n <= floor(t) + 1.0; n += 1.0) {
        double v[3] = {u[0] + n * c[0], u[1] + n * c[1], u[2] + n * c[2]};
        best = fmin(best, dot3(v, v));
    }
    return best;
}

/* Shortest |(df + n) . L| over integer vectors n (n != 0 when exclude_zero), Angstrom. df is a
 * fractional difference in the reduced basis. NaN when the image window is absurdly large. */
static double shortest_image(const image_cell *ic, const double df_in[3], int exclude_zero)
{
    double df[3], x[3];
    for (int k = 0; k < 3; k++) df[k] = df_in[k] - nearbyint(df_in[k]);
    double best;
    if (exclude_zero) {
        best = INFINITY;
        for (int k = 0; k < 3; k++) best = fmin(best, sqrt(dot3(ic->L[k], ic->L[k])));
    } else {
        xtal_frac_to_cart(ic->L, df, x);
        best = sqrt(dot3(x, x));
    }
    /* |(df + n)_k| <= |v| |b*_k| for any image v: the window that can beat best. */
    const int a0 = ic->ax0, a1 = ic->ax1;
    double r0 = best * ic->recip_norm[a0] + 1e-9, r1 = best * ic->recip_norm[a1] + 1e-9;
    double lo0 = ceil(-df[a0] - r0), hi0 = floor(-df[a0] + r0);
    double lo1 = ceil(-df[a1] - r1), hi1 = floor(-df[a1] + r1);
    if ((hi0 - lo0 + 1) * (hi1 - lo1 + 1) > MAX_IMAGES_PER_PAIR) return NAN;
    double best2 = best * best;
    for (double n0 = lo0; n0 <= hi0; n0 += 1.0)
        for (double n1 = lo1; n1 <= hi1; n1 += 1.0) {
            double f[3];
            f[a0] = df[a0] + n0;
            f[a1] = df[a1] + n1;
            f[ic->free_axis] = df[ic->free_axis];
            xtal_frac_to_cart(ic->L, f, x);
            int zero = exclude_zero && n0 == 0 && n1 == 0;
            best2 = fmin(best2, best_along_free_axis(ic, x, zero));
        }
    return sqrt(best2);
}

static double pair_distance(const image_cell *ic, int i, int j)
{
    double df[3];
    for (int k = 0; k < 3; k++) df[k] = ic->frac[3 * j + k] - ic->frac[3 * i + k];
    return shortest_image(ic, df, i == j);
}

/* The rule's bound for a pair of elements, Angstrom. */
static double pair_threshold(flt_distance_rule rule, double param, int Zi, int Zj)
{
    if (rule == FLT_RULE_BENCHMARK) return param;
    double ri = xtal_element_by_Z(Zi)->covalent_radius;
    double rj = xtal_element_by_Z(Zj)->covalent_radius;
    double t = param * (ri + rj);
    return isfinite(t) ? t : FLT_BENCHMARK_MIN_DISTANCE; /* no radius (Z >= 97) */
}

static int check_input(const xtal_crystal *c, xtal_err *err)
{
    if (c->natoms < 1) return xtal_err_set(err, XTAL_EINVALID, "%s: no atoms", c->id);
    for (int a = 0; a < c->natoms; a++) {
        if (!xtal_element_by_Z(c->Z[a]))
            return xtal_err_set(err, XTAL_EINVALID, "%s: atom %d has unknown atomic number %d",
                                c->id, a + 1, c->Z[a]);
        for (int k = 0; k < 3; k++)
            if (!isfinite(c->frac[3 * a + k]))
                return xtal_err_set(err, XTAL_EINVALID, "%s: atom %d has a non-finite coordinate",
                                    c->id, a + 1);
    }
    for (int i = 0; i < 9; i++)
        if (!isfinite(c->lattice[i / 3][i % 3]))
            return xtal_err_set(err, XTAL_EINVALID, "%s: lattice is not finite", c->id);
    return XTAL_OK;
}

/* Running state of a scan: the rule's worst ratio distance / threshold so far, and whether
 * some distance could not be determined (a degenerate cell). */
typedef struct {
    double worst_ratio;
    int undetermined;
} scan_state;

/* Keeps the pair with the smallest distance / threshold as the rule's worst. */
static void consider_pair(flt_distance_result *out, scan_state *st, int i, int j, double d,
                          double threshold)
{
    if (isnan(d)) {
        st->undetermined = 1;
        return;
    }
    double ratio = d / threshold;
    if (out->worst_i >= 0 && !(ratio < st->worst_ratio)) return;
    st->worst_ratio = ratio;
    out->worst_i = i;
    out->worst_j = j;
    out->worst_distance = d;
    out->threshold = threshold;
}

/* All distinct pairs: the overall minimum and the rule's worst pair. */
static void scan_pairs(const image_cell *ic, const xtal_crystal *c, double param,
                       flt_distance_result *out, scan_state *st)
{
    for (int i = 0; i < c->natoms; i++)
        for (int j = i + 1; j < c->natoms; j++) {
            double d = pair_distance(ic, i, j);
            if (d < out->min_distance) {
                out->min_distance = d;
                out->min_i = i;
                out->min_j = j;
            }
            double threshold = pair_threshold(out->rule, param, c->Z[i], c->Z[j]);
            consider_pair(out, st, i, j, d, threshold);
        }
}

/* Self-images: every site sees its images at the shortest lattice vector; under the covalent
 * rule the element with the largest threshold is the one at risk. */
static void scan_self_images(const image_cell *ic, const xtal_crystal *c, double param,
                             flt_distance_result *out, scan_state *st)
{
    double zero[3] = {0, 0, 0};
    out->min_self_distance = shortest_image(ic, zero, 1);
    if (out->rule != FLT_RULE_COVALENT) return;
    int site = 0;
    double thr = 0;
    for (int a = 0; a < c->natoms; a++) {
        double t = pair_threshold(out->rule, param, c->Z[a], c->Z[a]);
        if (t > thr) thr = t, site = a;
    }
    consider_pair(out, st, site, site, out->min_self_distance, thr);
}

static void distance_result_reset(flt_distance_result *out, flt_distance_rule rule)
{
    memset(out, 0, sizeof *out);
    out->rule = rule;
    out->min_distance = INFINITY;
    out->min_self_distance = NAN;
    out->worst_distance = NAN;
    out->threshold = NAN;
    out->min_i = out->min_j = out->worst_i = out->worst_j = -1;
}

int flt_distance_check(const xtal_crystal *c, flt_distance_rule rule, double param,
                       flt_distance_result *out, xtal_err *err)
{
    distance_result_reset(out, rule);
    int rc = check_input(c, err);
    if (rc) return rc;
    if (rule == FLT_RULE_BENCHMARK && param <= 0) param = FLT_BENCHMARK_MIN_DISTANCE;
    if (!(param >= 0 && isfinite(param)))
        return xtal_err_set(err, XTAL_EINVALID, "%s %g is not a number >= 0",
                            rule == FLT_RULE_COVALENT ? "covalent scale" : "minimum distance",
                            param);
    out->volume = xtal_volume(c);
    out->volume_ok = out->volume >= FLT_BENCHMARK_MIN_VOLUME; /* false for NaN too */
    if (!(out->volume > 0)) { /* singular cell: no distances, and a clear failure */
        out->min_distance = out->min_self_distance = NAN;
        return XTAL_OK;
    }
    xtal_crystal red;
    rc = xtal_crystal_copy(&red, c, err);
    if (rc) return rc;
    if (xtal_niggli_reduce(&red, 1e-5, NULL) != XTAL_OK) xtal_wrap(&red); /* search as given */
    image_cell ic;
    scan_state st = {INFINITY, 0};
    if (image_cell_init(&ic, &red) == 0) {
        scan_pairs(&ic, c, param, out, &st);
        scan_self_images(&ic, c, param, out, &st);
    } else {
        st.undetermined = 1;
    }
    xtal_crystal_free(&red);
    if (st.undetermined) out->min_distance = NAN; /* unknown, and a failure */
    out->distance_ok = st.worst_ratio >= 1.0 && !st.undetermined;
    out->ok = out->distance_ok && out->volume_ok;
    return XTAL_OK;
}
