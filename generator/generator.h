/* generator: the crystal diffusion model of druse (issue 5).
 *
 * This header holds the denoiser network (a CSPNet-like periodic message-passing network, see
 * docs/generator.md for the exact equations), its loss, deterministic initialization and HDF5
 * model files. The diffusion processes, the sampler and training build on it.
 *
 * Conventions, as in crystal/ (spglib's):
 *   - lattice rows are the lattice vectors a, b, c, in Angstrom;
 *   - fractional coordinates are in units of those vectors (any real value: the network is
 *     periodic in them, so they need not be wrapped);
 *   - every flat array is row-major float32 (C order), shapes are given as [rows x cols];
 *   - a batch packs crystals of different sizes CSR-style: crystal b owns atoms
 *     offsets[b] .. offsets[b+1]-1;
 *   - functions that can fail return an xtal_status and fill an xtal_err; they never print and
 *     never exit.
 *
 * Threads: the GEMMs go through OpenBLAS; druse runs it single-threaded (OPENBLAS_NUM_THREADS=1
 * or openblas_set_num_threads(1) in the caller), one rank per core. A gen_model may be shared
 * read-only by threads that each own a gen_workspace; gen_backward writes model->grads.
 */
#ifndef DRUSE_GENERATOR_H
#define DRUSE_GENERATOR_H

#include <stddef.h>
#include <stdint.h>

#include "crystal/crystal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------- hyperparameters */

/* Atom-type vocabulary: type 0 is the MASK token of the absorbing-state diffusion; type Z
 * (1 .. n_types-1) is the element with atomic number Z. The type head predicts the n_types-1
 * elements only (logit k is element Z = k+1): the mask is never a prediction. */
#define GEN_MASK_TYPE     0
#define GEN_DEFAULT_TYPES 101 /* MASK + Z = 1..100 */

typedef struct {
    int hidden;   /* d: width of node states and of every MLP */
    int layers;   /* message-passing layers */
    int n_freq;   /* K: Fourier frequencies 1..K per fractional axis (6K edge features) */
    int time_dim; /* T (even): sinusoidal time embedding size */
    int n_types;  /* vocabulary size including the mask token (GEN_DEFAULT_TYPES) */
} gen_hparams;

/* The default model size (d 128, 4 layers, K 32, T 64, 101 types). */
gen_hparams gen_hparams_default(void);
/* Checks ranges (d 1..4096, layers 1..64, K 1..512, T even 2..4096, n_types 2..200). */
int gen_hparams_check(const gen_hparams *hp, xtal_err *err);

/* --------------------------------------------------------------- model */

#define GEN_NAME_MAX 64

/* One tensor of the parameter block, PyTorch's naming and layout: a Linear weight is
 * [out x in], its bias [out]. */
typedef struct {
    char name[GEN_NAME_MAX]; /* e.g. "layers.0.edge_mlp.0.weight" */
    int ndim;                /* 1 or 2 */
    int shape[2];            /* shape[1] = 1 when ndim == 1 */
    size_t offset;           /* first element in the parameter block */
    size_t size;             /* elements */
} gen_tensor;

typedef struct {
    gen_hparams hp;
    size_t n_params; /* floats in the block */
    float *params;   /* [n_params] all parameters, contiguous, in the order of tensors */
    float *grads;    /* [n_params] gradients, same layout (accumulated by gen_backward) */
    int n_tensors;
    gen_tensor *tensors;
} gen_model;

/* Allocates a model for hp, parameters initialized from seed (gen_model_init_params). */
int gen_model_create(gen_model *m, const gen_hparams *hp, uint64_t seed, xtal_err *err);
void gen_model_free(gen_model *m);
/* Deterministic initialization, independent of platform and thread count: element k of the
 * parameter block gets u = gen_uniform(seed, k) in [-1, 1); Linear weights and biases are
 * u / sqrt(fan_in) (PyTorch's default range), the type embedding u, layer norms weight 1 and
 * bias 0. */
void gen_model_init_params(gen_model *m, uint64_t seed);
/* Tensor by name, or NULL. */
const gen_tensor *gen_model_tensor(const gen_model *m, const char *name);
void gen_zero_grad(gen_model *m);

/* Counter-based random numbers (SplitMix64's finalizer over seed and counter): the value for
 * (seed, counter) never depends on the order of calls. */
uint64_t gen_hash64(uint64_t seed, uint64_t counter);
/* Uniform in [-1, 1), 24 random bits. */
float gen_uniform(uint64_t seed, uint64_t counter);

/* --------------------------------------------------------------- batch */

typedef struct {
    int n_crystals;       /* B */
    int n_atoms;          /* N = offsets[B] */
    const int *offsets;   /* [B+1] CSR atom offsets, offsets[0] = 0, non-decreasing */
    const int *types;     /* [N] 0 (GEN_MASK_TYPE) or Z in 1 .. n_types-1 */
    const float *frac;    /* [N x 3] fractional coordinates */
    const float *lattice; /* [B x 9] per crystal a 3x3 matrix, rows are vectors, Angstrom */
    const float *t;       /* [B] diffusion time in [0, 1] */
} gen_batch;

/* Checks shapes and ranges of a batch against the model (every crystal has >= 1 atom). */
int gen_batch_check(const gen_model *m, const gen_batch *b, xtal_err *err);

/* Training targets and loss weights. The loss is
 *   w_coord   * sum_i,c (coord_i,c - target_i,c)^2 / (3N)
 * + w_lattice * sum_b,r,c (lattice_b,rc - target_b,rc)^2 / (9B)
 * + w_type    * mean over masked atoms (batch type == GEN_MASK_TYPE) of the cross-entropy of
 *               the type logits against the true element (0 when no atom is masked). */
typedef struct {
    const float *coord;   /* [N x 3] target of the coordinate score (fractional units) */
    const float *lattice; /* [B x 9] target of the lattice output (Angstrom) */
    const int *types;     /* [N] true atomic numbers (1 .. n_types-1); read at masked atoms */
    float w_coord, w_lattice, w_type;
} gen_targets;

/* ----------------------------------------------------------- workspace */

/* Activations and output buffers for one batch; grows on demand, reusable across batches. */
typedef struct gen_workspace gen_workspace;

gen_workspace *gen_workspace_new(void);
void gen_workspace_free(gen_workspace *w);

/* Network outputs of the last gen_forward, owned by the workspace. */
typedef struct {
    const float *coord;   /* [N x 3] coordinate score per atom (fractional units) */
    const float *lattice; /* [B x 9] lattice output M_b L_b (Angstrom), rows as the lattice */
    const float *logits;  /* [N x (n_types-1)] type logits, column k = element Z = k+1 */
} gen_outputs;

/* Forward pass. keep_activations = 1 keeps what gen_backward needs (edge activations of all
 * layers); 0 reuses one layer's edge buffers (sampling: about layers-times less memory). */
int gen_forward(const gen_model *m, gen_workspace *w, const gen_batch *b, int keep_activations,
                gen_outputs *out, xtal_err *err);
/* Loss of the last forward (which must have kept activations for a following backward) and
 * its gradient with respect to the outputs, stored in the workspace. */
int gen_loss(const gen_model *m, gen_workspace *w, const gen_batch *b, const gen_targets *tg,
             double *loss, xtal_err *err);
/* Backward pass of the last forward + loss: adds d loss / d params to m->grads (call
 * gen_zero_grad first for a fresh gradient). */
int gen_backward(gen_model *m, gen_workspace *w, const gen_batch *b, xtal_err *err);

/* ----------------------------------------------------------- model files */

/* HDF5 model file (format "druse-generator" version 1, docs/generator.md): hyperparameters as
 * root attributes, one float32 dataset per tensor under /params/<name> with its PyTorch shape,
 * and "params_sha256", the SHA-256 of the parameter block (tensors in table order, little-
 * endian float32), checked on load. Written with serial HDF5 to a temporary name beside path
 * and renamed, so a crash never leaves a half-written model under the final name. */
int gen_model_save(const gen_model *m, const char *path, xtal_err *err);
/* Loads a model file into m (allocated here; free with gen_model_free). A missing, truncated,
 * corrupt or mismatching file is an error whose message names the file. */
int gen_model_load(gen_model *m, const char *path, xtal_err *err);

/* SHA-256 of a byte buffer; hex is 65 bytes (64 digits + NUL). */
void gen_sha256_hex(const void *data, size_t len, char hex[65]);
/* SHA-256 (hex) of the parameter block as stored in files (little-endian float32). */
void gen_params_sha256(const gen_model *m, char hex[65]);

#ifdef __cplusplus
}
#endif
#endif
