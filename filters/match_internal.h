/* Internals shared by the files of the structure matcher (filters/match*.c); not public.
 * Conventions as in crystal.h: lattice rows are vectors (Angstrom), fractional coordinates in
 * units of them. */
#ifndef DRUSE_FILTERS_MATCH_INTERNAL_H
#define DRUSE_FILTERS_MATCH_INTERNAL_H

#include "crystal/crystal.h"
#include "filters/filters.h"

/* pymatgen's Structure.get_primitive_structure(tolerance) without its final Niggli step:
 * repeatedly finds the first supercell matrix (HNF order as pymatgen enumerates them) whose
 * inverse maps every site onto a site of the same element within tol (Angstrom, per lattice
 * axis, as pymatgen's box test), merges the images by averaging, and starts again on the
 * smaller cell. c is replaced in place; *reduced says whether the cell shrank. */
int flt_prim_reduce(xtal_crystal *c, double tol, int *reduced, xtal_err *err);

/* Linear assignment (Hungarian method, O(n^3)): rows to columns of the n x n cost matrix
 * (row-major) with the smallest total. row_to_col[n] receives the column of each row.
 * Returns 0, or -1 when memory runs out. */
int flt_linear_assignment(int n, const double *cost, int *row_to_col);

/* pymatgen's Lattice.get_lll_reduced_lattice (delta 0.75): reduced rows lll = map . L, with
 * the integer matrix map (as doubles). */
void flt_lll_reduce(const double L[3][3], double lll[3][3], double map[3][3]);

/* Reduced composition of c as sorted (Z, count / gcd) pairs; returns the number of elements
 * (0 when c has an unknown element). Z and count hold XTAL_NUM_ELEMENTS entries. */
int flt_reduced_composition(const xtal_crystal *c, int *Z, long *count);

/* Index internals for the HDF5 reader and writer (filters/match_h5.c). */
/* Appends an already reduced structure (moved in) without matching; fingerprint recomputed. */
int flt_index_append_loaded(flt_index *ix, xtal_crystal *red, xtal_err *err);
const xtal_crystal *flt_index_reduced(const flt_index *ix, long entry);
void flt_index_set_source(flt_index *ix, const char *source);

#endif
