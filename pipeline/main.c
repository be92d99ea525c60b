/* druse: entry point. Dispatches `druse COMMAND ...` to the command table. */
#include <hdf5.h>
#include <stdio.h>
#include <string.h>

#include "pipeline/pipeline.h"

/* libcodcif's messages refer to the program by this global, which the program must define. */
char *progname = "druse";

static void usage(FILE *out)
{
    fprintf(out, "usage: druse <command> [options]   (druse <command> --help for each)\n\n"
                 "commands:\n");
    for (int i = 0; i < pipe_ncommands; i++)
        fprintf(out, "  %-10s %s\n", pipe_commands[i].name, pipe_commands[i].summary);
    fprintf(out, "\n  --version  versions of druse and of the libraries found at run time\n"
                 "  --help     this message\n");
}

int main(int argc, char **argv)
{
    /* A file whose close failed (disk full) stays open inside HDF5, and its at-exit shutdown
     * then loops and prints noise after our clear message; the data is handled by then. */
    H5dont_atexit();
    if (argc < 2) {
        usage(stderr);
        return PIPE_EXIT_USAGE;
    }
    if (pipe_is_help(argv[1])) {
        usage(stdout);
        return PIPE_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        pipe_print_version(stdout);
        return PIPE_EXIT_OK;
    }
    for (int i = 0; i < pipe_ncommands; i++)
        if (strcmp(argv[1], pipe_commands[i].name) == 0)
            return pipe_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "druse: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return PIPE_EXIT_USAGE;
}
