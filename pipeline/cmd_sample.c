/* `druse sample --model M.h5 --n N --seed S ... -o OUT`: structures from the diffusion model. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "generator/generator.h"
#include "pipeline/pipeline.h"

static const char sample_help[] =
    "usage: druse sample --model M.h5 --n N --seed S [options] -o OUT\n"
    "\n"
    "Samples N structures from a generator model file by the reverse diffusion (predictor-\n"
    "corrector on fractional coordinates, ancestral steps on the lattice, unmasking of atom\n"
    "types). Sample i is a function of (seed, i) only (batch id 0, index i): --batch changes\n"
    "speed and memory, never the structures.\n"
    "\n"
    "  --model M.h5         generator model file (druse-generator format)\n"
    "  --n N                number of structures (1..10000000)\n"
    "  --seed S             random seed (unsigned 64-bit, default 0)\n"
    "  --natoms K           atoms per cell; default: the model's atom-count histogram, or\n"
    "                       (a model without one) a flat histogram over 1..20\n"
    "  --composition F      fixed composition per formula unit, e.g. Fe2O3 (types never\n"
    "                       masked; --natoms must then be a multiple of the formula size;\n"
    "                       without --natoms, N is drawn from the histogram among the\n"
    "                       multiples, one formula unit when none fits)\n"
    "  --elements A,B,...   allowed elements while unmasking, e.g. Li,Fe,P,O\n"
    "  --csp-from DATA      crystal structure prediction: one structure per structure of the\n"
    "                       dataset CSV DATA (its composition and atom count, types fixed),\n"
    "                       named material_id=ID; sample i is test structure i; --n: only\n"
    "                       the first N (default all); input of druse eval --csp\n"
    "  --shard I/N          only the samples i with i mod N = I (0 <= I < N), to split a run\n"
    "                       over processes; concatenated shards equal one run\n"
    "  --steps T            reverse-process grid points (default 100; DiffCSP uses 1000)\n"
    "  --stride S           visit every S-th grid point (T/S steps; default 1)\n"
    "  --no-corrector       predictor only (half the network evaluations)\n"
    "  --temperature X      softmax temperature when unmasking types (default 1)\n"
    "  --noise-scale X      factor on the Gaussian terms of the reverse process, [0, 2]\n"
    "                       (default 1; below 1: lower-temperature sampling)\n"
    "  --batch B            samples per network batch (default 64)\n"
    "  --trajectory K       also write every K-th reverse step of every sample to\n"
    "                       OUT.traj.xyz (extended XYZ; masked atoms are species X)\n"
    "  -o, --output OUT     *.xyz / *.extxyz: one extended XYZ file; anything else: a\n"
    "                       directory of CIFs sample_NNNNNN.cif (created)\n"
    "\n"
    "Degenerate samples (non-finite, or cell volume < 0.01 A^3 per atom) are counted and not\n"
    "written. A progress line goes to stderr.\n"
    "Exit status: 0 on success, 1 if the work failed (the message names the file), 2 on usage.\n";

typedef struct {
    const char *model, *out, *composition, *elements, *csp_from;
    long n, shard, nshards;
    uint64_t seed;
    int natoms, steps, stride, corrector, batch, traj_every;
    double temperature, noise_scale;
} sample_args;

static int usage_error(const char *fmt, const char *a, const char *b)
{
    char msg[2048];
    snprintf(msg, sizeof msg, fmt, a, b);
    pipe_error("sample", "%s (see druse sample --help)", msg);
    return PIPE_EXIT_USAGE;
}

static int parse_long(const char *opt, const char *text, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end || errno || v < lo || v > hi) {
        pipe_error("sample", "%s: expected an integer in %ld..%ld, got '%s'", opt, lo, hi, text);
        return PIPE_EXIT_USAGE;
    }
    *out = v;
    return 0;
}

/* A real number in (lo, hi] (lo_open) or [lo, hi]; hi may be INFINITY. */
static int parse_real(const char *opt, const char *text, double lo, int lo_open, double hi,
                      double *out)
{
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end || !isfinite(v) || v < lo || (lo_open && v == lo) || v > hi) {
        if (isinf(hi))
            pipe_error("sample", "%s: expected a number > %g, got '%s'", opt, lo, text);
        else
            pipe_error("sample", "%s: expected a number in %c%g, %g], got '%s'", opt,
                       lo_open ? '(' : '[', lo, hi, text);
        return PIPE_EXIT_USAGE;
    }
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, sample_args *a)
{
    memset(a, 0, sizeof *a);
    a->steps = 100;
    a->stride = 1;
    a->corrector = 1;
    a->batch = 64;
    a->temperature = 1.0;
    a->noise_scale = 1.0;
    a->nshards = 1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (pipe_is_help(arg)) {
            fputs(sample_help, stdout);
            return -1;
        }
        if (strcmp(arg, "--no-corrector") == 0) {
            a->corrector = 0;
            continue;
        }
        char name[64];
        const char *val = NULL;
        const char *eq = strchr(arg, '=');
        if (strncmp(arg, "--", 2) == 0 && eq) {
            size_t len = (size_t)(eq - arg);
            if (len >= sizeof name) return usage_error("unknown option '%s'%s", arg, "");
            memcpy(name, arg, len);
            name[len] = 0;
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", arg);
        }
        static const char *const known[] = {
            "--model",      "--n",     "--seed",   "--natoms",      "--composition",
            "--elements",   "--steps", "--stride", "--temperature", "--batch",
            "--trajectory", "-o",      "--output", "--csp-from", "--shard",
            "--noise-scale"};
        int k = -1;
        for (int j = 0; j < (int)(sizeof known / sizeof known[0]); j++)
            if (strcmp(name, known[j]) == 0) k = j;
        if (k < 0) {
            if (arg[0] == '-') return usage_error("unknown option '%s'%s", arg, "");
            return usage_error("unexpected argument '%s'%s", arg, "");
        }
        if (!val) {
            if (++i >= argc) return usage_error("%s needs a value%s", name, "");
            val = argv[i];
        }
        long v = 0;
        int rc = 0;
        switch (k) {
        case 0:
            a->model = val;
            break;
        case 1:
            rc = parse_long(name, val, 1, 10000000, &a->n);
            break;
        case 2: {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(val, &end, 10);
            if (end == val || *end || errno || val[0] == '-')
                return usage_error("--seed: expected an unsigned integer, got '%s'%s", val, "");
            a->seed = (uint64_t)s;
            break;
        }
        case 3:
            rc = parse_long(name, val, 1, 10000, &v), a->natoms = (int)v;
            break;
        case 4:
            a->composition = val;
            break;
        case 5:
            a->elements = val;
            break;
        case 6:
            rc = parse_long(name, val, 1, 1 << 23, &v), a->steps = (int)v;
            break;
        case 7:
            rc = parse_long(name, val, 1, 1 << 23, &v), a->stride = (int)v;
            break;
        case 8:
            rc = parse_real(name, val, 0, 1, INFINITY, &a->temperature);
            break;
        case 9:
            rc = parse_long(name, val, 1, 65536, &v), a->batch = (int)v;
            break;
        case 10:
            rc = parse_long(name, val, 1, 1 << 23, &v), a->traj_every = (int)v;
            break;
        case 11:
        case 12:
            a->out = val;
            break;
        case 13:
            a->csp_from = val;
            break;
        case 15:
            rc = parse_real(name, val, 0, 0, 2, &a->noise_scale);
            break;
        default: {
            char *end;
            errno = 0;
            a->shard = strtol(val, &end, 10);
            if (end == val || *end != '/') return usage_error("--shard: expected I/N, got '%s'%s", val, "");
            const char *rest = end + 1;
            a->nshards = strtol(rest, &end, 10);
            if (end == rest || *end || errno || a->nshards < 1 || a->shard < 0 ||
                a->shard >= a->nshards)
                return usage_error("--shard: expected I/N with 0 <= I < N, got '%s'%s", val, "");
            break;
        }
        }
        if (rc) return rc;
    }
    if (!a->model) return usage_error("needs --model M.h5%s%s", "", "");
    if (!a->n && !a->csp_from) return usage_error("needs --n N%s%s", "", "");
    if (a->csp_from && (a->composition || a->natoms || a->elements))
        return usage_error("--csp-from takes composition and atom count from the dataset: "
                           "no --composition, --natoms or --elements%s%s", "", "");
    if (!a->out) return usage_error("needs -o OUT%s%s", "", "");
    if (a->stride > a->steps) return usage_error("--stride larger than --steps%s%s", "", "");
    return 0;
}

/* "Fe2O3" -> 26 26 8 8 8 (one formula unit, in order). Returns the count or -1. */
static int parse_composition(const char *s, int *Z, int cap, char *bad, size_t badsize)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        if (!isupper((unsigned char)*p)) {
            snprintf(bad, badsize, "'%s' at '%s'", s, p);
            return -1;
        }
        char sym[4] = {*p++, 0, 0, 0};
        if (islower((unsigned char)*p)) sym[1] = *p++;
        long cnt = 1;
        if (isdigit((unsigned char)*p)) {
            char *end;
            cnt = strtol(p, &end, 10);
            p = end;
        }
        int z = xtal_element_from_symbol(sym);
        if (!z || cnt < 1 || n + cnt > cap) {
            snprintf(bad, badsize, "'%s': element '%s' x %ld", s, sym, cnt);
            return -1;
        }
        for (long k = 0; k < cnt; k++) Z[n++] = z;
    }
    if (n == 0) snprintf(bad, badsize, "'%s' is empty", s);
    return n ? n : -1;
}

static int parse_elements(const char *s, int *Z, int cap, char *bad, size_t badsize)
{
    int n = 0;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        while (*tok == ' ') tok++;
        int z = xtal_element_from_symbol(tok);
        if (!z || n >= cap) {
            snprintf(bad, badsize, "'%s'", tok);
            return -1;
        }
        Z[n++] = z;
    }
    if (n == 0) snprintf(bad, badsize, "'%s' names no element", s);
    return n ? n : -1;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress(long done, long total, long bad, double t0, int force)
{
    static double last;
    double t = now_seconds();
    int tty = isatty(fileno(stderr));
    if (!force && t - (last > t0 ? last : t0) < (tty ? 0.5 : 10.0)) return;
    last = t;
    fprintf(stderr, "%sdruse sample: %ld/%ld structures, %ld degenerate (%.1f s, %.2f/s)%s",
            tty ? "\r" : "", done, total, bad, t - t0, t > t0 ? done / (t - t0) : 0.0,
            tty && !force ? "" : "\n");
    fflush(stderr);
}

typedef struct {
    FILE *fp;
    uint32_t first;
    int failed;
} traj_ctx;

/* One extended XYZ frame per sample and kept step; masked atoms are species X. */
static void write_traj(void *ctx, int step, double t, const gen_batch *s)
{
    traj_ctx *tc = ctx;
    if (tc->failed) return;
    for (int b = 0; b < s->n_crystals; b++) {
        int a0 = s->offsets[b], a1 = s->offsets[b + 1];
        const float *L = s->lattice + 9 * (size_t)b;
        fprintf(tc->fp, "%d\nLattice=\"", a1 - a0);
        for (int k = 0; k < 9; k++) fprintf(tc->fp, k ? " %.9g" : "%.9g", (double)L[k]);
        fprintf(tc->fp,
                "\" Properties=species:S:1:pos:R:3 sample=%u step=%d t=%.6g pbc=\"T T T\"\n",
                tc->first + (uint32_t)b, step, t);
        for (int i = a0; i < a1; i++) {
            const float *f = s->frac + 3 * (size_t)i;
            double x[3];
            for (int c = 0; c < 3; c++)
                x[c] = (double)f[0] * L[c] + (double)f[1] * L[3 + c] + (double)f[2] * L[6 + c];
            const xtal_element *e = xtal_element_by_Z(s->types[i]);
            fprintf(tc->fp, "%-2s %.9g %.9g %.9g\n", e ? e->symbol : "X", x[0], x[1], x[2]);
        }
    }
    if (ferror(tc->fp)) tc->failed = 1;
}

/* Sample index (a CSP sample: named by its test structure's material_id) as one extended XYZ
 * frame appended to a.out, or as a.out/sample_NNNNNN.cif (a CSP sample: a.out/ID.cif). */
static int write_sample(const sample_args *a, int xyz, xtal_crystal *c, long index,
                        const char *material_id, xtal_err *err)
{
    if (material_id)
        snprintf(c->id, sizeof c->id, "%s", material_id);
    else
        snprintf(c->id, sizeof c->id, "sample_%06ld", index);
    char extra[512];
    int len = snprintf(extra, sizeof extra, "sample=%ld seed=%llu", index,
                       (unsigned long long)a->seed);
    if (material_id) snprintf(extra + len, sizeof extra - (size_t)len, " material_id=%s", c->id);
    if (xyz) return xtal_write_extxyz(c, extra, a->out, 1, err);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.cif", a->out, c->id);
    return xtal_write_cif(c, path, err);
}

int pipe_cmd_sample(int argc, char **argv)
{
    sample_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc < 0 ? PIPE_EXIT_OK : rc;
    int comp[256], elems[128], ncomp = 0, nelem = 0;
    char bad[256];
    if (a.composition && (ncomp = parse_composition(a.composition, comp, 256, bad, sizeof bad)) < 0)
        return usage_error("--composition: cannot read %s%s", bad, "");
    if (a.elements && (nelem = parse_elements(a.elements, elems, 128, bad, sizeof bad)) < 0)
        return usage_error("--elements: unknown element %s%s", bad, "");
    if (ncomp && a.natoms && a.natoms % ncomp) {
        pipe_error("sample", "--natoms %d is not a multiple of %s (%d atoms)", a.natoms,
                   a.composition, ncomp);
        return PIPE_EXIT_USAGE;
    }
    xtal_format fmt = xtal_format_from_name(a.out);
    int xyz = fmt == XTAL_FMT_EXTXYZ;
    int csp = a.csp_from != NULL;
    xtal_dataset csp_data = {0};
    if (csp) {
        xtal_err derr = {{0}};
        if (xtal_dataset_load(a.csp_from, NULL, &csp_data, &derr) != XTAL_OK) {
            pipe_error("sample", "%s", derr.msg);
            xtal_dataset_free(&csp_data);
            return PIPE_EXIT_FAILURE;
        }
        if (a.n == 0 || a.n > csp_data.crystals.n) a.n = csp_data.crystals.n;
    }

    gen_model m;
    xtal_err err = {{0}};
    rc = gen_model_load(&m, a.model, &err);
    if (rc) {
        pipe_error("sample", "%s", err.msg);
        xtal_dataset_free(&csp_data);
        return PIPE_EXIT_FAILURE;
    }
    /* a model file without an atom-count histogram (untrained): flat over 1..20 */
    double flat[21];
    for (int k = 0; k <= 20; k++) flat[k] = k ? 1.0 : 0.0;
    gen_sampler_opts o = gen_sampler_opts_default();
    o.steps = a.steps;
    o.stride = a.stride;
    o.corrector = a.corrector;
    o.type_temperature = a.temperature;
    o.noise_scale = a.noise_scale;
    o.natoms = a.natoms;
    o.natoms_hist = m.natoms_hist ? m.natoms_hist : flat;
    o.hist_len = m.natoms_hist ? m.natoms_hist_len : 21;
    if (ncomp) {
        o.composition = comp;
        o.comp_len = ncomp;
    }
    if (nelem) {
        o.elements = elems;
        o.n_elements = nelem;
    }

    int exit_code = PIPE_EXIT_OK;
    FILE *tfp = NULL;
    char tpath[4200];
    gen_workspace *w = gen_workspace_new();
    xtal_crystal *cr = calloc((size_t)a.batch, sizeof *cr);
    int *status = calloc((size_t)a.batch, sizeof(int));
    if (!w || !cr || !status) {
        pipe_error("sample", "out of memory");
        exit_code = PIPE_EXIT_FAILURE;
        goto done;
    }
    if (!xyz && mkdir(a.out, 0777) != 0 && errno != EEXIST) {
        pipe_error("sample", "%s: cannot create directory: %s", a.out, strerror(errno));
        exit_code = PIPE_EXIT_FAILURE;
        goto done;
    }
    if (xyz) {
        FILE *f = fopen(a.out, "w"); /* truncate: frames are appended below */
        if (!f) {
            pipe_error("sample", "%s: cannot write: %s", a.out, strerror(errno));
            exit_code = PIPE_EXIT_FAILURE;
            goto done;
        }
        fclose(f);
    }
    if (a.traj_every) {
        snprintf(tpath, sizeof tpath, "%s.traj.xyz", a.out);
        tfp = fopen(tpath, "w");
        if (!tfp) {
            pipe_error("sample", "%s: cannot write: %s", tpath, strerror(errno));
            exit_code = PIPE_EXIT_FAILURE;
            goto done;
        }
    }
    double t0 = now_seconds();
    long lo = a.n * a.shard / a.nshards, hi = a.n * (a.shard + 1) / a.nshards;
    long done_n = 0, nbad = 0, written = 0;
    for (long first = lo; first < hi; first += csp ? 1 : a.batch) {
        int count = csp ? 1 : (int)(hi - first < a.batch ? hi - first : a.batch);
        traj_ctx tc = {tfp, (uint32_t)first, 0};
        if (csp) { /* the test structure's own cell contents, types fixed */
            const xtal_crystal *ref = &csp_data.crystals.items[first];
            o.composition = ref->Z;
            o.comp_len = o.natoms = ref->natoms;
        }
        memset(cr, 0, (size_t)count * sizeof *cr);
        rc = gen_sample(&m, w, &o, a.seed, 0, (uint32_t)first, count, cr, status,
                        tfp ? write_traj : NULL, a.traj_every ? a.traj_every : 1, &tc, &err);
        if (rc) {
            pipe_error("sample", "%s: %s", a.model, err.msg);
            exit_code = PIPE_EXIT_FAILURE;
            goto done;
        }
        if (tc.failed) {
            pipe_error("sample", "%s: write failed", tpath);
            exit_code = PIPE_EXIT_FAILURE;
        }
        for (int i = 0; i < count && exit_code == PIPE_EXIT_OK; i++) {
            if (status[i] != GEN_SAMPLE_OK) {
                nbad++;
                continue;
            }
            const char *id = csp ? csp_data.crystals.items[first].id : NULL;
            if (write_sample(&a, xyz, &cr[i], first + i, id, &err)) {
                pipe_error("sample", "%s", err.msg);
                exit_code = PIPE_EXIT_FAILURE;
            }
            written++;
        }
        for (int i = 0; i < count; i++) xtal_crystal_free(&cr[i]);
        if (exit_code) goto done;
        done_n += count;
        progress(done_n, hi - lo, nbad, t0, first + count == hi);
    }
    fprintf(stderr, "druse sample: wrote %ld structures to %s (%ld degenerate, not written)\n",
            written, a.out, nbad);
done:
    if (tfp && fclose(tfp) != 0 && exit_code == PIPE_EXIT_OK) {
        pipe_error("sample", "%s: write failed", tpath);
        exit_code = PIPE_EXIT_FAILURE;
    }
    free(cr);
    free(status);
    gen_workspace_free(w);
    gen_model_free(&m);
    xtal_dataset_free(&csp_data);
    return exit_code;
}
