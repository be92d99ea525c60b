/* Small numerical pieces of the structure matcher: linear assignment, LLL reduction, reduced
 * compositions. */
#include "filters/match_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ assignment */

/* Hungarian method with row and column potentials (Kuhn-Munkres in the shortest augmenting
 * path form, O(n^3)); 1-based work arrays, column 0 is the virtual start. */
int flt_linear_assignment(int n, const double *cost, int *row_to_col)
{
    size_t m = (size_t)n + 1;
    double *u = calloc(m, sizeof *u), *v = calloc(m, sizeof *v), *minv = malloc(m * sizeof *minv);
    int *p = calloc(m, sizeof *p), *way = calloc(m, sizeof *way);
    char *used = malloc(m);
    int rc = (u && v && minv && p && way && used) ? 0 : -1;
    for (int i = 1; i <= n && rc == 0; i++) {
        p[0] = i;
        int j0 = 0;
        for (int j = 0; j <= n; j++) minv[j] = INFINITY, used[j] = 0;
        do {
            used[j0] = 1;
            int i0 = p[j0], j1 = 0;
            double delta = INFINITY;
            for (int j = 1; j <= n; j++) {
                if (used[j]) continue;
                double cur = cost[(size_t)(i0 - 1) * (size_t)n + (size_t)(j - 1)] - u[i0] - v[j];
                if (cur < minv[j]) minv[j] = cur, way[j] = j0;
                if (minv[j] < delta) delta = minv[j], j1 = j;
            }
            for (int j = 0; j <= n; j++) {
                if (used[j]) {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
        } while (p[j0] != 0 && j0 != 0);
        do {
            int j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        } while (j0);
    }
    if (rc == 0)
        for (int j = 1; j <= n; j++) {
            if (p[j] <
                1) { /* only with non-finite costs: report failure, never write out of bounds */
                rc = -1;
                break;
            }
            row_to_col[p[j] - 1] = j - 1;
        }
    free(u);
    free(v);
    free(minv);
    free(p);
    free(way);
    free(used);
    return rc;
}

/* ------------------------------------------------------------ LLL */

static double dot3(const double *a, const double *b)
{
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

/* Gram-Schmidt of basis vector s against the previous ones (pymatgen's update step). */
static void gram_schmidt_row(const double A[3][3], double B[3][3], double U[3][3], double m[3],
                             int s)
{
    memcpy(B[s], A[s], sizeof B[s]);
    for (int j = 0; j < s; j++) {
        U[s][j] = dot3(A[s], B[j]) / m[j];
        for (int k = 0; k < 3; k++) B[s][k] -= U[s][j] * B[j][k];
    }
    m[s] = dot3(B[s], B[s]);
}

/* Size reduction of vector k (0-based) against vectors k-1 .. 0. */
static void size_reduce(double A[3][3], double map[3][3], double U[3][3], int k)
{
    for (int i = k; i >= 1; i--) {
        double q = nearbyint(U[k][i - 1]); /* Python's round: half to even */
        if (q == 0) continue;
        for (int c = 0; c < 3; c++) {
            A[k][c] -= q * A[i - 1][c];
            map[k][c] -= q * map[i - 1][c];
        }
        for (int j = 0; j < i - 1; j++) U[k][j] -= q * U[i - 1][j];
        U[k][i - 1] -= q;
    }
}

void flt_lll_reduce(const double L[3][3], double lll[3][3], double map[3][3])
{
    const double delta = 0.75;
    double A[3][3], B[3][3], U[3][3] = {{0}}, m[3];
    memcpy(A, L, sizeof A);
    memset(map, 0, 9 * sizeof(double));
    for (int i = 0; i < 3; i++) map[i][i] = 1;
    for (int s = 0; s < 3; s++) gram_schmidt_row(A, B, U, m, s);
    int k = 1; /* pymatgen's k = 2, 1-based */
    for (int guard = 0; k <= 2 && guard < 10000; guard++) {
        size_reduce(A, map, U, k);
        if (dot3(B[k], B[k]) >= (delta - U[k][k - 1] * U[k][k - 1]) * dot3(B[k - 1], B[k - 1])) {
            k++;
            continue;
        }
        for (int c = 0; c < 3; c++) {
            double t = A[k][c];
            A[k][c] = A[k - 1][c];
            A[k - 1][c] = t;
            t = map[k][c];
            map[k][c] = map[k - 1][c];
            map[k - 1][c] = t;
        }
        gram_schmidt_row(A, B, U, m, k - 1);
        gram_schmidt_row(A, B, U, m, k);
        if (k > 1) {
            k--;
        } else { /* refresh the coefficients of the vectors after the swapped pair */
            for (int r = k + 1; r < 3; r++)
                for (int c = k - 1; c <= k; c++) U[r][c] = dot3(A[r], B[c]) / m[c];
        }
    }
    memcpy(lll, A, sizeof A);
}

/* ------------------------------------------------------------ composition */

int flt_reduced_composition(const xtal_crystal *c, int *Z, long *count)
{
    long per_Z[XTAL_NUM_ELEMENTS + 1] = {0};
    for (int i = 0; i < c->natoms; i++) {
        if (!xtal_element_by_Z(c->Z[i])) return 0;
        per_Z[c->Z[i]]++;
    }
    int n = 0;
    long g = 0;
    for (int z = 1; z <= XTAL_NUM_ELEMENTS; z++)
        if (per_Z[z]) {
            Z[n] = z;
            count[n++] = per_Z[z];
            g = xtal_gcd(g, per_Z[z]);
        }
    for (int i = 0; i < n; i++) count[i] /= g;
    return n;
}
