/* Private to relax/: the pieces shared between potential.c, nlist.c and fire.c. */
#ifndef DRUSE_RELAX_INTERNAL_H
#define DRUSE_RELAX_INTERNAL_H

#include "relax/relax.h"

/* ---------------------------------------------------------- pair terms */

enum { RLX_FORM_LJ = 0, RLX_FORM_MORSE = 1 };

/* One species pair, ready for the inner loop. The pair energy is
 *   LJ:    e(r) = D [ (rmin/r)^12 - 2 (rmin/r)^6 ]
 *   Morse: e(r) = D [ x^2 - 2 x ],  x = exp(-alpha (r - rmin))
 * minus the cutoff shift: e(rc) (energy shift) and, for the force shift, (r - rc) e'(rc). */
typedef struct {
    int form;
    double rmin_A, rmin2_A2, depth_eV, alpha_per_A;
    double rc_A, rc2_A2;
    double e_rc_eV;    /* e(rc) */
    double de_rc_eV_A; /* e'(rc); 0 for the energy shift */
} rlx_coef;

/* e(r) - shift and g = (de/dr)/r, from r^2 (forward and backward of one pair together:
 * the backward needs the forward's powers/exponential, so computing both is cheapest). */
double rlx_coef_eval(const rlx_coef *k, double r2, double *g_eV_A2);

/* Fills k for the given pair parameters and shift mode. */
void rlx_coef_init(rlx_coef *k, const rlx_pair *p, rlx_shift shift);

rlx_shift rlx_potential_shift(const rlx_potential *pot);

/* ------------------------------------------------------- neighbour list */

/* Verlet list over periodic images: every (i, j, image n) with |f_j + n - f_i|_L below
 * cutoff + skin at build time; i < j with every n, or i == j with n lexicographically > 0
 * (so each unordered pair is listed once). */
typedef struct {
    long npairs, cap;
    int *ij;  /* [2*npairs] */
    int *img; /* [3*npairs] lattice translation n */
    int natoms, capatoms;
    double *frac_ref; /* [3*natoms] coordinates at build */
    double lat_ref[3][3];
    double cutoff_A, skin_A;
    int valid;
} rlx_nlist;

void rlx_nlist_free(rlx_nlist *nl);
/* Builds the list (cutoff + skin). XTAL_ELIMIT when it would hold more than RLX_MAX_PAIRS
 * pairs or need more image checks than a sane cell does. */
int rlx_nlist_build(rlx_nlist *nl, int natoms, const double *frac, const double L[3][3],
                    double cutoff_A, double skin_A, xtal_err *err);
/* True when some pair not in the list might now be inside the cutoff: the largest atomic
 * displacement d and the cell deformation G = L_ref^-1 L bound every pair's change by
 * |G - I|_F (cutoff + skin) + 2 d, which must stay below the skin. */
int rlx_nlist_stale(const rlx_nlist *nl, int natoms, const double *frac, const double L[3][3],
                    double cutoff_A);

/* ------------------------------------------------------------ workspace */

struct rlx_workspace {
    /* species of the structure being evaluated */
    int natoms, capatoms;
    int *species; /* [natoms] index into the species list */
    int nspecies;
    int zlist[XTAL_NUM_ELEMENTS + 1];
    rlx_coef *coef; /* [nspecies^2] */
    int capcoef;
    double cutoff_A;
    rlx_nlist nl;
    /* FIRE state, (natoms + 3) rows of 3 */
    long capdof;
    double *pos, *vel, *force, *frac, *fatoms;
};

/* Sets up species and coefficient tables for the atoms (unknown element: XTAL_EINVALID). */
int rlx_ws_prepare(rlx_workspace *ws, const rlx_potential *pot, int natoms, const int *Z,
                   xtal_err *err);
/* Energy, forces, stress with the prepared tables, rebuilding the list only when stale. */
int rlx_ws_compute(rlx_workspace *ws, int natoms, const double *frac, const double L[3][3],
                   double skin_A, double *energy_eV, double *forces_eV_A, double stress_eV_A3[3][3],
                   xtal_err *err);

/* -------------------------------------------------------- small algebra */

void rlx_mat3_mul(const double A[3][3], const double B[3][3], double C[3][3]);
void rlx_mat3_transpose(const double A[3][3], double T[3][3]);
double rlx_mat3_det(const double A[3][3]);
int rlx_mat3_inv(const double A[3][3], double inv[3][3]);

/* Fitted pair table (generated into relax/pairs_mp20.c by relax/fit_pairs.py). */
typedef struct {
    unsigned char za, zb;
    double rmin_A, depth_eV, alpha_per_A; /* alpha NAN: alpha_r0 / rmin */
    double rc_over_rmin; /* NAN: the model's rc_factor; 1 = repulsive wall (cut at the minimum) */
} rlx_pair_entry;
extern const rlx_pair_entry rlx_mp20_pairs[];
extern const int rlx_mp20_npairs;
/* Per-element radii (A) from the same fit, for pairs the table lacks; NaN where unfitted. */
extern const double rlx_mp20_radius_A[XTAL_NUM_ELEMENTS + 1];
extern const double rlx_mp20_default_depth_eV;
extern const double rlx_mp20_default_alpha_r0;

#endif
