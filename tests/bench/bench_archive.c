/* Archive append throughput: N crystals (MP-20 test structures, repeated with distinct sample
 * ids) committed as one epoch through pipe_archive_commit, under MPI (each rank its share).
 * Prints key=value lines for tests/bench/bench_screen.py.
 *   mpirun -np R bench_archive TEST.csv.gz N DIR */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crystal/crystal.h"
#include "pipeline/archive.h"

char *progname = "bench_archive";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc != 4) return 2;
    long n = atol(argv[2]);
    xtal_dataset ds;
    xtal_err err = {{0}};
    if (xtal_dataset_load(argv[1], NULL, &ds, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    pipe_records r = {0};
    int64_t counts[PIPE_NCOUNTS] = {0};
    for (long i = rank; i < n; i += size) {
        const xtal_crystal *c = &ds.crystals.items[i % ds.crystals.n];
        if (pipe_records_add(&r, c, c, &err)) return 1;
        r.sample_id[r.n - 1] = (uint64_t)i;
        r.batch_id[r.n - 1] = (uint32_t)(i / 64);
        xtal_formula(c, 1, r.formula[r.n - 1], PIPE_FORMULA_LEN);
    }
    for (long b = rank; b < (n + 63) / 64; b += size)
        pipe_records_add_batch(&r, (uint32_t)b, counts, &err);
    char path[4096];
    snprintf(path, sizeof path, "%s/bench.h5", argv[3]);
    pipe_campaign_id id = {.batches = (n + 63) / 64, .batch_size = 64};
    snprintf(id.name, sizeof id.name, "bench");
    pipe_archive *a;
    if (pipe_archive_open(path, &id, &a, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now_s();
    int rc = pipe_archive_commit(a, &r, &err);
    double t1 = now_s();
    if (rc) fprintf(stderr, "%s\n", err.msg);
    /* the campaign-wide dedup inside the commit, timed alone on the same records (rank 0) */
    double dedup_s = 0;
    if (rank == 0) {
        pipe_records all;
        pipe_archive_read(path, &all, NULL, &err);
        int64_t *dup = malloc((size_t)all.n * sizeof *dup);
        double t2 = now_s();
        pipe_dedup_records(&all, dup, &err);
        dedup_s = now_s() - t2;
        free(dup);
        pipe_records_free(&all);
        printf("crystals=%ld\nranks=%d\ncommit_s=%.4f\ncrystals_per_s=%.0f\ndedup_s=%.4f\n"
               "append_crystals_per_s=%.0f\n",
               n, size, t1 - t0, (double)n / (t1 - t0), dedup_s, (double)n / (t1 - t0 - dedup_s));
    }
    pipe_archive_close(a);
    pipe_records_free(&r);
    xtal_dataset_free(&ds);
    MPI_Finalize();
    return rc ? 1 : 0;
}
