/* Campaign configs (pipeline/config.c): the shipped configs load, defaults are applied, range
 * limits hold, the printed config loads back, and every error class names file, line and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pipeline/pipeline.h"

char *progname = "test"; /* libcodcif, linked into the library, needs it */

static char tmpdir[1024];

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

static int setup_tmpdir(void **state)
{
    const char *base = getenv("DRUSE_TEST_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/config-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(tmpdir)) return 0;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/druse-config-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
    return rmdir(tmpdir);
}

/* Writes len bytes of text to tmpdir/name and loads it; the file is removed again. */
static int load_bytes(const char *name, const char *text, size_t len, pipe_config **cfg,
                      xtal_err *err)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    err->msg[0] = '\0';
    int rc = pipe_config_load(path, cfg, err);
    unlink(path);
    return rc;
}

static int load_text(const char *name, const char *text, pipe_config **cfg, xtal_err *err)
{
    return load_bytes(name, text, strlen(text), cfg, err);
}

static void assert_contains(const char *msg, const char *part)
{
    if (!strstr(msg, part)) fail_msg("message \"%s\" lacks \"%s\"", msg, part);
}

/* A failing load whose message holds "NAME:LINE:" and, unless key is NULL, "'KEY'". */
static void expect_error_bytes(const char *name, const char *text, size_t len, int line,
                               const char *key)
{
    pipe_config *cfg = NULL;
    xtal_err err;
    int rc = load_bytes(name, text, len, &cfg, &err);
    if (rc >= 0) fail_msg("%s loaded, expected an error", name);
    assert_null(cfg);
    char want[256];
    snprintf(want, sizeof want, "/%s:%d:", name, line);
    assert_contains(err.msg, want);
    if (key) {
        snprintf(want, sizeof want, "'%s'", key);
        assert_contains(err.msg, want);
    }
}

static void expect_error(const char *name, const char *text, int line, const char *key)
{
    expect_error_bytes(name, text, strlen(text), line, key);
}

/* The required keys, 7 lines; a test appends its own keys below. */
#define HEAD                                                                                       \
    "campaign:\n"                                                                                  \
    "  name: t\n"                                                                                  \
    "  seed: 1\n"                                                                                  \
    "  model: m.h5\n"                                                                              \
    "  output: o.h5\n"                                                                             \
    "  batches: 4\n"                                                                               \
    "# end of the required keys\n"

static pipe_config *load_ok(const char *name, const char *text)
{
    pipe_config *cfg = NULL;
    xtal_err err;
    if (load_text(name, text, &cfg, &err) < 0) fail_msg("%s: %s", name, err.msg);
    assert_non_null(cfg);
    return cfg;
}

static pipe_config *load_shipped(const char *file)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/configs/%s", source_dir(), file);
    pipe_config *cfg = NULL;
    xtal_err err;
    if (pipe_config_load(path, &cfg, &err) < 0) fail_msg("%s: %s", path, err.msg);
    assert_string_equal(cfg->source, path);
    return cfg;
}

/* ---------------------------------------------------------------- shipped */

static void test_shipped_configs_load(void **state)
{
    pipe_config *demo = load_shipped("demo.yaml");
    assert_string_equal(demo->campaign.model, "models/mp20.h5");
    assert_string_equal(demo->campaign.output, "runs/demo.h5");
    assert_int_equal(demo->campaign.batches, 8);
    assert_int_equal(demo->campaign.batch_size, 16);
    assert_int_equal(demo->sampling.steps, 100);
    pipe_config_free(demo);

    pipe_config *night = load_shipped("mp20-overnight.yaml");
    assert_int_equal(night->sampling.steps, 100);
    assert_true(night->campaign.batches >= 1000);
    pipe_config_free(night);

    pipe_config *example = load_shipped("example.yaml");
    assert_non_null(example->text);
    assert_non_null(strstr(example->text, "campaign:"));
    pipe_config_free(example);
}

/* The defaults a config gets when it gives only the required keys. */
static void assert_defaults(const pipe_config *cfg)
{
    const pipe_campaign_config *k = &cfg->campaign;
    assert_int_equal(k->batch_size, 64);
    assert_true(k->commit_interval_s == 300);
    assert_int_equal(k->shard.index, 0);
    assert_int_equal(k->shard.count, 1);
    const pipe_sampling_config *s = &cfg->sampling;
    assert_int_equal(s->steps, 100);
    assert_int_equal(s->natoms, 0);
    assert_null(s->composition);
    assert_null(s->elements);
    assert_int_equal(s->n_elements, 0);
    assert_int_equal(s->n_species, 0);
    assert_true(s->type_temperature == 1 && s->noise_scale == 1);
    const pipe_filters_config *f = &cfg->filters;
    assert_int_equal(f->distance_rule, PIPE_DISTANCE_COVALENT);
    assert_true(f->distance_scale == 0.5 && f->min_distance_A == 0.5);
    assert_int_equal(f->charge_neutrality, 1);
    assert_true(f->symprec_A == 0.1 && f->angle_tolerance_deg == 5);
    assert_int_equal(f->uniqueness, 1);
    assert_null(f->novelty_reference);
    const pipe_relax_config *r = &cfg->relax;
    assert_int_equal(r->enabled, 1);
    assert_int_equal(r->potential, PIPE_POTENTIAL_MP20);
    assert_true(r->fmax_eV_A == 0.05 && r->max_stress_GPa == 0.1);
    assert_int_equal(r->max_steps, 500);
    assert_int_equal(r->fixed_cell, 0);
}

static void test_defaults(void **state)
{
    pipe_config *cfg = load_ok("minimal.yaml", HEAD);
    assert_string_equal(cfg->campaign.name, "t");
    assert_true(cfg->campaign.seed == 1);
    assert_int_equal(cfg->campaign.batches, 4);
    assert_defaults(cfg);
    pipe_config_free(cfg);

    /* Empty sections and an empty shard take the defaults too. */
    cfg = load_ok("empty-sections.yaml", "campaign: {name: t, seed: 1, model: m, output: o, "
                                         "batches: 4, shard: {}}\n"
                                         "sampling: {}\nfilters: {}\nrelax: {}\n");
    assert_defaults(cfg);
    pipe_config_free(cfg);
}

/* example.yaml documents the defaults: its optional keys hold exactly them. */
static void test_example_holds_the_defaults(void **state)
{
    pipe_config *cfg = load_shipped("example.yaml");
    assert_defaults(cfg);
    pipe_config_free(cfg);
}

static void test_values_are_read(void **state)
{
    pipe_config *cfg = load_ok("values.yaml", HEAD "sampling:\n"
                                                   "  natoms: 14\n"
                                                   "  composition: LiFePO4\n"
                                                   "  elements: [Li, Fe, P, O, Mn]\n"
                                                   "filters:\n"
                                                   "  distance_rule: benchmark\n"
                                                   "  charge_neutrality: no\n"
                                                   "  uniqueness: off\n"
                                                   "  angle_tolerance_deg: -1\n"
                                                   "  novelty_reference: data/train.csv\n"
                                                   "relax:\n"
                                                   "  enabled: False\n"
                                                   "  fixed_cell: yes\n");
    const pipe_sampling_config *s = &cfg->sampling;
    assert_int_equal(s->n_elements, 5);
    int Z[] = {3, 26, 15, 8, 25};
    for (int i = 0; i < 5; i++) assert_int_equal(s->element_Z[i], Z[i]);
    assert_int_equal(s->n_species, 4);
    assert_int_equal(s->formula_atoms, 7);
    assert_int_equal(s->species_Z[3], 8);
    assert_int_equal(s->species_count[3], 4);
    assert_int_equal(cfg->filters.distance_rule, PIPE_DISTANCE_BENCHMARK);
    assert_int_equal(cfg->filters.charge_neutrality, 0);
    assert_int_equal(cfg->filters.uniqueness, 0);
    assert_true(cfg->filters.angle_tolerance_deg == -1);
    assert_string_equal(cfg->filters.novelty_reference, "data/train.csv");
    assert_int_equal(cfg->relax.enabled, 0);
    assert_int_equal(cfg->relax.fixed_cell, 1);
    pipe_config_free(cfg);

    cfg = load_ok("seed.yaml", "campaign: {name: x, seed: 18446744073709551615, model: m, "
                               "output: o, batches: 2147483647}\n");
    assert_true(cfg->campaign.seed == UINT64_MAX);
    pipe_config_free(cfg);
}

/* ------------------------------------------------------------- round trip */

static char *print_to_string(const pipe_config *cfg)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    assert_non_null(f);
    pipe_config_print(f, cfg);
    assert_int_equal(fclose(f), 0);
    return buf;
}

static void assert_round_trip(pipe_config *cfg)
{
    char *first = print_to_string(cfg);
    pipe_config *again = load_ok("printed.yaml", first);
    char *second = print_to_string(again);
    assert_string_equal(first, second);
    assert_true(again->campaign.seed == cfg->campaign.seed);
    assert_true(again->filters.symprec_A == cfg->filters.symprec_A);
    assert_true(again->relax.fmax_eV_A == cfg->relax.fmax_eV_A);
    free(first);
    free(second);
    pipe_config_free(again);
}

static void test_printed_config_loads_back(void **state)
{
    const char *files[] = {"example.yaml", "demo.yaml", "mp20-overnight.yaml"};
    for (int i = 0; i < 3; i++) {
        pipe_config *cfg = load_shipped(files[i]);
        assert_round_trip(cfg);
        pipe_config_free(cfg);
    }
    pipe_config *cfg = load_ok("odd.yaml", "campaign:\n"
                                           "  name: \"quote \\\" and \\\\ back, caf\xc3\xa9\"\n"
                                           "  seed: 18446744073709551615\n"
                                           "  model: 'a b: c.h5'\n"
                                           "  output: \"#o.h5\"\n"
                                           "  batches: 3\n"
                                           "  commit_interval_s: 0.1\n"
                                           "sampling: {composition: Fe2O3, elements: [Fe, O]}\n"
                                           "filters: {symprec_A: 1e-5, distance_scale: "
                                           "0.30000000000000004}\n");
    assert_string_equal(cfg->campaign.name, "quote \" and \\ back, caf\xc3\xa9");
    assert_round_trip(cfg);
    pipe_config_free(cfg);
}

static void test_load_string(void **state)
{
    /* Not NUL-terminated: the length counts. */
    char text[] = HEAD "garbage that is not part of the config";
    size_t len = strlen(HEAD);
    pipe_config *cfg = NULL;
    xtal_err err;
    assert_int_equal(pipe_config_load_string(text, len, "archive:/campaign/config", &cfg, &err),
                     XTAL_OK);
    assert_string_equal(cfg->source, "archive:/campaign/config");
    assert_int_equal(strlen(cfg->text), len);
    pipe_config_free(cfg);
    assert_true(pipe_config_load_string(text, strlen(text), NULL, &cfg, &err) < 0);
    assert_null(cfg);
    assert_contains(err.msg, "<config>:8:1: YAML syntax error");
    pipe_config_free(NULL);
}

/* ---------------------------------------------------------- error classes */

static void test_unknown_key(void **state)
{
    expect_error("unknown.yaml", HEAD "filters:\n  symprec: 0.1\n", 9, "filters.symprec");
    expect_error("unknown-top.yaml", HEAD "sampler:\n  steps: 3\n", 8, "sampler");
    expect_error("unknown-deep.yaml", HEAD "  shard:\n    index: 0\n    cont: 2\n", 10,
                 "campaign.shard.cont");
    pipe_config *cfg = NULL;
    xtal_err err;
    load_text("hint.yaml", HEAD "filters:\n  symprec: 0.1\n", &cfg, &err);
    assert_contains(err.msg, "did you mean 'symprec_A'");
}

static void test_wrong_type(void **state)
{
    expect_error("int.yaml", HEAD "relax:\n  max_steps: abc\n", 9, "relax.max_steps");
    expect_error("int-float.yaml", HEAD "relax:\n  max_steps: 5.0\n", 9, "relax.max_steps");
    expect_error("int-octal.yaml", HEAD "relax:\n  max_steps: 010\n", 9, "relax.max_steps");
    expect_error("float.yaml", HEAD "relax:\n  fmax_eV_A: 1.5x\n", 9, "relax.fmax_eV_A");
    expect_error("float-nan.yaml", HEAD "relax:\n  fmax_eV_A: nan\n", 9, "relax.fmax_eV_A");
    expect_error("bool.yaml", HEAD "relax:\n  enabled: maybe\n", 9, "relax.enabled");
    expect_error("enum.yaml", HEAD "relax:\n  potential: lj\n", 9, "relax.potential");
    expect_error("uint-negative.yaml", "campaign:\n  seed: -5\n", 2, "campaign.seed");
    expect_error("uint-overflow.yaml", "campaign:\n  seed: 18446744073709551616\n", 2,
                 "campaign.seed");
    expect_error("int-overflow.yaml", HEAD "relax:\n  max_steps: 2147483648\n", 9,
                 "relax.max_steps");
    expect_error("section-scalar.yaml", HEAD "relax: 3\n", 8, "relax");
    expect_error("section-null.yaml", HEAD "relax:\n", 8, "relax");
    expect_error("scalar-list.yaml", HEAD "relax:\n  max_steps: [1, 2]\n", 9, "relax.max_steps");
    expect_error("list-scalar.yaml", HEAD "sampling:\n  elements: Fe\n", 9, "sampling.elements");
    expect_error("no-value.yaml", HEAD "relax:\n  max_steps:\n", 9, "relax.max_steps");
    expect_error("empty-string.yaml", HEAD "filters:\n  novelty_reference: ''\n", 9,
                 "filters.novelty_reference");
    expect_error("control.yaml", "campaign:\n  name: \"a\\x01\"\n", 2, "campaign.name");
}

static void test_missing_required(void **state)
{
    expect_error("no-seed.yaml",
                 "# a comment\ncampaign:\n  name: t\n  model: m\n  output: o\n"
                 "  batches: 1\n",
                 2, "campaign.seed");
    expect_error("no-campaign.yaml", "relax:\n  enabled: true\n", 1, "campaign");
}

static void test_out_of_range(void **state)
{
    expect_error("symprec.yaml", HEAD "filters:\n  symprec_A: 3\n", 9, "filters.symprec_A");
    pipe_config *cfg = NULL;
    xtal_err err;
    load_text("symprec.yaml", HEAD "filters:\n  symprec_A: 3\n", &cfg, &err);
    assert_contains(err.msg, "symprec.yaml:9: key 'filters.symprec_A': must be in (0, 1], got 3");
}

static void test_malformed_yaml(void **state)
{
    /* libyaml notices the unclosed list on line 10; the message names where it started. */
    expect_error("flow.yaml", HEAD "sampling:\n  elements: [Fe, O\n  steps: 10\n", 10, NULL);
    pipe_config *cfg = NULL;
    xtal_err err;
    load_text("flow.yaml", HEAD "sampling:\n  elements: [Fe, O\n  steps: 10\n", &cfg, &err);
    assert_contains(err.msg, "started on line 9");
    /* Found at the end of the file: the message names where the quote opened. */
    expect_error("quote.yaml", HEAD "filters:\n  novelty_reference: \"abc\n", 9, NULL);
    expect_error("indent.yaml", "campaign:\n  name: t\n    seed: 1\n", 3, NULL);
    expect_error("colon.yaml", "campaign: name: t\n", 1, NULL);
    expect_error("tab.yaml", "campaign:\n\tname: t\n", 2, NULL);
    load_text("tab.yaml", "campaign:\n\tname: t\n", &cfg, &err);
    assert_contains(err.msg, "tabs");
}

static void test_duplicate_key(void **state)
{
    expect_error("dup.yaml", HEAD "relax:\n  max_steps: 3\n  enabled: true\n  max_steps: 4\n", 11,
                 "relax.max_steps");
    expect_error("dup-section.yaml", HEAD "relax: {}\nrelax: {}\n", 9, "relax");
    pipe_config *cfg = NULL;
    xtal_err err;
    load_text("dup.yaml", HEAD "relax:\n  max_steps: 3\n  enabled: true\n  max_steps: 4\n", &cfg,
              &err);
    assert_contains(err.msg, "first given at line 9");
}

static void test_empty_and_garbage(void **state)
{
    expect_error("empty.yaml", "", 1, NULL);
    expect_error("comments.yaml", "# nothing here\n\n", 1, NULL);
    expect_error("top-list.yaml", "# a list\n- campaign\n", 2, NULL);
    expect_error("top-scalar.yaml", "campaign\n", 1, NULL);
    expect_error("two-docs.yaml", HEAD "---\ncampaign: {}\n", 8, NULL);
    const char nul[] = "campaign:\n  name: t\n  seed: \0\x01\x02\n";
    expect_error_bytes("nul.yaml", nul, sizeof nul - 1, 3, NULL);
    const char latin1[] = "campaign:\n  name: caf\xe9\n";
    expect_error_bytes("latin1.yaml", latin1, sizeof latin1 - 1, 2, NULL);
    /* Random bytes: refused, never loaded, never a crash. */
    srand(12345);
    for (int round = 0; round < 200; round++) {
        char junk[512];
        size_t n = 1 + (size_t)rand() % sizeof junk;
        for (size_t i = 0; i < n; i++) junk[i] = (char)(rand() & 0xff);
        pipe_config *cfg = NULL;
        xtal_err err;
        assert_true(load_bytes("junk.yaml", junk, n, &cfg, &err) < 0);
        assert_null(cfg);
        assert_contains(err.msg, "junk.yaml");
    }
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* 10 levels of 10 aliases: refused at the first anchor, at once and without memory growth. */
static void test_alias_bomb(void **state)
{
    char text[4096] = HEAD "sampling:\n  elements: &a [Fe, Fe, Fe, Fe, Fe, Fe, Fe, Fe, Fe, Fe]\n";
    for (char level = 'b'; level <= 'j'; level++) {
        size_t n = strlen(text);
        snprintf(text + n, sizeof text - n, "%c: &%c [", level, level);
        for (int i = 0; i < 10; i++) {
            n = strlen(text);
            snprintf(text + n, sizeof text - n, "%s*%c", i ? ", " : "", level - 1);
        }
        n = strlen(text);
        snprintf(text + n, sizeof text - n, "]\n");
    }
    double t0 = now_s();
    expect_error("bomb.yaml", text, 9, "sampling.elements");
    expect_error("alias.yaml", HEAD "relax:\n  enabled: &t true\n  fixed_cell: *t\n", 9,
                 "relax.enabled");
    assert_true(now_s() - t0 < 1.0);
}

static void test_bad_elements(void **state)
{
    expect_error("element.yaml", HEAD "sampling:\n  elements:\n    - Fe\n    - Xx\n", 11,
                 "sampling.elements[1]");
    expect_error("element-case.yaml", HEAD "sampling:\n  elements: [fe]\n", 9,
                 "sampling.elements[0]");
    expect_error("element-charge.yaml", HEAD "sampling:\n  elements: [Fe2+]\n", 9,
                 "sampling.elements[0]");
    expect_error("element-twice.yaml", HEAD "sampling:\n  elements: [O, Fe, O]\n", 9,
                 "sampling.elements[2]");
    expect_error("element-none.yaml", HEAD "sampling:\n  elements: []\n", 9, "sampling.elements");
    expect_error("formula.yaml", HEAD "sampling:\n  composition: Fe2Q3\n", 9,
                 "sampling.composition");
    expect_error("formula-paren.yaml", HEAD "sampling:\n  composition: Ca(OH)2\n", 9,
                 "sampling.composition");
    expect_error("formula-zero.yaml", HEAD "sampling:\n  composition: Fe0O\n", 9,
                 "sampling.composition");
    expect_error("formula-big.yaml", HEAD "sampling:\n  composition: Fe150O60\n", 9,
                 "sampling.composition");
    expect_error("formula-elements.yaml",
                 HEAD "sampling:\n  elements: [Fe]\n  composition: Fe2O3\n", 10,
                 "sampling.composition");
    expect_error("formula-natoms.yaml", HEAD "sampling:\n  composition: Fe2O3\n  natoms: 12\n", 10,
                 "sampling.natoms");
}

static void test_io_errors(void **state)
{
    pipe_config *cfg = NULL;
    xtal_err err;
    assert_int_equal(pipe_config_load("/nonexistent/druse.yaml", &cfg, &err), XTAL_EIO);
    assert_null(cfg);
    assert_contains(err.msg, "/nonexistent/druse.yaml");
    assert_int_equal(pipe_config_load(tmpdir, &cfg, &err), XTAL_EIO);
    assert_int_equal(pipe_config_load("/dev/zero", &cfg, &err), XTAL_ELIMIT);
    assert_null(cfg);
}

/* Every bad input of the corpus fails, with its own name in the message. */
static void test_bad_corpus(void **state)
{
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/tests/bad/inputs", source_dir());
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0) continue;
        char path[2400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        pipe_config *cfg = NULL;
        xtal_err err;
        if (pipe_config_load(path, &cfg, &err) >= 0) fail_msg("%s loaded", path);
        assert_null(cfg);
        assert_contains(err.msg, e->d_name);
        n++;
    }
    closedir(d);
    assert_true(n >= 9);
}

/* ----------------------------------------------------------- range limits */

/* A config with section.key: value (inside campaign for campaign keys); *line is its line. */
static void make_config(char *buf, size_t size, const char *section, const char *key,
                        const char *value, int *line)
{
    int in_campaign = strcmp(section, "campaign") == 0;
    snprintf(buf, size, "campaign:\n  name: t\n  seed: 1\n  model: m\n  output: o\n%s",
             in_campaign && strcmp(key, "batches") == 0 ? "" : "  batches: 4\n");
    size_t n = strlen(buf);
    int lines = 0;
    for (const char *p = buf; *p; p++) lines += *p == '\n';
    if (!in_campaign) {
        snprintf(buf + n, size - n, "%s:\n", section);
        n = strlen(buf);
        lines++;
    }
    snprintf(buf + n, size - n, "  %s: %s\n", key, value);
    *line = lines + 1;
}

typedef struct {
    const char *section, *key, *value;
    int ok;
    const char *error_key; /* the key the message names, when not section.key */
} range_case;

static const range_case range_cases[] = {
    {"campaign", "batches", "0", 0, NULL},
    {"campaign", "batches", "1", 1, NULL},
    {"campaign", "batches", "-3", 0, NULL},
    {"campaign", "batch_size", "0", 0, NULL},
    {"campaign", "batch_size", "1", 1, NULL},
    {"campaign", "batch_size", "65536", 1, NULL},
    {"campaign", "batch_size", "65537", 0, NULL},
    {"campaign", "commit_interval_s", "0", 0, NULL},
    {"campaign", "commit_interval_s", "-1", 0, NULL},
    {"campaign", "commit_interval_s", "0.001", 1, NULL},
    {"campaign", "commit_interval_s", "86400", 1, NULL},
    {"campaign", "commit_interval_s", "86401", 0, NULL},
    {"campaign", "shard", "{index: 3, count: 4}", 1, NULL},
    {"campaign", "shard", "{index: 4, count: 4}", 0, "campaign.shard.index"},
    {"campaign", "shard", "{index: -1, count: 2}", 0, "campaign.shard.index"},
    {"campaign", "shard", "{index: 1}", 0, "campaign.shard.index"},
    {"campaign", "shard", "{count: 0}", 0, "campaign.shard.count"},
    {"campaign", "shard", "{count: 5}", 0, "campaign.shard.count"},
    {"sampling", "steps", "0", 0, NULL},
    {"sampling", "steps", "1", 1, NULL},
    {"sampling", "steps", "100000", 1, NULL},
    {"sampling", "steps", "100001", 0, NULL},
    {"sampling", "natoms", "-1", 0, NULL},
    {"sampling", "natoms", "0", 1, NULL},
    {"sampling", "natoms", "200", 1, NULL},
    {"sampling", "natoms", "201", 0, NULL},
    {"sampling", "type_temperature", "0", 0, NULL},
    {"sampling", "type_temperature", "0.01", 1, NULL},
    {"sampling", "type_temperature", "10", 1, NULL},
    {"sampling", "type_temperature", "10.5", 0, NULL},
    {"sampling", "noise_scale", "-0.1", 0, NULL},
    {"sampling", "noise_scale", "0", 1, NULL},
    {"sampling", "noise_scale", "2", 1, NULL},
    {"sampling", "noise_scale", "2.01", 0, NULL},
    {"filters", "distance_scale", "0", 0, NULL},
    {"filters", "distance_scale", "2", 1, NULL},
    {"filters", "distance_scale", "2.0001", 0, NULL},
    {"filters", "min_distance_A", "0", 0, NULL},
    {"filters", "min_distance_A", "10", 1, NULL},
    {"filters", "min_distance_A", "11", 0, NULL},
    {"filters", "symprec_A", "0", 0, NULL},
    {"filters", "symprec_A", "1e-5", 1, NULL},
    {"filters", "symprec_A", "1", 1, NULL},
    {"filters", "symprec_A", "1.0000001", 0, NULL},
    {"filters", "angle_tolerance_deg", "-1", 1, NULL},
    {"filters", "angle_tolerance_deg", "-2", 0, NULL},
    {"filters", "angle_tolerance_deg", "0", 0, NULL},
    {"filters", "angle_tolerance_deg", "45", 1, NULL},
    {"filters", "angle_tolerance_deg", "46", 0, NULL},
    {"relax", "fmax_eV_A", "0", 0, NULL},
    {"relax", "fmax_eV_A", "0.001", 1, NULL},
    {"relax", "fmax_eV_A", "100", 1, NULL},
    {"relax", "fmax_eV_A", "101", 0, NULL},
    {"relax", "max_steps", "-1", 0, NULL},
    {"relax", "max_steps", "0", 1, NULL},
    {"relax", "max_steps", "100000", 1, NULL},
    {"relax", "max_steps", "100001", 0, NULL},
    {"relax", "max_stress_GPa", "0", 0, NULL},
    {"relax", "max_stress_GPa", "100", 1, NULL},
    {"relax", "max_stress_GPa", "100.5", 0, NULL},
};

static void test_range_limits(void **state)
{
    for (size_t i = 0; i < sizeof range_cases / sizeof range_cases[0]; i++) {
        const range_case *rc = &range_cases[i];
        char text[512], key[96];
        int line;
        make_config(text, sizeof text, rc->section, rc->key, rc->value, &line);
        snprintf(key, sizeof key, "%s.%s", rc->section, rc->key);
        if (rc->ok) {
            pipe_config_free(load_ok("range.yaml", text));
            continue;
        }
        expect_error("range.yaml", text, line, rc->error_key ? rc->error_key : key);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_configs_load),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_example_holds_the_defaults),
        cmocka_unit_test(test_values_are_read),
        cmocka_unit_test(test_printed_config_loads_back),
        cmocka_unit_test(test_load_string),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_malformed_yaml),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_empty_and_garbage),
        cmocka_unit_test(test_alias_bomb),
        cmocka_unit_test(test_bad_elements),
        cmocka_unit_test(test_io_errors),
        cmocka_unit_test(test_bad_corpus),
        cmocka_unit_test(test_range_limits),
    };
    return cmocka_run_group_tests(tests, setup_tmpdir, remove_tmpdir);
}
