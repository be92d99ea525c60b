/* Campaign configs: YAML loaded through libcyaml, checked by a libyaml pre-pass for exact lines.
 *
 * libcyaml 1.3.1 stores typed values from a schema, but it validates loosely ("1.5x" loads as
 * 1.5, "maybe" as true, -5 as a huge uint64, "1e3" as the int 1, "010" as 8), expands aliases
 * (an alias bomb grows without bound), and the line in its error backtrace is that of the event
 * before the fault, not of the key (an unknown or duplicate key is reported at the previous
 * value). So a pre-pass walks libyaml's events against the same libcyaml schema tables and
 * refuses, naming file, line and key path: syntax errors, non-mapping tops, unknown, duplicate
 * and missing keys, anchors and aliases, and scalars that are not strictly an integer, a
 * decimal number, a bool, an enum value or a bounded string. It records the line of every key,
 * so that the range checks after loading name the line too. libcyaml then loads text it can no
 * longer misread; its own messages (captured through log_fn) only serve as a fallback.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cyaml/cyaml.h>
#include <yaml.h>

#include "pipeline/pipeline.h"

#define CFG_MAX_BYTES (1 << 20) /* configs are a few KiB; bounds memory on garbage input */
#define CFG_PATH_MAX  64        /* longest key path: "sampling.elements[102]" */
#define CFG_LOG_MAX   1024      /* libcyaml's captured log */

/* ------------------------------------------------------------------ schema */

#define OPT CYAML_FLAG_OPTIONAL
#define REQ CYAML_FLAG_DEFAULT

static const cyaml_strval_t distance_rules[] = {
    {"covalent", PIPE_DISTANCE_COVALENT},
    {"benchmark", PIPE_DISTANCE_BENCHMARK},
};
static const cyaml_strval_t potentials[] = {
    {"mp20", PIPE_POTENTIAL_MP20},
    {"uff-lj", PIPE_POTENTIAL_UFF_LJ},
};

static const cyaml_schema_field_t shard_fields[] = {
    CYAML_FIELD_INT("index", OPT, pipe_shard_config, index),
    CYAML_FIELD_INT("count", OPT, pipe_shard_config, count),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t campaign_fields[] = {
    CYAML_FIELD_STRING_PTR("name", REQ, pipe_campaign_config, name, 1, 256),
    CYAML_FIELD_UINT("seed", REQ, pipe_campaign_config, seed),
    CYAML_FIELD_STRING_PTR("model", REQ, pipe_campaign_config, model, 1, 4096),
    CYAML_FIELD_STRING_PTR("output", REQ, pipe_campaign_config, output, 1, 4096),
    CYAML_FIELD_INT("batches", REQ, pipe_campaign_config, batches),
    CYAML_FIELD_INT("batch_size", OPT, pipe_campaign_config, batch_size),
    CYAML_FIELD_FLOAT("commit_interval_s", OPT, pipe_campaign_config, commit_interval_s),
    CYAML_FIELD_MAPPING("shard", OPT, pipe_campaign_config, shard, shard_fields),
    CYAML_FIELD_END,
};

/* Up to 8 characters so that "Xyz" gets "unknown element", not a length error. */
static const cyaml_schema_value_t element_symbol = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 1, 8),
};

static const cyaml_schema_field_t sampling_fields[] = {
    CYAML_FIELD_INT("steps", OPT, pipe_sampling_config, steps),
    CYAML_FIELD_INT("natoms", OPT, pipe_sampling_config, natoms),
    CYAML_FIELD_STRING_PTR("composition", OPT, pipe_sampling_config, composition, 1, 256),
    CYAML_FIELD_SEQUENCE_COUNT("elements", CYAML_FLAG_POINTER | OPT, pipe_sampling_config, elements,
                               n_elements, &element_symbol, 1, XTAL_NUM_ELEMENTS),
    CYAML_FIELD_FLOAT("type_temperature", OPT, pipe_sampling_config, type_temperature),
    CYAML_FIELD_FLOAT("noise_scale", OPT, pipe_sampling_config, noise_scale),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t filters_fields[] = {
    CYAML_FIELD_ENUM("distance_rule", OPT | CYAML_FLAG_STRICT, pipe_filters_config, distance_rule,
                     distance_rules, CYAML_ARRAY_LEN(distance_rules)),
    CYAML_FIELD_FLOAT("distance_scale", OPT, pipe_filters_config, distance_scale),
    CYAML_FIELD_FLOAT("min_distance_A", OPT, pipe_filters_config, min_distance_A),
    CYAML_FIELD_BOOL("charge_neutrality", OPT, pipe_filters_config, charge_neutrality),
    CYAML_FIELD_FLOAT("symprec_A", OPT, pipe_filters_config, symprec_A),
    CYAML_FIELD_FLOAT("angle_tolerance_deg", OPT, pipe_filters_config, angle_tolerance_deg),
    CYAML_FIELD_BOOL("uniqueness", OPT, pipe_filters_config, uniqueness),
    CYAML_FIELD_STRING_PTR("novelty_reference", OPT, pipe_filters_config, novelty_reference, 1,
                           4096),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t relax_fields[] = {
    CYAML_FIELD_BOOL("enabled", OPT, pipe_relax_config, enabled),
    CYAML_FIELD_ENUM("potential", OPT | CYAML_FLAG_STRICT, pipe_relax_config, potential, potentials,
                     CYAML_ARRAY_LEN(potentials)),
    CYAML_FIELD_FLOAT("fmax_eV_A", OPT, pipe_relax_config, fmax_eV_A),
    CYAML_FIELD_INT("max_steps", OPT, pipe_relax_config, max_steps),
    CYAML_FIELD_BOOL("fixed_cell", OPT, pipe_relax_config, fixed_cell),
    CYAML_FIELD_FLOAT("max_stress_GPa", OPT, pipe_relax_config, max_stress_GPa),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t config_fields[] = {
    CYAML_FIELD_MAPPING("campaign", REQ, pipe_config, campaign, campaign_fields),
    CYAML_FIELD_MAPPING("sampling", OPT, pipe_config, sampling, sampling_fields),
    CYAML_FIELD_MAPPING("filters", OPT, pipe_config, filters, filters_fields),
    CYAML_FIELD_MAPPING("relax", OPT, pipe_config, relax, relax_fields),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t config_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, pipe_config, config_fields),
};

static const char *enum_name(const cyaml_strval_t *strings, size_t n, int64_t value)
{
    for (size_t i = 0; i < n; i++)
        if (strings[i].val == value) return strings[i].str;
    return "?";
}

/* For cyaml_free: no logging needed. */
static const cyaml_config_t free_config = {
    .mem_fn = cyaml_mem,
    .log_level = CYAML_LOG_ERROR,
};

/* ----------------------------------------------------------- load context */

typedef struct {
    char path[CFG_PATH_MAX]; /* "filters.symprec_A", "sampling.elements[2]" */
    int line;                /* 1-based */
} cfg_key;

typedef struct {
    const char *name; /* the file, for messages */
    const char *text;
    size_t len;
    xtal_err *err;
    cfg_key *keys; /* every key seen, in file order */
    int nkeys, cap;
    const char *where; /* last key seen: context for syntax errors */
    yaml_parser_t parser;
    yaml_event_t event;
    int have_event;
} cfg_ctx;

/* "FILE:LINE: key 'PATH': message", or without the key part when path is empty. */
static int fail_at(const cfg_ctx *c, int code, int line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int fail_at(const cfg_ctx *c, int code, int line, const char *path, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (path && *path)
        return xtal_err_set(c->err, code, "%s:%d: key '%s': %s", c->name, line, path, msg);
    return xtal_err_set(c->err, code, "%s:%d: %s", c->name, line, msg);
}

static const cfg_key *find_key(const cfg_ctx *c, const char *path)
{
    for (int i = 0; i < c->nkeys; i++)
        if (strcmp(c->keys[i].path, path) == 0) return &c->keys[i];
    return NULL;
}

static int has_key(const cfg_ctx *c, const char *path)
{
    return find_key(c, path) != NULL;
}

/* Line of a key, else of its nearest given parent ("campaign" for a defaulted
 * "campaign.shard.count"), else 1. */
static int line_of(const cfg_ctx *c, const char *path)
{
    char p[CFG_PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (;;) {
        const cfg_key *k = find_key(c, p);
        if (k) return k->line;
        char *dot = strrchr(p, '.');
        if (!dot) return 1;
        *dot = '\0';
    }
}

static int add_key(cfg_ctx *c, const char *path, int line)
{
    if (c->nkeys == c->cap) {
        int cap = c->cap ? 2 * c->cap : 64;
        cfg_key *k = realloc(c->keys, (size_t)cap * sizeof *k);
        if (!k) return xtal_err_set(c->err, XTAL_ENOMEM, "%s: out of memory", c->name);
        c->keys = k;
        c->cap = cap;
    }
    cfg_key *k = &c->keys[c->nkeys++];
    snprintf(k->path, sizeof k->path, "%s", path);
    k->line = line;
    c->where = k->path;
    return XTAL_OK;
}

/* -------------------------------------------------- pre-pass: libyaml events */

static int event_line(const yaml_event_t *e)
{
    return (int)e->start_mark.line + 1;
}

static int is_null_scalar(const yaml_event_t *e)
{
    if (e->type != YAML_SCALAR_EVENT || e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    const char *s = (const char *)e->data.scalar.value;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static const char *event_what(const yaml_event_t *e)
{
    switch (e->type) {
    case YAML_SCALAR_EVENT:
        return is_null_scalar(e) ? "an empty value" : "a single value";
    case YAML_SEQUENCE_START_EVENT:
        return "a list";
    case YAML_MAPPING_START_EVENT:
        return "a mapping";
    case YAML_ALIAS_EVENT:
        return "an alias";
    default:
        return "nothing";
    }
}

static int line_has_tab(const cfg_ctx *c, int line)
{
    const char *p = c->text, *end = c->text + c->len;
    for (int l = 1; l < line && p < end; p++)
        if (*p == '\n') l++;
    for (; p < end && *p != '\n'; p++)
        if (*p == '\t') return 1;
    return 0;
}

static int count_lines(const cfg_ctx *c)
{
    int n = 0;
    for (size_t i = 0; i < c->len; i++) n += c->text[i] == '\n';
    return n + (c->len > 0 && c->text[c->len - 1] != '\n');
}

/* libyaml's reader reports undecodable input (binary, Latin-1) by byte offset. */
static int fail_reader(const cfg_ctx *c)
{
    const yaml_parser_t *p = &c->parser;
    int line = 1;
    for (size_t i = 0; i < p->problem_offset && i < c->len; i++) line += c->text[i] == '\n';
    return fail_at(c, XTAL_EPARSE, line, NULL, "not a UTF-8 YAML text file: %s (byte %zu)",
                   p->problem ? p->problem : "unreadable", p->problem_offset);
}

/* libyaml's parser reports by line and column; the context says what was open, and where. */
static int fail_syntax(const cfg_ctx *c)
{
    const yaml_parser_t *p = &c->parser;
    if (p->error == YAML_MEMORY_ERROR)
        return xtal_err_set(c->err, XTAL_ENOMEM, "%s: out of memory", c->name);
    if (p->error == YAML_READER_ERROR) return fail_reader(c);
    int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
    int context_line = (int)p->context_mark.line + 1;
    if (p->context && line > count_lines(c)) { /* found at the end: name where it started */
        line = context_line;
        col = (int)p->context_mark.column + 1;
    }
    char where[CFG_PATH_MAX + 16] = "", context[128] = "";
    if (c->where) snprintf(where, sizeof where, " after key '%s'", c->where);
    if (p->context && context_line < line)
        snprintf(context, sizeof context, " %s started on line %d", p->context, context_line);
    else if (p->context)
        snprintf(context, sizeof context, " %s", p->context);
    return xtal_err_set(c->err, XTAL_EPARSE, "%s:%d:%d: YAML syntax error%s: %s%s%s", c->name, line,
                        col, where, p->problem ? p->problem : "malformed", context,
                        line_has_tab(c, line) ? " (tabs cannot indent YAML: use spaces)" : "");
}

/* Anchors and aliases have no use in a config and make alias bombs possible: refused. */
static int refuse_anchor(const cfg_ctx *c)
{
    const yaml_event_t *e = &c->event;
    const yaml_char_t *anchor = NULL;
    if (e->type == YAML_ALIAS_EVENT)
        anchor = e->data.alias.anchor;
    else if (e->type == YAML_SCALAR_EVENT)
        anchor = e->data.scalar.anchor;
    else if (e->type == YAML_SEQUENCE_START_EVENT)
        anchor = e->data.sequence_start.anchor;
    else if (e->type == YAML_MAPPING_START_EVENT)
        anchor = e->data.mapping_start.anchor;
    if (!anchor) return XTAL_OK;
    return fail_at(c, XTAL_EPARSE, event_line(e), c->where,
                   "YAML anchors and aliases (&%s, *%s) are not supported in druse configs",
                   (const char *)anchor, (const char *)anchor);
}

static int next_event(cfg_ctx *c)
{
    if (c->have_event) yaml_event_delete(&c->event);
    c->have_event = 0;
    if (!yaml_parser_parse(&c->parser, &c->event)) return fail_syntax(c);
    c->have_event = 1;
    return refuse_anchor(c);
}

/* ---- scalars: the strict forms that libcyaml then reads the same way */

/* Decimal digits with an optional sign; no leading zeros (libcyaml reads "010" as octal). */
static int parse_decimal(const char *s, int *negative, uint64_t *magnitude)
{
    *negative = *s == '-';
    if (*s == '-' || *s == '+') s++;
    if (!isdigit((unsigned char)*s) || (s[0] == '0' && s[1])) return -1;
    uint64_t m = 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s)) return -1;
        unsigned d = (unsigned)(*s - '0');
        if (m > (UINT64_MAX - d) / 10) return -2;
        m = 10 * m + d;
    }
    *magnitude = m;
    return 0;
}

static int check_integer(const cfg_ctx *c, const cyaml_schema_value_t *v, const char *path,
                         int line, const char *s)
{
    int neg = 0, unsigned_type = v->type == CYAML_UINT;
    uint64_t m = 0;
    int rc = parse_decimal(s, &neg, &m);
    if (rc == -1)
        return fail_at(c, XTAL_EPARSE, line, path, "expected %s integer, got '%s'",
                       unsigned_type ? "a non-negative" : "an", s);
    unsigned bits = 8 * v->data_size;
    uint64_t max = bits >= 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
    if (!unsigned_type) max >>= 1;
    if (unsigned_type && neg && m > 0)
        return fail_at(c, XTAL_EPARSE, line, path, "expected a non-negative integer, got '%s'", s);
    if (rc == -2 || m > max + (uint64_t)(neg && !unsigned_type))
        return fail_at(c, XTAL_EINVALID, line, path, "integer '%s' is out of range", s);
    return XTAL_OK;
}

/* Plain decimal notation: [+-]digits[.digits][e[+-]digits], or .5; no inf, nan or hex. */
static int is_decimal_number(const char *s)
{
    if (*s == '+' || *s == '-') s++;
    int digits = 0;
    for (; isdigit((unsigned char)*s); s++) digits++;
    if (*s == '.')
        for (s++; isdigit((unsigned char)*s); s++) digits++;
    if (!digits) return 0;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!isdigit((unsigned char)*s)) return 0;
        while (isdigit((unsigned char)*s)) s++;
    }
    return *s == '\0';
}

static int check_number(const cfg_ctx *c, const char *path, int line, const char *s)
{
    if (!is_decimal_number(s))
        return fail_at(c, XTAL_EPARSE, line, path, "expected a number, got '%s'", s);
    if (!isfinite(strtod(s, NULL)))
        return fail_at(c, XTAL_EINVALID, line, path, "number '%s' is out of range", s);
    return XTAL_OK;
}

/* The words libcyaml 1.3.1 maps the same way (it takes any other word, even "maybe", as true). */
static int check_bool(const cfg_ctx *c, const char *path, int line, const char *s)
{
    static const char *const words[] = {"true", "false", "yes", "no", "on", "off"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcasecmp(s, words[i]) == 0) return XTAL_OK;
    return fail_at(c, XTAL_EPARSE, line, path, "expected true or false, got '%s'", s);
}

static int check_enum(const cfg_ctx *c, const cyaml_schema_value_t *v, const char *path, int line,
                      const char *s)
{
    char choices[160] = "";
    for (uint32_t i = 0; i < v->enumeration.count; i++) {
        if (strcmp(s, v->enumeration.strings[i].str) == 0) return XTAL_OK;
        size_t n = strlen(choices);
        snprintf(choices + n, sizeof choices - n, "%s%s", i ? ", " : "",
                 v->enumeration.strings[i].str);
    }
    return fail_at(c, XTAL_EPARSE, line, path, "expected one of: %s; got '%s'", choices, s);
}

static int check_string(const cfg_ctx *c, const cyaml_schema_value_t *v, const char *path, int line,
                        const char *s, size_t len)
{
    if (len < v->string.min) return fail_at(c, XTAL_EINVALID, line, path, "must not be empty");
    if (len > v->string.max)
        return fail_at(c, XTAL_EINVALID, line, path, "longer than %u characters",
                       (unsigned)v->string.max);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return fail_at(c, XTAL_EPARSE, line, path, "contains control characters");
    return XTAL_OK;
}

static const char *type_what(const cyaml_schema_value_t *v)
{
    switch (v->type) {
    case CYAML_INT:
        return "an integer";
    case CYAML_UINT:
        return "a non-negative integer";
    case CYAML_FLOAT:
        return "a number";
    case CYAML_BOOL:
        return "true or false";
    case CYAML_ENUM:
        return "a name";
    case CYAML_STRING:
        return "a string";
    case CYAML_MAPPING:
        return "a mapping (indented keys)";
    case CYAML_SEQUENCE:
        return "a list ([Fe, O] or '- Fe' lines)";
    default:
        return "a value";
    }
}

/* The current event (a scalar) against a scalar schema. */
static int check_scalar(const cfg_ctx *c, const cyaml_schema_value_t *v, const char *path)
{
    const yaml_event_t *e = &c->event;
    int line = event_line(e);
    const char *s = (const char *)e->data.scalar.value;
    if (e->type != YAML_SCALAR_EVENT || is_null_scalar(e))
        return fail_at(c, XTAL_EPARSE, line, path, "expected %s, got %s", type_what(v),
                       event_what(e));
    switch (v->type) {
    case CYAML_INT:
    case CYAML_UINT:
        return check_integer(c, v, path, line, s);
    case CYAML_FLOAT:
        return check_number(c, path, line, s);
    case CYAML_BOOL:
        return check_bool(c, path, line, s);
    case CYAML_ENUM:
        return check_enum(c, v, path, line, s);
    case CYAML_STRING:
        return check_string(c, v, path, line, s, e->data.scalar.length);
    default:
        return fail_at(c, XTAL_EUNSUPPORTED, line, path, "no check for this type");
    }
}

/* ---- keys: unknown ones get the list and, for a near miss, a suggestion */

static size_t edit_distance(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b), row[CFG_PATH_MAX + 1];
    if (na > CFG_PATH_MAX || nb > CFG_PATH_MAX) return SIZE_MAX;
    for (size_t j = 0; j <= nb; j++) row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j], best = diag + (tolower((unsigned char)a[i - 1]) !=
                                               tolower((unsigned char)b[j - 1]));
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[nb];
}

static int near_miss(const char *key, const char *field)
{
    if (edit_distance(key, field) <= 2) return 1;
    return strlen(key) >= 4 && (strstr(field, key) || strstr(key, field));
}

static int fail_unknown_key(const cfg_ctx *c, const cyaml_schema_field_t *fields, const char *path,
                            int line, const char *key)
{
    char known[300] = "", hint[80] = "";
    for (int i = 0; fields[i].key; i++) {
        size_t n = strlen(known);
        snprintf(known + n, sizeof known - n, "%s%s", i ? ", " : "", fields[i].key);
        if (!hint[0] && near_miss(key, fields[i].key))
            snprintf(hint, sizeof hint, "did you mean '%s'? ", fields[i].key);
    }
    return fail_at(c, XTAL_EPARSE, line, path, "unknown key; %sknown here: %s", hint, known);
}

static int join_path(const cfg_ctx *c, char path[CFG_PATH_MAX], const char *prefix, const char *key,
                     int line)
{
    int n = snprintf(path, CFG_PATH_MAX, "%s%s%s", prefix, *prefix ? "." : "", key);
    if (n < 0 || n >= CFG_PATH_MAX) {
        char shown[CFG_PATH_MAX];
        snprintf(shown, sizeof shown, "%s", key); /* truncated on purpose */
        return fail_at(c, XTAL_EPARSE, line, NULL, "unknown key '%s...' (too long)", shown);
    }
    return XTAL_OK;
}

/* The current event is a mapping key: finds its field and fills its path. */
static int scan_key(cfg_ctx *c, const cyaml_schema_field_t *fields, const char *prefix, int *index,
                    char path[CFG_PATH_MAX])
{
    const yaml_event_t *e = &c->event;
    int line = event_line(e);
    if (e->type != YAML_SCALAR_EVENT || is_null_scalar(e))
        return fail_at(c, XTAL_EPARSE, line, prefix, "expected a key name, got %s", event_what(e));
    const char *key = (const char *)e->data.scalar.value;
    int rc = join_path(c, path, prefix, key, line);
    if (rc < 0) return rc;
    for (int i = 0; fields[i].key; i++)
        if (strcmp(fields[i].key, key) == 0) {
            *index = i;
            return XTAL_OK;
        }
    return fail_unknown_key(c, fields, path, line, key);
}

static int check_required(const cfg_ctx *c, const cyaml_schema_field_t *fields, uint64_t seen,
                          const char *prefix, int line)
{
    for (int i = 0; fields[i].key; i++) {
        if ((fields[i].value.flags & CYAML_FLAG_OPTIONAL) || (seen >> i & 1)) continue;
        char path[CFG_PATH_MAX];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", fields[i].key);
        return fail_at(c, XTAL_EPARSE, line, path, "required key missing%s%s%s",
                       *prefix ? " in '" : "", prefix, *prefix ? "'" : "");
    }
    return XTAL_OK;
}

static int scan_value(cfg_ctx *c, const cyaml_schema_value_t *v, const char *path);

/* After a MAPPING_START: every key known, none twice, the required ones present. */
static int scan_mapping(cfg_ctx *c, const cyaml_schema_field_t *fields, const char *prefix,
                        int line)
{
    uint64_t seen = 0;
    for (;;) {
        int rc = next_event(c);
        if (rc < 0) return rc;
        if (c->event.type == YAML_MAPPING_END_EVENT)
            return check_required(c, fields, seen, prefix, line);
        int index = 0, key_line = event_line(&c->event);
        char path[CFG_PATH_MAX];
        if ((rc = scan_key(c, fields, prefix, &index, path)) < 0) return rc;
        if (seen >> index & 1)
            return fail_at(c, XTAL_EPARSE, key_line, path, "duplicate key (first given at line %d)",
                           line_of(c, path));
        seen |= UINT64_C(1) << index;
        if ((rc = add_key(c, path, key_line)) < 0) return rc;
        if ((rc = scan_value(c, &fields[index].value, path)) < 0) return rc;
    }
}

/* After a SEQUENCE_START: scalar entries, between min and max of them. */
static int scan_sequence(cfg_ctx *c, const cyaml_schema_value_t *v, const char *path, int line)
{
    uint32_t n = 0;
    for (;;) {
        int rc = next_event(c);
        if (rc < 0) return rc;
        if (c->event.type == YAML_SEQUENCE_END_EVENT) break;
        char item[CFG_PATH_MAX];
        /* Paths are schema keys plus "[n]", far below CFG_PATH_MAX; truncation is harmless. */
        if (snprintf(item, sizeof item, "%s[%u]", path, (unsigned)n) < 0) item[0] = '\0';
        if (++n > v->sequence.max)
            return fail_at(c, XTAL_EINVALID, event_line(&c->event), path, "more than %u entries",
                           (unsigned)v->sequence.max);
        if ((rc = check_scalar(c, v->sequence.entry, item)) < 0) return rc;
        if ((rc = add_key(c, item, event_line(&c->event))) < 0) return rc;
    }
    if (n < v->sequence.min)
        return fail_at(c, XTAL_EINVALID, line, path, "needs at least %u entr%s",
                       (unsigned)v->sequence.min, v->sequence.min == 1 ? "y" : "ies");
    return XTAL_OK;
}

static int scan_value(cfg_ctx *c, const cyaml_schema_value_t *v, const char *path)
{
    int rc = next_event(c);
    if (rc < 0) return rc;
    const yaml_event_t *e = &c->event;
    int line = event_line(e);
    if (v->type == CYAML_MAPPING) {
        if (e->type == YAML_MAPPING_START_EVENT)
            return scan_mapping(c, v->mapping.fields, path, line_of(c, path));
        return fail_at(c, XTAL_EPARSE, line, path, "expected %s, got %s%s", type_what(v),
                       event_what(e),
                       is_null_scalar(e) ? " (leave the section out, or write {})" : "");
    }
    if (v->type == CYAML_SEQUENCE) {
        if (e->type == YAML_SEQUENCE_START_EVENT) return scan_sequence(c, v, path, line);
        return fail_at(c, XTAL_EPARSE, line, path, "expected %s, got %s", type_what(v),
                       event_what(e));
    }
    return check_scalar(c, v, path);
}

/* What a kind of config has at its top level: the fields and the words for messages. */
typedef struct {
    const cyaml_schema_field_t *fields;
    const char *needs;    /* "a 'campaign' section" */
    const char *sections; /* "campaign, sampling, filters, relax" */
} cfg_top;

/* One document whose top is a mapping of sections. */
static int scan_document(cfg_ctx *c, const cfg_top *top)
{
    int rc;
    if ((rc = next_event(c)) < 0 || (rc = next_event(c)) < 0) return rc; /* stream, document */
    if (c->event.type == YAML_STREAM_END_EVENT)
        return fail_at(c, XTAL_EPARSE, 1, NULL,
                       "no YAML document (only comments or blank lines); a config needs at "
                       "least %s",
                       top->needs);
    if ((rc = next_event(c)) < 0) return rc;
    if (c->event.type != YAML_MAPPING_START_EVENT)
        return fail_at(c, XTAL_EPARSE, event_line(&c->event), NULL,
                       "the top level must be a mapping of sections (%s), got %s", top->sections,
                       event_what(&c->event));
    if ((rc = scan_mapping(c, top->fields, "", 1)) < 0) return rc;
    if ((rc = next_event(c)) < 0 || (rc = next_event(c)) < 0) return rc; /* document end, next */
    if (c->event.type != YAML_STREAM_END_EVENT)
        return fail_at(c, XTAL_EPARSE, event_line(&c->event), NULL,
                       "a second YAML document ('---'); a config is one document");
    return XTAL_OK;
}

static int scan(cfg_ctx *c, const cfg_top *top)
{
    if (!yaml_parser_initialize(&c->parser))
        return xtal_err_set(c->err, XTAL_ENOMEM, "%s: out of memory", c->name);
    yaml_parser_set_input_string(&c->parser, (const unsigned char *)c->text, c->len);
    /* UTF-8 only: the text is also kept (for the archive) and scanned by byte for messages. */
    yaml_parser_set_encoding(&c->parser, YAML_UTF8_ENCODING);
    int rc = scan_document(c, top);
    if (c->have_event) yaml_event_delete(&c->event);
    c->have_event = 0;
    yaml_parser_delete(&c->parser);
    return rc;
}

static const cfg_top campaign_top = {config_fields, "a 'campaign' section",
                                     "campaign, sampling, filters, relax"};

/* ------------------------------------------------------ libcyaml: the load */

typedef struct {
    char text[CFG_LOG_MAX];
    size_t len;
} cfg_log;

/* Keeps libcyaml's messages (and its backtrace) instead of printing them. */
static void capture_log(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
    cfg_log *log = ctx;
    size_t room = sizeof log->text - log->len;
    if (room <= 1) return;
    int n = vsnprintf(log->text + log->len, room, fmt, args);
    if (n > 0) log->len += (size_t)n < room ? (size_t)n : room - 1;
}

/* Only reached when the pre-pass let through what libcyaml refuses: its own words, on one line
 * (the backtrace carries libcyaml's line and column). */
static int fail_cyaml(const cfg_ctx *c, cyaml_err_t e, cfg_log *log)
{
    for (char *p = log->text; *p; p++)
        if (*p == '\n') *p = p[1] ? ';' : '\0';
    return xtal_err_set(c->err, e == CYAML_ERR_OOM ? XTAL_ENOMEM : XTAL_EPARSE,
                        "%s: libcyaml: %s%s%s", c->name, cyaml_strerror(e),
                        log->text[0] ? ": " : "", log->text);
}

static int load_typed(const cfg_ctx *c, const cyaml_schema_value_t *schema, void **out)
{
    cfg_log log = {.len = 0};
    cyaml_config_t cc = {
        .log_fn = capture_log,
        .log_ctx = &log,
        .mem_fn = cyaml_mem,
        .log_level = CYAML_LOG_WARNING,
        .flags = CYAML_CFG_NO_ALIAS,
    };
    cyaml_data_t *data = NULL;
    cyaml_err_t e = cyaml_load_data((const uint8_t *)c->text, c->len, &cc, schema, &data, NULL);
    if (e != CYAML_OK) return fail_cyaml(c, e, &log);
    if (!data) return xtal_err_set(c->err, XTAL_EPARSE, "%s: libcyaml loaded nothing", c->name);
    *out = data;
    return XTAL_OK;
}

/* ------------------------------------------------- defaults and range checks */

#define DEFAULT(path, lvalue, value)                                                               \
    do {                                                                                           \
        if (!has_key(c, path)) (lvalue) = (value);                                                 \
    } while (0)

/* The defaults of every optional key; configs/example.yaml and docs/configs.md list them. */
static void apply_defaults(const cfg_ctx *c, pipe_config *cfg)
{
    pipe_campaign_config *k = &cfg->campaign;
    DEFAULT("campaign.batch_size", k->batch_size, 64);
    DEFAULT("campaign.commit_interval_s", k->commit_interval_s, 300.0);
    DEFAULT("campaign.shard.index", k->shard.index, 0);
    DEFAULT("campaign.shard.count", k->shard.count, 1);
    pipe_sampling_config *s = &cfg->sampling;
    DEFAULT("sampling.steps", s->steps, 100);
    DEFAULT("sampling.natoms", s->natoms, 0);
    DEFAULT("sampling.type_temperature", s->type_temperature, 1.0);
    DEFAULT("sampling.noise_scale", s->noise_scale, 1.0);
    pipe_filters_config *f = &cfg->filters;
    DEFAULT("filters.distance_rule", f->distance_rule, PIPE_DISTANCE_COVALENT);
    DEFAULT("filters.distance_scale", f->distance_scale, 0.5);
    DEFAULT("filters.min_distance_A", f->min_distance_A, 0.5);
    DEFAULT("filters.charge_neutrality", f->charge_neutrality, 1);
    DEFAULT("filters.symprec_A", f->symprec_A, 0.1);
    DEFAULT("filters.angle_tolerance_deg", f->angle_tolerance_deg, 5.0);
    DEFAULT("filters.uniqueness", f->uniqueness, 1);
    pipe_relax_config *r = &cfg->relax;
    DEFAULT("relax.enabled", r->enabled, 1);
    DEFAULT("relax.potential", r->potential, PIPE_POTENTIAL_MP20);
    DEFAULT("relax.fmax_eV_A", r->fmax_eV_A, 0.05);
    DEFAULT("relax.max_steps", r->max_steps, 500);
    DEFAULT("relax.fixed_cell", r->fixed_cell, 0);
    DEFAULT("relax.max_stress_GPa", r->max_stress_GPa, 0.1);
}

/* Shortest form that reads back as the same double: "300", "0.05", "1e-05". */
static const char *format_real(char buf[32], double x)
{
    if (x == floor(x) && fabs(x) < 1e15) {
        snprintf(buf, 32, "%.0f", x);
        return buf;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, 32, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    return buf;
}

static int fail_key(const cfg_ctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_key(const cfg_ctx *c, const char *path, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fail_at(c, XTAL_EINVALID, line_of(c, path), path, "%s", msg);
}

static int int_in(const cfg_ctx *c, const char *path, long long v, long long lo, long long hi)
{
    if (v >= lo && v <= hi) return XTAL_OK;
    return fail_key(c, path, "must be in [%lld, %lld], got %lld", lo, hi, v);
}

enum { CLOSED = 0, OPEN = 1 };

/* lo_open/hi_open: OPEN excludes the bound, as in (0, 1]. */
static int real_in(const cfg_ctx *c, const char *path, double v, double lo, int lo_open, double hi,
                   int hi_open)
{
    int ok = (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
    if (ok) return XTAL_OK;
    char a[32], b[32], got[32];
    return fail_key(c, path, "must be in %c%s, %s%c, got %s", lo_open ? '(' : '[',
                    format_real(a, lo), format_real(b, hi), hi_open ? ')' : ']',
                    format_real(got, v));
}

static int check_campaign(const cfg_ctx *c, const pipe_campaign_config *k)
{
    int rc;
    if ((rc = int_in(c, "campaign.batches", k->batches, 1, INT32_MAX)) < 0 ||
        (rc = int_in(c, "campaign.batch_size", k->batch_size, 1, 65536)) < 0 ||
        (rc = real_in(c, "campaign.commit_interval_s", k->commit_interval_s, 0, OPEN, 86400,
                      CLOSED)) < 0)
        return rc;
    if (k->shard.count < 1 || k->shard.count > k->batches)
        return fail_key(c, "campaign.shard.count", "must be in [1, %d] (campaign.batches), got %d",
                        k->batches, k->shard.count);
    if (k->shard.index < 0 || k->shard.index >= k->shard.count)
        return fail_key(c, "campaign.shard.index",
                        "must be in [0, %d] (below campaign.shard.count = %d), got %d",
                        k->shard.count - 1, k->shard.count, k->shard.index);
    return XTAL_OK;
}

/* Z of an exact element symbol ("Fe"), else 0 ("fe", "Fe2+" and "Xx" are not symbols). */
static int symbol_Z(const char *symbol)
{
    int Z = xtal_element_from_symbol(symbol);
    const xtal_element *e = xtal_element_by_Z(Z);
    return e && strcmp(e->symbol, symbol) == 0 ? Z : 0;
}

static int fail_symbol(const cfg_ctx *c, const char *path, const char *symbol)
{
    const xtal_element *e = xtal_element_by_Z(xtal_element_from_symbol(symbol));
    if (e && strcasecmp(e->symbol, symbol) == 0)
        return fail_key(c, path, "unknown element symbol '%s'; did you mean '%s'?", symbol,
                        e->symbol);
    return fail_key(c, path, "unknown element symbol '%s'", symbol);
}

static int check_elements(const cfg_ctx *c, pipe_sampling_config *s)
{
    for (unsigned i = 0; i < s->n_elements; i++) {
        char path[CFG_PATH_MAX];
        snprintf(path, sizeof path, "sampling.elements[%u]", i);
        int Z = symbol_Z(s->elements[i]);
        if (!Z) return fail_symbol(c, path, s->elements[i]);
        for (unsigned j = 0; j < i; j++)
            if (s->element_Z[j] == Z)
                return fail_key(c, path, "element '%s' listed twice", s->elements[i]);
        s->element_Z[i] = Z;
    }
    return XTAL_OK;
}

/* Adds count atoms of element Z to the composition. */
static int add_species(const cfg_ctx *c, pipe_sampling_config *s, int Z, long count)
{
    const char *path = "sampling.composition";
    if (count < 1)
        return fail_key(c, path, "'%s' has a zero count for %s", s->composition,
                        xtal_element_by_Z(Z)->symbol);
    if (count > PIPE_CONFIG_MAX_NATOMS || s->formula_atoms + count > PIPE_CONFIG_MAX_NATOMS)
        return fail_key(c, path, "'%s' has more than %d atoms per formula unit", s->composition,
                        PIPE_CONFIG_MAX_NATOMS);
    s->formula_atoms += (int)count;
    for (int i = 0; i < s->n_species; i++)
        if (s->species_Z[i] == Z) {
            s->species_count[i] += (int)count;
            return XTAL_OK;
        }
    if (s->n_species == PIPE_CONFIG_MAX_SPECIES)
        return fail_key(c, path, "more than %d elements", PIPE_CONFIG_MAX_SPECIES);
    s->species_Z[s->n_species] = Z;
    s->species_count[s->n_species++] = (int)count;
    return XTAL_OK;
}

/* A plain formula: element symbols, each with an optional positive count ("Fe2O3", "LiFePO4").
 * No parentheses, fractions or spaces. */
static int parse_composition(const cfg_ctx *c, pipe_sampling_config *s)
{
    const char *path = "sampling.composition", *p = s->composition;
    while (*p) {
        char symbol[3] = {*p, 0, 0};
        if (!isupper((unsigned char)*p))
            return fail_key(c, path,
                            "'%s' is not a plain formula like Fe2O3 (unexpected '%c' at "
                            "character %d)",
                            s->composition, *p, (int)(p - s->composition) + 1);
        if (islower((unsigned char)p[1])) symbol[1] = p[1];
        p += symbol[1] ? 2 : 1;
        int Z = symbol_Z(symbol);
        if (!Z)
            return fail_key(c, path, "unknown element symbol '%s' in '%s'", symbol, s->composition);
        long count = 1;
        if (isdigit((unsigned char)*p)) {
            char *end;
            errno = 0;
            count = strtol(p, &end, 10);
            if (errno) count = LONG_MAX;
            p = end;
        }
        int rc = add_species(c, s, Z, count);
        if (rc < 0) return rc;
    }
    return XTAL_OK;
}

static int is_listed(const pipe_sampling_config *s, int Z)
{
    for (unsigned i = 0; i < s->n_elements; i++)
        if (s->element_Z[i] == Z) return 1;
    return 0;
}

static int check_composition(const cfg_ctx *c, pipe_sampling_config *s)
{
    int rc = parse_composition(c, s);
    if (rc < 0) return rc;
    for (int i = 0; s->n_elements && i < s->n_species; i++)
        if (!is_listed(s, s->species_Z[i]))
            return fail_key(c, "sampling.composition",
                            "'%s' has %s, which sampling.elements does not list", s->composition,
                            xtal_element_by_Z(s->species_Z[i])->symbol);
    if (s->natoms > 0 && s->natoms % s->formula_atoms != 0)
        return fail_key(c, "sampling.natoms",
                        "must be a multiple of %d (atoms per formula unit of '%s'), got %d",
                        s->formula_atoms, s->composition, s->natoms);
    return XTAL_OK;
}

static int check_sampling(const cfg_ctx *c, pipe_sampling_config *s)
{
    int rc;
    if ((rc = int_in(c, "sampling.steps", s->steps, 1, 100000)) < 0 ||
        (rc = int_in(c, "sampling.natoms", s->natoms, 0, PIPE_CONFIG_MAX_NATOMS)) < 0 ||
        (rc = real_in(c, "sampling.type_temperature", s->type_temperature, 0, OPEN, 10, CLOSED)) <
            0 ||
        (rc = real_in(c, "sampling.noise_scale", s->noise_scale, 0, CLOSED, 2, CLOSED)) < 0 ||
        (rc = check_elements(c, s)) < 0)
        return rc;
    return s->composition ? check_composition(c, s) : XTAL_OK;
}

static int check_filters(const cfg_ctx *c, const pipe_filters_config *f)
{
    int rc;
    if ((rc = real_in(c, "filters.distance_scale", f->distance_scale, 0, OPEN, 2, CLOSED)) < 0 ||
        (rc = real_in(c, "filters.min_distance_A", f->min_distance_A, 0, OPEN, 10, CLOSED)) < 0 ||
        (rc = real_in(c, "filters.symprec_A", f->symprec_A, 0, OPEN, 1, CLOSED)) < 0)
        return rc;
    /* -1 hands the choice to spglib (its default angle handling). */
    double a = f->angle_tolerance_deg;
    if (a == -1 || (a > 0 && a <= 45)) return XTAL_OK;
    char got[32];
    return fail_key(c, "filters.angle_tolerance_deg", "must be in (0, 45] or -1, got %s",
                    format_real(got, a));
}

static int check_relax(const cfg_ctx *c, const pipe_relax_config *r)
{
    int rc;
    if ((rc = real_in(c, "relax.fmax_eV_A", r->fmax_eV_A, 0, OPEN, 100, CLOSED)) < 0 ||
        (rc = int_in(c, "relax.max_steps", r->max_steps, 0, 100000)) < 0)
        return rc;
    return real_in(c, "relax.max_stress_GPa", r->max_stress_GPa, 0, OPEN, 100, CLOSED);
}

static int finish(const cfg_ctx *c, pipe_config *cfg)
{
    apply_defaults(c, cfg);
    int rc;
    if ((rc = check_campaign(c, &cfg->campaign)) < 0 ||
        (rc = check_sampling(c, &cfg->sampling)) < 0 ||
        (rc = check_filters(c, &cfg->filters)) < 0 || (rc = check_relax(c, &cfg->relax)) < 0)
        return rc;
    cfg->source = strdup(c->name);
    cfg->text = malloc(c->len + 1);
    if (!cfg->source || !cfg->text)
        return xtal_err_set(c->err, XTAL_ENOMEM, "%s: out of memory", c->name);
    memcpy(cfg->text, c->text, c->len);
    cfg->text[c->len] = '\0';
    return XTAL_OK;
}

/* ------------------------------------------------------------------ public */

/* One kind of config file (campaign, training): its pre-pass fields, libcyaml schema, the
 * checks after loading, and how to free it. The load steps are the same for every kind. */
typedef struct {
    const cfg_top *top;
    const cyaml_schema_value_t *schema;
    int (*finish)(const cfg_ctx *c, void *cfg);
    void (*free)(void *cfg);
    const char *empty_message;
} cfg_kind;

static int load_string(const cfg_kind *k, const char *text, size_t len, const char *name,
                       void **out, xtal_err *err)
{
    *out = NULL;
    cfg_ctx c = {.name = name ? name : "<config>", .text = text, .len = len, .err = err};
    if (len == 0) return fail_at(&c, XTAL_EPARSE, 1, NULL, "%s", k->empty_message);
    if (len > CFG_MAX_BYTES)
        return xtal_err_set(err, XTAL_ELIMIT, "%s: larger than %d bytes: not a druse config",
                            c.name, CFG_MAX_BYTES);
    void *cfg = NULL;
    int rc = scan(&c, k->top);
    if (rc == XTAL_OK) rc = load_typed(&c, k->schema, &cfg);
    if (rc == XTAL_OK) rc = k->finish(&c, cfg);
    free(c.keys);
    if (rc < 0)
        k->free(cfg);
    else
        *out = cfg;
    return rc;
}

static int finish_campaign(const cfg_ctx *c, void *cfg)
{
    return finish(c, cfg);
}
static void free_campaign(void *cfg)
{
    pipe_config_free(cfg);
}

static const cfg_kind campaign_kind = {&campaign_top, &config_schema, finish_campaign,
                                       free_campaign,
                                       "empty file; a config needs at least a 'campaign' section"};

int pipe_config_load_string(const char *text, size_t len, const char *name, pipe_config **out,
                            xtal_err *err)
{
    return load_string(&campaign_kind, text, len, name, (void **)out, err);
}

/* Reads at most CFG_MAX_BYTES + 1 bytes, so that /dev/zero or a huge file cannot eat memory. */
static int read_text(const char *path, char **text, size_t *len, xtal_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return xtal_err_set(err, XTAL_EIO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = malloc(CFG_MAX_BYTES + 2);
    size_t n = buf ? fread(buf, 1, CFG_MAX_BYTES + 1, f) : 0;
    int failed = !buf || ferror(f), saved = errno;
    fclose(f);
    if (failed) {
        free(buf);
        return buf ? xtal_err_set(err, XTAL_EIO, "%s: cannot read: %s", path, strerror(saved))
                   : xtal_err_set(err, XTAL_ENOMEM, "%s: out of memory", path);
    }
    if (n > CFG_MAX_BYTES) {
        free(buf);
        return xtal_err_set(err, XTAL_ELIMIT, "%s: larger than %d bytes: not a druse config", path,
                            CFG_MAX_BYTES);
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return XTAL_OK;
}

static int load_file(const cfg_kind *k, const char *path, void **out, xtal_err *err)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = read_text(path, &text, &len, err);
    if (rc < 0) return rc;
    rc = load_string(k, text, len, path, out, err);
    free(text);
    return rc;
}

int pipe_config_load(const char *path, pipe_config **out, xtal_err *err)
{
    return load_file(&campaign_kind, path, (void **)out, err);
}

void pipe_config_free(pipe_config *cfg)
{
    if (!cfg) return;
    free(cfg->source);
    free(cfg->text);
    cfg->source = cfg->text = NULL;
    cyaml_free(&free_config, &config_schema, cfg, 0);
}

/* ------------------------------------------------------------------- print */

/* A double-quoted YAML string (the strings hold no control characters: checked on load). */
static void put_string(FILE *out, const char *indent, const char *key, const char *s)
{
    fprintf(out, "%s%s: \"", indent, key);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', out);
        fputc(*s, out);
    }
    fputs("\"\n", out);
}

static void put_real(FILE *out, const char *indent, const char *key, double x)
{
    char buf[32];
    fprintf(out, "%s%s: %s\n", indent, key, format_real(buf, x));
}

static void put_flag(FILE *out, const char *indent, const char *key, int on)
{
    fprintf(out, "%s%s: %s\n", indent, key, on ? "true" : "false");
}

static void print_campaign(FILE *out, const pipe_campaign_config *k)
{
    fputs("campaign:\n", out);
    put_string(out, "  ", "name", k->name);
    fprintf(out, "  seed: %llu\n", (unsigned long long)k->seed);
    put_string(out, "  ", "model", k->model);
    put_string(out, "  ", "output", k->output);
    fprintf(out, "  batches: %d\n  batch_size: %d\n", k->batches, k->batch_size);
    put_real(out, "  ", "commit_interval_s", k->commit_interval_s);
    fprintf(out, "  shard:\n    index: %d\n    count: %d\n", k->shard.index, k->shard.count);
}

static void print_sampling(FILE *out, const pipe_sampling_config *s)
{
    fprintf(out, "sampling:\n  steps: %d\n  natoms: %d\n", s->steps, s->natoms);
    if (s->composition)
        put_string(out, "  ", "composition", s->composition);
    else
        fputs("  # composition: not set (free composition)\n", out);
    if (s->n_elements) {
        fputs("  elements: [", out);
        for (unsigned i = 0; i < s->n_elements; i++)
            fprintf(out, "%s%s", i ? ", " : "", s->elements[i]);
        fputs("]\n", out);
    } else {
        fputs("  # elements: not set (every element the model knows)\n", out);
    }
    put_real(out, "  ", "type_temperature", s->type_temperature);
    put_real(out, "  ", "noise_scale", s->noise_scale);
}

static void print_filters(FILE *out, const pipe_filters_config *f)
{
    fprintf(out, "filters:\n  distance_rule: %s\n",
            enum_name(distance_rules, CYAML_ARRAY_LEN(distance_rules), f->distance_rule));
    put_real(out, "  ", "distance_scale", f->distance_scale);
    put_real(out, "  ", "min_distance_A", f->min_distance_A);
    put_flag(out, "  ", "charge_neutrality", f->charge_neutrality);
    put_real(out, "  ", "symprec_A", f->symprec_A);
    put_real(out, "  ", "angle_tolerance_deg", f->angle_tolerance_deg);
    put_flag(out, "  ", "uniqueness", f->uniqueness);
    if (f->novelty_reference)
        put_string(out, "  ", "novelty_reference", f->novelty_reference);
    else
        fputs("  # novelty_reference: not set (the model's training set, when found)\n", out);
}

static void print_relax(FILE *out, const pipe_relax_config *r)
{
    fputs("relax:\n", out);
    put_flag(out, "  ", "enabled", r->enabled);
    fprintf(out, "  potential: %s\n",
            enum_name(potentials, CYAML_ARRAY_LEN(potentials), r->potential));
    put_real(out, "  ", "fmax_eV_A", r->fmax_eV_A);
    fprintf(out, "  max_steps: %d\n", r->max_steps);
    put_flag(out, "  ", "fixed_cell", r->fixed_cell);
    put_real(out, "  ", "max_stress_GPa", r->max_stress_GPa);
}

void pipe_config_print(FILE *out, const pipe_config *cfg)
{
    print_campaign(out, &cfg->campaign);
    print_sampling(out, &cfg->sampling);
    print_filters(out, &cfg->filters);
    print_relax(out, &cfg->relax);
}

/* ========================================================== training configs */

static const cyaml_schema_field_t tdata_fields[] = {
    CYAML_FIELD_STRING_PTR("train", REQ, pipe_train_data_config, train, 1, 4096),
    CYAML_FIELD_STRING_PTR("val", REQ, pipe_train_data_config, val, 1, 4096),
    CYAML_FIELD_INT("max_train", OPT, pipe_train_data_config, max_train),
    CYAML_FIELD_INT("max_val", OPT, pipe_train_data_config, max_val),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t tmodel_fields[] = {
    CYAML_FIELD_INT("hidden", OPT, pipe_train_model_config, hidden),
    CYAML_FIELD_INT("layers", OPT, pipe_train_model_config, layers),
    CYAML_FIELD_INT("n_freq", OPT, pipe_train_model_config, n_freq),
    CYAML_FIELD_INT("time_dim", OPT, pipe_train_model_config, time_dim),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t ttrain_fields[] = {
    CYAML_FIELD_UINT("seed", OPT, pipe_train_train_config, seed),
    CYAML_FIELD_INT("epochs", REQ, pipe_train_train_config, epochs),
    CYAML_FIELD_INT("batch_size", OPT, pipe_train_train_config, batch_size),
    CYAML_FIELD_FLOAT("lr", OPT, pipe_train_train_config, lr),
    CYAML_FIELD_INT("warmup_steps", OPT, pipe_train_train_config, warmup_steps),
    CYAML_FIELD_FLOAT("weight_decay", OPT, pipe_train_train_config, weight_decay),
    CYAML_FIELD_FLOAT("grad_clip", OPT, pipe_train_train_config, grad_clip),
    CYAML_FIELD_FLOAT("ema_decay", OPT, pipe_train_train_config, ema_decay),
    CYAML_FIELD_STRING_PTR("checkpoint", OPT, pipe_train_train_config, checkpoint, 1, 4096),
    CYAML_FIELD_INT("checkpoint_every_steps", OPT, pipe_train_train_config, checkpoint_every_steps),
    CYAML_FIELD_STRING_PTR("output", REQ, pipe_train_train_config, output, 1, 4096),
    CYAML_FIELD_STRING_PTR("init_from", OPT, pipe_train_train_config, init_from, 1, 4096),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t tdiff_fields[] = {
    CYAML_FIELD_FLOAT("sigma_min", OPT, pipe_train_diffusion_config, sigma_min),
    CYAML_FIELD_FLOAT("sigma_max", OPT, pipe_train_diffusion_config, sigma_max),
    CYAML_FIELD_FLOAT("p_keep_types", OPT, pipe_train_diffusion_config, p_keep_types),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t train_config_fields[] = {
    CYAML_FIELD_MAPPING("data", REQ, pipe_train_config, data, tdata_fields),
    CYAML_FIELD_MAPPING("model", OPT, pipe_train_config, model, tmodel_fields),
    CYAML_FIELD_MAPPING("train", REQ, pipe_train_config, train, ttrain_fields),
    CYAML_FIELD_MAPPING("diffusion", OPT, pipe_train_config, diffusion, tdiff_fields),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t train_config_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, pipe_train_config, train_config_fields),
};

static const cfg_top train_top = {train_config_fields, "'data' and 'train' sections",
                                  "data, model, train, diffusion"};

/* Defaults and ranges; docs/configs.md ("Training configs") lists them. The model defaults are
 * gen_hparams_default() (d 128, 4 layers, K 32, T 64), the diffusion ones gen_diffusion_default(),
 * written out here so that the pipeline does not link the generator for a config check. */
static int finish_train(const cfg_ctx *c, pipe_train_config *cfg)
{
    pipe_train_data_config *d = &cfg->data;
    DEFAULT("data.max_train", d->max_train, 0);
    DEFAULT("data.max_val", d->max_val, 256);
    pipe_train_model_config *m = &cfg->model;
    DEFAULT("model.hidden", m->hidden, 128);
    DEFAULT("model.layers", m->layers, 4);
    DEFAULT("model.n_freq", m->n_freq, 32);
    DEFAULT("model.time_dim", m->time_dim, 64);
    pipe_train_train_config *t = &cfg->train;
    DEFAULT("train.seed", t->seed, 42);
    DEFAULT("train.batch_size", t->batch_size, 64);
    DEFAULT("train.lr", t->lr, 1e-3);
    DEFAULT("train.warmup_steps", t->warmup_steps, 100);
    DEFAULT("train.weight_decay", t->weight_decay, 0.0);
    DEFAULT("train.grad_clip", t->grad_clip, 1.0);
    DEFAULT("train.ema_decay", t->ema_decay, 0.0);
    DEFAULT("train.checkpoint_every_steps", t->checkpoint_every_steps, 500);
    pipe_train_diffusion_config *f = &cfg->diffusion;
    DEFAULT("diffusion.sigma_min", f->sigma_min, 0.005);
    DEFAULT("diffusion.sigma_max", f->sigma_max, 0.5);
    DEFAULT("diffusion.p_keep_types", f->p_keep_types, 0.25);
    int rc;
    if ((rc = int_in(c, "data.max_train", d->max_train, 0, INT32_MAX)) < 0 ||
        (rc = int_in(c, "data.max_val", d->max_val, 1, 1000000)) < 0 ||
        (rc = int_in(c, "model.hidden", m->hidden, 1, 4096)) < 0 ||
        (rc = int_in(c, "model.layers", m->layers, 1, 64)) < 0 ||
        (rc = int_in(c, "model.n_freq", m->n_freq, 1, 512)) < 0 ||
        (rc = int_in(c, "model.time_dim", m->time_dim, 2, 4096)) < 0 ||
        (rc = int_in(c, "train.epochs", t->epochs, 1, 1000000)) < 0 ||
        (rc = int_in(c, "train.batch_size", t->batch_size, 1, 65536)) < 0 ||
        (rc = real_in(c, "train.lr", t->lr, 0, OPEN, 1, CLOSED)) < 0 ||
        (rc = int_in(c, "train.warmup_steps", t->warmup_steps, 0, INT32_MAX)) < 0 ||
        (rc = real_in(c, "train.weight_decay", t->weight_decay, 0, CLOSED, 1, CLOSED)) < 0 ||
        (rc = real_in(c, "train.grad_clip", t->grad_clip, 0, CLOSED, 1e6, CLOSED)) < 0 ||
        (rc = real_in(c, "train.ema_decay", t->ema_decay, 0, CLOSED, 1, OPEN)) < 0 ||
        (rc = int_in(c, "train.checkpoint_every_steps", t->checkpoint_every_steps, 0, INT32_MAX)) <
            0 ||
        (rc = real_in(c, "diffusion.sigma_min", f->sigma_min, 0, OPEN, 1, CLOSED)) < 0 ||
        (rc = real_in(c, "diffusion.sigma_max", f->sigma_max, 0, OPEN, 10, CLOSED)) < 0 ||
        (rc = real_in(c, "diffusion.p_keep_types", f->p_keep_types, 0, CLOSED, 1, CLOSED)) < 0)
        return rc;
    if (m->time_dim % 2) return fail_key(c, "model.time_dim", "must be even, got %d", m->time_dim);
    if (f->sigma_max <= f->sigma_min) {
        char a[32], b[32];
        return fail_key(c, "diffusion.sigma_max", "must be above diffusion.sigma_min = %s, got %s",
                        format_real(a, f->sigma_min), format_real(b, f->sigma_max));
    }
    cfg->source = strdup(c->name);
    cfg->text = malloc(c->len + 1);
    if (!cfg->source || !cfg->text)
        return xtal_err_set(c->err, XTAL_ENOMEM, "%s: out of memory", c->name);
    memcpy(cfg->text, c->text, c->len);
    cfg->text[c->len] = '\0';
    return XTAL_OK;
}

static int finish_training(const cfg_ctx *c, void *cfg)
{
    return finish_train(c, cfg);
}
static void free_training(void *cfg)
{
    pipe_train_config_free(cfg);
}

static const cfg_kind training_kind = {
    &train_top, &train_config_schema, finish_training, free_training,
    "empty file; a training config needs 'data' and 'train' sections"};

int pipe_train_config_load_string(const char *text, size_t len, const char *name,
                                  pipe_train_config **out, xtal_err *err)
{
    return load_string(&training_kind, text, len, name, (void **)out, err);
}

int pipe_train_config_load(const char *path, pipe_train_config **out, xtal_err *err)
{
    return load_file(&training_kind, path, (void **)out, err);
}

void pipe_train_config_free(pipe_train_config *cfg)
{
    if (!cfg) return;
    free(cfg->source);
    free(cfg->text);
    cfg->source = cfg->text = NULL;
    cyaml_free(&free_config, &train_config_schema, cfg, 0);
}
