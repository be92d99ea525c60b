/* relax: a cheap universal interatomic potential and FIRE with a variable cell.
 *
 * Depends on crystal/ only. Prefix: rlx_. Units everywhere: Angstrom, eV, eV/Angstrom for
 * forces, eV/Angstrom^3 for stress (GPa only in printed outputs: 1 eV/A^3 = 160.21766 GPa).
 * Stress follows ASE's sign convention: stress = (1/V) dE/d(strain), so a compressed cell
 * has negative stress and pressure = -trace(stress)/3.
 *
 * Three pair potentials (docs/relax.md gives the formulas, sources and measurements):
 *   "mp20"   (default) Morse pairs whose minima sit at the bond lengths seen in the MP-20
 *            training set (relax/pairs_mp20.tsv, fitted by relax/fit_pairs.py); element pairs
 *            never seen there fall back to covalent-radius sums.
 *   "uff-lj" Lennard-Jones with UFF parameters (Rappe et al. 1992), geometric mixing.
 *   "lj"     one plain Lennard-Jones (sigma, epsilon, cutoff) for every pair, cut and shifted
 *            like ase.calculators.lj.LennardJones(smooth=False); used to check against ASE.
 * Nothing here prints or exits: functions return xtal_status codes and fill an xtal_err.
 */
#ifndef DRUSE_RELAX_H
#define DRUSE_RELAX_H

#include "crystal/crystal.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RLX_EV_A3_TO_GPA 160.21766208

/* ------------------------------------------------------------ potential */

typedef enum { RLX_MODEL_MP20 = 0, RLX_MODEL_UFF_LJ, RLX_MODEL_LJ } rlx_model;

/* How a pair term is cut at its cutoff rc: "energy" subtracts E(rc) (continuous energy,
 * forces jump, as ASE's LennardJones with smooth=False); "force" also subtracts
 * (r - rc) E'(rc) so that forces are continuous too (better for FIRE). */
typedef enum { RLX_SHIFT_ENERGY = 0, RLX_SHIFT_FORCE } rlx_shift;

typedef struct rlx_potential rlx_potential;

/* Potential by name ("mp20", "uff-lj", "lj"); NULL or "" gives the default (mp20). */
int rlx_potential_new(const char *name, rlx_potential **out, xtal_err *err);
void rlx_potential_free(rlx_potential *pot);
const char *rlx_potential_name(const rlx_potential *pot);

/* Overrides one global parameter. Keys (all models unless noted):
 *   sigma (A), epsilon (eV), rc (A)      plain "lj" model;
 *   rc_factor     cutoff as a multiple of each pair's r_min ("uff-lj", "mp20");
 *   rc_max        upper bound on any pair cutoff, A;
 *   r_scale       multiplies every pair's r_min (1 = as tabulated);
 *   depth_scale   multiplies every pair's well depth;
 *   alpha_r0      Morse steepness alpha * r0 ("mp20");
 *   shift         0 = energy-shifted, 1 = force-shifted cutoff. */
int rlx_potential_set(rlx_potential *pot, const char *key, double value, xtal_err *err);

/* A spec string as a config or the command line gives it: "NAME" or
 * "NAME:key=value,key=value" (e.g. "lj:sigma=1.3,epsilon=1,rc=3.25"). */
int rlx_potential_parse(const char *spec, rlx_potential **out, xtal_err *err);

/* Reads per-pair overrides from a TSV file: lines "A B r_min_A depth_eV [alpha_per_A]"
 * with element symbols A, B ('#' starts a comment). The pairs given replace the model's. */
int rlx_potential_load_pairs(rlx_potential *pot, const char *path, xtal_err *err);

/* The parameters one element pair uses (after overrides and scales). */
typedef struct {
    int form;           /* 0 = Lennard-Jones (r_min form), 1 = Morse */
    double rmin_A;      /* position of the minimum */
    double depth_eV;    /* well depth D > 0 */
    double alpha_per_A; /* Morse steepness (unused for LJ) */
    double rc_A;        /* cutoff */
    int source;         /* 0 = model default, 1 = fitted table, 2 = user override */
} rlx_pair;
int rlx_pair_params(const rlx_potential *pot, int Za, int Zb, rlx_pair *out);

/* ------------------------------------------------------ energy / forces */

/* Reusable scratch memory (neighbour list, species tables, FIRE vectors); grows as needed.
 * One per thread. */
typedef struct rlx_workspace rlx_workspace;
rlx_workspace *rlx_workspace_new(void);
void rlx_workspace_free(rlx_workspace *ws);

/* Energy (eV), forces (eV/A, natoms*3, may be NULL) and stress (eV/A^3, may be NULL) of a
 * periodic cell of any shape. Every periodic image within the cutoff counts, so cells
 * smaller than the cutoff are exact. ws may be NULL (then allocated and freed inside).
 * Fails with XTAL_EINVALID on a singular cell or non-finite input, XTAL_ELIMIT when the
 * neighbour list would exceed RLX_MAX_PAIRS (a cell far too thin or dense for the cutoff). */
int rlx_evaluate(const rlx_potential *pot, const xtal_crystal *c, double *energy_eV,
                 double *forces_eV_A, double stress_eV_A3[3][3], rlx_workspace *ws, xtal_err *err);

#define RLX_MAX_PAIRS 20000000L

/* ---------------------------------------------------------------- FIRE */

/* Cell degrees of freedom, as ASE's filters define them. */
typedef enum {
    RLX_CELL_FRECHET = 0, /* ASE's FrechetCellFilter: log of the deformation gradient times
                             natoms, exact gradient through the Frechet derivative of exp */
    RLX_CELL_EXP,         /* ASE 3.22's ExpCellFilter (naive virial when well aligned) */
    RLX_CELL_FIXED        /* positions only */
} rlx_cell_filter;

typedef struct {
    double fmax_eV_A;        /* converged when every filter row (atoms and cell) is below it */
    double max_stress_eV_A3; /* and every |stress_ij| is below this; <= 0 disables */
    int max_steps;           /* force evaluations after the first; 0 = evaluate only */
    rlx_cell_filter cell_filter;
    /* FIRE (Bitzek et al. 2006) with ASE's defaults */
    double dt, dtmax, finc, fdec, astart, fa, maxstep_A;
    int nmin;
    /* guards */
    double max_volume_ratio;       /* stop "cell exploded" when V/V0 exceeds it */
    double min_volume_ratio;       /* stop "volume collapsed" when V/V0 falls below it */
    double min_volume_per_atom_A3; /* or V/natoms below it */
    double skin_A;                 /* Verlet skin of the neighbour list */
} rlx_options;

void rlx_options_default(rlx_options *o);

typedef enum {
    RLX_STOP_CONVERGED = 0,
    RLX_STOP_MAX_STEPS,
    RLX_STOP_NAN, /* energy or force not finite */
    RLX_STOP_CELL_EXPLODED,
    RLX_STOP_VOLUME_COLLAPSED,
    RLX_STOP_TOO_MANY_PAIRS, /* the neighbour list outgrew RLX_MAX_PAIRS */
    RLX_STOP_INVALID_INPUT   /* NaN coordinates, flat cell, unknown element, ... */
} rlx_stop;

const char *rlx_stop_name(rlx_stop s); /* "converged", "max_steps", "nan", ... */

typedef struct {
    int converged;
    int steps;
    rlx_stop stop;
    double energy_initial_eV, energy_eV;
    double energy_per_atom_initial_eV, energy_per_atom_eV;
    double max_force_eV_A;     /* largest atomic force at the end */
    double stress_eV_A3[3][3]; /* at the end */
    double max_stress_eV_A3;   /* largest |stress_ij| at the end */
    double volume_initial_A3, volume_A3;
    char message[160]; /* why it stopped, in words */
} rlx_outcome;

/* Relaxes c in place. Returns XTAL_OK whenever an outcome was produced, including failed
 * relaxations (see out->stop); on a guard stop (nan, exploded, collapsed, too many pairs)
 * c is restored to its input. Only XTAL_ENOMEM is returned as an error. */
int rlx_relax(const rlx_potential *pot, const rlx_options *opt, xtal_crystal *c, rlx_outcome *out,
              rlx_workspace *ws, xtal_err *err);

/* -------------------------------------------------- matrix exponential */

/* exp(A) for an n x n row-major matrix, n <= 6 (scaling and squaring with Pade
 * approximants, Higham 2005). */
void rlx_expm(int n, const double *A, double *expA);
/* Frechet derivative of exp at the 3x3 A in direction E: d/dt exp(A + tE) at t = 0. */
void rlx_expm_frechet3(const double A[3][3], const double E[3][3], double L[3][3]);

#ifdef __cplusplus
}
#endif
#endif
