/* Dataset CSVs: a streaming RFC 4180 reader for the CDVAE-style CSVs (plain or gzip'd, read
 * through zlib, which passes plain files through) and the parse of its rows into crystals and
 * numeric properties.
 *
 * The reader hands out rows as raw text in chunks, so the expensive part (the CIF parse) can
 * later be spread over ranks. Each row is one allocation: its field pointers followed by the
 * NUL-terminated field texts. Hostile input is bounded: a field or row over 16 MiB, more than
 * CSV_MAX_COLS columns, a NUL byte, a ragged row or an unterminated quote is an error
 * naming the file and line; a gzip stream cut short is reported as truncated, not as a short
 * file.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

#include "crystal/crystal.h"

#define CSV_MAX_FIELD  (16L << 20) /* bytes in one field */
#define CSV_MAX_ROW    (16L << 20) /* bytes in one row, all fields together */
#define CSV_MAX_COLS   4096
#define CSV_READ_BLOCK (256 << 10) /* bytes per gzread */

/* Parser states inside a row. */
enum { AT_FIELD_START, IN_UNQUOTED, IN_QUOTED, AFTER_QUOTE, AFTER_QUOTE_CR };

struct xtal_csv_reader {
    char *path; /* as given, for messages */
    gzFile gz;
    unsigned char *buf; /* decompressed input */
    size_t buf_len, buf_pos;
    int at_eof;
    long line;     /* 1-based line of the next unread byte */
    long next_row; /* 0-based index of the next data row */

    /* the row being assembled: field texts, each NUL-terminated, at field_start[i] */
    char *text;
    size_t text_len, text_cap;
    size_t *field_start;
    int nfields, field_cap;
    int row_quoted; /* a field of the row was quoted (so a lone empty field is not blank) */

    xtal_csv_row header; /* column names */
    int col_id, col_cif;

    /* The first data row, read ahead at open so xtal_dataset_begin can tell numeric columns
     * from string ones; read_chunk hands it out first. */
    xtal_csv_row first;
    int have_first;
    int first_status; /* XTAL_OK, XTAL_EOF (no data rows), or the error reading it */
    xtal_err first_err;

    int failed; /* sticky error: a reader that failed keeps failing */
    xtal_err failed_err;
};

/* ------------------------------------------------------------ reading bytes */

/* Refills the input buffer. Returns 1 with data, 0 at the end, or an error. */
static int csv_fill(xtal_csv_reader *r, xtal_err *err)
{
    if (r->at_eof) return 0;
    int got = gzread(r->gz, r->buf, CSV_READ_BLOCK);
    if (got > 0) {
        r->buf_len = (size_t)got;
        r->buf_pos = 0;
        return 1;
    }
    int zerr = Z_OK;
    const char *zmsg = gzerror(r->gz, &zerr);
    if (got == 0 && zerr == Z_BUF_ERROR) /* zlib's way of saying the stream stopped early */
        return xtal_err_set(err, XTAL_EPARSE, "%s:%ld: gzip stream is truncated (file cut short?)",
                            r->path, r->line);
    if (got < 0 || zerr != Z_OK)
        return xtal_err_set(err, XTAL_EIO, "%s:%ld: read error: %s", r->path, r->line,
                            zerr == Z_ERRNO ? strerror(errno) : zmsg);
    r->at_eof = 1;
    return 0;
}

/* ---------------------------------------------------------- assembling rows */

static int text_reserve(xtal_csv_reader *r, size_t extra, xtal_err *err)
{
    size_t need = r->text_len + extra;
    if (need > (size_t)CSV_MAX_ROW + 1)
        return xtal_err_set(err, XTAL_ELIMIT, "%s:%ld: row longer than %ld MiB", r->path, r->line,
                            CSV_MAX_ROW >> 20);
    if (need <= r->text_cap) return XTAL_OK;
    size_t cap = r->text_cap ? r->text_cap : 4096;
    while (cap < need) cap *= 2;
    char *grown = realloc(r->text, cap);
    if (!grown) return xtal_err_set(err, XTAL_ENOMEM, "%s: out of memory", r->path);
    r->text = grown;
    r->text_cap = cap;
    return XTAL_OK;
}

/* Appends bytes to the current field, enforcing the field limit. */
static int field_append(xtal_csv_reader *r, const unsigned char *bytes, size_t n, xtal_err *err)
{
    size_t field_len = r->text_len - r->field_start[r->nfields - 1] + n;
    if (field_len > (size_t)CSV_MAX_FIELD)
        return xtal_err_set(err, XTAL_ELIMIT, "%s:%ld: field %d longer than %ld MiB", r->path,
                            r->line, r->nfields, CSV_MAX_FIELD >> 20);
    int rc = text_reserve(r, n, err);
    if (rc) return rc;
    memcpy(r->text + r->text_len, bytes, n);
    r->text_len += n;
    return XTAL_OK;
}

static int field_begin(xtal_csv_reader *r, xtal_err *err)
{
    if (r->nfields == CSV_MAX_COLS)
        return xtal_err_set(err, XTAL_ELIMIT, "%s:%ld: more than %d fields in a row", r->path,
                            r->line, CSV_MAX_COLS);
    if (r->nfields == r->field_cap) {
        int cap = r->field_cap ? 2 * r->field_cap : 32;
        size_t *grown = realloc(r->field_start, (size_t)cap * sizeof *grown);
        if (!grown) return xtal_err_set(err, XTAL_ENOMEM, "%s: out of memory", r->path);
        r->field_start = grown;
        r->field_cap = cap;
    }
    r->field_start[r->nfields++] = r->text_len;
    return XTAL_OK;
}

/* Terminates the current field; drops the '\r' of a CRLF line end when at_line_end. */
static int field_end(xtal_csv_reader *r, int at_line_end, xtal_err *err)
{
    size_t start = r->field_start[r->nfields - 1];
    if (at_line_end && r->text_len > start && r->text[r->text_len - 1] == '\r') r->text_len--;
    int rc = text_reserve(r, 1, err);
    if (rc) return rc;
    r->text[r->text_len++] = '\0';
    return XTAL_OK;
}

/* Bytes that end a run of ordinary characters, outside and inside quotes. */
static unsigned char stop_unquoted[256], stop_quoted[256];

static void init_stop_tables(void)
{
    if (stop_unquoted[0]) return;
    stop_unquoted[','] = stop_unquoted['\n'] = 1;
    stop_quoted['"'] = stop_quoted['\n'] = 1;
    stop_unquoted[0] = stop_quoted[0] = 1; /* a NUL byte is an error; also marks "initialized" */
}

/* Consumes a run of ordinary bytes of the current field. Returns the number consumed. */
static size_t scan_run(xtal_csv_reader *r, const unsigned char *stop)
{
    const unsigned char *p = r->buf + r->buf_pos, *end = r->buf + r->buf_len;
    while (p < end && !stop[*p]) p++;
    return (size_t)(p - (r->buf + r->buf_pos));
}

/* Handles one byte (or run) in state *state. Returns XTAL_OK to go on, XTAL_EOF when the row
 * is complete, or an error. */
static int csv_step(xtal_csv_reader *r, int *state, long row_line, xtal_err *err)
{
    int rc;
    unsigned char c = r->buf[r->buf_pos];
    if (c == '\0')
        return xtal_err_set(err, XTAL_EPARSE, "%s:%ld: NUL byte (binary file?)", r->path, r->line);
    switch (*state) {
    case AT_FIELD_START:
        if (c == '"') {
            r->buf_pos++;
            r->row_quoted = 1;
            *state = IN_QUOTED;
            return XTAL_OK;
        }
        *state = IN_UNQUOTED;
        return XTAL_OK;
    case IN_UNQUOTED: {
        size_t n = scan_run(r, stop_unquoted);
        if (n) {
            rc = field_append(r, r->buf + r->buf_pos, n, err);
            r->buf_pos += n;
            return rc;
        }
        r->buf_pos++;
        if (c == ',') {
            *state = AT_FIELD_START;
            if ((rc = field_end(r, 0, err)) || (rc = field_begin(r, err))) return rc;
            return XTAL_OK;
        }
        r->line++; /* c == '\n' */
        if ((rc = field_end(r, 1, err))) return rc;
        return XTAL_EOF;
    }
    case IN_QUOTED: {
        size_t n = scan_run(r, stop_quoted);
        if (n) {
            rc = field_append(r, r->buf + r->buf_pos, n, err);
            r->buf_pos += n;
            return rc;
        }
        r->buf_pos++;
        if (c == '\n') {
            r->line++;
            return field_append(r, &c, 1, err);
        }
        *state = AFTER_QUOTE; /* c == '"' */
        return XTAL_OK;
    }
    case AFTER_QUOTE:
        r->buf_pos++;
        if (c == '"') { /* a doubled quote stands for one */
            *state = IN_QUOTED;
            return field_append(r, &c, 1, err);
        }
        if (c == ',') {
            *state = AT_FIELD_START;
            if ((rc = field_end(r, 0, err)) || (rc = field_begin(r, err))) return rc;
            return XTAL_OK;
        }
        if (c == '\r') {
            *state = AFTER_QUOTE_CR;
            return XTAL_OK;
        }
        if (c == '\n') {
            r->line++;
            if ((rc = field_end(r, 0, err))) return rc;
            return XTAL_EOF;
        }
        return xtal_err_set(err, XTAL_EPARSE,
                            "%s:%ld: unexpected character '%c' after the closing quote of "
                            "field %d (row starting at line %ld)",
                            r->path, r->line, isprint(c) ? c : '?', r->nfields, row_line);
    default: /* AFTER_QUOTE_CR */
        r->buf_pos++;
        if (c != '\n')
            return xtal_err_set(err, XTAL_EPARSE, "%s:%ld: stray carriage return after a quote",
                                r->path, r->line);
        r->line++;
        if ((rc = field_end(r, 0, err))) return rc;
        return XTAL_EOF;
    }
}

/* Handles the end of input inside a row. Returns XTAL_OK (row complete), XTAL_EOF (no row) or
 * an error. */
static int csv_finish_at_eof(xtal_csv_reader *r, int state, int consumed, long row_line,
                             xtal_err *err)
{
    if (!consumed) return XTAL_EOF;
    if (state == IN_QUOTED)
        return xtal_err_set(err, XTAL_EPARSE,
                            "%s:%ld: unterminated quoted field %d (the row starts at line %ld)",
                            r->path, r->line, r->nfields, row_line);
    return field_end(r, state == IN_UNQUOTED || state == AT_FIELD_START, err);
}

/* Reads one row into r->text / r->field_start. Blank lines between rows are skipped (as
 * Python's csv module does). Returns XTAL_OK, XTAL_EOF when no row is left, or an error. */
static int csv_read_row(xtal_csv_reader *r, long *row_line, xtal_err *err)
{
    for (;;) {
        r->text_len = 0;
        r->nfields = 0;
        r->row_quoted = 0;
        int rc = field_begin(r, err);
        if (rc) return rc;
        *row_line = r->line;
        int state = AT_FIELD_START, consumed = 0;
        for (;;) {
            if (r->buf_pos == r->buf_len) {
                rc = csv_fill(r, err);
                if (rc < 0) return rc;
                if (rc == 0) {
                    rc = csv_finish_at_eof(r, state, consumed, *row_line, err);
                    if (rc) return rc;
                    break;
                }
            }
            consumed = 1;
            rc = csv_step(r, &state, *row_line, err);
            if (rc == XTAL_EOF) break;
            if (rc) return rc;
        }
        int blank = r->nfields == 1 && r->text_len == 1 && !r->row_quoted;
        if (!blank) return XTAL_OK;
    }
}

/* Copies the assembled row into one allocation: pointers, then texts. */
static int csv_take_row(xtal_csv_reader *r, long row_line, xtal_csv_row *row, xtal_err *err)
{
    size_t ptr_bytes = (size_t)r->nfields * sizeof(char *);
    char **block = malloc(ptr_bytes + r->text_len);
    if (!block) return xtal_err_set(err, XTAL_ENOMEM, "%s: out of memory", r->path);
    char *texts = (char *)block + ptr_bytes;
    memcpy(texts, r->text, r->text_len);
    for (int i = 0; i < r->nfields; i++) block[i] = texts + r->field_start[i];
    row->fields = block;
    row->nfields = r->nfields;
    row->line = row_line;
    row->row = -1;
    return XTAL_OK;
}

/* Reads the next data row, checking its width against the header. */
static int csv_next_data_row(xtal_csv_reader *r, xtal_csv_row *row, xtal_err *err)
{
    long row_line = 0;
    int rc = csv_read_row(r, &row_line, err);
    if (rc) return rc;
    if (r->nfields != r->header.nfields)
        return xtal_err_set(err, XTAL_EPARSE, "%s:%ld: row has %d fields, the header has %d",
                            r->path, row_line, r->nfields, r->header.nfields);
    rc = csv_take_row(r, row_line, row, err);
    if (rc) return rc;
    row->row = r->next_row++;
    return XTAL_OK;
}

/* ------------------------------------------------------------ open / close */

static int column_index(const xtal_csv_row *header, const char *name)
{
    for (int i = 0; i < header->nfields; i++)
        if (strcmp(header->fields[i], name) == 0) return i;
    return -1;
}

static int csv_read_header(xtal_csv_reader *r, xtal_err *err)
{
    long row_line = 0;
    int rc = csv_read_row(r, &row_line, err);
    if (rc == XTAL_EOF)
        return xtal_err_set(err, XTAL_EPARSE, "%s: empty file (no header line)", r->path);
    if (rc) return rc;
    rc = csv_take_row(r, row_line, &r->header, err);
    if (rc) return rc;
    char **names = r->header.fields;
    if (strncmp(names[0], "\xEF\xBB\xBF", 3) == 0) /* a UTF-8 byte order mark */
        names[0] += 3;
    for (int i = 0; i < r->header.nfields; i++)
        for (int j = 0; j < i; j++)
            if (names[i][0] && strcmp(names[i], names[j]) == 0)
                return xtal_err_set(err, XTAL_EPARSE, "%s:%ld: column '%s' appears twice", r->path,
                                    row_line, names[i]);
    const char *required[2] = {"material_id", "cif"};
    int *cols[2] = {&r->col_id, &r->col_cif};
    for (int k = 0; k < 2; k++) {
        *cols[k] = column_index(&r->header, required[k]);
        if (*cols[k] < 0)
            return xtal_err_set(err, XTAL_EPARSE,
                                "%s:%ld: no '%s' column in the header (a dataset CSV needs "
                                "material_id and cif)",
                                r->path, row_line, required[k]);
    }
    return XTAL_OK;
}

int xtal_csv_open(const char *path, xtal_csv_reader **out, xtal_err *err)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return xtal_err_set(err, XTAL_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return xtal_err_set(err, XTAL_EIO, "%s: not a regular file", path);
    init_stop_tables();
    xtal_csv_reader *r = calloc(1, sizeof *r);
    if (!r) return xtal_err_set(err, XTAL_ENOMEM, "%s: out of memory", path);
    r->line = 1;
    r->path = strdup(path);
    r->buf = malloc(CSV_READ_BLOCK);
    if (!r->path || !r->buf) {
        xtal_csv_close(r);
        return xtal_err_set(err, XTAL_ENOMEM, "%s: out of memory", path);
    }
    r->gz = gzopen(path, "rb");
    if (!r->gz) {
        int code =
            xtal_err_set(err, XTAL_EIO, "%s: %s", path, errno ? strerror(errno) : "cannot open");
        xtal_csv_close(r);
        return code;
    }
    gzbuffer(r->gz, 1 << 20);
    int rc = csv_read_header(r, err);
    if (rc) {
        xtal_csv_close(r);
        return rc;
    }
    r->first_status = csv_next_data_row(r, &r->first, &r->first_err);
    r->have_first = r->first_status == XTAL_OK;
    *out = r;
    return XTAL_OK;
}

void xtal_csv_close(xtal_csv_reader *r)
{
    if (!r) return;
    if (r->gz) gzclose(r->gz);
    free(r->header.fields);
    free(r->first.fields);
    free(r->text);
    free(r->field_start);
    free(r->buf);
    free(r->path);
    free(r);
}

int xtal_csv_ncols(const xtal_csv_reader *r)
{
    return r->header.nfields;
}

const char *xtal_csv_colname(const xtal_csv_reader *r, int col)
{
    if (col < 0 || col >= r->header.nfields) return NULL;
    return r->header.fields[col];
}

/* ------------------------------------------------------------------ chunks */

static void chunk_clear(xtal_csv_chunk *chunk)
{
    for (int i = 0; i < chunk->n; i++) free(chunk->rows[i].fields);
    chunk->n = 0;
}

void xtal_csv_chunk_free(xtal_csv_chunk *chunk)
{
    if (!chunk) return;
    chunk_clear(chunk);
    free(chunk->rows);
    chunk->rows = NULL;
    chunk->cap = 0;
}

static int chunk_reserve(xtal_csv_chunk *chunk, int n, xtal_err *err)
{
    if (n <= chunk->cap) return XTAL_OK;
    xtal_csv_row *grown = realloc(chunk->rows, (size_t)n * sizeof *grown);
    if (!grown) return xtal_err_set(err, XTAL_ENOMEM, "out of memory for a chunk of %d rows", n);
    chunk->rows = grown;
    chunk->cap = n;
    return XTAL_OK;
}

/* Remembers an error so later calls return it again instead of reading on from a broken
 * position. */
static int reader_fail(xtal_csv_reader *r, int code, const xtal_err *e, xtal_err *err)
{
    r->failed = code;
    r->failed_err = *e;
    if (err) *err = *e;
    return code;
}

int xtal_csv_read_chunk(xtal_csv_reader *r, int max_rows, xtal_csv_chunk *chunk, xtal_err *err)
{
    chunk_clear(chunk);
    if (r->failed) {
        if (err) *err = r->failed_err;
        return r->failed;
    }
    if (max_rows <= 0)
        return xtal_err_set(err, XTAL_EINVALID, "%s: chunk size %d", r->path, max_rows);
    /* Grow to the requested size only as rows arrive: max_rows may be huge ("all"). */
    xtal_err e;
    int rc = XTAL_OK;
    while (chunk->n < max_rows) {
        if (chunk->n == chunk->cap) {
            int want = chunk->cap ? 2 * chunk->cap : 64;
            if (want > max_rows) want = max_rows;
            if ((rc = chunk_reserve(chunk, want, &e))) return reader_fail(r, rc, &e, err);
        }
        xtal_csv_row *row = &chunk->rows[chunk->n];
        if (r->have_first) {
            *row = r->first;
            r->first.fields = NULL;
            r->have_first = 0;
        } else if (r->first_status != XTAL_OK) {
            rc = r->first_status; /* the read-ahead at open hit the end or an error */
            e = r->first_err;
            r->first_status = XTAL_OK;
        } else {
            rc = csv_next_data_row(r, row, &e);
        }
        if (rc == XTAL_EOF) break;
        if (rc) return reader_fail(r, rc, &e, err);
        chunk->n++;
    }
    return chunk->n > 0 ? XTAL_OK : XTAL_EOF;
}

/* ------------------------------------------------------- rows -> dataset */

/* Columns that describe the structure itself (the crystal comes from cif) or hold text. */
static int is_non_property_column(const char *name)
{
    static const char *const skip[] = {
        "material_id",    "cif",
        "atomic_numbers", "lattice_abc_angles",
        "frac_coords",    "elements",
        "n_atoms",        "pretty_formula",
        "formula",        "structure_source",
        "cif.conv",       "",
    };
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (strcmp(name, skip[i]) == 0) return 1; /* "" is pandas' unnamed index column */
    return 0;
}

/* A number, with optional surrounding blanks; empty or anything else gives NaN. */
static double parse_number(const char *text)
{
    char *end;
    errno = 0;
    double x = strtod(text, &end);
    if (end == text) return NAN;
    while (*end == ' ' || *end == '\t') end++;
    return *end ? NAN : x;
}

static int looks_like_text(const char *value)
{
    while (*value == ' ' || *value == '\t') value++;
    return *value && isnan(parse_number(value)) && strncasecmp(value, "nan", 3) != 0;
}

void xtal_dataset_free(xtal_dataset *ds)
{
    if (!ds) return;
    xtal_list_free(&ds->crystals);
    for (int i = 0; i < ds->n_props; i++) free(ds->prop_names[i]);
    free(ds->prop_names);
    free(ds->prop_values);
    memset(ds, 0, sizeof *ds);
}

int xtal_dataset_prop_index(const xtal_dataset *ds, const char *name)
{
    for (int i = 0; i < ds->n_props; i++)
        if (strcmp(ds->prop_names[i], name) == 0) return i;
    return -1;
}

/* Properties: every column that is not structural or text by name, and whose first value
 * (when there are rows) is a number or empty, so string columns of unknown name are left out. */
int xtal_dataset_begin(xtal_dataset *ds, const xtal_csv_reader *r, xtal_err *err)
{
    memset(ds, 0, sizeof *ds);
    int ncols = r->header.nfields;
    ds->prop_names = calloc((size_t)ncols, sizeof *ds->prop_names);
    if (!ds->prop_names) return xtal_err_set(err, XTAL_ENOMEM, "%s: out of memory", r->path);
    for (int col = 0; col < ncols; col++) {
        const char *name = r->header.fields[col];
        if (is_non_property_column(name)) continue;
        if (r->have_first && looks_like_text(r->first.fields[col])) continue;
        ds->prop_names[ds->n_props] = strdup(name);
        if (!ds->prop_names[ds->n_props]) {
            xtal_dataset_free(ds);
            return xtal_err_set(err, XTAL_ENOMEM, "%s: out of memory", r->path);
        }
        ds->n_props++;
    }
    return XTAL_OK;
}

/* Room for n more crystals; prop_values always holds crystals.cap rows. */
static int dataset_reserve(xtal_dataset *ds, int more, xtal_err *err)
{
    xtal_list *l = &ds->crystals;
    if (l->n + more <= l->cap) return XTAL_OK;
    int cap = l->cap ? l->cap : 256;
    while (cap < l->n + more) cap *= 2;
    xtal_crystal *items = realloc(l->items, (size_t)cap * sizeof *items);
    if (!items) return xtal_err_set(err, XTAL_ENOMEM, "out of memory for %d crystals", cap);
    l->items = items;
    l->cap = cap;
    if (ds->n_props > 0) {
        double *values = realloc(ds->prop_values, (size_t)cap * ds->n_props * sizeof *values);
        if (!values) return xtal_err_set(err, XTAL_ENOMEM, "out of memory for %d rows", cap);
        ds->prop_values = values;
    }
    return XTAL_OK;
}

/* Column of each property in the reader's header. */
static int map_prop_columns(const xtal_dataset *ds, const xtal_csv_reader *r, int *cols,
                            xtal_err *err)
{
    for (int p = 0; p < ds->n_props; p++) {
        cols[p] = column_index(&r->header, ds->prop_names[p]);
        if (cols[p] < 0)
            return xtal_err_set(err, XTAL_EINVALID,
                                "%s: no column '%s' (dataset begun on "
                                "another file?)",
                                r->path, ds->prop_names[p]);
    }
    return XTAL_OK;
}

/* Parses the CIF of one row into *out (exactly one structure expected). */
static int parse_row_crystal(const xtal_csv_reader *r, const xtal_csv_row *row, xtal_list *scratch,
                             xtal_crystal *out, xtal_err *err)
{
    const char *id = row->fields[r->col_id];
    if (!id[0])
        return xtal_err_set(err, XTAL_EPARSE, "%s:%ld: empty material_id", r->path, row->line);
    if (strlen(id) >= sizeof out->id)
        return xtal_err_set(err, XTAL_ELIMIT, "%s:%ld: material_id longer than %zu bytes", r->path,
                            row->line, sizeof out->id - 1);
    xtal_err cif_err = {{0}};
    int rc = xtal_read_cif_string(row->fields[r->col_cif], "cif field", scratch, &cif_err);
    if (rc == XTAL_OK && scratch->n != 1)
        rc = xtal_err_set(&cif_err, XTAL_EPARSE, "%d structures in the cif field, expected 1",
                          scratch->n);
    if (rc) /* the caller frees whatever the scratch list holds */
        return xtal_err_set(err, rc, "%s:%ld: material_id %s: %s", r->path, row->line, id,
                            cif_err.msg);
    *out = scratch->items[0];
    memset(&scratch->items[0], 0, sizeof scratch->items[0]); /* moved out */
    scratch->n = 0;
    snprintf(out->id, sizeof out->id, "%s", id);
    return XTAL_OK;
}

int xtal_dataset_parse_chunk(xtal_dataset *ds, const xtal_csv_reader *r,
                             const xtal_csv_chunk *chunk, xtal_err *err)
{
    int *prop_cols = malloc((size_t)(ds->n_props + 1) * sizeof *prop_cols);
    if (!prop_cols) return xtal_err_set(err, XTAL_ENOMEM, "%s: out of memory", r->path);
    int rc = map_prop_columns(ds, r, prop_cols, err);
    if (!rc) rc = dataset_reserve(ds, chunk->n, err);
    xtal_list scratch = {0};
    for (int i = 0; i < chunk->n && !rc; i++) {
        const xtal_csv_row *row = &chunk->rows[i];
        xtal_list *l = &ds->crystals;
        rc = parse_row_crystal(r, row, &scratch, &l->items[l->n], err);
        if (rc) break;
        double *values = ds->prop_values + (size_t)l->n * ds->n_props;
        for (int p = 0; p < ds->n_props; p++) values[p] = parse_number(row->fields[prop_cols[p]]);
        l->n++;
    }
    xtal_list_free(&scratch);
    free(prop_cols);
    return rc;
}

int xtal_dataset_read_csv(const char *path, long limit, xtal_dataset *ds, xtal_err *err)
{
    memset(ds, 0, sizeof *ds);
    xtal_csv_reader *r = NULL;
    int rc = xtal_csv_open(path, &r, err);
    if (rc) return rc;
    rc = xtal_dataset_begin(ds, r, err);
    xtal_csv_chunk chunk = {0};
    const int chunk_rows = 1024;
    while (!rc && (limit < 0 || ds->crystals.n < limit)) {
        long want = chunk_rows;
        if (limit >= 0 && limit - ds->crystals.n < want) want = limit - ds->crystals.n;
        rc = xtal_csv_read_chunk(r, (int)want, &chunk, err);
        if (rc == XTAL_EOF) {
            rc = XTAL_OK;
            break;
        }
        if (!rc) rc = xtal_dataset_parse_chunk(ds, r, &chunk, err);
    }
    xtal_csv_chunk_free(&chunk);
    xtal_csv_close(r);
    if (rc) xtal_dataset_free(ds);
    return rc;
}
