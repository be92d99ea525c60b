/* generator/net.c: the denoiser network, forward and backward, and its loss.
 *
 * In the style of llm.c: every layer is a forward/backward pair over flat float arrays, the
 * parameters live in one block (m->params, gradients in m->grads), and the GEMMs run through
 * OpenBLAS with all edges of the batch as rows. Equations: docs/generator.md. Two pieces of
 * algebra keep the edge work down to two GEMMs per layer:
 *   - the first edge layer is linear in [x_i, x_j, g, phi_ij], so W_src x_i and W_dst x_j are
 *     computed once per node and W_g g once per crystal, and only W_phi phi_ij is per edge;
 *   - phi_ij = fourier(f_j - f_i) comes from per-node sin/cos tables by angle addition,
 *     sin(a - b) = sin a cos b - cos a sin b, cos(a - b) = cos a cos b + sin a sin b, so no
 *     trigonometric function is evaluated per edge.
 * Edge e of crystal b with n atoms is (i, j) = (off_b + e / n, off_b + e % n) after the
 * crystal's first edge: the n edges of node i are contiguous (a mean over j is a row block).
 */
#include "generator/generator.h"

#include "generator/gemm.h"

#include <cblas.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define NET_X86 1
#else
#define NET_X86 0
#endif
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LN_EPS         1e-5f
#define TWO_PI         6.283185307179586
#define GEN_MAX_HIDDEN 4096 /* gen_hparams_check's limit on d */

struct gen_workspace {
    float *arena;
    size_t cap;
    int *node_b;  /* [N] crystal of each atom */
    size_t *eoff; /* [B+1] first edge of each crystal */
    size_t *poff; /* [B+1] first pair (i <= j) of each crystal */
    int icap_n, icap_b;
    /* dimensions of the last forward */
    int N, B, keep, have_loss;
    size_t E, Ep; /* edges sum n^2, pairs sum n (n+1) / 2 */
    /* forward */
    float *temb, *t1, *ta, *u, *g, *Gc, *h, *x, *lnm, *lnr, *tab, *phi, *Wsc, *U, *V, *P, *Q, *z1,
        *a1, *z2, *msg, *nz, *na, *eA, *hf, *fm, *fr, *pool, *Mh, *coord, *lat, *logits;
    /* loss gradient of the outputs */
    float *dcoord, *dlat, *dlogits;
    /* backward */
    float *dh, *dx, *dm, *dnz, *dP, *dQ, *dhf, *dGc, *du, *dt1, *dp, *dM, *eB;
    /* the forward's weights packed for gen_gemm (pack_weights): pk[pko[i] ..] is weight i */
    float *pk;
    size_t pk_cap, *pko;
    int pko_cap;
    const gen_model *bound;    /* gen_workspace_bind: pk holds this model's weights... */
    const float *bound_params; /* ...packed from this parameter block */
};

gen_workspace *gen_workspace_new(void)
{
    return calloc(1, sizeof(gen_workspace));
}

void gen_workspace_free(gen_workspace *w)
{
    if (!w) return;
    free(w->arena);
    free(w->node_b);
    free(w->eoff);
    free(w->poff);
    free(w->pk);
    free(w->pko);
    free(w);
}

/* Places every buffer in one arena (base NULL: only counts). Returns floats needed. */
static size_t layout(gen_workspace *w, float *base, const gen_hparams *hp, int N, int B, size_t E,
                     size_t Ep, int keep)
{
    size_t off = 0;
    size_t d = (size_t)hp->hidden, L = (size_t)hp->layers, F = 6 * (size_t)hp->n_freq;
    size_t T = (size_t)hp->time_dim, V = (size_t)hp->n_types - 1, n = (size_t)N, nb = (size_t)B;
    size_t Le = keep ? L : 1;
#define TAKE(ptr, count)                                                                           \
    do {                                                                                           \
        w->ptr = base ? base + off : NULL;                                                         \
        off += ((size_t)(count) + 15) & ~(size_t)15;                                               \
    } while (0)
    TAKE(temb, nb * T);
    TAKE(t1, nb * d);
    TAKE(ta, nb * d);
    TAKE(u, nb * d);
    TAKE(g, nb * 6);
    TAKE(Gc, nb * d);
    TAKE(h, (L + 1) * n * d);
    TAKE(x, L * n * d);
    TAKE(lnm, L * n);
    TAKE(lnr, L * n);
    TAKE(tab, n * F);
    TAKE(phi, Ep * F); /* per pair i <= j: [sin part (3K) | cos part (3K)] */
    TAKE(Wsc, keep ? d * F : 0); /* backward: dW_phi in the pair features' column order */
    TAKE(U, Ep * d);   /* W_sin sin-part; backward: dz_ij - dz_ji */
    TAKE(V, Ep * d);   /* W_cos cos-part; backward: dz_ij + dz_ji */
    TAKE(P, n * d);
    TAKE(Q, n * d);
    TAKE(z1, Le * E * d);           /* W_phi phi, then silu(z1) (no keep) or silu'(z1) (keep) */
    TAKE(a1, keep ? L * E * d : 0); /* silu(z1) of every layer, for the backward */
    TAKE(z2, Le * E * d);           /* z2, then silu'(z2) (keep) */
    TAKE(msg, L * n * d);
    TAKE(nz, L * n * d);
    TAKE(na, n * d);
    TAKE(hf, n * d);
    TAKE(fm, n);
    TAKE(fr, n);
    TAKE(pool, nb * d);
    TAKE(Mh, nb * 9);
    TAKE(coord, n * 3);
    TAKE(lat, nb * 9);
    TAKE(logits, n * V);
    TAKE(dcoord, n * 3);
    TAKE(dlat, nb * 9);
    TAKE(dlogits, n * V);
    if (keep) {
        TAKE(dh, n * d);
        TAKE(dx, n * d);
        TAKE(dm, n * d);
        TAKE(dnz, n * d);
        TAKE(dP, n * d);
        TAKE(dQ, n * d);
        TAKE(dhf, n * d);
        TAKE(dGc, nb * d);
        TAKE(du, nb * d);
        TAKE(dt1, nb * d);
        TAKE(dp, nb * d);
        TAKE(dM, nb * 9);
        TAKE(eA, E * d);
        TAKE(eB, E * d);
    } else {
        w->dh = w->dx = w->dm = w->dnz = w->dP = w->dQ = w->dhf = NULL;
        w->dGc = w->du = w->dt1 = w->dp = w->dM = w->eA = w->eB = NULL;
    }
#undef TAKE
    return off;
}

/* ------------------------------------------------------------ primitives */

/* The forward's GEMMs: gen_gemm (generator/gemm.h) on packed weights, see pack_weights.
 * The backward's, with OpenBLAS: */

/* dX[rows x in] (lddx) = dY[rows x out] (lddy) W[out x in] (ldw) + beta dX */
static void mm_bwd_x(float *dX, int lddx, const float *dY, int lddy, const float *W, int ldw,
                     int rows, int in, int out, float beta)
{
    if (rows <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, in, out, 1.0f, dY, lddy, W, ldw,
                beta, dX, lddx);
}

/* dW[out x in] (lddw) += dY[rows x out]^T X[rows x in] */
static void mm_bwd_w(float *dW, int lddw, const float *dY, int lddy, const float *X, int ldx,
                     int rows, int in, int out)
{
    if (rows <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, rows, 1.0f, dY, lddy, X, ldx,
                1.0f, dW, lddw);
}

/* db += column sums of dY, accumulated in double (rows may be all edges of a batch) */
static void bias_grad(float *db, const float *dY, size_t rows, int out)
{
    double acc[256];
    for (int o0 = 0; o0 < out; o0 += 256) {
        int no = out - o0 < 256 ? out - o0 : 256;
        for (int o = 0; o < no; o++) acc[o] = 0.0;
        for (size_t r = 0; r < rows; r++) {
            const float *y = dY + r * (size_t)out + (size_t)o0;
            for (int o = 0; o < no; o++) acc[o] += y[o];
        }
        for (int o = 0; o < no; o++) db[o0 + o] += (float)acc[o];
    }
}

/* The clamp in vexpf needs no-trapping-math: with trapping math (gcc's default) gcc will not
 * if-convert "x < lo ? lo : x" followed by arithmetic, and the loops below stay scalar. FP
 * exception flags are never read in druse; the results are the same bits either way.
 * fp-contract=off keeps a * b + c two roundings in every clone (no FMA in the AVX2 one).
 * tree-vectorize with the dynamic cost model: at -O2 (the default RelWithDebInfo build) gcc 12
 * vectorizes only with its very-cheap model, which left every loop here scalar. */
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math", "fp-contract=off", "tree-vectorize",                      \
                     "vect-cost-model=dynamic")

/* e^x without libm, written so that gcc vectorizes the loops that inline it (SSE2 at -O3: no
 * call, no branch, no table; libm's expf was 11% of the profile, called twice per edge feature
 * per layer). x = n ln2 + r with |r| <= ln2/2 (n rounded by the 1.5*2^23 trick, ln2 split in two
 * so n*ln2_hi is exact), e^r by Cephes's degree-7 polynomial, 2^n from the exponent bits. The
 * clamp to [-87.3, 88.3] keeps 2^n normal and finite; SiLU never needs e^x beyond it. Max
 * relative error 8e-8 (tests/unit/test_gen_expf.c checks it against exp). Plain float ops in a
 * fixed order: the same input gives the same bits in a vector lane or the scalar tail. */
/* vexpf's constants, shared with the vector rows below (silu_vecW), which must match it bit for
 * bit: clamp, log2(e), the rounding shift 1.5*2^23, ln2 = HI - LO, the polynomial P0 .. P5 */
#define VEXP_MIN -87.3f
#define VEXP_MAX 88.3f
#define VEXP_LOG2E 1.44269504088896341f
#define VEXP_SHIFT 12582912.0f
#define VEXP_LN2_HI 0.693359375f
#define VEXP_LN2_LO 2.12194440e-4f
#define VEXP_P0 1.9875691500e-4f
#define VEXP_P1 1.3981999507e-3f
#define VEXP_P2 8.3334519073e-3f
#define VEXP_P3 4.1665795894e-2f
#define VEXP_P4 1.6666665459e-1f
#define VEXP_P5 5.0000001201e-1f

static inline float vexpf(float x)
{
    x = x < VEXP_MIN ? VEXP_MIN : x;
    x = x > VEXP_MAX ? VEXP_MAX : x;
    float n = (x * VEXP_LOG2E + VEXP_SHIFT) - VEXP_SHIFT;
    float r = x - n * VEXP_LN2_HI;
    r = r + n * VEXP_LN2_LO;
    float p = VEXP_P0;
    p = p * r + VEXP_P1;
    p = p * r + VEXP_P2;
    p = p * r + VEXP_P3;
    p = p * r + VEXP_P4;
    p = p * r + VEXP_P5;
    p = p * (r * r) + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

float gen_fast_expf(float x)
{
    return vexpf(x);
}

/* The loops over activations run as AVX-512 or AVX2 clones where the CPU has them (picked at run
 * time, as OpenBLAS picks its kernel); with fp-contract off every clone gives the same bits. */
#define EDGE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

static inline float sigmoidf(float z)
{
    return 1.0f / (1.0f + vexpf(-z));
}
static inline float silu(float z)
{
    return z * sigmoidf(z);
}
static inline float silu_grad(float z)
{
    float s = sigmoidf(z);
    return s * (1.0f + z * (1.0f - s));
}

/* ------------------------------------------- SiLU rows of the sampling forward
 * The two edge passes of a forward without kept activations (what the sampler runs) are written
 * with explicit AVX-512 / AVX2 intrinsics beside the portable loops: gcc's own vectorization of
 * silu() (target_clones above) turns vexpf's clamps into masked blends that ran 2.7x slower
 * than the plain max/min sequence on Zen 5, and at -O2 (the default RelWithDebInfo build) gcc
 * 12 vectorizes nothing there at all. Every lane does vexpf's operations in vexpf's order (the
 * clamps as max(lo, x) and min(hi, x): NaN passes through as in the scalar compare), so the
 * three paths give the same bits; the path follows the GEMM's (gen_gemm_kernel()), so a test
 * can pin both. */

/* z = silu((v + s u) + (p + q)), s = +-1: one edge row of the first edge layer */
typedef void (*silu_in_fn)(float *z, const float *v, const float *u, float s, const float *p,
                           const float *q, int d);
/* m += silu(z_r + b) over rows r = 0 .. rows-1 of z[rows x d], in increasing r */
typedef void (*silu_sum_fn)(float *m, const float *z, const float *b, int rows, int d);

static void silu_in_c(float *z, const float *v, const float *u, float s, const float *p,
                      const float *q, int d)
{
    for (int k = 0; k < d; k++) z[k] = silu((v[k] + s * u[k]) + (p[k] + q[k]));
}

static void silu_sum_c(float *m, const float *z, const float *b, int rows, int d)
{
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < d; k++) m[k] += silu(z[(size_t)r * d + k] + b[k]);
}

#if NET_X86
/* The vector rows, written once for both widths: W = 512 (16 lanes, target avx512f) or 256 (8
 * lanes, avx2) pastes into the intrinsics' names (_mm512_add_ps, _mm256_add_ps, ...).
 * silu_vecW is vexpf and silu() op for op; s u with s = +-1 is exact, so v + s u is v + u or
 * v - u as in silu_in_c; the tails past the last full vector run silu() itself. */
#define MM(W, op) _mm##W##_##op
#define SILU_ROWS(W, L, TARGET)                                                                    \
    __attribute__((target(TARGET))) static inline __m##W silu_vec##W(__m##W z)                     \
    {                                                                                              \
        __m##W##i m = MM(W, castps_si##W)(z);                                                      \
        __m##W x = MM(W, castsi##W##_ps)(MM(W, xor_si##W)(m, MM(W, set1_epi32)(INT32_MIN)));       \
        x = MM(W, max_ps)(MM(W, set1_ps)(VEXP_MIN), x);                                            \
        x = MM(W, min_ps)(MM(W, set1_ps)(VEXP_MAX), x);                                            \
        const __m##W shift = MM(W, set1_ps)(VEXP_SHIFT), one = MM(W, set1_ps)(1.0f);               \
        __m##W n = MM(W, mul_ps)(x, MM(W, set1_ps)(VEXP_LOG2E));                                   \
        n = MM(W, sub_ps)(MM(W, add_ps)(n, shift), shift);                                         \
        __m##W r = MM(W, sub_ps)(x, MM(W, mul_ps)(n, MM(W, set1_ps)(VEXP_LN2_HI)));                \
        r = MM(W, add_ps)(r, MM(W, mul_ps)(n, MM(W, set1_ps)(VEXP_LN2_LO)));                       \
        static const float c[5] = {VEXP_P1, VEXP_P2, VEXP_P3, VEXP_P4, VEXP_P5};                   \
        __m##W p = MM(W, set1_ps)(VEXP_P0);                                                        \
        for (int i = 0; i < 5; i++) p = MM(W, add_ps)(MM(W, mul_ps)(p, r), MM(W, set1_ps)(c[i]));  \
        p = MM(W, add_ps)(MM(W, add_ps)(MM(W, mul_ps)(p, MM(W, mul_ps)(r, r)), r), one);           \
        __m##W##i e = MM(W, add_epi32)(MM(W, cvttps_epi32)(n), MM(W, set1_epi32)(127));            \
        __m##W ex = MM(W, mul_ps)(p, MM(W, castsi##W##_ps)(MM(W, slli_epi32)(e, 23)));             \
        return MM(W, mul_ps)(z, MM(W, div_ps)(one, MM(W, add_ps)(one, ex)));                       \
    }                                                                                              \
    __attribute__((target(TARGET))) static void silu_in_##W(                                       \
        float *z, const float *v, const float *u, float s, const float *p, const float *q, int d)  \
    {                                                                                              \
        int k = 0;                                                                                 \
        for (; k + L <= d; k += L) {                                                               \
            __m##W su = MM(W, mul_ps)(MM(W, set1_ps)(s), MM(W, loadu_ps)(u + k));                  \
            __m##W vu = MM(W, add_ps)(MM(W, loadu_ps)(v + k), su);                                 \
            __m##W pq = MM(W, add_ps)(MM(W, loadu_ps)(p + k), MM(W, loadu_ps)(q + k));             \
            MM(W, storeu_ps)(z + k, silu_vec##W(MM(W, add_ps)(vu, pq)));                           \
        }                                                                                          \
        silu_in_c(z + k, v + k, u + k, s, p + k, q + k, d - k);                                    \
    }                                                                                              \
    __attribute__((target(TARGET))) static void silu_sum_##W(float *m, const float *z,             \
                                                             const float *b, int rows, int d)      \
    {                                                                                              \
        int k = 0;                                                                                 \
        for (; k + L <= d; k += L) {                                                               \
            __m##W acc = MM(W, loadu_ps)(m + k), bk = MM(W, loadu_ps)(b + k);                      \
            for (int r = 0; r < rows; r++) {                                                       \
                __m##W x = MM(W, add_ps)(MM(W, loadu_ps)(z + (size_t)r * d + k), bk);              \
                acc = MM(W, add_ps)(acc, silu_vec##W(x));                                          \
            }                                                                                      \
            MM(W, storeu_ps)(m + k, acc);                                                          \
        }                                                                                          \
        for (int r = 0; r < rows && k < d; r++)                                                    \
            for (int c = k; c < d; c++) m[c] += silu(z[(size_t)r * d + c] + b[c]);                 \
    }
SILU_ROWS(512, 16, "avx512f")
SILU_ROWS(256, 8, "avx2")
#undef SILU_ROWS
#undef MM
#endif

/* The SiLU rows on the GEMM's path (AVX-512, AVX2 or portable) */
static void pick_silu_rows(silu_in_fn *in, silu_sum_fn *sum)
{
    *in = silu_in_c;
    *sum = silu_sum_c;
#if NET_X86
    int kind = gen_gemm_kernel();
    if (kind == GEN_GEMM_AVX512) *in = silu_in_512, *sum = silu_sum_512;
    if (kind == GEN_GEMM_AVX2) *in = silu_in_256, *sum = silu_sum_256;
#endif
}

EDGE_CLONES static void silu_fwd(float *out, const float *in, size_t n)
{
    for (size_t k = 0; k < n; k++) out[k] = silu(in[k]);
}

/* d *= silu'(z) */
EDGE_CLONES static void silu_bwd(float *d, const float *z, size_t n)
{
    for (size_t k = 0; k < n; k++) d[k] *= silu_grad(z[k]);
}

/* ------------------------------------------------- fused passes over edges
 * Each E x d array is touched once per use: the bias/node terms, the activation, its
 * derivative and the reduction over j share one loop over a d-row that stays in L1 (unfused,
 * these loops and libm's expf were 37% of the profile). With kept activations the forward
 * stores silu'(z) in place of z, so the backward evaluates no exp at all. */

/* First index of the pairs (r, s >= r) in an n-atom crystal: the rows above r of the upper
 * triangle, sum_{t<r} (n - t). */
static inline size_t pair_row(int n, int r)
{
    return (size_t)r * (size_t)(2 * n - r + 1) / 2;
}

/* W_phi phi_ij of edge (i, j) from pair p = (min, max): phi_ji has the sin part negated and the
 * cos part unchanged (sin, cos of f_i - f_j = -(f_j - f_i)), so W_phi phi_ij = V_p + U_p for
 * i <= j and V_p - U_p for i > j: the phi GEMM runs over n (n+1) / 2 pairs, not n^2 edges.
 * Sets *u and *v to row p and returns the sign of U. */
static inline float pair_of(const float *U, const float *V, int n, int li, int lj, int d,
                            const float **u, const float **v)
{
    int r = li < lj ? li : lj, t = li < lj ? lj : li;
    size_t p = (pair_row(n, r) + (size_t)(t - r)) * (size_t)d;
    *u = U + p;
    *v = V + p;
    return li <= lj ? 1.0f : -1.0f;
}

/* z1_ij = (V_p +- U_p) + (P_i + Q_j) (bias and crystal term already in P), stored as silu(z1) */
static void edge_in(float *z1, const float *U, const float *V, const float *P, const float *Q,
                    int n, int d)
{
    silu_in_fn row;
    silu_sum_fn sum;
    pick_silu_rows(&row, &sum);
    for (int li = 0; li < n; li++)
        for (int lj = 0; lj < n; lj++) {
            const float *u, *v;
            float sg = pair_of(U, V, n, li, lj, d, &u, &v);
            row(z1 + ((size_t)li * n + lj) * d, v, u, sg, P + (size_t)li * d, Q + (size_t)lj * d,
                d);
        }
}

/* as edge_in, keeping what the backward needs: a1 = silu(z1), z1 := silu'(z1) */
EDGE_CLONES static void edge_in_keep(float *z1, float *a1, const float *U, const float *V,
                                     const float *P, const float *Q, int n, int d)
{
    for (int li = 0; li < n; li++)
        for (int lj = 0; lj < n; lj++) {
            const float *p = P + (size_t)li * d, *q = Q + (size_t)lj * d, *u, *v;
            float sg = pair_of(U, V, n, li, lj, d, &u, &v);
            size_t e = ((size_t)li * n + lj) * d;
            for (int k = 0; k < d; k++) {
                float x = (v[k] + sg * u[k]) + (p[k] + q[k]), sx = sigmoidf(x);
                a1[e + k] = x * sx;
                z1[e + k] = sx * (1.0f + x * (1.0f - sx));
            }
        }
}

/* The backward of pair_of: dU_p = dz_ij - dz_ji, dV_p = dz_ij + dz_ji (i < j); dz_ii at i = j */
static void pair_grads(float *dU, float *dV, const float *dz, int n, int d)
{
    size_t p = 0;
    for (int li = 0; li < n; li++)
        for (int lj = li; lj < n; lj++, p++) {
            const float *a = dz + ((size_t)li * n + lj) * d, *b = dz + ((size_t)lj * n + li) * d;
            float *du = dU + p * d, *dv = dV + p * d;
            if (li == lj)
                for (int k = 0; k < d; k++) du[k] = dv[k] = a[k];
            else
                for (int k = 0; k < d; k++) {
                    du[k] = a[k] - b[k];
                    dv[k] = a[k] + b[k];
                }
        }
}

/* Pair features of one crystal from its node tables t[n x 2H] ([sin | cos], H = 3K):
 * row p = (i, j >= i) is [sin(f_j - f_i) | cos(f_j - f_i)] by angle addition (no trig per pair) */
static void pair_features(float *phi, const float *t, int n, int H)
{
    for (int li = 0; li < n; li++) {
        const float *si = t + (size_t)li * 2 * H, *ci = si + H;
        for (int lj = li; lj < n; lj++) {
            const float *sj = t + (size_t)lj * 2 * H, *cj = sj + H;
            float *ps = phi + (pair_row(n, li) + (size_t)(lj - li)) * 2 * H, *pc = ps + H;
            for (int k = 0; k < H; k++) {
                ps[k] = sj[k] * ci[k] - cj[k] * si[k];
                pc[k] = cj[k] * ci[k] + sj[k] * si[k];
            }
        }
    }
}

/* dW += dWsc scattered back to W_phi's column order, per axis a: K sin, K cos (the forward
 * gathers them as [all sin | all cos], the order of pair_features: see pack_weights):
 * dW[o][a*2K + k] += dWsc[o][a*K + k], dW[o][a*2K + K + k] += dWsc[o][3K + a*K + k] */
static void phi_weights_grad(float *dW, int ldw, const float *dWsc, int d, int K)
{
    for (int o = 0; o < d; o++)
        for (int a = 0; a < 3; a++)
            for (int k = 0; k < K; k++) {
                dW[(size_t)o * ldw + 2 * K * a + k] += dWsc[(size_t)o * 6 * K + a * K + k];
                dW[(size_t)o * ldw + 2 * K * a + K + k] +=
                    dWsc[(size_t)o * 6 * K + 3 * K + a * K + k];
            }
}

/* m_i = mean_j silu(z2_ij + b2) */
static void edge_out(const float *z2, float *msg, const float *b2, int n, int d)
{
    silu_in_fn row;
    silu_sum_fn sum;
    pick_silu_rows(&row, &sum);
    float inv = 1.0f / (float)n;
    for (int li = 0; li < n; li++) {
        float *mi = msg + (size_t)li * d;
        for (int k = 0; k < d; k++) mi[k] = 0.0f;
        sum(mi, z2 + (size_t)li * n * d, b2, n, d);
        for (int k = 0; k < d; k++) mi[k] *= inv;
    }
}

/* as edge_out, keeping silu'(z2 + b2) in place of z2 for the backward */
EDGE_CLONES static void edge_out_keep(float *z2, float *msg, const float *b2, int n, int d)
{
    float inv = 1.0f / (float)n;
    for (int li = 0; li < n; li++) {
        float *mi = msg + (size_t)li * d;
        for (int k = 0; k < d; k++) mi[k] = 0.0f;
        for (int lj = 0; lj < n; lj++) {
            float *z = z2 + ((size_t)li * n + lj) * d;
            for (int k = 0; k < d; k++) {
                float v = z[k] + b2[k], sg = sigmoidf(v);
                mi[k] += v * sg;
                z[k] = sg * (1.0f + v * (1.0f - sg));
            }
        }
        for (int k = 0; k < d; k++) mi[k] *= inv;
    }
}

/* dz2_ij = dm_i / n * silu'(z2_ij) (g2 holds silu'), acc += column sums of dz2 (b2's gradient,
 * in double: the sum runs over all edges of the batch) */
EDGE_CLONES static void edge_out_bwd(float *dz2, double *acc, const float *g2, const float *dm,
                                     int n, int d)
{
    float inv = 1.0f / (float)n;
    for (int li = 0; li < n; li++) {
        const float *dmi = dm + (size_t)li * d;
        for (int lj = 0; lj < n; lj++) {
            size_t e = ((size_t)li * n + lj) * d;
            for (int k = 0; k < d; k++) {
                float g = dmi[k] * inv * g2[e + k];
                dz2[e + k] = g;
                acc[k] += g;
            }
        }
    }
}

/* da_ij *= silu'(z1_ij) (g1 holds silu'; da becomes dz1), dP_i += dz1_ij, dQ_j += dz1_ij */
EDGE_CLONES static void edge_in_bwd(float *da, float *dP, float *dQ, const float *g1, int n, int d)
{
    for (int li = 0; li < n; li++) {
        float *dp = dP + (size_t)li * d;
        for (int lj = 0; lj < n; lj++) {
            float *dq = dQ + (size_t)lj * d;
            size_t e = ((size_t)li * n + lj) * d;
            for (int k = 0; k < d; k++) {
                float g = da[e + k] * g1[e + k];
                da[e + k] = g;
                dp[k] += g;
                dq[k] += g;
            }
        }
    }
}

#pragma GCC pop_options

static void ln_fwd(float *out, float *mean, float *rstd, const float *in, const float *wt,
                   const float *bs, int N, int d)
{
    for (int i = 0; i < N; i++) {
        const float *x = in + (size_t)i * d;
        double s = 0, s2 = 0;
        for (int k = 0; k < d; k++) s += x[k];
        double mu = s / d;
        for (int k = 0; k < d; k++) s2 += (x[k] - mu) * (x[k] - mu);
        float r = (float)(1.0 / sqrt(s2 / d + LN_EPS));
        float mf = (float)mu;
        float *o = out + (size_t)i * d;
        for (int k = 0; k < d; k++) o[k] = (x[k] - mf) * r * wt[k] + bs[k];
        mean[i] = mf;
        rstd[i] = r;
    }
}

/* din += d LN / d in, dw += d/dw, db += d/db */
static void ln_bwd(float *din, float *dw, float *db, const float *dout, const float *in,
                   const float *mean, const float *rstd, const float *wt, int N, int d)
{
    for (int i = 0; i < N; i++) {
        const float *x = in + (size_t)i * d, *go = dout + (size_t)i * d;
        float *gi = din + (size_t)i * d;
        float mu = mean[i], r = rstd[i];
        double sd = 0, sdn = 0;
        for (int k = 0; k < d; k++) {
            float nrm = (x[k] - mu) * r;
            float dn = go[k] * wt[k];
            sd += dn;
            sdn += (double)dn * nrm;
            dw[k] += go[k] * nrm;
            db[k] += go[k];
        }
        float msd = (float)(sd / d), msdn = (float)(sdn / d);
        for (int k = 0; k < d; k++) {
            float nrm = (x[k] - mu) * r;
            gi[k] += r * (go[k] * wt[k] - msd - nrm * msdn);
        }
    }
}

/* ------------------------------------------------------------ parameters */

typedef struct {
    const float *p;
    float *g;
} pref;

static pref tensor_at(const gen_model *m, int idx)
{
    pref r = {m->params + m->tensors[idx].offset, m->grads + m->tensors[idx].offset};
    return r;
}

enum { T_EMBED = 0, T_TIME0_W, T_TIME0_B, T_TIME2_W, T_TIME2_B, T_LAYER0 };
enum { L_LN_W = 0, L_LN_B, L_E0_W, L_E0_B, L_E2_W, L_E2_B, L_N0_W, L_N0_B, L_N2_W, L_N2_B, L_NT };
enum { H_LN_W = 0, H_LN_B, H_COORD, H_LATTICE, H_TYPE_W, H_TYPE_B };

static pref layer_t(const gen_model *m, int l, int k)
{
    return tensor_at(m, T_LAYER0 + L_NT * l + k);
}
static pref head_t(const gen_model *m, int k)
{
    return tensor_at(m, T_LAYER0 + L_NT * m->hp.layers + k);
}

/* ------------------------------------------------- packed forward weights
 * The forward's GEMMs run through gen_gemm (generator/gemm.h) on weights packed into column
 * panels. OpenBLAS repacks the weight matrix on every call, which dominated the forward of one
 * small crystal (the sampler's unit of work); here the packing is done once per gen_forward, or
 * once per gen_workspace_bind (gen_sample binds for its whole run). */

enum { PK_T0 = 0, PK_T2, PK_COORD, PK_TYPE, PK_LAT, PK_LAYER0 };
enum { PL_P = 0, PL_Q, PL_G, PL_U, PL_V, PL_W2, PL_N0A, PL_N0B, PL_N2, PL_NT };

static const float *pk_at(const gen_workspace *w, int idx)
{
    return w->pk + w->pko[idx];
}
static const float *pk_layer(const gen_workspace *w, int l, int k)
{
    return pk_at(w, PK_LAYER0 + PL_NT * l + k);
}

/* Packs every forward weight of m into w->pk (grown on demand). */
static int pack_weights(gen_workspace *w, const gen_model *m, xtal_err *err)
{
    const gen_hparams *hp = &m->hp;
    const int d = hp->hidden, K = hp->n_freq, F = 6 * K, T = hp->time_dim, V = hp->n_types - 1;
    const int din = 2 * d + 6 + F, L = hp->layers, nw = PK_LAYER0 + PL_NT * L;
    /* (in, out) of each packed weight, in index order */
    int shape[PK_LAYER0 + PL_NT * 64][2];
    shape[PK_T0][0] = T, shape[PK_T0][1] = d;
    shape[PK_T2][0] = d, shape[PK_T2][1] = d;
    shape[PK_COORD][0] = d, shape[PK_COORD][1] = 3;
    shape[PK_TYPE][0] = d, shape[PK_TYPE][1] = V;
    shape[PK_LAT][0] = d, shape[PK_LAT][1] = 9;
    for (int l = 0; l < L; l++) {
        int(*s)[2] = shape + PK_LAYER0 + PL_NT * l;
        const int in[PL_NT] = {d, d, 6, 3 * K, 3 * K, d, d, d, d};
        for (int k = 0; k < PL_NT; k++) s[k][0] = in[k], s[k][1] = d;
    }
    if (w->pko_cap < nw + 1) {
        size_t *p = realloc(w->pko, (size_t)(nw + 1) * sizeof(size_t));
        if (!p) return xtal_err_set(err, XTAL_ENOMEM, "out of memory (packed weights)");
        w->pko = p;
        w->pko_cap = nw + 1;
    }
    w->pko[0] = 0;
    for (int i = 0; i < nw; i++) /* 64-byte aligned panels */
        w->pko[i + 1] = w->pko[i] + ((gen_wpack_floats(shape[i][0], shape[i][1]) + 15) & ~(size_t)15);
    if (w->pko[nw] > w->pk_cap) {
        free(w->pk);
        w->pk = aligned_alloc(64, w->pko[nw] * sizeof(float));
        if (!w->pk) {
            w->pk_cap = 0;
            return xtal_err_set(err, XTAL_ENOMEM, "out of memory (packed weights, %zu floats)",
                                w->pko[nw]);
        }
        w->pk_cap = w->pko[nw];
    }
    int *col = malloc((size_t)F * sizeof(int));
    if (!col) return xtal_err_set(err, XTAL_ENOMEM, "out of memory (packed weights)");
    /* W_phi's columns (per axis a: K sin, K cos) in the pair features' order [all sin | all cos]:
     * sin input a K + k is column 2 K a + k, cos input a K + k is column 2 K a + K + k */
    for (int a = 0; a < 3; a++)
        for (int k = 0; k < K; k++) {
            col[a * K + k] = 2 * K * a + k;
            col[3 * K + a * K + k] = 2 * K * a + K + k;
        }
    float *pk = w->pk;
    const size_t *o = w->pko;
    gen_wpack_pack(pk + o[PK_T0], tensor_at(m, T_TIME0_W).p, T, T, d, NULL);
    gen_wpack_pack(pk + o[PK_T2], tensor_at(m, T_TIME2_W).p, d, d, d, NULL);
    gen_wpack_pack(pk + o[PK_COORD], head_t(m, H_COORD).p, d, d, 3, NULL);
    gen_wpack_pack(pk + o[PK_TYPE], head_t(m, H_TYPE_W).p, d, d, V, NULL);
    gen_wpack_pack(pk + o[PK_LAT], head_t(m, H_LATTICE).p, d, d, 9, NULL);
    for (int l = 0; l < L; l++) {
        const size_t *ol = o + PK_LAYER0 + PL_NT * l;
        const float *W1 = layer_t(m, l, L_E0_W).p, *Wn0 = layer_t(m, l, L_N0_W).p;
        gen_wpack_pack(pk + ol[PL_P], W1, din, d, d, NULL);
        gen_wpack_pack(pk + ol[PL_Q], W1 + d, din, d, d, NULL);
        gen_wpack_pack(pk + ol[PL_G], W1 + 2 * d, din, 6, d, NULL);
        gen_wpack_pack(pk + ol[PL_U], W1 + 2 * d + 6, din, 3 * K, d, col);
        gen_wpack_pack(pk + ol[PL_V], W1 + 2 * d + 6, din, 3 * K, d, col + 3 * K);
        gen_wpack_pack(pk + ol[PL_W2], layer_t(m, l, L_E2_W).p, d, d, d, NULL);
        gen_wpack_pack(pk + ol[PL_N0A], Wn0, 2 * d, d, d, NULL);
        gen_wpack_pack(pk + ol[PL_N0B], Wn0 + d, 2 * d, d, d, NULL);
        gen_wpack_pack(pk + ol[PL_N2], layer_t(m, l, L_N2_W).p, d, d, d, NULL);
    }
    free(col);
    w->bound = NULL;
    return XTAL_OK;
}

int gen_workspace_bind(gen_workspace *w, const gen_model *m, xtal_err *err)
{
    int rc = pack_weights(w, m, err);
    if (rc) return rc;
    w->bound = m;
    w->bound_params = m->params;
    return XTAL_OK;
}

void gen_workspace_unbind(gen_workspace *w)
{
    if (w) w->bound = NULL;
}

int gen_workspace_bound(const gen_workspace *w, const gen_model *m)
{
    return w && m && w->bound == m && w->bound_params == m->params;
}

/* ----------------------------------------------------------------- batch */

int gen_batch_check(const gen_model *m, const gen_batch *b, xtal_err *err)
{
    if (b->n_crystals < 1 || !b->offsets || !b->types || !b->frac || !b->lattice || !b->t)
        return xtal_err_set(err, XTAL_EINVALID, "batch: empty or missing arrays");
    if (b->offsets[0] != 0)
        return xtal_err_set(err, XTAL_EINVALID, "batch: offsets[0] = %d, expected 0",
                            b->offsets[0]);
    size_t E = 0;
    for (int c = 0; c < b->n_crystals; c++) {
        int n = b->offsets[c + 1] - b->offsets[c];
        if (n < 1) return xtal_err_set(err, XTAL_EINVALID, "batch: crystal %d has %d atoms", c, n);
        if (n > XTAL_MAX_ATOMS)
            return xtal_err_set(err, XTAL_ELIMIT, "batch: crystal %d has %d atoms (limit %d)", c, n,
                                XTAL_MAX_ATOMS);
        E += (size_t)n * (size_t)n;
        if (!isfinite(b->t[c]))
            return xtal_err_set(err, XTAL_EINVALID, "batch: crystal %d: time not finite", c);
        for (int k = 0; k < 9; k++)
            if (!isfinite(b->lattice[9 * c + k]))
                return xtal_err_set(err, XTAL_EINVALID, "batch: crystal %d: lattice not finite", c);
    }
    if (b->offsets[b->n_crystals] != b->n_atoms)
        return xtal_err_set(err, XTAL_EINVALID, "batch: offsets[B] = %d but n_atoms = %d",
                            b->offsets[b->n_crystals], b->n_atoms);
    if (E > (size_t)INT_MAX / 2)
        return xtal_err_set(err, XTAL_ELIMIT, "batch: %zu atom pairs, limit %d", E, INT_MAX / 2);
    for (int i = 0; i < b->n_atoms; i++) {
        if (b->types[i] < 0 || b->types[i] >= m->hp.n_types)
            return xtal_err_set(err, XTAL_EINVALID, "batch: atom %d has type %d outside 0..%d", i,
                                b->types[i], m->hp.n_types - 1);
        for (int c = 0; c < 3; c++)
            if (!isfinite(b->frac[3 * i + c]))
                return xtal_err_set(err, XTAL_EINVALID, "batch: atom %d: coordinate not finite", i);
    }
    return XTAL_OK;
}

static int ensure(gen_workspace *w, const gen_model *m, const gen_batch *b, int keep, xtal_err *err)
{
    int N = b->n_atoms, B = b->n_crystals;
    if (w->icap_n < N) {
        int *p = realloc(w->node_b, (size_t)(N > 0 ? N : 1) * sizeof(int));
        if (!p) return xtal_err_set(err, XTAL_ENOMEM, "out of memory (workspace)");
        w->node_b = p;
        w->icap_n = N;
    }
    if (w->icap_b < B + 1) {
        size_t *p = realloc(w->eoff, (size_t)(B + 1) * sizeof(size_t));
        if (!p) return xtal_err_set(err, XTAL_ENOMEM, "out of memory (workspace)");
        w->eoff = p;
        p = realloc(w->poff, (size_t)(B + 1) * sizeof(size_t));
        if (!p) return xtal_err_set(err, XTAL_ENOMEM, "out of memory (workspace)");
        w->poff = p;
        w->icap_b = B + 1;
    }
    w->eoff[0] = w->poff[0] = 0;
    for (int c = 0; c < B; c++) {
        size_t n = (size_t)(b->offsets[c + 1] - b->offsets[c]);
        w->eoff[c + 1] = w->eoff[c] + n * n;
        w->poff[c + 1] = w->poff[c] + n * (n + 1) / 2;
        for (int i = b->offsets[c]; i < b->offsets[c + 1]; i++) w->node_b[i] = c;
    }
    size_t E = w->eoff[B], Ep = w->poff[B];
    size_t need = layout(w, NULL, &m->hp, N, B, E, Ep, keep);
    if (need > w->cap) {
        free(w->arena);
        w->arena = malloc(need * sizeof(float));
        if (!w->arena) {
            w->cap = 0;
            return xtal_err_set(err, XTAL_ENOMEM, "out of memory (workspace of %zu floats)", need);
        }
        w->cap = need;
    }
    layout(w, w->arena, &m->hp, N, B, E, Ep, keep);
    w->N = N;
    w->B = B;
    w->E = E;
    w->Ep = Ep;
    w->keep = keep;
    w->have_loss = 0;
    return XTAL_OK;
}

/* ---------------------------------------------------------------- forward */

int gen_forward(const gen_model *m, gen_workspace *w, const gen_batch *b, int keep,
                gen_outputs *out, xtal_err *err)
{
    int rc = gen_batch_check(m, b, err);
    if (rc) return rc;
    rc = ensure(w, m, b, keep ? 1 : 0, err);
    if (rc) return rc;
    /* training (kept activations) always packs afresh: the parameters change every step */
    if (keep || !gen_workspace_bound(w, m)) {
        rc = pack_weights(w, m, err);
        if (rc) return rc;
    }
    const gen_hparams *hp = &m->hp;
    const int d = hp->hidden, K = hp->n_freq, F = 6 * K, T = hp->time_dim, V = hp->n_types - 1;
    const int N = w->N, B = w->B;
    const size_t E = w->E, nd = (size_t)N * d;

    /* time embedding -> time MLP: u_b = W2 silu(W1 e(t_b) + b1) + b2 */
    for (int c = 0; c < B; c++) {
        int half = T / 2;
        for (int k = 0; k < half; k++) {
            double om = exp(-log(10000.0) * k / half);
            double a = 1000.0 * (double)b->t[c] * om;
            w->temb[(size_t)c * T + k] = (float)sin(a);
            w->temb[(size_t)c * T + half + k] = (float)cos(a);
        }
    }
    pref tb0 = tensor_at(m, T_TIME0_B), tb2 = tensor_at(m, T_TIME2_B);
    gen_gemm(w->t1, d, w->temb, T, pk_at(w, PK_T0), B, T, d, 0, tb0.p);
    silu_fwd(w->ta, w->t1, (size_t)B * d);
    gen_gemm(w->u, d, w->ta, d, pk_at(w, PK_T2), B, d, d, 0, tb2.p);

    /* h0_i = embed(type_i) + u_b(i) */
    const float *emb = tensor_at(m, T_EMBED).p;
    for (int i = 0; i < N; i++) {
        const float *e = emb + (size_t)b->types[i] * d, *uu = w->u + (size_t)w->node_b[i] * d;
        float *h0 = w->h + (size_t)i * d;
        for (int k = 0; k < d; k++) h0[k] = e[k] + uu[k];
    }

    /* lattice features g_b = (G00, G11, G22, G01, G02, G12), G = L L^T */
    for (int c = 0; c < B; c++) {
        const float *Lc = b->lattice + 9 * c;
        double G[3][3];
        for (int r = 0; r < 3; r++)
            for (int s = 0; s < 3; s++)
                G[r][s] = (double)Lc[3 * r] * Lc[3 * s] + (double)Lc[3 * r + 1] * Lc[3 * s + 1] +
                          (double)Lc[3 * r + 2] * Lc[3 * s + 2];
        float *gc = w->g + 6 * c;
        gc[0] = (float)G[0][0];
        gc[1] = (float)G[1][1];
        gc[2] = (float)G[2][2];
        gc[3] = (float)G[0][1];
        gc[4] = (float)G[0][2];
        gc[5] = (float)G[1][2];
    }

    /* per-node tables: tab[i][a*K + k] = sin(2 pi (k+1) f_ia), [3K + a*K + k] = cos(...) */
    for (int i = 0; i < N; i++) {
        float *ti = w->tab + (size_t)i * F;
        for (int c = 0; c < 3; c++) {
            double f = (double)b->frac[3 * i + c];
            f -= floor(f); /* periodic: keeps the angles small */
            for (int k = 0; k < K; k++) {
                double a = TWO_PI * (k + 1) * f;
                ti[c * K + k] = (float)sin(a);
                ti[3 * K + c * K + k] = (float)cos(a);
            }
        }
    }
    for (int c = 0; c < B; c++) {
        int o = b->offsets[c], n = b->offsets[c + 1] - o;
        pair_features(w->phi + w->poff[c] * F, w->tab + (size_t)o * F, n, 3 * K);
    }

    for (int l = 0; l < hp->layers; l++) {
        const float *hl = w->h + (size_t)l * nd;
        float *hn = w->h + (size_t)(l + 1) * nd;
        float *x = w->x + (size_t)l * nd;
        float *z1 = w->z1 + (keep ? (size_t)l * E * d : 0);
        float *z2 = w->z2 + (keep ? (size_t)l * E * d : 0);
        float *mm = w->msg + (size_t)l * nd, *nz = w->nz + (size_t)l * nd;
        pref lnw = layer_t(m, l, L_LN_W), lnb = layer_t(m, l, L_LN_B);
        pref b1 = layer_t(m, l, L_E0_B), b2 = layer_t(m, l, L_E2_B);
        pref bn0 = layer_t(m, l, L_N0_B), bn2 = layer_t(m, l, L_N2_B);

        ln_fwd(x, w->lnm + (size_t)l * N, w->lnr + (size_t)l * N, hl, lnw.p, lnb.p, N, d);
        /* node and crystal parts of the first edge layer */
        gen_gemm(w->Gc, d, w->g, 6, pk_layer(w, l, PL_G), B, 6, d, 0, NULL);
        gen_gemm(w->P, d, x, d, pk_layer(w, l, PL_P), N, d, d, 0, NULL);
        gen_gemm(w->Q, d, x, d, pk_layer(w, l, PL_Q), N, d, d, 0, NULL);
        for (int i = 0; i < N; i++) {
            float *p = w->P + (size_t)i * d;
            const float *gc = w->Gc + (size_t)w->node_b[i] * d;
            for (int k = 0; k < d; k++) p[k] += gc[k] + b1.p[k];
        }
        /* per edge: z1_ij = W_phi phi_ij + P_i + Q_j = V_p +- U_p + P_i + Q_j (pair p of i, j),
         * activation a1 (in place of z1 without keep) */
        float *a1 = keep ? w->a1 + (size_t)l * E * d : z1;
        gen_gemm(w->U, d, w->phi, F, pk_layer(w, l, PL_U), (int)w->Ep, 3 * K, d, 0, NULL);
        gen_gemm(w->V, d, w->phi + 3 * K, F, pk_layer(w, l, PL_V), (int)w->Ep, 3 * K, d, 0, NULL);
        for (int c = 0; c < B; c++) {
            int o = b->offsets[c], n = b->offsets[c + 1] - o;
            size_t e0 = w->eoff[c] * (size_t)d, p0 = w->poff[c] * (size_t)d;
            const float *p = w->P + (size_t)o * d, *q = w->Q + (size_t)o * d;
            if (keep)
                edge_in_keep(z1 + e0, a1 + e0, w->U + p0, w->V + p0, p, q, n, d);
            else
                edge_in(z1 + e0, w->U + p0, w->V + p0, p, q, n, d);
        }
        gen_gemm(z2, d, a1, d, pk_layer(w, l, PL_W2), (int)E, d, d, 0, NULL);
        /* m_i = mean_j silu(z2_ij + b2) */
        for (int c = 0; c < B; c++) {
            int o = b->offsets[c], n = b->offsets[c + 1] - o;
            float *zc = z2 + w->eoff[c] * (size_t)d, *mc = mm + (size_t)o * d;
            if (keep)
                edge_out_keep(zc, mc, b2.p, n, d);
            else
                edge_out(zc, mc, b2.p, n, d);
        }
        /* node update: h_{l+1} = h_l + Wn2 silu(Wn0 [x, m] + bn0) + bn2 */
        gen_gemm(nz, d, x, d, pk_layer(w, l, PL_N0A), N, d, d, 0, NULL);
        gen_gemm(nz, d, mm, d, pk_layer(w, l, PL_N0B), N, d, d, 1, bn0.p);
        silu_fwd(w->na, nz, nd);
        memcpy(hn, hl, nd * sizeof(float));
        gen_gemm(hn, d, w->na, d, pk_layer(w, l, PL_N2), N, d, d, 1, bn2.p);
    }

    /* heads */
    const float *hL = w->h + (size_t)hp->layers * nd;
    pref fw = head_t(m, H_LN_W), fb = head_t(m, H_LN_B), ba = head_t(m, H_TYPE_B);
    ln_fwd(w->hf, w->fm, w->fr, hL, fw.p, fb.p, N, d);
    gen_gemm(w->coord, 3, w->hf, d, pk_at(w, PK_COORD), N, d, 3, 0, NULL);
    gen_gemm(w->logits, V, w->hf, d, pk_at(w, PK_TYPE), N, d, V, 0, ba.p);
    for (int c = 0; c < B; c++) {
        int o = b->offsets[c], n = b->offsets[c + 1] - o;
        float *pc = w->pool + (size_t)c * d;
        for (int k = 0; k < d; k++) pc[k] = 0.0f;
        for (int i = o; i < o + n; i++)
            for (int k = 0; k < d; k++) pc[k] += w->hf[(size_t)i * d + k];
        for (int k = 0; k < d; k++) pc[k] /= (float)n;
    }
    gen_gemm(w->Mh, 9, w->pool, d, pk_at(w, PK_LAT), B, d, 9, 0, NULL);
    for (int c = 0; c < B; c++) {
        const float *M = w->Mh + 9 * c, *Lc = b->lattice + 9 * c;
        float *o = w->lat + 9 * c;
        for (int r = 0; r < 3; r++)
            for (int s = 0; s < 3; s++)
                o[3 * r + s] =
                    M[3 * r] * Lc[s] + M[3 * r + 1] * Lc[3 + s] + M[3 * r + 2] * Lc[6 + s];
    }
    if (out) {
        out->coord = w->coord;
        out->lattice = w->lat;
        out->logits = w->logits;
    }
    return XTAL_OK;
}

/* ------------------------------------------------------------------- loss */

int gen_loss(const gen_model *m, gen_workspace *w, const gen_batch *b, const gen_targets *tg,
             double *loss, xtal_err *err)
{
    if (w->N != b->n_atoms || w->B != b->n_crystals || w->E == 0)
        return xtal_err_set(err, XTAL_EINVALID, "gen_loss: no forward pass of this batch");
    const int N = w->N, B = w->B, V = m->hp.n_types - 1;
    double lc = 0, ll = 0, la = 0;
    double sc = 2.0 * tg->w_coord / (3.0 * N), sl = 2.0 * tg->w_lattice / (9.0 * B);
    for (int k = 0; k < 3 * N; k++) {
        double r = (double)w->coord[k] - tg->coord[k];
        lc += r * r;
        w->dcoord[k] = (float)(sc * r);
    }
    for (int k = 0; k < 9 * B; k++) {
        double r = (double)w->lat[k] - tg->lattice[k];
        ll += r * r;
        w->dlat[k] = (float)(sl * r);
    }
    int nmask = 0;
    for (int i = 0; i < N; i++) nmask += b->types[i] == GEN_MASK_TYPE;
    memset(w->dlogits, 0, (size_t)N * V * sizeof(float));
    for (int i = 0; i < N && nmask > 0; i++) {
        if (b->types[i] != GEN_MASK_TYPE) continue;
        int z = tg->types[i];
        if (z < 1 || z > V)
            return xtal_err_set(err, XTAL_EINVALID,
                                "gen_loss: atom %d: target type %d outside 1..%d", i, z, V);
        const float *lg = w->logits + (size_t)i * V;
        float *dl = w->dlogits + (size_t)i * V;
        double mx = lg[0];
        for (int k = 1; k < V; k++)
            if (lg[k] > mx) mx = lg[k];
        double s = 0;
        for (int k = 0; k < V; k++) s += exp((double)lg[k] - mx);
        double lse = mx + log(s);
        la += lse - lg[z - 1];
        double sa = tg->w_type / nmask;
        for (int k = 0; k < V; k++) dl[k] = (float)(sa * exp((double)lg[k] - lse));
        dl[z - 1] -= (float)sa;
    }
    double total = tg->w_coord * lc / (3.0 * N) + tg->w_lattice * ll / (9.0 * B);
    if (nmask > 0) total += tg->w_type * la / nmask;
    *loss = total;
    w->have_loss = 1;
    return XTAL_OK;
}

/* --------------------------------------------------------------- backward */

int gen_backward(gen_model *m, gen_workspace *w, const gen_batch *b, xtal_err *err)
{
    if (!w->have_loss || !w->keep || w->N != b->n_atoms || w->B != b->n_crystals)
        return xtal_err_set(err, XTAL_EINVALID,
                            "gen_backward: needs gen_forward (keeping activations) and gen_loss "
                            "of this batch first");
    const gen_hparams *hp = &m->hp;
    const int d = hp->hidden, K = hp->n_freq, F = 6 * K, T = hp->time_dim, V = hp->n_types - 1;
    const int din = 2 * d + 6 + F, N = w->N, B = w->B;
    const size_t E = w->E, nd = (size_t)N * d;

    /* heads */
    pref fw = head_t(m, H_LN_W), fb = head_t(m, H_LN_B), Wc = head_t(m, H_COORD);
    pref Wl = head_t(m, H_LATTICE), Wa = head_t(m, H_TYPE_W), ba = head_t(m, H_TYPE_B);
    mm_bwd_w(Wc.g, d, w->dcoord, 3, w->hf, d, N, d, 3);
    mm_bwd_x(w->dhf, d, w->dcoord, 3, Wc.p, d, N, d, 3, 0.0f);
    mm_bwd_w(Wa.g, d, w->dlogits, V, w->hf, d, N, d, V);
    bias_grad(ba.g, w->dlogits, (size_t)N, V);
    mm_bwd_x(w->dhf, d, w->dlogits, V, Wa.p, d, N, d, V, 1.0f);
    for (int c = 0; c < B; c++) { /* lat = M L  ->  dM = dlat L^T */
        const float *dl = w->dlat + 9 * c, *Lc = b->lattice + 9 * c;
        float *dM = w->dM + 9 * c;
        for (int r = 0; r < 3; r++)
            for (int k = 0; k < 3; k++)
                dM[3 * r + k] = dl[3 * r] * Lc[3 * k] + dl[3 * r + 1] * Lc[3 * k + 1] +
                                dl[3 * r + 2] * Lc[3 * k + 2];
    }
    mm_bwd_w(Wl.g, d, w->dM, 9, w->pool, d, B, d, 9);
    mm_bwd_x(w->dp, d, w->dM, 9, Wl.p, d, B, d, 9, 0.0f);
    for (int c = 0; c < B; c++) {
        int o = b->offsets[c], n = b->offsets[c + 1] - o;
        const float *dpc = w->dp + (size_t)c * d;
        for (int i = o; i < o + n; i++)
            for (int k = 0; k < d; k++) w->dhf[(size_t)i * d + k] += dpc[k] / (float)n;
    }
    memset(w->dh, 0, nd * sizeof(float));
    ln_bwd(w->dh, fw.g, fb.g, w->dhf, w->h + (size_t)hp->layers * nd, w->fm, w->fr, fw.p, N, d);

    for (int l = hp->layers - 1; l >= 0; l--) {
        const float *hl = w->h + (size_t)l * nd, *x = w->x + (size_t)l * nd;
        /* silu'(z1), silu(z1), silu'(z2) of this layer, stored by the forward */
        const float *g1 = w->z1 + (size_t)l * E * d, *a1 = w->a1 + (size_t)l * E * d;
        const float *g2 = w->z2 + (size_t)l * E * d;
        const float *mm = w->msg + (size_t)l * nd, *nz = w->nz + (size_t)l * nd;
        pref lnw = layer_t(m, l, L_LN_W), lnb = layer_t(m, l, L_LN_B);
        pref W1 = layer_t(m, l, L_E0_W), b1 = layer_t(m, l, L_E0_B);
        pref W2 = layer_t(m, l, L_E2_W), b2 = layer_t(m, l, L_E2_B);
        pref Wn0 = layer_t(m, l, L_N0_W), bn0 = layer_t(m, l, L_N0_B);
        pref Wn2 = layer_t(m, l, L_N2_W), bn2 = layer_t(m, l, L_N2_B);

        /* node MLP (dh = dL/dh_{l+1} flows through the residual unchanged) */
        silu_fwd(w->na, nz, nd);
        bias_grad(bn2.g, w->dh, (size_t)N, d);
        mm_bwd_w(Wn2.g, d, w->dh, d, w->na, d, N, d, d);
        mm_bwd_x(w->dnz, d, w->dh, d, Wn2.p, d, N, d, d, 0.0f);
        silu_bwd(w->dnz, nz, nd);
        bias_grad(bn0.g, w->dnz, (size_t)N, d);
        mm_bwd_w(Wn0.g, 2 * d, w->dnz, d, x, d, N, d, d);
        mm_bwd_w(Wn0.g + d, 2 * d, w->dnz, d, mm, d, N, d, d);
        mm_bwd_x(w->dx, d, w->dnz, d, Wn0.p, 2 * d, N, d, d, 0.0f);
        mm_bwd_x(w->dm, d, w->dnz, d, Wn0.p + d, 2 * d, N, d, d, 0.0f);

        /* mean over j and second edge layer: dz2_ij = dm_i / n * silu'(z2_ij) */
        double acc[GEN_MAX_HIDDEN];
        for (int k = 0; k < d; k++) acc[k] = 0.0;
        for (int c = 0; c < B; c++) {
            int o = b->offsets[c], n = b->offsets[c + 1] - o;
            size_t e0 = w->eoff[c] * (size_t)d;
            edge_out_bwd(w->eB + e0, acc, g2 + e0, w->dm + (size_t)o * d, n, d);
        }
        for (int k = 0; k < d; k++) b2.g[k] += (float)acc[k];
        mm_bwd_w(W2.g, d, w->eB, d, a1, d, (int)E, d, d);
        mm_bwd_x(w->eA, d, w->eB, d, W2.p, d, (int)E, d, d, 0.0f);

        /* first edge layer: eA = dz1 (fused with the sums over j and i), then the per-edge
         * phi part, per-node and per-crystal parts */
        memset(w->dP, 0, nd * sizeof(float));
        memset(w->dQ, 0, nd * sizeof(float));
        for (int c = 0; c < B; c++) {
            int o = b->offsets[c], n = b->offsets[c + 1] - o;
            size_t e0 = w->eoff[c] * (size_t)d;
            edge_in_bwd(w->eA + e0, w->dP + (size_t)o * d, w->dQ + (size_t)o * d, g1 + e0, n, d);
        }
        for (int c = 0; c < B; c++) {
            int n = b->offsets[c + 1] - b->offsets[c];
            size_t e0 = w->eoff[c] * (size_t)d, p0 = w->poff[c] * (size_t)d;
            pair_grads(w->U + p0, w->V + p0, w->eA + e0, n, d);
        }
        memset(w->Wsc, 0, (size_t)d * F * sizeof(float));
        mm_bwd_w(w->Wsc, F, w->U, d, w->phi, F, (int)w->Ep, 3 * K, d);
        mm_bwd_w(w->Wsc + 3 * K, F, w->V, d, w->phi + 3 * K, F, (int)w->Ep, 3 * K, d);
        phi_weights_grad(W1.g + 2 * d + 6, din, w->Wsc, d, K);
        bias_grad(b1.g, w->dP, (size_t)N, d);
        mm_bwd_w(W1.g, din, w->dP, d, x, d, N, d, d);
        mm_bwd_w(W1.g + d, din, w->dQ, d, x, d, N, d, d);
        mm_bwd_x(w->dx, d, w->dP, d, W1.p, din, N, d, d, 1.0f);
        mm_bwd_x(w->dx, d, w->dQ, d, W1.p + d, din, N, d, d, 1.0f);
        memset(w->dGc, 0, (size_t)B * d * sizeof(float));
        for (int i = 0; i < N; i++) {
            float *dg = w->dGc + (size_t)w->node_b[i] * d;
            const float *dp = w->dP + (size_t)i * d;
            for (int k = 0; k < d; k++) dg[k] += dp[k];
        }
        mm_bwd_w(W1.g + 2 * d, din, w->dGc, d, w->g, 6, B, 6, d);

        /* pre-norm: dh_l = dh_{l+1} + LN'(dx) */
        ln_bwd(w->dh, lnw.g, lnb.g, w->dx, hl, w->lnm + (size_t)l * N, w->lnr + (size_t)l * N,
               lnw.p, N, d);
    }

    /* h0 = embed(type) + u(t) */
    float *demb = tensor_at(m, T_EMBED).g;
    memset(w->du, 0, (size_t)B * d * sizeof(float));
    for (int i = 0; i < N; i++) {
        const float *dh = w->dh + (size_t)i * d;
        float *de = demb + (size_t)b->types[i] * d, *du = w->du + (size_t)w->node_b[i] * d;
        for (int k = 0; k < d; k++) {
            de[k] += dh[k];
            du[k] += dh[k];
        }
    }
    pref tw0 = tensor_at(m, T_TIME0_W), tb0 = tensor_at(m, T_TIME0_B);
    pref tw2 = tensor_at(m, T_TIME2_W), tb2 = tensor_at(m, T_TIME2_B);
    bias_grad(tb2.g, w->du, (size_t)B, d);
    mm_bwd_w(tw2.g, d, w->du, d, w->ta, d, B, d, d);
    mm_bwd_x(w->dt1, d, w->du, d, tw2.p, d, B, d, d, 0.0f);
    silu_bwd(w->dt1, w->t1, (size_t)B * d);
    bias_grad(tb0.g, w->dt1, (size_t)B, d);
    mm_bwd_w(tw0.g, T, w->dt1, d, w->temb, T, B, T, d);
    (void)K;
    return XTAL_OK;
}
