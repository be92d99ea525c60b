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
int pipe_cmd_convert(int argc, char **argv);
int pipe_cmd_config(int argc, char **argv);
int pipe_cmd_elements(int argc, char **argv);
int pipe_cmd_filter(int argc, char **argv);
int pipe_cmd_dedup(int argc, char **argv);
int pipe_cmd_relax(int argc, char **argv);
int pipe_cmd_sample(int argc, char **argv);
int pipe_cmd_train(int argc, char **argv);
int pipe_cmd_screen(int argc, char **argv);
int pipe_cmd_merge(int argc, char **argv);
int pipe_cmd_export(int argc, char **argv);
int pipe_cmd_eval(int argc, char **argv);

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

/* Campaign configuration: what `druse screen campaign.yaml` runs. configs/example.yaml
 * documents every key with its default and unit, docs/configs.md the schema and the errors.
 * Loaded with libcyaml; strings are owned by the config, NULL where an optional key is absent.
 * Flags (enabled, uniqueness, ...) are 0 or 1. */

#define PIPE_CONFIG_MAX_NATOMS  200 /* sampling.natoms upper bound */
#define PIPE_CONFIG_MAX_SPECIES 16  /* distinct elements in sampling.composition */

typedef enum { PIPE_DISTANCE_COVALENT = 0, PIPE_DISTANCE_BENCHMARK = 1 } pipe_distance_rule;
/* relax.potential: the names rlx_potential_parse takes (docs/relax.md). */
typedef enum { PIPE_POTENTIAL_MP20 = 0, PIPE_POTENTIAL_UFF_LJ = 1 } pipe_potential;

/* campaign.shard: this job's part of a Slurm job array; takes batches b with
 * b % count == index. */
typedef struct {
    int index; /* 0..count-1 (default 0) */
    int count; /* >= 1, <= batches (default 1) */
} pipe_shard_config;

typedef struct {
    char *name;               /* labels the archive and the logs (required) */
    uint64_t seed;            /* with (batch id, index in batch) it fixes every sample (required) */
    char *model;              /* HDF5 model file (required) */
    char *output;             /* HDF5 archive; resumed when it exists (required) */
    int batches;              /* sampling batches, >= 1 (required) */
    int batch_size;           /* samples per batch, 1..65536 (default 64) */
    double commit_interval_s; /* seconds between commit epochs, > 0 (default 300) */
    pipe_shard_config shard;
} pipe_campaign_config;

typedef struct {
    int steps;               /* reverse diffusion steps, 1..100000 (default 1000) */
    int natoms;              /* atoms per cell: 0 = from the model's histogram (default), else
                                1..PIPE_CONFIG_MAX_NATOMS */
    char *composition;       /* NULL, or a formula every sample keeps ("Fe2O3") */
    char **elements;         /* NULL, or the allowed element symbols (a chemical system) */
    unsigned n_elements;     /* entries in elements */
    double type_temperature; /* softmax temperature of the type logits, (0, 10] (default 1) */
    double noise_scale;      /* factor on the sampler's stochastic term, [0, 2] (default 1) */
    /* Derived on load. */
    int element_Z[XTAL_NUM_ELEMENTS];           /* [n_elements] atomic numbers of elements */
    int n_species;                              /* distinct elements of composition (0: none) */
    int species_Z[PIPE_CONFIG_MAX_SPECIES];     /* [n_species] in formula order */
    int species_count[PIPE_CONFIG_MAX_SPECIES]; /* [n_species] atoms per formula unit */
    int formula_atoms;                          /* atoms per formula unit (0: no composition) */
} pipe_sampling_config;

typedef struct {
    pipe_distance_rule distance_rule; /* covalent (default) or benchmark */
    double distance_scale;            /* covalent: d_ij >= scale * (r_i + r_j), (0, 2] (0.5) */
    double min_distance_A;            /* benchmark: d_ij >= this, Angstrom, (0, 10] (0.5) */
    int charge_neutrality;            /* SMACT rule (default 1) */
    double symprec_A;                 /* spglib symprec, Angstrom, (0, 1] (default 0.1) */
    double angle_tolerance_deg;       /* spglib, degrees, (0, 45] or -1 = spglib's own (5) */
    int uniqueness;                   /* drop duplicates within the campaign (default 1) */
    char *novelty_reference;          /* NULL, or a dataset to mark novelty against */
} pipe_filters_config;

typedef struct {
    int enabled;              /* relax the survivors (default 1) */
    pipe_potential potential; /* mp20 (default) or uff-lj */
    double fmax_eV_A;         /* converged below this max force, eV/Angstrom, (0, 100] (0.05) */
    int max_steps;            /* FIRE steps, 0..100000 (default 500) */
    int fixed_cell;           /* relax positions only (default 0) */
    double max_stress_GPa;    /* converged below this max |stress|, GPa, (0, 100] (0.1) */
} pipe_relax_config;

typedef struct pipe_config {
    pipe_campaign_config campaign;
    pipe_sampling_config sampling;
    pipe_filters_config filters;
    pipe_relax_config relax;
    char *source; /* the file name (or name given to pipe_config_load_string) */
    char *text;   /* the YAML text as read, NUL-terminated, for the archive */
} pipe_config;

/* Loads and validates a YAML config and fills in the defaults. Errors name the file, line and
 * key ("campaign.yaml:17: key 'filters.symprec_A': must be in (0, 1], got 3"); the config
 * files are not opened (model, output, novelty_reference). */
int pipe_config_load(const char *path, pipe_config **out, xtal_err *err);
/* Same from text held in memory (len bytes); name stands for the file in messages. */
int pipe_config_load_string(const char *text, size_t len, const char *name, pipe_config **out,
                            xtal_err *err);
void pipe_config_free(pipe_config *cfg);
/* Writes the effective config (defaults filled in) as YAML that loads back to the same config. */
void pipe_config_print(FILE *out, const pipe_config *cfg);

/* Training config: what `druse train train.yaml` runs (docs/configs.md, "Training configs";
 * configs/train-tiny.yaml, configs/train-mp20.yaml). Same loader and error messages as the
 * campaign config; strings owned by the config, NULL where an optional key is absent. */
typedef struct {
    char *train;   /* dataset CSV (CDVAE layout), required */
    char *val;     /* dataset CSV, required */
    int max_train; /* first N training crystals; 0 = all (default 0) */
    int max_val;   /* validation subset: the first N val crystals (default 256) */
} pipe_train_data_config;

typedef struct {
    int hidden, layers, n_freq, time_dim; /* defaults: gen_hparams_default() */
} pipe_train_model_config;

typedef struct {
    uint64_t seed;              /* model init, shuffling, noise (default 42) */
    int epochs;                 /* passes over the training set, required */
    int batch_size;             /* crystals per global batch (all ranks together, default 64) */
    double lr;                  /* peak learning rate (default 1e-3) */
    int warmup_steps;           /* linear warm-up (default 100) */
    double weight_decay;        /* AdamW decoupled decay (default 0) */
    double grad_clip;           /* global-norm clip, 0 = off (default 1) */
    double ema_decay;           /* 0 = off (default 0) */
    char *checkpoint;           /* checkpoint path; NULL = output + ".ckpt" */
    int checkpoint_every_steps; /* 0 = only at the end (default 500) */
    char *output;               /* the model file, required */
    char *init_from;            /* fine-tuning: start from this model file's weights (NULL =
                                   fresh initialization from seed); ignored on resume */
} pipe_train_train_config;

typedef struct {
    double sigma_min, sigma_max; /* wrapped-normal sigma range (0.005, 0.5) */
    double p_keep_types;         /* share of crystals never masked (0.25) */
} pipe_train_diffusion_config;

typedef struct pipe_train_config {
    pipe_train_data_config data;
    pipe_train_model_config model;
    pipe_train_train_config train;
    pipe_train_diffusion_config diffusion;
    char *source; /* the file name */
    char *text;   /* the YAML text as read, NUL-terminated */
} pipe_train_config;

int pipe_train_config_load(const char *path, pipe_train_config **out, xtal_err *err);
int pipe_train_config_load_string(const char *text, size_t len, const char *name,
                                  pipe_train_config **out, xtal_err *err);
void pipe_train_config_free(pipe_train_config *cfg);

#endif
