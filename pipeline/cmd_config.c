/* druse config: checks a campaign config and prints it with the defaults filled in. */
#include <stdio.h>
#include <string.h>

#include "pipeline/pipeline.h"

static void usage(FILE *out)
{
    fputs("usage: druse config check FILE\n"
          "\n"
          "Validates a campaign config (YAML) and prints the effective config, every default\n"
          "filled in, as YAML that loads back (exit 0). On an error it prints the file, line\n"
          "and key to stderr (\"druse config: FILE:LINE: key 'filters.symprec_A': ...\") and\n"
          "exits 1.\n"
          "\n"
          "It checks the config, not the files it names: the model, the output archive and\n"
          "the novelty reference need not exist yet.\n"
          "\n"
          "Every key with its default and unit: configs/example.yaml; the schema and the\n"
          "errors: docs/configs.md.\n",
          out);
}

static int check(const char *path)
{
    pipe_config *cfg;
    xtal_err err;
    if (pipe_config_load(path, &cfg, &err) < 0) {
        pipe_error("config", "%s", err.msg);
        return PIPE_EXIT_FAILURE;
    }
    printf("# %s: valid; the effective config, defaults filled in:\n", path);
    pipe_config_print(stdout, cfg);
    pipe_config_free(cfg);
    if (fflush(stdout) != 0) {
        pipe_error("config", "cannot write the config to standard output");
        return PIPE_EXIT_FAILURE;
    }
    return PIPE_EXIT_OK;
}

int pipe_cmd_config(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (pipe_is_help(argv[i])) {
            usage(stdout);
            return PIPE_EXIT_OK;
        }
    if (argc != 3 || strcmp(argv[1], "check") != 0) {
        usage(stderr);
        return PIPE_EXIT_USAGE;
    }
    return check(argv[2]);
}
