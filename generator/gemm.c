/* generator/gemm.c: the forward GEMM of the denoiser with weights packed once (see gemm.h for
 * the contract: one FMA chain per output element, k increasing, so a row's bits never depend
 * on the other rows of the call).
 *
 * Loop order: rows in chunks of GEMM_MC (the chunk of X, 96 rows x in floats, stays in L2),
 * then the column panels (the AVX-512 kernel takes up to 4 panels at once, in x 64 floats, the
 * others one; they stay in L1 while the chunk's register blocks stream past), then register
 * blocks of 6 rows. Nothing is packed per call: X is read in place through 6 row pointers (a
 * short block repeats its last row).
 */
#include "generator/gemm.h"

#include <math.h>
#include <stddef.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GEN_GEMM_X86 1
#else
#define GEN_GEMM_X86 0
#endif

#define MR      GEN_GEMM_MR
#define NR      GEN_GEMM_NR
#define GEMM_MC 96 /* rows per chunk, a multiple of MR */

size_t gen_wpack_floats(int in, int out)
{
    size_t panels = ((size_t)out + NR - 1) / NR;
    return panels * (size_t)in * NR;
}

void gen_wpack_pack(float *p, const float *W, int ldw, int in, int out, const int *col)
{
    int panels = (out + NR - 1) / NR;
    for (int q = 0; q < panels; q++)
        for (int k = 0; k < in; k++) {
            float *dst = p + ((size_t)q * in + k) * NR;
            size_t ck = (size_t)(col ? col[k] : k);
            for (int c = 0; c < NR; c++) {
                int o = q * NR + c;
                dst[c] = o < out ? W[(size_t)o * ldw + ck] : 0.0f;
            }
        }
}

/* y = (acc ? y + s : s) + bias, for the valid mr x nr corner of a register block s[MR][NR] */
static inline void epilogue(float *Y, int ldy, const float *s, int mr, int nr, int acc,
                            const float *bias)
{
    for (int r = 0; r < mr; r++) {
        float *y = Y + (size_t)r * ldy;
        for (int c = 0; c < nr; c++) {
            float v = s[r * NR + c];
            if (acc) v = y[c] + v;
            if (bias) v = v + bias[c];
            y[c] = v;
        }
    }
}

/* A register block: rows a[0 .. MR-1] (a short block repeats its last row) times np consecutive
 * panels (b, b + pstride, ...), written to the valid mr x nc corner of Y (nc <= np NR). */
typedef void (*kern_fn)(const float *const *a, const float *b, size_t pstride, int in, float *Y,
                        int ldy, int mr, int nc, int acc, const float *bias);

/* Portable kernel, one panel: the same FMA chains with fmaf (rows past mr are not computed). */
static void kern_c(const float *const *a, const float *b, size_t pstride, int in, float *Y, int ldy,
                   int mr, int nc, int acc, const float *bias)
{
    float s[MR * NR];
    for (int i = 0; i < MR * NR; i++) s[i] = 0.0f;
    for (int k = 0; k < in; k++) {
        const float *bk = b + (size_t)k * NR;
        for (int r = 0; r < mr; r++) {
            float ar = a[r][k];
            float *sr = s + r * NR;
            for (int c = 0; c < NR; c++) sr[c] = fmaf(ar, bk[c], sr[c]);
        }
    }
    epilogue(Y, ldy, s, mr, nc, acc, bias);
}

#if GEN_GEMM_X86
/* AVX2, one panel: 6 x 16 register block, per k two loads of the panel, six broadcasts, twelve
 * FMAs (12 ymm accumulators). */
__attribute__((target("avx2,fma"))) static void kern_avx2(const float *const *a, const float *b,
                                                          size_t pstride, int in, float *Y, int ldy,
                                                          int mr, int nc, int acc,
                                                          const float *bias)
{
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#pragma GCC unroll 4
    for (int k = 0; k < in; k++) {
        const float *bk = b + (size_t)k * NR;
        __m256 b0 = _mm256_loadu_ps(bk), b1 = _mm256_loadu_ps(bk + 8);
        __m256 t = _mm256_broadcast_ss(a0 + k);
        c00 = _mm256_fmadd_ps(t, b0, c00);
        c01 = _mm256_fmadd_ps(t, b1, c01);
        t = _mm256_broadcast_ss(a1 + k);
        c10 = _mm256_fmadd_ps(t, b0, c10);
        c11 = _mm256_fmadd_ps(t, b1, c11);
        t = _mm256_broadcast_ss(a2 + k);
        c20 = _mm256_fmadd_ps(t, b0, c20);
        c21 = _mm256_fmadd_ps(t, b1, c21);
        t = _mm256_broadcast_ss(a3 + k);
        c30 = _mm256_fmadd_ps(t, b0, c30);
        c31 = _mm256_fmadd_ps(t, b1, c31);
        t = _mm256_broadcast_ss(a4 + k);
        c40 = _mm256_fmadd_ps(t, b0, c40);
        c41 = _mm256_fmadd_ps(t, b1, c41);
        t = _mm256_broadcast_ss(a5 + k);
        c50 = _mm256_fmadd_ps(t, b0, c50);
        c51 = _mm256_fmadd_ps(t, b1, c51);
    }
    __m256 acc_[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                          {c30, c31}, {c40, c41}, {c50, c51}};
    if (mr == MR && nc == NR) {
        /* the epilogue of epilogue(), eight lanes at a time: the same adds in the same order */
        __m256 bb0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
        __m256 bb1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
        for (int r = 0; r < MR; r++) {
            float *y = Y + (size_t)r * ldy;
            __m256 v0 = acc_[r][0], v1 = acc_[r][1];
            if (acc) {
                v0 = _mm256_add_ps(_mm256_loadu_ps(y), v0);
                v1 = _mm256_add_ps(_mm256_loadu_ps(y + 8), v1);
            }
            if (bias) {
                v0 = _mm256_add_ps(v0, bb0);
                v1 = _mm256_add_ps(v1, bb1);
            }
            _mm256_storeu_ps(y, v0);
            _mm256_storeu_ps(y + 8, v1);
        }
        return;
    }
    float s[MR * NR];
    for (int r = 0; r < MR; r++) {
        _mm256_storeu_ps(s + r * NR, acc_[r][0]);
        _mm256_storeu_ps(s + r * NR + 8, acc_[r][1]);
    }
    epilogue(Y, ldy, s, mr, nc, acc, bias);
}

/* AVX-512, NP panels at once: 6 x 16 NP register block, one zmm per row and panel (24 zmm
 * accumulators at NP = 4), per k NP panel loads, six broadcasts, 6 NP FMAs. Where the FPU
 * has 512-bit FMA units (Zen 5, server Intel) this is twice the AVX2 kernel's rate; the FMA
 * chain of every element is the same, so are the bits. Masked loads and stores cover short
 * rows and columns: the epilogue's adds are those of epilogue(). */
__attribute__((target("avx512f"), always_inline)) static inline void
kern512(const float *const *a, const float *b, size_t pstride, int in, float *Y, int ldy, int mr,
        int nc, int acc, const float *bias, const int NP)
{
    const float *ar[MR];
    __m512 c[MR][4];
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
        ar[r] = a[r];
#pragma GCC unroll 4
        for (int p = 0; p < NP; p++) c[r][p] = _mm512_setzero_ps();
    }
    for (int k = 0; k < in; k++) {
        __m512 bv[4];
#pragma GCC unroll 4
        for (int p = 0; p < NP; p++) bv[p] = _mm512_loadu_ps(b + p * pstride + (size_t)k * NR);
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            __m512 t = _mm512_set1_ps(ar[r][k]);
#pragma GCC unroll 4
            for (int p = 0; p < NP; p++) c[r][p] = _mm512_fmadd_ps(t, bv[p], c[r][p]);
        }
    }
#pragma GCC unroll 4
    for (int p = 0; p < NP; p++) {
        int n = nc - p * NR;
        __mmask16 m = n >= NR ? (__mmask16)0xffff : (__mmask16)((1u << (n > 0 ? n : 0)) - 1);
        __m512 bb = bias ? _mm512_maskz_loadu_ps(m, bias + p * NR) : _mm512_setzero_ps();
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            if (r >= mr) break;
            float *y = Y + (size_t)r * ldy + p * NR;
            __m512 v = c[r][p];
            if (acc) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, y), v);
            if (bias) v = _mm512_add_ps(v, bb);
            _mm512_mask_storeu_ps(y, m, v);
        }
    }
}

#define KERN512(np)                                                                                \
    __attribute__((target("avx512f"))) static void kern_avx512_##np(                               \
        const float *const *a, const float *b, size_t pstride, int in, float *Y, int ldy, int mr,  \
        int nc, int acc, const float *bias)                                                        \
    {                                                                                              \
        kern512(a, b, pstride, in, Y, ldy, mr, nc, acc, bias, np);                                 \
    }
KERN512(1)
KERN512(2)
KERN512(3)
KERN512(4)
#undef KERN512
#endif

static int kernel_setting = GEN_GEMM_AUTO;

int gen_gemm_have_avx2(void)
{
#if GEN_GEMM_X86
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

int gen_gemm_have_avx512(void)
{
#if GEN_GEMM_X86
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

int gen_gemm_set_kernel(int kind)
{
    int old = kernel_setting;
    kernel_setting = kind;
    return old;
}

int gen_gemm_kernel(void)
{
    int k = kernel_setting;
    if ((k == GEN_GEMM_AUTO || k == GEN_GEMM_AVX512) && gen_gemm_have_avx512())
        return GEN_GEMM_AVX512;
    if (k != GEN_GEMM_C && gen_gemm_have_avx2()) return GEN_GEMM_AVX2;
    return GEN_GEMM_C;
}

/* The kernels for 1 .. GEMM_NPMAX panels at a time; returns how many there are (AVX-512: all,
 * the others one panel at a time). */
#define GEMM_NPMAX 4
static int pick_kernels(kern_fn k[GEMM_NPMAX])
{
    k[0] = kern_c;
#if GEN_GEMM_X86
    int kind = gen_gemm_kernel();
    if (kind == GEN_GEMM_AVX512) {
        k[0] = kern_avx512_1, k[1] = kern_avx512_2, k[2] = kern_avx512_3, k[3] = kern_avx512_4;
        return GEMM_NPMAX;
    }
    if (kind == GEN_GEMM_AVX2) k[0] = kern_avx2;
#endif
    return 1;
}

void gen_gemm(float *Y, int ldy, const float *X, int ldx, const float *pw, int rows, int in,
              int out, int acc, const float *bias)
{
    if (rows <= 0 || out <= 0) return;
    kern_fn kern[GEMM_NPMAX];
    const int npmax = pick_kernels(kern);
    const int panels = (out + NR - 1) / NR;
    const size_t pstride = (size_t)in * NR;
    for (int r0 = 0; r0 < rows; r0 += GEMM_MC) {
        int rend = rows - r0 < GEMM_MC ? rows : r0 + GEMM_MC;
        for (int q = 0; q < panels;) {
            int np = panels - q < npmax ? panels - q : npmax;
            int c0 = q * NR, nc = out - c0 < np * NR ? out - c0 : np * NR;
            const float *bp = pw + (size_t)q * pstride;
            const float *bq = bias ? bias + c0 : NULL;
            for (int i0 = r0; i0 < rend; i0 += MR) {
                int mr = rend - i0 < MR ? rend - i0 : MR;
                const float *a[MR];
                for (int r = 0; r < MR; r++)
                    a[r] = X + (size_t)(i0 + (r < mr ? r : mr - 1)) * (size_t)ldx;
                kern[np - 1](a, bp, pstride, in, Y + (size_t)i0 * ldy + c0, ldy, mr, nc, acc, bq);
            }
            q += np;
        }
    }
}
