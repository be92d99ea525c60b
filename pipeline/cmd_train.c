/* `druse train CONFIG`: trains the diffusion generator from a YAML training config
 * (docs/configs.md, "Training configs"; docs/generator.md, "Training"). Works alone or under
 * mpirun: every rank loads the data, takes its share of every global batch through the batch
 * provider, and the trainer sums the gradients; rank 0 prints and writes the files. */
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "generator/generator.h"
#include "pipeline/pipeline.h"

static const char train_help[] =
    "usage: druse train CONFIG.yaml\n"
    "\n"
    "Trains the diffusion generator on a dataset CSV (CDVAE layout) as the training config\n"
    "says (docs/configs.md, \"Training configs\"; configs/train-tiny.yaml,\n"
    "configs/train-mp20.yaml). Each epoch visits the training crystals in an order shuffled\n"
    "from (seed, epoch); every optimizer step takes train.batch_size crystals, split among\n"
    "the MPI ranks (mpirun -n R druse train CONFIG). The validation loss over a fixed,\n"
    "fixed-noise subset of the validation set (data.max_val crystals) is printed after every\n"
    "epoch. A checkpoint is written every train.checkpoint_every_steps steps and at the end;\n"
    "when the checkpoint file exists the run resumes from it (it must have been written with\n"
    "the same hyperparameters; train.epochs may be raised to train further: the learning-rate\n"
    "schedule stays the checkpoint's, so the extra steps run at its final rate). The final model\n"
    "(the EMA weights when train.ema_decay > 0) is written to train.output.\n"
    "\n"
    "Progress goes to stderr: live on a terminal, one line per epoch (and every 50 steps)\n"
    "otherwise.\n"
    "Exit status: 0 on success, 1 if the work failed (the message names the file), 2 on usage.\n";

/* One packed clean batch (arrays owned). */
typedef struct {
    int n, cap_b, cap_n;
    int *offsets, *types;
    float *frac, *lattice, *t;
    uint32_t *ids;
} packed;

static void packed_free(packed *p)
{
    free(p->offsets);
    free(p->types);
    free(p->frac);
    free(p->lattice);
    free(p->t);
    free(p->ids);
    memset(p, 0, sizeof *p);
}

/* Packs crystals idx[0..n) of list into p; ids are the crystals' indices. */
static int pack(const xtal_list *list, const int *idx, int n, packed *p, xtal_err *err)
{
    int natoms = 0;
    for (int i = 0; i < n; i++) natoms += list->items[idx[i]].natoms;
    if (n + 1 > p->cap_b) {
        int cap = n + 1;
        int *o = realloc(p->offsets, (size_t)cap * sizeof *o);
        if (o) p->offsets = o;
        float *l = realloc(p->lattice, (size_t)cap * 9 * sizeof *l);
        if (l) p->lattice = l;
        float *t = realloc(p->t, (size_t)cap * sizeof *t);
        if (t) p->t = t;
        uint32_t *d = realloc(p->ids, (size_t)cap * sizeof *d);
        if (d) p->ids = d;
        if (!o || !l || !t || !d) return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
        p->cap_b = cap;
    }
    if (natoms > p->cap_n) {
        int cap = natoms;
        int *z = realloc(p->types, (size_t)cap * sizeof *z);
        if (z) p->types = z;
        float *f = realloc(p->frac, (size_t)cap * 3 * sizeof *f);
        if (f) p->frac = f;
        if (!z || !f) return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
        p->cap_n = cap;
    }
    int a = 0;
    p->offsets[0] = 0;
    for (int i = 0; i < n; i++) {
        const xtal_crystal *c = &list->items[idx[i]];
        for (int k = 0; k < c->natoms; k++, a++) {
            p->types[a] = c->Z[k];
            for (int d = 0; d < 3; d++) {
                double f = c->frac[3 * k + d];
                f -= floor(f);
                float ff = (float)f; /* may round up to 1 */
                p->frac[3 * a + d] = ff >= 1.0f ? 0.0f : ff;
            }
        }
        p->offsets[i + 1] = a;
        for (int r = 0; r < 3; r++)
            for (int s = 0; s < 3; s++) p->lattice[9 * i + 3 * r + s] = (float)c->lattice[r][s];
        p->ids[i] = (uint32_t)idx[i];
    }
    p->n = n;
    return XTAL_OK;
}

static gen_batch packed_batch(const packed *p)
{
    gen_batch b = {.n_crystals = p->n,
                   .n_atoms = p->offsets[p->n],
                   .offsets = p->offsets,
                   .types = p->types,
                   .frac = p->frac,
                   .lattice = p->lattice,
                   .t = p->t};
    return b;
}

/* Diffusion time of a crystal: uniform in [1e-3, 1) from (seed, counter). */
static float draw_t(uint64_t seed, uint64_t counter)
{
    float u = 0.5f + 0.5f * gen_uniform(seed ^ UINT64_C(0x7472616e74696d65), counter);
    return u < 1e-3f ? 1e-3f : u;
}

typedef struct {
    const xtal_list *train;
    int n_train, batch_size, steps_per_epoch;
    uint64_t seed;
    gen_diffusion diff;
    int *order; /* the current epoch's permutation */
    long order_epoch;
    packed clean;
    gen_noised nz;
} train_ctx;

/* Fisher-Yates from (seed, epoch): the same on every rank. */
static void shuffle(train_ctx *c, long epoch)
{
    for (int i = 0; i < c->n_train; i++) c->order[i] = i;
    for (int i = c->n_train - 1; i > 0; i--) {
        uint64_t h =
            gen_hash64(c->seed ^ UINT64_C(0x73687566666c65), (uint64_t)epoch << 32 | (uint64_t)i);
        int j = (int)(h % (uint64_t)(i + 1));
        int tmp = c->order[i];
        c->order[i] = c->order[j];
        c->order[j] = tmp;
    }
    c->order_epoch = epoch;
}

static int provider(void *vctx, long step, int rank, int n_ranks, int micro, gen_batch *bt,
                    gen_targets *tg, double *weight, xtal_err *err)
{
    train_ctx *c = vctx;
    long epoch = step / c->steps_per_epoch, k = step % c->steps_per_epoch;
    if (epoch != c->order_epoch) shuffle(c, epoch);
    int g0 = (int)(k * c->batch_size), g1 = g0 + c->batch_size;
    if (g1 > c->n_train) g1 = c->n_train;
    int n = g1 - g0;
    int r0 = g0 + (int)((long)rank * n / n_ranks), r1 = g0 + (int)((long)(rank + 1) * n / n_ranks);
    *weight = r1 - r0;
    if (r1 <= r0) return XTAL_OK;
    int rc = pack(c->train, c->order + r0, r1 - r0, &c->clean, err);
    if (rc < 0) return rc;
    for (int i = 0; i < r1 - r0; i++)
        c->clean.t[i] = draw_t(c->seed, (uint64_t)step * 65536u + (uint64_t)(r0 - g0 + i));
    gen_batch clean = packed_batch(&c->clean);
    rc = gen_diffusion_noise_batch(&c->diff, &clean, c->seed, (uint32_t)step, c->clean.ids, &c->nz,
                                   err);
    if (rc < 0) return rc;
    *bt = c->nz.batch;
    *tg = c->nz.targets;
    return XTAL_OK;
}

/* The validation set: fixed crystals, times and noise. */
typedef struct {
    int n;
    packed *clean;
    gen_noised *nz;
    gen_batch *batches;
    gen_targets *targets;
} val_set;

static void val_free(val_set *v)
{
    for (int i = 0; i < v->n; i++) {
        packed_free(&v->clean[i]);
        gen_noised_free(&v->nz[i]);
    }
    free(v->clean);
    free(v->nz);
    free(v->batches);
    free(v->targets);
    memset(v, 0, sizeof *v);
}

static int val_make(val_set *v, const xtal_list *list, int n_total, int per_batch, uint64_t seed,
                    const gen_diffusion *d, xtal_err *err)
{
    int nb = (n_total + per_batch - 1) / per_batch;
    v->clean = calloc((size_t)nb, sizeof *v->clean);
    v->nz = calloc((size_t)nb, sizeof *v->nz);
    v->batches = calloc((size_t)nb, sizeof *v->batches);
    v->targets = calloc((size_t)nb, sizeof *v->targets);
    int *idx = malloc((size_t)n_total * sizeof *idx);
    if (!v->clean || !v->nz || !v->batches || !v->targets || !idx) {
        free(idx);
        return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n_total; i++) idx[i] = i;
    uint64_t vseed = seed ^ UINT64_C(0x76616c6964);
    int rc = XTAL_OK;
    for (int b = 0; b < nb && rc == XTAL_OK; b++) {
        int i0 = b * per_batch, i1 = i0 + per_batch > n_total ? n_total : i0 + per_batch;
        v->n = b + 1;
        rc = pack(list, idx + i0, i1 - i0, &v->clean[b], err);
        if (rc < 0) break;
        for (int i = i0; i < i1; i++) v->clean[b].t[i - i0] = draw_t(vseed, (uint64_t)i);
        gen_batch clean = packed_batch(&v->clean[b]);
        rc = gen_diffusion_noise_batch(d, &clean, vseed, 0, v->clean[b].ids, &v->nz[b], err);
        if (rc < 0) break;
        v->batches[b] = v->nz[b].batch;
        v->targets[b] = v->nz[b].targets;
    }
    free(idx);
    return rc;
}

/* Keeps the crystals the model can take (elements 1 .. n_types-1, at least one atom). */
static int load_data(const char *path, int max_n, int n_types, xtal_dataset *ds, int *skipped,
                     xtal_err *err)
{
    int rc = xtal_dataset_load(path, NULL, ds, err);
    if (rc < 0) return rc;
    xtal_list *l = &ds->crystals;
    int w = 0;
    *skipped = 0;
    for (int i = 0; i < l->n; i++) {
        xtal_crystal *c = &l->items[i];
        int ok = c->natoms >= 1;
        for (int k = 0; ok && k < c->natoms; k++) ok = c->Z[k] >= 1 && c->Z[k] < n_types;
        if (!ok || (max_n > 0 && w >= max_n)) {
            if (!ok) ++*skipped;
            xtal_crystal_free(c);
            continue;
        }
        if (w != i) {
            l->items[w] = *c;
            memset(c, 0, sizeof *c);
        }
        w++;
    }
    l->n = w;
    if (w == 0) return xtal_err_set(err, XTAL_EINVALID, "%s: no usable crystals", path);
    return XTAL_OK;
}

/* The atom-count histogram of the training crystals, stored in the model for the sampler. */
static int set_natoms_hist(gen_model *m, const xtal_list *l, xtal_err *err)
{
    int len = 2;
    for (int i = 0; i < l->n; i++)
        if (l->items[i].natoms + 1 > len) len = l->items[i].natoms + 1;
    double *h = calloc((size_t)len, sizeof *h);
    if (!h) return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
    for (int i = 0; i < l->n; i++) h[l->items[i].natoms] += 1;
    int rc = gen_model_set_natoms_hist(m, h, len, err);
    free(h);
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Refuses a checkpoint written with other hyperparameters than the config's. */
static int check_resumed(const gen_train_config *file, const gen_train_config *want,
                         const char *path, xtal_err *err)
{
    const char *what = NULL;
    if (file->lr != want->lr)
        what = "train.lr";
    else if (file->warmup_steps != want->warmup_steps)
        what = "train.warmup_steps";
    else if (file->weight_decay != want->weight_decay)
        what = "train.weight_decay";
    else if (file->grad_clip != want->grad_clip)
        what = "train.grad_clip";
    else if (file->ema_decay != want->ema_decay)
        what = "train.ema_decay";
    else if (file->seed != want->seed)
        what = "train.seed";
    else if (file->micro_batches != want->micro_batches)
        what = "micro-batches";
    if (!what) return XTAL_OK;
    return xtal_err_set(err, XTAL_EINVALID,
                        "%s: checkpoint was written with another %s than the config's; delete "
                        "it or point train.checkpoint elsewhere to start over",
                        path, what);
}

typedef struct {
    pipe_train_config *cfg;
    xtal_dataset train, val;
    gen_model model;
    int have_model;
    gen_trainer *trainer;
    gen_workspace *ws;
    train_ctx tc;
    val_set vs;
    char ckpt[4096];
} train_run;

static void run_free(train_run *r)
{
    val_free(&r->vs);
    packed_free(&r->tc.clean);
    gen_noised_free(&r->tc.nz);
    free(r->tc.order);
    gen_workspace_free(r->ws);
    gen_trainer_free(r->trainer);
    if (r->have_model) gen_model_free(&r->model);
    xtal_dataset_free(&r->train);
    xtal_dataset_free(&r->val);
    pipe_train_config_free(r->cfg);
}

static int val_loss(train_run *r, double *loss, xtal_err *err)
{
    const float *ema = gen_trainer_ema(r->trainer);
    if (!ema)
        return gen_validation_loss(&r->model, r->ws, r->vs.n, r->vs.batches, r->vs.targets, loss,
                                   err);
    /* With EMA: the loss of the EMA weights (the model that is saved). */
    size_t bytes = r->model.n_params * sizeof(float);
    float *keep = malloc(bytes);
    if (!keep) return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
    memcpy(keep, r->model.params, bytes);
    memcpy(r->model.params, ema, bytes);
    int rc =
        gen_validation_loss(&r->model, r->ws, r->vs.n, r->vs.batches, r->vs.targets, loss, err);
    memcpy(r->model.params, keep, bytes);
    free(keep);
    return rc;
}

static int save_model(train_run *r, xtal_err *err)
{
    const float *ema = gen_trainer_ema(r->trainer);
    if (!ema) return gen_model_save(&r->model, r->cfg->train.output, err);
    size_t bytes = r->model.n_params * sizeof(float);
    float *keep = malloc(bytes);
    if (!keep) return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
    memcpy(keep, r->model.params, bytes);
    memcpy(r->model.params, ema, bytes);
    int rc = gen_model_save(&r->model, r->cfg->train.output, err);
    memcpy(r->model.params, keep, bytes);
    free(keep);
    return rc;
}

static int attr_num(hid_t obj, const char *name, double v)
{
    return xtal_h5_attr_put(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

/* Provenance: root attributes train_* added to the written model file (gen_model_load ignores
 * them). */
static int add_provenance(const train_run *r, long steps, double loss, double vloss, xtal_err *err)
{
    const pipe_train_config *cfg = r->cfg;
    hid_t f = H5Fopen(cfg->train.output, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0)
        return xtal_err_set(err, XTAL_EIO, "%s: cannot reopen to add provenance",
                            cfg->train.output);
    int bad = xtal_h5_attr_put_string(f, "train_config", cfg->text);
    bad |= xtal_h5_attr_put_string(f, "train_config_path", cfg->source);
    bad |= xtal_h5_attr_put_string(f, "train_dataset", cfg->data.train);
    bad |= xtal_h5_attr_put_string(f, "val_dataset", cfg->data.val);
    if (cfg->train.init_from)
        bad |= xtal_h5_attr_put_string(f, "train_init_from", cfg->train.init_from);
    bad |= attr_num(f, "train_crystals", (double)r->train.crystals.n);
    bad |= attr_num(f, "train_epochs", (double)cfg->train.epochs);
    bad |= attr_num(f, "train_steps", (double)steps);
    bad |= attr_num(f, "train_loss", loss);
    bad |= attr_num(f, "val_loss", vloss);
    bad |= xtal_h5_attr_put_string(f, "train_weights", gen_trainer_ema(r->trainer) ? "ema" : "raw");
    if (H5Fclose(f) < 0) bad = 1;
    return bad ? xtal_err_set(err, XTAL_EIO, "%s: cannot write the provenance attributes",
                              cfg->train.output)
               : XTAL_OK;
}

/* Checkpoint (collective), then rank 0 writes the model file so far (EMA weights, histogram,
 * provenance): a long run always leaves a usable model of its latest checkpoint. */
static int save_all(train_run *r, int rank, int size, long done, double loss, double vloss,
                    xtal_err *err)
{
    int rc = gen_trainer_save(r->trainer, r->ckpt, err);
    if (rc < 0) return rc;
    if (rank == 0 && (rc = save_model(r, err)) == XTAL_OK)
        rc = add_provenance(r, done, loss, vloss, err);
    if (size > 1) MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rc < 0 && rank != 0) xtal_err_set(err, rc, "rank 0 failed to write the model");
    return rc;
}

/* Fine-tuning: the weights of model file `path` replace the fresh initialization. Every rank
 * reads the same file, so all start identical, as the trainer requires. */
static int init_from(gen_model *m, const char *path, xtal_err *err)
{
    gen_model src;
    int rc = gen_model_load(&src, path, err);
    if (rc < 0) return rc;
    const gen_hparams *a = &src.hp, *b = &m->hp;
    if (a->hidden != b->hidden || a->layers != b->layers || a->n_freq != b->n_freq ||
        a->time_dim != b->time_dim || a->n_types != b->n_types || src.n_params != m->n_params)
        rc = xtal_err_set(err, XTAL_EINVALID,
                          "train.init_from %s: model size (hidden %d, layers %d, n_freq %d, "
                          "time_dim %d, %d types) differs from the config's (%d, %d, %d, %d, %d)",
                          path, a->hidden, a->layers, a->n_freq, a->time_dim, a->n_types,
                          b->hidden, b->layers, b->n_freq, b->time_dim, b->n_types);
    else
        memcpy(m->params, src.params, m->n_params * sizeof(float));
    gen_model_free(&src);
    return rc;
}

static void progress(int tty, long step, long total, long epoch, int epochs, double loss,
                     double vloss, double lr, double rate, int newline)
{
    char v[32] = "-";
    if (!isnan(vloss)) snprintf(v, sizeof v, "%.4f", vloss);
    fprintf(stderr,
            "%strain: step %ld/%ld  epoch %ld/%d  loss %.4f  val %s  lr %.2e  %.2f steps/s%s",
            tty ? "\r" : "", step, total, epoch, epochs, loss, v, lr, rate,
            newline || !tty ? "\n" : "");
    fflush(stderr);
}

static int train_main(train_run *r, int rank, int size, xtal_err *err)
{
    const pipe_train_config *cfg = r->cfg;
    const pipe_train_train_config *tr = &cfg->train;
    gen_hparams hp = gen_hparams_default();
    hp.hidden = cfg->model.hidden;
    hp.layers = cfg->model.layers;
    hp.n_freq = cfg->model.n_freq;
    hp.time_dim = cfg->model.time_dim;
    int rc, skipped_t = 0, skipped_v = 0;
    if ((rc = gen_hparams_check(&hp, err)) < 0) return rc;
    if ((rc = load_data(cfg->data.train, cfg->data.max_train, hp.n_types, &r->train, &skipped_t,
                        err)) < 0 ||
        (rc = load_data(cfg->data.val, cfg->data.max_val, hp.n_types, &r->val, &skipped_v, err)) <
            0)
        return rc;
    gen_diffusion d = gen_diffusion_default();
    d.sigma_min = cfg->diffusion.sigma_min;
    d.sigma_max = cfg->diffusion.sigma_max;
    d.p_keep_types = cfg->diffusion.p_keep_types;
    if ((rc = gen_diffusion_check(&d, err)) < 0) return rc;

    int n_train = r->train.crystals.n;
    int bs = tr->batch_size < n_train ? tr->batch_size : n_train;
    int spe = (n_train + bs - 1) / bs;
    long total = (long)spe * tr->epochs;

    gen_train_config tc = gen_train_config_default();
    tc.lr = (float)tr->lr;
    tc.warmup_steps = tr->warmup_steps;
    tc.total_steps = total;
    tc.weight_decay = (float)tr->weight_decay;
    tc.grad_clip = (float)tr->grad_clip;
    tc.ema_decay = (float)tr->ema_decay;
    tc.micro_batches = 1;
    tc.seed = tr->seed;
    if ((rc = gen_train_config_check(&tc, err)) < 0) return rc;
    if ((rc = gen_model_create(&r->model, &hp, tr->seed, err)) < 0) return rc;
    r->have_model = 1;
    if ((rc = set_natoms_hist(&r->model, &r->train.crystals, err)) < 0) return rc;
    if (tr->checkpoint)
        snprintf(r->ckpt, sizeof r->ckpt, "%s", tr->checkpoint);
    else
        snprintf(r->ckpt, sizeof r->ckpt, "%s.ckpt", tr->output);
    int resumed = access(r->ckpt, F_OK) == 0;
    /* before the trainer is created, so that its EMA starts from these weights too */
    if (!resumed && tr->init_from && (rc = init_from(&r->model, tr->init_from, err)) < 0)
        return rc;
    if ((rc = gen_trainer_create(&r->trainer, &r->model, &tc, NULL, err)) < 0) return rc;
    if (!(r->ws = gen_workspace_new())) return xtal_err_set(err, XTAL_ENOMEM, "out of memory");

    if (resumed) {
        if ((rc = gen_trainer_load(r->trainer, r->ckpt, err)) < 0) return rc;
        if ((rc = check_resumed(gen_trainer_config(r->trainer), &tc, r->ckpt, err)) < 0) return rc;
    }
    long done = gen_trainer_steps_done(r->trainer);

    r->tc = (train_ctx){.train = &r->train.crystals,
                        .n_train = n_train,
                        .batch_size = bs,
                        .steps_per_epoch = spe,
                        .seed = tr->seed,
                        .diff = d,
                        .order_epoch = -1};
    if (!(r->tc.order = malloc((size_t)n_train * sizeof(int))))
        return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
    if ((rc = val_make(&r->vs, &r->val.crystals, r->val.crystals.n, 64, tr->seed, &d, err)) < 0)
        return rc;

    int tty = rank == 0 && isatty(2);
    double vloss = NAN, loss = NAN, lr = 0;
    if ((rc = val_loss(r, &vloss, err)) < 0) return rc;
    if (rank == 0) {
        fprintf(
            stderr,
            "train: %d training crystals (%d skipped), %d validation (%d skipped), %d ranks, %d "
            "steps per epoch, %d epochs, %zu parameters\n",
            n_train, skipped_t, r->val.crystals.n, skipped_v, size, spe, tr->epochs,
            r->model.n_params);
        if (resumed) fprintf(stderr, "train: resumed from %s at step %ld\n", r->ckpt, done);
        fprintf(stderr, "train: val loss %.4f at step %ld\n", vloss, done);
    }
    double t0 = now_s();
    long s0 = done;
    if (done >= total && rank == 0)
        fprintf(stderr, "train: the checkpoint is already at step %ld of %ld\n", done, total);
    while (done < total) {
        gen_step_info info;
        if ((rc = gen_trainer_step(r->trainer, provider, &r->tc, &info, err)) < 0) return rc;
        done = info.step;
        loss = info.loss;
        lr = info.lr;
        if (!isfinite(loss))
            return xtal_err_set(err, XTAL_EINVALID, "the loss is not finite at step %ld", done);
        int end_epoch = done % spe == 0;
        if (end_epoch && (rc = val_loss(r, &vloss, err)) < 0) return rc;
        if (tr->checkpoint_every_steps > 0 && done % tr->checkpoint_every_steps == 0 &&
            done < total && (rc = save_all(r, rank, size, done, loss, vloss, err)) < 0)
            return rc;
        if (rank == 0 && (tty || end_epoch || done % 50 == 0)) {
            double el = now_s() - t0;
            progress(tty, done, total, (done + spe - 1) / spe, tr->epochs, loss, vloss, lr,
                     el > 0 ? (double)(done - s0) / el : 0, end_epoch);
        }
    }
    if ((rc = save_all(r, rank, size, done, loss, vloss, err)) == XTAL_OK && rank == 0)
        fprintf(stderr, "train: final val loss %.4f; %.1f s; model %s, checkpoint %s\n", vloss,
                now_s() - t0, tr->output, r->ckpt);
    return rc;
}

int pipe_cmd_train(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(train_help, stdout);
        return PIPE_EXIT_OK;
    }
    if (argc != 2 || argv[1][0] == '-') {
        pipe_error("train", "expected one config file (see druse train --help)");
        return PIPE_EXIT_USAGE;
    }
    train_run r;
    memset(&r, 0, sizeof r);
    xtal_err err = {{0}};
    int rc = pipe_train_config_load(argv[1], &r.cfg, &err);
    if (rc < 0) {
        pipe_error("train", "%s", err.msg);
        return PIPE_EXIT_FAILURE;
    }
    int inited = 0, rank = 0, size = 1;
    MPI_Initialized(&inited);
    if (!inited) MPI_Init(NULL, NULL);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    rc = train_main(&r, rank, size, &err);
    if (rc < 0 && rank == 0) pipe_error("train", "%s", err.msg);
    run_free(&r);
    if (rc < 0 && size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
    if (!inited) MPI_Finalize();
    return rc < 0 ? PIPE_EXIT_FAILURE : PIPE_EXIT_OK;
}
