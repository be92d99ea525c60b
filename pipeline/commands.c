/* The table of druse commands: one line per command that exists. */
#include "pipeline/pipeline.h"

const pipe_command pipe_commands[] = {
    {"inspect", "summarize structures: CIF, POSCAR, dataset CSV, or a directory", pipe_cmd_inspect},
    {"convert", "convert structures to CIF, POSCAR or extended XYZ", pipe_cmd_convert},
    {"elements", "the element table: masses, radii, oxidation states, UFF parameters",
     pipe_cmd_elements},
    {"config", "check a campaign config (druse config check FILE)", pipe_cmd_config},
    {"filter", "screening filters: distance, charge neutrality, symmetry (spglib)",
     pipe_cmd_filter},
    {"dedup", "unique and novel structures (StructureMatcher semantics)", pipe_cmd_dedup},
    {"relax", "relax structures: cheap potential + FIRE on positions and cell", pipe_cmd_relax},
    {"sample", "sample structures from a generator model (diffusion)", pipe_cmd_sample},
    {"train", "train the generator from a YAML training config", pipe_cmd_train},
    {"screen", "run a screening campaign (under mpirun): sample, filter, relax, archive",
     pipe_cmd_screen},
    {"merge", "join the shard archives of one campaign (a job array)", pipe_cmd_merge},
    {"export", "write archived structures as CIF, POSCAR or extended XYZ", pipe_cmd_export},
    {"eval", "benchmark metrics of generated structures (CDVAE/DiffCSP protocol)", pipe_cmd_eval},
};
const int pipe_ncommands = (int)(sizeof pipe_commands / sizeof pipe_commands[0]);
