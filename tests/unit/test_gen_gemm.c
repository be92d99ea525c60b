/* The forward GEMM of the denoiser (generator/gemm.c): results against a double-precision
 * reference over many shapes (rows 1..20 and around the 96-row chunk boundary, inputs and
 * outputs that are not multiples of the 6 x 16 block, leading dimensions wider than the
 * matrices, a column map, accumulate and bias flags), memory outside the output left alone, and the
 * determinism contract: a row's bits do not depend on how many rows the call has or which other
 * rows are there, and the AVX-512, AVX2 and portable kernels agree bit for bit (every shape; the
 * vector kernels where the CPU has them). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "generator/gemm.h"
#include "generator/generator.h"

char *progname = "test_gen_gemm"; /* libcodcif needs it */

#define SENTINEL 12345.0f

static int compare_kernels; /* check_case also runs the other kernels and compares bits */
static const int KINDS[3] = {GEN_GEMM_C, GEN_GEMM_AVX2, GEN_GEMM_AVX512};

static float *rnd(size_t n, uint64_t seed)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = gen_uniform(seed, i);
    return p;
}

/* One case: Y[rows x out] (ldy = out + 3) from X[rows x in] (ldx = in + 5) and W[out x ldw]
 * (ldw = in + 7, column map reversed when use_col), checked against double. Returns the worst
 * error relative to its bound. */
static double check_case(int rows, int in, int out, int acc, int bias, int use_col, uint64_t seed)
{
    int ldx = in + 5, ldy = out + 3, ldw = in + 7;
    float *X = rnd((size_t)rows * ldx, seed), *W = rnd((size_t)out * ldw, seed + 1);
    float *b = rnd((size_t)out, seed + 2), *Y0 = rnd((size_t)(rows + 1) * ldy, seed + 3);
    int *col = malloc((size_t)in * sizeof(int));
    for (int k = 0; k < in; k++) col[k] = use_col ? in - 1 - k : k;
    /* padding columns and the row after the last keep a sentinel */
    for (int r = 0; r <= rows; r++)
        for (int c = 0; c < ldy; c++)
            if (r == rows || c >= out) Y0[(size_t)r * ldy + c] = SENTINEL;
    float *Y = malloc((size_t)(rows + 1) * ldy * sizeof(float));
    memcpy(Y, Y0, (size_t)(rows + 1) * ldy * sizeof(float));
    float *pw = malloc(gen_wpack_floats(in, out) * sizeof(float));
    gen_wpack_pack(pw, W, ldw, in, out, use_col ? col : NULL);
    gen_gemm(Y, ldy, X, ldx, pw, rows, in, out, acc, bias ? b : NULL);
    for (int kk = 0; compare_kernels && kk < 3; kk++) { /* every kernel gives the same bits */
        float *Y2 = malloc((size_t)(rows + 1) * ldy * sizeof(float));
        memcpy(Y2, Y0, (size_t)(rows + 1) * ldy * sizeof(float));
        int old = gen_gemm_set_kernel(KINDS[kk]);
        gen_gemm(Y2, ldy, X, ldx, pw, rows, in, out, acc, bias ? b : NULL);
        gen_gemm_set_kernel(old);
        assert_memory_equal(Y, Y2, (size_t)(rows + 1) * ldy * sizeof(float));
        free(Y2);
    }
    double worst = 0;
    for (int r = 0; r <= rows; r++)
        for (int c = 0; c < ldy; c++) {
            float y = Y[(size_t)r * ldy + c];
            if (r == rows || c >= out) {
                assert_true(y == SENTINEL);
                continue;
            }
            double s = 0, sa = 0;
            for (int k = 0; k < in; k++) {
                double p = (double)X[(size_t)r * ldx + k] * W[(size_t)c * ldw + col[k]];
                s += p;
                sa += fabs(p);
            }
            double y0 = acc ? Y0[(size_t)r * ldy + c] : 0.0, bb = bias ? b[c] : 0.0;
            double ref = s + y0 + bb;
            /* FMA chain of `in` roundings, then two adds */
            double bound = (in + 2) * 6.0e-8 * (sa + fabs(y0) + fabs(bb)) + 1e-30;
            double rel = fabs(y - ref) / bound;
            if (rel > worst) worst = rel;
            if (rel > 1.0)
                print_message("rows %d in %d out %d acc %d bias %d: Y[%d][%d] = %.9g, ref %.9g\n",
                              rows, in, out, acc, bias, r, c, (double)y, ref);
            assert_true(rel <= 1.0);
        }
    free(X);
    free(W);
    free(b);
    free(Y0);
    free(Y);
    free(pw);
    free(col);
    return worst;
}

static void run_shapes(void)
{
    const int ins[] = {1, 2, 5, 6, 17, 96, 128, 131};
    const int outs[] = {1, 3, 9, 15, 16, 17, 33, 100, 128};
    const int rows_big[] = {47, 48, 49, 96, 101};
    double worst = 0;
    uint64_t seed = 100;
    int cases = 0;
    for (size_t a = 0; a < sizeof ins / sizeof *ins; a++)
        for (size_t o = 0; o < sizeof outs / sizeof *outs; o++) {
            for (int rows = 1; rows <= 20; rows++) {
                int flags = (rows + (int)a + (int)o) % 8; /* acc, bias, column map */
                double e = check_case(rows, ins[a], outs[o], flags & 1, (flags >> 1) & 1,
                                      (flags >> 2) & 1, seed += 4);
                if (e > worst) worst = e;
                cases++;
            }
            for (size_t r = 0; r < sizeof rows_big / sizeof *rows_big; r++) {
                double e = check_case(rows_big[r], ins[a], outs[o], (int)r & 1, 1, 0, seed += 4);
                if (e > worst) worst = e;
                cases++;
            }
        }
    print_message("%d shapes, worst error %.3g of the bound\n", cases, worst);
}

static void test_against_double(void **state)
{
    (void)state;
    int old = gen_gemm_set_kernel(GEN_GEMM_AUTO);
    compare_kernels = 1;
    run_shapes();
    compare_kernels = 0;
    gen_gemm_set_kernel(old);
}

static void test_portable_against_double(void **state)
{
    (void)state;
    int old = gen_gemm_set_kernel(GEN_GEMM_C);
    run_shapes();
    gen_gemm_set_kernel(old);
}

/* Row r of Y computed alone (M = 1), at every place of calls with other rows (M = 1 .. 60, the
 * other rows random), with accumulate and bias, by any kernel: always the same bits. */
static void test_row_independence(void **state)
{
    (void)state;
    const int in = 131, out = 100, MAXM = 60;
    float *W = rnd((size_t)out * in, 7), *b = rnd((size_t)out, 8);
    float *pw = malloc(gen_wpack_floats(in, out) * sizeof(float));
    gen_wpack_pack(pw, W, in, in, out, NULL);
    float *row = rnd((size_t)in, 9), *yrow0 = rnd((size_t)out, 10);
    float ref[100], refc[100];
    float *X = malloc((size_t)MAXM * in * sizeof(float));
    float *Y = malloc((size_t)MAXM * out * sizeof(float));
    int old = gen_gemm_set_kernel(GEN_GEMM_AUTO);
    for (int acc = 0; acc < 2; acc++) {
        memcpy(ref, yrow0, sizeof ref);
        gen_gemm(ref, out, row, in, pw, 1, in, out, acc, b);
        for (int kind = 0; kind < 3; kind++) { /* the kernels agree */
            gen_gemm_set_kernel(KINDS[kind]);
            memcpy(refc, yrow0, sizeof refc);
            gen_gemm(refc, out, row, in, pw, 1, in, out, acc, b);
            assert_memory_equal(ref, refc, sizeof ref);
        }
        int checked = 0;
        for (int kind = 0; kind < 3; kind++) {
            gen_gemm_set_kernel(KINDS[kind]);
            for (int M = 1; M <= MAXM; M += (kind ? 1 : 7))
                for (int pos = 0; pos < M; pos += (M > 20 ? 5 : 1)) {
                    uint64_t s = 1000 + (uint64_t)(M * 64 + pos + acc * 8192 + kind * 16384);
                    for (int r = 0; r < M; r++) {
                        if (r == pos)
                            memcpy(X + (size_t)r * in, row, (size_t)in * sizeof(float));
                        else
                            for (int k = 0; k < in; k++)
                                X[(size_t)r * in + k] = gen_uniform(s, (uint64_t)(r * in + k));
                        if (r == pos)
                            memcpy(Y + (size_t)r * out, yrow0, (size_t)out * sizeof(float));
                        else
                            for (int c = 0; c < out; c++)
                                Y[(size_t)r * out + c] = gen_uniform(s + 1, (uint64_t)(r * out + c));
                    }
                    gen_gemm(Y, out, X, in, pw, M, in, out, acc, b);
                    assert_memory_equal(Y + (size_t)pos * out, ref, sizeof ref);
                    checked++;
                }
        }
        print_message("acc %d: row bit-identical in %d placements (AVX2 kernel %s, AVX-512 %s)\n",
                      acc, checked, gen_gemm_have_avx2() ? "used" : "not available",
                      gen_gemm_have_avx512() ? "used" : "not available");
    }
    gen_gemm_set_kernel(old);
    free(W);
    free(b);
    free(pw);
    free(row);
    free(yrow0);
    free(X);
    free(Y);
}

/* gen_wpack_pack's layout: panel q, input k, lane c = W[16 q + c][col k], zero past out. */
static void test_pack_layout(void **state)
{
    (void)state;
    const int in = 5, out = 19, ldw = 8;
    float W[19 * 8];
    for (int i = 0; i < out * ldw; i++) W[i] = (float)i;
    int col[5] = {4, 0, 3, 1, 2};
    assert_int_equal(gen_wpack_floats(in, out), 2 * 5 * 16);
    float p[2 * 5 * 16];
    gen_wpack_pack(p, W, ldw, in, out, col);
    for (int q = 0; q < 2; q++)
        for (int k = 0; k < in; k++)
            for (int c = 0; c < 16; c++) {
                int o = 16 * q + c;
                float want = o < out ? W[o * ldw + col[k]] : 0.0f;
                assert_true(p[(q * in + k) * 16 + c] == want);
            }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_layout),
        cmocka_unit_test(test_against_double),
        cmocka_unit_test(test_portable_against_double),
        cmocka_unit_test(test_row_independence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
