/* Charge-neutrality filter: SMACT's compositional validity as the CDVAE/DiffCSP evaluation
 * applies it (DiffCSP scripts/eval_utils.py smact_validity; SMACT v2.6, Davies et al., JOSS 4
 * (2019) 1361; data and the rule in shared/data/elements/SOURCE.md):
 *   1. one distinct element: valid;   2. all elements in smact.metals: valid;
 *   3. product of the numbers of oxidation states > 1e7: invalid ("too many combinations");
 *   4. the first combination of oxidation states (itertools.product order, states in file
 *      order, elements sorted by Z) with sum(state_i * count_i) == 0 over the gcd-reduced
 *      counts that passes the Pauling test makes it valid;  5. none: invalid.
 * Pauling test (SMACT v2.6 eneg_states_test): every pair of elements fails if a cation is at
 * least as electronegative as an anion; a pair with an unknown electronegativity fails.
 *
 * Fast and exact: the product is walked depth first in the same lexicographic order, and a
 * subtree is skipped only when no leaf in it can pass (the charge still reachable by the
 * remaining elements excludes zero, or a pair already fails the Pauling test). So the first
 * leaf reached is the reference loop's first passing combination.
 */
#include "filters/filters.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    int n; /* distinct elements */
    const xtal_element *el[XTAL_NUM_ELEMENTS];
    long count[XTAL_NUM_ELEMENTS];        /* reduced counts */
    long rest_min[XTAL_NUM_ELEMENTS + 1]; /* least charge elements k.. can add */
    long rest_max[XTAL_NUM_ELEMENTS + 1]; /* largest charge elements k.. can add */
    int state[XTAL_NUM_ELEMENTS];         /* the combination being built */
} charge_search;

/* One pair of the Pauling test (SMACT v2.6 eneg_states_test). */
static int pauling_pair_ok(int ox1, double eneg1, int ox2, double eneg2)
{
    if (isnan(eneg1) || isnan(eneg2)) return 0;
    if (ox1 > 0 && ox2 < 0 && eneg1 >= eneg2) return 0;
    if (ox1 < 0 && ox2 > 0 && eneg1 <= eneg2) return 0;
    return 1;
}

/* Does element k in state s pass the Pauling test against the elements already chosen? */
static int pauling_ok_so_far(const charge_search *s, int k, int ox)
{
    for (int i = 0; i < k; i++)
        if (!pauling_pair_ok(s->state[i], s->el[i]->electronegativity, ox,
                             s->el[k]->electronegativity))
            return 0;
    return 1;
}

static void charge_bounds(charge_search *s)
{
    s->rest_min[s->n] = s->rest_max[s->n] = 0;
    for (int k = s->n - 1; k >= 0; k--) {
        const xtal_element *e = s->el[k];
        int lo = e->oxidation_states[0], hi = e->oxidation_states[0];
        for (int t = 1; t < e->n_oxidation_states; t++) {
            if (e->oxidation_states[t] < lo) lo = e->oxidation_states[t];
            if (e->oxidation_states[t] > hi) hi = e->oxidation_states[t];
        }
        s->rest_min[k] = s->rest_min[k + 1] + lo * s->count[k];
        s->rest_max[k] = s->rest_max[k + 1] + hi * s->count[k];
    }
}

/* Depth-first walk of the product from element k with the charge so far; 1 when a passing
 * combination is found (left in s->state). */
static int search_from(charge_search *s, int k, long charge)
{
    if (k == s->n) return charge == 0;
    const xtal_element *e = s->el[k];
    for (int t = 0; t < e->n_oxidation_states; t++) {
        int ox = e->oxidation_states[t];
        long next = charge + ox * s->count[k];
        if (next + s->rest_min[k + 1] > 0 || next + s->rest_max[k + 1] < 0) continue;
        if (!pauling_ok_so_far(s, k, ox)) continue;
        s->state[k] = ox;
        if (search_from(s, k + 1, next)) return 1;
    }
    return 0;
}

/* Distinct elements by Z with gcd-reduced counts (DiffCSP's get_composition). */
static int composition(const xtal_crystal *c, charge_search *s, xtal_err *err)
{
    long count[XTAL_NUM_ELEMENTS + 1] = {0};
    for (int a = 0; a < c->natoms; a++) {
        if (!xtal_element_by_Z(c->Z[a]))
            return xtal_err_set(err, XTAL_EINVALID, "%s: atom %d has unknown atomic number %d",
                                c->id, a + 1, c->Z[a]);
        count[c->Z[a]]++;
    }
    long g = 0;
    for (int z = 1; z <= XTAL_NUM_ELEMENTS; z++) g = xtal_gcd(g, count[z]);
    s->n = 0;
    for (int z = 1; z <= XTAL_NUM_ELEMENTS; z++)
        if (count[z]) {
            s->el[s->n] = xtal_element_by_Z(z);
            s->count[s->n++] = count[z] / g;
        }
    return XTAL_OK;
}

static int all_metals(const charge_search *s)
{
    for (int k = 0; k < s->n; k++)
        if (!s->el[k]->is_metal) return 0;
    return 1;
}

static flt_charge_outcome classify(charge_search *s, double *ncombinations)
{
    if (s->n == 1) return FLT_CHARGE_SINGLE_ELEMENT;
    if (all_metals(s)) return FLT_CHARGE_ALLOY;
    double ncomb = 1;
    for (int k = 0; k < s->n; k++) ncomb *= s->el[k]->n_oxidation_states;
    *ncombinations = ncomb;
    if (ncomb > FLT_CHARGE_MAX_COMBINATIONS) return FLT_CHARGE_TOO_MANY_COMBINATIONS;
    if (ncomb == 0) return FLT_CHARGE_NOT_NEUTRAL; /* an element without states: empty product */
    charge_bounds(s);
    return search_from(s, 0, 0) ? FLT_CHARGE_BALANCED : FLT_CHARGE_NOT_NEUTRAL;
}

int flt_charge_check(const xtal_crystal *c, flt_charge_result *out, xtal_err *err)
{
    memset(out, 0, sizeof *out);
    out->outcome = FLT_CHARGE_INVALID;
    if (c->natoms < 1) return xtal_err_set(err, XTAL_EINVALID, "%s: no atoms", c->id);
    charge_search s;
    int rc = composition(c, &s, err);
    if (rc) return rc;
    out->nelements = s.n;
    for (int k = 0; k < s.n; k++) {
        out->Z[k] = s.el[k]->Z;
        out->count[k] = s.count[k];
    }
    out->outcome = classify(&s, &out->ncombinations);
    if (out->outcome == FLT_CHARGE_BALANCED)
        for (int k = 0; k < s.n; k++) out->oxidation_state[k] = s.state[k];
    out->pass = out->outcome == FLT_CHARGE_SINGLE_ELEMENT || out->outcome == FLT_CHARGE_ALLOY ||
                out->outcome == FLT_CHARGE_BALANCED;
    return XTAL_OK;
}

void flt_charge_format(const flt_charge_result *r, char *buf, size_t bufsize)
{
    if (bufsize == 0) return;
    buf[0] = 0;
    if (r->outcome != FLT_CHARGE_BALANCED) return;
    size_t used = 0;
    for (int k = 0; k < r->nelements && used < bufsize; k++) {
        int w = snprintf(buf + used, bufsize - used, "%s%s:%+d", k ? " " : "",
                         xtal_element_by_Z(r->Z[k])->symbol, r->oxidation_state[k]);
        if (w < 0) break;
        used += (size_t)w;
    }
}

const char *flt_charge_outcome_name(flt_charge_outcome outcome)
{
    switch (outcome) {
    case FLT_CHARGE_SINGLE_ELEMENT:
        return "single_element";
    case FLT_CHARGE_ALLOY:
        return "alloy";
    case FLT_CHARGE_BALANCED:
        return "balanced";
    case FLT_CHARGE_NOT_NEUTRAL:
        return "not_neutral";
    case FLT_CHARGE_TOO_MANY_COMBINATIONS:
        return "too_many_combinations";
    case FLT_CHARGE_INVALID:
        return "invalid";
    }
    return "unknown";
}
