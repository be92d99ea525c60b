/* Structure files in general: format guessing, xtal_read_any (files, directories, dataset
 * CSVs), and the small helpers the readers and writers share (crystal/io_util.h). */
#include "crystal/io_util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "crystal/crystal.h"

/* ---------------------------------------------------------------- helpers */

static int read_stream(FILE *fp, const char *path, size_t size_hint, char **text, size_t *len,
                       xtal_err *err)
{
    size_t cap = size_hint + 1 > 4096 ? size_hint + 1 : 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) return xtal_err_set(err, XTAL_ENOMEM, "%s: out of memory", path);
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > XTAL_IO_MAX_FILE_BYTES) {
                free(buf);
                return xtal_err_set(err, XTAL_ELIMIT, "%s: larger than the %zu-byte limit", path,
                                    XTAL_IO_MAX_FILE_BYTES);
            }
            char *bigger = realloc(buf, 2 * cap);
            if (!bigger) {
                free(buf);
                return xtal_err_set(err, XTAL_ENOMEM, "%s: out of memory", path);
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, fp);
        n += got;
        if (got == 0) break;
    }
    if (ferror(fp)) {
        int e = errno;
        free(buf);
        return xtal_err_set(err, XTAL_EIO, "%s: read error: %s", path, strerror(e));
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return XTAL_OK;
}

int xtal_io_read_text(const char *path, char **text, size_t *len, xtal_err *err)
{
    *text = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return xtal_err_set(err, XTAL_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    size_t hint = 0;
    if (fstat(fileno(fp), &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            fclose(fp);
            return xtal_err_set(err, XTAL_EIO, "%s: is a directory", path);
        }
        if (S_ISREG(st.st_mode) && (size_t)st.st_size > XTAL_IO_MAX_FILE_BYTES) {
            fclose(fp);
            return xtal_err_set(err, XTAL_ELIMIT, "%s: %lld bytes, over the %zu-byte limit", path,
                                (long long)st.st_size, XTAL_IO_MAX_FILE_BYTES);
        }
        if (S_ISREG(st.st_mode)) hint = (size_t)st.st_size;
    }
    int rc = read_stream(fp, path, hint, text, len, err);
    fclose(fp);
    if (rc) return rc;
    /* Text formats never hold NUL; catching it here gives binary files one clear message. */
    const char *nul = memchr(*text, '\0', *len);
    if (nul) {
        size_t offset = (size_t)(nul - *text);
        free(*text);
        *text = NULL;
        return xtal_err_set(err, XTAL_EPARSE,
                            "%s: binary data (NUL byte at offset %zu), not a text structure file",
                            path, offset);
    }
    return XTAL_OK;
}

int xtal_io_ends_with(const char *name, const char *suffix)
{
    size_t n = strlen(name), m = strlen(suffix);
    return n >= m && strcasecmp(name + n - m, suffix) == 0;
}

void xtal_io_basename(const char *path, const char *const *exts, char *buf, size_t size)
{
    /* Trailing slashes ("dir/") do not make the base name empty. */
    size_t end = strlen(path);
    while (end > 1 && path[end - 1] == '/') end--;
    size_t start = end;
    while (start > 0 && path[start - 1] != '/') start--;
    size_t n = end - start;
    for (const char *const *e = exts; e && *e; e++) {
        size_t m = strlen(*e);
        if (n > m && strncasecmp(path + start + n - m, *e, m) == 0) {
            n -= m;
            break;
        }
    }
    snprintf(buf, size, "%.*s", (int)n, path + start);
}

int xtal_io_close_written(FILE *fp, const char *path, xtal_err *err)
{
    int failed = fflush(fp) != 0 || ferror(fp);
    int e = errno;
    if (fclose(fp) != 0 && !failed) {
        failed = 1;
        e = errno;
    }
    if (failed) return xtal_err_set(err, XTAL_EIO, "%s: write error: %s", path, strerror(e));
    return XTAL_OK;
}

/* ---------------------------------------------------------------- formats */

xtal_format xtal_format_from_name(const char *name)
{
    char base[256];
    xtal_io_basename(name, NULL, base, sizeof base);
    if (xtal_io_ends_with(base, ".cif")) return XTAL_FMT_CIF;
    if (xtal_io_ends_with(base, ".csv") || xtal_io_ends_with(base, ".csv.gz")) return XTAL_FMT_CSV;
    if (xtal_io_ends_with(base, ".xyz") || xtal_io_ends_with(base, ".extxyz"))
        return XTAL_FMT_EXTXYZ;
    if (xtal_io_ends_with(base, ".vasp") || xtal_io_ends_with(base, ".poscar"))
        return XTAL_FMT_POSCAR;
    /* VASP's own names, with the usual decorations: POSCAR, CONTCAR_relaxed, POSCAR-007. */
    if (strncasecmp(base, "POSCAR", 6) == 0 || strncasecmp(base, "CONTCAR", 7) == 0)
        return XTAL_FMT_POSCAR;
    return XTAL_FMT_UNKNOWN;
}

xtal_format xtal_guess_format(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return XTAL_FMT_DIR;
    return xtal_format_from_name(path);
}

/* -------------------------------------------------------------- read_any */

static int read_poscar_into(const char *path, xtal_list *out, xtal_err *err)
{
    xtal_crystal c;
    int rc = xtal_read_poscar(path, &c, err);
    if (rc) return rc;
    rc = xtal_list_push(out, &c, err);
    if (rc) xtal_crystal_free(&c);
    return rc;
}

static int read_csv_into(const char *path, xtal_list *out, xtal_err *err)
{
    xtal_dataset ds;
    memset(&ds, 0, sizeof ds);
    int rc = xtal_dataset_read_csv(path, -1, &ds, err);
    for (int i = 0; i < ds.crystals.n && !rc; i++)
        rc = xtal_list_push(out, &ds.crystals.items[i], err);
    xtal_dataset_free(&ds); /* frees what was not moved */
    return rc;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* Names of the structure files (CIF, POSCAR, extended XYZ) directly inside dir, sorted by
 * strcmp. Hidden files, subdirectories and other formats (dataset CSVs included) are skipped. */
static int list_structure_files(const char *dir, char ***names_out, size_t *n_out, xtal_err *err)
{
    DIR *d = opendir(dir);
    if (!d) return xtal_err_set(err, XTAL_EIO, "%s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = XTAL_OK;
    struct dirent *ent;
    while (!rc && (ent = readdir(d)) != NULL) {
        if (ent->d_name[0] == '.') continue;
        xtal_format f = xtal_format_from_name(ent->d_name);
        if (f != XTAL_FMT_CIF && f != XTAL_FMT_POSCAR && f != XTAL_FMT_EXTXYZ) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **bigger = realloc(names, cap * sizeof *names);
            if (!bigger) {
                rc = xtal_err_set(err, XTAL_ENOMEM, "%s: out of memory", dir);
                break;
            }
            names = bigger;
        }
        if (!(names[n] = strdup(ent->d_name)))
            rc = xtal_err_set(err, XTAL_ENOMEM, "%s: out of memory", dir);
        else
            n++;
    }
    closedir(d);
    if (rc) {
        free_names(names, n);
        return rc;
    }
    if (n > 1) qsort(names, n, sizeof *names, compare_names);
    *names_out = names;
    *n_out = n;
    return XTAL_OK;
}

static int read_dir_into(const char *dir, xtal_list *out, xtal_err *err)
{
    char **names = NULL;
    size_t n = 0;
    int rc = list_structure_files(dir, &names, &n, err);
    if (rc) return rc;
    if (n == 0)
        rc = xtal_err_set(err, XTAL_EINVALID,
                          "%s: no structure files (*.cif, POSCAR*, CONTCAR*, *.vasp, *.poscar, "
                          "*.xyz, *.extxyz) in this directory",
                          dir);
    size_t dirlen = strlen(dir);
    int has_slash = dirlen > 0 && dir[dirlen - 1] == '/';
    for (size_t i = 0; i < n && !rc; i++) {
        size_t size = dirlen + strlen(names[i]) + 2;
        char *path = malloc(size);
        if (!path) {
            rc = xtal_err_set(err, XTAL_ENOMEM, "%s: out of memory", dir);
            break;
        }
        snprintf(path, size, "%s%s%s", dir, has_slash ? "" : "/", names[i]);
        struct stat st;
        /* Only regular files (or links to them): a subdirectory named x.cif is skipped. */
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            xtal_format f = xtal_format_from_name(names[i]);
            if (f == XTAL_FMT_CIF)
                rc = xtal_read_cif_file(path, out, err);
            else if (f == XTAL_FMT_EXTXYZ)
                rc = xtal_read_extxyz(path, out, err);
            else
                rc = read_poscar_into(path, out, err);
        }
        free(path);
    }
    free_names(names, n);
    return rc;
}

static int read_by_format(const char *path, xtal_list *out, xtal_err *err)
{
    switch (xtal_guess_format(path)) {
    case XTAL_FMT_CIF:
        return xtal_read_cif_file(path, out, err);
    case XTAL_FMT_POSCAR:
        return read_poscar_into(path, out, err);
    case XTAL_FMT_CSV:
        return read_csv_into(path, out, err);
    case XTAL_FMT_DIR:
        return read_dir_into(path, out, err);
    case XTAL_FMT_EXTXYZ:
        return xtal_read_extxyz(path, out, err);
    case XTAL_FMT_UNKNOWN:
        break;
    }
    struct stat st;
    if (stat(path, &st) != 0) return xtal_err_set(err, XTAL_EIO, "%s: %s", path, strerror(errno));
    return xtal_err_set(err, XTAL_EUNSUPPORTED,
                        "%s: cannot tell the format from the name (expected *.cif, POSCAR*, "
                        "CONTCAR*, *.vasp, *.poscar, *.xyz, *.extxyz, *.csv, *.csv.gz or a "
                        "directory)",
                        path);
}

int xtal_read_any(const char *path, xtal_list *out, xtal_err *err)
{
    if (!path || !path[0]) return xtal_err_set(err, XTAL_EIO, "empty file name");
    int n_before = out->n;
    int rc = read_by_format(path, out, err);
    if (rc) { /* all or nothing: drop what a failed directory or file appended */
        for (int i = n_before; i < out->n; i++) xtal_crystal_free(&out->items[i]);
        out->n = n_before;
    }
    return rc;
}
