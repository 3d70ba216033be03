/*
 * The public header is C11: compiled with -std=c11 -Wall -Wextra -pedantic -Werror, a C program
 * makes a context, builds add(constant, constant), evaluates it and checks the value.
 * Returns 0 on success, nonzero (with a line on stderr) on failure.
 */
#include <kb/kb.h>

#include <stdio.h>

static int fail(const char *what) {
    fprintf(stderr, "test_header_c: %s failed: %s (%s)\n", what, kb_last_error(),
            kb_status_string(kb_last_status()));
    return 1;
}

int main(void) {
    kb_context_options opts = KB_CONTEXT_OPTIONS_DEFAULTS;
    kb_context *ctx = NULL;
    const int64_t shape[2] = {2, 2};
    const float a[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    const float b[4] = {10.0f, 20.0f, 30.0f, 40.0f};
    float out[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    kb_tensor *ta, *tb, *sum;
    int i, rc = 0;

    opts.device = KB_DEVICE_CPU;
    opts.read_config = 0;
    if (kb_context_new(&ctx, &opts) != KB_OK) return fail("kb_context_new");

    ta = kb_constant(ctx, a, sizeof a, KB_FLOAT32, shape, 2, "a");
    tb = kb_constant(ctx, b, sizeof b, KB_FLOAT32, shape, 2, "b");
    sum = kb_add(ta, tb);
    if (sum == NULL) {
        rc = fail("kb_add");
    } else if (kb_eval(sum, out, sizeof out) != KB_OK) {
        rc = fail("kb_eval");
    } else {
        for (i = 0; i < 4; ++i) {
            if (out[i] != a[i] + b[i]) {
                fprintf(stderr, "test_header_c: out[%d] = %g, expected %g\n", i, (double)out[i],
                        (double)(a[i] + b[i]));
                rc = 1;
            }
        }
    }
    if (kb_dtype_of(sum) != KB_FLOAT32) {
        fprintf(stderr, "test_header_c: dtype of add is %d, expected float32\n", (int)kb_dtype_of(sum));
        rc = 1;
    }
    kb_context_free(ctx);
    if (rc == 0) printf("test_header_c: ok\n");
    return rc;
}
