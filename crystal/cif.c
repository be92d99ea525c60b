/* CIF files: reading through Debian's libcodcif (every data block with atom sites gives one
 * crystal, symmetry operations expanded the way pymatgen's CifParser does), and a P1 writer.
 *
 * libcodcif keeps its lexer state in globals: these readers are not thread-safe (run them in
 * separate processes or ranks, not threads). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cif.h>
#include <cif_compiler.h>
#include <cif_options.h>
#include <cifmessage.h>
#include <cifvalue.h>
#include <datablock.h>

#include "crystal/crystal.h"
#include "crystal/io_util.h"

/* Two images of a site are one atom when their fractional coordinates agree within FRAC_TOL
 * on every axis (pymatgen's CifParser site_tolerance) or they lie within CART_TOL Angstrom:
 * no two real atoms come that close, and printed CIF coordinates are rarely better. */
#define FRAC_TOL 1e-4
#define CART_TOL 1e-3 /* Angstrom */
/* More operations than any space group has (192) with room for supercell settings. */
#define MAX_SYMOPS 1536
/* Occupancies this close to 1 are rounding, not disorder. */
#define OCCUPANCY_MIN 0.99
#define OCCUPANCY_MAX 1.01
/* Coordinates printed with at most this many decimals count as rounded (see snap_thirds). */
#define SNAP_MAX_DECIMALS 12

/* ------------------------------------------------------------ block access */

/* A tag by its CIF 1 name (as libcodcif stores it: lower case) and its DDLm spelling. */
typedef struct {
    const char *cif1, *ddlm;
} cif_tag;

/* One data block being read, with what error messages name. */
typedef struct {
    const char *source; /* file name, or the caller's name for a string */
    DATABLOCK *db;
    const char *block; /* data block name, without "data_" */
    int ddlm;          /* some tag has a DDLm-style dot: look up both spellings */
} block_ctx;

static block_ctx block_context(const char *source, DATABLOCK *db)
{
    block_ctx b = {source, db, datablock_name(db), 0};
    if (!b.block) b.block = "";
    char **tags = datablock_tags(db);
    for (size_t i = 0, n = datablock_length(db); i < n && !b.ddlm; i++)
        b.ddlm = strchr(tags[i], '.') != NULL;
    return b;
}

static int block_err(const block_ctx *b, xtal_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int block_err(const block_ctx *b, xtal_err *err, int code, const char *fmt, ...)
{
    char msg[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return xtal_err_set(err, code, "%s: data_%s: %s", b->source, b->block, msg);
}

static ssize_t tag_index(const block_ctx *b, cif_tag tag)
{
    /* libcodcif takes char * but only reads the name. */
    ssize_t i = datablock_tag_index(b->db, (char *)tag.cif1);
    if (i < 0 && b->ddlm && tag.ddlm) i = datablock_tag_index(b->db, (char *)tag.ddlm);
    return i;
}

static ssize_t tag_count(const block_ctx *b, ssize_t tag)
{
    return tag < 0 ? 0 : datablock_value_lengths(b->db)[tag];
}

/* Text of value `row` of a tag, or NULL when it is a CIF 2 list or table. */
static const char *value_text(const block_ctx *b, ssize_t tag, ssize_t row)
{
    CIFVALUE *v = datablock_cifvalue(b->db, (int)tag, (int)row);
    if (!v || value_type(v) == CIF_LIST || value_type(v) == CIF_TABLE) return NULL;
    return value_scalar(v);
}

static int is_unknown(const char *s)
{
    return !s || strcmp(s, "?") == 0 || strcmp(s, ".") == 0;
}

/* ----------------------------------------------------------------- numbers */

typedef enum { NUM_OK, NUM_UNKNOWN, NUM_BAD, NUM_NONFINITE } num_status;

/* A CIF number: "4.123", "-1.5e-3", or "4.123(5)" with a standard uncertainty, which is
 * dropped. decimals (may be NULL) gets the number of digits after the decimal point. */
static num_status parse_number(const char *s, double *value, int *decimals)
{
    if (is_unknown(s)) return NUM_UNKNOWN;
    char *end;
    *value = strtod(s, &end);
    if (end == s || isspace((unsigned char)s[0])) return NUM_BAD;
    if (*end == '(') {
        const char *p = end + 1;
        while (isdigit((unsigned char)*p)) p++;
        if (p == end + 1 || *p != ')') return NUM_BAD;
        end = (char *)p + 1;
    }
    if (*end != '\0') return NUM_BAD;
    if (!isfinite(*value)) return NUM_NONFINITE;
    if (decimals) {
        const char *dot = strchr(s, '.');
        int n = 0;
        if (dot)
            while (isdigit((unsigned char)dot[1 + n])) n++;
        *decimals = n;
    }
    return NUM_OK;
}

/* Value `row` of a numeric tag: its text (for messages) and how it parses. */
static num_status number_at(const block_ctx *b, ssize_t tag, ssize_t row, double *value,
                            int *decimals, const char **text)
{
    *text = value_text(b, tag, row);
    if (!*text) {
        *text = "(a list)";
        return NUM_BAD;
    }
    return parse_number(*text, value, decimals);
}

/* The error for a value that is no usable number; `what` names the tag (and site). Messages
 * are built only on failure: the success path is the hot one. */
static int number_err(const block_ctx *b, num_status st, const char *what, const char *text,
                      xtal_err *err)
{
    if (st == NUM_UNKNOWN)
        return block_err(b, err, XTAL_EINVALID, "%s is unknown ('%s')", what, text);
    if (st == NUM_NONFINITE)
        return block_err(b, err, XTAL_EINVALID, "%s is not finite ('%s')", what, text);
    return block_err(b, err, XTAL_EPARSE, "%s: '%s' is not a number", what, text);
}

/* ------------------------------------------------------------------ cell */

typedef struct {
    double abc[3];    /* Angstrom */
    double angles[3]; /* degrees: alpha, beta, gamma */
} cell_params;

static const cif_tag CELL_TAGS[6] = {
    {"_cell_length_a", "_cell.length_a"},     {"_cell_length_b", "_cell.length_b"},
    {"_cell_length_c", "_cell.length_c"},     {"_cell_angle_alpha", "_cell.angle_alpha"},
    {"_cell_angle_beta", "_cell.angle_beta"}, {"_cell_angle_gamma", "_cell.angle_gamma"}};

static int read_cell(const block_ctx *b, cell_params *p, double lattice[3][3], xtal_err *err)
{
    double values[6];
    for (int i = 0; i < 6; i++) {
        ssize_t tag = tag_index(b, CELL_TAGS[i]);
        if (tag < 0) return block_err(b, err, XTAL_EINVALID, "no %s", CELL_TAGS[i].cif1);
        if (tag_count(b, tag) != 1)
            return block_err(b, err, XTAL_EPARSE, "%s has %zd values, expected one",
                             CELL_TAGS[i].cif1, tag_count(b, tag));
        const char *text;
        num_status st = number_at(b, tag, 0, &values[i], NULL, &text);
        if (st != NUM_OK) return number_err(b, st, CELL_TAGS[i].cif1, text, err);
    }
    for (int k = 0; k < 3; k++) {
        p->abc[k] = values[k];
        p->angles[k] = values[3 + k];
    }
    xtal_err sub = {{0}};
    int rc = xtal_lattice_from_params(p->abc, p->angles, lattice, &sub);
    if (rc) return block_err(b, err, rc, "%s", sub.msg);
    return XTAL_OK;
}

/* ------------------------------------------------------ symmetry operations */

/* x' = rot x + trans, in fractional coordinates. */
typedef struct {
    int rot[3][3];
    double trans[3];
} symop;

static const char *skip_spaces(const char *s)
{
    while (isspace((unsigned char)*s)) s++;
    return s;
}

/* Digits with an optional decimal point ("1", "0.25", ".5"); no sign, no exponent. */
static int parse_plain_number(const char **p, double *value)
{
    char buf[40];
    size_t n = 0;
    int digits = 0;
    const char *s = *p;
    while ((isdigit((unsigned char)*s) || *s == '.') && n + 1 < sizeof buf) {
        digits += isdigit((unsigned char)*s) != 0;
        buf[n++] = *s++;
    }
    buf[n] = '\0';
    if (!digits) return -1;
    *value = strtod(buf, NULL);
    *p = s;
    return 0;
}

static int axis_of(char ch)
{
    switch (ch) {
    case 'x':
    case 'X':
        return 0;
    case 'y':
    case 'Y':
        return 1;
    case 'z':
    case 'Z':
        return 2;
    default:
        return -1;
    }
}

/* One term of a component: "x", "2x", "2*x", "1/2", "0.25" (the sign is read by the caller). */
static int parse_symop_term(const char **p, double sign, int rot[3], double *trans)
{
    const char *s = *p;
    double coef = 1;
    int has_number = 0, has_star = 0;
    if (isdigit((unsigned char)*s) || *s == '.') {
        if (parse_plain_number(&s, &coef)) return -1;
        has_number = 1;
        s = skip_spaces(s);
        if (*s == '/') {
            double den;
            s = skip_spaces(s + 1);
            if (parse_plain_number(&s, &den) || den == 0) return -1;
            coef /= den;
            s = skip_spaces(s);
        }
        if (*s == '*') {
            has_star = 1;
            s = skip_spaces(s + 1);
        }
    }
    int axis = axis_of(*s);
    if (axis >= 0) {
        /* In any setting, rotations in the lattice basis have integer entries. */
        if (coef != floor(coef) || coef > 6) return -1;
        rot[axis] += (int)(sign * coef);
        s++;
    } else if (has_number && !has_star) {
        *trans += sign * coef;
    } else {
        return -1;
    }
    *p = s;
    return 0;
}

/* One comma-separated component: a sum of terms such as "-y+1/2", "x-y", "1/2+x". */
static int parse_symop_component(const char **p, int rot[3], double *trans)
{
    const char *s = *p;
    rot[0] = rot[1] = rot[2] = 0;
    *trans = 0;
    for (int nterms = 0;; nterms++) {
        s = skip_spaces(s);
        double sign = 1;
        if (*s == '+' || *s == '-') {
            sign = *s == '-' ? -1 : 1;
            s = skip_spaces(s + 1);
        } else if (nterms > 0) {
            break;
        }
        if (parse_symop_term(&s, sign, rot, trans)) return -1;
    }
    *p = s;
    return 0;
}

static int det3i(const int m[3][3])
{
    return m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
           m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
           m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
}

/* Parses "x, y, z", "-y+1/2, x-y, z+0.25", "1/2+x,y,z" (case-insensitive). */
static int parse_symop(const char *text, symop *op)
{
    const char *s = text;
    for (int row = 0; row < 3; row++) {
        if (row > 0) {
            s = skip_spaces(s);
            if (*s != ',') return -1;
            s++;
        }
        if (parse_symop_component(&s, op->rot[row], &op->trans[row])) return -1;
    }
    if (*skip_spaces(s) != '\0') return -1;
    int det = det3i(op->rot);
    return det == 1 || det == -1 ? 0 : -1;
}

static const cif_tag SYMOP_TAGS[] = {
    {"_symmetry_equiv_pos_as_xyz", "_symmetry_equiv.pos_as_xyz"},
    {"_space_group_symop_operation_xyz", "_space_group_symop.operation_xyz"}};

static const cif_tag SPACE_GROUP_NAME_TAGS[] = {
    {"_symmetry_space_group_name_h-m", "_symmetry.space_group_name_h-m"},
    {"_space_group_name_h-m_alt", "_space_group.name_h-m_alt"},
    {"_symmetry_space_group_name_hall", "_symmetry.space_group_name_hall"},
    {"_space_group_name_hall", "_space_group.name_hall"},
    {"_symmetry_int_tables_number", "_symmetry.int_tables_number"},
    {"_space_group_it_number", "_space_group.it_number"}};

/* True for "P 1", "P1", "p 1", "1" (the Hall symbol of P1 is also "P 1"). */
static int is_p1_name(const char *name)
{
    char compact[16];
    size_t n = 0;
    for (const char *s = name; *s && n + 1 < sizeof compact; s++)
        if (!isspace((unsigned char)*s) && *s != '_')
            compact[n++] = (char)toupper((unsigned char)*s);
    compact[n] = '\0';
    return strcmp(compact, "P1") == 0 || strcmp(compact, "1") == 0;
}

/* Without listed operations, a block must be P1: we do not generate operations from a
 * space-group symbol, and silently reading the asymmetric unit as the cell would be wrong. */
static int require_p1(const block_ctx *b, xtal_err *err)
{
    for (size_t t = 0; t < sizeof SPACE_GROUP_NAME_TAGS / sizeof SPACE_GROUP_NAME_TAGS[0]; t++) {
        ssize_t tag = tag_index(b, SPACE_GROUP_NAME_TAGS[t]);
        const char *name = tag_count(b, tag) > 0 ? value_text(b, tag, 0) : NULL;
        if (!is_unknown(name) && !is_p1_name(name))
            return block_err(b, err, XTAL_EUNSUPPORTED,
                             "space group '%s' without its symmetry operations "
                             "(_symmetry_equiv_pos_as_xyz or _space_group_symop_operation_xyz); "
                             "druse does not generate them from the symbol",
                             name);
    }
    return XTAL_OK;
}

/* The block's operations (*ops, caller frees); the identity alone when none are listed. */
static int read_symops(const block_ctx *b, symop **ops, int *nops, xtal_err *err)
{
    ssize_t tag = -1;
    const char *tag_name = NULL;
    for (size_t t = 0; t < sizeof SYMOP_TAGS / sizeof SYMOP_TAGS[0] && tag < 0; t++) {
        tag = tag_index(b, SYMOP_TAGS[t]);
        tag_name = SYMOP_TAGS[t].cif1;
    }
    ssize_t n = tag < 0 ? 1 : tag_count(b, tag);
    if (tag < 0) {
        int rc = require_p1(b, err);
        if (rc) return rc;
    }
    if (n < 1) return block_err(b, err, XTAL_EPARSE, "%s has no values", tag_name);
    if (n > MAX_SYMOPS)
        return block_err(b, err, XTAL_ELIMIT, "%zd symmetry operations (limit %d)", n, MAX_SYMOPS);
    *ops = calloc((size_t)n, sizeof **ops);
    if (!*ops) return block_err(b, err, XTAL_ENOMEM, "out of memory");
    *nops = (int)n;
    for (ssize_t i = 0; i < n; i++) {
        const char *text = tag < 0 ? "x,y,z" : value_text(b, tag, i);
        if (!text || parse_symop(text, &(*ops)[i])) {
            free(*ops);
            *ops = NULL;
            return block_err(b, err, XTAL_EPARSE, "%s: '%s' is not a symmetry operation", tag_name,
                             text ? text : "(list)");
        }
    }
    return XTAL_OK;
}

/* ------------------------------------------------------------ atom sites */

/* Tag indices of the atom-site columns, -1 where absent. */
typedef struct {
    ssize_t type_symbol, label, occupancy;
    ssize_t coord[3];
    int cartesian; /* coord holds _atom_site_Cartn_x/y/z (Angstrom) */
    ssize_t nrows;
} site_columns;

static const cif_tag TYPE_SYMBOL_TAG = {"_atom_site_type_symbol", "_atom_site.type_symbol"};
static const cif_tag LABEL_TAG = {"_atom_site_label", "_atom_site.label"};
static const cif_tag OCCUPANCY_TAG = {"_atom_site_occupancy", "_atom_site.occupancy"};
static const cif_tag FRACT_TAGS[3] = {{"_atom_site_fract_x", "_atom_site.fract_x"},
                                      {"_atom_site_fract_y", "_atom_site.fract_y"},
                                      {"_atom_site_fract_z", "_atom_site.fract_z"}};
static const cif_tag CARTN_TAGS[3] = {{"_atom_site_cartn_x", "_atom_site.cartn_x"},
                                      {"_atom_site_cartn_y", "_atom_site.cartn_y"},
                                      {"_atom_site_cartn_z", "_atom_site.cartn_z"}};
static const cif_tag CARTN_AXES_TAG = {"_atom_sites_cartn_transform_axes",
                                       "_atom_sites.cartn_transform_axes"};

static int block_has_sites(const block_ctx *b)
{
    return tag_index(b, TYPE_SYMBOL_TAG) >= 0 || tag_index(b, LABEL_TAG) >= 0 ||
           tag_index(b, FRACT_TAGS[0]) >= 0 || tag_index(b, CARTN_TAGS[0]) >= 0;
}

static int find_coordinate_columns(const block_ctx *b, site_columns *sc, xtal_err *err)
{
    int use_cartn = tag_index(b, FRACT_TAGS[0]) < 0 && tag_index(b, FRACT_TAGS[1]) < 0 &&
                    tag_index(b, FRACT_TAGS[2]) < 0;
    const cif_tag *tags = use_cartn ? CARTN_TAGS : FRACT_TAGS;
    for (int k = 0; k < 3; k++) {
        sc->coord[k] = tag_index(b, tags[k]);
        if (sc->coord[k] < 0)
            return block_err(b, err, XTAL_EINVALID,
                             use_cartn && k == 0
                                 ? "atom sites without coordinates (%s or _atom_site_fract_x)"
                                 : "no %s",
                             tags[k].cif1);
    }
    sc->cartesian = use_cartn;
    if (use_cartn) {
        /* The CIF default frame is "a parallel to x; b in the plane of x & y"; others would
         * need _atom_sites_Cartn_tran_matrix, which we do not read. */
        ssize_t axes = tag_index(b, CARTN_AXES_TAG);
        const char *text = tag_count(b, axes) > 0 ? value_text(b, axes, 0) : NULL;
        if (!is_unknown(text) && strncasecmp(skip_spaces(text), "a parallel to x", 15) != 0)
            return block_err(b, err, XTAL_EUNSUPPORTED,
                             "Cartesian sites in the frame '%s' (only 'a parallel to x; b in "
                             "the plane of x & y' is read)",
                             text);
    }
    return XTAL_OK;
}

static int find_site_columns(const block_ctx *b, site_columns *sc, xtal_err *err)
{
    int rc = find_coordinate_columns(b, sc, err);
    if (rc) return rc;
    sc->type_symbol = tag_index(b, TYPE_SYMBOL_TAG);
    sc->label = tag_index(b, LABEL_TAG);
    sc->occupancy = tag_index(b, OCCUPANCY_TAG);
    if (sc->type_symbol < 0 && sc->label < 0)
        return block_err(b, err, XTAL_EINVALID, "no _atom_site_type_symbol or _atom_site_label");
    /* All columns of one table: same number of rows. */
    ssize_t cols[6] = {sc->coord[0],    sc->coord[1], sc->coord[2],
                       sc->type_symbol, sc->label,    sc->occupancy};
    sc->nrows = tag_count(b, sc->coord[0]);
    for (int i = 0; i < 6; i++)
        if (cols[i] >= 0 && tag_count(b, cols[i]) != sc->nrows)
            return block_err(b, err, XTAL_EPARSE,
                             "atom-site columns have different lengths (%zd and %zd rows)",
                             sc->nrows, tag_count(b, cols[i]));
    if (sc->nrows < 1) return block_err(b, err, XTAL_EINVALID, "no atom sites");
    if (sc->nrows > XTAL_MAX_ATOMS)
        return block_err(b, err, XTAL_ELIMIT, "%zd atom sites (limit %d)", sc->nrows,
                         XTAL_MAX_ATOMS);
    return XTAL_OK;
}

/* The site's label for messages ("Fe1"), or its row number. */
static void site_name(const block_ctx *b, const site_columns *sc, ssize_t row, char *buf,
                      size_t size)
{
    const char *label = sc->label >= 0 ? value_text(b, sc->label, row) : NULL;
    if (!is_unknown(label))
        snprintf(buf, size, "'%s'", label);
    else
        snprintf(buf, size, "#%zd", row + 1);
}

/* Element of a label such as "Fe1" or "O2a"; when the first two letters are no element
 * ("Ob1"), the first letter alone, as pymatgen's CifParser does for labels. */
static int element_from_label(const char *label)
{
    int Z = xtal_element_from_symbol(label);
    if (Z == 0 && isalpha((unsigned char)label[0]) && isalpha((unsigned char)label[1])) {
        char one[2] = {label[0], '\0'};
        Z = xtal_element_from_symbol(one);
    }
    return Z;
}

static int read_site_element(const block_ctx *b, const site_columns *sc, ssize_t row, int *Z,
                             xtal_err *err)
{
    const char *symbol = sc->type_symbol >= 0 ? value_text(b, sc->type_symbol, row) : NULL;
    const char *label = sc->label >= 0 ? value_text(b, sc->label, row) : NULL;
    if (!is_unknown(symbol))
        *Z = xtal_element_from_symbol(symbol);
    else if (!is_unknown(label))
        *Z = element_from_label(label);
    else
        return block_err(b, err, XTAL_EINVALID, "atom site #%zd has no element", row + 1);
    if (*Z == 0) {
        char name[64];
        site_name(b, sc, row, name, sizeof name);
        return block_err(b, err, XTAL_EINVALID, "unknown element '%s' (site %s)",
                         !is_unknown(symbol) ? symbol : label, name);
    }
    return XTAL_OK;
}

static int check_occupancy(const block_ctx *b, const site_columns *sc, ssize_t row, xtal_err *err)
{
    if (sc->occupancy < 0) return XTAL_OK;
    const char *s = value_text(b, sc->occupancy, row);
    if (is_unknown(s)) return XTAL_OK; /* pymatgen: unknown occupancy counts as 1 */
    double occupancy;
    num_status st = number_at(b, sc->occupancy, row, &occupancy, NULL, &s);
    if (st == NUM_OK && occupancy >= OCCUPANCY_MIN && occupancy <= OCCUPANCY_MAX) return XTAL_OK;
    char name[64], what[96];
    site_name(b, sc, row, name, sizeof name);
    snprintf(what, sizeof what, "_atom_site_occupancy of site %s", name);
    if (st != NUM_OK) return number_err(b, st, what, s, err);
    if (occupancy < OCCUPANCY_MIN)
        return block_err(b, err, XTAL_EUNSUPPORTED,
                         "disordered structures are not supported: site %s has occupancy %s", name,
                         s);
    return block_err(b, err, XTAL_EINVALID, "site %s has occupancy %s > 1", name, s);
}

/* pymatgen's CifParser replaces fractional coordinates within a relative 1e-4 of 1/3 or 2/3
 * by the exact values, since CIFs print them rounded and their symmetry images then miss each
 * other. We do the same so that both read such CIFs (MP-20's among them) identically, but only
 * for values printed with few decimals: a full-precision value is taken as written. */
static double snap_thirds(double x, int decimals)
{
    if (decimals > SNAP_MAX_DECIMALS) return x;
    if (fabs(1 - x / (1.0 / 3.0)) < 1e-4) return 1.0 / 3.0;
    if (fabs(1 - x / (2.0 / 3.0)) < 1e-4) return 2.0 / 3.0;
    return x;
}

/* Fractional coordinates of a site; Cartesian ones go through cart_inverse. */
static int read_site_coords(const block_ctx *b, const site_columns *sc, ssize_t row,
                            const double cart_inverse[3][3], double frac[3], xtal_err *err)
{
    double x[3];
    for (int k = 0; k < 3; k++) {
        int decimals = 0;
        const char *text;
        num_status st = number_at(b, sc->coord[k], row, &x[k], &decimals, &text);
        if (st != NUM_OK) {
            char name[64], what[128];
            site_name(b, sc, row, name, sizeof name);
            snprintf(what, sizeof what, "%s of site %s",
                     sc->cartesian ? CARTN_TAGS[k].cif1 : FRACT_TAGS[k].cif1, name);
            return number_err(b, st, what, text, err);
        }
        if (!sc->cartesian) x[k] = snap_thirds(x[k], decimals);
    }
    if (sc->cartesian)
        xtal_cart_to_frac(cart_inverse, x, frac);
    else
        memcpy(frac, x, sizeof x);
    return XTAL_OK;
}

/* The CIF default orthogonal frame of _atom_site_Cartn_*: a along x, b in the xy plane. */
static int cartesian_frame_inverse(const cell_params *p, double inverse[3][3])
{
    const double deg = M_PI / 180.0;
    double ca = cos(p->angles[0] * deg), cb = cos(p->angles[1] * deg);
    double cg = cos(p->angles[2] * deg), sg = sin(p->angles[2] * deg);
    double cy = (ca - cb * cg) / sg;
    double frame[3][3] = {
        {p->abc[0], 0, 0},
        {p->abc[1] * cg, p->abc[1] * sg, 0},
        {p->abc[2] * cb, p->abc[2] * cy, p->abc[2] * sqrt(1 - cb * cb - cy * cy)}};
    return xtal_lattice_inverse(frame, inverse);
}

/* --------------------------------------------------------------- expansion */

/* Atoms generated so far, with the site (row) each came from. */
typedef struct {
    int n, cap;
    int *Z, *site;
    double *frac; /* [3n], wrapped into [0, 1) */
} atom_buf;

static void atom_buf_free(atom_buf *a)
{
    free(a->Z);
    free(a->site);
    free(a->frac);
    memset(a, 0, sizeof *a);
}

static int atom_buf_push(atom_buf *a, int Z, int site, const double f[3])
{
    if (a->n == a->cap) {
        int cap = a->cap ? 2 * a->cap : 64;
        int *Zs = realloc(a->Z, (size_t)cap * sizeof *Zs);
        if (Zs) a->Z = Zs;
        int *sites = realloc(a->site, (size_t)cap * sizeof *sites);
        if (sites) a->site = sites;
        double *fr = realloc(a->frac, 3 * (size_t)cap * sizeof *fr);
        if (fr) a->frac = fr;
        if (!Zs || !sites || !fr) return -1;
        a->cap = cap;
    }
    a->Z[a->n] = Z;
    a->site[a->n] = site;
    memcpy(a->frac + 3 * a->n, f, 3 * sizeof *f);
    a->n++;
    return 0;
}

static double wrap01(double x)
{
    double w = x - floor(x);
    return w >= 1.0 ? 0.0 : w; /* -1e-17 - floor(-1e-17) rounds to 1.0 */
}

static int coincide(const double *f, const double *g, const double L[3][3])
{
    double d[3], cart[3];
    int frac_close = 1;
    for (int k = 0; k < 3; k++) {
        d[k] = f[k] - g[k];
        d[k] -= round(d[k]);
        frac_close &= fabs(d[k]) < FRAC_TOL;
    }
    if (frac_close) return 1;
    xtal_frac_to_cart(L, d, cart);
    return cart[0] * cart[0] + cart[1] * cart[1] + cart[2] * cart[2] < CART_TOL * CART_TOL;
}

/* Appends the distinct images of one site under the operations. */
static int expand_site(const block_ctx *b, atom_buf *atoms, int Z, int site, const double f0[3],
                       const symop *ops, int nops, const double L[3][3], xtal_err *err)
{
    int first = atoms->n;
    for (int o = 0; o < nops; o++) {
        double f[3];
        for (int r = 0; r < 3; r++)
            f[r] = wrap01(ops[o].rot[r][0] * f0[0] + ops[o].rot[r][1] * f0[1] +
                          ops[o].rot[r][2] * f0[2] + ops[o].trans[r]);
        int seen = 0;
        for (int i = first; i < atoms->n && !seen; i++) seen = coincide(f, atoms->frac + 3 * i, L);
        if (seen) continue;
        if (atoms->n >= XTAL_MAX_ATOMS)
            return block_err(b, err, XTAL_ELIMIT, "more than %d atoms after symmetry expansion",
                             XTAL_MAX_ATOMS);
        if (atom_buf_push(atoms, Z, site, f))
            return block_err(b, err, XTAL_ENOMEM, "out of memory");
    }
    return XTAL_OK;
}

/* A grid over fractional space for finding coinciding atoms in O(n): cells are at least as
 * wide as the tolerance along each axis, so a coinciding pair sits in neighbouring cells. */
typedef struct {
    int dims[3];
    int *start; /* [ncells + 1] offsets into order */
    int *order; /* atom indices sorted by cell */
} coincidence_grid;

static int grid_cell(const coincidence_grid *g, const double *f, int offset[3])
{
    int idx = 0;
    for (int k = 0; k < 3; k++) {
        int c = (int)(f[k] * g->dims[k]) + (offset ? offset[k] : 0);
        c = ((c % g->dims[k]) + g->dims[k]) % g->dims[k];
        idx = idx * g->dims[k] + c;
    }
    return idx;
}

static int grid_build(coincidence_grid *g, const atom_buf *a, const double L[3][3])
{
    double recip[3][3];
    if (xtal_lattice_reciprocal(L, recip)) return -1;
    int max_dim = (int)cbrt((double)a->n) + 1;
    long ncells = 1;
    for (int k = 0; k < 3; k++) {
        /* Largest fractional step of a coinciding pair along k: FRAC_TOL, or CART_TOL |b*_k|. */
        double rn =
            sqrt(recip[k][0] * recip[k][0] + recip[k][1] * recip[k][1] + recip[k][2] * recip[k][2]);
        double step = fmax(FRAC_TOL, CART_TOL * rn);
        double fit = floor(1.0 / step);
        g->dims[k] = fit < 1 ? 1 : (fit > max_dim ? max_dim : (int)fit);
        ncells *= g->dims[k];
    }
    g->start = calloc((size_t)ncells + 1, sizeof *g->start);
    g->order = malloc((size_t)a->n * sizeof *g->order);
    if (!g->start || !g->order) return -1;
    for (int i = 0; i < a->n; i++) g->start[grid_cell(g, a->frac + 3 * i, NULL) + 1]++;
    for (long c = 0; c < ncells; c++) g->start[c + 1] += g->start[c];
    int *fill = malloc((size_t)ncells * sizeof *fill);
    if (!fill) return -1;
    memcpy(fill, g->start, (size_t)ncells * sizeof *fill);
    for (int i = 0; i < a->n; i++) g->order[fill[grid_cell(g, a->frac + 3 * i, NULL)]++] = i;
    free(fill);
    return 0;
}

/* Offsets -1, 0, 1 along an axis, fewer when the grid is too narrow to hold three cells. */
static int neighbour_offsets(int dim, int out[3])
{
    if (dim == 1) {
        out[0] = 0;
        return 1;
    }
    if (dim == 2) {
        out[0] = 0;
        out[1] = 1;
        return 2;
    }
    out[0] = -1;
    out[1] = 0;
    out[2] = 1;
    return 3;
}

/* First pair (i < j) of atoms from different sites that coincide; returns 0 if none. */
static int grid_find_pair(const coincidence_grid *g, const atom_buf *a, const double L[3][3],
                          int *pi, int *pj)
{
    int off[3][3], noff[3];
    for (int k = 0; k < 3; k++) noff[k] = neighbour_offsets(g->dims[k], off[k]);
    for (int i = 0; i < a->n; i++)
        for (int u = 0; u < noff[0]; u++)
            for (int v = 0; v < noff[1]; v++)
                for (int w = 0; w < noff[2]; w++) {
                    int o[3] = {off[0][u], off[1][v], off[2][w]};
                    int c = grid_cell(g, a->frac + 3 * i, o);
                    for (int s = g->start[c]; s < g->start[c + 1]; s++) {
                        int j = g->order[s];
                        if (j > i && a->site[j] != a->site[i] &&
                            coincide(a->frac + 3 * i, a->frac + 3 * j, L)) {
                            *pi = i;
                            *pj = j;
                            return 1;
                        }
                    }
                }
    return 0;
}

/* Up to this many atoms, all pairs are cheaper than building the grid (MP-20 has <= 20). */
#define BRUTE_FORCE_ATOMS 64

static int brute_force_find_pair(const atom_buf *a, const double L[3][3], int *pi, int *pj)
{
    for (int i = 0; i < a->n; i++)
        for (int j = i + 1; j < a->n; j++)
            if (a->site[j] != a->site[i] && coincide(a->frac + 3 * i, a->frac + 3 * j, L)) {
                *pi = i;
                *pj = j;
                return 1;
            }
    return 0;
}

/* Atoms from different sites on one position: disorder (different elements) or a site
 * listed twice; pymatgen would merge them into one partially occupied site. */
static int check_distinct_sites(const block_ctx *b, const site_columns *sc, const atom_buf *a,
                                const double L[3][3], xtal_err *err)
{
    int i = -1, j = -1, found = 0;
    if (a->n <= BRUTE_FORCE_ATOMS) {
        found = brute_force_find_pair(a, L, &i, &j);
    } else {
        coincidence_grid g = {{0}, NULL, NULL};
        found = grid_build(&g, a, L) == 0 ? grid_find_pair(&g, a, L, &i, &j) : -1;
        free(g.start);
        free(g.order);
    }
    if (found < 0) return block_err(b, err, XTAL_ENOMEM, "out of memory");
    if (!found) return XTAL_OK;
    char si[64], sj[64];
    site_name(b, sc, a->site[i], si, sizeof si);
    site_name(b, sc, a->site[j], sj, sizeof sj);
    const xtal_element *ei = xtal_element_by_Z(a->Z[i]), *ej = xtal_element_by_Z(a->Z[j]);
    if (a->Z[i] != a->Z[j])
        return block_err(b, err, XTAL_EUNSUPPORTED,
                         "disordered structures are not supported: sites %s (%s) and %s (%s) "
                         "share the position %.6f %.6f %.6f",
                         si, ei->symbol, sj, ej->symbol, a->frac[3 * i], a->frac[3 * i + 1],
                         a->frac[3 * i + 2]);
    return block_err(b, err, XTAL_EINVALID,
                     "sites %s and %s (both %s) put atoms on the same position %.6f %.6f %.6f", si,
                     sj, ei->symbol, a->frac[3 * i], a->frac[3 * i + 1], a->frac[3 * i + 2]);
}

/* ------------------------------------------------------------------ blocks */

static int expand_all_sites(const block_ctx *b, const site_columns *sc, const cell_params *p,
                            const double L[3][3], const symop *ops, int nops, atom_buf *atoms,
                            xtal_err *err)
{
    double cart_inverse[3][3] = {{0}};
    if (sc->cartesian && cartesian_frame_inverse(p, cart_inverse))
        return block_err(b, err, XTAL_EINVALID, "degenerate cell");
    for (ssize_t row = 0; row < sc->nrows; row++) {
        int Z;
        double f0[3];
        int rc = read_site_element(b, sc, row, &Z, err);
        if (!rc) rc = check_occupancy(b, sc, row, err);
        if (!rc) rc = read_site_coords(b, sc, row, cart_inverse, f0, err);
        if (!rc) rc = expand_site(b, atoms, Z, (int)row, f0, ops, nops, L, err);
        if (rc) return rc;
    }
    return check_distinct_sites(b, sc, atoms, L, err);
}

static int crystal_from_atoms(const block_ctx *b, const atom_buf *atoms, const double L[3][3],
                              const char *id, xtal_crystal *out, xtal_err *err)
{
    xtal_err sub = {{0}};
    int rc = xtal_crystal_init(out, atoms->n, &sub);
    if (rc) return block_err(b, err, rc, "%s", sub.msg);
    snprintf(out->id, sizeof out->id, "%s", id);
    memcpy(out->lattice, L, sizeof out->lattice);
    memcpy(out->Z, atoms->Z, (size_t)atoms->n * sizeof *out->Z);
    memcpy(out->frac, atoms->frac, 3 * (size_t)atoms->n * sizeof *out->frac);
    rc = xtal_crystal_validate(out, &sub);
    if (rc) {
        xtal_crystal_free(out);
        return block_err(b, err, rc, "%s", sub.msg);
    }
    return XTAL_OK;
}

static int crystal_from_block(const block_ctx *b, const char *id, xtal_crystal *out, xtal_err *err)
{
    /* Zeroed: the compiler cannot see that a failed step stops the chain. */
    cell_params params = {{0}, {0}};
    double L[3][3] = {{0}};
    site_columns sc = {-1, -1, -1, {-1, -1, -1}, 0, 0};
    symop *ops = NULL;
    int nops = 0;
    atom_buf atoms = {0, 0, NULL, NULL, NULL};
    int rc = read_cell(b, &params, L, err);
    if (!rc) rc = find_site_columns(b, &sc, err);
    if (!rc) rc = read_symops(b, &ops, &nops, err);
    if (!rc) rc = expand_all_sites(b, &sc, &params, L, ops, nops, &atoms, err);
    if (!rc) rc = crystal_from_atoms(b, &atoms, L, id, out, err);
    free(ops);
    atom_buf_free(&atoms);
    return rc;
}

/* ----------------------------------------------------------------- parsing */

static cif_option_t parser_options(void)
{
    /* Messages go to cif_messages(), not stderr; long lines are no error of ours. */
    cif_option_t co = cif_option_suppress_messages(cif_option_default());
    return cif_option_set(co, CO_DO_NOT_REPORT_LONG_LINES);
}

/* The first error libcodcif reported, as "N: message" (N the line) or "message": appended to
 * "source:" or "source: " it reads like a compiler's message. */
static void first_parse_error(CIF *cif, char *buf, size_t size)
{
    CIFMESSAGE *m;
    snprintf(buf, size, " CIF syntax error");
    foreach_cifmessage(m, cif_messages(cif))
    {
        const char *status = cifmessage_status(m);
        const char *text = cifmessage_message(m);
        if (!status || strcasecmp(status, "ERROR") != 0 || !text) continue;
        if (cifmessage_lineno(m) > 0)
            snprintf(buf, size, "%d: %s", cifmessage_lineno(m), text);
        else
            snprintf(buf, size, " %s", text);
        return;
    }
}

static int parse_cif_text(const char *text, const char *source, CIF **out, xtal_err *err)
{
    cexception_t ex;
    CIF *volatile cif = NULL;
    cexception_guard(ex)
    {
        /* libcodcif takes char * but does not write to the buffer: no copy needed. */
        cif = new_cif_from_cif_string((char *)text, parser_options(), &ex);
    }
    cexception_catch
    {
        const char *why = cexception_message(&ex);
        return xtal_err_set(err, XTAL_EPARSE, "%s: CIF parser failed: %s", source,
                            why ? why : "unknown error");
    }
    if (!cif) return xtal_err_set(err, XTAL_EPARSE, "%s: CIF parser returned nothing", source);
    if (cif_nerrors(cif) > 0) {
        char why[384];
        first_parse_error(cif, why, sizeof why);
        delete_cif(cif);
        return xtal_err_set(err, XTAL_EPARSE, "%s:%s", source, why);
    }
    *out = cif;
    return XTAL_OK;
}

static int count_site_blocks(CIF *cif, const char *source, int *nblocks)
{
    int all = 0, with_sites = 0;
    DATABLOCK *db;
    foreach_datablock(db, cif_datablock_list(cif))
    {
        block_ctx b = block_context(source, db);
        all++;
        with_sites += block_has_sites(&b);
    }
    *nblocks = all;
    return with_sites;
}

/* Reads every block with atom sites. id_base names the crystals: "base" for a single one,
 * "base:block" for several. */
static int crystals_from_cif(CIF *cif, const char *source, const char *id_base, xtal_list *out,
                             xtal_err *err)
{
    int nblocks = 0;
    int nsites = count_site_blocks(cif, source, &nblocks);
    if (nblocks == 0)
        return xtal_err_set(err, XTAL_EPARSE, "%s: no data block (empty, or not a CIF file)",
                            source);
    if (nsites == 0)
        return xtal_err_set(err, XTAL_EINVALID,
                            "%s: no data block with atom sites (_atom_site_fract_x ...)", source);
    DATABLOCK *db;
    foreach_datablock(db, cif_datablock_list(cif))
    {
        block_ctx b = block_context(source, db);
        if (!block_has_sites(&b)) continue;
        char id[sizeof out->items[0].id];
        if (nsites == 1 && id_base[0])
            snprintf(id, sizeof id, "%s", id_base);
        else if (id_base[0])
            snprintf(id, sizeof id, "%s:%s", id_base, b.block);
        else
            snprintf(id, sizeof id, "%s", b.block);
        xtal_crystal c;
        int rc = crystal_from_block(&b, id, &c, err);
        if (!rc && (rc = xtal_list_push(out, &c, err))) xtal_crystal_free(&c);
        if (rc) return rc;
    }
    return XTAL_OK;
}

static int read_cif_text(const char *text, const char *source, const char *id_base, xtal_list *out,
                         xtal_err *err)
{
    CIF *cif = NULL;
    int rc = parse_cif_text(text, source, &cif, err);
    if (rc) return rc;
    int n_before = out->n;
    rc = crystals_from_cif(cif, source, id_base, out, err);
    delete_cif(cif);
    if (rc) { /* all or nothing */
        for (int i = n_before; i < out->n; i++) xtal_crystal_free(&out->items[i]);
        out->n = n_before;
    }
    return rc;
}

int xtal_read_cif_string(const char *text, const char *name, xtal_list *out, xtal_err *err)
{
    if (!name) name = "<string>";
    if (!text) return xtal_err_set(err, XTAL_EPARSE, "%s: no CIF text", name);
    return read_cif_text(text, name, name, out, err);
}

int xtal_read_cif_file(const char *path, xtal_list *out, xtal_err *err)
{
    static const char *const exts[] = {".cif", NULL};
    char *text = NULL;
    size_t len = 0;
    int rc = xtal_io_read_text(path, &text, &len, err);
    if (rc) return rc;
    char base[sizeof out->items[0].id];
    xtal_io_basename(path, exts, base, sizeof base);
    rc = read_cif_text(text, path, base, out, err);
    free(text);
    return rc;
}

/* ----------------------------------------------------------------- writing */

/* A data block name from an id: CIF names are one token, so keep it to safe characters. */
static void block_name_from_id(const char *id, char *buf, size_t size)
{
    size_t n = 0;
    for (const char *s = id; *s && n + 1 < size; s++) {
        unsigned char ch = (unsigned char)*s;
        buf[n++] = isalnum(ch) || strchr("-_.+", ch) ? (char)ch : '_';
    }
    buf[n] = '\0';
    if (n == 0) snprintf(buf, size, "druse");
}

static int check_writable_crystal(const xtal_crystal *c, const char *path, xtal_err *err)
{
    for (int i = 0; i < c->natoms; i++)
        if (!xtal_element_by_Z(c->Z[i]))
            return xtal_err_set(err, XTAL_EINVALID, "%s: atom %d has unknown atomic number %d",
                                path, i + 1, c->Z[i]);
    if (c->natoms < 1) return xtal_err_set(err, XTAL_EINVALID, "%s: no atoms to write", path);
    return XTAL_OK;
}

static void write_cif_body(FILE *fp, const xtal_crystal *c)
{
    double abc[3], ang[3];
    char block[sizeof c->id];
    xtal_lattice_to_params(c->lattice, abc, ang);
    block_name_from_id(c->id, block, sizeof block);
    fprintf(fp, "# generated by druse\ndata_%s\n", block);
    fprintf(fp, "_symmetry_space_group_name_H-M   'P 1'\n");
    static const char *const cell_names[6] = {"length_a",    "length_b",   "length_c",
                                              "angle_alpha", "angle_beta", "angle_gamma"};
    for (int k = 0; k < 6; k++)
        fprintf(fp, "_cell_%s   %.17g\n", cell_names[k], k < 3 ? abc[k] : ang[k - 3]);
    fprintf(fp, "_symmetry_Int_Tables_number   1\n");
    fprintf(fp, "_cell_volume   %.17g\n", fabs(xtal_lattice_volume(c->lattice)));
    fprintf(fp, "loop_\n _symmetry_equiv_pos_site_id\n _symmetry_equiv_pos_as_xyz\n"
                "  1  'x, y, z'\n");
    fprintf(fp, "loop_\n _atom_site_type_symbol\n _atom_site_label\n"
                " _atom_site_symmetry_multiplicity\n _atom_site_fract_x\n _atom_site_fract_y\n"
                " _atom_site_fract_z\n _atom_site_occupancy\n");
    for (int i = 0; i < c->natoms; i++) {
        const char *sym = xtal_element_by_Z(c->Z[i])->symbol;
        const double *f = c->frac + 3 * i;
        /* "%#.17g" keeps trailing zeros: a reader can tell full-precision values from rounded
         * ones (see snap_thirds), so 0.3333333 is not taken for a rounded 1/3. */
        fprintf(fp, "  %s  %s%d  1  %#.17g  %#.17g  %#.17g  1\n", sym, sym, i, f[0], f[1], f[2]);
    }
}

int xtal_write_cif(const xtal_crystal *c, const char *path, xtal_err *err)
{
    int rc = check_writable_crystal(c, path, err);
    if (rc) return rc;
    FILE *fp = fopen(path, "w");
    if (!fp) return xtal_err_set(err, XTAL_EIO, "%s: %s", path, strerror(errno));
    write_cif_body(fp, c);
    return xtal_io_close_written(fp, path, err);
}
