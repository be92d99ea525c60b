/* VASP 5 POSCAR/CONTCAR files: reader (Direct or Cartesian, scale factor or target volume,
 * Selective dynamics) and a full-precision Direct writer.
 *
 * Layout read (1-based lines): 1 comment; 2 scale (one number, negative = target volume in
 * Angstrom^3, or three per-axis factors); 3-5 lattice vectors (Angstrom before scaling);
 * 6 element symbols (required: VASP 4 files without them are refused); 7 counts;
 * [8 "Selective dynamics"]; then "Direct" or "Cartesian"; then one line per atom. Anything
 * after the positions (velocities, predictor-corrector data) is ignored. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crystal/crystal.h"
#include "crystal/io_util.h"

#define MAX_SPECIES 128
#define MAX_TOKENS  16

/* The file as lines; tokens are split in place, so messages quote tokens, not whole lines. */
typedef struct {
    const char *path;
    char *text;
    char **lines; /* [nlines], NUL-terminated, '\r' stripped */
    int nlines;
} poscar_lines;

static int line_err(const poscar_lines *p, int lineno, xtal_err *err, int code, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));

static int line_err(const poscar_lines *p, int lineno, xtal_err *err, int code, const char *fmt,
                    ...)
{
    char msg[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return xtal_err_set(err, code, "%s:%d: %s", p->path, lineno, msg);
}

static int split_lines(poscar_lines *p, size_t len, xtal_err *err)
{
    int n = 1;
    for (size_t i = 0; i < len; i++) n += p->text[i] == '\n';
    p->lines = malloc((size_t)n * sizeof *p->lines);
    if (!p->lines) return xtal_err_set(err, XTAL_ENOMEM, "%s: out of memory", p->path);
    p->nlines = 0;
    char *s = p->text;
    while (*s) {
        char *nl = strchr(s, '\n');
        if (nl) *nl = '\0';
        size_t m = strlen(s);
        if (m > 0 && s[m - 1] == '\r') s[m - 1] = '\0';
        p->lines[p->nlines++] = s;
        if (!nl) break;
        s = nl + 1;
    }
    return XTAL_OK;
}

/* A token of a line: tokens are spans, so that lines stay intact for later reads. */
typedef struct {
    const char *s;
    int len;
} span;

/* Whitespace-separated tokens of line `lineno` (1-based), at most max; returns their number,
 * or -1 when the file has no such line. */
static int tokens(const poscar_lines *p, int lineno, span *tok, int max)
{
    if (lineno > p->nlines) return -1;
    int n = 0;
    const char *s = p->lines[lineno - 1];
    while (n < max) {
        while (isspace((unsigned char)*s)) s++;
        if (!*s) break;
        const char *start = s;
        while (*s && !isspace((unsigned char)*s)) s++;
        tok[n].s = start;
        tok[n].len = (int)(s - start);
        n++;
    }
    return n;
}

/* A token as a C string, cut to fit buf (messages and number parsing). */
static const char *span_str(span t, char *buf, size_t size)
{
    snprintf(buf, size, "%.*s", t.len, t.s);
    return buf;
}

/* 0: a finite number; -1: not a number; -2: NaN or infinite. */
static int parse_double(span t, double *value)
{
    char buf[64], *end;
    if (t.len <= 0 || (size_t)t.len >= sizeof buf) return -1;
    span_str(t, buf, sizeof buf);
    *value = strtod(buf, &end);
    if (end == buf || *end != '\0') return -1;
    return isfinite(*value) ? 0 : -2;
}

/* Reads `need` numbers at the start of a line into out (later tokens are ignored). */
static int read_numbers(const poscar_lines *p, int lineno, const char *what, int need, double *out,
                        xtal_err *err)
{
    span tok[MAX_TOKENS];
    char buf[64];
    int n = tokens(p, lineno, tok, MAX_TOKENS);
    if (n < 0) return line_err(p, lineno, err, XTAL_EPARSE, "file ends before the %s line", what);
    if (n < need)
        return line_err(p, lineno, err, XTAL_EPARSE, "expected %d numbers (%s), found %d", need,
                        what, n);
    for (int i = 0; i < need; i++) {
        int rc = parse_double(tok[i], &out[i]);
        if (rc == -1)
            return line_err(p, lineno, err, XTAL_EPARSE, "%s: '%s' is not a number", what,
                            span_str(tok[i], buf, sizeof buf));
        if (rc == -2)
            return line_err(p, lineno, err, XTAL_EINVALID, "%s: '%s' is not finite", what,
                            span_str(tok[i], buf, sizeof buf));
    }
    return XTAL_OK;
}

/* ------------------------------------------------------------------ header */

typedef struct {
    int nscale;      /* 1 or 3 values on line 2 */
    double scale[3]; /* as written: one factor, -volume (Angstrom^3), or three factors */
    double L[3][3];  /* lattice rows as written (before scaling) */
    int nspecies;
    int Z[MAX_SPECIES];
    long count[MAX_SPECIES];
    int natoms;
    int cartesian;
    int first_position_line; /* 1-based */
} poscar_header;

static int read_scale(const poscar_lines *p, poscar_header *h, xtal_err *err)
{
    span tok[3];
    double second;
    int n = tokens(p, 2, tok, 3);
    if (n < 0) return line_err(p, 2, err, XTAL_EPARSE, "file ends before the scale factor");
    /* Three factors, or one (later tokens are comments). */
    h->nscale = n == 3 && parse_double(tok[1], &second) == 0 ? 3 : 1;
    int rc = read_numbers(p, 2, "scale factor", h->nscale, h->scale, err);
    if (rc) return rc;
    for (int k = 0; k < h->nscale; k++) {
        if (h->scale[k] == 0) return line_err(p, 2, err, XTAL_EINVALID, "scale factor is zero");
        if (h->nscale == 3 && h->scale[k] < 0)
            return line_err(p, 2, err, XTAL_EINVALID, "per-axis scale factors must be positive");
    }
    return XTAL_OK;
}

/* An element from a POTCAR-style name: "Fe", "Fe_pv", "Fe_sv_GW", "Fe/a1b2c3" (VASP 6). */
static int species_Z(span t)
{
    int letters = 0;
    while (letters < t.len && isalpha((unsigned char)t.s[letters])) letters++;
    if (letters < 1 || letters > 2) return 0;
    if (letters < t.len && t.s[letters] != '_' && t.s[letters] != '/') return 0;
    char sym[3] = {t.s[0], letters == 2 ? t.s[1] : '\0', '\0'};
    return xtal_element_from_symbol(sym);
}

static int read_species(const poscar_lines *p, poscar_header *h, xtal_err *err)
{
    span tok[MAX_SPECIES + 1];
    char buf[64];
    int n = tokens(p, 6, tok, MAX_SPECIES + 1);
    if (n < 0) return line_err(p, 6, err, XTAL_EPARSE, "file ends before the species line");
    if (n == 0) return line_err(p, 6, err, XTAL_EPARSE, "empty species line");
    if (isdigit((unsigned char)tok[0].s[0]))
        return line_err(p, 6, err, XTAL_EUNSUPPORTED,
                        "atom counts where the species line belongs: VASP 4 POSCARs without "
                        "element symbols are not supported (add a line of symbols, as VASP 5 "
                        "writes)");
    if (n > MAX_SPECIES)
        return line_err(p, 6, err, XTAL_ELIMIT, "more than %d species", MAX_SPECIES);
    for (int i = 0; i < n; i++)
        if ((h->Z[i] = species_Z(tok[i])) == 0)
            return line_err(p, 6, err, XTAL_EINVALID, "unknown element '%s'",
                            span_str(tok[i], buf, sizeof buf));
    h->nspecies = n;
    return XTAL_OK;
}

/* One count of line 7; refused above the limit before anything is allocated, so a corrupt
 * count never asks for gigabytes. */
static int parse_count(const poscar_lines *p, span t, long long *total, long *count, xtal_err *err)
{
    char buf[64], *end;
    span_str(t, buf, sizeof buf);
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (end == buf || *end != '\0' || (size_t)t.len >= sizeof buf || v < 0)
        return line_err(p, 7, err, XTAL_EPARSE, "'%s' is not an atom count", buf);
    if (errno == ERANGE || v > XTAL_MAX_ATOMS)
        return line_err(p, 7, err, XTAL_ELIMIT, "%s atoms claimed, over the limit of %d", buf,
                        XTAL_MAX_ATOMS);
    *total += v;
    if (*total > XTAL_MAX_ATOMS)
        return line_err(p, 7, err, XTAL_ELIMIT, "%lld atoms claimed, over the limit of %d", *total,
                        XTAL_MAX_ATOMS);
    *count = v;
    return XTAL_OK;
}

static int read_counts(const poscar_lines *p, poscar_header *h, xtal_err *err)
{
    span tok[MAX_SPECIES + 1];
    int n = tokens(p, 7, tok, MAX_SPECIES + 1);
    if (n < 0) return line_err(p, 7, err, XTAL_EPARSE, "file ends before the atom counts");
    if (n != h->nspecies)
        return line_err(p, 7, err, XTAL_EPARSE, "%d atom counts for %d species on line 6", n,
                        h->nspecies);
    long long total = 0;
    for (int i = 0; i < n; i++) {
        int rc = parse_count(p, tok[i], &total, &h->count[i], err);
        if (rc) return rc;
    }
    if (total == 0) return line_err(p, 7, err, XTAL_EINVALID, "no atoms");
    h->natoms = (int)total;
    return XTAL_OK;
}

static int read_mode(const poscar_lines *p, poscar_header *h, xtal_err *err)
{
    int lineno = 8;
    span tok[1];
    char buf[64];
    int n = tokens(p, lineno, tok, 1);
    if (n > 0 && (tok[0].s[0] == 's' || tok[0].s[0] == 'S')) n = tokens(p, ++lineno, tok, 1);
    if (n < 0)
        return line_err(p, lineno, err, XTAL_EPARSE, "file ends before 'Direct' or 'Cartesian'");
    char c = n > 0 ? tok[0].s[0] : '\0';
    if (c == 'c' || c == 'C' || c == 'k' || c == 'K')
        h->cartesian = 1;
    else if (c == 'd' || c == 'D')
        h->cartesian = 0;
    else
        return line_err(p, lineno, err, XTAL_EPARSE, "expected 'Direct' or 'Cartesian', found '%s'",
                        n > 0 ? span_str(tok[0], buf, sizeof buf) : "");
    h->first_position_line = lineno + 1;
    return XTAL_OK;
}

static int read_header(const poscar_lines *p, poscar_header *h, xtal_err *err)
{
    if (p->nlines == 0 || (p->nlines == 1 && p->lines[0][0] == '\0'))
        return xtal_err_set(err, XTAL_EPARSE, "%s: empty file", p->path);
    int rc = read_scale(p, h, err);
    for (int i = 0; i < 3 && !rc; i++)
        rc = read_numbers(p, 3 + i, "lattice vector", 3, h->L[i], err);
    if (!rc) rc = read_species(p, h, err);
    if (!rc) rc = read_counts(p, h, err);
    if (!rc) rc = read_mode(p, h, err);
    return rc;
}

/* ------------------------------------------------------------------ sites */

/* Scaled lattice and the factor for Cartesian positions, per axis. */
static int apply_scale(const poscar_lines *p, const poscar_header *h, double L[3][3],
                       double axis_scale[3], xtal_err *err)
{
    double volume = fabs(xtal_lattice_volume(h->L));
    if (!(volume > 1e-6))
        return line_err(p, 3, err, XTAL_EINVALID,
                        "lattice vectors on lines 3-5 are degenerate (volume %g A^3)", volume);
    for (int k = 0; k < 3; k++) axis_scale[k] = h->nscale == 3 ? h->scale[k] : h->scale[0];
    if (h->nscale == 1 && h->scale[0] < 0) /* a target volume in Angstrom^3 */
        axis_scale[0] = axis_scale[1] = axis_scale[2] = cbrt(-h->scale[0] / volume);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++) L[i][k] = h->L[i][k] * axis_scale[k];
    return XTAL_OK;
}

static int read_positions(const poscar_lines *p, const poscar_header *h, const double axis_scale[3],
                          xtal_crystal *c, xtal_err *err)
{
    double inverse[3][3];
    if (xtal_lattice_inverse(c->lattice, inverse))
        return line_err(p, 3, err, XTAL_EINVALID, "singular lattice");
    int atom = 0;
    for (int s = 0; s < h->nspecies; s++)
        for (long k = 0; k < h->count[s]; k++, atom++) {
            int lineno = h->first_position_line + atom;
            if (lineno > p->nlines)
                return line_err(p, lineno, err, XTAL_EPARSE,
                                "file ends after %d of %d atom positions", atom, h->natoms);
            double x[3];
            int rc = read_numbers(p, lineno, "atom position", 3, x, err);
            if (rc) return rc;
            c->Z[atom] = h->Z[s];
            if (h->cartesian) {
                for (int d = 0; d < 3; d++) x[d] *= axis_scale[d];
                xtal_cart_to_frac(inverse, x, c->frac + 3 * atom);
            } else {
                memcpy(c->frac + 3 * atom, x, sizeof x);
            }
        }
    return XTAL_OK;
}

static int crystal_from_lines(const poscar_lines *p, xtal_crystal *out, xtal_err *err)
{
    static const char *const exts[] = {".vasp", ".poscar", NULL};
    poscar_header h;
    memset(&h, 0, sizeof h);
    double axis_scale[3];
    int rc = read_header(p, &h, err);
    double L[3][3];
    if (!rc) rc = apply_scale(p, &h, L, axis_scale, err);
    if (rc) return rc;
    xtal_err sub = {{0}};
    if ((rc = xtal_crystal_init(out, h.natoms, &sub)))
        return xtal_err_set(err, rc, "%s: %s", p->path, sub.msg);
    memcpy(out->lattice, L, sizeof L);
    xtal_io_basename(p->path, exts, out->id, sizeof out->id);
    rc = read_positions(p, &h, axis_scale, out, err);
    if (!rc && (rc = xtal_crystal_validate(out, &sub)))
        xtal_err_set(err, rc, "%s: %s", p->path, sub.msg);
    if (rc) xtal_crystal_free(out);
    return rc;
}

int xtal_read_poscar(const char *path, xtal_crystal *out, xtal_err *err)
{
    memset(out, 0, sizeof *out);
    poscar_lines p = {path, NULL, NULL, 0};
    size_t len = 0;
    int rc = xtal_io_read_text(path, &p.text, &len, err);
    if (!rc) rc = split_lines(&p, len, err);
    if (!rc) rc = crystal_from_lines(&p, out, err);
    free(p.lines);
    free(p.text);
    return rc;
}

/* ----------------------------------------------------------------- writing */

/* Species in order of first appearance; rank[i] is atom i's species index in that order. */
static int species_order(const xtal_crystal *c, int *species, int *rank, int *nspecies)
{
    int n = 0;
    for (int i = 0; i < c->natoms; i++) {
        int s = 0;
        while (s < n && species[s] != c->Z[i]) s++;
        if (s == n) {
            if (n == XTAL_NUM_ELEMENTS) return -1;
            species[n++] = c->Z[i];
        }
        rank[i] = s;
    }
    *nspecies = n;
    return 0;
}

/* A comment line from the id: one line, never empty. */
static void comment_line(const xtal_crystal *c, char *buf, size_t size)
{
    snprintf(buf, size, "%s", c->id[0] ? c->id : "druse");
    for (char *s = buf; *s; s++)
        if (*s == '\n' || *s == '\r') *s = ' ';
}

static void write_poscar_body(FILE *fp, const xtal_crystal *c, const int *species, const int *rank,
                              int nspecies)
{
    char comment[sizeof c->id];
    comment_line(c, comment, sizeof comment);
    fprintf(fp, "%s\n1.0\n", comment);
    for (int i = 0; i < 3; i++)
        fprintf(fp, "  %.17g  %.17g  %.17g\n", c->lattice[i][0], c->lattice[i][1],
                c->lattice[i][2]);
    for (int s = 0; s < nspecies; s++) fprintf(fp, " %s", xtal_element_by_Z(species[s])->symbol);
    fputc('\n', fp);
    for (int s = 0; s < nspecies; s++) {
        int count = 0;
        for (int i = 0; i < c->natoms; i++) count += rank[i] == s;
        fprintf(fp, " %d", count);
    }
    fprintf(fp, "\nDirect\n");
    for (int s = 0; s < nspecies; s++)
        for (int i = 0; i < c->natoms; i++)
            if (rank[i] == s)
                fprintf(fp, "  %.17g  %.17g  %.17g\n", c->frac[3 * i], c->frac[3 * i + 1],
                        c->frac[3 * i + 2]);
}

int xtal_write_poscar(const xtal_crystal *c, const char *path, xtal_err *err)
{
    if (c->natoms < 1) return xtal_err_set(err, XTAL_EINVALID, "%s: no atoms to write", path);
    for (int i = 0; i < c->natoms; i++)
        if (!xtal_element_by_Z(c->Z[i]))
            return xtal_err_set(err, XTAL_EINVALID, "%s: atom %d has unknown atomic number %d",
                                path, i + 1, c->Z[i]);
    int species[XTAL_NUM_ELEMENTS], nspecies = 0;
    int *rank = malloc((size_t)c->natoms * sizeof *rank);
    if (!rank) return xtal_err_set(err, XTAL_ENOMEM, "%s: out of memory", path);
    species_order(c, species, rank, &nspecies);
    FILE *fp = fopen(path, "w");
    if (!fp) {
        int e = errno;
        free(rank);
        return xtal_err_set(err, XTAL_EIO, "%s: %s", path, strerror(e));
    }
    write_poscar_body(fp, c, species, rank, nspecies);
    free(rank);
    return xtal_io_close_written(fp, path, err);
}
