/* Benchmark of the generator network and sampler (issue 5, "Speed" and "Memory").
 * Built and run by tests/bench/bench_gen.py (not by CMake). One thread (OPENBLAS_NUM_THREADS=1).
 *
 * usage: bench_gen all    prints key=value lines (sgemm peak, forward, training, sampling)
 *        bench_gen mem N  samples N structures (a few steps) and prints ru_maxrss
 *        bench_gen dump   prints the fixed batch (sizes, types, frac, lattice, t) for torch */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "generator/generator.h"

char *progname = "bench";

/* Wall time, or with DRUSE_BENCH_CLOCK=cpu this process's CPU time: on a loaded machine (more
 * runnable processes than cores) the wall clock also counts the time slices given to others. */
static double now(void)
{
    static int clk = -1;
    if (clk < 0) {
        const char *c = getenv("DRUSE_BENCH_CLOCK");
        clk = c && !strcmp(c, "cpu") ? (int)CLOCK_PROCESS_CPUTIME_ID : (int)CLOCK_MONOTONIC;
    }
    struct timespec ts;
    clock_gettime((clockid_t)clk, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* A fixed MP-20-like mix of atom counts (weights for N = 1..20, approximate). */
static const double HIST[21] = {0, 2, 3, 3, 8, 6, 7, 4, 9, 3, 7, 3, 8, 2, 5, 3, 6, 2, 4, 2, 4};

static uint64_t rs = 88172645463325252ull;
static double urand(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (rs >> 11) * (1.0 / 9007199254740992.0);
}
static int draw_n(void)
{
    double tot = 0, acc = 0;
    for (int k = 1; k <= 20; k++) tot += HIST[k];
    double u = urand() * tot;
    for (int k = 1; k <= 20; k++) {
        acc += HIST[k];
        if (u < acc) return k;
    }
    return 20;
}

typedef struct {
    int B, N;
    long E;
    int *off, *types, *ttypes;
    float *frac, *lat, *t, *tc, *tl;
} bbatch;

static void make_batch(bbatch *b, int B)
{
    b->B = B;
    b->off = malloc((B + 1) * sizeof(int));
    b->off[0] = 0;
    b->E = 0;
    for (int i = 0; i < B; i++) {
        int n = draw_n();
        b->off[i + 1] = b->off[i] + n;
        b->E += (long)n * n;
    }
    b->N = b->off[B];
    b->types = malloc(b->N * sizeof(int));
    b->ttypes = malloc(b->N * sizeof(int));
    b->frac = malloc(3 * b->N * sizeof(float));
    b->tc = malloc(3 * b->N * sizeof(float));
    b->lat = malloc(9 * B * sizeof(float));
    b->tl = malloc(9 * B * sizeof(float));
    b->t = malloc(B * sizeof(float));
    for (int i = 0; i < b->N; i++) {
        b->ttypes[i] = 1 + (int)(urand() * 94);
        b->types[i] = urand() < 0.3 ? 0 : b->ttypes[i];
        for (int c = 0; c < 3; c++) {
            b->frac[3 * i + c] = (float)urand();
            b->tc[3 * i + c] = (float)(urand() - 0.5);
        }
    }
    for (int i = 0; i < B; i++) {
        double a = cbrt(20.0 * (b->off[i + 1] - b->off[i]));
        for (int k = 0; k < 9; k++) {
            b->lat[9 * i + k] = (float)((k % 4 == 0 ? a : 0.0) + 0.3 * (urand() - 0.5));
            b->tl[9 * i + k] = (float)(urand() - 0.5);
        }
        b->t[i] = (float)urand();
    }
}

static gen_batch view(const bbatch *b, int first, int count, int *offbuf)
{
    gen_batch g;
    int a0 = b->off[first];
    for (int i = 0; i <= count; i++) offbuf[i] = b->off[first + i] - a0;
    g.n_crystals = count;
    g.n_atoms = offbuf[count];
    g.offsets = offbuf;
    g.types = b->types + a0;
    g.frac = b->frac + 3 * a0;
    g.lattice = b->lat + 9 * first;
    g.t = b->t + first;
    return g;
}

/* GEMM FLOPs of one forward (2 m n k per GEMM; see BENCHMARKS.md for the formula). */
static double fwd_flops(const gen_hparams *hp, int B, int N, long E)
{
    double d = hp->hidden, K = hp->n_freq, T = hp->time_dim, V = hp->n_types - 1, L = hp->layers;
    return 2.0 * (B * (T * d + d * d + 9 * d + L * 6 * d) +
                  L * ((double)E * (6 * K + d) * d + N * 5.0 * d * d) + N * d * (3 + V));
}
/* Backward GEMM FLOPs: weight and input gradients of every GEMM except phi's input gradient. */
static double bwd_flops(const gen_hparams *hp, int B, int N, long E)
{
    double d = hp->hidden, K = hp->n_freq;
    double edge_fwd = 2.0 * hp->layers * (double)E * (6 * K + d) * d;
    double rest = fwd_flops(hp, B, N, E) - edge_fwd;
    return 2.0 * edge_fwd - 2.0 * hp->layers * (double)E * 6 * K * d + 2.0 * rest;
}

static void die(int st, xtal_err *e)
{
    if (st) {
        fprintf(stderr, "bench: error %d: %s\n", st, e->msg);
        exit(1);
    }
}

static double sgemm_peak(int n, int reps)
{
    float *A = malloc((size_t)n * n * sizeof(float)), *Bm = malloc((size_t)n * n * sizeof(float)),
          *C = malloc((size_t)n * n * sizeof(float));
    for (size_t i = 0; i < (size_t)n * n; i++) {
        A[i] = (float)urand();
        Bm[i] = (float)urand();
        C[i] = 0;
    }
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, Bm, n, 0.0f, C,
                    n);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    free(A);
    free(Bm);
    free(C);
    return 2.0 * n * n * (double)n / best / 1e9;
}

static int sample_run(const gen_model *m, gen_workspace *w, int count, int steps, int stride,
                      double *secs)
{
    gen_sampler_opts o = gen_sampler_opts_default();
    o.steps = steps;
    o.stride = stride;
    o.natoms_hist = HIST;
    o.hist_len = 21;
    xtal_crystal *out = calloc(count, sizeof(xtal_crystal));
    int *status = calloc(count, sizeof(int));
    xtal_err e;
    memset(&e, 0, sizeof e);
    double t0 = now();
    die(gen_sample(m, w, &o, 7, 0, 0, count, out, status, NULL, 1, NULL, &e), &e);
    *secs = now() - t0;
    int nat = 0;
    for (int i = 0; i < count; i++) {
        nat += out[i].natoms;
        xtal_crystal_free(&out[i]);
    }
    free(out);
    free(status);
    return nat;
}

/* Counts network evaluations of the sampler with a stand-in denoiser (zeros). */
static long n_evals;
static int zero_eval(void *ctx, const gen_batch *s, float *coord, float *lattice, float *logits,
                     xtal_err *err)
{
    (void)ctx;
    (void)err;
    n_evals += s->n_crystals;
    memset(coord, 0, 3 * sizeof(float) * s->n_atoms);
    for (int b = 0; b < s->n_crystals; b++)
        for (int k = 0; k < 9; k++) lattice[9 * b + k] = s->lattice[9 * b + k];
    memset(logits, 0, (GEN_DEFAULT_TYPES - 1) * sizeof(float) * s->n_atoms);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "all";
    gen_hparams hp = gen_hparams_default();
    gen_model m;
    xtal_err e;
    memset(&e, 0, sizeof e);
    die(gen_model_create(&m, &hp, 1234, &e), &e);
    gen_workspace *w = gen_workspace_new();
    int B = argc > 2 ? atoi(argv[2]) : 256;

    if (!strcmp(mode, "mem")) {
        double s;
        int nat = sample_run(&m, w, B, 1000, 250, &s);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("mem_count=%d\nmem_atoms=%d\nmem_seconds=%.3f\nmaxrss_kb=%ld\n", B, nat, s,
               ru.ru_maxrss);
        return 0;
    }
    bbatch bb;
    make_batch(&bb, B);
    if (!strcmp(mode, "dump")) {
        printf("%d %d\n", bb.B, bb.N);
        for (int i = 0; i <= bb.B; i++) printf("%d ", bb.off[i]);
        printf("\n");
        for (int i = 0; i < bb.N; i++) printf("%d ", bb.types[i]);
        printf("\n");
        for (int i = 0; i < 3 * bb.N; i++) printf("%.9g ", bb.frac[i]);
        printf("\n");
        for (int i = 0; i < 9 * bb.B; i++) printf("%.9g ", bb.lat[i]);
        printf("\n");
        for (int i = 0; i < bb.B; i++) printf("%.9g ", bb.t[i]);
        printf("\n");
        for (int i = 0; i < bb.N; i++) printf("%d ", bb.ttypes[i]);
        printf("\n");
        return 0;
    }
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    printf("sgemm_gflops=%.2f\n", sgemm_peak(1024, 7));
    printf("B=%d\nN=%d\nE=%ld\n", bb.B, bb.N, bb.E);
    double ff = fwd_flops(&hp, bb.B, bb.N, bb.E);
    printf("fwd_gflop=%.4f\n", ff / 1e9);
    int *offb = malloc((B + 1) * sizeof(int));
    gen_outputs out;
    /* forward, packed. The workspace is bound to the model (weights packed once), as gen_sample
     * binds it for a whole sampling run */
    die(gen_workspace_bind(w, &m, &e), &e);
    gen_batch g = view(&bb, 0, B, offb);
    die(gen_forward(&m, w, &g, 0, &out, &e), &e); /* warm-up, grows the workspace */
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        die(gen_forward(&m, w, &g, 0, &out, &e), &e);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("fwd_packed_s=%.6f\n", best);
    /* forward, one crystal per call (as the sampler does) */
    best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (int i = 0; i < B; i++) {
            gen_batch gi = view(&bb, i, 1, offb);
            die(gen_forward(&m, w, &gi, 0, &out, &e), &e);
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("fwd_percrystal_s=%.6f\n", best);
    gen_workspace_unbind(w);
    /* training step: forward (kept activations) + loss + backward, packed */
    g = view(&bb, 0, B, offb);
    gen_targets tg = {bb.tc, bb.tl, bb.ttypes, 1.0f, 1.0f, 1.0f};
    double loss;
    best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = now();
        gen_zero_grad(&m);
        die(gen_forward(&m, w, &g, 1, &out, &e), &e);
        die(gen_loss(&m, w, &g, &tg, &loss, &e), &e);
        die(gen_backward(&m, w, &g, &e), &e);
        double dt = now() - t0;
        if (r > 0 && dt < best) best = dt;
    }
    printf("train_s=%.6f\ntrain_gflop=%.4f\nloss=%.6f\n", best,
           (ff + bwd_flops(&hp, bb.B, bb.N, bb.E)) / 1e9, loss);
    /* sampling: evaluations per reverse step, then time a few steps */
    {
        int cnt = argc > 4 ? atoi(argv[4]) : 32, steps = argc > 5 ? atoi(argv[5]) : 20;
        gen_sampler_opts o = gen_sampler_opts_default();
        o.steps = 1000;
        o.stride = 1000 / steps;
        o.natoms_hist = HIST;
        o.hist_len = 21;
        xtal_crystal *xo = calloc(cnt, sizeof(xtal_crystal));
        int *st = calloc(cnt, sizeof(int));
        n_evals = 0;
        die(gen_sample_eval(zero_eval, NULL, GEN_DEFAULT_TYPES, &o, 7, 0, 0, cnt, xo, st, NULL, 1,
                            NULL, &e),
            &e);
        for (int i = 0; i < cnt; i++) xtal_crystal_free(&xo[i]);
        printf("sample_count=%d\nsample_steps=%d\nsample_evals=%ld\n", cnt, 1000 / o.stride,
               n_evals);
        double s;
        int nat = sample_run(&m, w, cnt, 1000, o.stride, &s);
        printf("sample_atoms=%d\nsample_s=%.4f\n", nat, s);
        free(xo);
        free(st);
    }
    gen_workspace_free(w);
    gen_model_free(&m);
    return 0;
}
