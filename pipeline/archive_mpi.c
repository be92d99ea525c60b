/* pipeline/archive_mpi.c: the archive of a running campaign (docs/archive.md): segments
 * written collectively with parallel HDF5, renamed into place by rank 0, and the master file of
 * virtual datasets that rank 0 rebuilds from the segments after every commit.
 *
 * Rank 0 holds every committed record in memory (a few hundred bytes per crystal): the
 * campaign-wide duplicate table is recomputed from all of them at each commit, in sample-id
 * order, so it does not depend on scheduling or on interruptions. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "crystal/crystal.h"
#include "pipeline/archive_int.h"

struct pipe_archive {
    char path[4096];
    char dir[4200];  /* path + ".d" */
    char base[4200]; /* the segment directory's name, relative to the master's folder */
    pipe_campaign_id id;
    int rank, size;
    long n_segments;
    long total_atoms;    /* atom rows committed (every rank: global offsets of a new segment) */
    unsigned char *done; /* [id.batches] (rank 0) */
    long n_done;
    pipe_records all;    /* rank 0: every committed record */
    long (*seg_rows)[3]; /* rank 0: rows per group of each segment */
    int64_t *dup;        /* rank 0: duplicate_of of all */
};

static void seg_path(const pipe_archive *a, long k, char *buf, size_t size, int tmp)
{
    snprintf(buf, size, "%s/seg-%06ld.h5%s", a->dir, k, tmp ? ".tmp" : "");
}

/* Refuses to start a file that cannot fit: HDF5 keeps a file whose close failed open, and
 * its shutdown at MPI_Finalize then loops. bytes: the data; metadata gets 256 KiB more. */
static int check_space(const pipe_archive *a, const char *dir, double bytes, xtal_err *err)
{
    struct statvfs vs;
    if (statvfs(dir, &vs) != 0) return XTAL_OK; /* unknown: let the write tell */
    double avail = (double)vs.f_bavail * (double)vs.f_frsize, need = bytes + 262144.0;
    if (avail >= need) return XTAL_OK;
    return xtal_err_set(err, XTAL_EIO,
                        "archive %s: disk full in %s (%.0f KiB free, %.0f KiB needed); the "
                        "committed data is intact",
                        a->path, dir, avail / 1024, need / 1024);
}

static double data_bytes(const long rows[3])
{
    double b = 0;
    for (int i = 0; i < arc_ncolumns; i++)
        b += (double)rows[arc_columns[i].group] * arc_columns[i].width *
             (double)arc_elem_size(arc_columns[i].type);
    return b;
}

/* ------------------------------------------------------------ rank 0: segments */

/* Appends segment r (already read) to the in-memory archive, checking it continues it. */
static int absorb_segment(pipe_archive *a, const pipe_records *r, const char *path, xtal_err *err)
{
    pipe_records *all = &a->all;
    if (r->n > 0 && r->atom_base != all->n_atoms)
        return xtal_err_set(err, XTAL_EPARSE,
                            "archive %s: segment %s does not continue the archive (atom offset "
                            "%lld, expected %ld)",
                            a->path, path, (long long)r->atom_base, all->n_atoms);
    int rc = XTAL_OK;
    for (int g = 0; g < 3 && !rc; g++)
        rc = arc_reserve(all, (arc_group)g, arc_rows(all, (arc_group)g) + arc_rows(r, (arc_group)g),
                         err);
    void *s = realloc(a->seg_rows, (size_t)(a->n_segments + 1) * sizeof *a->seg_rows);
    if (!s) rc = xtal_err_set(err, XTAL_ENOMEM, "out of memory");
    if (rc) return rc;
    a->seg_rows = s;
    for (int i = 0; i < arc_ncolumns; i++) {
        const arc_column *c = &arc_columns[i];
        size_t row = (size_t)c->width * arc_elem_size(c->type);
        memcpy((char *)*arc_column_ptr(all, c) + row * (size_t)arc_rows(all, c->group),
               *arc_column_ptr(r, c), row * (size_t)arc_rows(r, c->group));
    }
    for (long i = 0; i < r->n; i++) all->atom_offset[all->n + i] += all->n_atoms;
    a->seg_rows[a->n_segments][0] = r->n;
    a->seg_rows[a->n_segments][1] = r->n_atoms;
    a->seg_rows[a->n_segments][2] = r->n_batches;
    a->n_segments++;
    all->n += r->n;
    all->n_atoms += r->n_atoms;
    for (long b = 0; b < r->n_batches; b++) {
        uint32_t id = r->done_batch[b];
        if (id >= (uint32_t)a->id.batches || a->done[id])
            return xtal_err_set(err, XTAL_EPARSE,
                                "archive %s: segment %s repeats or exceeds batch %u", a->path, path,
                                id);
        a->done[id] = 1;
        a->n_done++;
    }
    all->n_batches += r->n_batches;
    return XTAL_OK;
}

static int same_campaign(const pipe_archive *a, const pipe_campaign_id *f, const char *what,
                         xtal_err *err)
{
    if (strcmp(f->identity_sha256, a->id.identity_sha256))
        return xtal_err_set(err, XTAL_EINVALID,
                            "archive %s: %s was written with another campaign config; refusing to "
                            "resume (restore the config, or set campaign.output to a new archive)",
                            a->path, what);
    if (strcmp(f->model_sha256, a->id.model_sha256))
        return xtal_err_set(
            err, XTAL_EINVALID,
            "archive %s: %s was written with another model (params sha256 %.12s..., "
            "this model %.12s...); refusing to resume",
            a->path, what, f->model_sha256, a->id.model_sha256);
    return XTAL_OK;
}

static int read_segment(pipe_archive *a, long k, xtal_err *err)
{
    char path[4300];
    seg_path(a, k, path, sizeof path, 0);
    pipe_records r;
    pipe_campaign_id fid;
    int rc = pipe_archive_read(path, &r, &fid, err);
    if (rc) return rc;
    free(fid.config_text);
    rc = same_campaign(a, &fid, path, err);
    if (!rc) rc = absorb_segment(a, &r, path, err);
    pipe_records_free(&r);
    return rc;
}

static int seg_number(const char *name, long *k)
{
    char tail[8];
    return sscanf(name, "seg-%ld.h%7s", k, tail) == 2 && !strcmp(tail, "5") && *k >= 1;
}

/* Reads every committed segment in order; removes temporaries of an interrupted commit. */
static int scan_segments(pipe_archive *a, xtal_err *err)
{
    DIR *d = opendir(a->dir);
    if (!d) return xtal_err_set(err, XTAL_EIO, "archive %s: cannot read %s", a->path, a->dir);
    long max = 0, count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long k;
        size_t n = strlen(e->d_name);
        if (n > 4 && !strcmp(e->d_name + n - 4, ".tmp")) {
            char p[4500];
            snprintf(p, sizeof p, "%s/%s", a->dir, e->d_name);
            unlink(p); /* an epoch that never committed: its batches are redone */
        } else if (seg_number(e->d_name, &k)) {
            count++;
            if (k > max) max = k;
        }
    }
    closedir(d);
    if (count != max)
        return xtal_err_set(err, XTAL_EPARSE,
                            "archive %s: segments 1..%ld expected in %s, found %ld: a segment "
                            "file was removed",
                            a->path, max, a->dir, count);
    int rc = XTAL_OK;
    for (long k = 1; k <= max && !rc; k++) rc = read_segment(a, k, err);
    return rc;
}

/* ------------------------------------------------------------ rank 0: the master */

/* One virtual dataset over the segments for column c. */
static int write_virtual(hid_t f, const pipe_archive *a, const arc_column *c)
{
    hsize_t dims[3], start[3] = {0, 0, 0}, count[3];
    int nd = arc_dims(c, (hsize_t)arc_rows(&a->all, c->group), dims);
    hid_t vs = H5Screate_simple(nd, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    char name[96], src[4400];
    snprintf(name, sizeof name, "%s/%s", arc_group_names[c->group], c->name);
    int bad = 0;
    for (long k = 0; k < a->n_segments && !bad; k++) {
        long rows = a->seg_rows[k][c->group];
        if (rows > 0) {
            arc_dims(c, (hsize_t)rows, count);
            H5Sselect_hyperslab(vs, H5S_SELECT_SET, start, NULL, count, NULL);
            hid_t ss = H5Screate_simple(nd, count, NULL);
            snprintf(src, sizeof src, "%s/seg-%06ld.h5", a->base, k + 1);
            bad = H5Pset_virtual(dcpl, vs, src, name, ss) < 0;
            H5Sclose(ss);
        }
        start[0] += (hsize_t)rows;
    }
    H5Sselect_all(vs);
    hid_t ft = arc_h5_type(c->type, 1);
    hid_t ds = bad ? -1 : H5Dcreate2(f, name, ft, vs, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0 || xtal_h5_attr_put_string(ds, "units", c->units)) bad = 1;
    if (ds >= 0) H5Dclose(ds);
    arc_h5_type_close(c->type, ft);
    H5Pclose(dcpl);
    H5Sclose(vs);
    return bad;
}

static int rebuild_master(pipe_archive *a, xtal_err *err)
{
    pipe_records *all = &a->all;
    int64_t *dup = realloc(a->dup, (size_t)(all->n ? all->n : 1) * sizeof *dup);
    if (!dup) return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
    a->dup = dup;
    int rc = pipe_dedup_records(all, dup, err);
    if (!rc)
        rc = check_space(a, a->dir, 8.0 * (double)all->n + 4096.0 * (double)a->n_segments, err);
    if (rc) return rc;
    int64_t counts[PIPE_NCOUNTS];
    long ndup;
    pipe_archive_counts(a, counts, &ndup);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", a->path);
    xtal_h5_quiet q = xtal_h5_quiet_begin();
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    int bad = f < 0;
    for (int g = 0; g < 3 && !bad; g++) {
        hid_t grp = H5Gcreate2(f, arc_group_names[g], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        bad = grp < 0;
        if (!bad) H5Gclose(grp);
    }
    for (int i = 0; i < arc_ncolumns && !bad; i++) bad = write_virtual(f, a, &arc_columns[i]);
    if (!bad) bad = arc_write_duplicates(f, dup, all->n);
    if (!bad) bad = arc_write_campaign(f, &a->id, counts, ndup, a->n_segments);
    if (f >= 0 && H5Fclose(f) < 0) bad = 1;
    xtal_h5_quiet_end(q);
    if (bad) {
        unlink(tmp);
        return xtal_err_set(err, XTAL_EIO, "archive %s: cannot write the master file (disk full?)",
                            a->path);
    }
    return arc_rename_into_place(tmp, a->path, err);
}

void pipe_archive_counts(const pipe_archive *a, int64_t counts[PIPE_NCOUNTS], long *duplicates)
{
    memset(counts, 0, PIPE_NCOUNTS * sizeof *counts);
    arc_sum_counts(&a->all, counts);
    long n = 0;
    for (long i = 0; a->dup && i < a->all.n; i++) n += a->dup[i] >= 0;
    *duplicates = n;
}

/* ------------------------------------------------------------------ collective */

/* Rank 0's status to every rank (with its message on rank 0 only). */
static int agree(int rc, int rank, xtal_err *err, const char *what)
{
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rc && rank != 0) xtal_err_set(err, rc, "rank 0 failed to %s", what);
    return rc;
}

static int open_rank0(pipe_archive *a, xtal_err *err)
{
    struct stat st;
    if (stat(a->dir, &st) != 0) {
        if (access(a->path, F_OK) == 0)
            return xtal_err_set(err, XTAL_EINVALID,
                                "archive %s exists but %s does not: not a campaign archive of this "
                                "druse (a merged archive cannot be resumed)",
                                a->path, a->dir);
        if (mkdir(a->dir, 0777) != 0)
            return xtal_err_set(err, XTAL_EIO, "archive %s: cannot create %s: %s", a->path, a->dir,
                                strerror(errno));
    }
    if (!(a->done = calloc((size_t)a->id.batches, 1)))
        return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
    int rc = scan_segments(a, err);
    if (!rc) rc = rebuild_master(a, err);
    a->total_atoms = a->all.n_atoms;
    return rc;
}

int pipe_archive_open(const char *path, const pipe_campaign_id *id, pipe_archive **out,
                      xtal_err *err)
{
    pipe_archive *a = calloc(1, sizeof *a);
    if (!a) return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
    MPI_Comm_rank(MPI_COMM_WORLD, &a->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &a->size);
    snprintf(a->path, sizeof a->path, "%s", path);
    snprintf(a->dir, sizeof a->dir, "%s.d", path);
    const char *slash = strrchr(path, '/');
    snprintf(a->base, sizeof a->base, "%s.d", slash ? slash + 1 : path);
    a->id = *id;
    int rc = a->rank == 0 ? open_rank0(a, err) : XTAL_OK;
    rc = agree(rc, a->rank, err, "open the archive");
    long state[2] = {a->n_segments, a->total_atoms};
    MPI_Bcast(state, 2, MPI_LONG, 0, MPI_COMM_WORLD);
    a->n_segments = state[0];
    a->total_atoms = state[1];
    if (rc) {
        pipe_archive_close(a);
        return rc;
    }
    *out = a;
    return XTAL_OK;
}

int pipe_archive_batch_done(const pipe_archive *a, long batch)
{
    return a->done && batch >= 0 && batch < a->id.batches && a->done[batch];
}

long pipe_archive_batches_done(const pipe_archive *a)
{
    return a->n_done;
}

/* Forces the renamed segment to disk before the master points at it. */
static void sync_file(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* The collective write of one segment under its temporary name. Returns 0 on every rank when
 * every rank succeeded. */
static int write_segment(pipe_archive *a, pipe_records *mine, const char *tmp, const long first[3],
                         const long total[3])
{
    for (long i = 0; i < mine->n; i++) mine->atom_offset[i] += a->total_atoms + first[1];
    xtal_h5_quiet q = xtal_h5_quiet_begin();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_mpio(fapl, MPI_COMM_WORLD, MPI_INFO_NULL);
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    int bad = f < 0;
    if (!bad) bad = arc_write_columns(f, mine, first, total, dxpl);
    if (!bad) bad = arc_write_campaign(f, &a->id, NULL, 0, 0);
    if (f >= 0 && H5Fclose(f) < 0) bad = 1;
    H5Pclose(dxpl);
    H5Pclose(fapl);
    xtal_h5_quiet_end(q);
    for (long i = 0; i < mine->n; i++) mine->atom_offset[i] -= a->total_atoms + first[1];
    int any = 0;
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
    return any;
}

/* Rank 0, after a segment is written: rename it into place, absorb it, rebuild the master. */
static int publish_segment(pipe_archive *a, const char *tmp, long k, xtal_err *err)
{
    char path[4300];
    seg_path(a, k, path, sizeof path, 0);
    sync_file(tmp);
    int rc = arc_rename_into_place(tmp, path, err);
    if (!rc) rc = read_segment(a, k, err);
    if (!rc) rc = rebuild_master(a, err);
    return rc;
}

int pipe_archive_commit(pipe_archive *a, pipe_records *mine, xtal_err *err)
{
    long local[3] = {mine->n, mine->n_atoms, mine->n_batches};
    long *rows = malloc((size_t)a->size * 3 * sizeof *rows);
    if (!rows) return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
    MPI_Allgather(local, 3, MPI_LONG, rows, 3, MPI_LONG, MPI_COMM_WORLD);
    long first[3] = {0, 0, 0}, total[3] = {0, 0, 0};
    for (int r = 0; r < a->size; r++)
        for (int g = 0; g < 3; g++) {
            if (r < a->rank) first[g] += rows[3 * r + g];
            total[g] += rows[3 * r + g];
        }
    free(rows);
    if (total[0] == 0 && total[2] == 0) return XTAL_OK; /* nothing happened this epoch */
    long k = a->n_segments + 1;
    char tmp[4300];
    seg_path(a, k, tmp, sizeof tmp, 1);
    int rc = a->rank == 0 ? check_space(a, a->dir, data_bytes(total), err) : XTAL_OK;
    if ((rc = agree(rc, a->rank, err, "find room for the segment"))) return rc;
    if (write_segment(a, mine, tmp, first, total)) {
        if (a->rank == 0) unlink(tmp);
        rc = xtal_err_set(err, XTAL_EIO,
                          "archive %s: cannot write segment %s (disk full or not writable); the "
                          "committed data is intact",
                          a->path, tmp);
        MPI_Barrier(MPI_COMM_WORLD);
        return rc;
    }
    if (a->rank == 0) rc = publish_segment(a, tmp, k, err);
    rc = agree(rc, a->rank, err, "publish the segment");
    if (!rc) {
        a->n_segments = k;
        a->total_atoms += total[1];
    }
    return rc;
}

void pipe_archive_close(pipe_archive *a)
{
    if (!a) return;
    pipe_records_free(&a->all);
    free(a->done);
    free(a->seg_rows);
    free(a->dup);
    free(a);
}
