/* CPU kernels for dot (CBLAS), permute_dimensions, fill_like, shape, size and print_tensor. */
#include <cblas.h>
#include <stdio.h>

#include "core/dtype.h"
#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"

kb_status kb_cpu_permute_dimensions(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)n_in;
    const kb_buf *x = &in[0];
    int r = x->rank;
    int64_t xs[KB_MAX_RANK], ps[KB_MAX_RANK], s = 1;
    for (int i = r - 1; i >= 0; --i) {
        xs[i] = s;
        s *= x->shape[i];
    }
    for (int i = 0; i < r; ++i) ps[i] = xs[a->perm[i]]; /* stride in x of out axis i */
    size_t es = kb_dtype_size(x->dtype);
    const char *src = (const char *)x->data;
    char *dst = (char *)out->data;
#pragma omp parallel for if (out->size > KB_OMP_MIN)
    for (int64_t i = 0; i < out->size; ++i) {
        int64_t off = 0, k = i;
        for (int d = r - 1; d >= 0; --d) {
            off += (k % out->shape[d]) * ps[d];
            k /= out->shape[d];
        }
        memcpy(dst + (size_t)i * es, src + (size_t)off * es, es);
    }
    return KB_OK;
}

kb_status kb_cpu_fill_like(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)in; (void)n_in;
    unsigned char v[8];
    size_t es = kb_dtype_size(out->dtype);
    kb_store_f64(v, out->dtype, 0, a->value);
    for (int64_t i = 0; i < out->size; ++i) memcpy((char *)out->data + (size_t)i * es, v, es);
    return KB_OK;
}

kb_status kb_cpu_shape(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)a; (void)n_in;
    for (int i = 0; i < in[0].rank; ++i) ((int32_t *)out->data)[i] = (int32_t)in[0].shape[i];
    return KB_OK;
}

kb_status kb_cpu_size(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)a; (void)n_in;
    *(int32_t *)out->data = (int32_t)in[0].size;
    return KB_OK;
}

/* print_tensor: "message [v0 v1 ...]" on stdout (all values, numpy-like nesting), then identity. */
kb_status kb_cpu_print_tensor(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)n_in;
    const kb_buf *x = &in[0];
    printf("%s", a->message ? a->message : "");
    if (a->message && *a->message) printf(" ");
    int64_t inner[KB_MAX_RANK + 1];
    inner[x->rank] = 1;
    for (int d = x->rank - 1; d >= 0; --d) inner[d] = inner[d + 1] * x->shape[d];
    for (int d = 0; d < x->rank; ++d) printf("[");
    for (int64_t i = 0; i < x->size; ++i) {
        if (i) {
            int closes = 0;
            for (int d = 0; d < x->rank; ++d)
                if (i % inner[d] == 0) closes++;
            for (int c = 0; c < closes; ++c) printf("]");
            printf(closes ? "\n " : " ");
            for (int c = 0; c < closes; ++c) printf("[");
        }
        printf("%.9g", kb_load_f64(x->data, x->dtype, i));
    }
    for (int d = 0; d < x->rank; ++d) printf("]");
    printf("\n");
    fflush(stdout);
    memcpy(out->data, x->data, (size_t)x->size * kb_dtype_size(x->dtype));
    return KB_OK;
}
