/* A program built against an installed kb (find_package(kb) or pkg-config kb). */
#include <kb/kb.h>
#include <stdio.h>

int main(void) {
    kb_context_options o = KB_CONTEXT_OPTIONS_DEFAULTS;
    o.read_config = 0;
    kb_context *ctx;
    if (kb_context_new(&ctx, &o) != KB_OK) return 1;
    float a[2] = {1, 2}, out[2];
    int64_t s[1] = {2};
    kb_tensor *x = kb_constant(ctx, a, sizeof a, KB_FLOAT32, s, 1, NULL);
    kb_status st = kb_eval(kb_add(x, x), out, sizeof out);
    kb_context_free(ctx);
    if (st != KB_OK || out[0] != 2 || out[1] != 4) {
        fprintf(stderr, "install test: got %d (%g %g)\n", (int)st, out[0], out[1]);
        return 1;
    }
    return 0;
}
