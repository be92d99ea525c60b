/* Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
 * SC'11; the Random123 library) and the counter layout of druse's determinism contract:
 * key = campaign seed, counter = (batch id, index in batch, step | stream << 24, block). */
#include <math.h>

#include "generator/generator.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void gen_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

static void block(const gen_rng_key *k, uint32_t b, uint32_t out[4])
{
    uint32_t key[2] = {(uint32_t)k->seed, (uint32_t)(k->seed >> 32)};
    uint32_t ctr[4] = {k->batch, k->index, (k->step & 0xFFFFFFu) | (k->stream << 24), b};
    gen_philox4x32_10(ctr, key, out);
}

static double to_unit(uint32_t x)
{
    return ((double)x + 0.5) * (1.0 / 4294967296.0);
}

void gen_rng_uniform(const gen_rng_key *k, uint32_t first, int n, double *out)
{
    uint32_t buf[4], cur = UINT32_MAX;
    int have = 0;
    for (int i = 0; i < n; i++) {
        uint32_t j = first + (uint32_t)i, b = j >> 2;
        if (!have || b != cur) {
            block(k, b, buf);
            cur = b;
            have = 1;
        }
        out[i] = to_unit(buf[j & 3]);
    }
}

void gen_rng_normal(const gen_rng_key *k, uint32_t first, int n, double *out)
{
    uint32_t buf[4], cur = UINT32_MAX;
    double z[4];
    int have = 0;
    for (int i = 0; i < n; i++) {
        uint32_t j = first + (uint32_t)i, b = j >> 2;
        if (!have || b != cur) {
            block(k, b, buf);
            cur = b;
            have = 1;
            for (int p = 0; p < 2; p++) {
                double u1 = to_unit(buf[2 * p]), u2 = to_unit(buf[2 * p + 1]);
                double r = sqrt(-2.0 * log(u1)), th = 2.0 * M_PI * u2;
                z[2 * p] = r * cos(th);
                z[2 * p + 1] = r * sin(th);
            }
        }
        out[i] = z[j & 3];
    }
}
