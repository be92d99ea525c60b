/* Small dense algebra for the cell filter: 3x3 helpers and the matrix exponential.
 *
 * exp(A) by scaling and squaring with Pade approximants of degree 3, 5, 7, 9 or 13, chosen by
 * the 1-norm (N. J. Higham, SIAM J. Matrix Anal. Appl. 26 (2005) 1179, Algorithm 2.3 and its
 * theta_m table), the method scipy.linalg.expm and hence ASE use. The Frechet derivative
 * comes from the block identity exp([[A, E], [0, A]]) = [[exp(A), L(A, E)], [0, exp(A)]]. */
#include <math.h>
#include <string.h>

#include "relax/relax_internal.h"

#define NMAX 6

void rlx_mat3_mul(const double A[3][3], const double B[3][3], double C[3][3])
{
    double T[3][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            T[i][j] = A[i][0] * B[0][j] + A[i][1] * B[1][j] + A[i][2] * B[2][j];
    memcpy(C, T, sizeof T);
}

void rlx_mat3_transpose(const double A[3][3], double T[3][3])
{
    double R[3][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) R[i][j] = A[j][i];
    memcpy(T, R, sizeof R);
}

double rlx_mat3_det(const double A[3][3])
{
    return A[0][0] * (A[1][1] * A[2][2] - A[1][2] * A[2][1]) -
           A[0][1] * (A[1][0] * A[2][2] - A[1][2] * A[2][0]) +
           A[0][2] * (A[1][0] * A[2][1] - A[1][1] * A[2][0]);
}

int rlx_mat3_inv(const double A[3][3], double inv[3][3])
{
    double det = rlx_mat3_det(A);
    if (!isfinite(det) || det == 0.0) return -1;
    double R[3][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            int r0 = (j + 1) % 3, r1 = (j + 2) % 3, c0 = (i + 1) % 3, c1 = (i + 2) % 3;
            R[i][j] = (A[r0][c0] * A[r1][c1] - A[r0][c1] * A[r1][c0]) / det;
        }
    memcpy(inv, R, sizeof R);
    return 0;
}

/* ------------------------------------------------------- n x n helpers */

static void matmul(int n, const double *A, const double *B, double *C)
{
    double T[NMAX * NMAX];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += A[i * n + k] * B[k * n + j];
            T[i * n + j] = s;
        }
    memcpy(C, T, sizeof(double) * n * n);
}

static double norm1(int n, const double *A)
{
    double best = 0;
    for (int j = 0; j < n; j++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += fabs(A[i * n + j]);
        if (s > best || isnan(s)) best = s;
    }
    return best;
}

/* Solves P X = Q (n right-hand sides) by Gaussian elimination with partial pivoting; P and Q
 * are overwritten, X goes into Q. */
static void solve(int n, double *P, double *Q)
{
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(P[r * n + c]) > fabs(P[piv * n + c])) piv = r;
        if (piv != c)
            for (int k = 0; k < n; k++) {
                double t = P[c * n + k];
                P[c * n + k] = P[piv * n + k], P[piv * n + k] = t;
                t = Q[c * n + k];
                Q[c * n + k] = Q[piv * n + k], Q[piv * n + k] = t;
            }
        double d = P[c * n + c];
        for (int r = c + 1; r < n; r++) {
            double m = P[r * n + c] / d;
            if (m == 0.0) continue;
            for (int k = c; k < n; k++) P[r * n + k] -= m * P[c * n + k];
            for (int k = 0; k < n; k++) Q[r * n + k] -= m * Q[c * n + k];
        }
    }
    for (int c = n - 1; c >= 0; c--) {
        double d = P[c * n + c];
        for (int k = 0; k < n; k++) {
            double s = Q[c * n + k];
            for (int j = c + 1; j < n; j++) s -= P[c * n + j] * Q[j * n + k];
            Q[c * n + k] = s / d;
        }
    }
}

/* Pade coefficients b_0..b_m (Higham 2005, eq. 2.4 and the table of Algorithm 2.3). */
static const double pade3[] = {120, 60, 12, 1};
static const double pade5[] = {30240, 15120, 3360, 420, 30, 1};
static const double pade7[] = {17297280, 8648640, 1995840, 277200, 25200, 1512, 56, 1};
static const double pade9[] = {17643225600.0, 8821612800.0, 2075673600, 302702400, 30270240,
                               2162160,       110880,       3960,       90,        1};
static const double pade13[] = {64764752532480000.0,
                                32382376266240000.0,
                                7771770303897600.0,
                                1187353796428800.0,
                                129060195264000.0,
                                10559470521600.0,
                                670442572800.0,
                                33522128640.0,
                                1323241920.0,
                                40840800.0,
                                960960.0,
                                16380.0,
                                182.0,
                                1.0};
static const double theta[] = {1.495585217958292e-2, 2.539398330063230e-1, 9.504178996162932e-1,
                               2.097847961257068e0, 5.371920351148152e0};

/* U (odd part) and V (even part) of the degree-m Pade approximant, m <= 9, by powers. */
static void pade_low(int n, const double *A, int m, const double *b, double *U, double *V)
{
    double A2[NMAX * NMAX], P[NMAX * NMAX], Uo[NMAX * NMAX];
    matmul(n, A, A, A2);
    memset(Uo, 0, sizeof(double) * n * n);
    memset(V, 0, sizeof(double) * n * n);
    for (int i = 0; i < n; i++) /* P = A^(2k), starting at I */
        for (int j = 0; j < n; j++) P[i * n + j] = (i == j);
    for (int k = 0; 2 * k <= m; k++) {
        for (int e = 0; e < n * n; e++) {
            V[e] += b[2 * k] * P[e];
            if (2 * k + 1 <= m) Uo[e] += b[2 * k + 1] * P[e];
        }
        matmul(n, P, A2, P);
    }
    matmul(n, A, Uo, U);
}

static void pade13_uv(int n, const double *A, double *U, double *V)
{
    const double *b = pade13;
    double A2[NMAX * NMAX], A4[NMAX * NMAX], A6[NMAX * NMAX], T[NMAX * NMAX];
    matmul(n, A, A, A2);
    matmul(n, A2, A2, A4);
    matmul(n, A4, A2, A6);
    for (int e = 0; e < n * n; e++) T[e] = b[13] * A6[e] + b[11] * A4[e] + b[9] * A2[e];
    matmul(n, A6, T, T);
    for (int e = 0; e < n * n; e++) T[e] += b[7] * A6[e] + b[5] * A4[e] + b[3] * A2[e];
    for (int i = 0; i < n; i++) T[i * n + i] += b[1];
    matmul(n, A, T, U);
    for (int e = 0; e < n * n; e++) T[e] = b[12] * A6[e] + b[10] * A4[e] + b[8] * A2[e];
    matmul(n, A6, T, V);
    for (int e = 0; e < n * n; e++) V[e] += b[6] * A6[e] + b[4] * A4[e] + b[2] * A2[e];
    for (int i = 0; i < n; i++) V[i * n + i] += b[0];
}

void rlx_expm(int n, const double *A, double *expA)
{
    double As[NMAX * NMAX], U[NMAX * NMAX], V[NMAX * NMAX], P[NMAX * NMAX];
    double nrm = norm1(n, A);
    int s = 0;
    const double *low[] = {pade3, pade5, pade7, pade9};
    const int mlow[] = {3, 5, 7, 9};
    int k = 0;
    while (k < 4 && !(nrm <= theta[k])) k++;
    if (k < 4) {
        pade_low(n, A, mlow[k], low[k], U, V);
    } else {
        /* scale so that |A / 2^s|_1 <= theta_13; a non-finite norm gives NaN through */
        if (isfinite(nrm) && nrm > theta[4]) s = (int)ceil(log2(nrm / theta[4]));
        if (s > 1000) s = 1000;
        double scale = ldexp(1.0, -s);
        for (int e = 0; e < n * n; e++) As[e] = A[e] * scale;
        pade13_uv(n, As, U, V);
    }
    /* (V - U) exp(A) = (V + U) */
    for (int e = 0; e < n * n; e++) P[e] = V[e] - U[e], expA[e] = V[e] + U[e];
    solve(n, P, expA);
    for (int i = 0; i < s; i++) matmul(n, expA, expA, expA);
}

void rlx_expm_frechet3(const double A[3][3], const double E[3][3], double L[3][3])
{
    double B[36] = {0}, X[36];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            B[i * 6 + j] = A[i][j];
            B[(i + 3) * 6 + j + 3] = A[i][j];
            B[i * 6 + j + 3] = E[i][j];
        }
    rlx_expm(6, B, X);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) L[i][j] = X[i * 6 + j + 3];
}
