/* `druse merge OUT IN...` and `druse export ARCHIVE ...`: what comes after a campaign
 * (docs/archive.md). Both read archives through pipeline/archive.c only. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/archive.h"
#include "pipeline/pipeline.h"

static const char merge_help[] =
    "usage: druse merge OUT IN...\n"
    "\n"
    "Joins the archives of several shards of one campaign (a Slurm job array: druse screen\n"
    "--shard I/N) into one archive file OUT, sorted by sample id, with real datasets (no\n"
    "segments). The inputs must come from the same campaign (same config apart from the shard\n"
    "and output, same model) and hold disjoint batches; duplicates are flagged across all of\n"
    "them (crystals/duplicate_of) and the funnel is summed. OUT must not exist.\n"
    "Exit status: 0 on success, 1 if an input is unreadable or does not belong, 2 on usage.\n";

static const char export_help[] =
    "usage: druse export ARCHIVE --format cif|poscar|extxyz -o OUT [--filter EXPR]\n"
    "                    [--include-duplicates] [--unrelaxed]\n"
    "\n"
    "Writes the archived structures for the next step (DFT): cif and poscar write one file per\n"
    "crystal into the directory OUT (named SAMPLEID-FORMULA.cif / POSCAR-SAMPLEID-FORMULA),\n"
    "extxyz one file OUT with every crystal (its record fields in the comment line).\n"
    "Duplicates (crystals/duplicate_of >= 0) are left out unless --include-duplicates.\n"
    "\n"
    "  --filter EXPR   keep crystals for which every comparison holds, joined by && or ',':\n"
    "                  FIELD OP NUMBER with OP one of < <= > >= == != and FIELD one of\n"
    "                  sample_id batch_id natoms spacegroup spacegroup_unrelaxed\n"
    "                  energy_per_atom (eV) max_force (eV/A) relax_steps converged\n"
    "                  min_distance (A) novel, e.g. 'novel==1 && energy_per_atom<-0.1'\n"
    "  --unrelaxed     write the structures as sampled instead of relaxed\n"
    "Exit status: 0 on success, 1 on a bad archive or unwritable output, 2 on usage.\n";

/* ------------------------------------------------------------------ merge */

static int same_campaign(const pipe_campaign_id *a, const pipe_campaign_id *b, const char *pa,
                         const char *pb)
{
    const char *what = strcmp(a->identity_sha256, b->identity_sha256) ? "campaign config"
                       : strcmp(a->model_sha256, b->model_sha256)     ? "model"
                                                                      : NULL;
    if (!what) return 1;
    pipe_error("merge", "%s and %s are not shards of one campaign (different %s)", pa, pb, what);
    return 0;
}

static const pipe_records *merge_src;
static int by_sample(const void *x, const void *y)
{
    uint64_t a = merge_src->sample_id[*(const long *)x], b = merge_src->sample_id[*(const long *)y];
    return a < b ? -1 : a > b;
}

/* All inputs concatenated (checked: one campaign, disjoint batches). */
static int gather(int n, char **paths, pipe_records *all, pipe_campaign_id *id0)
{
    unsigned char *seen = NULL;
    for (int k = 0; k < n; k++) {
        pipe_records r;
        pipe_campaign_id id;
        xtal_err err = {{0}};
        if (pipe_archive_read(paths[k], &r, &id, &err)) {
            pipe_error("merge", "%s", err.msg);
            free(seen);
            return 0;
        }
        int ok = k == 0 || same_campaign(id0, &id, paths[0], paths[k]);
        if (k == 0) {
            *id0 = id;
            seen = calloc((size_t)(id.batches > 0 ? id.batches : 1), 1);
        } else {
            free(id.config_text);
        }
        for (long b = 0; ok && b < r.n_batches; b++) {
            uint32_t bid = r.done_batch[b];
            if (bid >= (uint32_t)id0->batches || seen[bid]) {
                pipe_error("merge", "%s: batch %u is also in another input (shards overlap)",
                           paths[k], bid);
                ok = 0;
            } else {
                seen[bid] = 1;
                ok = !pipe_records_add_batch(all, bid, r.counts + PIPE_NCOUNTS * b, &err);
            }
        }
        for (long i = 0; ok && i < r.n; i++) ok = !pipe_records_append(all, &r, i, &err);
        pipe_records_free(&r);
        if (!ok) {
            if (err.msg[0]) pipe_error("merge", "%s", err.msg);
            free(seen);
            return 0;
        }
    }
    free(seen);
    return 1;
}

int pipe_cmd_merge(int argc, char **argv)
{
    if (argc >= 2 && pipe_is_help(argv[1])) {
        fputs(merge_help, stdout);
        return PIPE_EXIT_OK;
    }
    if (argc < 3 || argv[1][0] == '-') {
        pipe_error("merge", "expected OUT and at least one input (see druse merge --help)");
        return PIPE_EXIT_USAGE;
    }
    if (access(argv[1], F_OK) == 0) {
        pipe_error("merge", "%s exists: refusing to overwrite it", argv[1]);
        return PIPE_EXIT_FAILURE;
    }
    pipe_records all = {0}, sorted = {0};
    pipe_campaign_id id = {0};
    xtal_err err = {{0}};
    int code = PIPE_EXIT_FAILURE;
    long *order = NULL;
    if (!gather(argc - 2, argv + 2, &all, &id)) goto done;
    order = malloc((size_t)(all.n ? all.n : 1) * sizeof *order);
    for (long i = 0; order && i < all.n; i++) order[i] = i;
    merge_src = &all;
    if (order) qsort(order, (size_t)all.n, sizeof *order, by_sample);
    int rc = order ? XTAL_OK : xtal_err_set(&err, XTAL_ENOMEM, "out of memory");
    for (long i = 0; !rc && i < all.n; i++) rc = pipe_records_append(&sorted, &all, order[i], &err);
    for (long b = 0; !rc && b < all.n_batches; b++)
        rc =
            pipe_records_add_batch(&sorted, all.done_batch[b], all.counts + PIPE_NCOUNTS * b, &err);
    if (!rc) rc = pipe_archive_write_file(argv[1], &sorted, &id, &err);
    if (rc) {
        pipe_error("merge", "%s", err.msg);
        goto done;
    }
    fprintf(stderr, "druse merge: %d archives, %ld batches, %ld crystals -> %s\n", argc - 2,
            sorted.n_batches, sorted.n, argv[1]);
    code = PIPE_EXIT_OK;
done:
    free(order);
    free(id.config_text);
    pipe_records_free(&all);
    pipe_records_free(&sorted);
    return code;
}

/* ------------------------------------------------------------------ export */

typedef struct {
    char field[32];
    char op[3];
    double value;
} export_cond;

#define EXPORT_MAX_CONDS 16

static const char *const export_fields[] = {"sample_id",
                                            "batch_id",
                                            "natoms",
                                            "spacegroup",
                                            "spacegroup_unrelaxed",
                                            "energy_per_atom",
                                            "max_force",
                                            "relax_steps",
                                            "converged",
                                            "min_distance",
                                            "novel"};

static int field_known(const char *f)
{
    for (size_t k = 0; k < sizeof export_fields / sizeof *export_fields; k++)
        if (!strcmp(f, export_fields[k])) return 1;
    return 0;
}

static double field_value(const pipe_records *r, long i, const char *f)
{
    if (!strcmp(f, "sample_id")) return (double)r->sample_id[i];
    if (!strcmp(f, "batch_id")) return r->batch_id[i];
    if (!strcmp(f, "natoms")) return r->natoms[i];
    if (!strcmp(f, "spacegroup")) return r->spacegroup[i];
    if (!strcmp(f, "spacegroup_unrelaxed")) return r->spacegroup_unrelaxed[i];
    if (!strcmp(f, "energy_per_atom")) return r->energy_per_atom[i];
    if (!strcmp(f, "max_force")) return r->max_force[i];
    if (!strcmp(f, "relax_steps")) return r->relax_steps[i];
    if (!strcmp(f, "converged")) return r->converged[i];
    if (!strcmp(f, "min_distance")) return r->min_distance[i];
    return r->novel[i]; /* the last of export_fields (checked when parsed) */
}

/* Parses "a<1 && b>=2, c==3" into conds. Returns the count, or -1 (message printed). */
static int parse_filter(const char *expr, export_cond *conds)
{
    int n = 0;
    const char *p = expr;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '&') p++;
        if (!*p) break;
        if (n == EXPORT_MAX_CONDS) {
            pipe_error("export", "--filter: at most %d comparisons", EXPORT_MAX_CONDS);
            return -1;
        }
        export_cond *c = &conds[n];
        int k = 0;
        while ((p[0] == '_' || (p[0] >= 'a' && p[0] <= 'z')) && k < 31) c->field[k++] = *p++;
        c->field[k] = 0;
        while (*p == ' ') p++;
        k = 0;
        while (strchr("<>=!", *p) && *p && k < 2) c->op[k++] = *p++;
        c->op[k] = 0;
        char *end;
        c->value = strtod(p, &end);
        static const char *ops[] = {"<", "<=", ">", ">=", "==", "!="};
        int op_ok = 0;
        for (int j = 0; j < 6; j++) op_ok |= !strcmp(c->op, ops[j]);
        if (!field_known(c->field)) {
            pipe_error("export", "--filter: unknown field '%s' (see druse export --help)",
                       c->field);
            return -1;
        }
        if (!op_ok || end == p) {
            pipe_error("export", "--filter '%s': expected FIELD OP NUMBER near '%s'", expr, p);
            return -1;
        }
        p = end;
        n++;
    }
    return n;
}

static int cond_holds(const export_cond *c, double v)
{
    if (!strcmp(c->op, "<")) return v < c->value;
    if (!strcmp(c->op, "<=")) return v <= c->value;
    if (!strcmp(c->op, ">")) return v > c->value;
    if (!strcmp(c->op, ">=")) return v >= c->value;
    if (!strcmp(c->op, "==")) return v == c->value;
    return v != c->value;
}

static int write_one(const pipe_records *r, long i, const char *format, const char *out,
                     int unrelaxed, xtal_err *err)
{
    xtal_crystal c = {0};
    int rc = pipe_records_crystal(r, i, unrelaxed, &c, err);
    if (rc) return rc;
    char path[4400];
    unsigned long long id = (unsigned long long)r->sample_id[i];
    snprintf(c.id, sizeof c.id, "druse-%llu", id);
    if (!strcmp(format, "cif")) {
        snprintf(path, sizeof path, "%s/%llu-%s.cif", out, id, r->formula[i]);
        rc = xtal_write_cif(&c, path, err);
    } else if (!strcmp(format, "poscar")) {
        snprintf(path, sizeof path, "%s/POSCAR-%llu-%s", out, id, r->formula[i]);
        rc = xtal_write_poscar(&c, path, err);
    } else {
        char extra[512];
        snprintf(extra, sizeof extra,
                 "id=%s sample_id=%llu spacegroup=%d energy_per_atom=%.10g max_force=%.6g novel=%d",
                 c.id, id, r->spacegroup[i], r->energy_per_atom[i], r->max_force[i], r->novel[i]);
        rc = xtal_write_extxyz(&c, extra, out, 1, err);
    }
    xtal_crystal_free(&c);
    return rc;
}

typedef struct {
    const char *archive, *format, *out, *filter;
    int include_dups, unrelaxed;
} export_args;

static int export_parse(int argc, char **argv, export_args *a)
{
    static const struct option longopts[] = {{"format", required_argument, 0, 'f'},
                                             {"filter", required_argument, 0, 'F'},
                                             {"include-duplicates", no_argument, 0, 'd'},
                                             {"unrelaxed", no_argument, 0, 'u'},
                                             {0, 0, 0, 0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
        if (c == 'f')
            a->format = optarg;
        else if (c == 'F')
            a->filter = optarg;
        else if (c == 'o')
            a->out = optarg;
        else if (c == 'd')
            a->include_dups = 1;
        else if (c == 'u')
            a->unrelaxed = 1;
        else
            return PIPE_EXIT_USAGE;
    }
    if (optind != argc - 1 || !a->format || !a->out ||
        (strcmp(a->format, "cif") && strcmp(a->format, "poscar") && strcmp(a->format, "extxyz"))) {
        pipe_error("export", "expected ARCHIVE --format cif|poscar|extxyz -o OUT (see --help)");
        return PIPE_EXIT_USAGE;
    }
    a->archive = argv[optind];
    return PIPE_EXIT_OK;
}

int pipe_cmd_export(int argc, char **argv)
{
    if (argc >= 2 && pipe_is_help(argv[1])) {
        fputs(export_help, stdout);
        return PIPE_EXIT_OK;
    }
    export_args a = {0};
    if (export_parse(argc, argv, &a)) return PIPE_EXIT_USAGE;
    export_cond conds[EXPORT_MAX_CONDS];
    int nc = a.filter ? parse_filter(a.filter, conds) : 0;
    if (nc < 0) return PIPE_EXIT_USAGE;
    pipe_records r;
    xtal_err err = {{0}};
    if (pipe_archive_read(a.archive, &r, NULL, &err)) {
        pipe_error("export", "%s", err.msg);
        return PIPE_EXIT_FAILURE;
    }
    int64_t *dup = malloc((size_t)(r.n ? r.n : 1) * sizeof *dup);
    int rc = dup ? pipe_archive_read_duplicates(a.archive, r.n, dup, &err)
                 : xtal_err_set(&err, XTAL_ENOMEM, "out of memory");
    int xyz = !strcmp(a.format, "extxyz");
    if (!rc && !xyz && mkdir(a.out, 0777) != 0 && errno != EEXIST)
        rc = xtal_err_set(&err, XTAL_EIO, "%s: cannot create the directory: %s", a.out,
                          strerror(errno));
    if (!rc && xyz && unlink(a.out) != 0 && errno != ENOENT)
        rc = xtal_err_set(&err, XTAL_EIO, "%s: cannot replace: %s", a.out, strerror(errno));
    long written = 0;
    for (long i = 0; !rc && i < r.n; i++) {
        int keep = a.include_dups || dup[i] < 0;
        for (int k = 0; keep && k < nc; k++)
            keep = cond_holds(&conds[k], field_value(&r, i, conds[k].field));
        if (keep && !(rc = write_one(&r, i, a.format, a.out, a.unrelaxed, &err))) written++;
    }
    free(dup);
    pipe_records_free(&r);
    if (rc) {
        pipe_error("export", "%s", err.msg);
        return PIPE_EXIT_FAILURE;
    }
    fprintf(stderr, "druse export: %ld structures -> %s\n", written, a.out);
    return PIPE_EXIT_OK;
}
