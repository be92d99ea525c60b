/* Private helpers of the structure file readers and writers (crystal/cif.c, poscar.c,
 * extxyz.c, io.c), implemented in crystal/io.c. Not part of the public API of crystal/. */
#ifndef DRUSE_CRYSTAL_IO_UTIL_H
#define DRUSE_CRYSTAL_IO_UTIL_H

#include <stddef.h>
#include <stdio.h>

#include "crystal/crystal.h"

/* Largest structure file we read into memory: far above XTAL_MAX_ATOMS atoms of any text
 * format, far below what would hurt a node. */
#define XTAL_IO_MAX_FILE_BYTES ((size_t)1 << 30)

/* Reads a whole file into a NUL-terminated buffer (*text, caller frees) of *len bytes.
 * Refuses directories, files over XTAL_IO_MAX_FILE_BYTES and binary files (a NUL byte), with
 * messages that name path. */
int xtal_io_read_text(const char *path, char **text, size_t *len, xtal_err *err);

/* The last component of path, without a trailing extension from exts (a NULL-terminated list,
 * matched case-insensitively, e.g. {".cif", NULL}), into buf. */
void xtal_io_basename(const char *path, const char *const *exts, char *buf, size_t size);

/* True when name ends with suffix, ignoring case. */
int xtal_io_ends_with(const char *name, const char *suffix);

/* Finishes a file written through fp: flushes, closes, and turns any write error into
 * XTAL_EIO naming path. fp is closed in every case. */
int xtal_io_close_written(FILE *fp, const char *path, xtal_err *err);

#endif
