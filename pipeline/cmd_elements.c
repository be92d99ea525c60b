/* `druse elements [SYMBOL...] [--json]`: the element table druse uses, with its sources. */
#include <getopt.h>
#include <stdio.h>

#include "pipeline/pipeline.h"

static const char elements_help[] =
    "usage: druse elements [SYMBOL...] [--json]\n"
    "\n"
    "Prints druse's element table (all of Z = 1..103, or the given symbols): mass (amu),\n"
    "covalent radius (Angstrom), Pauling electronegativity, SMACT's default oxidation states,\n"
    "whether SMACT's alloy rule counts it as a metal, and UFF Lennard-Jones parameters\n"
    "(x1 = r_min in Angstrom, D1 in eV). Sources: crystal/elements_table.c.\n";

static void print_json(const xtal_element *e)
{
    printf("{\"Z\": %d, \"symbol\": \"%s\", \"mass\": ", e->Z, e->symbol);
    pipe_json_double(stdout, e->mass_amu);
    fputs(", \"covalent_radius\": ", stdout);
    pipe_json_double(stdout, e->covalent_radius);
    fputs(", \"electronegativity\": ", stdout);
    pipe_json_double(stdout, e->electronegativity);
    fputs(", \"oxidation_states\": [", stdout);
    for (int i = 0; i < e->n_oxidation_states; i++)
        printf(i ? ", %d" : "%d", e->oxidation_states[i]);
    printf("], \"metal\": %s, \"uff_x1\": ", e->is_metal ? "true" : "false");
    pipe_json_double(stdout, e->uff_x1);
    fputs(", \"uff_D1\": ", stdout);
    pipe_json_double(stdout, e->uff_D1);
    fputs("}\n", stdout);
}

static void print_text(const xtal_element *e)
{
    printf("%3d %-2s %11.6f %5.2f %5.2f %-5s %7.3f %9.6f  ", e->Z, e->symbol, e->mass_amu,
           e->covalent_radius, e->electronegativity, e->is_metal ? "metal" : "-", e->uff_x1,
           e->uff_D1);
    for (int i = 0; i < e->n_oxidation_states; i++) printf(" %+d", e->oxidation_states[i]);
    putchar('\n');
}

int pipe_cmd_elements(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int json = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == 'j')
            json = 1;
        else if (opt == 'h')
            return fputs(elements_help, stdout), PIPE_EXIT_OK;
        else
            return fputs(elements_help, stderr), PIPE_EXIT_USAGE;
    }
    void (*print)(const xtal_element *) = json ? print_json : print_text;
    if (!json)
        printf("#  Z sym   mass/amu r_cov  X_P   alloy  x1/A     D1/eV    oxidation states\n");
    if (optind == argc) {
        for (int z = 1; z <= XTAL_NUM_ELEMENTS; z++) print(xtal_element_by_Z(z));
        return PIPE_EXIT_OK;
    }
    for (int i = optind; i < argc; i++) {
        int z = xtal_element_from_symbol(argv[i]);
        if (!z) {
            pipe_error("elements", "unknown element symbol '%s'", argv[i]);
            return PIPE_EXIT_FAILURE;
        }
        print(xtal_element_by_Z(z));
    }
    return PIPE_EXIT_OK;
}
