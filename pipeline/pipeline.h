/* pipeline: the druse command and, later, the MPI campaign and its HDF5 archive.
 *
 * The only module that prints to the user and decides exit codes: the modules below return
 * errors (xtal_err and friends), and the commands here turn them into messages.
 * Prefix: pipe_.
 */
#ifndef DRUSE_PIPELINE_H
#define DRUSE_PIPELINE_H

#include <stdio.h>

#include "crystal/crystal.h"

/* Exit codes of the druse command. */
enum {
    PIPE_EXIT_OK = 0,
    PIPE_EXIT_FAILURE = 1, /* the work failed: bad input file, unreadable data, ... */
    PIPE_EXIT_USAGE = 2    /* bad command line */
};

/* One subcommand: `druse NAME ...`. run gets argv with argv[0] == NAME. */
typedef struct {
    const char *name;
    const char *summary; /* one line for `druse --help` */
    int (*run)(int argc, char **argv);
} pipe_command;

/* The commands that exist; the table lives in pipeline/commands.c. */
extern const pipe_command pipe_commands[];
extern const int pipe_ncommands;

int pipe_cmd_inspect(int argc, char **argv);
int pipe_cmd_config(int argc, char **argv);
int pipe_cmd_elements(int argc, char **argv);

/* `druse --version`: our version and the run-time versions of spglib, HDF5, OpenBLAS and
 * Open MPI. */
void pipe_print_version(FILE *out);

/* Prints "druse NAME: message" to stderr (the house style for errors). */
void pipe_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True when argv[i] is -h or --help. */
int pipe_is_help(const char *arg);

/* JSON helpers for --json output: a string with escaping, a double (null when not finite). */
void pipe_json_string(FILE *out, const char *s);
void pipe_json_double(FILE *out, double x);

/* ---------------------------------------------------------------- configs */

/* Campaign configuration (configs/example.yaml documents every key, default and unit). */
typedef struct pipe_config pipe_config;

/* Loads and validates a YAML config. Errors name the file, line and key. */
int pipe_config_load(const char *path, pipe_config **out, xtal_err *err);
void pipe_config_free(pipe_config *cfg);

#endif
