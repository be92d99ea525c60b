/* The structure matcher: pymatgen's StructureMatcher (analysis/structure_matcher.py, 2022.11)
 * rewritten for one pair of reduced structures, fit() and get_rms_dist() semantics.
 *
 * For structure 1 (lattice L1) against structure 2 (lattice L2), after equal-volume scaling:
 *   - every lattice l = S . L1 (S integer, |det S| = 1) whose vector lengths are within ltol
 *     and angles within angle_tol of L2's (Lattice.find_all_mappings);
 *   - sites of 1 in l's basis are compared with sites of 2 in L2's basis on the average
 *     lattice (mean of the two sets of parameters), so left-handed l give mirror images;
 *   - a translation puts the first site of 2's least frequent element on each site of 1 of
 *     that element; a box test in fractional coordinates (half-width 2 stol (V/n)^(1/3) / d_k,
 *     never tighter than the real criterion) discards most of them cheaply;
 *   - then squared minimum-image distances (LLL basis, 27 images, as pbc_shortest_vectors),
 *     a linear assignment per element, the mean displacement removed, distances divided by
 *     (V / n)^(1/3): a match when the largest is below stol.
 */
#include "filters/match_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEG (M_PI / 180.0)
/* A lattice-point search box larger than this means a degenerate cell pair; we give up
 * (XTAL_ELIMIT) instead of hanging. Real pairs need a few thousand points. */
#define MAX_LATTICE_POINTS 4000000L

flt_match_options flt_match_options_default(void)
{
    flt_match_options o = {.ltol = 0.2,
                           .stol = 0.3,
                           .angle_tol = 5.0,
                           .prim_tol = 0.25,
                           .primitive_cell = 1,
                           .scale = 1};
    return o;
}

static double dot3(const double *a, const double *b)
{
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}
static double norm3(const double *a)
{
    return sqrt(dot3(a, a));
}
static double wrap_diff(double x)
{
    return fabs(x - nearbyint(x));
}

static double angle_deg(const double *u, const double *v, double lu, double lv)
{
    double x = dot3(u, v) / (lu * lv);
    x = x > 1 ? 1 : (x < -1 ? -1 : x);
    return acos(x) / DEG;
}

static void row_times_mat(const double r[3], const double M[3][3], double out[3])
{
    for (int k = 0; k < 3; k++) out[k] = r[0] * M[0][k] + r[1] * M[1][k] + r[2] * M[2][k];
}

/* ------------------------------------------------------------ pair state */

typedef struct {
    int n[3];    /* integer coordinates in L1's basis */
    double x[3]; /* Cartesian, Angstrom */
    double len;  /* Angstrom */
} lattice_point;

typedef struct {
    int count;
    int *idx; /* indices into the point array */
} point_list;

typedef struct {
    const flt_match_options *opt;
    int use_rms, break_on_match;
    int n; /* sites in each structure */
    const int *Z1, *Z2;
    const double *f1, *f2;     /* fractional coordinates, [n*3] */
    double L1[3][3], L2[3][3]; /* scaled lattices, rows, Angstrom */
    double abc2[3], ang2[3];   /* L2's parameters (Angstrom, degrees) */
    int anchor;                /* site of 2 of its least frequent element */
    /* per element: sites of 1 and of 2, same element order, same counts */
    int nel, *el_start, *el_sites1, *el_sites2;
    /* per candidate lattice */
    double avg[3][3], lll[3][3], lll_inv[3][3], images[27][3];
    double norm; /* (n / V_avg)^(1/3), 1/Angstrom */
    double frac_tol[3], lll_frac_tol[3];
    int have_lll;
    /* work arrays */
    double *fc1, *ts2, *cart1, *cart2, *fl1, *fl2, *f2_lll, *d2, *vec, *block, *dist;
    double t[3]; /* the current translation of 2, fractional */
    int *assign, *block_assign;
    /* best mapping so far */
    int found;
    double best_val, best_rms, best_max;
    long lattices;
} pair_ctx;

static void pair_free(pair_ctx *p)
{
    free(p->el_start);
    free(p->el_sites1);
    free(p->el_sites2);
    free(p->fc1);
    free(p->ts2);
    free(p->cart1);
    free(p->cart2);
    free(p->fl1);
    free(p->fl2);
    free(p->f2_lll);
    free(p->d2);
    free(p->vec);
    free(p->block);
    free(p->dist);
    free(p->assign);
    free(p->block_assign);
}

static int pair_alloc(pair_ctx *p)
{
    size_t n = (size_t)p->n;
    p->fc1 = malloc(3 * n * sizeof(double));
    p->ts2 = malloc(3 * n * sizeof(double));
    p->cart1 = malloc(3 * n * sizeof(double));
    p->cart2 = malloc(3 * n * sizeof(double));
    p->fl1 = malloc(3 * n * sizeof(double));
    p->fl2 = malloc(3 * n * sizeof(double));
    p->f2_lll = malloc(3 * n * sizeof(double));
    p->d2 = malloc(n * n * sizeof(double));
    p->vec = malloc(3 * n * n * sizeof(double));
    p->block = malloc(n * n * sizeof(double));
    p->dist = malloc(n * sizeof(double));
    p->assign = malloc(n * sizeof(int));
    p->block_assign = malloc(n * sizeof(int));
    p->el_start = malloc((n + 1) * sizeof(int));
    p->el_sites1 = malloc(n * sizeof(int));
    p->el_sites2 = malloc(n * sizeof(int));
    return p->fc1 && p->ts2 && p->cart1 && p->cart2 && p->fl1 && p->fl2 && p->f2_lll && p->d2 &&
                   p->vec && p->block && p->dist && p->assign && p->block_assign && p->el_start &&
                   p->el_sites1 && p->el_sites2
               ? 0
               : -1;
}

/* Sites per element, elements in order of first appearance in 2; returns -1 when the element
 * counts differ (no one-to-one mapping exists). */
static int group_elements(pair_ctx *p)
{
    int n = p->n, used = 0;
    p->nel = 0;
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int e = 0; e < p->nel && !seen; e++)
            seen = p->Z2[p->el_sites2[p->el_start[e]]] == p->Z2[i];
        if (seen) continue;
        p->el_start[p->nel++] = used;
        int c1 = 0, c2 = 0;
        for (int j = 0; j < n; j++)
            if (p->Z1[j] == p->Z2[i]) p->el_sites1[used + c1++] = j;
        for (int j = 0; j < n; j++)
            if (p->Z2[j] == p->Z2[i]) p->el_sites2[used + c2++] = j;
        if (c1 != c2) return -1;
        used += c2;
    }
    p->el_start[p->nel] = used;
    return used == n ? 0 : -1;
}

/* pymatgen's _get_mask: the first site of 2 with the most sites of 1 it cannot map to, i.e.
 * the first site of the least frequent element. */
static void pick_anchor(pair_ctx *p)
{
    int best = -1;
    p->anchor = 0;
    for (int i = 0; i < p->n; i++) {
        int other = 0;
        for (int j = 0; j < p->n; j++) other += p->Z1[j] != p->Z2[i];
        if (other > best) best = other, p->anchor = i;
    }
}

/* ------------------------------------------------------------ distances for one translation */

/* Squared minimum-image distances (27 images of the LLL basis) between sites of 2 (rows,
 * translated, in ts2) and of 1 (columns), as pbc_shortest_vectors; pairs outside the LLL box
 * tolerance or of different elements are marked with -1. */
static void shortest_vectors(pair_ctx *p)
{
    int n = p->n;
    double t_lll[3]; /* (f2 + t) . inv = f2 . inv + t . inv: the sites of 1 and f2 . inv are
                      * converted once per lattice (prepare_lll) */
    row_times_mat(p->t, p->lll_inv, t_lll);
    for (int i = 0; i < n; i++) {
        double w1[3];
        for (int k = 0; k < 3; k++) {
            p->fl1[3 * i + k] = p->f2_lll[3 * i + k] + t_lll[k];
            w1[k] = p->fl1[3 * i + k] - floor(p->fl1[3 * i + k]);
        }
        row_times_mat(w1, p->lll, &p->cart1[3 * i]);
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double *d2 = &p->d2[i * n + j];
            *d2 = -1;
            if (p->Z2[i] != p->Z1[j]) continue;
            int inside = 1;
            for (int k = 0; k < 3 && inside; k++)
                inside = wrap_diff(p->fl2[3 * j + k] - p->fl1[3 * i + k]) <= p->lll_frac_tol[k];
            if (!inside) continue;
            double pre[3], best = INFINITY;
            int bestk = 0;
            for (int k = 0; k < 3; k++) pre[k] = p->cart2[3 * j + k] - p->cart1[3 * i + k];
            for (int m = 0; m < 27; m++) {
                double dx = pre[0] + p->images[m][0], dy = pre[1] + p->images[m][1],
                       dz = pre[2] + p->images[m][2];
                double d = dx * dx + dy * dy + dz * dz;
                if (d < best) best = d, bestk = m;
            }
            *d2 = best;
            for (int k = 0; k < 3; k++) p->vec[3 * (i * n + j) + k] = pre[k] + p->images[bestk][k];
        }
}

/* Linear assignment per element block on d2. Returns 0, or -1 when some block has no
 * complete pairing inside the tolerance boxes (pymatgen then pairs at distance 1e10: no
 * match). */
static int assign_sites(pair_ctx *p)
{
    int n = p->n;
    for (int e = 0; e < p->nel; e++) {
        int s0 = p->el_start[e], m = p->el_start[e + 1] - s0;
        double forbidden = 1.0;
        for (int a = 0; a < m; a++)
            for (int b = 0; b < m; b++) {
                double d = p->d2[p->el_sites2[s0 + a] * n + p->el_sites1[s0 + b]];
                if (d >= 0) forbidden += d;
            }
        forbidden *= 4; /* more than any complete pairing of allowed pairs costs */
        for (int a = 0; a < m; a++)
            for (int b = 0; b < m; b++) {
                double d = p->d2[p->el_sites2[s0 + a] * n + p->el_sites1[s0 + b]];
                p->block[a * m + b] = d >= 0 ? d : forbidden;
            }
        if (flt_linear_assignment(m, p->block, p->block_assign)) return -1;
        for (int a = 0; a < m; a++) {
            int i = p->el_sites2[s0 + a], j = p->el_sites1[s0 + p->block_assign[a]];
            if (p->d2[i * n + j] < 0) return -1;
            p->assign[i] = j;
        }
    }
    return 0;
}

/* Distances of the assignment after removing the mean displacement, normalized; the value
 * compared with stol (max, or rms for get_rms_dist). Returns -1 when there is no pairing. */
static int mapping_distances(pair_ctx *p, double *val, double *rms, double *maxd)
{
    int n = p->n;
    shortest_vectors(p);
    if (assign_sites(p)) return -1;
    double mean[3] = {0, 0, 0};
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) mean[k] += p->vec[3 * (i * n + p->assign[i]) + k] / n;
    double sum2 = 0, mx = 0;
    for (int i = 0; i < n; i++) {
        const double *v = &p->vec[3 * (i * n + p->assign[i])];
        double dx = v[0] - mean[0], dy = v[1] - mean[1], dz = v[2] - mean[2];
        double d = sqrt(dx * dx + dy * dy + dz * dz) * p->norm;
        p->dist[i] = d;
        sum2 += d * d;
        mx = d > mx ? d : mx;
    }
    *rms = sqrt(sum2 / n);
    *maxd = mx;
    *val = p->use_rms ? *rms : mx;
    return 0;
}

/* ------------------------------------------------------------ one candidate lattice */

/* pymatgen's is_coord_subset_pbc: every site of 2 lies in the box of some site of 1 of its
 * element. */
static int is_coord_subset(const pair_ctx *p)
{
    for (int i = 0; i < p->n; i++) {
        int any = 0;
        for (int j = 0; j < p->n && !any; j++) {
            if (p->Z1[j] != p->Z2[i]) continue;
            any = wrap_diff(p->fc1[3 * j] - p->ts2[3 * i]) <= p->frac_tol[0] &&
                  wrap_diff(p->fc1[3 * j + 1] - p->ts2[3 * i + 1]) <= p->frac_tol[1] &&
                  wrap_diff(p->fc1[3 * j + 2] - p->ts2[3 * i + 2]) <= p->frac_tol[2];
        }
        if (!any) return 0;
    }
    return 1;
}

static void prepare_lll(pair_ctx *p)
{
    double map[3][3], recip[3][3];
    flt_lll_reduce(p->avg, p->lll, map);
    if (xtal_lattice_inverse(map, p->lll_inv)) memset(p->lll_inv, 0, sizeof p->lll_inv);
    xtal_lattice_reciprocal(p->lll, recip);
    for (int k = 0; k < 3; k++) p->lll_frac_tol[k] = 2 * norm3(recip[k]) * p->opt->stol / p->norm;
    for (int i = 0; i < p->n; i++) {
        double w2[3];
        row_times_mat(&p->f2[3 * i], p->lll_inv, &p->f2_lll[3 * i]);
        row_times_mat(&p->fc1[3 * i], p->lll_inv, &p->fl2[3 * i]);
        for (int k = 0; k < 3; k++) w2[k] = p->fl2[3 * i + k] - floor(p->fl2[3 * i + k]);
        row_times_mat(w2, p->lll, &p->cart2[3 * i]);
    }
    int m = 0;
    for (int a = -1; a <= 1; a++)
        for (int b = -1; b <= 1; b++)
            for (int c = -1; c <= 1; c++, m++) {
                double t[3] = {a, b, c};
                row_times_mat(t, p->lll, p->images[m]);
            }
    p->have_lll = 1;
}

/* Tries every translation on the current lattice. Returns 1 to stop the search. */
static int try_translations(pair_ctx *p)
{
    int n = p->n;
    const double *anchor = &p->f2[3 * p->anchor];
    for (int j0 = 0; j0 < n; j0++) {
        if (p->Z1[j0] != p->Z2[p->anchor]) continue;
        double *t = p->t;
        for (int k = 0; k < 3; k++) t[k] = p->fc1[3 * j0 + k] - anchor[k];
        for (int i = 0; i < n; i++)
            for (int k = 0; k < 3; k++) p->ts2[3 * i + k] = p->f2[3 * i + k] + t[k];
        if (!is_coord_subset(p)) continue;
        if (!p->have_lll) prepare_lll(p);
        double val, rms, maxd;
        if (mapping_distances(p, &val, &rms, &maxd)) continue;
        if (!p->found || val < p->best_val) {
            p->found = 1;
            p->best_val = val;
            p->best_rms = rms;
            p->best_max = maxd;
            if ((p->break_on_match || val < 1e-5) && val < p->opt->stol) return 1;
        }
    }
    return 0;
}

/* Integer inverse of a unimodular matrix (adjugate times det = +-1). */
static void unimodular_inverse(const int S[3][3], int det, double out[3][3])
{
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            int r0 = (j + 1) % 3, r1 = (j + 2) % 3, c0 = (i + 1) % 3, c1 = (i + 2) % 3;
            out[i][j] = (double)((S[r0][c0] * S[r1][c1] - S[r0][c1] * S[r1][c0]) * det);
        }
}

static int det3i(const int S[3][3])
{
    return S[0][0] * (S[1][1] * S[2][2] - S[1][2] * S[2][1]) -
           S[0][1] * (S[1][0] * S[2][2] - S[1][2] * S[2][0]) +
           S[0][2] * (S[1][0] * S[2][1] - S[1][1] * S[2][0]);
}

/* Candidate lattice made of points a, b, c of L1. Returns 1 to stop the search. */
static int try_lattice(pair_ctx *p, const lattice_point *a, const lattice_point *b,
                       const lattice_point *c)
{
    int S[3][3];
    for (int k = 0; k < 3; k++) S[0][k] = a->n[k], S[1][k] = b->n[k], S[2][k] = c->n[k];
    int det = det3i(S);
    if (det != 1 && det != -1) return 0; /* a sublattice: not without supercells */
    p->lattices++;
    double Sinv[3][3];
    unimodular_inverse(S, det, Sinv);
    for (int i = 0; i < p->n; i++) {
        row_times_mat(&p->f1[3 * i], Sinv, &p->fc1[3 * i]);
        for (int k = 0; k < 3; k++) p->fc1[3 * i + k] -= floor(p->fc1[3 * i + k]);
    }
    /* the average lattice, from the mean of the two parameter sets */
    double abc[3] = {(a->len + p->abc2[0]) / 2, (b->len + p->abc2[1]) / 2,
                     (c->len + p->abc2[2]) / 2};
    double ang[3] = {(angle_deg(b->x, c->x, b->len, c->len) + p->ang2[0]) / 2,
                     (angle_deg(a->x, c->x, a->len, c->len) + p->ang2[1]) / 2,
                     (angle_deg(a->x, b->x, a->len, b->len) + p->ang2[2]) / 2};
    double recip[3][3];
    if (xtal_lattice_from_params(abc, ang, p->avg, NULL) || xtal_lattice_reciprocal(p->avg, recip))
        return 0;
    p->norm = cbrt(p->n / fabs(xtal_lattice_volume(p->avg)));
    for (int k = 0; k < 3; k++) p->frac_tol[k] = 2 * norm3(recip[k]) * p->opt->stol / p->norm;
    p->have_lll = 0;
    return try_translations(p);
}

/* ------------------------------------------------------------ lattice search */

static int points_in_sphere(const double L[3][3], double radius, lattice_point **out, int *count)
{
    double recip[3][3];
    if (xtal_lattice_reciprocal(L, recip)) return XTAL_EINVALID;
    int hi[3];
    long total = 1;
    for (int k = 0; k < 3; k++) {
        double h = ceil(radius * norm3(recip[k]));
        if (!(h < 1e4)) return XTAL_ELIMIT;
        hi[k] = (int)h;
        total *= 2 * hi[k] + 1;
    }
    if (total > MAX_LATTICE_POINTS) return XTAL_ELIMIT;
    lattice_point *pts = malloc((size_t)total * sizeof *pts);
    if (!pts) return XTAL_ENOMEM;
    int m = 0;
    for (int i = -hi[0]; i <= hi[0]; i++)
        for (int j = -hi[1]; j <= hi[1]; j++)
            for (int k = -hi[2]; k <= hi[2]; k++) {
                double f[3] = {i, j, k};
                lattice_point *q = &pts[m];
                row_times_mat(f, L, q->x);
                q->len = norm3(q->x);
                if (q->len > radius || q->len == 0) continue;
                q->n[0] = i, q->n[1] = j, q->n[2] = k;
                m++;
            }
    *out = pts;
    *count = m;
    return XTAL_OK;
}

/* Points whose length is within ltol of target (ratio strictly inside (1/(1+ltol), 1+ltol)). */
static int select_by_length(const lattice_point *pts, int m, double target, double ltol,
                            point_list *out)
{
    out->idx = malloc((size_t)(m ? m : 1) * sizeof *out->idx);
    if (!out->idx) return -1;
    out->count = 0;
    for (int i = 0; i < m; i++) {
        double r = pts[i].len / target;
        if (r < 1 + ltol && r > 1 / (1 + ltol)) out->idx[out->count++] = i;
    }
    return 0;
}

/* Angle table: ok[i * nb + j] = |angle(A_i, B_j) - target| < atol. acos is decreasing, so the
 * test is done on the cosine against cos(target +- atol): no acos per pair. */
static char *angle_table(const lattice_point *pts, const point_list *A, const point_list *B,
                         double target, double atol)
{
    char *ok = malloc((size_t)A->count * (size_t)B->count + 1);
    if (!ok) return NULL;
    double hi_deg = target + atol, lo_deg = target - atol;
    double cos_lo = hi_deg >= 180 ? -INFINITY : cos(hi_deg * DEG); /* angle < hi <=> cos > */
    double cos_hi = lo_deg <= 0 ? INFINITY : cos(lo_deg * DEG);    /* angle > lo <=> cos < */
    for (int i = 0; i < A->count; i++)
        for (int j = 0; j < B->count; j++) {
            const lattice_point *u = &pts[A->idx[i]], *v = &pts[B->idx[j]];
            double x = dot3(u->x, v->x) / (u->len * v->len);
            x = x > 1 ? 1 : (x < -1 ? -1 : x);
            ok[(size_t)i * (size_t)B->count + (size_t)j] = (char)(x > cos_lo && x < cos_hi);
        }
    return ok;
}

/* Lattice.find_all_mappings(L2, ltol, angle_tol) on L1, in pymatgen's order (a, then b, then
 * c candidates), each candidate tried as it is found. */
static int search_lattices(pair_ctx *p)
{
    double rmax = fmax(p->abc2[0], fmax(p->abc2[1], p->abc2[2])) * (1 + p->opt->ltol);
    lattice_point *pts = NULL;
    int m = 0, rc = points_in_sphere(p->L1, rmax, &pts, &m);
    if (rc != XTAL_OK) return rc;
    point_list A = {0}, B = {0}, C = {0};
    char *gam = NULL, *alp = NULL, *bet = NULL;
    rc = XTAL_ENOMEM;
    if (select_by_length(pts, m, p->abc2[0], p->opt->ltol, &A) ||
        select_by_length(pts, m, p->abc2[1], p->opt->ltol, &B) ||
        select_by_length(pts, m, p->abc2[2], p->opt->ltol, &C))
        goto done;
    gam = angle_table(pts, &A, &B, p->ang2[2], p->opt->angle_tol);
    alp = angle_table(pts, &B, &C, p->ang2[0], p->opt->angle_tol);
    bet = angle_table(pts, &A, &C, p->ang2[1], p->opt->angle_tol);
    if (!gam || !alp || !bet) goto done;
    rc = XTAL_OK;
    int stop = 0;
    for (int i = 0; i < A.count && !stop; i++)
        for (int j = 0; j < B.count && !stop; j++) {
            if (!gam[(size_t)i * (size_t)B.count + (size_t)j]) continue;
            for (int k = 0; k < C.count && !stop; k++) {
                if (!alp[(size_t)j * (size_t)C.count + (size_t)k] ||
                    !bet[(size_t)i * (size_t)C.count + (size_t)k])
                    continue;
                stop = try_lattice(p, &pts[A.idx[i]], &pts[B.idx[j]], &pts[C.idx[k]]);
            }
        }
done:
    free(gam);
    free(alp);
    free(bet);
    free(A.idx);
    free(B.idx);
    free(C.idx);
    free(pts);
    return rc;
}

/* ------------------------------------------------------------ entry points */

static int same_composition(const xtal_crystal *a, const xtal_crystal *b)
{
    int Za[XTAL_NUM_ELEMENTS], Zb[XTAL_NUM_ELEMENTS];
    long ca[XTAL_NUM_ELEMENTS], cb[XTAL_NUM_ELEMENTS];
    int na = flt_reduced_composition(a, Za, ca), nb = flt_reduced_composition(b, Zb, cb);
    if (na != nb || na == 0) return 0;
    for (int i = 0; i < na; i++)
        if (Za[i] != Zb[i] || ca[i] != cb[i]) return 0;
    return 1;
}

static int check_reduced(const xtal_crystal *c, xtal_err *err)
{
    int rc = xtal_crystal_validate(c, err);
    if (rc != XTAL_OK) return rc;
    if (c->natoms > FLT_MATCH_MAX_ATOMS)
        return xtal_err_set(err, XTAL_ELIMIT, "%s: %d atoms, the matcher takes at most %d", c->id,
                            c->natoms, FLT_MATCH_MAX_ATOMS);
    return XTAL_OK;
}

static int match_reduced(const xtal_crystal *ra, const xtal_crystal *rb,
                         const flt_match_options *opt, int use_rms, flt_match_result *res,
                         xtal_err *err)
{
    res->match = 0;
    res->rms = res->max_dist = NAN;
    res->lattices = 0;
    int rc = check_reduced(ra, err);
    if (rc == XTAL_OK) rc = check_reduced(rb, err);
    if (rc != XTAL_OK) return rc;
    if (ra->natoms != rb->natoms || !same_composition(ra, rb)) return XTAL_OK;
    pair_ctx p = {.opt = opt,
                  .use_rms = use_rms,
                  .break_on_match = !use_rms,
                  .n = ra->natoms,
                  .Z1 = ra->Z,
                  .Z2 = rb->Z,
                  .f1 = ra->frac,
                  .f2 = rb->frac};
    memcpy(p.L1, ra->lattice, sizeof p.L1);
    memcpy(p.L2, rb->lattice, sizeof p.L2);
    if (opt->scale) { /* both to the geometric mean volume: L1 * r, L2 / r */
        double r = pow(fabs(xtal_lattice_volume(p.L2)) / fabs(xtal_lattice_volume(p.L1)), 1.0 / 6);
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < 3; k++) p.L1[i][k] *= r, p.L2[i][k] /= r;
    }
    xtal_lattice_to_params(p.L2, p.abc2, p.ang2);
    if (pair_alloc(&p)) {
        pair_free(&p);
        return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
    }
    if (group_elements(&p)) {
        pair_free(&p);
        return XTAL_OK;
    }
    pick_anchor(&p);
    rc = search_lattices(&p);
    if (rc == XTAL_ELIMIT)
        xtal_err_set(err, rc, "%s vs %s: degenerate cells, too many lattice points", ra->id,
                     rb->id);
    else if (rc != XTAL_OK)
        xtal_err_set(err, rc, "%s vs %s: lattice search failed", ra->id, rb->id);
    if (rc == XTAL_OK && p.found && p.best_val < opt->stol) {
        res->match = 1;
        res->rms = p.best_rms;
        res->max_dist = p.best_max;
    } else if (rc == XTAL_OK && p.found && use_rms) {
        res->rms = p.best_rms; /* the closest mapping, above stol: reported, not a match */
        res->max_dist = p.best_max;
    }
    res->lattices = p.lattices;
    pair_free(&p);
    return rc;
}

int flt_match_reduce(const xtal_crystal *c, const flt_match_options *opt, xtal_crystal *out,
                     xtal_err *err)
{
    memset(out, 0, sizeof *out);
    int rc = check_reduced(c, err);
    if (rc == XTAL_OK) rc = xtal_crystal_copy(out, c, err);
    if (rc == XTAL_OK) rc = xtal_niggli_reduce(out, 1e-5, err);
    int reduced = 0;
    if (rc == XTAL_OK && opt->primitive_cell)
        rc = flt_prim_reduce(out, opt->prim_tol, &reduced, err);
    if (rc == XTAL_OK && reduced) rc = xtal_niggli_reduce(out, 1e-5, err);
    if (rc != XTAL_OK) xtal_crystal_free(out);
    return rc;
}

int flt_match_fit_reduced(const xtal_crystal *ra, const xtal_crystal *rb,
                          const flt_match_options *opt, flt_match_result *res, xtal_err *err)
{
    return match_reduced(ra, rb, opt, 0, res, err);
}

int flt_match_rms_dist_reduced(const xtal_crystal *ra, const xtal_crystal *rb,
                               const flt_match_options *opt, flt_match_result *res, xtal_err *err)
{
    return match_reduced(ra, rb, opt, 1, res, err);
}

static int match_raw(const xtal_crystal *a, const xtal_crystal *b, const flt_match_options *opt,
                     int use_rms, flt_match_result *res, xtal_err *err)
{
    res->match = 0;
    res->rms = res->max_dist = NAN;
    res->lattices = 0;
    int rc = check_reduced(a, err);
    if (rc == XTAL_OK) rc = check_reduced(b, err);
    if (rc != XTAL_OK) return rc;
    if (!same_composition(a, b)) return XTAL_OK; /* the cheap test first, as fit() does */
    xtal_crystal ra, rb;
    rc = flt_match_reduce(a, opt, &ra, err);
    if (rc != XTAL_OK) return rc;
    rc = flt_match_reduce(b, opt, &rb, err);
    if (rc == XTAL_OK) {
        rc = match_reduced(&ra, &rb, opt, use_rms, res, err);
        xtal_crystal_free(&rb);
    }
    xtal_crystal_free(&ra);
    return rc;
}

int flt_match_fit(const xtal_crystal *a, const xtal_crystal *b, const flt_match_options *opt,
                  flt_match_result *res, xtal_err *err)
{
    return match_raw(a, b, opt, 0, res, err);
}

int flt_match_rms_dist(const xtal_crystal *a, const xtal_crystal *b, const flt_match_options *opt,
                       flt_match_result *res, xtal_err *err)
{
    return match_raw(a, b, opt, 1, res, err);
}
