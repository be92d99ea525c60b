/* Extended XYZ (the format of ASE and QUIP). The writer: one frame per call, Cartesian
 * positions in Angstrom at full precision, read back by ase.io.read(..., format="extxyz").
 * The reader: periodic frames (Lattice=, Properties= with species:S:1 and pos:R:3), as druse
 * and ASE write them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "crystal/crystal.h"
#include "crystal/io_util.h"

/* The comment line is one line: extra may not break it. */
static int check_extra(const char *extra, const char *path, xtal_err *err)
{
    if (extra && strpbrk(extra, "\n\r"))
        return xtal_err_set(err, XTAL_EINVALID, "%s: extra key=value text holds a line break",
                            path);
    return XTAL_OK;
}

static void write_frame(FILE *fp, const xtal_crystal *c, const char *extra)
{
    const double(*L)[3] = c->lattice;
    fprintf(fp, "%d\n", c->natoms);
    fprintf(fp, "Lattice=\"%.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g\" ", L[0][0],
            L[0][1], L[0][2], L[1][0], L[1][1], L[1][2], L[2][0], L[2][1], L[2][2]);
    fprintf(fp, "Properties=species:S:1:pos:R:3 pbc=\"T T T\"");
    if (extra && extra[0]) fprintf(fp, " %s", extra);
    fputc('\n', fp);
    for (int i = 0; i < c->natoms; i++) {
        double x[3];
        xtal_frac_to_cart(c->lattice, c->frac + 3 * i, x);
        fprintf(fp, "%-2s %.17g %.17g %.17g\n", xtal_element_by_Z(c->Z[i])->symbol, x[0], x[1],
                x[2]);
    }
}

int xtal_write_extxyz(const xtal_crystal *c, const char *extra, const char *path, int append,
                      xtal_err *err)
{
    int rc = check_extra(extra, path, err);
    if (rc) return rc;
    if (c->natoms < 1) return xtal_err_set(err, XTAL_EINVALID, "%s: no atoms to write", path);
    for (int i = 0; i < c->natoms; i++)
        if (!xtal_element_by_Z(c->Z[i]))
            return xtal_err_set(err, XTAL_EINVALID, "%s: atom %d has unknown atomic number %d",
                                path, i + 1, c->Z[i]);
    FILE *fp = fopen(path, append ? "a" : "w");
    if (!fp) return xtal_err_set(err, XTAL_EIO, "%s: %s", path, strerror(errno));
    write_frame(fp, c, extra);
    return xtal_io_close_written(fp, path, err);
}

/* ------------------------------------------------------------------ reading */

/* The value of key in an extended XYZ comment line (key=value or key="value"), into buf;
 * 0 when present. Keys are matched case-insensitively, as ASE does. */
static int xyz_key(const char *line, const char *key, char *buf, size_t size)
{
    size_t klen = strlen(key);
    const char *p = line;
    while (*p) {
        while (*p == ' ' || *p == '\t') p++;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ' && *p != '\t') p++;
        size_t n = (size_t)(p - k);
        const char *v = NULL, *vend = NULL;
        if (*p == '=') {
            p++;
            if (*p == '"') {
                v = ++p;
                while (*p && *p != '"') p++;
                vend = p;
                if (*p) p++;
            } else {
                v = p;
                while (*p && *p != ' ' && *p != '\t') p++;
                vend = p;
            }
        }
        if (v && n == klen && strncasecmp(k, key, klen) == 0) {
            snprintf(buf, size, "%.*s", (int)(vend - v), v);
            return 0;
        }
        if (!*p) break;
        if (p == k) p++;
    }
    return -1;
}

/* Columns of species and of pos in Properties=name:type:count:...; -1 when either is missing. */
static int xyz_columns(const char *props, int *species_col, int *pos_col)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", props);
    *species_col = *pos_col = -1;
    int col = 0;
    char *save = NULL;
    for (char *name = strtok_r(buf, ":", &save); name; name = strtok_r(NULL, ":", &save)) {
        char *type = strtok_r(NULL, ":", &save), *count = strtok_r(NULL, ":", &save);
        if (!type || !count) return -1;
        int k = atoi(count);
        if (k < 1) return -1;
        if (strcmp(name, "species") == 0 && k == 1) *species_col = col;
        if (strcmp(name, "pos") == 0 && k == 3) *pos_col = col;
        col += k;
    }
    return *species_col >= 0 && *pos_col >= 0 ? 0 : -1;
}

/* The id of a frame: material_id=, else id=, else sample=N (druse sample's "sample_%06ld"),
 * else FILE:FRAME (base name, 1-based frame). */
static void xyz_frame_id(const char *comment, const char *path, long frame, char *id, size_t size)
{
    char buf[32];
    if (xyz_key(comment, "material_id", id, size) == 0 || xyz_key(comment, "id", id, size) == 0)
        return;
    if (xyz_key(comment, "sample", buf, sizeof buf) == 0) {
        snprintf(id, size, "sample_%06ld", atol(buf));
        return;
    }
    const char *base = strrchr(path, '/');
    snprintf(id, size, "%s:%ld", base ? base + 1 : path, frame);
}

/* Reads the next line without its line break into *line; -1 at the end of the file. */
static int xyz_read_line(FILE *fp, char **line, size_t *cap, long *lineno)
{
    ssize_t n = getline(line, cap, fp);
    if (n < 0) return -1;
    ++*lineno;
    while (n > 0 && ((*line)[n - 1] == '\n' || (*line)[n - 1] == '\r')) (*line)[--n] = 0;
    return 0;
}

/* The reader's state while it walks a file. */
typedef struct {
    FILE *fp;
    const char *path;
    char *line;
    size_t cap;
    long lineno, frame;
} xyz_reader;

/* One frame's atoms (c->natoms lines) into c, whose lattice is set. */
static int xyz_atoms(xyz_reader *r, int species_col, int pos_col, xtal_crystal *c, xtal_err *err)
{
    double inv[3][3];
    if (xtal_lattice_inverse(c->lattice, inv))
        return xtal_err_set(err, XTAL_EINVALID, "%s:%ld: singular Lattice", r->path, r->lineno);
    for (int i = 0; i < c->natoms; i++) {
        if (xyz_read_line(r->fp, &r->line, &r->cap, &r->lineno))
            return xtal_err_set(err, XTAL_EPARSE,
                                "%s:%ld: the file ends inside frame %ld (atom %d of %d missing)",
                                r->path, r->lineno + 1, r->frame, i + 1, c->natoms);
        char *save = NULL, *tok;
        double x[3];
        int col = 0, got = 0;
        for (tok = strtok_r(r->line, " \t", &save); tok;
             tok = strtok_r(NULL, " \t", &save), col++) {
            if (col == species_col) {
                c->Z[i] = xtal_element_from_symbol(tok);
                if (!c->Z[i])
                    return xtal_err_set(err, XTAL_EPARSE,
                                        "%s:%ld: unknown element '%.20s' (atom %d of %d of "
                                        "frame %ld)",
                                        r->path, r->lineno, tok, i + 1, c->natoms, r->frame);
                got++;
            } else if (col >= pos_col && col < pos_col + 3) {
                char *end;
                x[col - pos_col] = strtod(tok, &end);
                if (end == tok || *end)
                    return xtal_err_set(err, XTAL_EPARSE,
                                        "%s:%ld: bad coordinate '%.40s' (atom %d of %d of frame "
                                        "%ld)",
                                        r->path, r->lineno, tok, i + 1, c->natoms, r->frame);
                got++;
            }
        }
        if (got != 4)
            return xtal_err_set(err, XTAL_EPARSE,
                                "%s:%ld: expected an atom line (species and 3 positions): atom "
                                "%d of %d of frame %ld",
                                r->path, r->lineno, i + 1, c->natoms, r->frame);
        xtal_cart_to_frac(inv, x, c->frac + 3 * i);
    }
    return XTAL_OK;
}

/* One frame after its atom-count line: the comment line, then the atoms. */
static int xyz_frame(xyz_reader *r, long natoms, xtal_crystal *c, xtal_err *err)
{
    if (xyz_read_line(r->fp, &r->line, &r->cap, &r->lineno))
        return xtal_err_set(err, XTAL_EPARSE,
                            "%s:%ld: the file ends before the comment line of frame %ld", r->path,
                            r->lineno + 1, r->frame);
    long comment_line = r->lineno;
    char lat[1024], props[1024];
    double L[9];
    int species_col, pos_col;
    if (xyz_key(r->line, "Lattice", lat, sizeof lat) ||
        sscanf(lat, "%lf %lf %lf %lf %lf %lf %lf %lf %lf", &L[0], &L[1], &L[2], &L[3], &L[4], &L[5],
               &L[6], &L[7], &L[8]) != 9)
        return xtal_err_set(err, XTAL_EPARSE,
                            "%s:%ld: no Lattice=\"9 numbers\" (a periodic extended XYZ frame is "
                            "needed)",
                            r->path, r->lineno);
    if (xyz_key(r->line, "Properties", props, sizeof props))
        snprintf(props, sizeof props, "species:S:1:pos:R:3");
    if (xyz_columns(props, &species_col, &pos_col))
        return xtal_err_set(err, XTAL_EPARSE, "%s:%ld: Properties lacks species:S:1 or pos:R:3",
                            r->path, r->lineno);
    int rc = xtal_crystal_init(c, (int)natoms, err);
    if (rc) return rc;
    xyz_frame_id(r->line, r->path, r->frame, c->id, sizeof c->id);
    memcpy(c->lattice, L, sizeof L);
    rc = xyz_atoms(r, species_col, pos_col, c, err);
    if (!rc) {
        xtal_err why;
        xtal_wrap(c);
        if ((rc = xtal_crystal_validate(c, &why)))
            xtal_err_set(err, rc, "%s:%ld: frame %ld: %s", r->path, comment_line, r->frame,
                         why.msg);
    }
    if (rc) xtal_crystal_free(c);
    return rc;
}

int xtal_read_extxyz(const char *path, xtal_list *out, xtal_err *err)
{
    xyz_reader r = {.path = path};
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return xtal_err_set(err, XTAL_EIO, "%s: is a directory", path);
    if (!(r.fp = fopen(path, "r")))
        return xtal_err_set(err, XTAL_EIO, "%s: %s", path, strerror(errno));
    int rc = XTAL_OK, n_before = out->n;
    while (rc == XTAL_OK && xyz_read_line(r.fp, &r.line, &r.cap, &r.lineno) == 0) {
        char *p = r.line + strspn(r.line, " \t"), *end;
        if (!*p) continue; /* blank lines between frames */
        long natoms = strtol(p, &end, 10);
        end += strspn(end, " \t");
        if (end == p || *end || natoms < 1 || natoms > XTAL_MAX_ATOMS) {
            rc = r.frame > 0 ? xtal_err_set(err, XTAL_EPARSE,
                                            "%s:%ld: expected the atom count of frame %ld, got "
                                            "'%.40s' (does frame %ld have as many atom lines as "
                                            "its count says?)",
                                            path, r.lineno, r.frame + 1, r.line, r.frame)
                             : xtal_err_set(err, XTAL_EPARSE,
                                            "%s:%ld: expected an atom count (1..%d), got '%.40s'",
                                            path, r.lineno, XTAL_MAX_ATOMS, r.line);
            break;
        }
        xtal_crystal c;
        r.frame++;
        rc = xyz_frame(&r, natoms, &c, err);
        if (!rc && (rc = xtal_list_push(out, &c, err))) xtal_crystal_free(&c);
    }
    if (rc == XTAL_OK && ferror(r.fp))
        rc = xtal_err_set(err, XTAL_EIO, "%s: read error: %s", path, strerror(errno));
    free(r.line);
    fclose(r.fp);
    if (rc == XTAL_OK && r.frame == 0) rc = xtal_err_set(err, XTAL_EPARSE, "%s: no frames", path);
    if (rc) { /* all or nothing */
        for (int i = n_before; i < out->n; i++) xtal_crystal_free(&out->items[i]);
        out->n = n_before;
    }
    return rc;
}
