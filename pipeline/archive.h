/* pipeline/archive.h: the campaign archive (docs/archive.md). Internal to pipeline/: the
 * commands screen, merge and export use it; pipeline/pipeline.h stays the module's public
 * header for the command table and configs.
 *
 * An archive ARCHIVE is a master file ARCHIVE plus a directory ARCHIVE.d/ of immutable segment
 * files seg-NNNNNN.h5, one per commit epoch. A segment is written collectively with parallel
 * HDF5 under a temporary name and renamed into place by rank 0 after it is closed, so a
 * kill -9 at any moment leaves every committed segment intact and no half-written one under a
 * final name. The master (virtual datasets over the segments, the campaign-wide duplicate
 * table and the funnel) is derived data: rank 0 rebuilds it from the segments at every commit
 * and on resume. `druse merge` writes the same layout with real datasets into one file. */
#ifndef DRUSE_PIPELINE_ARCHIVE_H
#define DRUSE_PIPELINE_ARCHIVE_H

#include <stdint.h>

#include "crystal/crystal.h"
#include "filters/filters.h"

/* The funnel: per batch, samples counted at the first stage that rejected them. */
enum {
    PIPE_COUNT_SAMPLED = 0,  /* samples drawn */
    PIPE_COUNT_INVALID,      /* degenerate sampler output, unusable cell, volume < 0.1 A^3 */
    PIPE_COUNT_TOO_CLOSE,    /* distance filter */
    PIPE_COUNT_NOT_NEUTRAL,  /* SMACT charge neutrality (incl. too many combinations) */
    PIPE_COUNT_SYMMETRY,     /* spglib found no space group */
    PIPE_COUNT_RELAX_FAILED, /* relaxation diverged, exploded, collapsed or broke a filter */
    PIPE_COUNT_PASSED,       /* records written (duplicates are flagged campaign-wide later) */
    PIPE_NCOUNTS
};
const char *pipe_count_name(int k); /* "sampled", "invalid", "too_close", ... */

#define PIPE_FORMULA_LEN 64

/* Records of survivors, struct of arrays, in the archive's column layout. */
typedef struct {
    long n, cap;             /* crystals */
    long n_atoms, cap_atoms; /* atom rows */
    long n_batches, cap_batches;
    int64_t atom_base; /* pipe_archive_read of a segment: its first global atom row (the
                          offsets below are made local to the set) */
    /* crystals/ */
    uint64_t *sample_id; /* batch_id * batch_size + index in batch */
    uint32_t *batch_id;
    int32_t *natoms;
    int64_t *atom_offset; /* first atom row (global in an archive; local in a buffer) */
    double *lattice;      /* [n x 9] relaxed, rows are vectors, Angstrom */
    double *lattice_unrelaxed;
    int32_t *spacegroup; /* relaxed, symprec of the config */
    int32_t *spacegroup_unrelaxed;
    double *energy_per_atom; /* eV, relaxed */
    double *max_force;       /* eV/Angstrom */
    int32_t *relax_steps;
    int8_t *converged;
    double *min_distance;              /* Angstrom, relaxed */
    int8_t *novel;                     /* 1 novel, 0 matches the reference, -1 no reference */
    char (*formula)[PIPE_FORMULA_LEN]; /* reduced formula */
    char (*fingerprint)[FLT_FINGERPRINT_LEN]; /* filters' bucket key */
    /* atoms/ */
    int32_t *Z;
    double *frac;           /* [n_atoms x 3] relaxed */
    double *frac_unrelaxed; /* [n_atoms x 3] */
    /* batches/ */
    uint32_t *done_batch; /* [n_batches] */
    int64_t *counts;      /* [n_batches x PIPE_NCOUNTS] the funnel per batch */
} pipe_records;

void pipe_records_free(pipe_records *r);
void pipe_records_clear(pipe_records *r); /* keeps the buffers */
/* Appends one crystal row with its atoms (scalar fields zeroed; fill them at index r->n-1). */
int pipe_records_add(pipe_records *r, const xtal_crystal *relaxed, const xtal_crystal *unrelaxed,
                     xtal_err *err);
int pipe_records_add_batch(pipe_records *r, uint32_t batch_id, const int64_t counts[PIPE_NCOUNTS],
                           xtal_err *err);
/* Appends crystal i of src (its row and atoms) to dst. */
int pipe_records_append(pipe_records *dst, const pipe_records *src, long i, xtal_err *err);
/* Crystal i as an xtal_crystal (relaxed or unrelaxed coordinates); free with xtal_crystal_free. */
int pipe_records_crystal(const pipe_records *r, long i, int unrelaxed, xtal_crystal *out,
                         xtal_err *err);

/* What identifies a campaign: resuming or merging refuses anything else. */
typedef struct {
    char name[256];
    char identity_sha256[65]; /* of the effective config without shard and output */
    char model_sha256[65];    /* the model's params_sha256 */
    long batches, batch_size; /* the whole campaign's plan */
    char *config_text;        /* the YAML as given (owned by the caller) */
    char *model_path;         /* as given in the config (NULL: model_stored) */
    char model_stored[1024];  /* pipe_archive_read: the model path the archive records */
} pipe_campaign_id;

/* Reads a whole archive (master, or a merged file) or one segment, serially: every record,
 * the done batches with their funnel, and the campaign identity (config_text malloc'ed into
 * id->config_text, or left NULL when id is NULL). */
int pipe_archive_read(const char *path, pipe_records *out, pipe_campaign_id *id, xtal_err *err);

/* crystals/duplicate_of of an archive of n crystals. */
int pipe_archive_read_duplicates(const char *path, long n, int64_t *duplicate_of, xtal_err *err);

/* duplicate_of[i] = sample id of the first (lowest sample id) record that record i matches
 * (StructureMatcher defaults), or -1 when it is the first of its kind. Order-independent: the
 * same set gives the same answer however it was produced. */
int pipe_dedup_records(const pipe_records *r, int64_t *duplicate_of, xtal_err *err);

/* Writes r as one complete archive file (no segments): what merge produces. */
int pipe_archive_write_file(const char *path, const pipe_records *r, const pipe_campaign_id *id,
                            xtal_err *err);

/* A campaign archive open for appending, under MPI_COMM_WORLD. */
typedef struct pipe_archive pipe_archive;

/* Collective. Opens or creates the archive at path for campaign id: rank 0 reads the
 * committed segments (a resume) and refuses one that belongs to another campaign (config or
 * model). Every rank learns which batches are done. */
int pipe_archive_open(const char *path, const pipe_campaign_id *id, pipe_archive **out,
                      xtal_err *err);
int pipe_archive_batch_done(const pipe_archive *a, long batch);
long pipe_archive_batches_done(const pipe_archive *a);
/* Campaign totals of the funnel so far (rank 0), and duplicates among the records. */
void pipe_archive_counts(const pipe_archive *a, int64_t counts[PIPE_NCOUNTS], long *duplicates);
/* Collective: appends every rank's records as one new segment, then rank 0 rebuilds the
 * master. On error nothing of this epoch is visible and the committed data is intact. */
int pipe_archive_commit(pipe_archive *a, pipe_records *mine, xtal_err *err); /* mine is
                                                                              restored */
void pipe_archive_close(pipe_archive *a);

#endif
