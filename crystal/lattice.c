/* Lattice geometry: parameters, volumes, coordinate changes, minimum-image distances,
 * Niggli reduction and formulas. Lattice rows are vectors (Angstrom). */
#include "crystal/crystal.h"

#include <math.h>
#include <spglib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEG (M_PI / 180.0)
/* amu -> g (CODATA 2018, as scipy/pymatgen use) over A^3 -> cm^3 (1e-24): g/cm^3 = this * amu/A^3
 */
#define AMU_PER_A3_TO_G_PER_CM3 1.66053906660

static double dot3(const double *u, const double *v)
{
    return u[0] * v[0] + u[1] * v[1] + u[2] * v[2];
}

static double clamp1(double x)
{
    return x > 1.0 ? 1.0 : (x < -1.0 ? -1.0 : x);
}

void xtal_lattice_to_params(const double L[3][3], double abc[3], double angles_deg[3])
{
    for (int i = 0; i < 3; i++) abc[i] = sqrt(dot3(L[i], L[i]));
    /* alpha = angle(b, c), beta = angle(a, c), gamma = angle(a, b) */
    for (int i = 0; i < 3; i++) {
        int j = (i + 1) % 3, k = (i + 2) % 3;
        angles_deg[i] = acos(clamp1(dot3(L[j], L[k]) / (abc[j] * abc[k]))) / DEG;
    }
}

int xtal_lattice_from_params(const double abc[3], const double ang[3], double L[3][3],
                             xtal_err *err)
{
    for (int i = 0; i < 3; i++) {
        if (!isfinite(abc[i]) || abc[i] <= 0)
            return xtal_err_set(err, XTAL_EINVALID, "cell length %g is not positive", abc[i]);
        if (!isfinite(ang[i]) || ang[i] <= 0 || ang[i] >= 180)
            return xtal_err_set(err, XTAL_EINVALID, "cell angle %g is outside (0, 180) degrees",
                                ang[i]);
    }
    double ca = cos(ang[0] * DEG), cb = cos(ang[1] * DEG), cg = cos(ang[2] * DEG);
    double sa = sin(ang[0] * DEG), sb = sin(ang[1] * DEG);
    /* Angles close a cell iff the metric is positive definite. */
    double metric_det = 1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg;
    if (!(metric_det > 1e-12))
        return xtal_err_set(err, XTAL_EINVALID,
                            "cell angles %g %g %g degrees do not form a cell (zero volume)", ang[0],
                            ang[1], ang[2]);
    /* pymatgen's Lattice.from_parameters (vesta=False): c along z, a in the xz plane. */
    double gamma_star = acos(clamp1((ca * cb - cg) / (sa * sb)));
    double a = abc[0], b = abc[1], c = abc[2];
    double rows[3][3] = {{a * sb, 0.0, a * cb},
                         {-b * sa * cos(gamma_star), b * sa * sin(gamma_star), b * ca},
                         {0.0, 0.0, c}};
    memcpy(L, rows, sizeof rows);
    return XTAL_OK;
}

double xtal_lattice_volume(const double L[3][3])
{
    return L[0][0] * (L[1][1] * L[2][2] - L[1][2] * L[2][1]) -
           L[0][1] * (L[1][0] * L[2][2] - L[1][2] * L[2][0]) +
           L[0][2] * (L[1][0] * L[2][1] - L[1][1] * L[2][0]);
}

int xtal_lattice_inverse(const double L[3][3], double inv[3][3])
{
    double det = xtal_lattice_volume(L);
    if (!(fabs(det) > 0) || !isfinite(det)) return -1;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            /* inv[i][j] = cofactor(j, i) / det */
            int r0 = (j + 1) % 3, r1 = (j + 2) % 3, c0 = (i + 1) % 3, c1 = (i + 2) % 3;
            inv[i][j] = (L[r0][c0] * L[r1][c1] - L[r0][c1] * L[r1][c0]) / det;
        }
    return 0;
}

int xtal_lattice_reciprocal(const double L[3][3], double recip[3][3])
{
    double inv[3][3];
    if (xtal_lattice_inverse(L, inv)) return -1;
    /* a_i . b*_j = delta_ij  <=>  b*_j is column j of inv(L) */
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) recip[i][j] = inv[j][i];
    return 0;
}

void xtal_frac_to_cart(const double L[3][3], const double f[3], double x[3])
{
    for (int k = 0; k < 3; k++) x[k] = f[0] * L[0][k] + f[1] * L[1][k] + f[2] * L[2][k];
}

void xtal_cart_to_frac(const double inv[3][3], const double x[3], double f[3])
{
    for (int k = 0; k < 3; k++) f[k] = x[0] * inv[0][k] + x[1] * inv[1][k] + x[2] * inv[2][k];
}

/* Into [0, 1): floor-based, and -1e-17 style values that round to 1.0 fold back to 0. */
static double wrap01(double x)
{
    double w = x - floor(x);
    return w >= 1.0 ? 0.0 : w;
}

void xtal_wrap(xtal_crystal *c)
{
    for (int i = 0; i < 3 * c->natoms; i++) c->frac[i] = wrap01(c->frac[i]);
}

double xtal_volume(const xtal_crystal *c)
{
    return fabs(xtal_lattice_volume(c->lattice));
}

double xtal_mass_amu(const xtal_crystal *c)
{
    double m = 0;
    for (int i = 0; i < c->natoms; i++) {
        const xtal_element *e = xtal_element_by_Z(c->Z[i]);
        m += e ? e->mass_amu : NAN;
    }
    return m;
}

double xtal_density(const xtal_crystal *c)
{
    return AMU_PER_A3_TO_G_PER_CM3 * xtal_mass_amu(c) / xtal_volume(c);
}

/* ------------------------------------------------------- minimum images */

/* A lattice basis prepared for image searches: a reduced basis L (rows), the map from the
 * original fractional coordinates to it (f_red = f_orig . to_red), and the lengths of the
 * reciprocal vectors, which bound the images that can hold a vector shorter than d:
 * |(f + n)_i| <= d |b*_i| for every axis i. */
typedef struct {
    double L[3][3];
    double to_red[3][3];
    double recip_norm[3];
} image_basis;

static void mat3_mul(const double A[3][3], const double B[3][3], double C[3][3])
{
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            C[i][j] = A[i][0] * B[0][j] + A[i][1] * B[1][j] + A[i][2] * B[2][j];
}

/* Integer unimodular M with M . L = reduced lattice, via spglib's Niggli reduction. Returns 0
 * on success, -1 when spglib fails or the result is not an integer change of basis. */
static int niggli_transform(const double L[3][3], double symprec, double M[3][3])
{
    double cols[3][3], inv[3][3], red[3][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) cols[i][j] = L[j][i]; /* spglib stores vectors as columns */
    if (!spg_niggli_reduce(cols, symprec)) return -1;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) red[i][j] = cols[j][i];
    if (xtal_lattice_inverse(L, inv)) return -1;
    mat3_mul(red, inv, M);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            double r = nearbyint(M[i][j]);
            if (fabs(M[i][j] - r) > 1e-4) return -1;
            M[i][j] = r;
        }
    return fabs(fabs(xtal_lattice_volume(M)) - 1.0) < 1e-9 ? 0 : -1;
}

static void image_basis_init(image_basis *b, const double L[3][3])
{
    double M[3][3], Minv[3][3], recip[3][3];
    if (niggli_transform(L, 1e-5, M) || xtal_lattice_inverse(M, Minv)) {
        memset(M, 0, sizeof M); /* no reduction: search the given basis (still exact) */
        M[0][0] = M[1][1] = M[2][2] = 1.0;
        memcpy(Minv, M, sizeof M);
    }
    mat3_mul(M, L, b->L);
    memcpy(b->to_red, Minv, sizeof Minv);
    if (xtal_lattice_reciprocal(b->L, recip)) {
        b->recip_norm[0] = b->recip_norm[1] = b->recip_norm[2] = NAN;
        return;
    }
    for (int i = 0; i < 3; i++) b->recip_norm[i] = sqrt(dot3(recip[i], recip[i]));
}

/* Shortest |(df + n) . L| over integer n (n != 0 when exclude_zero), df in reduced basis. */
static double image_search(const image_basis *b, const double df_in[3], int exclude_zero)
{
    double df[3], x[3];
    for (int k = 0; k < 3; k++) df[k] = df_in[k] - nearbyint(df_in[k]);
    double best = INFINITY;
    if (!exclude_zero) {
        xtal_frac_to_cart(b->L, df, x);
        best = sqrt(dot3(x, x));
    } else {
        for (int i = 0; i < 3; i++) best = fmin(best, sqrt(dot3(b->L[i], b->L[i])));
    }
    if (!isfinite(b->recip_norm[0])) return NAN;
    int lo[3], hi[3];
    for (int k = 0; k < 3; k++) {
        /* Bounded search window; 1000 cells per axis is far beyond any physical cell and keeps
         * a pathological flat cell from becoming a hang. */
        double reach = fmin(best * b->recip_norm[k], 1000.0);
        lo[k] = (int)ceil(-df[k] - reach - 1e-12);
        hi[k] = (int)floor(-df[k] + reach + 1e-12);
    }
    for (int n0 = lo[0]; n0 <= hi[0]; n0++)
        for (int n1 = lo[1]; n1 <= hi[1]; n1++)
            for (int n2 = lo[2]; n2 <= hi[2]; n2++) {
                if (exclude_zero && n0 == 0 && n1 == 0 && n2 == 0) continue;
                double f[3] = {df[0] + n0, df[1] + n1, df[2] + n2};
                xtal_frac_to_cart(b->L, f, x);
                double d2 = dot3(x, x);
                if (d2 < best * best) best = sqrt(d2);
            }
    return best;
}

static double pair_distance(const image_basis *b, const xtal_crystal *c, int i, int j)
{
    double df[3], df_red[3];
    for (int k = 0; k < 3; k++) df[k] = c->frac[3 * j + k] - c->frac[3 * i + k];
    xtal_cart_to_frac(b->to_red, df, df_red); /* row vector times matrix, same algebra */
    return image_search(b, df_red, i == j);
}

double xtal_min_image_distance(const xtal_crystal *c, int i, int j)
{
    image_basis b;
    image_basis_init(&b, c->lattice);
    return pair_distance(&b, c, i, j);
}

double xtal_min_distance(const xtal_crystal *c, int include_self)
{
    image_basis b;
    image_basis_init(&b, c->lattice);
    double best = INFINITY;
    for (int i = 0; i < c->natoms; i++)
        for (int j = include_self ? i : i + 1; j < c->natoms; j++)
            best = fmin(best, pair_distance(&b, c, i, j));
    return best;
}

int xtal_niggli_reduce(xtal_crystal *c, double symprec, xtal_err *err)
{
    double M[3][3], Minv[3][3], L[3][3];
    if (niggli_transform(c->lattice, symprec, M) || xtal_lattice_inverse(M, Minv))
        return xtal_err_set(err, XTAL_EINVALID, "%s: Niggli reduction failed", c->id);
    mat3_mul(M, c->lattice, L);
    memcpy(c->lattice, L, sizeof L);
    /* x = f . L_old = f . Minv . L_new, so f_new = f . Minv */
    for (int a = 0; a < c->natoms; a++) {
        double f[3];
        xtal_cart_to_frac(Minv, &c->frac[3 * a], f);
        memcpy(&c->frac[3 * a], f, sizeof f);
    }
    xtal_wrap(c);
    return XTAL_OK;
}

/* ------------------------------------------------------------ formulas */

long xtal_gcd(long a, long b)
{
    if (a < 0) a = -a;
    if (b < 0) b = -b;
    while (b) {
        long t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Order: Pauling electronegativity ascending (unknown last), then symbol (pymatgen's rule). */
static int by_electronegativity(const void *pa, const void *pb)
{
    const xtal_element *a = xtal_element_by_Z(*(const int *)pa);
    const xtal_element *b = xtal_element_by_Z(*(const int *)pb);
    double xa = isnan(a->electronegativity) ? 1e9 : a->electronegativity;
    double xb = isnan(b->electronegativity) ? 1e9 : b->electronegativity;
    if (xa != xb) return xa < xb ? -1 : 1;
    return strcmp(a->symbol, b->symbol);
}

void xtal_formula(const xtal_crystal *c, int reduced, char *buf, size_t bufsize)
{
    long count[XTAL_NUM_ELEMENTS + 1] = {0};
    int order[XTAL_NUM_ELEMENTS], n = 0;
    for (int i = 0; i < c->natoms; i++)
        if (xtal_element_by_Z(c->Z[i]) && count[c->Z[i]]++ == 0) order[n++] = c->Z[i];
    qsort(order, (size_t)n, sizeof order[0], by_electronegativity);
    long g = 0;
    for (int i = 0; i < n; i++) g = xtal_gcd(g, count[order[i]]);
    if (!reduced || g == 0) g = 1;
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < n && used < bufsize; i++) {
        long k = count[order[i]] / g;
        int w =
            k == 1 ? snprintf(buf + used, bufsize - used, "%s", xtal_element_by_Z(order[i])->symbol)
                   : snprintf(buf + used, bufsize - used, "%s%ld",
                              xtal_element_by_Z(order[i])->symbol, k);
        if (w < 0) break;
        used += (size_t)w;
    }
}
