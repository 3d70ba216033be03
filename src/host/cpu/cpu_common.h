/* Index helpers for the CPU kernels. */
#ifndef KB_CPU_COMMON_H
#define KB_CPU_COMMON_H

#include <stdint.h>
#include <string.h>
#include "core/error.h"
#include "ops/op.h"

/* Strides of \p b viewed at \p out's rank with numpy broadcasting (0 on broadcast axes). */
static inline void kb_bcast_strides(const kb_buf *b, const kb_buf *out, int64_t *st) {
    int64_t s = 1;
    for (int i = out->rank - 1; i >= 0; --i) {
        int ib = i - (out->rank - b->rank);
        int64_t d = ib >= 0 ? b->shape[ib] : 1;
        st[i] = (d == 1 && out->shape[i] != 1) || ib < 0 ? 0 : s;
        if (ib >= 0) s *= d;
    }
}

/* Offset of flat index \p i of \p out in a tensor with strides \p st (out's rank). */
static inline int64_t kb_bcast_offset(int64_t i, const kb_buf *out, const int64_t *st) {
    int64_t off = 0;
    for (int d = out->rank - 1; d >= 0; --d) {
        int64_t c = i % out->shape[d];
        i /= out->shape[d];
        off += c * st[d];
    }
    return off;
}

static inline int kb_same_shape(const kb_buf *a, const kb_buf *b) {
    if (a->rank != b->rank) return 0;
    for (int i = 0; i < a->rank; ++i)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static inline kb_status kb_cpu_bad_dtype(const kb_exec *ex, kb_dtype dt) {
    return kb_set_error(KB_ERR_DTYPE, "%s: no CPU kernel for dtype %d", ex->op, (int)dt);
}

#define KB_OMP_MIN 32768

#endif
