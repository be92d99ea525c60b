/* `druse relax IN [-o OUT] [--fmax F] [--steps N] [--fixed-cell] [--json] ...`: relaxes every
 * structure in IN with the cheap potential and FIRE (relax/relax.h), prints one outcome per
 * structure and writes the relaxed structures. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "pipeline/pipeline.h"
#include "relax/relax.h"

static const char relax_help[] =
    "usage: druse relax IN [-o OUT] [--fmax F] [--steps N] [--fixed-cell] [--json]\n"
    "                      [--max-stress GPA] [--potential SPEC] [--pairs FILE]\n"
    "                      [--filter frechet|exp]\n"
    "\n"
    "Relaxes every structure in IN (CIF, POSCAR, extended XYZ, dataset CSV or a directory) with\n"
    "FIRE on positions and cell, and prints one line per structure: id, converged, steps,\n"
    "energy per atom before and after (eV), largest force (eV/A), largest stress (GPa),\n"
    "volume before and after (A^3) and why it stopped. A failed relaxation is reported, not\n"
    "an error.\n"
    "\n"
    "  -o OUT            relaxed structures: OUT.xyz/.extxyz = one extended XYZ file (a frame\n"
    "                    per structure); OUT.cif with one structure = that CIF; else a\n"
    "                    directory of CIFs named after the ids\n"
    "  --fmax F          force threshold, eV/A (default 0.05, as ASE)\n"
    "  --steps N         step limit (default 1000); 0 prints energy, forces and stress of the\n"
    "                    input (forces and stress in the JSON; text: one line per atom)\n"
    "  --fixed-cell      move atoms only\n"
    "  --max-stress GPA  also require every |stress_ij| below it (default 0.1; 0 = off, which\n"
    "                    is ASE's criterion: only the cell rows of the filter forces)\n"
    "  --potential SPEC  mp20 (default), uff-lj or lj, with overrides as\n"
    "                    NAME:key=value,... e.g. lj:sigma=1.3,epsilon=1,rc=3.25\n"
    "                    (keys: sigma epsilon rc rc_factor rc_max r_scale depth_scale\n"
    "                    alpha_r0 shift; docs/relax.md)\n"
    "  --pairs FILE      per-pair overrides: lines 'A B r_min_A depth_eV [alpha [rc/r_min]]'\n"
    "                    (relax/pairs_mp20.tsv has this format)\n"
    "  --filter NAME     cell filter: frechet (default, ASE's FrechetCellFilter) or exp\n"
    "                    (ASE 3.22's ExpCellFilter)\n"
    "  --json            one JSON object per structure: id, natoms, converged, stop, message,\n"
    "                    steps, energy_per_atom_initial, energy_per_atom (eV), max_force (eV/A),\n"
    "                    stress (3x3, GPa), max_stress (GPa), pressure (GPa), volume_initial,\n"
    "                    volume (A^3), time_ms\n"
    "\n"
    "Exit status: 0 when every structure got an outcome, 1 when input or output failed,\n"
    "2 on usage.\n";

typedef struct {
    const char *in, *out, *spec, *pairs;
    int json;
    rlx_options opt;
} relax_args;

static int parse_double(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return end != s && !*end && !errno && isfinite(*v);
}

static int parse_args(int argc, char **argv, relax_args *a)
{
    static const struct option longopts[] = {{"fmax", required_argument, 0, 'f'},
                                             {"steps", required_argument, 0, 's'},
                                             {"fixed-cell", no_argument, 0, 'c'},
                                             {"json", no_argument, 0, 'j'},
                                             {"max-stress", required_argument, 0, 'm'},
                                             {"potential", required_argument, 0, 'p'},
                                             {"pairs", required_argument, 0, 'P'},
                                             {"filter", required_argument, 0, 'F'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    rlx_options_default(&a->opt);
    int opt, fixed = 0;
    double v;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "ho:", longopts, NULL)) != -1) {
        switch (opt) {
        case 'o':
            a->out = optarg;
            break;
        case 'c':
            fixed = 1;
            break;
        case 'j':
            a->json = 1;
            break;
        case 'p':
            a->spec = optarg;
            break;
        case 'P':
            a->pairs = optarg;
            break;
        case 'h':
            fputs(relax_help, stdout);
            return -1;
        case 'f':
            if (!parse_double(optarg, &v) || !(v > 0))
                return pipe_error("relax", "--fmax: '%s' is not a positive number", optarg), 2;
            a->opt.fmax_eV_A = v;
            break;
        case 'm':
            if (!parse_double(optarg, &v) || v < 0)
                return pipe_error("relax", "--max-stress: '%s' is not a number >= 0", optarg), 2;
            a->opt.max_stress_eV_A3 = v / RLX_EV_A3_TO_GPA;
            break;
        case 's':
            if (!parse_double(optarg, &v) || v < 0 || v > 1e7 || v != floor(v))
                return pipe_error("relax", "--steps: '%s' is not a whole number >= 0", optarg), 2;
            a->opt.max_steps = (int)v;
            break;
        case 'F':
            if (!strcmp(optarg, "frechet"))
                a->opt.cell_filter = RLX_CELL_FRECHET;
            else if (!strcmp(optarg, "exp"))
                a->opt.cell_filter = RLX_CELL_EXP;
            else
                return pipe_error("relax", "--filter: expected frechet or exp, got '%s'", optarg),
                       2;
            break;
        default:
            fputs(relax_help, stderr);
            return 2;
        }
    }
    if (fixed) a->opt.cell_filter = RLX_CELL_FIXED;
    if (optind != argc - 1) {
        pipe_error("relax", "expected one input (file or directory), got %d", argc - optind);
        fputs(relax_help, stderr);
        return 2;
    }
    a->in = argv[optind];
    return 0;
}

/* ----------------------------------------------------------------- output */

static void json_key(const char *key, double x)
{
    printf(", \"%s\": ", key);
    pipe_json_double(stdout, x);
}

static void json_matrix(const char *key, const double *m, int rows, double scale)
{
    printf(", \"%s\": [", key);
    for (int i = 0; i < rows; i++) {
        fputs(i ? ", [" : "[", stdout);
        for (int k = 0; k < 3; k++) {
            if (k) fputs(", ", stdout);
            pipe_json_double(stdout, m[3 * i + k] * scale);
        }
        putchar(']');
    }
    putchar(']');
}

static void print_json(const xtal_crystal *c, const rlx_outcome *o, double ms)
{
    fputs("{\"id\": ", stdout);
    pipe_json_string(stdout, c->id);
    printf(", \"natoms\": %d, \"converged\": %s, \"stop\": \"%s\", \"message\": ", c->natoms,
           o->converged ? "true" : "false", rlx_stop_name(o->stop));
    pipe_json_string(stdout, o->message);
    printf(", \"steps\": %d", o->steps);
    json_key("energy_per_atom_initial", o->energy_per_atom_initial_eV);
    json_key("energy_per_atom", o->energy_per_atom_eV);
    json_key("max_force", o->max_force_eV_A);
    json_matrix("stress", &o->stress_eV_A3[0][0], 3, RLX_EV_A3_TO_GPA);
    json_key("max_stress", o->max_stress_eV_A3 * RLX_EV_A3_TO_GPA);
    json_key("pressure", -(o->stress_eV_A3[0][0] + o->stress_eV_A3[1][1] + o->stress_eV_A3[2][2]) /
                             3 * RLX_EV_A3_TO_GPA);
    json_key("volume_initial", o->volume_initial_A3);
    json_key("volume", o->volume_A3);
    json_key("time_ms", ms);
    puts("}");
}

static void print_text(const xtal_crystal *c, const rlx_outcome *o)
{
    printf("%-24s %-3s %5d %12.6f %12.6f %9.4f %9.4f %11.4f %11.4f %s\n", c->id,
           o->converged ? "yes" : "no", o->steps, o->energy_per_atom_initial_eV,
           o->energy_per_atom_eV, o->max_force_eV_A, o->max_stress_eV_A3 * RLX_EV_A3_TO_GPA,
           o->volume_initial_A3, o->volume_A3, rlx_stop_name(o->stop));
}

/* --steps 0: energy, forces and stress of the input. */
static int print_evaluation(const rlx_potential *pot, const xtal_crystal *c, int json,
                            rlx_workspace *ws)
{
    xtal_err err;
    double energy = NAN, stress[3][3] = {{NAN}};
    double *forces = calloc(3 * (size_t)(c->natoms > 0 ? c->natoms : 1), sizeof(double));
    if (!forces) return pipe_error("relax", "out of memory"), PIPE_EXIT_FAILURE;
    int rc = rlx_evaluate(pot, c, &energy, forces, stress, ws, &err);
    if (json) {
        fputs("{\"id\": ", stdout);
        pipe_json_string(stdout, c->id);
        printf(", \"natoms\": %d, \"ok\": %s", c->natoms, rc ? "false" : "true");
        if (rc) fputs(", \"message\": ", stdout), pipe_json_string(stdout, err.msg);
        json_key("energy", energy);
        json_key("energy_per_atom", energy / c->natoms);
        json_matrix("forces", forces, rc ? 0 : c->natoms, 1.0);
        json_matrix("stress", &stress[0][0], rc ? 0 : 3, RLX_EV_A3_TO_GPA);
        puts("}");
    } else if (rc) {
        printf("%-24s error: %s\n", c->id, err.msg);
    } else {
        printf("%-24s energy %.10f eV (%.10f eV/atom)  stress (GPa) xx %.6f yy %.6f zz %.6f "
               "yz %.6f xz %.6f xy %.6f\n",
               c->id, energy, energy / c->natoms, stress[0][0] * RLX_EV_A3_TO_GPA,
               stress[1][1] * RLX_EV_A3_TO_GPA, stress[2][2] * RLX_EV_A3_TO_GPA,
               stress[1][2] * RLX_EV_A3_TO_GPA, stress[0][2] * RLX_EV_A3_TO_GPA,
               stress[0][1] * RLX_EV_A3_TO_GPA);
        for (int i = 0; i < c->natoms; i++)
            printf("  %4d %3d  force %14.8f %14.8f %14.8f eV/A\n", i + 1, c->Z[i], forces[3 * i],
                   forces[3 * i + 1], forces[3 * i + 2]);
    }
    free(forces);
    return PIPE_EXIT_OK;
}

/* ------------------------------------------------------------ structures out */

typedef enum { OUT_NONE, OUT_EXTXYZ, OUT_CIF_FILE, OUT_CIF_DIR } out_kind;

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static out_kind output_kind(const char *out, int nstructures)
{
    if (!out) return OUT_NONE;
    if (ends_with(out, ".xyz") || ends_with(out, ".extxyz")) return OUT_EXTXYZ;
    struct stat st;
    int is_dir = stat(out, &st) == 0 && S_ISDIR(st.st_mode);
    if (ends_with(out, ".cif") && nstructures == 1 && !is_dir) return OUT_CIF_FILE;
    return OUT_CIF_DIR;
}

/* A file name from an id: characters other than [A-Za-z0-9._-] become '_'. */
static void file_stem(const char *id, int index, char *buf, size_t size)
{
    size_t n = 0;
    for (const char *s = id; *s && n + 1 < size; s++) {
        char ch = *s;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '_' || ch == '-';
        buf[n++] = ok ? ch : '_';
    }
    buf[n] = 0;
    if (!n || buf[0] == '.') snprintf(buf, size, "structure_%d", index + 1);
}

static int write_structure(const xtal_crystal *c, const rlx_outcome *o, out_kind kind,
                           const char *out, int index, xtal_err *err)
{
    if (kind == OUT_EXTXYZ) {
        char extra[400], stem[100];
        file_stem(c->id, index, stem, sizeof stem);
        snprintf(extra, sizeof extra,
                 "id=\"%s\" converged=%s relax_steps=%d energy_per_atom=%.10g max_force=%.6g", stem,
                 o->converged ? "T" : "F", o->steps, o->energy_per_atom_eV, o->max_force_eV_A);
        return xtal_write_extxyz(c, extra, out, index > 0, err);
    }
    if (kind == OUT_CIF_FILE) return xtal_write_cif(c, out, err);
    char stem[100], path[4200];
    file_stem(c->id, index, stem, sizeof stem);
    snprintf(path, sizeof path, "%s/%s.cif", out, stem);
    struct stat st;
    if (stat(path, &st) == 0) /* a repeated id within this run: keep both */
        snprintf(path, sizeof path, "%s/%s_%d.cif", out, stem, index + 1);
    return xtal_write_cif(c, path, err);
}

static int prepare_output(out_kind kind, const char *out)
{
    if (kind != OUT_CIF_DIR) return 0;
    struct stat st;
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    if (mkdir(out, 0777) != 0) {
        pipe_error("relax", "%s: cannot create the output directory (%s)", out, strerror(errno));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------- main */

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int load_potential(const relax_args *a, rlx_potential **pot)
{
    xtal_err err;
    if (rlx_potential_parse(a->spec, pot, &err))
        return pipe_error("relax", "--potential: %s", err.msg), PIPE_EXIT_USAGE;
    if (a->pairs && rlx_potential_load_pairs(*pot, a->pairs, &err)) {
        pipe_error("relax", "--pairs: %s", err.msg);
        rlx_potential_free(*pot);
        return PIPE_EXIT_FAILURE;
    }
    return PIPE_EXIT_OK;
}

static int relax_all(const relax_args *a, const rlx_potential *pot, xtal_list *list)
{
    out_kind kind = a->opt.max_steps > 0 || a->out ? output_kind(a->out, list->n) : OUT_NONE;
    if (prepare_output(kind, a->out)) return PIPE_EXIT_FAILURE;
    rlx_workspace *ws = rlx_workspace_new();
    if (!ws) return pipe_error("relax", "out of memory"), PIPE_EXIT_FAILURE;
    if (!a->json && a->opt.max_steps > 0)
        printf("# id                     conv steps  E0/atom(eV)   E/atom(eV) Fmax(eV/A) "
               "Smax(GPa)    V0(A^3)     V(A^3) stop\n");
    int status = PIPE_EXIT_OK, nconv = 0;
    for (int i = 0; i < list->n && status == PIPE_EXIT_OK; i++) {
        xtal_crystal *c = &list->items[i];
        if (a->opt.max_steps == 0) {
            status = print_evaluation(pot, c, a->json, ws);
            continue;
        }
        rlx_outcome o;
        xtal_err err;
        double t0 = now_ms();
        if (rlx_relax(pot, &a->opt, c, &o, ws, &err) != XTAL_OK) {
            pipe_error("relax", "%s: %s", c->id, err.msg);
            status = PIPE_EXIT_FAILURE;
            break;
        }
        double ms = now_ms() - t0;
        nconv += o.converged;
        if (a->json)
            print_json(c, &o, ms);
        else
            print_text(c, &o);
        if (kind != OUT_NONE && write_structure(c, &o, kind, a->out, i, &err)) {
            pipe_error("relax", "%s", err.msg);
            status = PIPE_EXIT_FAILURE;
        }
    }
    fflush(stdout);
    if (status == PIPE_EXIT_OK && a->opt.max_steps > 0 && !a->json)
        fprintf(stderr, "druse relax: %d structures, %d converged\n", list->n, nconv);
    rlx_workspace_free(ws);
    return status;
}

int pipe_cmd_relax(int argc, char **argv)
{
    relax_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc < 0 ? PIPE_EXIT_OK : PIPE_EXIT_USAGE;
    rlx_potential *pot;
    if ((rc = load_potential(&a, &pot))) return rc;
    xtal_list list = {0};
    xtal_err err;
    if (xtal_read_any(a.in, &list, &err) != XTAL_OK) {
        pipe_error("relax", "%s", err.msg);
        xtal_list_free(&list);
        rlx_potential_free(pot);
        return PIPE_EXIT_FAILURE;
    }
    rc = relax_all(&a, pot, &list);
    xtal_list_free(&list);
    rlx_potential_free(pot);
    return rc;
}
