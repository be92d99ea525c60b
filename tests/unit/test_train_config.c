/* Training configs (pipeline/config.c, pipe_train_config_load): the shipped configs load with
 * their values and the defaults, and every error class names file, line and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/pipeline.h"

char *progname = "test"; /* libcodcif, linked into the library, needs it */

/* The source tree: $DRUSE_SOURCE_DIR (set by ctest), else from this file's path. */
static const char *source_dir(void)
{
    static char dir[1024];
    const char *env = getenv("DRUSE_SOURCE_DIR");
    if (env && *env) return env;
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *cut = strstr(dir, "/tests/unit/");
    if (cut) *cut = '\0';
    return dir;
}

static void test_shipped_configs(void **state)
{
    char path[1200];
    xtal_err err = {{0}};
    pipe_train_config *cfg = NULL;

    snprintf(path, sizeof path, "%s/configs/train-tiny.yaml", source_dir());
    int rc = pipe_train_config_load(path, &cfg, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, XTAL_OK);
    assert_string_equal(cfg->data.train, "../shared/data/perov_5/test.csv.gz");
    assert_int_equal(cfg->model.hidden, 32);
    assert_int_equal(cfg->train.batch_size, 32);
    assert_true(cfg->train.epochs >= 1 && cfg->train.epochs <= 10);
    assert_non_null(cfg->train.output);
    /* defaults */
    assert_true(cfg->diffusion.sigma_min == 0.005 && cfg->diffusion.sigma_max == 0.5);
    assert_true(cfg->diffusion.p_keep_types == 0.25);
    assert_true(cfg->train.weight_decay == 0.0);
    assert_non_null(strstr(cfg->text, "data:"));
    pipe_train_config_free(cfg);

    snprintf(path, sizeof path, "%s/configs/train-mp20.yaml", source_dir());
    rc = pipe_train_config_load(path, &cfg, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, XTAL_OK);
    assert_string_equal(cfg->data.train, "../shared/data/mp_20/train.csv.gz");
    assert_int_equal(cfg->model.hidden, 128);
    assert_int_equal(cfg->model.layers, 4);
    assert_true(cfg->train.ema_decay == 0.999);
    pipe_train_config_free(cfg);
}

static void test_defaults(void **state)
{
    const char *text = "data:\n  train: a.csv\n  val: b.csv\ntrain:\n  epochs: 3\n  output: m.h5\n";
    xtal_err err = {{0}};
    pipe_train_config *cfg = NULL;
    assert_int_equal(pipe_train_config_load_string(text, strlen(text), "t.yaml", &cfg, &err),
                     XTAL_OK);
    assert_int_equal(cfg->data.max_train, 0);
    assert_int_equal(cfg->data.max_val, 256);
    assert_int_equal(cfg->model.hidden, 128);
    assert_int_equal(cfg->model.layers, 4);
    assert_int_equal(cfg->model.n_freq, 32);
    assert_int_equal(cfg->model.time_dim, 64);
    assert_int_equal(cfg->train.seed, 42);
    assert_int_equal(cfg->train.batch_size, 64);
    assert_true(cfg->train.lr == 1e-3);
    assert_int_equal(cfg->train.warmup_steps, 100);
    assert_true(cfg->train.grad_clip == 1.0);
    assert_true(cfg->train.ema_decay == 0.0);
    assert_int_equal(cfg->train.checkpoint_every_steps, 500);
    assert_null(cfg->train.checkpoint);
    pipe_train_config_free(cfg);
}

/* The text must fail with a message containing every one of the wanted pieces. */
static void expect_error(const char *text, const char *want1, const char *want2)
{
    xtal_err err = {{0}};
    pipe_train_config *cfg = NULL;
    int rc = pipe_train_config_load_string(text, strlen(text), "t.yaml", &cfg, &err);
    if (rc == XTAL_OK || !strstr(err.msg, want1) || (want2 && !strstr(err.msg, want2)))
        fprintf(stderr, "text:\n%s\nmessage: %s\nwanted: %s / %s\n", text, err.msg, want1,
                want2 ? want2 : "");
    assert_true(rc < 0);
    assert_null(cfg);
    assert_non_null(strstr(err.msg, want1));
    if (want2) assert_non_null(strstr(err.msg, want2));
}

#define HEAD "data:\n  train: a.csv\n  val: b.csv\n"

static void test_errors(void **state)
{
    /* unknown key, with a hint */
    expect_error(HEAD "train:\n  epochs: 3\n  output: m.h5\n  bach_size: 4\n",
                 "t.yaml:7: key 'train.bach_size': unknown key", "did you mean 'batch_size'");
    expect_error(HEAD "optim:\n  lr: 1\n", "t.yaml:4: key 'optim': unknown key", NULL);
    /* wrong type */
    expect_error(HEAD "train:\n  epochs: three\n  output: m.h5\n", "t.yaml:5: key 'train.epochs'",
                 NULL);
    expect_error(HEAD "train:\n  epochs: 3\n  lr: fast\n  output: m.h5\n",
                 "t.yaml:6: key 'train.lr'", NULL);
    /* missing */
    expect_error(HEAD "train:\n  epochs: 3\n", "key 'train.output': required key missing", NULL);
    expect_error("train:\n  epochs: 3\n  output: m.h5\n", "key 'data': required key missing", NULL);
    expect_error("data:\n  train: a.csv\ntrain:\n  epochs: 3\n  output: m.h5\n",
                 "key 'data.val': required key missing", NULL);
    /* out of range */
    expect_error(HEAD "train:\n  epochs: 0\n  output: m.h5\n",
                 "t.yaml:5: key 'train.epochs': must be in [1,", NULL);
    expect_error(HEAD "train:\n  epochs: 2\n  output: m.h5\n  ema_decay: 1\n",
                 "t.yaml:7: key 'train.ema_decay': must be in [0, 1), got 1", NULL);
    expect_error(HEAD "model:\n  time_dim: 15\ntrain:\n  epochs: 2\n  output: m.h5\n",
                 "t.yaml:5: key 'model.time_dim': must be even", NULL);
    expect_error(HEAD "train:\n  epochs: 2\n  output: m.h5\ndiffusion:\n  sigma_min: 0.5\n  "
                      "sigma_max: 0.1\n",
                 "t.yaml:9: key 'diffusion.sigma_max': must be above", NULL);
    expect_error(HEAD "train:\n  epochs: 2\n  batch_size: -3\n  output: m.h5\n",
                 "t.yaml:6: key 'train.batch_size'", NULL);
    /* empty and not a mapping */
    expect_error("", "t.yaml:1:", "'data' and 'train'");
    expect_error("- 1\n", "t.yaml:1:", "data, model, train, diffusion");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_configs),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
