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
 * Threads: the forward's GEMMs are druse's own (generator/gemm.h), the backward's go through
 * OpenBLAS; druse runs it single-threaded (OPENBLAS_NUM_THREADS=1
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
    /* Atom-count histogram of the training set: natoms_hist[k] = crystals with k atoms,
     * k = 0 .. natoms_hist_len-1 (index 0 unused); NULL when unknown (an untrained model).
     * Owned; set it with gen_model_set_natoms_hist. The sampler draws N from it. */
    double *natoms_hist;
    int natoms_hist_len;
} gen_model;

/* Allocates a model for hp, parameters initialized from seed (gen_model_init_params). */
int gen_model_create(gen_model *m, const gen_hparams *hp, uint64_t seed, xtal_err *err);
void gen_model_free(gen_model *m);
/* Deterministic initialization, independent of platform and thread count: element k of the
 * parameter block gets u = gen_uniform(seed, k) in [-1, 1); Linear weights and biases are
 * u / sqrt(fan_in) (PyTorch's default range), the type embedding u, layer norms weight 1 and
 * bias 0. */
void gen_model_init_params(gen_model *m, uint64_t seed);
/* Copies hist[0..len) into the model (len 0 clears it). Weights must be finite and >= 0. */
int gen_model_set_natoms_hist(gen_model *m, const double *hist, int len, xtal_err *err);
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
 * layers); 0 reuses one layer's edge buffers (sampling: about layers-times less memory).
 * Its GEMMs are druse's own (generator/gemm.h), on weights packed into the workspace; every
 * output element is one FMA chain in a fixed order, so an atom's (a crystal's) outputs are the
 * same bits whether it is evaluated alone or in a batch with others, with or without kept
 * activations. The packing is redone on every call unless the workspace is bound to m. */
int gen_forward(const gen_model *m, gen_workspace *w, const gen_batch *b, int keep_activations,
                gen_outputs *out, xtal_err *err);
/* Binds w to m for inference: packs m's forward weights once, so that gen_forward(m, w, b, 0,
 * ...) calls skip the packing (for a small crystal it cost as much as the forward's GEMMs). The
 * pack is a copy of m->params: after changing them, bind again or unbind (a bound workspace
 * would otherwise compute with the old weights; it is detected only when m or m->params, the
 * pointers, change). Forwards with kept activations (training) never use the binding. gen_sample
 * binds at its start and unbinds at its end (unless w was bound to m before). Results are
 * bit-identical bound or not. */
int gen_workspace_bind(gen_workspace *w, const gen_model *m, xtal_err *err);
void gen_workspace_unbind(gen_workspace *w);
/* 1 when w is bound to m (and m->params is the block it was packed from). */
int gen_workspace_bound(const gen_workspace *w, const gen_model *m);
/* Loss of the last forward (which must have kept activations for a following backward) and
 * its gradient with respect to the outputs, stored in the workspace. */
int gen_loss(const gen_model *m, gen_workspace *w, const gen_batch *b, const gen_targets *tg,
             double *loss, xtal_err *err);
/* The exp of the network's SiLU (a vectorizable range reduction + polynomial, max relative
 * error 8e-8 on [-87, 88], input clamped to [-87.3, 88.3]); exposed for its unit test. */
float gen_fast_expf(float x);
/* Backward pass of the last forward + loss: adds d loss / d params to m->grads (call
 * gen_zero_grad first for a fresh gradient). */
int gen_backward(gen_model *m, gen_workspace *w, const gen_batch *b, xtal_err *err);

/* ----------------------------------------------------------- model files */

/* HDF5 model file (format "druse-generator" version 1, docs/generator.md): hyperparameters as
 * root attributes, one float32 dataset per tensor under /params/<name> with its PyTorch shape,
 * and "params_sha256", the SHA-256 of the parameter block (tensors in table order, little-
 * endian float32), checked on load; the atom-count histogram, when the model has one, as the
 * float64 dataset /natoms_histogram with its own SHA-256 attribute. Written with serial HDF5 to a temporary name beside path
 * and renamed, so a crash never leaves a half-written model under the final name. */
int gen_model_save(const gen_model *m, const char *path, xtal_err *err);
/* Loads a model file into m (allocated here; free with gen_model_free). A missing, truncated,
 * corrupt or mismatching file is an error whose message names the file. */
int gen_model_load(gen_model *m, const char *path, xtal_err *err);

/* SHA-256 of a byte buffer; hex is 65 bytes (64 digits + NUL). */
void gen_sha256_hex(const void *data, size_t len, char hex[65]);
/* SHA-256 (hex) of the parameter block as stored in files (little-endian float32). */
void gen_params_sha256(const gen_model *m, char hex[65]);

/* ============================================================== training
 * (generator/train.c; docs/generator.md, "Training")
 *
 * One optimizer step = every rank gets its micro-batches from a batch provider, accumulates
 * weighted gradients, the ranks sum them with one MPI_Allreduce, then clipping, Adam and EMA
 * run over the flat blocks (loops over floats, no per-tensor objects). Without MPI_Init, or
 * with a communicator of size 1, no MPI call is made, so unit tests need no mpirun. */

typedef struct {
    float lr;           /* peak learning rate (after warm-up) */
    float min_lr_ratio; /* the cosine decays to lr * min_lr_ratio at total_steps */
    long warmup_steps;  /* linear warm-up: step s (0-based) < warmup uses lr (s+1)/warmup */
    long total_steps;   /* end of the cosine decay; later steps keep the minimum */
    float beta1, beta2, eps;
    float weight_decay; /* decoupled (AdamW, applied to every float of the block); 0 = Adam */
    float grad_clip;    /* global L2 norm of the averaged gradient is clipped to this; 0 = off */
    float ema_decay;    /* EMA of the weights (0.999 typical); 0 = no EMA */
    int micro_batches;  /* provider calls per rank per step (gradient accumulation), >= 1 */
    uint64_t seed;      /* model initialization and the providers' counter-based randomness */
} gen_train_config;

/* lr 1e-3, min ratio 0.1, warm-up 100, total 10000, betas 0.9/0.999, eps 1e-8, no decay,
 * clip 1.0, no EMA, 1 micro-batch, seed 42. */
gen_train_config gen_train_config_default(void);
int gen_train_config_check(const gen_train_config *c, xtal_err *err);
/* Learning rate of step s (0-based: the s-th update): linear warm-up then cosine decay. */
double gen_lr_at(const gen_train_config *c, long step);

/* The three update kernels over flat float arrays of n elements (exposed for tests).
 * Adam step t (1-based), bias-corrected, decoupled weight decay as in AdamW / llm.c:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  mh = m/(1-b1^t);  vh = v/(1-b2^t)
 *   p -= lr (mh / (sqrt(vh) + eps) + wd p)                                              */
void gen_adam_update(float *params, const float *grads, float *m, float *v, size_t n, float lr,
                     float beta1, float beta2, float eps, float weight_decay, long t);
/* Global-norm clipping: returns ||g|| (computed in double) before clipping; when it exceeds
 * max_norm > 0 every element is scaled by max_norm / ||g||. */
double gen_clip_grad_norm(float *grads, size_t n, float max_norm);
/* ema = decay ema + (1 - decay) params. */
void gen_ema_update(float *ema, const float *params, size_t n, float decay);

/* The batch provider: fills batch and targets for micro-batch `micro` of optimizer step `step`
 * (0-based) on `rank` of `n_ranks`, and *weight, the number of examples the loss of this batch
 * averages over (usually batch->n_crystals). Arrays stay owned by the provider and must stay
 * valid until its next call (the trainer copies a micro-batch when there are several). Randomness
 * should be counter-based on (seed, step, rank, micro) so that a resumed run sees the same
 * batches. Returns XTAL_OK or an error (filled in err). The trainer takes every micro-batch of a
 * step first, sums atoms, crystals and masked atoms over all ranks and micro-batches, and scales
 * each loss term of a batch by its count over the global one, so the step's gradient is that of
 * the gen_targets loss of the whole global batch: any split over ranks and micro-batches, of
 * any crystal sizes, equals 1 rank with all of it (to float rounding). A batch of weight 0 is
 * skipped; the weights are reported (gen_step_info.weight) but do not weigh the gradient. */
typedef int (*gen_batch_fn)(void *ctx, long step, int rank, int n_ranks, int micro,
                            gen_batch *batch, gen_targets *targets, double *weight, xtal_err *err);

typedef struct gen_trainer gen_trainer;

/* Per-step report (identical on every rank). */
typedef struct {
    long step;        /* steps done after this one */
    double loss;      /* the loss of the whole global batch (all ranks), before the update */
    double grad_norm; /* global gradient norm before clipping */
    double lr;        /* learning rate used */
    double weight;    /* total examples (sum of the providers' weights) */
} gen_step_info;

/* Creates a trainer for model m (not owned; its params are updated in place; m->grads is
 * scratch). mpi_comm: a pointer to an MPI_Comm, or NULL for MPI_COMM_WORLD; ignored when MPI is
 * not initialized. Every rank must start from the same parameters (gen_model_create with
 * cfg->seed gives that). Adam moments start at 0, the EMA at the current parameters. */
int gen_trainer_create(gen_trainer **out, gen_model *m, const gen_train_config *cfg,
                       const void *mpi_comm, xtal_err *err);
void gen_trainer_free(gen_trainer *t);
/* One optimizer step (collective over the communicator). */
int gen_trainer_step(gen_trainer *t, gen_batch_fn provider, void *ctx, gen_step_info *info,
                     xtal_err *err);
long gen_trainer_steps_done(const gen_trainer *t);
const gen_train_config *gen_trainer_config(const gen_trainer *t);
int gen_trainer_rank(const gen_trainer *t);
int gen_trainer_size(const gen_trainer *t);
/* EMA weights [n_params], or NULL without EMA. */
const float *gen_trainer_ema(const gen_trainer *t);

/* Checkpoint (HDF5, format "druse-train-checkpoint" version 1): parameters, Adam moments, EMA,
 * step, seed/RNG counter, schedule and all hyperparameters, with a SHA-256 per block.
 * Collective: rank 0 writes with serial HDF5 to path.tmp.<pid> and renames it into place; every
 * rank returns rank 0's status. */
int gen_trainer_save(const gen_trainer *t, const char *path, xtal_err *err);
/* Restores a checkpoint into t (every rank reads the file): the model must have the same
 * hyperparameters; the training config is replaced by the file's. Continuing from it gives the
 * same parameters, bit for bit, as an uninterrupted run. A missing, truncated or corrupt file
 * (checksum mismatch) is an error naming the file; t is unchanged then (under MPI: on the
 * ranks where reading failed; every rank returns an error when any rank failed). */
int gen_trainer_load(gen_trainer *t, const char *path, xtal_err *err);

/* Validation: the loss over n fixed batches without gradients (forward without kept
 * activations), averaged with weights batches[i].n_crystals. w may be NULL (one is made). */
int gen_validation_loss(const gen_model *m, gen_workspace *w, int n, const gen_batch *batches,
                        const gen_targets *targets, double *loss, xtal_err *err);

/* ========================================================= end training */

/* ================================================= diffusion and sampling
 * (generator/rng.c, generator/diffusion.c, generator/sampler.c; docs/generator.md,
 * "Diffusion and sampling")
 *
 * Determinism contract: every random number of sample i follows from (campaign seed, batch id,
 * index in batch, step, stream, draw) through Philox4x32-10, never from call order, batch
 * packing or thread count. */

/* Philox4x32-10 (Salmon et al., SC'11; Random123): one 128-bit block for counter ctr and key.
 * Known-answer vectors of Random123's kat_vectors are tested. */
void gen_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* Random streams (the `stream` counter field). */
enum {
    GEN_STREAM_NATOMS = 1,  /* atom count drawn from the histogram */
    GEN_STREAM_INIT_F = 2,  /* prior of fractional coordinates (uniform) */
    GEN_STREAM_INIT_L = 3,  /* prior of the lattice (normal) */
    GEN_STREAM_CORR_F = 4,  /* Langevin corrector noise */
    GEN_STREAM_PRED_F = 5,  /* reverse VE predictor noise */
    GEN_STREAM_STEP_L = 6,  /* ancestral lattice noise */
    GEN_STREAM_UNMASK = 7,  /* which masked atoms unmask, and to what */
    GEN_STREAM_NOISE_F = 8, /* training: coordinate noise */
    GEN_STREAM_NOISE_L = 9, /* training: lattice noise */
    GEN_STREAM_NOISE_A = 10 /* training: masking and the keep-types draw */
};

/* The counter of one draw: key = seed (low, high 32 bits); counter = (batch, index,
 * step | stream << 24, block). step < 2^24, stream < 256. */
typedef struct {
    uint64_t seed;
    uint32_t batch, index, step, stream;
} gen_rng_key;

/* Uniform doubles in (0, 1): draw j is word j % 4 of block j / 4, u = (x + 0.5) / 2^32. */
void gen_rng_uniform(const gen_rng_key *k, uint32_t first, int n, double *out);
/* Standard normals (Box-Muller on the uniform pairs (2m, 2m+1) of a block: draws 4b..4b+3 come
 * from block b): draw j is always the same number, whatever first and n. */
void gen_rng_normal(const gen_rng_key *k, uint32_t first, int n, double *out);

/* Mask schedules of the atom types: mask probability m(t), m(0) = 0, m(1) = 1. */
typedef enum {
    GEN_MASK_LINEAR = 0 /* m = t */,
    GEN_MASK_COSINE = 1 /* m = 1 - cos(pi t/2) */
} gen_mask_schedule;

/* The three forward processes and the loss weights. */
typedef struct {
    double sigma_min, sigma_max; /* VE wrapped normal on frac: sigma(t) = min (max/min)^t
                                    (0.005, 0.5: DiffCSP) */
    int n_images;                /* wrapped-normal image sum |k| <= n_images (default 5) */
    int normalize_score;         /* 1: coordinate target / sqrt(E[score^2](sigma)) (DiffCSP) */
    double cosine_s;             /* lattice DDPM cosine schedule offset (0.008, Nichol-Dhariwal) */
    double abar_min;             /* alpha_bar(t) clipped below at this (1e-4) */
    double v_atom;               /* Angstrom^3 per atom of the density-scaled lattice prior (20) */
    gen_mask_schedule mask_schedule;  /* GEN_MASK_COSINE by default */
    double p_keep_types;              /* training: share of crystals never masked (0.25) */
    float w_coord, w_lattice, w_type; /* loss weights copied into the targets (1, 1, 1) */
} gen_diffusion;

gen_diffusion gen_diffusion_default(void);
int gen_diffusion_check(const gen_diffusion *d, xtal_err *err);

/* Schedules at continuous time t in [0, 1]. */
double gen_sigma_at(const gen_diffusion *d, double t);     /* fractional units */
double gen_alpha_bar_at(const gen_diffusion *d, double t); /* lattice DDPM, 1 at t = 0 */
double gen_mask_prob_at(const gen_diffusion *d, double t); /* types */
/* Lattice scale s_N = (N v_atom)^(1/3) (Angstrom): the lattice process runs on L / s_N. */
double gen_lattice_scale(const gen_diffusion *d, int natoms);

/* Wrapped normal on the circle of period 1: log density (image sum |k| <= n_images, stable
 * log-sum-exp) and its score d/dx log p (1 / fractional unit), both in double. */
double gen_wrapped_normal_logp(double x, double sigma, int n_images);
double gen_wrapped_normal_score(double x, double sigma, int n_images);
/* E[score^2] under the wrapped normal itself: 1/sigma^2 when sigma < 1/16 (the wrap changes
 * it by < 1e-12 relative there), else a 256-point periodic trapezoid rule (exponentially
 * accurate for this smooth periodic integrand). */
double gen_wrapped_normal_score_norm(double sigma, int n_images);

/* Noised batch and targets for gen_loss, buffers owned here (grown on demand; zero-init the
 * struct, free with gen_noised_free). After gen_diffusion_noise_batch, `batch` is the noised
 * gen_batch (offsets and t point into the clean batch, which must outlive it) and `targets` its
 * gen_targets (weights from the gen_diffusion). */
typedef struct {
    gen_batch batch;
    gen_targets targets;
    int *types;            /* [N] noised types (0 = mask) */
    float *frac;           /* [N x 3] noised fractional coordinates, wrapped to [0, 1) */
    float *lattice;        /* [B x 9] noised lattice, Angstrom */
    float *target_coord;   /* [N x 3] score of the wrapped normal (normalized if asked) */
    float *target_lattice; /* [B x 9] the lattice noise eps (unitless: L_t = sqrt(abar) L0 +
                              sqrt(1 - abar) s_N eps) */
    int *target_types;     /* [N] the clean types */
    int *kept;             /* [B] 1 when the crystal's types were kept (never masked) */
    int cap_n, cap_b;
} gen_noised;

void gen_noised_free(gen_noised *nz);

/* Applies the forward processes to a clean batch at its per-crystal times clean->t:
 *   frac: f_t = wrap(f0 + sigma(t) eps), target = score of the wrapped normal at sigma(t) eps
 *         (normalized by sqrt(E[score^2]) when d->normalize_score);
 *   lattice: L_t = sqrt(abar) L0 + sqrt(1 - abar) s_N eps, target eps;
 *   types: crystal b keeps its types with probability p_keep_types, else each atom is masked
 *         (type 0) with probability m(t).
 * Randomness: gen_rng_key {seed, step, ids[b], 0, stream} (ids NULL: b), so crystal b's noise
 * depends only on (seed, step, id), not on its place in the batch. clean->types must be real
 * elements (no mask). */
int gen_diffusion_noise_batch(const gen_diffusion *d, const gen_batch *clean, uint64_t seed,
                              uint32_t step, const uint32_t *ids, gen_noised *out, xtal_err *err);

/* ----------------------------------------------------------------- sampler */

typedef struct {
    gen_diffusion diffusion;   /* must match the model's training */
    int steps;                 /* T: the time grid t_k = k / T, k = T .. 0 (default 100) */
    int stride;                /* visit every stride-th grid point (T / stride reverse steps) */
    int corrector;             /* Langevin corrector on frac (1, DiffCSP) */
    double step_lr;            /* corrector step: step_lr (sigma / sigma_min)^2 (1e-5, DiffCSP) */
    double type_temperature;   /* softmax temperature when unmasking (1) */
    double noise_scale;        /* factor on every Gaussian term of the reverse process (the
                                  corrector's and predictor's on frac, the lattice's), [0, 2];
                                  1 is the sampler of the SDE, < 1 a lower-temperature one */
    int natoms;                /* atoms per cell; 0: drawn from natoms_hist */
    const double *natoms_hist; /* [hist_len] weight of N = k (index 0 unused) */
    int hist_len;
    const int *composition; /* [comp_len] one formula unit as atomic numbers (Fe2O3: 26 26 8
                               8 8); types fixed, never masked; N a multiple of comp_len */
    int comp_len;
    const int *elements; /* [n_elements] allowed atomic numbers while unmasking; NULL: all */
    int n_elements;
    int packed; /* 0 (default): one network forward per crystal, so a sample is
                   bit-identical however samples are packed (the determinism
                   contract); 1: one forward over the whole batch (the forward
                   GEMM's rounding is row-independent, so this gives the same
                   bits too: tested, but not the contract's basis) */
} gen_sampler_opts;

gen_sampler_opts gen_sampler_opts_default(void);

/* Per-sample outcome. */
enum {
    GEN_SAMPLE_OK = 0,
    GEN_SAMPLE_DEGENERATE = 1 /* non-finite state, |det L| / N < GEN_MIN_VOLUME_PER_ATOM, or a
                                 flat cell: |det L| < GEN_MIN_CELL_FLATNESS |a| |b| |c| */
};
#define GEN_MIN_VOLUME_PER_ATOM 1e-2 /* Angstrom^3 */
#define GEN_MIN_CELL_FLATNESS   1e-3 /* sin-like factor; real crystals are above 0.1 */

/* Called every k-th reverse step with the current state (types may hold masks = 0). */
typedef void (*gen_trajectory_fn)(void *ctx, int step, double t, const gen_batch *state);

/* Samples indices first .. first+count-1 of batch batch_id under seed, as one network batch.
 * out[count] receives the crystals (lattice rows Angstrom, frac wrapped to [0, 1); initialize
 * them zeroed; free with xtal_crystal_free), status[count] GEN_SAMPLE_OK or
 * GEN_SAMPLE_DEGENERATE (a degenerate sample is reported, its crystal still allocated).
 * With packed = 0, sample i is bit-identical whatever first and count are (same model, opts,
 * seed); packed = 1 gives the same bits as 0 with the current forward. w is bound to m for the
 * call (gen_workspace_bind) and unbound at the end unless it was bound to m before. traj may be
 * NULL; traj_every >= 1. w may be NULL. */
int gen_sample(const gen_model *m, gen_workspace *w, const gen_sampler_opts *o, uint64_t seed,
               uint32_t batch_id, uint32_t first, int count, xtal_crystal *out, int *status,
               gen_trajectory_fn traj, int traj_every, void *traj_ctx, xtal_err *err);

/* The reverse process with any denoiser in place of the network (an analytic oracle in tests,
 * another backend later): eval fills coord [N x 3], lattice [B x 9] and logits
 * [N x (n_types-1)] for the state batch, as gen_forward's outputs. gen_sample is this with
 * the network. */
typedef int (*gen_eval_fn)(void *ctx, const gen_batch *state, float *coord, float *lattice,
                           float *logits, xtal_err *err);
int gen_sample_eval(gen_eval_fn eval, void *eval_ctx, int n_types, const gen_sampler_opts *o,
                    uint64_t seed, uint32_t batch_id, uint32_t first, int count, xtal_crystal *out,
                    int *status, gen_trajectory_fn traj, int traj_every, void *traj_ctx,
                    xtal_err *err);

/* ===================================================== end diffusion and sampling */

#ifdef __cplusplus
}
#endif
#endif
