/* filters: the screening filters a candidate crystal passes through in a campaign.
 *
 *   distance   -> minimum-image distances, two rules (benchmark, covalent)   filters/distance.c
 *   charge     -> SMACT's charge-neutrality rule with the Pauling test      filters/charge.c
 *   symmetry   -> spglib: space group, Wyckoff letters, standard cells      filters/symmetry.c
 *   chain      -> all of the above in one call, with rejection reasons      filters/chain.c
 *   uniqueness and novelty (fingerprints, matcher)                          filters/match*.c
 *
 * Depends only on crystal/. Conventions, as in crystal.h and spglib:
 *   - lattice rows are the vectors a, b, c, in Angstrom (spglib itself takes columns; the
 *     functions here transpose for it);
 *   - distances in Angstrom, volumes in Angstrom^3, angles in degrees, fractional coordinates
 *     in units of the lattice vectors;
 *   - functions that can fail return an xtal_status and fill an xtal_err; a structure that a
 *     filter rejects is an outcome (a field of the result), not an error. Nothing here prints
 *     or exits.
 * Prefix: flt_.
 */
#ifndef DRUSE_FILTERS_H
#define DRUSE_FILTERS_H

#include "crystal/crystal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================== rejection reasons */

/* Why a structure was rejected. A result holds a bit mask of every reason that applies
 * (bit 1u << reason), so a campaign can count each one; FLT_PASS is no rejection. */
typedef enum {
    FLT_PASS = 0,
    FLT_REJECT_INVALID,      /* not a usable structure: unknown element, NaN, natoms < 1 */
    FLT_REJECT_SMALL_VOLUME, /* cell volume < 0.1 Angstrom^3 (or not finite) */
    FLT_REJECT_TOO_CLOSE,    /* two sites (or a site and its own image) closer than the rule */
    FLT_REJECT_NOT_NEUTRAL,  /* no charge-balanced oxidation states pass the Pauling test */
    FLT_REJECT_TOO_MANY_COMBINATIONS, /* SMACT gives up: > 1e7 oxidation-state combinations */
    FLT_REJECT_SYMMETRY,              /* spglib found no space group (returned NULL / an error) */
    FLT_REJECT_DUPLICATE,             /* set by the uniqueness stage (filters/match*.c) */
    FLT_REJECT_NOT_NOVEL,             /* set by the novelty stage: matches the reference set */
    FLT_NREASONS
} flt_reason;

/* Short stable name for counters and output: "pass", "invalid", "small_volume", "too_close",
 * "not_neutral", "too_many_combinations", "symmetry_failed", "duplicate", "not_novel". */
const char *flt_reason_name(flt_reason reason);

/* ============================================================== distance */

typedef enum {
    /* Default physical rule: d_ij >= scale * (r_cov,i + r_cov,j) for every pair of distinct
     * sites and for every site and its own periodic images (r_cov: Cordero et al. 2008 from
     * the element table); pairs with an unknown radius (Z >= 97) use the benchmark's 0.5 A.
     * The volume must be >= 0.1 Angstrom^3 as in the benchmark rule. */
    FLT_RULE_COVALENT = 0,
    /* CDVAE/DiffCSP structural validity: every distance between distinct sites (minimum
     * image, pymatgen's Structure.distance_matrix) >= 0.5 Angstrom (configurable) and the volume >=
     * 0.1 Angstrom^3. Self-images do not count (a one-atom cell passes any lattice). */
    FLT_RULE_BENCHMARK = 1
} flt_distance_rule;

#define FLT_BENCHMARK_MIN_DISTANCE 0.5 /* Angstrom */
#define FLT_BENCHMARK_MIN_VOLUME   0.1 /* Angstrom^3 */
#define FLT_DEFAULT_COVALENT_SCALE 0.5 /* dimensionless k */

typedef struct {
    flt_distance_rule rule;
    int ok;                   /* 1: passes the rule (distance_ok && volume_ok) */
    int distance_ok;          /* no pair (or self-image) below the rule's threshold */
    int volume_ok;            /* volume >= FLT_BENCHMARK_MIN_VOLUME */
    double volume;            /* |det(lattice)|, Angstrom^3 */
    double min_distance;      /* shortest distance between distinct sites over all images,
                               * Angstrom; +inf for a one-atom cell */
    int min_i, min_j;         /* the pair at min_distance (min_i < min_j); -1 when none */
    double min_self_distance; /* shortest non-zero lattice vector = distance from any site to
                               * its own nearest image, Angstrom */
    /* The pair that is worst under the rule (smallest distance / threshold), i == j for a site
     * and its own image; -1 when there is none. threshold is the rule's bound for that pair
     * (Angstrom); worst_distance its distance (Angstrom). */
    int worst_i, worst_j;
    double worst_distance, threshold;
} flt_distance_result;

/* Evaluates a distance rule. param is the rule's parameter: k for FLT_RULE_COVALENT
 * (dimensionless, >= 0); the minimum distance in Angstrom for FLT_RULE_BENCHMARK, where a value
 * <= 0 means the CDVAE/DiffCSP 0.5 A. Distances are exact minimum-image distances for any cell
 * shape. A cell with a non-positive or non-finite volume is an outcome (ok = 0), not an error.
 * Returns XTAL_OK, or XTAL_EINVALID for an unknown element, non-finite coordinates or a bad
 * param (err says which). */
int flt_distance_check(const xtal_crystal *c, flt_distance_rule rule, double param,
                       flt_distance_result *out, xtal_err *err);

/* ============================================================== charge neutrality */

/* SMACT's compositional validity as the CDVAE/DiffCSP evaluation applies it
 * (DiffCSP scripts/eval_utils.py smact_validity, SMACT v2.6 data; the rule is spelled out in
 * shared/data/elements/SOURCE.md). */
typedef enum {
    FLT_CHARGE_SINGLE_ELEMENT = 0,    /* pass: one distinct element */
    FLT_CHARGE_ALLOY,                 /* pass: every element is in SMACT's metal list */
    FLT_CHARGE_BALANCED,              /* pass: oxidation states found (see assignment) */
    FLT_CHARGE_NOT_NEUTRAL,           /* fail: no combination balances and passes Pauling */
    FLT_CHARGE_TOO_MANY_COMBINATIONS, /* fail: product of state counts > 1e7 (SMACT gives up) */
    FLT_CHARGE_INVALID                /* fail: unknown element or no atoms */
} flt_charge_outcome;

#define FLT_CHARGE_MAX_COMBINATIONS 1e7

typedef struct {
    flt_charge_outcome outcome;
    int pass;      /* 1 for SINGLE_ELEMENT, ALLOY, BALANCED */
    int nelements; /* distinct elements, ordered by Z (as DiffCSP's get_composition) */
    int Z[XTAL_NUM_ELEMENTS];
    long count[XTAL_NUM_ELEMENTS];          /* reduced by the gcd of the counts */
    int oxidation_state[XTAL_NUM_ELEMENTS]; /* valid when outcome == FLT_CHARGE_BALANCED: the
                                             * first passing combination in itertools.product
                                             * order (oxidation states in file order) */
    double ncombinations;                   /* product of the numbers of oxidation states */
} flt_charge_result;

/* Applies the rule. Returns XTAL_OK (the outcome is in out), or XTAL_EINVALID for an unknown
 * element (out->outcome = FLT_CHARGE_INVALID too). */
int flt_charge_check(const xtal_crystal *c, flt_charge_result *out, xtal_err *err);

/* "Fe:+3 O:-2" for BALANCED; "" otherwise. */
void flt_charge_format(const flt_charge_result *r, char *buf, size_t bufsize);

const char *flt_charge_outcome_name(flt_charge_outcome outcome);

/* ============================================================== symmetry (spglib) */

#define FLT_DEFAULT_SYMPREC 0.1 /* Angstrom, as the benchmarks use for generated structures */
/* Angle tolerance in degrees; a negative value asks for spglib's default (its own heuristic,
 * what spglib.get_symmetry_dataset does without angle_tolerance). */
#define FLT_DEFAULT_ANGLE_TOLERANCE -1.0

typedef struct {
    int ok;                 /* 1: spglib found a space group */
    int spacegroup;         /* ITA number 1..230; 0 when !ok */
    int hall_number;        /* 1..530 */
    char international[32]; /* Hermann-Mauguin short symbol, e.g. "Fm-3m" */
    char hall_symbol[32];
    char pointgroup[8];
    int natoms;
    char *wyckoffs;         /* [natoms + 1] letter per input site ('a'..'z'), NUL-terminated */
    int *equivalent_atoms;  /* [natoms] index of the representative of each site's orbit */
    int n_operations;       /* rotations + translations found */
    int n_std_atoms;        /* atoms in the standardized conventional cell */
    double symprec;         /* Angstrom, as used */
    double angle_tolerance; /* degrees, as used (negative: spglib's default) */
    char message[128];      /* spglib's spg_get_error_message text when !ok */
} flt_symmetry_result;

/* Runs spg_get_dataset (spgat_get_dataset when angle_tolerance >= 0). A failure of spglib is
 * an outcome (ok = 0, message set), not an error. Returns XTAL_OK, XTAL_ENOMEM, or
 * XTAL_EINVALID when natoms < 1. Free with flt_symmetry_result_free. */
int flt_symmetry_analyze(const xtal_crystal *c, double symprec, double angle_tolerance,
                         flt_symmetry_result *out, xtal_err *err);
void flt_symmetry_result_free(flt_symmetry_result *r);

/* Standardized cell (spg_standardize_cell): the conventional cell (to_primitive = 0) or the
 * primitive one (to_primitive = 1), idealized to the symmetry found (rotated into spglib's
 * standard orientation). out is initialized here; its id is c's. Returns XTAL_OK, or
 * XTAL_EINVALID with spglib's message when it finds no symmetry. */
int flt_standardize(const xtal_crystal *c, int to_primitive, double symprec, double angle_tolerance,
                    xtal_crystal *out, xtal_err *err);

/* Symmetrization: refines the cell at a looser tolerance (symprec in Angstrom; e.g. 0.1-0.5
 * for a noisy generated structure) and returns the idealized conventional cell, whose sites sit
 * exactly on their Wyckoff positions (so spglib finds the same group at 1e-5 A). Same return
 * values as flt_standardize. */
int flt_symmetrize(const xtal_crystal *c, double symprec, double angle_tolerance, xtal_crystal *out,
                   xtal_err *err);

/* ============================================================== the chain */

typedef struct {
    flt_distance_rule rule;        /* default FLT_RULE_COVALENT */
    double covalent_scale;         /* k, default 0.5 */
    double benchmark_min_distance; /* Angstrom, default 0.5 (FLT_RULE_BENCHMARK) */
    int check_distance;            /* default 1 */
    int check_charge;              /* default 1 */
    int check_symmetry;            /* default 1 */
    double symprec;                /* Angstrom, default 0.1 */
    double angle_tolerance;        /* degrees, default -1 (spglib's own) */
    int stop_at_first;             /* 1: skip the later checks after a rejection (a campaign);
                                    * 0 (default): run every check and report every reason */
} flt_options;

/* The defaults listed above. */
flt_options flt_options_default(void);

typedef struct {
    int pass;            /* 1 when no reason applies */
    unsigned rejections; /* bit (1u << reason) for every flt_reason found */
    flt_reason reason;   /* the first reason in chain order; FLT_PASS when pass */
    int ran_distance, ran_charge, ran_symmetry; /* which checks ran */
    flt_distance_result distance;
    flt_charge_result charge;
    flt_symmetry_result symmetry; /* owns memory: free with flt_result_free */
    char message[512];            /* what went wrong for FLT_REJECT_INVALID / FLT_REJECT_SYMMETRY */
} flt_result;

/* Runs the enabled checks, distance -> charge -> symmetry, on c (opt NULL: the defaults). A
 * rejected or broken structure (overlapping atoms, zero volume, unknown element, NaN) is an
 * outcome in out, never an error. Returns XTAL_OK; XTAL_ENOMEM; or XTAL_EINVALID for a bad
 * option (negative covalent scale or minimum distance). out is initialized here even on error; free
 * it with flt_result_free. Thread-safe as far as spglib is (its error code is a global). */
int flt_check(const xtal_crystal *c, const flt_options *opt, flt_result *out, xtal_err *err);
void flt_result_free(flt_result *r);

/* Per-reason counters for a run of flt_check calls. */
typedef struct {
    long total, passed;
    long rejected[FLT_NREASONS]; /* structures rejected for that reason (a structure may count
                                  * under several reasons) */
} flt_counts;

void flt_counts_add(flt_counts *counts, const flt_result *r);

/* Wall time (seconds) spent inside spglib calls made by this module since the last reset, on
 * this thread; lets benchmarks separate spglib's own cost from ours. */
double flt_spglib_seconds(void);
void flt_spglib_seconds_reset(void);

/* ============================================================== uniqueness and novelty */
/* Section owned by the uniqueness/novelty work (filters/match*.c): fingerprints, the
 * StructureMatcher-style matcher, reference indexes. Declarations go below this line. */

/* ------------------------------------------------ the matcher (filters/match.c)
 * Decides "same structure" the way pymatgen's StructureMatcher() does with its defaults
 * (ltol 0.2, stol 0.3, angle_tol 5, primitive_cell, scale, no supercells, species compared by
 * element): same reduced composition; both reduced to primitive (pymatgen's algorithm) and
 * Niggli cells; volumes scaled to equal; every lattice of one with lengths within ltol and
 * angles within angle_tol of the other's; every translation that puts an atom of the least
 * frequent element on one of the other; sites paired per element by a linear assignment on
 * squared minimum-image distances; a match when the largest displacement, divided by
 * (V / n)^(1/3), is below stol. Mirror images match, as in pymatgen. docs/matcher.md. */

typedef struct {
    double ltol;        /* fractional length tolerance, default 0.2 */
    double stol;        /* site tolerance in units of (V / n)^(1/3), default 0.3 */
    double angle_tol;   /* degrees, default 5 */
    double prim_tol;    /* Angstrom, the primitive-cell search (get_primitive_structure), 0.25 */
    int primitive_cell; /* 1 (default): reduce to primitive cells first */
    int scale;          /* 1 (default): scale both to the same volume per atom */
} flt_match_options;

/* StructureMatcher()'s defaults, listed above. */
flt_match_options flt_match_options_default(void);

/* Larger structures are refused (XTAL_ELIMIT): the primitive search is O(n^3). */
#define FLT_MATCH_MAX_ATOMS 1000

typedef struct {
    int match;       /* 1: the same structure */
    double rms;      /* normalized RMS displacement of the mapping kept (NaN when none) */
    double max_dist; /* its largest normalized displacement (NaN when none) */
    long lattices;   /* candidate lattices examined (a cost figure) */
} flt_match_result;

/* The reduced structure the matcher works on (pymatgen's _get_reduced_structure): Niggli cell,
 * primitive cell within opt->prim_tol, Niggli cell again; fractional coordinates wrapped.
 * out is initialized here. Returns XTAL_OK, XTAL_EINVALID (c fails xtal_crystal_validate or
 * the Niggli reduction), XTAL_ELIMIT (> FLT_MATCH_MAX_ATOMS), XTAL_ENOMEM. */
int flt_match_reduce(const xtal_crystal *c, const flt_match_options *opt, xtal_crystal *out,
                     xtal_err *err);

/* StructureMatcher.fit(a, b): res->match, and rms/max_dist of the first mapping under stol.
 * Asymmetric like pymatgen's (the lattices of a are searched against b's). */
int flt_match_fit(const xtal_crystal *a, const xtal_crystal *b, const flt_match_options *opt,
                  flt_match_result *res, xtal_err *err);
/* StructureMatcher.get_rms_dist(a, b): the smallest normalized RMS displacement over all
 * mappings (res->rms) and that mapping's largest one (res->max_dist); res->match = 1 when one
 * exists with rms below stol (pymatgen returns None otherwise). */
int flt_match_rms_dist(const xtal_crystal *a, const xtal_crystal *b, const flt_match_options *opt,
                       flt_match_result *res, xtal_err *err);
/* The same on structures already reduced by flt_match_reduce (as group_structures does). */
int flt_match_fit_reduced(const xtal_crystal *ra, const xtal_crystal *rb,
                          const flt_match_options *opt, flt_match_result *res, xtal_err *err);
int flt_match_rms_dist_reduced(const xtal_crystal *ra, const xtal_crystal *rb,
                               const flt_match_options *opt, flt_match_result *res, xtal_err *err);

/* ------------------------------------------------ fingerprint (filters/match_index.c)
 * The bucket key: reduced formula and the number of sites of the reduced (primitive) cell,
 * "Fe2O3/10". Both are conditions of a match, so two structures that match always share a key
 * (no tolerance sits in the key: nothing can fall on a bucket edge). Space groups are not in
 * it on purpose: stol tolerates distortions that change the group at symprec 0.1. */
#define FLT_FINGERPRINT_LEN 136
/* From a structure reduced by flt_match_reduce. */
void flt_fingerprint(const xtal_crystal *reduced, char buf[FLT_FINGERPRINT_LEN]);
/* 64-bit FNV-1a hash of a fingerprint, for hash tables and archives. */
uint64_t flt_fingerprint_hash(const char *fingerprint);

/* ------------------------------------------------ dedup / novelty index (filters/match_index.c)
 * Representatives of the distinct structures seen so far, bucketed by fingerprint. A new
 * structure is compared (flt_match_fit_reduced(representative, new)) with the representatives
 * of its bucket in insertion order, as pymatgen's group_structures compares with the first
 * member of each group. Saved to and loaded from HDF5 without recomputing anything. */
typedef struct flt_index flt_index;

int flt_index_new(const flt_match_options *opt, flt_index **out, xtal_err *err);
void flt_index_free(flt_index *ix);
long flt_index_count(const flt_index *ix); /* representatives */
const char *flt_index_id(const flt_index *ix, long entry);
const char *flt_index_fingerprint(const flt_index *ix, long entry);
const flt_match_options *flt_index_options(const flt_index *ix);
/* Matches c against the index: *entry = the representative it matches, or -1 (novel). */
int flt_index_find(const flt_index *ix, const xtal_crystal *c, long *entry, xtal_err *err);
/* Adds c unless it matches: *entry = the representative matched (*added = 0) or the new entry
 * (*added = 1). */
int flt_index_add(flt_index *ix, const xtal_crystal *c, long *entry, int *added, xtal_err *err);
/* Appends c without matching it (a novelty reference keeps every structure of its set, so
 * that "novel" means "matches none of them"); *entry = the new entry. */
int flt_index_insert(flt_index *ix, const xtal_crystal *c, long *entry, xtal_err *err);
/* The same with a structure from flt_match_reduce (reduce once, look up in several indexes). */
int flt_index_find_reduced(const flt_index *ix, const xtal_crystal *reduced, long *entry,
                           xtal_err *err);
int flt_index_add_reduced(flt_index *ix, const xtal_crystal *reduced, long *entry, int *added,
                          xtal_err *err);
/* HDF5 (serial; written to a temporary name, then renamed): root attributes format
 * "druse-match-index", version, the options, source; entries/{id, fingerprint, natoms,
 * atom_offset, lattice (n x 3 x 3, Angstrom)}, atoms/{Z, frac} of the reduced cells. */
int flt_index_save(const flt_index *ix, const char *path, const char *source, xtal_err *err);
int flt_index_load(const char *path, flt_index **out, xtal_err *err);
/* The source attribute of a loaded index ("" when none). */
const char *flt_index_source(const flt_index *ix);

/* ============================================================== end uniqueness and novelty */

#ifdef __cplusplus
}
#endif
#endif
