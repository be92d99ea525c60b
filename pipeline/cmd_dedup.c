/* `druse dedup IN [--reference REF] [--json]`: groups of matching structures (StructureMatcher
 * semantics, filters/match*.c) and, with a reference set, which structures are novel.
 * `druse dedup --build-index REF -o INDEX.h5` builds the reference index once. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "filters/filters.h"
#include "pipeline/pipeline.h"

static const char dedup_help[] =
    "usage: druse dedup IN [--reference REF] [--json] [--ltol X] [--stol X] [--angle-tol D]\n"
    "       druse dedup --build-index REF -o INDEX.h5\n"
    "\n"
    "Groups the structures of IN (CIF, POSCAR, a dataset CSV .csv/.csv.gz, or a directory)\n"
    "that are the same structure the way pymatgen's StructureMatcher() decides it (ltol 0.2,\n"
    "stol 0.3, angle_tol 5 degrees, primitive cells, volumes scaled; docs/matcher.md).\n"
    "Each structure is compared with the first member of every group with the same\n"
    "fingerprint (reduced formula / sites in the primitive cell), as group_structures does.\n"
    "\n"
    "  --reference REF   also mark each structure novel (matches no structure of REF) or\n"
    "                    known; REF is a saved index (.h5) or any structure input\n"
    "  --build-index REF build the novelty index of REF (every structure, reduced once) and\n"
    "                    save it to the -o file (HDF5); a campaign loads it without rebuilding\n"
    "  -o, --output FILE the index file written by --build-index\n"
    "  --json            one JSON object per structure and line, keys: index, id,\n"
    "                    fingerprint, group, duplicate_of (index of the group's first member,\n"
    "                    null for it), novel and reference_match (with --reference), error;\n"
    "                    then one summary object {\"summary\": ...}\n"
    "  --ltol X, --stol X, --angle-tol D   matcher tolerances (a loaded index keeps its own)\n"
    "\n"
    "Text output: one line per group: group number, size, fingerprint, novelty (with\n"
    "--reference: 'novel' or the matching reference id of the first member), member ids.\n"
    "Progress goes to stderr. Exit status: 0 on success, 1 if an input cannot be read or a\n"
    "structure cannot be compared (each is named), 2 on usage.\n";

typedef struct {
    const char *input, *reference, *build, *output, *pairs;
    int json, rms, progress;
    flt_match_options opt;
} dedup_args;

/* What happened to one input structure. */
typedef struct {
    long group;     /* -1 when the structure could not be reduced */
    long dup_of;    /* input index of its group's first member, -1 for the first */
    long ref_entry; /* matching reference entry, -1 when novel or no reference */
    char fp[FLT_FINGERPRINT_LEN];
    char error[sizeof(((xtal_err *)0)->msg)];
} dedup_row;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A live line on a terminal, a line every 10 s in a batch log. */
static void progress(const char *what, long done, long total, double t0, int force)
{
    static double last;
    double t = now_seconds();
    int tty = isatty(fileno(stderr));
    if (!force && t - (last > t0 ? last : t0) < (tty ? 0.5 : 10.0)) return;
    last = t;
    fprintf(stderr, "%sdruse dedup: %s %ld/%ld (%.1f s)%s", tty ? "\r" : "", what, done, total,
            t - t0, tty && !force ? "" : "\n");
    fflush(stderr);
}

static int parse_double(const char *opt, const char *text, double lo, double hi, double *out)
{
    char *end;
    double x = strtod(text, &end);
    if (end == text || *end || !isfinite(x) || x < lo || x > hi) {
        pipe_error("dedup", "%s: expected a number in [%g, %g], got '%s'", opt, lo, hi, text);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_args(int argc, char **argv, dedup_args *a)
{
    static const struct option longopts[] = {{"reference", required_argument, 0, 'r'},
                                             {"build-index", required_argument, 0, 'b'},
                                             {"output", required_argument, 0, 'o'},
                                             {"json", no_argument, 0, 'j'},
                                             {"ltol", required_argument, 0, 'L'},
                                             {"stol", required_argument, 0, 'S'},
                                             {"angle-tol", required_argument, 0, 'A'},
                                             {"pairs", required_argument, 0, 'p'}, /* tests */
                                             {"rms", no_argument, 0, 'R'},         /* tests */
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    a->opt = flt_match_options_default();
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:", longopts, NULL)) != -1) {
        switch (c) {
        case 'r':
            a->reference = optarg;
            break;
        case 'b':
            a->build = optarg;
            break;
        case 'o':
            a->output = optarg;
            break;
        case 'j':
            a->json = 1;
            break;
        case 'p':
            a->pairs = optarg;
            break;
        case 'R':
            a->rms = 1;
            break;
        case 'L':
            if (parse_double("--ltol", optarg, 0, 10, &a->opt.ltol)) return -1;
            break;
        case 'S':
            if (parse_double("--stol", optarg, 0, 10, &a->opt.stol)) return -1;
            break;
        case 'A':
            if (parse_double("--angle-tol", optarg, 0, 90, &a->opt.angle_tol)) return -1;
            break;
        case 'h':
            fputs(dedup_help, stdout);
            return 1;
        default:
            fputs(dedup_help, stderr);
            return -1;
        }
    }
    if (a->build) {
        if (!a->output || optind < argc) {
            pipe_error("dedup", "--build-index REF needs -o INDEX.h5 and no IN");
            return -1;
        }
        return 0;
    }
    if (optind != argc - 1) {
        pipe_error("dedup", "expected one input (see druse dedup --help)");
        return -1;
    }
    a->input = argv[optind];
    return 0;
}

static int read_structures(const char *path, xtal_list *list)
{
    xtal_err err = {{0}};
    if (xtal_read_any(path, list, &err) != XTAL_OK) {
        pipe_error("dedup", "%s", err.msg);
        return -1;
    }
    return 0;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Every structure of list, reduced once, appended to ix without matching (a reference keeps
 * all its structures: novelty is "matches none of them"). Returns the number refused. */
static long index_all(flt_index *ix, const xtal_list *list, const char *what)
{
    long refused = 0;
    double t0 = now_seconds();
    for (int i = 0; i < list->n; i++) {
        xtal_err err = {{0}};
        long entry;
        if (flt_index_insert(ix, &list->items[i], &entry, &err) != XTAL_OK) {
            pipe_error("dedup", "%s: %s (left out of the index)", what, err.msg);
            refused++;
        }
        progress("indexing", i + 1, list->n, t0, 0);
    }
    if (list->n) progress("indexing", list->n, list->n, t0, 1);
    return refused;
}

static int build_index(const dedup_args *a)
{
    xtal_list list = {0};
    xtal_err err = {{0}};
    flt_index *ix = NULL;
    if (read_structures(a->build, &list)) return PIPE_EXIT_FAILURE;
    if (flt_index_new(&a->opt, &ix, &err) != XTAL_OK) {
        pipe_error("dedup", "%s", err.msg);
        xtal_list_free(&list);
        return PIPE_EXIT_FAILURE;
    }
    double t0 = now_seconds();
    long refused = index_all(ix, &list, a->build);
    double seconds = now_seconds() - t0;
    int status = PIPE_EXIT_OK;
    if (flt_index_save(ix, a->output, a->build, &err) != XTAL_OK) {
        pipe_error("dedup", "%s", err.msg);
        status = PIPE_EXIT_FAILURE;
    } else {
        fprintf(stderr, "druse dedup: %s: %ld of %d structures indexed in %.2f s -> %s\n", a->build,
                flt_index_count(ix), list.n, seconds, a->output);
    }
    flt_index_free(ix);
    xtal_list_free(&list);
    return refused ? PIPE_EXIT_FAILURE : status;
}

/* The reference: a saved index, or any structure input indexed now. */
static flt_index *load_reference(const dedup_args *a)
{
    xtal_err err = {{0}};
    flt_index *ix = NULL;
    if (has_suffix(a->reference, ".h5") || has_suffix(a->reference, ".hdf5")) {
        if (flt_index_load(a->reference, &ix, &err) != XTAL_OK) {
            pipe_error("dedup", "%s", err.msg);
            return NULL;
        }
        return ix;
    }
    xtal_list list = {0};
    if (read_structures(a->reference, &list)) return NULL;
    if (flt_index_new(&a->opt, &ix, &err) != XTAL_OK) {
        pipe_error("dedup", "%s", err.msg);
        xtal_list_free(&list);
        return NULL;
    }
    index_all(ix, &list, a->reference);
    xtal_list_free(&list);
    return ix;
}

/* ------------------------------------------------------------ grouping */

typedef struct {
    long nerrors, nnovel, ngroups;
    double seconds;
} dedup_totals;

static void dedup_one(const xtal_crystal *c, flt_index *groups, const flt_index *ref,
                      const long *group_first, dedup_row *row, long i, dedup_totals *t)
{
    xtal_err err = {{0}};
    xtal_crystal red;
    row->group = row->dup_of = row->ref_entry = -1;
    int rc = flt_match_reduce(c, flt_index_options(groups), &red, &err);
    if (rc == XTAL_OK) {
        flt_fingerprint(&red, row->fp);
        long entry;
        int added;
        rc = flt_index_add_reduced(groups, &red, &entry, &added, &err);
        if (rc == XTAL_OK) {
            row->group = entry;
            row->dup_of = added ? -1 : group_first[entry];
            t->ngroups += added;
        }
        if (rc == XTAL_OK && ref) {
            /* groups was created with ref's options, so red is reduced as ref expects */
            rc = flt_index_find_reduced(ref, &red, &row->ref_entry, &err);
            t->nnovel += rc == XTAL_OK && row->ref_entry < 0;
        }
        xtal_crystal_free(&red);
    }
    if (rc != XTAL_OK) {
        snprintf(row->error, sizeof row->error, "%s", err.msg);
        pipe_error("dedup", "structure %ld: %s", i, err.msg);
        t->nerrors++;
    }
}

static void print_json_row(const xtal_crystal *c, const dedup_row *r, long i, const flt_index *ref)
{
    printf("{\"index\": %ld, \"id\": ", i);
    pipe_json_string(stdout, c->id);
    fputs(", \"fingerprint\": ", stdout);
    pipe_json_string(stdout, r->fp);
    if (r->group >= 0)
        printf(", \"group\": %ld", r->group);
    else
        fputs(", \"group\": null", stdout);
    if (r->dup_of >= 0)
        printf(", \"duplicate_of\": %ld", r->dup_of);
    else
        fputs(", \"duplicate_of\": null", stdout);
    if (ref) {
        printf(", \"novel\": %s, \"reference_match\": ",
               r->error[0] ? "null" : (r->ref_entry < 0 ? "true" : "false"));
        if (r->ref_entry >= 0)
            pipe_json_string(stdout, flt_index_id(ref, r->ref_entry));
        else
            fputs("null", stdout);
    }
    fputs(", \"error\": ", stdout);
    if (r->error[0])
        pipe_json_string(stdout, r->error);
    else
        fputs("null", stdout);
    fputs("}\n", stdout);
}

/* Text: one line per group, members in input order. */
static void print_groups(const xtal_list *list, const dedup_row *rows, const long *group_first,
                         long ngroups, const flt_index *ref)
{
    long *size = calloc((size_t)(ngroups ? ngroups : 1), sizeof *size);
    if (!size) return;
    for (int i = 0; i < list->n; i++)
        if (rows[i].group >= 0) size[rows[i].group]++;
    printf("# group\tsize\tfingerprint\t%smembers\n", ref ? "novelty\t" : "");
    for (long g = 0; g < ngroups; g++) {
        const dedup_row *first = &rows[group_first[g]];
        printf("%ld\t%ld\t%s\t", g, size[g], first->fp);
        if (ref)
            printf("%s\t", first->ref_entry < 0 ? "novel" : flt_index_id(ref, first->ref_entry));
        for (long i = group_first[g], k = 0; i < list->n; i++)
            if (rows[i].group == g) printf(k++ ? " %s" : "%s", list->items[i].id);
        putchar('\n');
    }
    free(size);
}

static void print_summary(const dedup_args *a, int n, const dedup_totals *t, const flt_index *ref,
                          double read_s, double ref_s)
{
    if (a->json) {
        printf("{\"summary\": {\"structures\": %d, \"groups\": %ld, \"duplicates\": %ld, "
               "\"errors\": %ld",
               n, t->ngroups, n - t->ngroups - t->nerrors, t->nerrors);
        if (ref)
            printf(", \"novel\": %ld, \"reference_entries\": %ld", t->nnovel, flt_index_count(ref));
        fputs(", \"read_seconds\": ", stdout);
        pipe_json_double(stdout, read_s);
        fputs(", \"reference_seconds\": ", stdout);
        pipe_json_double(stdout, ref_s);
        fputs(", \"dedup_seconds\": ", stdout);
        pipe_json_double(stdout, t->seconds);
        fputs("}}\n", stdout);
        return;
    }
    fprintf(stderr, "druse dedup: %d structures, %ld groups, %ld duplicates, %ld errors", n,
            t->ngroups, n - t->ngroups - t->nerrors, t->nerrors);
    if (ref)
        fprintf(stderr, ", %ld novel against %ld reference structures", t->nnovel,
                flt_index_count(ref));
    fprintf(stderr, "; read %.2f s, dedup %.2f s\n", read_s, t->seconds);
}

static int dedup(const dedup_args *a)
{
    xtal_list list = {0};
    xtal_err err = {{0}};
    flt_index *groups = NULL, *ref = NULL;
    double t0 = now_seconds();
    if (read_structures(a->input, &list)) return PIPE_EXIT_FAILURE;
    double read_s = now_seconds() - t0;
    t0 = now_seconds();
    if (a->reference && !(ref = load_reference(a))) {
        xtal_list_free(&list);
        return PIPE_EXIT_FAILURE;
    }
    double ref_s = now_seconds() - t0;
    dedup_row *rows = calloc((size_t)(list.n ? list.n : 1), sizeof *rows);
    long *group_first = calloc((size_t)(list.n ? list.n : 1), sizeof *group_first);
    int status = PIPE_EXIT_FAILURE;
    if (!rows || !group_first ||
        flt_index_new(ref ? flt_index_options(ref) : &a->opt, &groups, &err)) {
        pipe_error("dedup", "%s", err.msg[0] ? err.msg : "out of memory");
        goto done;
    }
    dedup_totals t = {0};
    t0 = now_seconds();
    for (int i = 0; i < list.n; i++) {
        long before = flt_index_count(groups);
        dedup_one(&list.items[i], groups, ref, group_first, &rows[i], i, &t);
        if (flt_index_count(groups) > before) group_first[before] = i;
        progress("compared", i + 1, list.n, t0, 0);
    }
    t.seconds = now_seconds() - t0;
    if (list.n) progress("compared", list.n, list.n, t0, 1);
    if (a->json)
        for (int i = 0; i < list.n; i++) print_json_row(&list.items[i], &rows[i], i, ref);
    else
        print_groups(&list, rows, group_first, flt_index_count(groups), ref);
    print_summary(a, list.n, &t, ref, read_s, ref_s);
    status = t.nerrors ? PIPE_EXIT_FAILURE : PIPE_EXIT_OK;
done:
    free(rows);
    free(group_first);
    flt_index_free(groups);
    flt_index_free(ref);
    xtal_list_free(&list);
    return status;
}

/* ------------------------------------------------------------ pairs (for the referee test) */

/* --pairs FILE: lines "i j" (0-based indices into IN); one JSON line per pair with fit (or,
 * with --rms, get_rms_dist) of structure i against structure j. */
static int compare_pairs(const dedup_args *a)
{
    xtal_list list = {0};
    if (read_structures(a->input, &list)) return PIPE_EXIT_FAILURE;
    FILE *f = fopen(a->pairs, "r");
    if (!f) {
        pipe_error("dedup", "%s: cannot open", a->pairs);
        xtal_list_free(&list);
        return PIPE_EXIT_FAILURE;
    }
    long i, j, line = 0;
    int status = PIPE_EXIT_OK;
    double t0 = now_seconds();
    while (fscanf(f, "%ld %ld", &i, &j) == 2) {
        line++;
        if (i < 0 || j < 0 || i >= list.n || j >= list.n) {
            pipe_error("dedup", "%s:%ld: index out of range 0..%d", a->pairs, line, list.n - 1);
            status = PIPE_EXIT_FAILURE;
            break;
        }
        flt_match_result res;
        xtal_err err = {{0}};
        int rc = a->rms ? flt_match_rms_dist(&list.items[i], &list.items[j], &a->opt, &res, &err)
                        : flt_match_fit(&list.items[i], &list.items[j], &a->opt, &res, &err);
        printf("{\"i\": %ld, \"j\": %ld, \"match\": %s, \"rms\": ", i, j,
               rc == XTAL_OK ? (res.match ? "true" : "false") : "null");
        pipe_json_double(stdout, res.rms);
        fputs(", \"max_dist\": ", stdout);
        pipe_json_double(stdout, res.max_dist);
        printf(", \"lattices\": %ld, \"error\": ", res.lattices);
        if (rc != XTAL_OK)
            pipe_json_string(stdout, err.msg);
        else
            fputs("null", stdout);
        fputs("}\n", stdout);
    }
    fprintf(stderr, "druse dedup: %ld pairs in %.3f s\n", line, now_seconds() - t0);
    fclose(f);
    xtal_list_free(&list);
    return status;
}

int pipe_cmd_dedup(int argc, char **argv)
{
    dedup_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc > 0 ? PIPE_EXIT_OK : PIPE_EXIT_USAGE;
    if (a.build) return build_index(&a);
    if (a.pairs) return compare_pairs(&a);
    return dedup(&a);
}
