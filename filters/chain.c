/* The filter chain: distance -> charge neutrality -> symmetry, with every rejection reason. */
#include "filters/filters.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *flt_reason_name(flt_reason reason)
{
    switch (reason) {
    case FLT_PASS:
        return "pass";
    case FLT_REJECT_INVALID:
        return "invalid";
    case FLT_REJECT_SMALL_VOLUME:
        return "small_volume";
    case FLT_REJECT_TOO_CLOSE:
        return "too_close";
    case FLT_REJECT_NOT_NEUTRAL:
        return "not_neutral";
    case FLT_REJECT_TOO_MANY_COMBINATIONS:
        return "too_many_combinations";
    case FLT_REJECT_SYMMETRY:
        return "symmetry_failed";
    case FLT_REJECT_DUPLICATE:
        return "duplicate";
    case FLT_REJECT_NOT_NOVEL:
        return "not_novel";
    case FLT_NREASONS:
        break;
    }
    return "unknown";
}

flt_options flt_options_default(void)
{
    flt_options o = {
        .rule = FLT_RULE_COVALENT,
        .covalent_scale = FLT_DEFAULT_COVALENT_SCALE,
        .benchmark_min_distance = FLT_BENCHMARK_MIN_DISTANCE,
        .check_distance = 1,
        .check_charge = 1,
        .check_symmetry = 1,
        .symprec = FLT_DEFAULT_SYMPREC,
        .angle_tolerance = FLT_DEFAULT_ANGLE_TOLERANCE,
        .stop_at_first = 0,
    };
    return o;
}

static void reject(flt_result *r, flt_reason reason)
{
    if (r->rejections == 0) r->reason = reason;
    r->rejections |= 1u << reason;
    r->pass = 0;
}

/* Structural problems that make the later checks meaningless: reported as FLT_REJECT_INVALID
 * with the message, never as an error. */
static int input_is_usable(const xtal_crystal *c, flt_result *r)
{
    xtal_err e = {{0}};
    if (c->natoms < 1) xtal_err_set(&e, XTAL_EINVALID, "%s: no atoms", c->id);
    for (int a = 0; a < c->natoms && !e.msg[0]; a++) {
        if (!xtal_element_by_Z(c->Z[a]))
            xtal_err_set(&e, XTAL_EINVALID, "atom %d has unknown atomic number %d", a + 1, c->Z[a]);
        for (int k = 0; k < 3 && !e.msg[0]; k++)
            if (!isfinite(c->frac[3 * a + k]))
                xtal_err_set(&e, XTAL_EINVALID, "atom %d has a non-finite coordinate", a + 1);
    }
    for (int i = 0; i < 9 && !e.msg[0]; i++)
        if (!isfinite(c->lattice[i / 3][i % 3]))
            xtal_err_set(&e, XTAL_EINVALID, "the lattice is not finite");
    if (!e.msg[0]) return 1;
    snprintf(r->message, sizeof r->message, "%s", e.msg);
    reject(r, FLT_REJECT_INVALID);
    return 0;
}

static int run_distance(const xtal_crystal *c, const flt_options *opt, flt_result *r, xtal_err *err)
{
    double param =
        opt->rule == FLT_RULE_BENCHMARK ? opt->benchmark_min_distance : opt->covalent_scale;
    int rc = flt_distance_check(c, opt->rule, param, &r->distance, err);
    if (rc) return rc;
    r->ran_distance = 1;
    if (!r->distance.volume_ok) reject(r, FLT_REJECT_SMALL_VOLUME);
    if (!r->distance.distance_ok) reject(r, FLT_REJECT_TOO_CLOSE);
    return XTAL_OK;
}

static int run_charge(const xtal_crystal *c, flt_result *r, xtal_err *err)
{
    int rc = flt_charge_check(c, &r->charge, err);
    if (rc) return rc;
    r->ran_charge = 1;
    if (r->charge.outcome == FLT_CHARGE_TOO_MANY_COMBINATIONS)
        reject(r, FLT_REJECT_TOO_MANY_COMBINATIONS);
    else if (!r->charge.pass)
        reject(r, FLT_REJECT_NOT_NEUTRAL);
    return XTAL_OK;
}

static int run_symmetry(const xtal_crystal *c, const flt_options *opt, flt_result *r, xtal_err *err)
{
    int rc = flt_symmetry_analyze(c, opt->symprec, opt->angle_tolerance, &r->symmetry, err);
    if (rc) return rc;
    r->ran_symmetry = 1;
    if (!r->symmetry.ok) {
        reject(r, FLT_REJECT_SYMMETRY);
        if (!r->message[0]) snprintf(r->message, sizeof r->message, "%s", r->symmetry.message);
    }
    return XTAL_OK;
}

int flt_check(const xtal_crystal *c, const flt_options *opt, flt_result *out, xtal_err *err)
{
    flt_options defaults = flt_options_default();
    if (!opt) opt = &defaults;
    memset(out, 0, sizeof *out);
    out->pass = 1;
    out->reason = FLT_PASS;
    if (!input_is_usable(c, out)) return XTAL_OK;
    int rc = XTAL_OK;
    if (opt->check_distance) {
        rc = run_distance(c, opt, out, err);
        if (rc || (opt->stop_at_first && !out->pass)) return rc;
    }
    if (opt->check_charge) {
        rc = run_charge(c, out, err);
        if (rc || (opt->stop_at_first && !out->pass)) return rc;
    }
    if (opt->check_symmetry) rc = run_symmetry(c, opt, out, err);
    return rc;
}

void flt_result_free(flt_result *r)
{
    if (r) flt_symmetry_result_free(&r->symmetry);
}

void flt_counts_add(flt_counts *counts, const flt_result *r)
{
    counts->total++;
    if (r->pass) counts->passed++;
    for (int reason = 1; reason < FLT_NREASONS; reason++)
        if (r->rejections & (1u << reason)) counts->rejected[reason]++;
}
