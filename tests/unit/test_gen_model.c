/* Generator model files and parameter block (generator/model.c, generator/modelfile.c):
 * save/load round trip bit for bit, corrupt, truncated, missing and foreign files are clear
 * errors naming the file, deterministic initialization, SHA-256. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "crystal/crystal.h"
#include "generator/generator.h"

char *progname = "test_gen_model"; /* libcodcif needs it */

static char tmp_dir[512];

static int make_tmp_dir(void **state)
{
    (void)state;
    const char *base = getenv("DRUSE_TEST_TMP");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/test_gen_model.XXXXXX", base && base[0] ? base : "/tmp");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int remove_tmp_dir(void **state)
{
    (void)state;
    return rmdir(tmp_dir);
}

static void tmp_path(const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", tmp_dir, name);
}

static const gen_hparams small_hp = {
    .hidden = 16, .layers = 2, .n_freq = 4, .time_dim = 8, .n_types = GEN_DEFAULT_TYPES};

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static void spill(const char *path, const unsigned char *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    fclose(f);
}

static unsigned char *find_bytes(unsigned char *hay, size_t n, const void *needle, size_t k)
{
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(hay + i, needle, k)) return hay + i;
    return NULL;
}

static void test_sha256_vectors(void **state)
{
    (void)state;
    char hex[65];
    gen_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    gen_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *s = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    gen_sha256_hex(s, strlen(s), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_init_deterministic(void **state)
{
    (void)state;
    gen_model a, b, c;
    xtal_err err;
    assert_int_equal(gen_model_create(&a, &small_hp, 42, &err), XTAL_OK);
    assert_int_equal(gen_model_create(&b, &small_hp, 42, &err), XTAL_OK);
    assert_int_equal(gen_model_create(&c, &small_hp, 43, &err), XTAL_OK);
    assert_memory_equal(a.params, b.params, a.n_params * sizeof(float));
    assert_memory_not_equal(a.params, c.params, a.n_params * sizeof(float));
    /* ranges: Linear weights within 1/sqrt(fan_in), layer norms 1 and 0 */
    const gen_tensor *t = gen_model_tensor(&a, "layers.1.edge_mlp.0.weight");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 16);
    assert_int_equal(t->shape[1], 2 * 16 + 6 + 6 * 4);
    float lim = 1.0f / sqrtf((float)t->shape[1]);
    double mean = 0;
    for (size_t k = 0; k < t->size; k++) {
        assert_true(fabsf(a.params[t->offset + k]) <= lim);
        mean += a.params[t->offset + k];
    }
    assert_true(fabs(mean / (double)t->size) < 0.2 * lim);
    t = gen_model_tensor(&a, "final_ln.weight");
    assert_non_null(t);
    assert_true(a.params[t->offset] == 1.0f);
    assert_null(gen_model_tensor(&a, "no.such.tensor"));
    /* the tensors tile the block */
    size_t off = 0;
    for (int i = 0; i < a.n_tensors; i++) {
        assert_int_equal(a.tensors[i].offset, off);
        off += a.tensors[i].size;
    }
    assert_int_equal(off, a.n_params);
    for (uint64_t k = 0; k < 10000; k++) {
        float u = gen_uniform(9, k);
        assert_true(u >= -1.0f && u < 1.0f);
    }
    /* the default size (docs/generator.md gives the count formula) */
    gen_hparams dh = gen_hparams_default();
    gen_model_free(&b);
    assert_int_equal(gen_model_create(&b, &dh, 1, &err), XTAL_OK);
    assert_int_equal(b.n_params, 550116);
    assert_int_equal(b.n_tensors, 11 + 10 * dh.layers);
    gen_hparams bad = small_hp;
    bad.time_dim = 7;
    gen_model_free(&b);
    assert_int_equal(gen_model_create(&b, &bad, 1, &err), XTAL_EINVALID);
    assert_null(b.params);
    assert_non_null(strstr(err.msg, "time embedding"));
    gen_model_free(&a);
    gen_model_free(&c);
}

static void test_round_trip(void **state)
{
    (void)state;
    char path[1024];
    tmp_path("model.h5", path, sizeof path);
    gen_model a, b;
    xtal_err err;
    assert_int_equal(gen_model_create(&a, &small_hp, 7, &err), XTAL_OK);
    /* values that are not exactly representable in decimal */
    for (size_t k = 0; k < a.n_params; k += 97) a.params[k] = nextafterf(a.params[k], 1.0f);
    assert_int_equal(gen_model_save(&a, path, &err), XTAL_OK);
    assert_int_equal(gen_model_load(&b, path, &err), XTAL_OK);
    assert_memory_equal(&a.hp, &b.hp, sizeof a.hp);
    assert_int_equal(a.n_params, b.n_params);
    assert_int_equal(a.n_tensors, b.n_tensors);
    assert_memory_equal(a.params, b.params, a.n_params * sizeof(float));
    for (int i = 0; i < a.n_tensors; i++) assert_string_equal(a.tensors[i].name, b.tensors[i].name);
    char h1[65], h2[65];
    gen_params_sha256(&a, h1);
    gen_params_sha256(&b, h2);
    assert_string_equal(h1, h2);
    /* save again over the same name: replaced, still loads */
    assert_int_equal(gen_model_save(&b, path, &err), XTAL_OK);
    gen_model_free(&b);
    assert_int_equal(gen_model_load(&b, path, &err), XTAL_OK);
    assert_memory_equal(a.params, b.params, a.n_params * sizeof(float));
    gen_model_free(&a);
    gen_model_free(&b);
    unlink(path);
}

static void test_corrupt_files(void **state)
{
    (void)state;
    char path[1024], bad[1024];
    tmp_path("model.h5", path, sizeof path);
    tmp_path("bad.h5", bad, sizeof bad);
    gen_model a, b;
    xtal_err err;
    assert_int_equal(gen_model_create(&a, &small_hp, 7, &err), XTAL_OK);
    assert_int_equal(gen_model_save(&a, path, &err), XTAL_OK);
    size_t n;
    unsigned char *buf = slurp(path, &n);

    /* a bit flipped inside a tensor's stored data: the checksum catches it */
    const gen_tensor *t = gen_model_tensor(&a, "layers.1.edge_mlp.0.weight");
    unsigned char *hit = find_bytes(buf, n, a.params + t->offset, 64);
    assert_non_null(hit);
    hit[100] ^= 0x10;
    spill(bad, buf, n);
    assert_int_not_equal(gen_model_load(&b, bad, &err), XTAL_OK);
    assert_non_null(strstr(err.msg, bad));
    assert_non_null(strstr(err.msg, "checksum"));
    assert_null(b.params);
    hit[100] ^= 0x10;

    /* truncated at several lengths */
    size_t cuts[] = {0, 7, n / 3, n / 2, n - 100, n - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        spill(bad, buf, cuts[k]);
        int rc = gen_model_load(&b, bad, &err);
        assert_int_not_equal(rc, XTAL_OK);
        assert_non_null(strstr(err.msg, bad));
    }

    /* not HDF5 at all */
    spill(bad, (const unsigned char *)"hello, not a model\n", 19);
    assert_int_equal(gen_model_load(&b, bad, &err), XTAL_EPARSE);
    assert_non_null(strstr(err.msg, bad));

    /* missing */
    unlink(bad);
    assert_int_equal(gen_model_load(&b, bad, &err), XTAL_EIO);
    assert_non_null(strstr(err.msg, bad));

    /* unwritable destination */
    assert_int_equal(gen_model_save(&a, "/nonexistent-dir/model.h5", &err), XTAL_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/model.h5"));

    free(buf);
    gen_model_free(&a);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_init_deterministic),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_corrupt_files),
    };
    return cmocka_run_group_tests(tests, make_tmp_dir, remove_tmp_dir);
}
