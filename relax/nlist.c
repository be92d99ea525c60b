/* Verlet neighbour list over periodic images, for cells of any shape and size.
 *
 * A pair vector is d = (f_j + n - f_i) L. Its length is below R only if, on every axis k,
 * |(f_j + n - f_i)_k| <= R |b*_k| (b*_k the reciprocal vectors without 2 pi: 1/|b*_k| is the
 * spacing of the lattice planes k). So the images to visit per pair come from the interplanar
 * spacings, which is exact for skewed cells and for cells smaller than the cutoff, where one
 * pair of atoms meets many images. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "relax/relax_internal.h"

/* More image checks than this means a cell absurdly thin for its cutoff (a flat cell). */
#define MAX_IMAGE_CHECKS 400000000.0

void rlx_nlist_free(rlx_nlist *nl)
{
    free(nl->ij);
    free(nl->img);
    free(nl->frac_ref);
    memset(nl, 0, sizeof *nl);
}

static int grow_pairs(rlx_nlist *nl, xtal_err *err)
{
    long cap = nl->cap ? 2 * nl->cap : 1024;
    if (cap > RLX_MAX_PAIRS) cap = RLX_MAX_PAIRS;
    int *ij = realloc(nl->ij, sizeof(int) * 2 * cap);
    if (!ij) return xtal_err_set(err, XTAL_ENOMEM, "out of memory for the neighbour list");
    nl->ij = ij;
    int *img = realloc(nl->img, sizeof(int) * 3 * cap);
    if (!img) return xtal_err_set(err, XTAL_ENOMEM, "out of memory for the neighbour list");
    nl->img = img;
    nl->cap = cap;
    return XTAL_OK;
}

/* Appends one pair; XTAL_ELIMIT at RLX_MAX_PAIRS. */
static int push_pair(rlx_nlist *nl, int i, int j, const int n[3], xtal_err *err)
{
    if (nl->npairs == nl->cap) {
        if (nl->cap >= RLX_MAX_PAIRS)
            return xtal_err_set(err, XTAL_ELIMIT,
                                "more than %ld neighbour pairs: the cell is too dense or too "
                                "thin for the cutoff",
                                RLX_MAX_PAIRS);
        int rc = grow_pairs(nl, err);
        if (rc) return rc;
    }
    nl->ij[2 * nl->npairs] = i, nl->ij[2 * nl->npairs + 1] = j;
    memcpy(nl->img + 3 * nl->npairs, n, sizeof(int) * 3);
    nl->npairs++;
    return XTAL_OK;
}

/* Lexicographically positive image (the half of n != 0 kept for an atom and itself). */
static int positive_image(const int n[3])
{
    if (n[0] != 0) return n[0] > 0;
    if (n[1] != 0) return n[1] > 0;
    return n[2] > 0;
}

/* Lists the images of atom j seen from atom i within R (Angstrom). */
static int add_images(rlx_nlist *nl, int i, int j, const double df[3], const double L[3][3],
                      const double h[3], double R, xtal_err *err)
{
    int lo[3], hi[3];
    for (int k = 0; k < 3; k++) {
        lo[k] = (int)ceil(-R * h[k] - df[k]);
        hi[k] = (int)floor(R * h[k] - df[k]);
    }
    double R2 = R * R;
    int n[3];
    for (n[0] = lo[0]; n[0] <= hi[0]; n[0]++)
        for (n[1] = lo[1]; n[1] <= hi[1]; n[1]++)
            for (n[2] = lo[2]; n[2] <= hi[2]; n[2]++) {
                if (i == j && !positive_image(n)) continue;
                double s[3] = {df[0] + n[0], df[1] + n[1], df[2] + n[2]}, r2 = 0;
                for (int c = 0; c < 3; c++) {
                    double d = s[0] * L[0][c] + s[1] * L[1][c] + s[2] * L[2][c];
                    r2 += d * d;
                }
                if (r2 >= R2) continue;
                int rc = push_pair(nl, i, j, n, err);
                if (rc) return rc;
            }
    return XTAL_OK;
}

static int save_reference(rlx_nlist *nl, int natoms, const double *frac, const double L[3][3],
                          xtal_err *err)
{
    if (natoms > nl->capatoms) {
        double *f = realloc(nl->frac_ref, sizeof(double) * 3 * natoms);
        if (!f) return xtal_err_set(err, XTAL_ENOMEM, "out of memory for the neighbour list");
        nl->frac_ref = f;
        nl->capatoms = natoms;
    }
    memcpy(nl->frac_ref, frac, sizeof(double) * 3 * natoms);
    memcpy(nl->lat_ref, L, sizeof nl->lat_ref);
    nl->natoms = natoms;
    return XTAL_OK;
}

int rlx_nlist_build(rlx_nlist *nl, int natoms, const double *frac, const double L[3][3],
                    double cutoff_A, double skin_A, xtal_err *err)
{
    double inv[3][3], h[3];
    nl->valid = 0;
    nl->npairs = 0;
    if (rlx_mat3_inv(L, inv))
        return xtal_err_set(err, XTAL_EINVALID, "singular cell: no neighbour list");
    /* b*_k is column k of L^-1 */
    for (int k = 0; k < 3; k++)
        h[k] = sqrt(inv[0][k] * inv[0][k] + inv[1][k] * inv[1][k] + inv[2][k] * inv[2][k]);
    double R = cutoff_A + skin_A;
    double checks = 0.5 * (double)natoms * (natoms + 1);
    for (int k = 0; k < 3; k++) checks *= 2 * R * h[k] + 2;
    if (!(checks < MAX_IMAGE_CHECKS))
        return xtal_err_set(err, XTAL_ELIMIT,
                            "the cell needs %.3g image checks for a %.2f A cutoff (a flat or "
                            "needle-like cell)",
                            checks, R);
    for (int i = 0; i < natoms; i++)
        for (int j = i; j < natoms; j++) {
            double df[3];
            for (int k = 0; k < 3; k++) df[k] = frac[3 * j + k] - frac[3 * i + k];
            int rc = add_images(nl, i, j, df, L, h, R, err);
            if (rc) return rc;
        }
    int rc = save_reference(nl, natoms, frac, L, err);
    if (rc) return rc;
    nl->cutoff_A = cutoff_A;
    nl->skin_A = skin_A;
    nl->valid = 1;
    return XTAL_OK;
}

int rlx_nlist_stale(const rlx_nlist *nl, int natoms, const double *frac, const double L[3][3],
                    double cutoff_A)
{
    if (!nl->valid || nl->natoms != natoms || nl->cutoff_A != cutoff_A) return 1;
    if (nl->skin_A <= 0) return 1;
    double inv[3][3], G[3][3];
    if (rlx_mat3_inv(nl->lat_ref, inv)) return 1;
    rlx_mat3_mul(inv, L, G); /* rows: d_now = d_ref G for a pure cell change */
    double g2 = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            double e = G[a][b] - (a == b);
            g2 += e * e;
        }
    double dmax2 = 0;
    for (int i = 0; i < natoms; i++) {
        double s[3], d2 = 0;
        for (int k = 0; k < 3; k++) s[k] = frac[3 * i + k] - nl->frac_ref[3 * i + k];
        for (int c = 0; c < 3; c++) {
            double d = s[0] * L[0][c] + s[1] * L[1][c] + s[2] * L[2][c];
            d2 += d * d;
        }
        if (d2 > dmax2) dmax2 = d2;
    }
    double bound = sqrt(g2) * (cutoff_A + nl->skin_A) + 2 * sqrt(dmax2);
    return !(bound < nl->skin_A);
}
