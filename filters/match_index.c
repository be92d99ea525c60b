/* Fingerprints and the dedup / novelty index: representatives of distinct structures in
 * buckets keyed by fingerprint, matched exactly inside a bucket; saved to HDF5. */
#include "filters/match_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ fingerprint */

void flt_fingerprint(const xtal_crystal *reduced, char buf[FLT_FINGERPRINT_LEN])
{
    char formula[FLT_FINGERPRINT_LEN - 16];
    xtal_formula(reduced, 1, formula, sizeof formula);
    snprintf(buf, FLT_FINGERPRINT_LEN, "%s/%d", formula, reduced->natoms);
}

uint64_t flt_fingerprint_hash(const char *fp)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a 64 */
    for (const unsigned char *s = (const unsigned char *)fp; *s; s++) {
        h ^= *s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* ------------------------------------------------------------ the index */

typedef struct {
    uint64_t hash; /* 0 marks an empty slot (a real hash of 0 is stored as 1) */
    long first;    /* the bucket's entries form a list: first, then next[] */
    long last;
} bucket;

struct flt_index {
    flt_match_options opt;
    long n, cap;
    xtal_crystal *reduced;           /* [n] reduced representatives (own their arrays) */
    char (*fp)[FLT_FINGERPRINT_LEN]; /* [n] fingerprints */
    long *next;                      /* [n] next entry of the same bucket, -1 at the end */
    double (*minima)[3];             /* [n] lattice_minima of each entry */
    bucket *slots;                   /* open addressing, power-of-two size */
    size_t nslots, used;
    char source[1024];
};

static uint64_t slot_hash(const char *fp)
{
    uint64_t h = flt_fingerprint_hash(fp);
    return h ? h : 1;
}

int flt_index_new(const flt_match_options *opt, flt_index **out, xtal_err *err)
{
    flt_index *ix = calloc(1, sizeof *ix);
    if (ix) ix->slots = calloc(64, sizeof *ix->slots);
    if (!ix || !ix->slots) {
        free(ix);
        return xtal_err_set(err, XTAL_ENOMEM, "out of memory for an index");
    }
    ix->nslots = 64;
    ix->opt = opt ? *opt : flt_match_options_default();
    *out = ix;
    return XTAL_OK;
}

void flt_index_free(flt_index *ix)
{
    if (!ix) return;
    for (long i = 0; i < ix->n; i++) xtal_crystal_free(&ix->reduced[i]);
    free(ix->reduced);
    free(ix->fp);
    free(ix->next);
    free(ix->minima);
    free(ix->slots);
    free(ix);
}

long flt_index_count(const flt_index *ix)
{
    return ix->n;
}

const char *flt_index_id(const flt_index *ix, long e)
{
    return e >= 0 && e < ix->n ? ix->reduced[e].id : "";
}

const char *flt_index_fingerprint(const flt_index *ix, long e)
{
    return e >= 0 && e < ix->n ? ix->fp[e] : "";
}

const flt_match_options *flt_index_options(const flt_index *ix)
{
    return &ix->opt;
}

const char *flt_index_source(const flt_index *ix)
{
    return ix->source;
}

/* A cheap necessary condition of fit(rep, new), so that most non-matching pairs of a bucket
 * cost nothing. The matcher looks for a basis l of rep's (scaled) lattice with |l_i| <
 * (1 + ltol) |b_i| for new's basis b; the successive minima of a lattice never exceed the
 * sorted lengths of any of its bases, so lambda_k(rep) < (1 + ltol) sorted(|b|)_k, in units of
 * V^(1/3) when volumes are scaled. Reduced structures come out of flt_match_reduce in a Niggli
 * (hence Buerger) cell, whose sorted lengths are the successive minima; the margin covers the
 * reduction's 1e-5 tolerance. */
static void lattice_minima(const xtal_crystal *red, const flt_match_options *opt, double out[3])
{
    double abc[3], ang[3];
    xtal_lattice_to_params(red->lattice, abc, ang);
    double unit = opt->scale ? cbrt(fabs(xtal_lattice_volume(red->lattice))) : 1.0;
    for (int i = 0; i < 3; i++) out[i] = abc[i] / unit;
    for (int i = 1; i < 3; i++) /* sort three */
        for (int j = i; j > 0 && out[j] < out[j - 1]; j--) {
            double t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
}

static int cannot_match(const double rep[3], const double query[3], double ltol)
{
    const double margin = 1e-3;
    for (int k = 0; k < 3; k++)
        if (rep[k] >= (1 + ltol) * query[k] * (1 + margin)) return 1;
    return 0;
}

/* The slot of fingerprint fp: its bucket, or the empty slot where it would go. */
static bucket *find_slot(const flt_index *ix, const char *fp)
{
    uint64_t h = slot_hash(fp);
    size_t mask = ix->nslots - 1;
    for (size_t s = (size_t)h & mask;; s = (s + 1) & mask) {
        bucket *b = &ix->slots[s];
        if (b->hash == 0) return b;
        if (b->hash == h && strcmp(ix->fp[b->first], fp) == 0) return b;
    }
}

static int grow_slots(flt_index *ix)
{
    bucket *old = ix->slots;
    size_t nold = ix->nslots;
    ix->slots = calloc(2 * nold, sizeof *ix->slots);
    if (!ix->slots) {
        ix->slots = old;
        return -1;
    }
    ix->nslots = 2 * nold;
    for (size_t s = 0; s < nold; s++)
        if (old[s].hash) *find_slot(ix, ix->fp[old[s].first]) = old[s];
    free(old);
    return 0;
}

static int grow_entries(flt_index *ix)
{
    long cap = ix->cap ? 2 * ix->cap : 256;
    xtal_crystal *r = realloc(ix->reduced, (size_t)cap * sizeof *r);
    if (r) ix->reduced = r;
    char(*fp)[FLT_FINGERPRINT_LEN] = realloc(ix->fp, (size_t)cap * sizeof *fp);
    if (fp) ix->fp = fp;
    long *next = realloc(ix->next, (size_t)cap * sizeof *next);
    if (next) ix->next = next;
    double(*minima)[3] = realloc(ix->minima, (size_t)cap * sizeof *minima);
    if (minima) ix->minima = minima;
    if (!r || !fp || !next || !minima) return -1;
    ix->cap = cap;
    return 0;
}

/* Appends a reduced structure (moved into the index) under its fingerprint. */
static int append_entry(flt_index *ix, xtal_crystal *red, const char *fp, xtal_err *err)
{
    if ((ix->n == ix->cap && grow_entries(ix)) ||
        (2 * (ix->used + 1) > ix->nslots && grow_slots(ix)))
        return xtal_err_set(err, XTAL_ENOMEM, "out of memory for %ld index entries", ix->n + 1);
    long e = ix->n++;
    ix->reduced[e] = *red;
    memset(red, 0, sizeof *red);
    snprintf(ix->fp[e], FLT_FINGERPRINT_LEN, "%s", fp);
    ix->next[e] = -1;
    lattice_minima(&ix->reduced[e], &ix->opt, ix->minima[e]);
    bucket *b = find_slot(ix, fp);
    if (b->hash == 0) {
        b->hash = slot_hash(fp);
        b->first = b->last = e;
        ix->used++;
    } else {
        ix->next[b->last] = e;
        b->last = e;
    }
    return XTAL_OK;
}

int flt_index_find_reduced(const flt_index *ix, const xtal_crystal *red, long *entry, xtal_err *err)
{
    char fp[FLT_FINGERPRINT_LEN];
    *entry = -1;
    flt_fingerprint(red, fp);
    const bucket *b = find_slot(ix, fp);
    if (b->hash == 0) return XTAL_OK;
    double minima[3];
    lattice_minima(red, &ix->opt, minima);
    for (long e = b->first; e >= 0; e = ix->next[e]) {
        if (cannot_match(ix->minima[e], minima, ix->opt.ltol)) continue;
        flt_match_result res;
        int rc = flt_match_fit_reduced(&ix->reduced[e], red, &ix->opt, &res, err);
        if (rc != XTAL_OK) return rc;
        if (res.match) {
            *entry = e;
            return XTAL_OK;
        }
    }
    return XTAL_OK;
}

int flt_index_add_reduced(flt_index *ix, const xtal_crystal *red, long *entry, int *added,
                          xtal_err *err)
{
    *added = 0;
    int rc = flt_index_find_reduced(ix, red, entry, err);
    if (rc != XTAL_OK || *entry >= 0) return rc;
    xtal_crystal copy;
    char fp[FLT_FINGERPRINT_LEN];
    flt_fingerprint(red, fp);
    rc = xtal_crystal_copy(&copy, red, err);
    if (rc == XTAL_OK) rc = append_entry(ix, &copy, fp, err);
    if (rc != XTAL_OK) {
        xtal_crystal_free(&copy);
        return rc;
    }
    *entry = ix->n - 1;
    *added = 1;
    return XTAL_OK;
}

int flt_index_find(const flt_index *ix, const xtal_crystal *c, long *entry, xtal_err *err)
{
    xtal_crystal red;
    *entry = -1;
    int rc = flt_match_reduce(c, &ix->opt, &red, err);
    if (rc != XTAL_OK) return rc;
    rc = flt_index_find_reduced(ix, &red, entry, err);
    xtal_crystal_free(&red);
    return rc;
}

int flt_index_add(flt_index *ix, const xtal_crystal *c, long *entry, int *added, xtal_err *err)
{
    xtal_crystal red;
    *entry = -1;
    *added = 0;
    int rc = flt_match_reduce(c, &ix->opt, &red, err);
    if (rc != XTAL_OK) return rc;
    rc = flt_index_add_reduced(ix, &red, entry, added, err);
    xtal_crystal_free(&red);
    return rc;
}

int flt_index_insert(flt_index *ix, const xtal_crystal *c, long *entry, xtal_err *err)
{
    xtal_crystal red;
    char fp[FLT_FINGERPRINT_LEN];
    *entry = -1;
    int rc = flt_match_reduce(c, &ix->opt, &red, err);
    if (rc != XTAL_OK) return rc;
    flt_fingerprint(&red, fp);
    rc = append_entry(ix, &red, fp, err);
    if (rc != XTAL_OK) {
        xtal_crystal_free(&red);
        return rc;
    }
    *entry = ix->n - 1;
    return XTAL_OK;
}

int flt_index_append_loaded(flt_index *ix, xtal_crystal *red, xtal_err *err)
{
    char fp[FLT_FINGERPRINT_LEN];
    flt_fingerprint(red, fp);
    return append_entry(ix, red, fp, err);
}

const xtal_crystal *flt_index_reduced(const flt_index *ix, long e)
{
    return &ix->reduced[e];
}

void flt_index_set_source(flt_index *ix, const char *source)
{
    snprintf(ix->source, sizeof ix->source, "%s", source ? source : "");
}
