/* tests/unit/test_gen_expf.c: the network's vectorizable exp (gen_fast_expf, generator/net.c)
 * against libm's exp in double, over the whole range SiLU uses and beyond. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "generator/generator.h"

/* relative error at ~2M points spread over [-87, 88] and at the integers and half-integers
 * multiples of ln 2 (the edges of the range reduction) */
static void test_relative_error(void **state)
{
    (void)state;
    double worst = 0, at = 0;
    for (int k = 0; k <= 2000000; k++) {
        float x = (float)(-87.0 + 175.0 * k / 2000000.0);
        double ref = exp((double)x), rel = fabs((double)gen_fast_expf(x) - ref) / ref;
        if (rel > worst) worst = rel, at = x;
    }
    for (int n = -125; n <= 126; n++)
        for (int h = -1; h <= 1; h++) {
            float x = (float)((n + 0.5 * h) * M_LN2);
            double ref = exp((double)x), rel = fabs((double)gen_fast_expf(x) - ref) / ref;
            if (rel > worst) worst = rel, at = x;
        }
    print_message("gen_fast_expf: max relative error %.3g at x = %.7g\n", worst, at);
    assert_true(worst < 2e-7); /* measured 8.0e-8 */
}

/* beyond the clamp the result saturates finite and positive (so 1 / (1 + e^-z) is 0 or 1,
 * never NaN); exact at 0 */
static void test_saturation(void **state)
{
    (void)state;
    const float big[] = {89.0f, 100.0f, 1e10f, INFINITY};
    for (int k = 0; k < 4; k++) {
        float hi = gen_fast_expf(big[k]), lo = gen_fast_expf(-big[k]);
        assert_true(isfinite(hi) && hi > 1e38f);
        assert_true(lo > 0.0f && lo < 1e-37f);
        assert_true(1.0f / (1.0f + hi) < 1e-37f && 1.0f / (1.0f + lo) == 1.0f);
    }
    assert_true(gen_fast_expf(0.0f) == 1.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relative_error),
        cmocka_unit_test(test_saturation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
