/* pipeline/archive_int.h: what pipeline/archive.c shares with pipeline/archive_mpi.c (the
 * column table and the writers). Not for the commands. */
#ifndef DRUSE_PIPELINE_ARCHIVE_INT_H
#define DRUSE_PIPELINE_ARCHIVE_INT_H

#include <hdf5.h>

#include "pipeline/archive.h"

typedef enum { ARC_CRYSTAL = 0, ARC_ATOM = 1, ARC_BATCH = 2 } arc_group;
typedef enum { ARC_U64, ARC_U32, ARC_I32, ARC_I64, ARC_F64, ARC_I8, ARC_STR64, ARC_STRFP } arc_type;

typedef struct {
    arc_group group;
    const char *name;
    arc_type type;
    int width;         /* elements per row */
    const char *units; /* the dataset's "units" attribute */
    size_t offset;     /* of the column pointer in pipe_records */
} arc_column;

extern const arc_column arc_columns[];
extern const int arc_ncolumns;
extern const char *const arc_group_names[3];

size_t arc_elem_size(arc_type t);
hid_t arc_h5_type(arc_type t, int file);
void arc_h5_type_close(arc_type t, hid_t h);
void **arc_column_ptr(const pipe_records *r, const arc_column *c);
long arc_rows(const pipe_records *r, arc_group g);
int arc_dims(const arc_column *c, hsize_t rows, hsize_t dims[3]);
int arc_reserve(pipe_records *r, arc_group g, long need, xtal_err *err);
int arc_write_columns(hid_t f, const pipe_records *r, const long first[3], const long total[3],
                      hid_t dxpl);
int arc_write_campaign(hid_t f, const pipe_campaign_id *id, const int64_t counts[PIPE_NCOUNTS],
                       long duplicates, long n_segments);
int arc_write_duplicates(hid_t f, const int64_t *dup, long n);
int arc_rename_into_place(const char *tmp, const char *path, xtal_err *err);
void arc_sum_counts(const pipe_records *r, int64_t counts[PIPE_NCOUNTS]);

#endif
