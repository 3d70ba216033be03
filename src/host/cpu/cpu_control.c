/* CPU kernels of the control family (control flow: the loop node (map_fn, foldl, foldr, rnn) and its traced bodies).
 * The loop itself is the host driver of ops/control.c; the part ops are row-strided copies. */
#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"
#include "ops/control.h"

kb_status kb_cpu_loop(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    return kb_loop_run(ex, a, in, n_in, out, KB_DEVICE_CPU);
}

/* out (rows, size) <- rows row0.. of in[0] (T + 1, P), columns [off, off + size) */
kb_status kb_cpu_loop_part(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    kb_loop_geom g;
    KB_TRY(kb_loop_part_geom(ex, a, in, n_in, &g));
    const char *s = (const char *)in[0].data;
    char *d = (char *)out->data;
    size_t es = g.elem_size, n = (size_t)g.size * es;
    for (int64_t r = 0; r < g.rows; ++r) memcpy(d + (size_t)r * n, s + (size_t)((g.row0 + r) * g.P + g.off) * es, n);
    return KB_OK;
}

/* out (T + 1, P) <- zeros, with in[0] (rows, size) written at rows row0.., columns [off, off + size) */
kb_status kb_cpu_loop_part_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    kb_loop_geom g;
    KB_TRY(kb_loop_part_geom(ex, a, in, n_in, &g));
    const char *s = (const char *)in[0].data;
    char *d = (char *)out->data;
    size_t es = g.elem_size, n = (size_t)g.size * es;
    memset(d, 0, (size_t)out->size * es);
    for (int64_t r = 0; r < g.rows; ++r) memcpy(d + (size_t)((g.row0 + r) * g.P + g.off) * es, s + (size_t)r * n, n);
    return KB_OK;
}
