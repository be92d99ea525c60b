/* `druse eval SAMPLES --reference DIR [--csp] [--json] [--n-valid N] [--unrelaxed]`: the
 * CDVAE/DiffCSP evaluation of generated structures against a CDVAE-style dataset
 * (docs/eval.md). SAMPLES may be a campaign archive (docs/archive.md): its records in
 * sample-id order, with the campaign's funnel beside the metrics.
 *
 * Generation (default): structural and compositional validity, Wasserstein distances of
 * density and of the number of elements (first N valid samples vs test), uniqueness, novelty
 * against train, space-group distributions. CSP (--csp): match rate and mean RMSE of one
 * generated structure per test material_id (StructureMatcher(stol 0.5, angle_tol 10,
 * ltol 0.3)). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "filters/filters.h"
#include "pipeline/archive.h"
#include "pipeline/pipeline.h"

static const char eval_help[] =
    "usage: druse eval SAMPLES --reference DIR [--json] [--n-valid N] [--unrelaxed]\n"
    "       druse eval --csp SAMPLES --reference DIR [--json]\n"
    "\n"
    "Evaluates generated structures the way CDVAE and DiffCSP do (docs/eval.md has the exact\n"
    "definitions). SAMPLES is a CIF (one or many data blocks), POSCAR, a dataset CSV\n"
    "(.csv/.csv.gz), a directory of structure files, an extended XYZ file (.xyz/.extxyz, as\n"
    "written by `druse sample -o out.xyz`), or a campaign archive written by `druse screen` or\n"
    "`druse merge` (an HDF5 file, recognised by its signature whatever its name). DIR holds the\n"
    "dataset splits train.csv.gz, val.csv.gz, test.csv.gz (or the same names without .gz),\n"
    "e.g. shared/data/mp_20.\n"
    "\n"
    "A campaign archive gives every archived record (campaign duplicates included), in\n"
    "sample-id order, as relaxed (default) or, with --unrelaxed, as sampled. An archive holds\n"
    "only the samples that passed the screening filters (distance, charge neutrality,\n"
    "symmetry, relaxation), so the metrics over an archive describe the survivors, measured\n"
    "after the filters, not everything the model sampled: validity there is not the model's\n"
    "validity. The campaign's funnel totals (sampled, rejected at each filter, passed,\n"
    "duplicate, archived) are printed with the metrics so that the two can be told apart.\n"
    "\n"
    "Generation metrics (default; needs DIR/test and DIR/train):\n"
    "  struct_valid   % of all samples whose distinct sites are all >= 0.5 A apart (minimum\n"
    "                 image) and whose cell volume is >= 0.1 A^3\n"
    "  comp_valid     % of all samples passing SMACT's charge-neutrality + Pauling rule\n"
    "  valid          % of all samples with both\n"
    "  wdist_density  Wasserstein-1 distance between the densities (g/cm^3) of the first N\n"
    "                 valid samples (in input order) and of the test split\n"
    "  wdist_nelems   the same for the number of distinct elements\n"
    "  unique         % of valid samples that match no earlier valid sample\n"
    "                 (StructureMatcher defaults: ltol 0.2, stol 0.3, angle_tol 5)\n"
    "  novel          % of unique valid samples that match no train structure\n"
    "  spacegroups    spglib space groups (symprec 0.1 A) of the valid samples and of the\n"
    "                 test split (its spacegroup.number column when present): top 10 of\n"
    "                 each, total-variation distance\n"
    "\n"
    "CSP metrics (--csp; needs DIR/test only): SAMPLES holds one generated structure per test\n"
    "structure, named by the test material_id: the structure's id must equal it (a CIF file\n"
    "mp-1234.cif, a CIF data block data_mp-1234, a CSV material_id, an extended XYZ frame with\n"
    "material_id=mp-1234 or id=mp-1234 on its comment line). Each test structure is compared\n"
    "with its generated one by StructureMatcher(stol 0.5, angle_tol 10, ltol 0.3).get_rms_dist:\n"
    "  match_rate     % of all test structures whose generated structure matches (a test\n"
    "                 structure without one counts as unmatched)\n"
    "  rmse           mean normalized RMS displacement (get_rms_dist[0]) over the matches\n"
    "\n"
    "  --reference DIR  the dataset splits (required)\n"
    "  --csp            CSP metrics instead of generation metrics\n"
    "  --n-valid N      valid samples used for the Wasserstein distances (default 1000;\n"
    "                   all valid ones when fewer)\n"
    "  --unrelaxed      a campaign archive's structures as sampled (lattice_unrelaxed,\n"
    "                   frac_unrelaxed) instead of relaxed\n"
    "  --json           one JSON object instead of the table, keys: mode, samples,\n"
    "                   reference, n_samples, n_struct_valid, n_comp_valid, n_valid,\n"
    "                   struct_valid, comp_valid, valid (percent), n_wdist, n_test,\n"
    "                   wdist_density, wdist_nelems, n_unique, n_novel, unique, novel,\n"
    "                   matcher_refused, train_refused, spacegroup_tv, spacegroups_valid and\n"
    "                   spacegroups_test ({source, found, failed, top: [{spacegroup, count,\n"
    "                   percent}]}) and archive (null, or for a campaign archive {campaign,\n"
    "                   batches_done, batches_planned, structures (relaxed|unrelaxed),\n"
    "                   records, funnel: {sampled, invalid, too_close, not_neutral,\n"
    "                   symmetry_failed, relax_failed, passed, duplicate, archived}});\n"
    "                   with --csp: mode, samples, reference, n_test, n_samples,\n"
    "                   n_matched, n_struct_valid, match_errors, match_rate, rmse, stol,\n"
    "                   angle_tol, ltol. Percentages are null when their denominator is 0.\n"
    "\n"
    "--csp does not take an archive (its records are named by sample id, not by test\n"
    "material_id). Progress goes to stderr. Exit status: 0 on success, 1 when a file cannot\n"
    "be read (an HDF5 file that is no druse archive included) or a CSP sample names no test\n"
    "material_id (or one twice), 2 on usage.\n";

typedef struct {
    const char *samples, *reference;
    int json, csp, unrelaxed;
    long n_valid;
} eval_args;

/* What a campaign archive given as SAMPLES says about itself. */
typedef struct {
    int is_archive;
    char campaign[256];
    long batches_done, batches_planned, records, duplicates;
    int64_t counts[PIPE_NCOUNTS]; /* the funnel summed over the done batches */
} archive_info;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A progress line on stderr with the time since the command started. */
static double t_start;
static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "druse eval: [%.1f s] ", now_seconds() - t_start);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int parse_args(int argc, char **argv, eval_args *a)
{
    static const struct option longopts[] = {{"reference", required_argument, 0, 'r'},
                                             {"csp", no_argument, 0, 'c'},
                                             {"json", no_argument, 0, 'j'},
                                             {"n-valid", required_argument, 0, 'n'},
                                             {"unrelaxed", no_argument, 0, 'u'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    a->n_valid = 1000;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'r':
            a->reference = optarg;
            break;
        case 'c':
            a->csp = 1;
            break;
        case 'j':
            a->json = 1;
            break;
        case 'u':
            a->unrelaxed = 1;
            break;
        case 'n':
            errno = 0;
            a->n_valid = strtol(optarg, &end, 10);
            if (end == optarg || *end || errno || a->n_valid < 1) {
                pipe_error("eval", "--n-valid wants an integer >= 1, not '%s'", optarg);
                return PIPE_EXIT_USAGE;
            }
            break;
        case 'h':
            fputs(eval_help, stdout);
            return PIPE_EXIT_OK;
        default:
            fputs(eval_help, stderr);
            return PIPE_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        pipe_error("eval", "expected one SAMPLES input (see druse eval --help)");
        return PIPE_EXIT_USAGE;
    }
    if (!a->reference) {
        pipe_error("eval", "--reference DIR is required (see druse eval --help)");
        return PIPE_EXIT_USAGE;
    }
    a->samples = argv[optind];
    return -1;
}

/* ------------------------------------------------------------ inputs */

/* True when path is a regular file with the HDF5 signature, at offset 0 or at 512, 1024,
 * 2048, ... (where a user block puts it). */
static int is_hdf5(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    unsigned char buf[8];
    int found = 0;
    for (long off = 0; !found && off + 8 <= (long)st.st_size; off = off ? 2 * off : 512)
        found = fseek(fp, off, SEEK_SET) == 0 && fread(buf, 1, 8, fp) == 8 &&
                memcmp(buf, sig, 8) == 0;
    fclose(fp);
    return found;
}

typedef struct {
    uint64_t sample_id;
    long row;
} sample_row;

static int cmp_sample_row(const void *a, const void *b)
{
    uint64_t x = ((const sample_row *)a)->sample_id, y = ((const sample_row *)b)->sample_id;
    return (x > y) - (x < y);
}

/* Every record of a campaign archive, in sample-id order (relaxed or as sampled), with ids
 * "druse-<sample id>" as `druse export` names them; the funnel into info. */
static int read_archive(const char *path, int unrelaxed, xtal_list *list, archive_info *info)
{
    pipe_records r;
    pipe_campaign_id id;
    xtal_err err = {{0}};
    if (pipe_archive_read(path, &r, &id, &err) != XTAL_OK) {
        pipe_error("eval", "%s (SAMPLES is an HDF5 file: druse eval reads it as a campaign "
                   "archive)", err.msg);
        return -1;
    }
    free(id.config_text);
    int64_t *dup = malloc(sizeof *dup * (size_t)(r.n + 1));
    sample_row *order = malloc(sizeof *order * (size_t)(r.n + 1));
    int rc = dup && order ? pipe_archive_read_duplicates(path, r.n, dup, &err)
                          : xtal_err_set(&err, XTAL_ENOMEM, "out of memory");
    memset(info, 0, sizeof *info);
    info->is_archive = 1;
    snprintf(info->campaign, sizeof info->campaign, "%s", id.name);
    info->batches_done = r.n_batches;
    info->batches_planned = id.batches;
    info->records = r.n;
    for (long b = 0; b < r.n_batches; b++)
        for (int k = 0; k < PIPE_NCOUNTS; k++) info->counts[k] += r.counts[PIPE_NCOUNTS * b + k];
    for (long i = 0; !rc && i < r.n; i++) {
        info->duplicates += dup[i] >= 0;
        order[i].sample_id = r.sample_id[i];
        order[i].row = i;
    }
    /* a live master lists its segments in commit order, not sample-id order */
    if (!rc) qsort(order, (size_t)r.n, sizeof *order, cmp_sample_row);
    for (long k = 0; !rc && k < r.n; k++) {
        xtal_crystal c = {0};
        rc = pipe_records_crystal(&r, order[k].row, unrelaxed, &c, &err);
        if (!rc) {
            snprintf(c.id, sizeof c.id, "druse-%llu", (unsigned long long)order[k].sample_id);
            if ((rc = xtal_list_push(list, &c, &err))) xtal_crystal_free(&c);
        }
    }
    free(dup);
    free(order);
    pipe_records_free(&r);
    if (rc) {
        if (strstr(err.msg, path))
            pipe_error("eval", "%s", err.msg);
        else
            pipe_error("eval", "%s: %s", path, err.msg);
        return -1;
    }
    if (list->n == 0) {
        pipe_error("eval", "%s: the campaign archive holds no records (%lld sampled, none passed "
                   "the filters)", path, (long long)info->counts[PIPE_COUNT_SAMPLED]);
        return -1;
    }
    return 0;
}

static int read_samples(const eval_args *a, xtal_list *list, archive_info *info)
{
    memset(info, 0, sizeof *info);
    if (is_hdf5(a->samples)) {
        if (a->csp) {
            pipe_error("eval", "%s: --csp does not take a campaign archive (its records are "
                       "named by sample id; --csp wants each structure named by its test "
                       "material_id)", a->samples);
            return PIPE_EXIT_USAGE;
        }
        return read_archive(a->samples, a->unrelaxed, list, info) ? PIPE_EXIT_FAILURE : 0;
    }
    if (a->unrelaxed) {
        pipe_error("eval", "--unrelaxed applies to a campaign archive, and %s is none",
                   a->samples);
        return PIPE_EXIT_USAGE;
    }
    xtal_err err = {{0}};
    if (xtal_read_any(a->samples, list, &err) != XTAL_OK) {
        pipe_error("eval", "%s", err.msg);
        return PIPE_EXIT_FAILURE;
    }
    if (list->n == 0) {
        pipe_error("eval", "%s: no structures", a->samples);
        return PIPE_EXIT_FAILURE;
    }
    return 0;
}

/* DIR/NAME.csv.gz, else DIR/NAME.csv, loaded through the dataset cache. */
static int load_split(const char *dir, const char *name, xtal_dataset *ds)
{
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s.csv.gz", dir, name);
    if (stat(path, &st) != 0) {
        snprintf(path, sizeof path, "%s/%s.csv", dir, name);
        if (stat(path, &st) != 0) {
            pipe_error("eval", "%s/%s.csv.gz: %s (the reference DIR needs the %s split)", dir,
                       name, strerror(errno), name);
            return -1;
        }
    }
    xtal_err err = {{0}};
    note("loading %s", path);
    if (xtal_dataset_load(path, NULL, ds, &err) != XTAL_OK) {
        pipe_error("eval", "%s", err.msg);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ statistics */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Wasserstein-1 distance between the empirical distributions of x[n] and y[m] (sorted here):
 * the integral of |F(t) - G(t)| dt, which equals the integral of |F^-1(u) - G^-1(u)| du, exact
 * for any sizes. NaN when either is empty. */
static double wasserstein1(double *x, long n, double *y, long m)
{
    if (n < 1 || m < 1) return NAN;
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    qsort(y, (size_t)m, sizeof *y, cmp_double);
    long i = 0, j = 0;
    double w = 0, t = fmin(x[0], y[0]);
    while (i < n || j < m) {
        double next = j >= m || (i < n && x[i] <= y[j]) ? x[i] : y[j];
        w += fabs((double)i / (double)n - (double)j / (double)m) * (next - t);
        t = next;
        while (i < n && x[i] == t) i++;
        while (j < m && y[j] == t) j++;
    }
    return w;
}

static int n_elements(const xtal_crystal *c)
{
    char seen[XTAL_NUM_ELEMENTS + 1] = {0};
    int k = 0;
    for (int i = 0; i < c->natoms; i++)
        if (c->Z[i] >= 1 && c->Z[i] <= XTAL_NUM_ELEMENTS && !seen[c->Z[i]]) seen[c->Z[i]] = 1, k++;
    return k;
}

static double percent(long k, long n)
{
    return n ? 100.0 * (double)k / (double)n : NAN;
}

/* Space-group histogram: counts[1..230], failed = spglib found none. */
typedef struct {
    long counts[231];
    long total, failed;
    int from_column; /* the test split's spacegroup.number column, not spglib */
} sg_hist;

static int sg_add(sg_hist *h, const xtal_crystal *c)
{
    flt_symmetry_result s;
    xtal_err err = {{0}};
    int rc = flt_symmetry_analyze(c, FLT_DEFAULT_SYMPREC, FLT_DEFAULT_ANGLE_TOLERANCE, &s, &err);
    if (rc == XTAL_ENOMEM) {
        pipe_error("eval", "%s: %s", c->id, err.msg);
        return -1;
    }
    if (rc == XTAL_OK && s.ok && s.spacegroup >= 1 && s.spacegroup <= 230) {
        h->counts[s.spacegroup]++;
        h->total++;
    } else {
        h->failed++;
    }
    if (rc == XTAL_OK) flt_symmetry_result_free(&s);
    return 0;
}

/* The test split's groups: its spacegroup.number column when it has one (spglib on 9,046
 * MP-20 test structures takes minutes; the column equals spglib at symprec 0.1 on 9,030 of
 * them), else spglib at symprec 0.1. */
static int test_spacegroups(const xtal_dataset *test, sg_hist *h)
{
    int col = xtal_dataset_prop_index(test, "spacegroup.number");
    for (int j = 0; j < test->crystals.n; j++) {
        double g = col >= 0 ? test->prop_values[(size_t)j * test->n_props + col] : NAN;
        if (col >= 0 && isfinite(g) && g >= 1 && g <= 230 && g == floor(g)) {
            h->counts[(int)g]++;
            h->total++;
        } else if (col >= 0) {
            h->failed++;
        } else if (sg_add(h, &test->crystals.items[j])) {
            return -1;
        }
    }
    h->from_column = col >= 0;
    return 0;
}

/* 0.5 * sum |p - q| over the space groups found (NaN when either side found none). */
static double sg_tv(const sg_hist *a, const sg_hist *b)
{
    if (!a->total || !b->total) return NAN;
    double tv = 0;
    for (int g = 1; g <= 230; g++)
        tv += fabs((double)a->counts[g] / (double)a->total - (double)b->counts[g] / (double)b->total);
    return 0.5 * tv;
}

/* The k most frequent groups (ties by number), written to top[]; returns how many. */
static int sg_top(const sg_hist *h, int k, int *top)
{
    int n = 0;
    char used[231] = {0};
    while (n < k) {
        int best = 0;
        for (int g = 1; g <= 230; g++)
            if (!used[g] && h->counts[g] > 0 && (!best || h->counts[g] > h->counts[best])) best = g;
        if (!best) break;
        used[best] = 1;
        top[n++] = best;
    }
    return n;
}

/* ------------------------------------------------------------ generation metrics */

typedef struct {
    long n, struct_valid, comp_valid, valid, unique, novel, refused, train_refused;
    long n_wdist, n_test;
    double wdist_density, wdist_nelems;
    sg_hist sg_samples, sg_test;
} gen_report;

/* Validity of each sample: valid[i] = 1 when both rules pass. */
static void validity(const xtal_list *s, char *valid, gen_report *r)
{
    for (int i = 0; i < s->n; i++) {
        flt_distance_result d;
        flt_charge_result q;
        xtal_err err = {{0}};
        int sv = flt_distance_check(&s->items[i], FLT_RULE_BENCHMARK, FLT_BENCHMARK_MIN_DISTANCE,
                                    &d, &err) == XTAL_OK && d.ok;
        int cv = flt_charge_check(&s->items[i], &q, &err) == XTAL_OK && q.pass;
        r->struct_valid += sv;
        r->comp_valid += cv;
        valid[i] = (char)(sv && cv);
        r->valid += valid[i];
    }
    r->n = s->n;
}

/* W1 of density and element count: the first n_valid valid samples against the test split. */
static int wdists(const xtal_list *s, const char *valid, const xtal_list *test, long n_valid,
                  gen_report *r)
{
    long n = 0, m = test->n;
    double *xd = malloc(sizeof(double) * (size_t)(s->n + 1)),
           *xe = malloc(sizeof(double) * (size_t)(s->n + 1)),
           *yd = malloc(sizeof(double) * (size_t)(m + 1)),
           *ye = malloc(sizeof(double) * (size_t)(m + 1));
    if (!xd || !xe || !yd || !ye) {
        free(xd), free(xe), free(yd), free(ye);
        pipe_error("eval", "out of memory");
        return -1;
    }
    for (int i = 0; i < s->n && n < n_valid; i++)
        if (valid[i]) {
            xd[n] = xtal_density(&s->items[i]);
            xe[n++] = n_elements(&s->items[i]);
        }
    for (long j = 0; j < m; j++) {
        yd[j] = xtal_density(&test->items[j]);
        ye[j] = n_elements(&test->items[j]);
    }
    r->n_wdist = n;
    r->n_test = m;
    r->wdist_density = wasserstein1(xd, n, yd, m);
    r->wdist_nelems = wasserstein1(xe, n, ye, m);
    free(xd), free(xe), free(yd), free(ye);
    return 0;
}

/* Every train structure appended (not matched) to a novelty index. */
static flt_index *train_index(const xtal_list *train, gen_report *r)
{
    flt_match_options opt = flt_match_options_default();
    flt_index *ix = NULL;
    xtal_err err = {{0}};
    if (flt_index_new(&opt, &ix, &err) != XTAL_OK) {
        pipe_error("eval", "%s", err.msg);
        return NULL;
    }
    note("indexing %d train structures", train->n);
    for (int i = 0; i < train->n; i++) {
        long entry;
        if (flt_index_insert(ix, &train->items[i], &entry, &err) != XTAL_OK) r->train_refused++;
    }
    return ix;
}

/* Uniqueness among the valid samples (in order) and novelty of the unique ones. */
static int uniqueness(const xtal_list *s, const char *valid, const flt_index *train,
                      gen_report *r)
{
    flt_match_options opt = flt_match_options_default();
    flt_index *seen = NULL;
    xtal_err err = {{0}};
    if (flt_index_new(&opt, &seen, &err) != XTAL_OK) {
        pipe_error("eval", "%s", err.msg);
        return -1;
    }
    for (int i = 0; i < s->n; i++) {
        if (!valid[i]) continue;
        xtal_crystal red;
        long entry = -1;
        int added = 0;
        if (flt_match_reduce(&s->items[i], &opt, &red, &err) != XTAL_OK) {
            /* cannot be compared (e.g. > FLT_MATCH_MAX_ATOMS): unique, not novel */
            fprintf(stderr, "druse eval: %s: %s (counted unique, not novel)\n", s->items[i].id,
                    err.msg);
            r->refused++;
            r->unique++;
            continue;
        }
        int rc = flt_index_add_reduced(seen, &red, &entry, &added, &err);
        if (rc == XTAL_OK && added) {
            r->unique++;
            rc = flt_index_find_reduced(train, &red, &entry, &err);
            r->novel += rc == XTAL_OK && entry < 0;
        }
        xtal_crystal_free(&red);
        if (rc != XTAL_OK) {
            pipe_error("eval", "%s: %s", s->items[i].id, err.msg);
            flt_index_free(seen);
            return -1;
        }
    }
    flt_index_free(seen);
    return 0;
}

static void print_sg_top_text(const char *label, const sg_hist *h)
{
    int top[10], k = sg_top(h, 10, top);
    printf("  %-8s", label);
    for (int t = 0; t < k; t++)
        printf(" %d:%.1f%%", top[t], percent(h->counts[top[t]], h->total));
    printf("   (%ld, %ld without a group; %s)\n", h->total, h->failed,
           h->from_column ? "spacegroup.number column" : "spglib, symprec 0.1 A");
}

/* The archive's funnel: every stage count, then duplicate and archived. */
static void funnel_values(const archive_info *ai, const char **names, long long *values)
{
    for (int k = 0; k < PIPE_NCOUNTS; k++) {
        names[k] = pipe_count_name(k);
        values[k] = (long long)ai->counts[k];
    }
    names[PIPE_NCOUNTS] = "duplicate";
    values[PIPE_NCOUNTS] = ai->duplicates;
    names[PIPE_NCOUNTS + 1] = "archived";
    values[PIPE_NCOUNTS + 1] = (long long)ai->counts[PIPE_COUNT_PASSED] - ai->duplicates;
}

static void print_archive_text(const archive_info *ai, const eval_args *a)
{
    const char *names[PIPE_NCOUNTS + 2];
    long long v[PIPE_NCOUNTS + 2];
    funnel_values(ai, names, v);
    printf("  %-22s campaign '%s', %ld of %ld batches\n", "archive", ai->campaign,
           ai->batches_done, ai->batches_planned);
    /* sampled; rejected at each filter; passed, duplicate, archived */
    printf("  %-22s %s %lld; rejected:", "funnel", names[0], v[0]);
    for (int k = 1; k < PIPE_COUNT_PASSED; k++)
        printf("%s %s %lld", k > 1 ? "," : "", names[k], v[k]);
    printf("\n  %-22s", "");
    for (int k = PIPE_COUNT_PASSED; k < PIPE_NCOUNTS + 2; k++)
        printf("%s %s %lld", k > PIPE_COUNT_PASSED ? "," : "", names[k], v[k]);
    printf("\n  %-22s %ld records (passed, duplicates included), %s\n", "evaluated", ai->records,
           a->unrelaxed ? "the structures as sampled (--unrelaxed)" : "the relaxed structures");
    printf("  %-22s these passed the screening filters: the metrics below describe the\n"
           "  %-22s survivors, not all %lld samples (validity measured after the filters)\n",
           "note", "", v[PIPE_COUNT_SAMPLED]);
}

static void print_gen_text(const gen_report *r, const eval_args *a, const archive_info *ai)
{
    printf("druse eval: %s against %s\n", a->samples, a->reference);
    if (ai->is_archive) print_archive_text(ai, a);
    printf("  %-22s %ld\n", "samples", r->n);
    printf("  %-22s %8.2f %%  (%ld)\n", "struct_valid", percent(r->struct_valid, r->n),
           r->struct_valid);
    printf("  %-22s %8.2f %%  (%ld)\n", "comp_valid", percent(r->comp_valid, r->n), r->comp_valid);
    printf("  %-22s %8.2f %%  (%ld)\n", "valid", percent(r->valid, r->n), r->valid);
    printf("  %-22s %10.4f  (g/cm^3; %ld valid vs %ld test)\n", "wdist_density",
           r->wdist_density, r->n_wdist, r->n_test);
    printf("  %-22s %10.4f\n", "wdist_nelems", r->wdist_nelems);
    printf("  %-22s %8.2f %%  (%ld of %ld valid)\n", "unique", percent(r->unique, r->valid),
           r->unique, r->valid);
    printf("  %-22s %8.2f %%  (%ld of %ld unique)\n", "novel", percent(r->novel, r->unique),
           r->novel, r->unique);
    printf("  %-22s %10.4f  (total variation, symprec 0.1 A)\n", "spacegroup_tv",
           sg_tv(&r->sg_samples, &r->sg_test));
    printf("  space groups, top 10 (number:share):\n");
    print_sg_top_text("valid", &r->sg_samples);
    print_sg_top_text("test", &r->sg_test);
    if (r->refused || r->train_refused)
        printf("  matcher refused %ld valid samples and %ld train structures\n", r->refused,
               r->train_refused);
}

static void json_num(const char *key, double x)
{
    printf(", \"%s\": ", key);
    pipe_json_double(stdout, x);
}

/* {"mode": MODE, "samples": ..., "reference": ... (the object is left open) */
static void json_head(const char *mode, const eval_args *a)
{
    printf("{\"mode\": \"%s\", \"samples\": ", mode);
    pipe_json_string(stdout, a->samples);
    fputs(", \"reference\": ", stdout);
    pipe_json_string(stdout, a->reference);
}

static void print_sg_json(const char *key, const sg_hist *h)
{
    int top[10], k = sg_top(h, 10, top);
    printf(", \"%s\": {\"source\": \"%s\", \"found\": %ld, \"failed\": %ld, \"top\": [", key,
           h->from_column ? "spacegroup.number" : "spglib", h->total, h->failed);
    for (int t = 0; t < k; t++) {
        printf("%s{\"spacegroup\": %d, \"count\": %ld, \"percent\": ", t ? ", " : "", top[t],
               h->counts[top[t]]);
        pipe_json_double(stdout, percent(h->counts[top[t]], h->total));
        putchar('}');
    }
    fputs("]}", stdout);
}

static void print_archive_json(const archive_info *ai, const eval_args *a)
{
    if (!ai->is_archive) {
        fputs(", \"archive\": null", stdout);
        return;
    }
    const char *names[PIPE_NCOUNTS + 2];
    long long v[PIPE_NCOUNTS + 2];
    funnel_values(ai, names, v);
    fputs(", \"archive\": {\"campaign\": ", stdout);
    pipe_json_string(stdout, ai->campaign);
    printf(", \"batches_done\": %ld, \"batches_planned\": %ld, \"structures\": \"%s\", "
           "\"records\": %ld, \"funnel\": {",
           ai->batches_done, ai->batches_planned, a->unrelaxed ? "unrelaxed" : "relaxed",
           ai->records);
    for (int k = 0; k < PIPE_NCOUNTS + 2; k++)
        printf("%s\"%s\": %lld", k ? ", " : "", names[k], v[k]);
    fputs("}}", stdout);
}

static void print_gen_json(const gen_report *r, const eval_args *a, const archive_info *ai)
{
    json_head("generation", a);
    printf(", \"n_samples\": %ld, \"n_struct_valid\": %ld, \"n_comp_valid\": %ld, "
           "\"n_valid\": %ld",
           r->n, r->struct_valid, r->comp_valid, r->valid);
    json_num("struct_valid", percent(r->struct_valid, r->n));
    json_num("comp_valid", percent(r->comp_valid, r->n));
    json_num("valid", percent(r->valid, r->n));
    printf(", \"n_wdist\": %ld, \"n_test\": %ld", r->n_wdist, r->n_test);
    json_num("wdist_density", r->wdist_density);
    json_num("wdist_nelems", r->wdist_nelems);
    printf(", \"n_unique\": %ld, \"n_novel\": %ld", r->unique, r->novel);
    json_num("unique", percent(r->unique, r->valid));
    json_num("novel", percent(r->novel, r->unique));
    printf(", \"matcher_refused\": %ld, \"train_refused\": %ld", r->refused, r->train_refused);
    json_num("spacegroup_tv", sg_tv(&r->sg_samples, &r->sg_test));
    print_sg_json("spacegroups_valid", &r->sg_samples);
    print_sg_json("spacegroups_test", &r->sg_test);
    print_archive_json(ai, a);
    fputs("}\n", stdout);
}

static int eval_generation(const eval_args *a, const xtal_list *s, const archive_info *ai)
{
    xtal_dataset test = {0}, train = {0};
    gen_report r;
    memset(&r, 0, sizeof r);
    char *valid = calloc((size_t)s->n + 1, 1);
    int code = PIPE_EXIT_FAILURE;
    flt_index *tix = NULL;
    if (!valid) {
        pipe_error("eval", "out of memory");
        return PIPE_EXIT_FAILURE;
    }
    if (load_split(a->reference, "test", &test) || load_split(a->reference, "train", &train))
        goto done;
    validity(s, valid, &r);
    if (wdists(s, valid, &test.crystals, a->n_valid, &r)) goto done;
    note("space groups of %ld valid samples and %d test structures", r.valid, test.crystals.n);
    for (int i = 0; i < s->n; i++)
        if (valid[i] && sg_add(&r.sg_samples, &s->items[i])) goto done;
    if (test_spacegroups(&test, &r.sg_test)) goto done;
    if (!(tix = train_index(&train.crystals, &r))) goto done;
    xtal_dataset_free(&train); /* the index keeps its reduced copies */
    note("uniqueness and novelty of %ld valid samples", r.valid);
    if (uniqueness(s, valid, tix, &r)) goto done;
    note("done");
    if (a->json)
        print_gen_json(&r, a, ai);
    else
        print_gen_text(&r, a, ai);
    code = PIPE_EXIT_OK;
done:
    flt_index_free(tix);
    xtal_dataset_free(&test);
    xtal_dataset_free(&train);
    free(valid);
    return code;
}

/* ------------------------------------------------------------ CSP metrics */

typedef struct {
    const char *id;
    int index;
} id_entry;

static int cmp_id(const void *a, const void *b)
{
    return strcmp(((const id_entry *)a)->id, ((const id_entry *)b)->id);
}

/* The test material_id a sample names: its id, or the part after the last ':' (a data block of
 * a multi-block CIF, "file:mp-1234") when the whole id is not one. -1 when none. */
static int find_test(const id_entry *ids, int n, const char *id)
{
    id_entry key = {id, 0};
    const id_entry *hit = bsearch(&key, ids, (size_t)n, sizeof *ids, cmp_id);
    if (!hit && strrchr(id, ':')) {
        key.id = strrchr(id, ':') + 1;
        hit = bsearch(&key, ids, (size_t)n, sizeof *ids, cmp_id);
    }
    return hit ? hit->index : -1;
}

typedef struct {
    long n_test, n_samples, matched, errors, struct_valid;
    double rms_sum;
} csp_report;

/* sample_of[t] = the sample for test structure t, or -1; fails on unknown or repeated ids. */
static int pair_samples(const xtal_list *s, const xtal_list *test, int *sample_of,
                        const char *path)
{
    id_entry *ids = malloc(sizeof *ids * (size_t)(test->n + 1));
    if (!ids) return pipe_error("eval", "out of memory"), -1;
    for (int t = 0; t < test->n; t++) {
        ids[t].id = test->items[t].id;
        ids[t].index = t;
        sample_of[t] = -1;
    }
    qsort(ids, (size_t)test->n, sizeof *ids, cmp_id);
    int rc = 0;
    for (int i = 0; i < s->n && !rc; i++) {
        int t = find_test(ids, test->n, s->items[i].id);
        if (t < 0) {
            pipe_error("eval", "%s: structure '%s' names no test material_id (--csp wants the "
                       "id of each generated structure to be its test material_id)",
                       path, s->items[i].id);
            rc = -1;
        } else if (sample_of[t] >= 0) {
            pipe_error("eval", "%s: structures '%s' and '%s' both name test material_id %s", path,
                       s->items[sample_of[t]].id, s->items[i].id, test->items[t].id);
            rc = -1;
        } else {
            sample_of[t] = i;
        }
    }
    free(ids);
    return rc;
}

static void csp_compare(const xtal_list *s, const xtal_list *test, const int *sample_of,
                        csp_report *r)
{
    flt_match_options opt = flt_match_options_default();
    opt.stol = 0.5;
    opt.angle_tol = 10;
    opt.ltol = 0.3;
    r->n_test = test->n;
    r->n_samples = s->n;
    for (int t = 0; t < test->n; t++) {
        if (sample_of[t] < 0) continue;
        const xtal_crystal *g = &s->items[sample_of[t]];
        flt_distance_result d;
        flt_match_result m;
        xtal_err err = {{0}};
        r->struct_valid += flt_distance_check(g, FLT_RULE_BENCHMARK, FLT_BENCHMARK_MIN_DISTANCE,
                                              &d, &err) == XTAL_OK && d.ok;
        /* get_rms_dist(generated, test), as DiffCSP calls it */
        if (flt_match_rms_dist(g, &test->items[t], &opt, &m, &err) != XTAL_OK) {
            fprintf(stderr, "druse eval: %s: %s (counted unmatched)\n", g->id, err.msg);
            r->errors++;
            continue;
        }
        if (m.match && isfinite(m.rms)) {
            r->matched++;
            r->rms_sum += m.rms;
        }
    }
}

static int eval_csp(const eval_args *a, const xtal_list *s)
{
    xtal_dataset test = {0};
    if (load_split(a->reference, "test", &test)) return PIPE_EXIT_FAILURE;
    int *sample_of = malloc(sizeof(int) * (size_t)(test.crystals.n + 1));
    int code = PIPE_EXIT_FAILURE;
    csp_report r;
    memset(&r, 0, sizeof r);
    if (!sample_of) {
        pipe_error("eval", "out of memory");
    } else if (pair_samples(s, &test.crystals, sample_of, a->samples) == 0) {
        csp_compare(s, &test.crystals, sample_of, &r);
        double rate = percent(r.matched, r.n_test);
        double rmse = r.matched ? r.rms_sum / (double)r.matched : NAN;
        if (a->json) {
            json_head("csp", a);
            printf(", \"n_test\": %ld, \"n_samples\": %ld, \"n_matched\": %ld, "
                   "\"n_struct_valid\": %ld, \"match_errors\": %ld",
                   r.n_test, r.n_samples, r.matched, r.struct_valid, r.errors);
            json_num("match_rate", rate);
            json_num("rmse", rmse);
            fputs(", \"stol\": 0.5, \"angle_tol\": 10, \"ltol\": 0.3}\n", stdout);
        } else {
            printf("druse eval --csp: %s against %s/test\n", a->samples, a->reference);
            printf("  %-22s %ld\n", "test structures", r.n_test);
            printf("  %-22s %ld  (%ld structurally valid)\n", "generated", r.n_samples,
                   r.struct_valid);
            printf("  %-22s %8.2f %%  (%ld matched; stol 0.5, angle_tol 10, ltol 0.3)\n",
                   "match_rate", rate, r.matched);
            if (isfinite(rmse))
                printf("  %-22s %10.4f  (mean normalized RMS over matches)\n", "rmse", rmse);
            else
                printf("  %-22s %10s  (no match)\n", "rmse", "-");
            if (r.errors) printf("  matcher refused %ld pairs (counted unmatched)\n", r.errors);
        }
        code = PIPE_EXIT_OK;
    }
    free(sample_of);
    xtal_dataset_free(&test);
    return code;
}

int pipe_cmd_eval(int argc, char **argv)
{
    eval_args a;
    t_start = now_seconds();
    int code = parse_args(argc, argv, &a);
    if (code >= 0) return code;
    struct stat st;
    if (stat(a.reference, &st) != 0 || !S_ISDIR(st.st_mode)) {
        pipe_error("eval", "%s: not a directory (--reference wants the dataset folder)",
                   a.reference);
        return PIPE_EXIT_FAILURE;
    }
    xtal_list samples = {0};
    archive_info ai;
    if ((code = read_samples(&a, &samples, &ai))) {
        xtal_list_free(&samples);
        return code;
    }
    code = a.csp ? eval_csp(&a, &samples) : eval_generation(&a, &samples, &ai);
    xtal_list_free(&samples);
    return code;
}
