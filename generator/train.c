/* generator/train.c: data-parallel training of the denoiser (docs/generator.md, "Training").
 *
 * llm.c style: the optimizer state is flat float arrays parallel to the parameter block (Adam
 * moments m and v, the EMA, a gradient accumulator), updated by plain loops. A step asks the
 * batch provider for all its micro-batches first, sums their atom, crystal and masked-atom
 * counts over the ranks (one small MPI_Allreduce), then runs forward + loss + backward with
 * each loss term rescaled from its batch mean to its share of the global mean, accumulates
 * the gradients into acc (with two extra floats: loss and the providers' weights), sums acc
 * over the ranks with one MPI_Allreduce, clips, and updates. So the step's gradient is that
 * of the loss of the whole global batch, however it is split over ranks and micro-batches.
 * Checkpoints are HDF5 with a SHA-256 per block; the RNG state is (seed, step): providers draw
 * counter-based numbers from them, so there is no hidden generator state to save.
 */
#include "generator/generator.h"

#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crystal/crystal.h" /* again, after <hdf5.h>: its HDF5 helpers */

#define CKPT_FORMAT  "druse-train-checkpoint"
#define CKPT_VERSION 1

/* One micro-batch of a step: the provider's arrays live only until its next call, so with
 * more than one micro-batch they are copied into ints / floats. */
typedef struct {
    gen_batch b;
    gen_targets tg;
    double w, n_atoms, n_crystals, n_masked;
    int *ints;     /* offsets [B+1], types [N], target types [N] */
    float *floats; /* frac [3N], lattice [9B], t [B], target coord [3N], target lattice [9B] */
    size_t icap, fcap;
} micro_batch;

struct gen_trainer {
    gen_train_config cfg;
    gen_model *model;
    float *m, *v, *ema; /* [n_params]; ema NULL without EMA */
    float *acc;         /* [n_params + 2]: weighted gradient sum, weighted loss, weight */
    long step;          /* optimizer steps done */
    gen_workspace *ws;
    micro_batch *mbs; /* [cfg.micro_batches] */
    int use_mpi, rank, size;
    MPI_Comm comm;
};

/* ------------------------------------------------------------ config */

gen_train_config gen_train_config_default(void)
{
    gen_train_config c = {.lr = 1e-3f,
                          .min_lr_ratio = 0.1f,
                          .warmup_steps = 100,
                          .total_steps = 10000,
                          .beta1 = 0.9f,
                          .beta2 = 0.999f,
                          .eps = 1e-8f,
                          .weight_decay = 0.0f,
                          .grad_clip = 1.0f,
                          .ema_decay = 0.0f,
                          .micro_batches = 1,
                          .seed = 42};
    return c;
}

int gen_train_config_check(const gen_train_config *c, xtal_err *err)
{
    if (!(c->lr > 0 && isfinite(c->lr)))
        return xtal_err_set(err, XTAL_EINVALID, "training: lr must be > 0 (got %g)", c->lr);
    if (!(c->min_lr_ratio >= 0 && c->min_lr_ratio <= 1))
        return xtal_err_set(err, XTAL_EINVALID, "training: min_lr_ratio must be in [0, 1]");
    if (c->warmup_steps < 0 || c->total_steps < 0)
        return xtal_err_set(err, XTAL_EINVALID, "training: warmup_steps and total_steps >= 0");
    if (!(c->beta1 >= 0 && c->beta1 < 1 && c->beta2 >= 0 && c->beta2 < 1))
        return xtal_err_set(err, XTAL_EINVALID, "training: beta1 and beta2 must be in [0, 1)");
    if (!(c->eps > 0) || !(c->weight_decay >= 0) || !(c->grad_clip >= 0))
        return xtal_err_set(err, XTAL_EINVALID,
                            "training: eps must be > 0, weight_decay and grad_clip >= 0");
    if (!(c->ema_decay >= 0 && c->ema_decay < 1))
        return xtal_err_set(err, XTAL_EINVALID, "training: ema_decay must be in [0, 1)");
    if (c->micro_batches < 1 || c->micro_batches > 1 << 20)
        return xtal_err_set(err, XTAL_EINVALID, "training: micro_batches must be >= 1");
    return XTAL_OK;
}

double gen_lr_at(const gen_train_config *c, long step)
{
    double peak = c->lr, lo = peak * c->min_lr_ratio;
    if (step < c->warmup_steps) return peak * (double)(step + 1) / (double)c->warmup_steps;
    long span = c->total_steps - c->warmup_steps;
    if (span <= 0) return peak;
    double p = (double)(step - c->warmup_steps) / (double)span;
    if (p > 1) p = 1;
    return lo + 0.5 * (peak - lo) * (1.0 + cos(M_PI * p));
}

/* ------------------------------------------------------------ kernels */

void gen_adam_update(float *params, const float *grads, float *m, float *v, size_t n, float lr,
                     float beta1, float beta2, float eps, float weight_decay, long t)
{
    float c1 = (float)(1.0 - pow(beta1, (double)t)), c2 = (float)(1.0 - pow(beta2, (double)t));
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mh = mi / c1, vh = vi / c2;
        params[i] -= lr * (mh / (sqrtf(vh) + eps) + weight_decay * params[i]);
    }
}

double gen_clip_grad_norm(float *grads, size_t n, float max_norm)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)grads[i] * grads[i];
    double norm = sqrt(s);
    if (max_norm > 0 && norm > max_norm) {
        float scale = (float)(max_norm / norm);
        for (size_t i = 0; i < n; i++) grads[i] *= scale;
    }
    return norm;
}

void gen_ema_update(float *ema, const float *params, size_t n, float decay)
{
    float a = 1.0f - decay;
    for (size_t i = 0; i < n; i++) ema[i] = decay * ema[i] + a * params[i];
}

/* ------------------------------------------------------------ trainer */

int gen_trainer_create(gen_trainer **out, gen_model *m, const gen_train_config *cfg,
                       const void *mpi_comm, xtal_err *err)
{
    *out = NULL;
    int rc = gen_train_config_check(cfg, err);
    if (rc) return rc;
    gen_trainer *t = calloc(1, sizeof *t);
    if (!t) return xtal_err_set(err, XTAL_ENOMEM, "training: out of memory");
    t->cfg = *cfg;
    t->model = m;
    size_t n = m->n_params;
    t->m = calloc(n, sizeof(float));
    t->v = calloc(n, sizeof(float));
    t->acc = calloc(n + 2, sizeof(float));
    t->ws = gen_workspace_new();
    t->mbs = calloc((size_t)cfg->micro_batches, sizeof(micro_batch));
    if (cfg->ema_decay > 0) {
        t->ema = malloc(n * sizeof(float));
        if (t->ema) memcpy(t->ema, m->params, n * sizeof(float));
    }
    if (!t->m || !t->v || !t->acc || !t->ws || !t->mbs || (cfg->ema_decay > 0 && !t->ema)) {
        gen_trainer_free(t);
        return xtal_err_set(err, XTAL_ENOMEM, "training: out of memory (%zu parameters)", n);
    }
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    t->rank = 0;
    t->size = 1;
    if (inited && !finalized) {
        t->comm = mpi_comm ? *(const MPI_Comm *)mpi_comm : MPI_COMM_WORLD;
        MPI_Comm_rank(t->comm, &t->rank);
        MPI_Comm_size(t->comm, &t->size);
        t->use_mpi = t->size > 1;
    }
    *out = t;
    return XTAL_OK;
}

void gen_trainer_free(gen_trainer *t)
{
    if (!t) return;
    free(t->m);
    free(t->v);
    free(t->ema);
    free(t->acc);
    gen_workspace_free(t->ws);
    for (int k = 0; t->mbs && k < t->cfg.micro_batches; k++) {
        free(t->mbs[k].ints);
        free(t->mbs[k].floats);
    }
    free(t->mbs);
    free(t);
}

long gen_trainer_steps_done(const gen_trainer *t)
{
    return t->step;
}
const gen_train_config *gen_trainer_config(const gen_trainer *t)
{
    return &t->cfg;
}
int gen_trainer_rank(const gen_trainer *t)
{
    return t->rank;
}
int gen_trainer_size(const gen_trainer *t)
{
    return t->size;
}
const float *gen_trainer_ema(const gen_trainer *t)
{
    return t->ema;
}

/* Every rank learns whether any rank failed (so that none waits in the allreduce alone). */
static int agree(const gen_trainer *t, int rc)
{
    if (!t->use_mpi) return rc;
    int bad = rc != XTAL_OK, any = 0;
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, t->comm);
    return any ? (rc ? rc : XTAL_EINVALID) : XTAL_OK;
}

/* Copies the batch and targets into q's own arrays (q->b, q->tg then point there). */
static int keep_copy(micro_batch *q, xtal_err *err)
{
    size_t N = (size_t)q->b.n_atoms, B = (size_t)q->b.n_crystals;
    size_t ni = B + 1 + 2 * N, nf = 6 * N + 19 * B;
    if (ni > q->icap) {
        int *p = realloc(q->ints, ni * sizeof(int));
        if (!p) return xtal_err_set(err, XTAL_ENOMEM, "training: out of memory (micro-batch)");
        q->ints = p;
        q->icap = ni;
    }
    if (nf > q->fcap) {
        float *p = realloc(q->floats, nf * sizeof(float));
        if (!p) return xtal_err_set(err, XTAL_ENOMEM, "training: out of memory (micro-batch)");
        q->floats = p;
        q->fcap = nf;
    }
    int *ip = q->ints;
    float *fp = q->floats;
#define COPY(dst, src, cnt)                                                                        \
    do {                                                                                           \
        if (src) memcpy(dst, src, (cnt) * sizeof *(dst));                                          \
        src = (src) ? dst : NULL;                                                                  \
        dst += (cnt);                                                                              \
    } while (0)
    COPY(ip, q->b.offsets, B + 1);
    COPY(ip, q->b.types, N);
    COPY(ip, q->tg.types, N);
    COPY(fp, q->b.frac, 3 * N);
    COPY(fp, q->b.lattice, 9 * B);
    COPY(fp, q->b.t, B);
    COPY(fp, q->tg.coord, 3 * N);
    COPY(fp, q->tg.lattice, 9 * B);
#undef COPY
    return XTAL_OK;
}

/* Pass 1 of a step: micro-batch mb from the provider, its weight checked, its counts taken. */
static int fetch(gen_trainer *t, gen_batch_fn provider, void *ctx, int mb, xtal_err *err)
{
    micro_batch *q = &t->mbs[mb];
    memset(&q->b, 0, sizeof q->b);
    memset(&q->tg, 0, sizeof q->tg);
    q->w = 0;
    int rc = provider(ctx, t->step, t->rank, t->size, mb, &q->b, &q->tg, &q->w, err);
    if (rc) return rc;
    if (!(q->w >= 0 && isfinite(q->w)))
        return xtal_err_set(err, XTAL_EINVALID,
                            "training: step %ld micro-batch %d: invalid weight %g", t->step, mb,
                            q->w);
    if (q->w == 0) return XTAL_OK; /* an empty share: contributes nothing */
    q->n_atoms = q->b.n_atoms;
    q->n_crystals = q->b.n_crystals;
    q->n_masked = 0;
    for (int i = 0; q->b.types && i < q->b.n_atoms; i++)
        q->n_masked += q->b.types[i] == GEN_MASK_TYPE;
    return t->cfg.micro_batches > 1 ? keep_copy(q, err) : XTAL_OK;
}

/* Pass 2: gradient of micro-batch q's share of the global loss, added to acc. tot = global
 * atoms, crystals, masked atoms: gen_loss averages each term over this batch, so its weight is
 * scaled by this batch's count over the global one. */
static int accumulate(gen_trainer *t, micro_batch *q, const double *tot, int mb, xtal_err *err)
{
    gen_model *md = t->model;
    size_t n = md->n_params;
    gen_targets tg = q->tg;
    tg.w_coord *= (float)(q->n_atoms / tot[0]);
    tg.w_lattice *= (float)(q->n_crystals / tot[1]);
    tg.w_type = tot[2] > 0 ? tg.w_type * (float)(q->n_masked / tot[2]) : 0.0f;
    double loss = 0;
    gen_outputs out;
    gen_zero_grad(md);
    int rc = gen_forward(md, t->ws, &q->b, 1, &out, err);
    if (!rc) rc = gen_loss(md, t->ws, &q->b, &tg, &loss, err);
    if (!rc) rc = gen_backward(md, t->ws, &q->b, err);
    if (rc) return rc;
    if (!isfinite(loss))
        return xtal_err_set(err, XTAL_EINVALID,
                            "training: step %ld micro-batch %d: loss is not finite", t->step, mb);
    const float *g = md->grads;
    for (size_t i = 0; i < n; i++) t->acc[i] += g[i];
    t->acc[n] += (float)loss;
    t->acc[n + 1] += (float)q->w;
    return XTAL_OK;
}

int gen_trainer_step(gen_trainer *t, gen_batch_fn provider, void *ctx, gen_step_info *info,
                     xtal_err *err)
{
    gen_model *md = t->model;
    size_t n = md->n_params;
    float *acc = t->acc;
    memset(acc, 0, (n + 2) * sizeof(float));
    int rc = XTAL_OK, K = t->cfg.micro_batches;
    /* tot: atoms, crystals, masked atoms of all ranks' micro-batches, and failed ranks */
    double tot[4] = {0, 0, 0, 0};
    for (int mb = 0; mb < K && rc == XTAL_OK; mb++) {
        rc = fetch(t, provider, ctx, mb, err);
        if (!rc && t->mbs[mb].w > 0) {
            tot[0] += t->mbs[mb].n_atoms;
            tot[1] += t->mbs[mb].n_crystals;
            tot[2] += t->mbs[mb].n_masked;
        }
    }
    tot[3] = rc != XTAL_OK;
    if (t->use_mpi) MPI_Allreduce(MPI_IN_PLACE, tot, 4, MPI_DOUBLE, MPI_SUM, t->comm);
    if (tot[3] > 0) {
        if (!rc)
            rc = xtal_err_set(err, XTAL_EINVALID, "training: step %ld failed on another rank",
                              t->step);
        return rc;
    }
    for (int mb = 0; mb < K && rc == XTAL_OK; mb++)
        if (t->mbs[mb].w > 0) rc = accumulate(t, &t->mbs[mb], tot, mb, err);
    int all = agree(t, rc);
    if (all) {
        if (!rc) xtal_err_set(err, all, "training: step %ld failed on another rank", t->step);
        return all;
    }
    if (t->use_mpi) MPI_Allreduce(MPI_IN_PLACE, acc, (int)(n + 2), MPI_FLOAT, MPI_SUM, t->comm);
    double wsum = acc[n + 1];
    if (!(wsum > 0))
        return xtal_err_set(err, XTAL_EINVALID, "training: step %ld: no examples (total weight 0)",
                            t->step);
    double norm = gen_clip_grad_norm(acc, n, t->cfg.grad_clip);
    if (!isfinite(norm))
        return xtal_err_set(err, XTAL_EINVALID, "training: step %ld: gradient is not finite",
                            t->step);
    double lr = gen_lr_at(&t->cfg, t->step);
    gen_adam_update(md->params, acc, t->m, t->v, n, (float)lr, t->cfg.beta1, t->cfg.beta2,
                    t->cfg.eps, t->cfg.weight_decay, t->step + 1);
    if (t->ema) gen_ema_update(t->ema, md->params, n, t->cfg.ema_decay);
    t->step++;
    if (info) {
        info->step = t->step;
        info->loss = acc[n];
        info->grad_norm = norm;
        info->lr = lr;
        info->weight = wsum;
    }
    return XTAL_OK;
}

/* --------------------------------------------------------- validation */

int gen_validation_loss(const gen_model *m, gen_workspace *w, int n, const gen_batch *batches,
                        const gen_targets *targets, double *loss, xtal_err *err)
{
    *loss = 0;
    gen_workspace *own = NULL;
    if (!w) {
        w = own = gen_workspace_new();
        if (!w) return xtal_err_set(err, XTAL_ENOMEM, "validation: out of memory");
    }
    double sum = 0, wsum = 0;
    int rc = XTAL_OK;
    for (int i = 0; i < n && rc == XTAL_OK; i++) {
        gen_outputs out;
        double l = 0;
        rc = gen_forward(m, w, &batches[i], 0, &out, err);
        if (!rc) rc = gen_loss(m, w, &batches[i], &targets[i], &l, err);
        sum += l * batches[i].n_crystals;
        wsum += batches[i].n_crystals;
    }
    gen_workspace_free(own);
    if (rc) return rc;
    if (wsum <= 0) return xtal_err_set(err, XTAL_EINVALID, "validation: no crystals");
    *loss = sum / wsum;
    return XTAL_OK;
}

/* ---------------------------------------------------------- checkpoints */

static int put_long(hid_t o, const char *name, long long v)
{
    return xtal_h5_attr_put(o, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, &v);
}

static int put_u64(hid_t o, const char *name, uint64_t v)
{
    return xtal_h5_attr_put(o, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v);
}

/* Floats of the config are stored as float32, so that they come back bit-identical. */
static int put_float(hid_t o, const char *name, float v)
{
    return xtal_h5_attr_put(o, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, &v);
}

static void block_sha(const float *x, size_t n, char hex[65])
{
    /* the block as little-endian float32 (the in-memory layout on every supported machine) */
    gen_sha256_hex(x, n * sizeof(float), hex);
}

static int put_block(hid_t f, const char *name, const float *x, size_t n)
{
    hsize_t dim = n;
    char hex[65];
    block_sha(x, n, hex);
    return xtal_h5_dataset_put(f, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, &dim, x, "sha256",
                               hex);
}

static int write_checkpoint(const gen_trainer *t, const char *path, xtal_err *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    xtal_h5_quiet q = xtal_h5_quiet_begin();
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        xtal_h5_quiet_end(q);
        return xtal_err_set(err, XTAL_EIO, "checkpoint %s: cannot create %s", path, tmp);
    }
    const gen_model *m = t->model;
    const gen_train_config *c = &t->cfg;
    const gen_hparams *hp = &m->hp;
    int bad = xtal_h5_attr_put_string(f, "format", CKPT_FORMAT);
    bad |= put_long(f, "format_version", CKPT_VERSION);
    bad |= put_long(f, "hidden", hp->hidden);
    bad |= put_long(f, "layers", hp->layers);
    bad |= put_long(f, "n_freq", hp->n_freq);
    bad |= put_long(f, "time_dim", hp->time_dim);
    bad |= put_long(f, "n_types", hp->n_types);
    bad |= put_long(f, "n_params", (long long)m->n_params);
    bad |= put_long(f, "step", t->step);
    bad |= put_u64(f, "seed", c->seed);
    bad |= put_long(f, "rng_counter", t->step); /* providers draw from (seed, step, ...) */
    bad |= put_long(f, "ranks", t->size);
    bad |= put_float(f, "lr", c->lr);
    bad |= put_float(f, "min_lr_ratio", c->min_lr_ratio);
    bad |= put_long(f, "warmup_steps", c->warmup_steps);
    bad |= put_long(f, "total_steps", c->total_steps);
    bad |= put_float(f, "lr_current", (float)gen_lr_at(c, t->step > 0 ? t->step - 1 : 0));
    bad |= put_float(f, "beta1", c->beta1);
    bad |= put_float(f, "beta2", c->beta2);
    bad |= put_float(f, "eps", c->eps);
    bad |= put_float(f, "weight_decay", c->weight_decay);
    bad |= put_float(f, "grad_clip", c->grad_clip);
    bad |= put_float(f, "ema_decay", c->ema_decay);
    bad |= put_long(f, "micro_batches", c->micro_batches);
    bad |= put_long(f, "has_ema", t->ema != NULL);
    bad |= put_block(f, "params", m->params, m->n_params);
    bad |= put_block(f, "adam_m", t->m, m->n_params);
    bad |= put_block(f, "adam_v", t->v, m->n_params);
    if (t->ema) bad |= put_block(f, "ema", t->ema, m->n_params);
    if (H5Fclose(f) < 0) bad = 1;
    xtal_h5_quiet_end(q);
    if (bad) {
        unlink(tmp);
        return xtal_err_set(err, XTAL_EIO, "checkpoint %s: write failed", path);
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return xtal_err_set(err, XTAL_EIO, "checkpoint %s: cannot rename %s into place", path, tmp);
    }
    return XTAL_OK;
}

int gen_trainer_save(const gen_trainer *t, const char *path, xtal_err *err)
{
    int rc = XTAL_OK;
    if (t->rank == 0) rc = write_checkpoint(t, path, err);
    if (t->use_mpi) {
        MPI_Bcast(&rc, 1, MPI_INT, 0, t->comm);
        if (rc && t->rank != 0)
            xtal_err_set(err, rc, "checkpoint %s: rank 0 could not write it", path);
    }
    return rc;
}

static int get_block(hid_t f, const char *path, const char *name, float *x, size_t n, xtal_err *err)
{
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0)
        return xtal_err_set(err, XTAL_EPARSE, "checkpoint %s: dataset %s missing or unreadable",
                            path, name);
    hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds);
    hsize_t dim = 0;
    int ok = H5Sget_simple_extent_ndims(sp) == 1 && H5Tget_class(ty) == H5T_FLOAT;
    if (ok) H5Sget_simple_extent_dims(sp, &dim, NULL);
    ok = ok && dim == (hsize_t)n;
    int rc = XTAL_OK;
    char want[80] = "", have[65];
    if (!ok)
        rc = xtal_err_set(err, XTAL_EPARSE,
                          "checkpoint %s: dataset %s has the wrong type or size (expected %zu "
                          "floats)",
                          path, name, n);
    else if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) < 0)
        rc = xtal_err_set(err, XTAL_EPARSE,
                          "checkpoint %s: dataset %s cannot be read (corrupt or truncated)", path,
                          name);
    else if (xtal_h5_attr_get_string(ds, "sha256", want, sizeof want))
        rc = xtal_err_set(err, XTAL_EPARSE, "checkpoint %s: dataset %s has no sha256", path, name);
    else {
        block_sha(x, n, have);
        if (strcmp(want, have))
            rc = xtal_err_set(err, XTAL_EPARSE,
                              "checkpoint %s: checksum mismatch in %s (sha256 %.16s... stored, "
                              "%.16s... computed): the file is corrupt",
                              path, name, want, have);
    }
    H5Tclose(ty);
    H5Sclose(sp);
    H5Dclose(ds);
    return rc;
}

static int read_checkpoint(gen_trainer *t, const char *path, xtal_err *err)
{
    if (access(path, R_OK) != 0)
        return xtal_err_set(err, XTAL_EIO, "checkpoint %s: cannot read (missing or no permission)",
                            path);
    xtal_h5_quiet q = xtal_h5_quiet_begin();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        xtal_h5_quiet_end(q);
        return xtal_err_set(err, XTAL_EPARSE,
                            "checkpoint %s: not a readable HDF5 file (corrupt or truncated)", path);
    }
    gen_model *m = t->model;
    size_t n = m->n_params;
    float *p = NULL, *mm = NULL, *vv = NULL, *ee = NULL;
    int rc = XTAL_OK;
    char fmt[64] = "";
    long long ver = 0, h[6] = {0}, step = 0, warm = 0, total = 0, micro = 0, has_ema = 0;
    uint64_t seed = 0;
    gen_train_config c;
    static const char *hn[6] = {"hidden", "layers", "n_freq", "time_dim", "n_types", "n_params"};
    long long want[6] = {m->hp.hidden,   m->hp.layers,  m->hp.n_freq,
                         m->hp.time_dim, m->hp.n_types, (long long)n};
    if (xtal_h5_attr_get_string(f, "format", fmt, sizeof fmt) || strcmp(fmt, CKPT_FORMAT)) {
        rc = xtal_err_set(err, XTAL_EPARSE,
                          "checkpoint %s: not a druse training checkpoint (attribute format is "
                          "missing or not \"%s\")",
                          path, CKPT_FORMAT);
        goto done;
    }
    if (xtal_h5_attr_get(f, "format_version", H5T_NATIVE_LLONG, &ver) || ver != CKPT_VERSION) {
        rc = xtal_err_set(err, XTAL_EUNSUPPORTED, "checkpoint %s: format version %lld, expected %d",
                          path, ver, CKPT_VERSION);
        goto done;
    }
    for (int i = 0; i < 6; i++) {
        if (xtal_h5_attr_get(f, hn[i], H5T_NATIVE_LLONG, &h[i])) {
            rc = xtal_err_set(err, XTAL_EPARSE, "checkpoint %s: attribute %s missing", path, hn[i]);
            goto done;
        }
        if (h[i] != want[i]) {
            rc = xtal_err_set(err, XTAL_EINVALID,
                              "checkpoint %s: %s is %lld, the model has %lld (a different "
                              "architecture)",
                              path, hn[i], h[i], want[i]);
            goto done;
        }
    }
    int bad = xtal_h5_attr_get(f, "step", H5T_NATIVE_LLONG, &step);
    bad |= xtal_h5_attr_get(f, "seed", H5T_NATIVE_UINT64, &seed);
    bad |= xtal_h5_attr_get(f, "lr", H5T_NATIVE_FLOAT, &c.lr);
    bad |= xtal_h5_attr_get(f, "min_lr_ratio", H5T_NATIVE_FLOAT, &c.min_lr_ratio);
    bad |= xtal_h5_attr_get(f, "warmup_steps", H5T_NATIVE_LLONG, &warm);
    bad |= xtal_h5_attr_get(f, "total_steps", H5T_NATIVE_LLONG, &total);
    bad |= xtal_h5_attr_get(f, "beta1", H5T_NATIVE_FLOAT, &c.beta1);
    bad |= xtal_h5_attr_get(f, "beta2", H5T_NATIVE_FLOAT, &c.beta2);
    bad |= xtal_h5_attr_get(f, "eps", H5T_NATIVE_FLOAT, &c.eps);
    bad |= xtal_h5_attr_get(f, "weight_decay", H5T_NATIVE_FLOAT, &c.weight_decay);
    bad |= xtal_h5_attr_get(f, "grad_clip", H5T_NATIVE_FLOAT, &c.grad_clip);
    bad |= xtal_h5_attr_get(f, "ema_decay", H5T_NATIVE_FLOAT, &c.ema_decay);
    bad |= xtal_h5_attr_get(f, "micro_batches", H5T_NATIVE_LLONG, &micro);
    bad |= xtal_h5_attr_get(f, "has_ema", H5T_NATIVE_LLONG, &has_ema);
    if (bad || step < 0) {
        rc = xtal_err_set(err, XTAL_EPARSE, "checkpoint %s: training attributes missing or invalid",
                          path);
        goto done;
    }
    c.warmup_steps = (long)warm;
    c.total_steps = (long)total;
    c.micro_batches = (int)micro;
    c.seed = seed;
    xtal_err e2;
    if (gen_train_config_check(&c, &e2) || (has_ema != 0) != (c.ema_decay > 0)) {
        rc = xtal_err_set(err, XTAL_EPARSE, "checkpoint %s: invalid training config", path);
        goto done;
    }
    p = malloc(n * sizeof(float));
    mm = malloc(n * sizeof(float));
    vv = malloc(n * sizeof(float));
    if (has_ema) ee = malloc(n * sizeof(float));
    if (!p || !mm || !vv || (has_ema && !ee)) {
        rc = xtal_err_set(err, XTAL_ENOMEM, "checkpoint %s: out of memory", path);
        goto done;
    }
    rc = get_block(f, path, "params", p, n, err);
    if (!rc) rc = get_block(f, path, "adam_m", mm, n, err);
    if (!rc) rc = get_block(f, path, "adam_v", vv, n, err);
    if (!rc && has_ema) rc = get_block(f, path, "ema", ee, n, err);
    if (rc) goto done;
    /* all read and verified: commit to the trainer */
    memcpy(m->params, p, n * sizeof(float));
    float *old;
    old = t->m, t->m = mm, mm = old;
    old = t->v, t->v = vv, vv = old;
    old = t->ema, t->ema = ee, ee = old;
    t->cfg = c;
    t->step = (long)step;
done:
    free(p);
    free(mm);
    free(vv);
    free(ee);
    H5Fclose(f);
    xtal_h5_quiet_end(q);
    return rc;
}

int gen_trainer_load(gen_trainer *t, const char *path, xtal_err *err)
{
    int rc = read_checkpoint(t, path, err);
    int all = agree(t, rc);
    if (all && !rc)
        xtal_err_set(err, all, "checkpoint %s: could not be loaded on another rank", path);
    return all;
}
