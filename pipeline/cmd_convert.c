/* `druse convert IN OUT`: structures from CIF, POSCAR, extended XYZ, a dataset CSV or a
 * directory, written as CIF, POSCAR or extended XYZ. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pipeline/pipeline.h"

static const char convert_help[] =
    "usage: druse convert [--format cif|poscar|extxyz] IN OUT\n"
    "\n"
    "Reads every structure in IN (a CIF with any number of data blocks, a POSCAR, an extended\n"
    "XYZ file, a CDVAE-style dataset CSV (.csv or .csv.gz), or a directory of CIF, POSCAR and\n"
    "extended XYZ files) and writes them at full double precision in the format that OUT's\n"
    "name asks for:\n"
    "  *.cif                          CIF, one P1 data block per structure\n"
    "  POSCAR*, CONTCAR*, *.vasp, *.poscar   VASP 5 POSCAR, Direct coordinates\n"
    "  *.xyz, *.extxyz                extended XYZ, every structure in one file\n"
    "--format overrides the name. For CIF and POSCAR, when IN holds several structures or OUT\n"
    "is a directory (or ends in '/'), OUT is a directory that gets one file per structure,\n"
    "named after its id (<id>.cif or <id>.vasp). Extended XYZ frames carry id=\"<id>\".\n"
    "\n"
    "Exit status: 0 on success, 1 if reading or writing fails (the message names the file),\n"
    "2 on usage errors.\n";

typedef struct {
    const char *in, *out;
    xtal_format format; /* XTAL_FMT_UNKNOWN: from OUT's name */
} convert_opts;

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "druse convert: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(druse convert --help for usage)\n");
    va_end(ap);
    return PIPE_EXIT_USAGE;
}

static int parse_format(const char *name, xtal_format *f)
{
    if (strcmp(name, "cif") == 0)
        *f = XTAL_FMT_CIF;
    else if (strcmp(name, "poscar") == 0 || strcmp(name, "vasp") == 0)
        *f = XTAL_FMT_POSCAR;
    else if (strcmp(name, "extxyz") == 0 || strcmp(name, "xyz") == 0)
        *f = XTAL_FMT_EXTXYZ;
    else
        return -1;
    return 0;
}

/* Returns -1 after --help, PIPE_EXIT_USAGE on a bad command line, else 0. */
static int parse_args(int argc, char **argv, convert_opts *o)
{
    const char *positional[2];
    int npos = 0, options_done = 0;
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *value = NULL;
        if (!options_done && pipe_is_help(a)) {
            fputs(convert_help, stdout);
            return -1;
        }
        if (!options_done && strcmp(a, "--") == 0) {
            options_done = 1;
        } else if (!options_done && strncmp(a, "--format=", 9) == 0) {
            value = a + 9;
        } else if (!options_done && strcmp(a, "--format") == 0) {
            if (++i >= argc) return usage_error("%s needs a value (cif, poscar or extxyz)", a);
            value = argv[i];
        } else if (!options_done && a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option '%s'", a);
        } else if (npos < 2) {
            positional[npos++] = a;
        } else {
            return usage_error("unexpected argument '%s' (one IN and one OUT)", a);
        }
        if (value && parse_format(value, &o->format))
            return usage_error("unknown format '%s' (cif, poscar or extxyz)", value);
    }
    if (npos < 2) return usage_error("needs IN and OUT");
    o->in = positional[0];
    o->out = positional[1];
    return 0;
}

/* ----------------------------------------------------------------- naming */

#define STEM_MAX 100

/* A file name from an id: letters, digits and "-_.+=," only; never hidden, never empty. */
static void file_stem(const char *id, char *buf)
{
    size_t n = 0;
    for (const char *s = id; *s && n + 1 < STEM_MAX; s++) {
        unsigned char ch = (unsigned char)*s;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 strchr("-_.+=,", ch);
        buf[n++] = ok ? (char)ch : '_';
    }
    buf[n] = '\0';
    if (n == 0) snprintf(buf, STEM_MAX, "structure");
    if (buf[0] == '.') buf[0] = '_';
}

typedef struct {
    char stem[STEM_MAX + 16];
    int index;
} named;

static int by_stem(const void *a, const void *b)
{
    const named *x = a, *y = b;
    int c = strcmp(x->stem, y->stem);
    return c ? c : x->index - y->index;
}

static int by_index(const void *a, const void *b)
{
    return ((const named *)a)->index - ((const named *)b)->index;
}

/* One distinct file stem per structure: repeated ids get "_2", "_3", ... in input order. */
static named *unique_stems(const xtal_list *l)
{
    named *names = calloc((size_t)l->n, sizeof *names);
    if (!names) return NULL;
    for (int i = 0; i < l->n; i++) {
        file_stem(l->items[i].id, names[i].stem);
        names[i].index = i;
    }
    qsort(names, (size_t)l->n, sizeof *names, by_stem);
    for (int i = 1, run = 1; i < l->n; i++) {
        /* names[i - run] holds the unsuffixed first of the run */
        if (strcmp(names[i].stem, names[i - run].stem) == 0) {
            run++;
            size_t len = strlen(names[i].stem);
            snprintf(names[i].stem + len, sizeof names[i].stem - len, "_%d", run);
        } else {
            run = 1;
        }
    }
    qsort(names, (size_t)l->n, sizeof *names, by_index);
    return names;
}

/* ----------------------------------------------------------------- writing */

static int write_one(const xtal_crystal *c, xtal_format f, const char *path, xtal_err *err)
{
    return f == XTAL_FMT_CIF ? xtal_write_cif(c, path, err) : xtal_write_poscar(c, path, err);
}

static int is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int make_directory(const char *path, xtal_err *err)
{
    if (mkdir(path, 0777) == 0 || (errno == EEXIST && is_directory(path))) return XTAL_OK;
    if (errno == EEXIST)
        return xtal_err_set(err, XTAL_EIO,
                            "%s exists and is not a directory (several "
                            "structures need a directory)",
                            path);
    return xtal_err_set(err, XTAL_EIO, "%s: %s", path, strerror(errno));
}

static int write_directory(const xtal_list *l, xtal_format f, const char *dir, xtal_err *err)
{
    int rc = make_directory(dir, err);
    if (rc) return rc;
    named *names = unique_stems(l);
    if (!names) return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
    size_t dirlen = strlen(dir);
    int slash = dirlen > 0 && dir[dirlen - 1] == '/';
    char *path = malloc(dirlen + sizeof names[0].stem + 8);
    if (!path) rc = xtal_err_set(err, XTAL_ENOMEM, "out of memory");
    for (int i = 0; i < l->n && !rc; i++) {
        sprintf(path, "%s%s%s%s", dir, slash ? "" : "/", names[i].stem,
                f == XTAL_FMT_CIF ? ".cif" : ".vasp");
        rc = write_one(&l->items[i], f, path, err);
    }
    free(path);
    free(names);
    return rc;
}

/* id="..." for the frame's comment line; quotes and backslashes would end the value. */
static void extxyz_extra(const char *id, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "id=\"");
    for (const char *s = id; *s && n + 2 < size; s++)
        buf[n++] = (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20) ? '_' : *s;
    snprintf(buf + n, size - n, "\"");
}

static int write_extxyz_all(const xtal_list *l, const char *path, xtal_err *err)
{
    char extra[sizeof l->items[0].id + 8];
    for (int i = 0; i < l->n; i++) {
        extxyz_extra(l->items[i].id, extra, sizeof extra);
        int rc = xtal_write_extxyz(&l->items[i], extra, path, i > 0, err);
        if (rc) return rc;
    }
    return XTAL_OK;
}

static int write_all(const xtal_list *l, xtal_format f, const char *out, xtal_err *err)
{
    if (f == XTAL_FMT_EXTXYZ) return write_extxyz_all(l, out, err);
    size_t len = strlen(out);
    int to_directory = l->n > 1 || is_directory(out) || (len > 0 && out[len - 1] == '/');
    if (to_directory) return write_directory(l, f, out, err);
    return write_one(&l->items[0], f, out, err);
}

static const char *format_name(xtal_format f)
{
    return f == XTAL_FMT_CIF ? "CIF" : f == XTAL_FMT_POSCAR ? "POSCAR" : "extended XYZ";
}

int pipe_cmd_convert(int argc, char **argv)
{
    convert_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc < 0 ? PIPE_EXIT_OK : rc;
    xtal_format f = o.format ? o.format : xtal_format_from_name(o.out);
    if (f != XTAL_FMT_CIF && f != XTAL_FMT_POSCAR && f != XTAL_FMT_EXTXYZ)
        return usage_error("cannot tell the output format from '%s': name it *.cif, *.vasp, "
                           "POSCAR or *.xyz, or give --format",
                           o.out);
    xtal_list list = {0, 0, NULL};
    xtal_err err = {{0}};
    rc = xtal_read_any(o.in, &list, &err);
    if (!rc && list.n == 0) rc = xtal_err_set(&err, XTAL_EINVALID, "%s: no structures", o.in);
    if (!rc) rc = write_all(&list, f, o.out, &err);
    if (rc) {
        pipe_error("convert", "%s", err.msg);
        xtal_list_free(&list);
        return PIPE_EXIT_FAILURE;
    }
    printf("wrote %d structure%s to %s (%s)\n", list.n, list.n == 1 ? "" : "s", o.out,
           format_name(f));
    xtal_list_free(&list);
    return PIPE_EXIT_OK;
}
