/* generator/gemm.h: the forward GEMM of the denoiser (internal to generator/, prefix gen_).
 *
 *   Y[rows x out] = X[rows x in] W[out x in]^T  (+ Y when acc)  (+ bias when bias != NULL)
 *
 * Why not OpenBLAS here: the sampler runs one forward per crystal (gen_sampler_opts.packed = 0),
 * GEMMs of n (n+1)/2, n^2 or n rows for an n-atom crystal, and sgemm repacks the whole weight
 * matrix on every call (29% of such a forward's profile, more than its kernel's useful work).
 * Here the weight matrix is packed once (gen_wpack_pack: column panels of GEN_GEMM_NR outputs,
 * zero-padded) and the activations are read in place (row-major, any leading dimension).
 *
 * Determinism: every output element is s = one FMA chain over k = 0 .. in-1 in increasing
 * order starting from 0 (fmaf semantics: one rounding per step), then y = (acc ? y_old + s : s),
 * then y = y + bias[o]. A row's result therefore depends only on that row of X and on W: never
 * on how many rows the call has, which other rows are there, or where the row falls in a
 * register block (a short row block reuses its last row's pointer for the missing rows and
 * discards them). The AVX-512 micro-kernel (6 rows x 64 columns, 24 zmm accumulators), the
 * AVX2/FMA one (6 x 16, 12 ymm accumulators) and the portable C kernel (fmaf) give the same
 * bits; the widest the CPU has is chosen at run time (__builtin_cpu_supports).
 */
#ifndef DRUSE_GENERATOR_GEMM_H
#define DRUSE_GENERATOR_GEMM_H

#include <stddef.h>

#define GEN_GEMM_MR 6  /* rows per register block */
#define GEN_GEMM_NR 16 /* output columns per packed panel */

/* Floats of a packed [out x in] weight: ceil(out / NR) panels of in x NR. */
size_t gen_wpack_floats(int in, int out);
/* Packs W[out x in] into p (gen_wpack_floats(in, out) floats): row o of W starts at W + o ldw,
 * its k-th input is column col[k] (col NULL: column k). Panel q holds, for each k, the NR values
 * W[q NR + c][col k], c = 0 .. NR-1, zero past out. */
void gen_wpack_pack(float *p, const float *W, int ldw, int in, int out, const int *col);
/* Y (ldy) = X (ldx) W^T (+ Y if acc) (+ bias[out] if bias); pw from gen_wpack_pack. */
void gen_gemm(float *Y, int ldy, const float *X, int ldx, const float *pw, int rows, int in,
              int out, int acc, const float *bias);

/* Which micro-kernel gen_gemm uses: GEN_GEMM_AUTO (AVX-512, else AVX2, where the CPU has it),
 * GEN_GEMM_C (the portable one), GEN_GEMM_AVX2 (AVX2 where available, never AVX-512) or
 * GEN_GEMM_AVX512 (where available, else as AUTO). For tests; not thread-safe. Returns the
 * previous setting. net.c's SiLU rows follow the same setting. */
enum { GEN_GEMM_AUTO = 0, GEN_GEMM_C = 1, GEN_GEMM_AVX2 = 2, GEN_GEMM_AVX512 = 3 };
int gen_gemm_set_kernel(int kind);
/* 1 when the AVX2/FMA kernel can run on this CPU. */
int gen_gemm_have_avx2(void);
/* 1 when the AVX-512 kernel can run on this CPU. */
int gen_gemm_have_avx512(void);
/* The kernel the current setting gives on this CPU: GEN_GEMM_C, GEN_GEMM_AVX2 or GEN_GEMM_AVX512.
 */
int gen_gemm_kernel(void);

#endif
