/* `druse inspect FILE... [--json] [--sites] [--summary]`: what is in structure files. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline/pipeline.h"

static const char inspect_help[] =
    "usage: druse inspect FILE... [--json] [--sites] [--summary] [--cache]\n"
    "\n"
    "Reads structures from CIF, POSCAR, a CDVAE-style dataset CSV\n"
    "(.csv or .csv.gz) or a directory of structure files, and prints one line per structure:\n"
    "id, formula (reduced), natoms, a b c (Angstrom), alpha beta gamma (degrees), volume\n"
    "(Angstrom^3) and density (g/cm^3).\n"
    "\n"
    "  --json     one JSON object per structure and line, keys: id, formula, natoms, a, b, c,\n"
    "             alpha, beta, gamma, volume, density\n"
    "  --sites    with --json: also lattice (rows, Angstrom), Z and frac (fractional)\n"
    "  --summary  only aggregate figures per file (count, atoms, elements, parse rate)\n"
    "  --cache    read a dataset CSV through its HDF5 cache (written on first use, rebuilt\n"
    "             when the CSV changes; see README 'Formats')\n"
    "\n"
    "Exit status: 0 on success, 1 if a file cannot be read (the message names it), 2 on usage.\n";

typedef struct {
    int json, sites, summary, cache;
} inspect_opts;

static void print_text(const xtal_crystal *c)
{
    double abc[3], ang[3];
    char formula[128];
    xtal_lattice_to_params(c->lattice, abc, ang);
    xtal_formula(c, 1, formula, sizeof formula);
    printf("%-24s %-16s %4d %9.4f %9.4f %9.4f %8.3f %8.3f %8.3f %11.4f %8.4f\n", c->id, formula,
           c->natoms, abc[0], abc[1], abc[2], ang[0], ang[1], ang[2], xtal_volume(c),
           xtal_density(c));
}

static void json_key_double(const char *key, double x)
{
    printf(", \"%s\": ", key);
    pipe_json_double(stdout, x);
}

static void print_sites_json(const xtal_crystal *c)
{
    fputs(", \"lattice\": [", stdout);
    for (int i = 0; i < 3; i++) {
        printf(i ? ", [" : "[");
        for (int k = 0; k < 3; k++) {
            if (k) fputs(", ", stdout);
            pipe_json_double(stdout, c->lattice[i][k]);
        }
        putchar(']');
    }
    fputs("], \"Z\": [", stdout);
    for (int a = 0; a < c->natoms; a++) printf(a ? ", %d" : "%d", c->Z[a]);
    fputs("], \"frac\": [", stdout);
    for (int a = 0; a < c->natoms; a++) {
        printf(a ? ", [" : "[");
        for (int k = 0; k < 3; k++) {
            if (k) fputs(", ", stdout);
            pipe_json_double(stdout, c->frac[3 * a + k]);
        }
        putchar(']');
    }
    putchar(']');
}

static void print_json(const xtal_crystal *c, int sites)
{
    static const char *const names[6] = {"a", "b", "c", "alpha", "beta", "gamma"};
    double abc[3], ang[3];
    char formula[128];
    xtal_lattice_to_params(c->lattice, abc, ang);
    xtal_formula(c, 1, formula, sizeof formula);
    fputs("{\"id\": ", stdout);
    pipe_json_string(stdout, c->id);
    fputs(", \"formula\": ", stdout);
    pipe_json_string(stdout, formula);
    printf(", \"natoms\": %d", c->natoms);
    for (int i = 0; i < 3; i++) json_key_double(names[i], abc[i]);
    for (int i = 0; i < 3; i++) json_key_double(names[3 + i], ang[i]);
    json_key_double("volume", xtal_volume(c));
    json_key_double("density", xtal_density(c));
    if (sites) print_sites_json(c);
    fputs("}\n", stdout);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_summary(const char *path, const xtal_list *l, double seconds, int json)
{
    long atoms = 0;
    int natoms_min = l->n ? XTAL_MAX_ATOMS : 0, natoms_max = 0, nelements = 0;
    int seen[XTAL_NUM_ELEMENTS + 1] = {0};
    double *density = malloc((size_t)(l->n ? l->n : 1) * sizeof *density);
    for (int i = 0; i < l->n; i++) {
        const xtal_crystal *c = &l->items[i];
        atoms += c->natoms;
        natoms_min = c->natoms < natoms_min ? c->natoms : natoms_min;
        natoms_max = c->natoms > natoms_max ? c->natoms : natoms_max;
        for (int a = 0; a < c->natoms; a++)
            if (!seen[c->Z[a]]) seen[c->Z[a]] = 1, nelements++;
        if (density) density[i] = xtal_density(c);
    }
    double dmed = NAN;
    if (density && l->n) {
        qsort(density, (size_t)l->n, sizeof *density, cmp_double);
        dmed = density[l->n / 2];
    }
    double per_us = l->n ? 1e6 * seconds / l->n : NAN;
    if (json) {
        fputs("{\"file\": ", stdout);
        pipe_json_string(stdout, path);
        printf(", \"structures\": %d, \"atoms\": %ld, \"natoms_min\": %d, \"natoms_max\": %d, "
               "\"elements\": %d",
               l->n, atoms, natoms_min, natoms_max, nelements);
        json_key_double("density_median", dmed);
        json_key_double("read_seconds", seconds);
        json_key_double("read_us_per_structure", per_us);
        fputs("}\n", stdout);
    } else {
        printf("%s: %d structures, %ld atoms (%d..%d per cell), %d elements, median density "
               "%.3f g/cm^3; read in %.3f s (%.1f us per structure)\n",
               path, l->n, atoms, natoms_min, natoms_max, nelements, dmed, seconds, per_us);
    }
    free(density);
}

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A dataset CSV through its cache: the crystals move into list, the properties are dropped. */
static int read_through_cache(const char *path, xtal_list *list, xtal_err *err)
{
    xtal_dataset ds = {0};
    xtal_cache_info info;
    int rc = xtal_dataset_load_ex(path, NULL, &ds, &info, err);
    if (rc == XTAL_OK) {
        *list = ds.crystals;
        memset(&ds.crystals, 0, sizeof ds.crystals);
        if (info.note[0]) fprintf(stderr, "druse inspect: cache: %s\n", info.note);
    }
    xtal_dataset_free(&ds);
    return rc;
}

static int inspect_file(const char *path, const inspect_opts *o)
{
    xtal_list list = {0};
    xtal_err err = {{0}};
    double t0 = now_seconds();
    int rc = o->cache && xtal_guess_format(path) == XTAL_FMT_CSV
                 ? read_through_cache(path, &list, &err)
                 : xtal_read_any(path, &list, &err);
    double seconds = now_seconds() - t0;
    if (rc != XTAL_OK) {
        pipe_error("inspect", "%s", err.msg);
        xtal_list_free(&list);
        return PIPE_EXIT_FAILURE;
    }
    if (o->summary) {
        print_summary(path, &list, seconds, o->json);
    } else {
        if (!o->json)
            printf("%-24s %-16s %4s %9s %9s %9s %8s %8s %8s %11s %8s\n", "# id", "formula", "nat",
                   "a", "b", "c", "alpha", "beta", "gamma", "volume", "density");
        for (int i = 0; i < list.n; i++)
            o->json ? print_json(&list.items[i], o->sites) : print_text(&list.items[i]);
    }
    xtal_list_free(&list);
    return PIPE_EXIT_OK;
}

int pipe_cmd_inspect(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, 0, 'j'},    {"sites", no_argument, 0, 's'},
        {"summary", no_argument, 0, 'S'}, {"cache", no_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},    {0, 0, 0, 0}};
    inspect_opts o = {0};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'j':
            o.json = 1;
            break;
        case 's':
            o.sites = 1;
            break;
        case 'S':
            o.summary = 1;
            break;
        case 'c':
            o.cache = 1;
            break;
        case 'h':
            fputs(inspect_help, stdout);
            return PIPE_EXIT_OK;
        default:
            fputs(inspect_help, stderr);
            return PIPE_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        pipe_error("inspect", "no input file (see druse inspect --help)");
        return PIPE_EXIT_USAGE;
    }
    int status = PIPE_EXIT_OK;
    for (int i = optind; i < argc; i++)
        if (inspect_file(argv[i], &o) != PIPE_EXIT_OK) status = PIPE_EXIT_FAILURE;
    return status;
}
