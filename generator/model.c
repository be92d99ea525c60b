/* generator/model.c: hyperparameters, the parameter table and block, deterministic
 * initialization, counter-based random numbers, SHA-256. */
#include "generator/generator.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

gen_hparams gen_hparams_default(void)
{
    gen_hparams hp = {
        .hidden = 128, .layers = 4, .n_freq = 32, .time_dim = 64, .n_types = GEN_DEFAULT_TYPES};
    return hp;
}

int gen_hparams_check(const gen_hparams *hp, xtal_err *err)
{
    if (hp->hidden < 1 || hp->hidden > 4096)
        return xtal_err_set(err, XTAL_EINVALID, "hidden size %d outside 1..4096", hp->hidden);
    if (hp->layers < 1 || hp->layers > 64)
        return xtal_err_set(err, XTAL_EINVALID, "layers %d outside 1..64", hp->layers);
    if (hp->n_freq < 1 || hp->n_freq > 512)
        return xtal_err_set(err, XTAL_EINVALID, "Fourier frequencies %d outside 1..512",
                            hp->n_freq);
    if (hp->time_dim < 2 || hp->time_dim > 4096 || hp->time_dim % 2)
        return xtal_err_set(err, XTAL_EINVALID, "time embedding size %d not even in 2..4096",
                            hp->time_dim);
    if (hp->n_types < 2 || hp->n_types > 200)
        return xtal_err_set(err, XTAL_EINVALID, "type vocabulary %d outside 2..200", hp->n_types);
    return XTAL_OK;
}

/* ------------------------------------------------------- parameter table */

/* out = prefix + suffix. The prefixes are the short fixed names of build_table, far below
 * GEN_NAME_MAX; the clamp only keeps the buffer safe. */
static void join_name(char out[GEN_NAME_MAX], const char *prefix, const char *suffix)
{
    size_t ns = strlen(suffix), np = strlen(prefix);
    if (np + ns >= GEN_NAME_MAX) np = GEN_NAME_MAX - 1 - ns;
    memcpy(out, prefix, np);
    memcpy(out + np, suffix, ns + 1);
}

static void add_tensor(gen_model *m, const char *name, int rows, int cols, int ndim)
{
    gen_tensor *t = &m->tensors[m->n_tensors++];
    join_name(t->name, name, "");
    t->ndim = ndim;
    t->shape[0] = rows;
    t->shape[1] = ndim == 2 ? cols : 1;
    t->offset = m->n_params;
    t->size = (size_t)t->shape[0] * (size_t)t->shape[1];
    m->n_params += t->size;
}

static void add_linear(gen_model *m, const char *prefix, int out, int in, int bias)
{
    char name[GEN_NAME_MAX];
    join_name(name, prefix, ".weight");
    add_tensor(m, name, out, in, 2);
    if (bias) {
        join_name(name, prefix, ".bias");
        add_tensor(m, name, out, 1, 1);
    }
}

static void add_ln(gen_model *m, const char *prefix, int d)
{
    char name[GEN_NAME_MAX];
    join_name(name, prefix, ".weight");
    add_tensor(m, name, d, 1, 1);
    join_name(name, prefix, ".bias");
    add_tensor(m, name, d, 1, 1);
}

/* The order here is the order of the block, of the files and of the checksum; net.c indexes
 * the table in this order (5 + 10 per layer + 6 tensors). */
static void build_table(gen_model *m)
{
    const gen_hparams *hp = &m->hp;
    int d = hp->hidden;
    char p[GEN_NAME_MAX];
    m->n_tensors = 0;
    m->n_params = 0;
    add_tensor(m, "type_embed.weight", hp->n_types, d, 2);
    add_linear(m, "time_mlp.0", d, hp->time_dim, 1);
    add_linear(m, "time_mlp.2", d, d, 1);
    for (int l = 0; l < hp->layers; l++) {
        snprintf(p, sizeof p, "layers.%d.ln", l);
        add_ln(m, p, d);
        snprintf(p, sizeof p, "layers.%d.edge_mlp.0", l);
        add_linear(m, p, d, 2 * d + 6 + 6 * hp->n_freq, 1);
        snprintf(p, sizeof p, "layers.%d.edge_mlp.2", l);
        add_linear(m, p, d, d, 1);
        snprintf(p, sizeof p, "layers.%d.node_mlp.0", l);
        add_linear(m, p, d, 2 * d, 1);
        snprintf(p, sizeof p, "layers.%d.node_mlp.2", l);
        add_linear(m, p, d, d, 1);
    }
    add_ln(m, "final_ln", d);
    add_linear(m, "coord_head", 3, d, 0);
    add_linear(m, "lattice_head", 9, d, 0);
    add_linear(m, "type_head", hp->n_types - 1, d, 1);
}

static int table_size(const gen_hparams *hp)
{
    return 11 + 10 * hp->layers;
}

int gen_model_create(gen_model *m, const gen_hparams *hp, uint64_t seed, xtal_err *err)
{
    memset(m, 0, sizeof *m);
    int rc = gen_hparams_check(hp, err);
    if (rc) return rc;
    m->hp = *hp;
    m->tensors = calloc((size_t)table_size(hp), sizeof *m->tensors);
    if (!m->tensors) return xtal_err_set(err, XTAL_ENOMEM, "out of memory (model table)");
    build_table(m);
    m->params = malloc(m->n_params * sizeof(float));
    m->grads = calloc(m->n_params, sizeof(float));
    if (!m->params || !m->grads) {
        gen_model_free(m);
        return xtal_err_set(err, XTAL_ENOMEM, "out of memory (%zu parameters)", m->n_params);
    }
    gen_model_init_params(m, seed);
    return XTAL_OK;
}

void gen_model_free(gen_model *m)
{
    free(m->params);
    free(m->grads);
    free(m->tensors);
    free(m->natoms_hist);
    memset(m, 0, sizeof *m);
}

int gen_model_set_natoms_hist(gen_model *m, const double *hist, int len, xtal_err *err)
{
    if (len < 0 || len > XTAL_MAX_ATOMS + 1)
        return xtal_err_set(err, XTAL_ELIMIT, "atom-count histogram of length %d (at most %d)",
                            len, XTAL_MAX_ATOMS + 1);
    for (int k = 0; k < len; k++)
        if (!(hist[k] >= 0) || !isfinite(hist[k]))
            return xtal_err_set(err, XTAL_EINVALID, "atom-count histogram weight %d is %g", k,
                                hist[k]);
    double *copy = NULL;
    if (len > 0) {
        if (!(copy = malloc((size_t)len * sizeof *copy)))
            return xtal_err_set(err, XTAL_ENOMEM, "out of memory");
        memcpy(copy, hist, (size_t)len * sizeof *copy);
    }
    free(m->natoms_hist);
    m->natoms_hist = copy;
    m->natoms_hist_len = len;
    return XTAL_OK;
}

const gen_tensor *gen_model_tensor(const gen_model *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

void gen_zero_grad(gen_model *m)
{
    memset(m->grads, 0, m->n_params * sizeof(float));
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

void gen_model_init_params(gen_model *m, uint64_t seed)
{
    int fan_in = 1;
    for (int ti = 0; ti < m->n_tensors; ti++) {
        const gen_tensor *t = &m->tensors[ti];
        float *p = m->params + t->offset;
        int is_ln = strstr(t->name, "ln.") != NULL;
        if (is_ln) {
            float v = ends_with(t->name, ".weight") ? 1.0f : 0.0f;
            for (size_t k = 0; k < t->size; k++) p[k] = v;
            continue;
        }
        float scale;
        if (!strcmp(t->name, "type_embed.weight")) {
            scale = 1.0f;
        } else {
            if (t->ndim == 2) fan_in = t->shape[1]; /* a bias follows its weight */
            scale = 1.0f / sqrtf((float)fan_in);
        }
        for (size_t k = 0; k < t->size; k++)
            p[k] = scale * gen_uniform(seed, (uint64_t)(t->offset + k));
    }
}

/* ------------------------------------------------------------------ RNG */

uint64_t gen_hash64(uint64_t seed, uint64_t counter)
{
    /* SplitMix64 finalizer applied twice: decorrelates nearby seeds and counters. */
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (counter + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    z += 0x9E3779B97F4A7C15ull ^ seed;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float gen_uniform(uint64_t seed, uint64_t counter)
{
    uint32_t bits = (uint32_t)(gen_hash64(seed, counter) >> 40); /* 24 bits */
    return (float)bits * (2.0f / 16777216.0f) - 1.0f;
}

/* -------------------------------------------------------------- SHA-256 */

typedef struct {
    uint32_t h[8];
    uint64_t len;
    unsigned char buf[64];
    size_t nbuf;
} sha256_ctx;

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror32(uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha256_block(sha256_ctx *c, const unsigned char *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4], f = c->h[5],
             g = c->h[6], h = c->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + S1 + ch + K256[i] + w[i];
        uint32_t S0 = ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22);
        uint32_t mj = (a & b) ^ (a & cc) ^ (b & cc);
        uint32_t t2 = S0 + mj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = cc;
        cc = b;
        b = a;
        a = t1 + t2;
    }
    c->h[0] += a;
    c->h[1] += b;
    c->h[2] += cc;
    c->h[3] += d;
    c->h[4] += e;
    c->h[5] += f;
    c->h[6] += g;
    c->h[7] += h;
}

static void sha256_init(sha256_ctx *c)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, h0, sizeof h0);
    c->len = 0;
    c->nbuf = 0;
}

static void sha256_update(sha256_ctx *c, const void *data, size_t n)
{
    const unsigned char *p = data;
    c->len += n;
    while (n > 0) {
        size_t k = 64 - c->nbuf;
        if (k > n) k = n;
        memcpy(c->buf + c->nbuf, p, k);
        c->nbuf += k;
        p += k;
        n -= k;
        if (c->nbuf == 64) {
            sha256_block(c, c->buf);
            c->nbuf = 0;
        }
    }
}

static void sha256_final_hex(sha256_ctx *c, char hex[65])
{
    uint64_t bits = c->len * 8;
    unsigned char pad = 0x80, zero = 0, lenb[8];
    sha256_update(c, &pad, 1);
    while (c->nbuf != 56) sha256_update(c, &zero, 1);
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_update(c, lenb, 8);
    for (int i = 0; i < 8; i++) snprintf(hex + 8 * i, 9, "%08x", c->h[i]);
}

void gen_sha256_hex(const void *data, size_t len, char hex[65])
{
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, data, len);
    sha256_final_hex(&c, hex);
}

void gen_params_sha256(const gen_model *m, char hex[65])
{
    sha256_ctx c;
    sha256_init(&c);
    unsigned char buf[4096];
    size_t nb = 0;
    for (size_t k = 0; k < m->n_params; k++) {
        uint32_t u;
        memcpy(&u, &m->params[k], 4);
        for (int i = 0; i < 4; i++) buf[nb++] = (unsigned char)(u >> (8 * i)); /* little end */
        if (nb == sizeof buf) {
            sha256_update(&c, buf, nb);
            nb = 0;
        }
    }
    sha256_update(&c, buf, nb);
    sha256_final_hex(&c, hex);
}
