/* `druse filter IN [options]`: runs the screening filters (distance, charge neutrality,
 * symmetry) on every structure of a file, dataset or directory. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "filters/filters.h"
#include "pipeline/pipeline.h"

static const char filter_help[] =
    "usage: druse filter IN [--symprec X] [--angle-tolerance D] [--rule covalent|benchmark]\n"
    "                       [--scale K] [--min-distance D] [--checks LIST] [--json] [--profile]\n"
    "\n"
    "Runs the screening filters on every structure in IN (CIF, POSCAR, a CDVAE-style dataset\n"
    "CSV .csv/.csv.gz, or a directory of structure files), in the order of a campaign:\n"
    "  distance   minimum-image distances between sites and to a site's own images;\n"
    "             covalent rule (default): d >= K * (r_cov,i + r_cov,j), K = 0.5;\n"
    "             benchmark rule (CDVAE/DiffCSP): d >= 0.5 A between distinct sites;\n"
    "             both: volume >= 0.1 A^3\n"
    "  charge     SMACT's charge neutrality + Pauling test (CDVAE/DiffCSP smact_validity)\n"
    "  symmetry   spglib space group at --symprec\n"
    "\n"
    "  --symprec X          spglib distance tolerance, Angstrom (default 0.1)\n"
    "  --angle-tolerance D  spglib angle tolerance, degrees (default: spglib's own)\n"
    "  --rule R             covalent (default) or benchmark\n"
    "  --scale K            K of the covalent rule (default 0.5)\n"
    "  --min-distance D     the benchmark rule's minimum distance, Angstrom (default 0.5)\n"
    "  --checks LIST        comma-separated subset of distance,charge,symmetry to run\n"
    "                       (default: all three); the others print as '-' or null\n"
    "  --json               one JSON object per structure and line\n"
    "  --profile            timings on stderr: reading, filters, time inside spglib\n"
    "\n"
    "Text output: one tab-separated line per structure: id, formula, natoms, min_distance\n"
    "(distinct sites, A), min_self_distance (shortest lattice vector, A), distance_ok,\n"
    "charge (outcome), oxidation_states, spacegroup, international, result ('pass' or the\n"
    "comma-separated rejection reasons). JSON keys: id, formula, natoms, volume (A^3), rule,\n"
    "min_distance, min_pair (0-based site indices), min_self_distance, distance_ok,\n"
    "worst_pair, worst_distance, threshold (A), charge, charge_neutral, oxidation_states\n"
    "({symbol: state} or null), spacegroup, international, hall_number, wyckoffs, pass,\n"
    "rejections (names), message. Pass rates per filter go to stderr at the end.\n"
    "\n"
    "Exit status: 0 on success (rejections included), 1 if IN cannot be read, 2 on usage.\n";

typedef struct {
    flt_options flt;
    int json, profile;
} filter_args;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int parse_number(const char *option, const char *text, double lo, double *out)
{
    char *end;
    double x = strtod(text, &end);
    if (end == text || *end || !isfinite(x) || x < lo) {
        pipe_error("filter", "%s wants a number >= %g, not '%s'", option, lo, text);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_rule(const char *text, flt_distance_rule *rule)
{
    if (strcmp(text, "covalent") == 0)
        *rule = FLT_RULE_COVALENT;
    else if (strcmp(text, "benchmark") == 0)
        *rule = FLT_RULE_BENCHMARK;
    else {
        pipe_error("filter", "--rule wants covalent or benchmark, not '%s'", text);
        return -1;
    }
    return 0;
}

static int parse_checks(const char *text, flt_options *o)
{
    o->check_distance = o->check_charge = o->check_symmetry = 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", text);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (strcmp(tok, "distance") == 0)
            o->check_distance = 1;
        else if (strcmp(tok, "charge") == 0)
            o->check_charge = 1;
        else if (strcmp(tok, "symmetry") == 0)
            o->check_symmetry = 1;
        else {
            pipe_error("filter", "--checks: unknown check '%s' (distance, charge, symmetry)", tok);
            return -1;
        }
    }
    return 0;
}

enum {
    OPT_SYMPREC = 256,
    OPT_ANGLE,
    OPT_RULE,
    OPT_SCALE,
    OPT_MIN_DISTANCE,
    OPT_CHECKS,
    OPT_JSON,
    OPT_PROFILE
};

/* One parsed option; returns 0, or -1 after printing what is wrong with it. */
static int apply_option(int opt, const char *arg, filter_args *a)
{
    flt_options *o = &a->flt;
    switch (opt) {
    case OPT_SYMPREC:
        return parse_number("--symprec", arg, 1e-12, &o->symprec);
    case OPT_ANGLE:
        return parse_number("--angle-tolerance", arg, -1, &o->angle_tolerance);
    case OPT_RULE:
        return parse_rule(arg, &o->rule);
    case OPT_SCALE:
        return parse_number("--scale", arg, 0, &o->covalent_scale);
    case OPT_CHECKS:
        return parse_checks(arg, o);
    case OPT_JSON:
        a->json = 1;
        return 0;
    case OPT_PROFILE:
        a->profile = 1;
        return 0;
    }
    return -1;
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, filter_args *a)
{
    static const struct option longopts[] = {
        {"symprec", required_argument, 0, OPT_SYMPREC},
        {"angle-tolerance", required_argument, 0, OPT_ANGLE},
        {"rule", required_argument, 0, OPT_RULE},
        {"scale", required_argument, 0, OPT_SCALE},
        {"min-distance", required_argument, 0, OPT_MIN_DISTANCE},
        {"checks", required_argument, 0, OPT_CHECKS},
        {"json", no_argument, 0, OPT_JSON},
        {"profile", no_argument, 0, OPT_PROFILE},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    a->flt = flt_options_default();
    optind = 1;
    int opt, bad = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == 'h') return fputs(filter_help, stdout), PIPE_EXIT_OK;
        if (opt == '?' || opt == ':') return fputs(filter_help, stderr), PIPE_EXIT_USAGE;
        bad |= apply_option(opt, optarg, a);
    }
    if (bad) return PIPE_EXIT_USAGE;
    if (optind != argc - 1) {
        pipe_error("filter", "expected one input (file, dataset or directory); see --help");
        return PIPE_EXIT_USAGE;
    }
    return -1;
}

/* ------------------------------------------------------------------ output */

static void reasons_text(const flt_result *r, char *buf, size_t size)
{
    snprintf(buf, size, "%s", r->pass ? "pass" : "");
    for (int k = 1; k < FLT_NREASONS; k++)
        if (r->rejections & (1u << k)) {
            size_t used = strlen(buf);
            snprintf(buf + used, size - used, "%s%s", used ? "," : "",
                     flt_reason_name((flt_reason)k));
        }
}

static const char *yes_no(int x)
{
    return x ? "yes" : "no";
}

/* A distance in Angstrom, or "-" when the check did not run; inf for a one-atom cell. */
static void text_distance(int ran, double d)
{
    if (ran)
        printf("%.8f\t", d);
    else
        fputs("-\t", stdout);
}

static void print_text(const xtal_crystal *c, const flt_result *r)
{
    char formula[128], states[256], reasons[256];
    xtal_formula(c, 1, formula, sizeof formula);
    flt_charge_format(&r->charge, states, sizeof states);
    reasons_text(r, reasons, sizeof reasons);
    printf("%s\t%s\t%d\t", c->id, formula, c->natoms);
    text_distance(r->ran_distance, r->distance.min_distance);
    text_distance(r->ran_distance, r->distance.min_self_distance);
    printf("%s\t%s\t%s\t", r->ran_distance ? yes_no(r->distance.ok) : "-",
           r->ran_charge ? flt_charge_outcome_name(r->charge.outcome) : "-",
           states[0] ? states : "-");
    if (r->ran_symmetry && r->symmetry.ok)
        printf("%d\t%s\t", r->symmetry.spacegroup, r->symmetry.international);
    else
        printf("-\t-\t");
    printf("%s\n", reasons);
}

static void json_double(const char *key, double x)
{
    printf(", \"%s\": ", key);
    pipe_json_double(stdout, x);
}

static void json_pair(const char *key, int i, int j)
{
    if (i < 0)
        printf(", \"%s\": null", key);
    else
        printf(", \"%s\": [%d, %d]", key, i, j);
}

static void json_distance(const flt_result *r)
{
    const flt_distance_result *d = &r->distance;
    if (!r->ran_distance) {
        fputs(", \"rule\": null, \"volume\": null, \"min_distance\": null, \"min_pair\": null"
              ", \"min_self_distance\": null, \"distance_ok\": null, \"worst_pair\": null"
              ", \"worst_distance\": null, \"threshold\": null",
              stdout);
        return;
    }
    printf(", \"rule\": \"%s\"", d->rule == FLT_RULE_BENCHMARK ? "benchmark" : "covalent");
    json_double("volume", d->volume);
    json_double("min_distance", d->min_distance);
    json_pair("min_pair", d->min_i, d->min_j);
    json_double("min_self_distance", d->min_self_distance);
    printf(", \"distance_ok\": %s", r->ran_distance && d->ok ? "true" : "false");
    json_pair("worst_pair", d->worst_i, d->worst_j);
    json_double("worst_distance", d->worst_distance);
    json_double("threshold", d->threshold);
}

static void json_charge(const flt_result *r)
{
    const flt_charge_result *q = &r->charge;
    fputs(", \"charge\": ", stdout);
    if (r->ran_charge)
        printf("\"%s\"", flt_charge_outcome_name(q->outcome));
    else
        fputs("null", stdout);
    printf(", \"charge_neutral\": %s", r->ran_charge && q->pass ? "true" : "false");
    if (!r->ran_charge || q->outcome != FLT_CHARGE_BALANCED) {
        fputs(", \"oxidation_states\": null", stdout);
        return;
    }
    fputs(", \"oxidation_states\": {", stdout);
    for (int k = 0; k < q->nelements; k++)
        printf("%s\"%s\": %d", k ? ", " : "", xtal_element_by_Z(q->Z[k])->symbol,
               q->oxidation_state[k]);
    putchar('}');
}

static void json_symmetry(const flt_result *r)
{
    const flt_symmetry_result *s = &r->symmetry;
    if (!r->ran_symmetry || !s->ok) {
        fputs(", \"spacegroup\": null, \"international\": null, \"hall_number\": null"
              ", \"wyckoffs\": null",
              stdout);
        return;
    }
    printf(", \"spacegroup\": %d, \"international\": ", s->spacegroup);
    pipe_json_string(stdout, s->international);
    printf(", \"hall_number\": %d, \"wyckoffs\": ", s->hall_number);
    pipe_json_string(stdout, s->wyckoffs);
}

static void print_json(const xtal_crystal *c, const flt_result *r)
{
    char formula[128];
    xtal_formula(c, 1, formula, sizeof formula);
    fputs("{\"id\": ", stdout);
    pipe_json_string(stdout, c->id);
    fputs(", \"formula\": ", stdout);
    pipe_json_string(stdout, formula);
    printf(", \"natoms\": %d", c->natoms);
    json_distance(r);
    json_charge(r);
    json_symmetry(r);
    printf(", \"pass\": %s, \"rejections\": [", r->pass ? "true" : "false");
    for (int k = 1, n = 0; k < FLT_NREASONS; k++)
        if (r->rejections & (1u << k)) printf("%s\"%s\"", n++ ? ", " : "", flt_reason_name(k));
    fputs("], \"message\": ", stdout);
    pipe_json_string(stdout, r->message);
    fputs("}\n", stdout);
}

/* ------------------------------------------------------------------ summary */

typedef struct {
    flt_counts counts;
    long distance_ok, charge_ok, symmetry_ok;
    double filter_seconds, spglib_seconds, read_seconds;
} filter_tally;

static void tally_add(filter_tally *t, const flt_result *r)
{
    flt_counts_add(&t->counts, r);
    t->distance_ok += r->ran_distance && r->distance.ok;
    t->charge_ok += r->ran_charge && r->charge.pass;
    t->symmetry_ok += r->ran_symmetry && r->symmetry.ok;
}

static double percent(long k, long n)
{
    return n ? 100.0 * (double)k / (double)n : 0.0;
}

static void print_summary(const filter_tally *t, const filter_args *a)
{
    long n = t->counts.total;
    fprintf(stderr,
            "# summary: %ld structures, %ld pass (%.2f%%); distance_ok %ld (%.2f%%, %s rule), "
            "charge_neutral %ld (%.2f%%), symmetry found %ld (%.2f%%, symprec %g A)\n",
            n, t->counts.passed, percent(t->counts.passed, n), t->distance_ok,
            percent(t->distance_ok, n),
            a->flt.rule == FLT_RULE_BENCHMARK ? "benchmark" : "covalent", t->charge_ok,
            percent(t->charge_ok, n), t->symmetry_ok, percent(t->symmetry_ok, n), a->flt.symprec);
    fputs("# rejections:", stderr);
    for (int k = 1; k < FLT_NREASONS; k++)
        if (t->counts.rejected[k])
            fprintf(stderr, " %s %ld", flt_reason_name((flt_reason)k), t->counts.rejected[k]);
    fputc('\n', stderr);
    if (!a->profile) return;
    double ours = t->filter_seconds - t->spglib_seconds;
    fprintf(stderr,
            "# profile: read %.3f s; filters %.3f s (%.1f structures/s); inside spglib %.3f s "
            "(%.1f%%); ours %.3f s (%.1f%%)\n",
            t->read_seconds, t->filter_seconds, n / fmax(t->filter_seconds, 1e-12),
            t->spglib_seconds, 100.0 * t->spglib_seconds / fmax(t->filter_seconds, 1e-12), ours,
            100.0 * ours / fmax(t->filter_seconds, 1e-12));
}

/* ------------------------------------------------------------------ command */

static int filter_all(const xtal_list *list, const filter_args *a, filter_tally *t)
{
    for (int i = 0; i < list->n; i++) {
        flt_result r;
        xtal_err err = {{0}};
        double t0 = now_seconds();
        flt_spglib_seconds_reset();
        int rc = flt_check(&list->items[i], &a->flt, &r, &err);
        t->filter_seconds += now_seconds() - t0;
        t->spglib_seconds += flt_spglib_seconds();
        if (rc) {
            pipe_error("filter", "%s: %s", list->items[i].id, err.msg);
            flt_result_free(&r);
            return PIPE_EXIT_FAILURE;
        }
        tally_add(t, &r);
        if (a->json)
            print_json(&list->items[i], &r);
        else
            print_text(&list->items[i], &r);
        flt_result_free(&r);
    }
    return PIPE_EXIT_OK;
}

int pipe_cmd_filter(int argc, char **argv)
{
    filter_args a;
    int code = parse_args(argc, argv, &a);
    if (code >= 0) return code;
    const char *path = argv[optind];
    xtal_list list = {0};
    xtal_err err = {{0}};
    filter_tally t = {0};
    double t0 = now_seconds();
    if (xtal_read_any(path, &list, &err) != XTAL_OK) {
        pipe_error("filter", "%s", err.msg);
        xtal_list_free(&list);
        return PIPE_EXIT_FAILURE;
    }
    t.read_seconds = now_seconds() - t0;
    if (!a.json)
        printf("# id\tformula\tnatoms\tmin_distance\tmin_self_distance\tdistance_ok\tcharge\t"
               "oxidation_states\tspacegroup\tinternational\tresult\n");
    code = filter_all(&list, &a, &t);
    fflush(stdout);
    if (code == PIPE_EXIT_OK) print_summary(&t, &a);
    xtal_list_free(&list);
    return code;
}
