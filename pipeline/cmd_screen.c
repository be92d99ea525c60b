/* `druse screen CONFIG`: the campaign (docs/archive.md, docs/configs.md).
 *
 * Rank 0 plans numbered batches (those of this shard that the archive does not hold yet) and
 * hands them to workers on request, sleeping between MPI_Iprobe polls so that it costs no core.
 * A worker samples a batch one crystal at a time (so that every sample follows from (seed,
 * batch, index) alone), filters, relaxes and buffers the survivors. At a commit epoch (every
 * campaign.commit_interval_s, at the end, or on a signal) rank 0 answers every request with
 * COMMIT; when all workers are parked, every rank appends its buffer to the archive in one
 * collective segment write. With one rank, rank 0 does the work itself. */
#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "filters/filters.h"
#include "generator/generator.h"
#include "pipeline/archive.h"
#include "pipeline/pipeline.h"
#include "relax/relax.h"

static const char screen_help[] =
    "usage: druse screen CONFIG.yaml [--output ARCHIVE] [--shard I/N]\n"
    "       mpirun -np N druse screen CONFIG.yaml ...\n"
    "\n"
    "Runs a screening campaign: samples campaign.batches batches of campaign.batch_size\n"
    "structures from the model, filters them (distance, charge neutrality, symmetry), relaxes\n"
    "the survivors and appends them to the HDF5 archive (docs/archive.md). Sample i of batch b\n"
    "follows from (campaign.seed, b, i) alone: the records do not depend on the number of ranks,\n"
    "the scheduling or interruptions. Running the same command again resumes: committed\n"
    "batches are skipped, nothing is duplicated; an archive of another config or model is\n"
    "refused.\n"
    "\n"
    "  --output ARCHIVE  the archive (default campaign.output)\n"
    "  --shard I/N       run only batches b with b % N == I (a job-array task; overrides\n"
    "                    campaign.shard); join the shards with druse merge\n"
    "\n"
    "SIGTERM, SIGINT and SIGUSR1 commit what is done and exit with status 75 (requeue and rerun\n"
    "to resume). Under mpirun, signal the ranks, or send SIGUSR1 to mpirun (it forwards it);\n"
    "SIGTERM to mpirun also makes the ranks commit, but mpirun then exits 1 (jobs/ forward\n"
    "the batch shell's SIGTERM as SIGUSR1).\n"
    "Progress on stderr: a live line on a terminal, a line per commit and every 30 s in a log;\n"
    "the funnel at the end.\n"
    "Exit status: 0 complete, 1 failure (the message names the file), 2 usage, 75 interrupted.\n";

#define EXIT_REQUEUE 75

enum { TAG_REQ = 11, TAG_CMD = 12 };
enum { REQ_READY = 0, REQ_DONE = 1, REQ_ABANDONED = 2 };
enum { CMD_BATCH = 0, CMD_COMMIT = 1 };
#define REQ_LEN (2 + PIPE_NCOUNTS)

static volatile sig_atomic_t stop_signal = 0;

static void on_signal(int sig)
{
    stop_signal = sig;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void nap(void)
{
    struct timespec ts = {0, 2000000}; /* 2 ms: latency is irrelevant next to a batch */
    nanosleep(&ts, NULL);
}

/* Waits for a request without spinning (Open MPI's blocking calls busy-poll). */
static void sleepy_wait(MPI_Request *req)
{
    int done = 0;
    for (;;) {
        MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (done) return;
        nap();
    }
}

static void sleepy_barrier(void)
{
    MPI_Request req;
    MPI_Ibarrier(MPI_COMM_WORLD, &req);
    sleepy_wait(&req);
}

/* ------------------------------------------------------------------ the run */

typedef struct {
    pipe_config *cfg;
    const char *output;
    int shard_index, shard_count;
    int rank, size;
    gen_model model;
    int have_model;
    gen_sampler_opts sopt;
    int comp[256];
    flt_options fopt;
    rlx_potential *pot;
    rlx_options ropt;
    flt_index *novelty; /* NULL: no reference */
    gen_workspace *gws;
    rlx_workspace *rws;
    pipe_campaign_id id;
    pipe_archive *archive;
    pipe_records buf; /* this rank's records since the last commit */
    long *plan;       /* rank 0: batches to run */
    long n_plan, n_shard;
    /* rank 0: progress */
    int64_t counts[PIPE_NCOUNTS]; /* campaign totals including earlier runs */
    long batches_done;            /* of this shard, including earlier runs */
    long samples_this_run;
    double t0, last_print, last_commit;
    int tty;
    /* seconds spent by this rank, for the time summary (docs/archive.md, "Overhead") */
    double t_sample, t_filter, t_relax, t_commit;
    long n_commits;
} screen_run;

static int identity(screen_run *s, xtal_err *err)
{
    pipe_config *c = s->cfg;
    pipe_shard_config shard = c->campaign.shard;
    char *output = c->campaign.output;
    c->campaign.shard = (pipe_shard_config){0, 1};
    c->campaign.output = (char *)"";
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (mem) {
        pipe_config_print(mem, c);
        fclose(mem);
    }
    c->campaign.shard = shard;
    c->campaign.output = output;
    if (!text) return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
    gen_sha256_hex(text, len, s->id.identity_sha256);
    free(text);
    snprintf(s->id.name, sizeof s->id.name, "%s", c->campaign.name);
    gen_params_sha256(&s->model, s->id.model_sha256);
    s->id.batches = c->campaign.batches;
    s->id.batch_size = c->campaign.batch_size;
    s->id.config_text = c->text;
    s->id.model_path = c->campaign.model;
    return XTAL_OK;
}

/* The training set named in the model file (attribute train_dataset), or NULL. */
static char *model_train_dataset(const char *model_path)
{
    xtal_h5_quiet q = xtal_h5_quiet_begin();
    hid_t f = H5Fopen(model_path, H5F_ACC_RDONLY, H5P_DEFAULT);
    char buf[4096] = "";
    if (f >= 0) {
        xtal_h5_attr_get_string(f, "train_dataset", buf, sizeof buf);
        H5Fclose(f);
    }
    xtal_h5_quiet_end(q);
    return buf[0] && access(buf, R_OK) == 0 ? strdup(buf) : NULL;
}

/* Novelty reference: filters.novelty_reference (a dataset, structure files or a saved index),
 * else the model's training set when it can be found, else none (novel = -1). */
static int load_novelty(screen_run *s, xtal_err *err)
{
    const char *ref = s->cfg->filters.novelty_reference;
    char *found = ref ? NULL : model_train_dataset(s->cfg->campaign.model);
    if (!ref) ref = found;
    if (!ref) return XTAL_OK;
    size_t n = strlen(ref);
    int rc;
    if (n > 3 && !strcmp(ref + n - 3, ".h5")) {
        rc = flt_index_load(ref, &s->novelty, err);
    } else {
        flt_match_options mo = flt_match_options_default();
        xtal_list list = {0};
        rc = xtal_read_any(ref, &list, err);
        if (!rc) rc = flt_index_new(&mo, &s->novelty, err);
        for (int i = 0; !rc && i < list.n; i++) {
            long entry;
            xtal_err e2;
            flt_index_insert(s->novelty, &list.items[i], &entry, &e2); /* unreducible: left out */
        }
        xtal_list_free(&list);
    }
    free(found);
    return rc;
}

static int setup_sampler(screen_run *s, xtal_err *err)
{
    const pipe_sampling_config *sc = &s->cfg->sampling;
    gen_sampler_opts *o = &s->sopt;
    *o = gen_sampler_opts_default();
    o->steps = sc->steps;
    o->type_temperature = sc->type_temperature;
    o->noise_scale = sc->noise_scale;
    o->natoms = sc->natoms;
    o->natoms_hist = s->model.natoms_hist;
    o->hist_len = s->model.natoms_hist_len;
    int n = 0;
    for (int k = 0; k < sc->n_species; k++)
        for (int j = 0; j < sc->species_count[k] && n < 256; j++) s->comp[n++] = sc->species_Z[k];
    if (n) {
        o->composition = s->comp;
        o->comp_len = n;
    }
    if (sc->n_elements) {
        o->elements = sc->element_Z;
        o->n_elements = (int)sc->n_elements;
    }
    if (!o->natoms && !o->natoms_hist)
        return xtal_err_set(err, XTAL_EINVALID,
                            "%s: the model has no atom-count histogram: set sampling.natoms",
                            s->cfg->campaign.model);
    return XTAL_OK;
}

static int setup_filters_relax(screen_run *s, xtal_err *err)
{
    const pipe_filters_config *fc = &s->cfg->filters;
    flt_options *f = &s->fopt;
    *f = flt_options_default();
    f->rule = fc->distance_rule == PIPE_DISTANCE_BENCHMARK ? FLT_RULE_BENCHMARK : FLT_RULE_COVALENT;
    f->covalent_scale = fc->distance_scale;
    f->benchmark_min_distance = fc->min_distance_A;
    f->check_charge = fc->charge_neutrality;
    f->symprec = fc->symprec_A;
    f->angle_tolerance = fc->angle_tolerance_deg;
    f->stop_at_first = 1;
    const pipe_relax_config *rc = &s->cfg->relax;
    rlx_options_default(&s->ropt);
    s->ropt.fmax_eV_A = rc->fmax_eV_A;
    s->ropt.max_steps = rc->max_steps;
    s->ropt.max_stress_eV_A3 = rc->max_stress_GPa / RLX_EV_A3_TO_GPA;
    if (rc->fixed_cell) s->ropt.cell_filter = RLX_CELL_FIXED;
    const char *pot = rc->potential == PIPE_POTENTIAL_UFF_LJ ? "uff-lj" : "mp20";
    if (!(s->gws = gen_workspace_new()) || !(s->rws = rlx_workspace_new()))
        return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
    return rlx_potential_parse(pot, &s->pot, err);
}

/* ------------------------------------------------------------------ one sample */

static int count_of_reason(flt_reason r)
{
    switch (r) {
    case FLT_REJECT_TOO_CLOSE:
        return PIPE_COUNT_TOO_CLOSE;
    case FLT_REJECT_NOT_NEUTRAL:
    case FLT_REJECT_TOO_MANY_COMBINATIONS:
        return PIPE_COUNT_NOT_NEUTRAL;
    case FLT_REJECT_SYMMETRY:
        return PIPE_COUNT_SYMMETRY;
    default:
        return PIPE_COUNT_INVALID;
    }
}

/* Relaxes c into r and checks the relaxed cell again (distance, symmetry). Returns 1 when it
 * survives, with its space group in *sg. */
static int relax_ok(screen_run *s, xtal_crystal *c, rlx_outcome *ro, int *sg, xtal_err *err,
                    int *rc)
{
    memset(ro, 0, sizeof *ro);
    if (s->cfg->relax.enabled) {
        if ((*rc = rlx_relax(s->pot, &s->ropt, c, ro, s->rws, err)) < 0) return 0;
        if (ro->stop != RLX_STOP_CONVERGED && ro->stop != RLX_STOP_MAX_STEPS) return 0;
    }
    flt_options again = s->fopt;
    again.check_charge = 0; /* the composition did not change */
    flt_result fr;
    *rc = flt_check(c, &again, &fr, err);
    int ok = *rc == XTAL_OK && fr.pass;
    *sg = ok ? fr.symmetry.spacegroup : 0;
    flt_result_free(&fr);
    return ok;
}

/* Fills the per-record fields of the last record of s->buf. */
static int describe(screen_run *s, const xtal_crystal *c, const rlx_outcome *ro, int sg0, int sg,
                    uint32_t batch, uint32_t idx, xtal_err *err)
{
    pipe_records *b = &s->buf;
    long i = b->n - 1;
    b->sample_id[i] = (uint64_t)batch * (uint64_t)s->cfg->campaign.batch_size + idx;
    b->batch_id[i] = batch;
    b->spacegroup_unrelaxed[i] = sg0;
    b->spacegroup[i] = sg;
    b->energy_per_atom[i] = s->cfg->relax.enabled ? ro->energy_per_atom_eV : NAN;
    b->max_force[i] = s->cfg->relax.enabled ? ro->max_force_eV_A : NAN;
    b->relax_steps[i] = ro->steps;
    b->converged[i] = (int8_t)ro->converged;
    b->min_distance[i] = xtal_min_distance(c, 1);
    xtal_formula(c, 1, b->formula[i], PIPE_FORMULA_LEN);
    b->novel[i] = -1;
    flt_match_options mo = flt_match_options_default();
    xtal_crystal red = {0};
    int rc = flt_match_reduce(c, &mo, &red, err);
    if (rc == XTAL_OK) {
        flt_fingerprint(&red, b->fingerprint[i]);
        long entry = -1;
        if (s->novelty && (rc = flt_index_find_reduced(s->novelty, &red, &entry, err)) == XTAL_OK)
            b->novel[i] = entry < 0;
    }
    xtal_crystal_free(&red);
    return rc == XTAL_ENOMEM ? rc : XTAL_OK; /* an unreducible cell keeps novel = -1 */
}

static int process_sample(screen_run *s, uint32_t batch, uint32_t idx, int64_t *counts,
                          xtal_err *err)
{
    xtal_crystal c = {0}, raw = {0};
    int st = 0, sg = 0, rc;
    counts[PIPE_COUNT_SAMPLED]++;
    double t = now_s();
    rc = gen_sample(&s->model, s->gws, &s->sopt, s->cfg->campaign.seed, batch, idx, 1, &c, &st,
                    NULL, 1, NULL, err);
    s->t_sample += now_s() - t;
    if (rc < 0) return rc;
    t = now_s();
    flt_result fr;
    memset(&fr, 0, sizeof fr);
    if (st != GEN_SAMPLE_OK) {
        counts[PIPE_COUNT_INVALID]++;
    } else if ((rc = flt_check(&c, &s->fopt, &fr, err)) < 0) {
    } else if (!fr.pass) {
        counts[count_of_reason(fr.reason)]++;
    } else if ((rc = xtal_crystal_copy(&raw, &c, err)) == XTAL_OK) {
        rlx_outcome ro;
        int sg0 = fr.symmetry.spacegroup;
        double t1 = now_s();
        s->t_filter += t1 - t;
        int ok = relax_ok(s, &c, &ro, &sg, err, &rc);
        t = now_s();
        s->t_relax += t - t1;
        if (!ok) {
            if (rc >= 0) counts[PIPE_COUNT_RELAX_FAILED]++;
        } else if ((rc = pipe_records_add(&s->buf, &c, &raw, err)) == XTAL_OK &&
                   (rc = describe(s, &c, &ro, sg0, sg, batch, idx, err)) == XTAL_OK) {
            counts[PIPE_COUNT_PASSED]++;
        }
    }
    s->t_filter += now_s() - t; /* the first filter pass, or the records after relaxing */
    flt_result_free(&fr);
    xtal_crystal_free(&c);
    xtal_crystal_free(&raw);
    return rc < 0 ? rc : XTAL_OK;
}

/* Runs batch b into s->buf. Returns 1 when a signal cut it short (its records are dropped: the
 * batch is redone on resume), 0 when done, < 0 on error. */
static int run_batch(screen_run *s, long b, int64_t counts[PIPE_NCOUNTS], xtal_err *err)
{
    long n0 = s->buf.n, a0 = s->buf.n_atoms;
    memset(counts, 0, PIPE_NCOUNTS * sizeof *counts);
    for (int i = 0; i < s->cfg->campaign.batch_size; i++) {
        if (stop_signal) {
            s->buf.n = n0;
            s->buf.n_atoms = a0;
            return 1;
        }
        int rc = process_sample(s, (uint32_t)b, (uint32_t)i, counts, err);
        if (rc < 0) return rc;
    }
    return pipe_records_add_batch(&s->buf, (uint32_t)b, counts, err);
}

/* ------------------------------------------------------------------ progress */

static void fmt_eta(double sec, char *buf, size_t n)
{
    if (!isfinite(sec) || sec < 0)
        snprintf(buf, n, "-");
    else if (sec < 3600)
        snprintf(buf, n, "%dm%02ds", (int)sec / 60, (int)sec % 60);
    else
        snprintf(buf, n, "%dh%02dm", (int)(sec / 3600), (int)fmod(sec / 60, 60));
}

static void progress(screen_run *s, int force)
{
    double t = now_s();
    if (!force && t - s->last_print < (s->tty ? 1.0 : 30.0)) return;
    s->last_print = t;
    double el = t - s->t0, rate = el > 0 ? (double)s->samples_this_run / el : 0;
    long left = s->n_shard - s->batches_done;
    char eta[32];
    fmt_eta(rate > 0 ? (double)left * s->cfg->campaign.batch_size / rate : NAN, eta, sizeof eta);
    const int64_t *c = s->counts;
    fprintf(stderr,
            "%sscreen: %ld/%ld batches  %.2f samples/s  sampled %lld  too_close %lld  "
            "not_neutral %lld  symmetry %lld  relax_failed %lld  passed %lld  ETA %s%s",
            s->tty ? "\r" : "", s->batches_done, s->n_shard, rate, (long long)c[PIPE_COUNT_SAMPLED],
            (long long)c[PIPE_COUNT_TOO_CLOSE], (long long)c[PIPE_COUNT_NOT_NEUTRAL],
            (long long)c[PIPE_COUNT_SYMMETRY], (long long)c[PIPE_COUNT_RELAX_FAILED],
            (long long)c[PIPE_COUNT_PASSED], eta, s->tty ? "  " : "\n");
    fflush(stderr);
}

static void note_batch(screen_run *s, const int64_t *counts)
{
    for (int k = 0; k < PIPE_NCOUNTS; k++) s->counts[k] += counts[k];
    s->samples_this_run += counts[PIPE_COUNT_SAMPLED];
    s->batches_done++;
}

static void summary(screen_run *s)
{
    int64_t c[PIPE_NCOUNTS];
    long dup = 0;
    pipe_archive_counts(s->archive, c, &dup);
    if (s->tty) fputc('\n', stderr);
    double n = c[PIPE_COUNT_SAMPLED] > 0 ? (double)c[PIPE_COUNT_SAMPLED] : 1;
    fprintf(stderr, "screen: funnel of %s (%s), %ld of %ld batches of this shard done\n", s->output,
            s->cfg->campaign.name, s->batches_done, s->n_shard);
    for (int k = 0; k < PIPE_NCOUNTS; k++)
        fprintf(stderr, "  %-16s %10lld  %6.2f %%\n", pipe_count_name(k), (long long)c[k],
                100.0 * (double)c[k] / n);
    fprintf(stderr, "  %-16s %10ld  %6.2f %%\n", "duplicate", dup, 100.0 * (double)dup / n);
    fprintf(stderr, "  %-16s %10lld  %6.2f %%\n", "archived",
            (long long)(c[PIPE_COUNT_PASSED] - dup),
            100.0 * (double)(c[PIPE_COUNT_PASSED] - dup) / n);
}

/* Collective: where the workers' time went. compute = sampling + filters + relax (the work
 * itself); everything else of workers x wall is dispatch, waiting, records and commits. */
static void time_summary(screen_run *s)
{
    double mine[4] = {s->t_sample, s->t_filter, s->t_relax, s->t_commit}, sum[4] = {0};
    MPI_Reduce(mine, sum, 4, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (s->rank != 0) return;
    double wall = now_s() - s->t0, workers = s->size > 1 ? s->size - 1 : 1;
    double compute = sum[0] + sum[1] + sum[2], avail = wall * workers;
    fprintf(stderr,
            "screen: time: wall %.2f s x %.0f workers; sampling %.2f s, filters %.2f s, relax "
            "%.2f s; commits %.3f s (%ld epochs, per rank); overhead %.2f %% of worker time\n",
            wall, workers, sum[0], sum[1], sum[2], sum[3] / s->size, s->n_commits,
            avail > 0 ? 100.0 * (avail - compute) / avail : 0.0);
}

/* ------------------------------------------------------------------ scheduling */

static int commit(screen_run *s, xtal_err *err)
{
    double t = now_s();
    int rc = pipe_archive_commit(s->archive, &s->buf, err);
    s->t_commit += now_s() - t;
    s->n_commits++;
    if (!rc) pipe_records_clear(&s->buf);
    s->last_commit = now_s();
    if (s->rank == 0 && !rc && !s->tty) progress(s, 1);
    return rc;
}

static int due(const screen_run *s)
{
    return now_s() - s->last_commit >= s->cfg->campaign.commit_interval_s;
}

/* One rank: work through the plan, committing on time, at the end and on a signal. */
static int run_alone(screen_run *s, xtal_err *err)
{
    int64_t counts[PIPE_NCOUNTS];
    for (long k = 0; k < s->n_plan && !stop_signal; k++) {
        int rc = run_batch(s, s->plan[k], counts, err);
        if (rc < 0) return rc;
        if (rc == 0) note_batch(s, counts);
        progress(s, 0);
        if (due(s) && (rc = commit(s, err)) < 0) return rc;
    }
    return commit(s, err);
}

/* Rank 0 of several: answers requests until every batch is done or a signal came, parking
 * workers for a collective commit whenever one is due. */
static int dispatch(screen_run *s, xtal_err *err)
{
    long next = 0;
    int workers = s->size - 1, parked = 0, draining = 0;
    for (;;) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_REQ, MPI_COMM_WORLD, &flag, &st);
        if (!flag) {
            progress(s, 0);
            nap();
            continue;
        }
        long msg[REQ_LEN];
        MPI_Recv(msg, REQ_LEN, MPI_LONG, st.MPI_SOURCE, TAG_REQ, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (msg[0] == REQ_DONE) note_batch(s, (const int64_t *)(msg + 2));
        if (msg[0] == REQ_ABANDONED && !stop_signal) stop_signal = SIGTERM;
        int finish = stop_signal || next >= s->n_plan;
        if (finish || due(s)) draining = 1;
        long cmd[2] = {draining ? CMD_COMMIT : CMD_BATCH, draining ? -1 : s->plan[next]};
        if (!draining) next++;
        MPI_Send(cmd, 2, MPI_LONG, st.MPI_SOURCE, TAG_CMD, MPI_COMM_WORLD);
        if (draining && ++parked == workers) {
            sleepy_barrier();
            int rc = commit(s, err);
            MPI_Bcast(&finish, 1, MPI_INT, 0, MPI_COMM_WORLD);
            if (rc < 0 || finish) return rc;
            parked = draining = 0;
        }
    }
}

static int work(screen_run *s, xtal_err *err)
{
    long msg[REQ_LEN] = {REQ_READY, -1};
    for (;;) {
        MPI_Request req;
        MPI_Send(msg, REQ_LEN, MPI_LONG, 0, TAG_REQ, MPI_COMM_WORLD);
        long cmd[2];
        MPI_Irecv(cmd, 2, MPI_LONG, 0, TAG_CMD, MPI_COMM_WORLD, &req);
        sleepy_wait(&req);
        if (cmd[0] == CMD_COMMIT) {
            sleepy_barrier();
            int rc = commit(s, err), finish = 0;
            MPI_Bcast(&finish, 1, MPI_INT, 0, MPI_COMM_WORLD);
            if (rc < 0 || finish) return rc;
            msg[0] = REQ_READY;
            continue;
        }
        int rc = run_batch(s, cmd[1], (int64_t *)(msg + 2), err);
        if (rc < 0) { /* only this rank knows: stop the job (the committed data is intact) */
            pipe_error("screen", "rank %d: %s", s->rank, err->msg);
            MPI_Abort(MPI_COMM_WORLD, PIPE_EXIT_FAILURE);
        }
        msg[0] = rc ? REQ_ABANDONED : REQ_DONE;
        msg[1] = cmd[1];
    }
}

/* ------------------------------------------------------------------ set-up */

static int plan(screen_run *s, xtal_err *err)
{
    long B = s->cfg->campaign.batches;
    if (!(s->plan = malloc((size_t)B * sizeof *s->plan)))
        return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
    for (long b = s->shard_index; b < B; b += s->shard_count) {
        s->n_shard++;
        if (pipe_archive_batch_done(s->archive, b))
            s->batches_done++;
        else
            s->plan[s->n_plan++] = b;
    }
    long dup;
    pipe_archive_counts(s->archive, s->counts, &dup);
    return XTAL_OK;
}

/* Every rank's status to all: the first failure wins; rank 0 prints. */
static int all_ok(int rc, xtal_err *err)
{
    int worst = rc;
    MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (worst < 0 && rc == 0) xtal_err_set(err, worst, "another rank failed");
    return worst;
}

static int setup(screen_run *s, xtal_err *err)
{
    int rc = gen_model_load(&s->model, s->cfg->campaign.model, err);
    s->have_model = rc == XTAL_OK;
    if (!rc) rc = setup_sampler(s, err);
    if (!rc) rc = setup_filters_relax(s, err);
    if (!rc) rc = identity(s, err);
    if (!rc && (s->size == 1 || s->rank > 0)) rc = load_novelty(s, err);
    if ((rc = all_ok(rc, err)) < 0) return rc;
    if ((rc = pipe_archive_open(s->output, &s->id, &s->archive, err)) < 0) return rc;
    return s->rank == 0 ? plan(s, err) : XTAL_OK;
}

static void run_free(screen_run *s)
{
    pipe_archive_close(s->archive);
    pipe_records_free(&s->buf);
    if (s->have_model) gen_model_free(&s->model);
    gen_workspace_free(s->gws);
    rlx_workspace_free(s->rws);
    rlx_potential_free(s->pot);
    flt_index_free(s->novelty);
    free(s->plan);
}

static int parse_args(int argc, char **argv, screen_run *s, const char **config)
{
    static const struct option longopts[] = {
        {"output", required_argument, 0, 'o'}, {"shard", required_argument, 0, 's'}, {0, 0, 0, 0}};
    s->shard_index = -1;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
        if (c == 'o') {
            s->output = optarg;
        } else if (c == 's') {
            char *end;
            s->shard_index = (int)strtol(optarg, &end, 10);
            s->shard_count = *end == '/' ? (int)strtol(end + 1, &end, 10) : 0;
            if (*end || s->shard_count < 1 || s->shard_index < 0 ||
                s->shard_index >= s->shard_count) {
                pipe_error("screen", "--shard %s: expected I/N with 0 <= I < N", optarg);
                return PIPE_EXIT_USAGE;
            }
        } else {
            pipe_error("screen", "see druse screen --help");
            return PIPE_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        pipe_error("screen", "expected one config file (see druse screen --help)");
        return PIPE_EXIT_USAGE;
    }
    *config = argv[optind];
    return PIPE_EXIT_OK;
}

static int campaign(screen_run *s, xtal_err *err)
{
    pipe_campaign_config *cc = &s->cfg->campaign;
    if (!s->output) s->output = cc->output;
    if (s->shard_index < 0) {
        s->shard_index = cc->shard.index;
        s->shard_count = cc->shard.count;
    }
    int rc = setup(s, err);
    if (rc < 0) return rc;
    s->t0 = s->last_print = s->last_commit = now_s();
    s->tty = s->rank == 0 && isatty(2);
    if (s->rank == 0)
        fprintf(stderr, "screen: %s: %ld batches of %d in this shard (%d/%d), %ld done, %d ranks\n",
                s->output, s->n_shard, cc->batch_size, s->shard_index, s->shard_count,
                s->batches_done, s->size);
    if (s->size == 1)
        rc = run_alone(s, err);
    else
        rc = s->rank == 0 ? dispatch(s, err) : work(s, err);
    if (rc < 0) return rc;
    if (s->rank == 0) summary(s);
    time_summary(s);
    return XTAL_OK;
}

int pipe_cmd_screen(int argc, char **argv)
{
    if (argc >= 2 && pipe_is_help(argv[1])) {
        fputs(screen_help, stdout);
        return PIPE_EXIT_OK;
    }
    screen_run s;
    memset(&s, 0, sizeof s);
    const char *config = NULL;
    int code = parse_args(argc, argv, &s, &config);
    if (code != PIPE_EXIT_OK) return code;
    xtal_err err = {{0}};
    if (pipe_config_load(config, &s.cfg, &err) < 0) {
        pipe_error("screen", "%s", err.msg);
        return PIPE_EXIT_FAILURE;
    }
    openblas_set_num_threads(1); /* one rank per core; determinism needs one BLAS thread */
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) MPI_Init(NULL, NULL);
    install_signals(); /* after MPI_Init, which installs handlers of its own */
    MPI_Comm_rank(MPI_COMM_WORLD, &s.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &s.size);
    int rc = campaign(&s, &err);
    code = PIPE_EXIT_OK;
    if (rc < 0) {
        if (s.rank == 0 || !strstr(err.msg, "rank")) pipe_error("screen", "%s", err.msg);
        code = PIPE_EXIT_FAILURE;
    } else if (stop_signal && s.rank == 0 && s.batches_done < s.n_shard) {
        fprintf(stderr, "screen: stopped by signal %d after committing; rerun to resume\n",
                (int)stop_signal);
        code = EXIT_REQUEUE;
    }
    if (s.size > 1) MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD);
    run_free(&s);
    pipe_config_free(s.cfg);
    if (!inited) MPI_Finalize();
    return code;
}
