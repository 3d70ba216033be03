/* CUDA kernels of the control family (control flow: the loop node (map_fn, foldl, foldr, rnn) and its traced bodies).
 *
 * loop: the host driver of ops/control.c (kb_loop_run), which runs the traced body's kernels
 * on the context's stream once per step and writes each step's row with stream-ordered device
 * copies: no host sync inside the loop. loop_part / loop_part_grad: one grid-stride kernel that
 * copies a column block of rows (moved bytes = 2 x the part; a pure copy, memory-bound).
 */
#include "cuda/kernels/common.cuh"
#include "ops/control.h"

extern "C" kb_status kb_cuda_loop(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    return kb_loop_run(ex, a, in, n_in, out, KB_DEVICE_CUDA);
}

namespace {

/* dst[(r + d_row0) * d_stride + d_off + c] = src[(r + s_row0) * s_stride + s_off + c] for r < rows, c < size */
template <typename E>
__global__ void block_copy(const E *__restrict__ src, E *__restrict__ dst, int64_t rows, int64_t size,
                           int64_t s_stride, int64_t s_base, int64_t d_stride, int64_t d_base) {
    KB_GRID_LOOP(i, rows * size) {
        int64_t r = i / size, c = i % size;
        dst[r * d_stride + d_base + c] = src[r * s_stride + s_base + c];
    }
}

kb_status copy_block(const kb_exec *ex, size_t es, const void *src, void *dst, int64_t rows, int64_t size,
                     int64_t s_stride, int64_t s_base, int64_t d_stride, int64_t d_base) {
    kb_cuda_device *dev = (kb_cuda_device *)ex->dev;
    int64_t n = rows * size;
    if (n <= 0) return KB_OK;
    unsigned blocks = kb_blocks(dev, n, KB_THREADS);
    cudaStream_t s = kb_cuda_stream(dev);
    switch (es) {
    case 1:
        block_copy<uint8_t><<<blocks, KB_THREADS, 0, s>>>((const uint8_t *)src, (uint8_t *)dst, rows, size, s_stride,
                                                          s_base, d_stride, d_base);
        break;
    case 2:
        block_copy<uint16_t><<<blocks, KB_THREADS, 0, s>>>((const uint16_t *)src, (uint16_t *)dst, rows, size, s_stride,
                                                           s_base, d_stride, d_base);
        break;
    case 4:
        block_copy<uint32_t><<<blocks, KB_THREADS, 0, s>>>((const uint32_t *)src, (uint32_t *)dst, rows, size, s_stride,
                                                           s_base, d_stride, d_base);
        break;
    case 8:
        block_copy<uint64_t><<<blocks, KB_THREADS, 0, s>>>((const uint64_t *)src, (uint64_t *)dst, rows, size, s_stride,
                                                           s_base, d_stride, d_base);
        break;
    default: return kb_set_error(KB_ERR_INTERNAL, "%s: element size %zu", ex->op, es);
    }
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

}  // namespace

extern "C" kb_status kb_cuda_loop_part(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    kb_loop_geom g;
    KB_TRY(kb_loop_part_geom(ex, a, in, n_in, &g));
    return copy_block(ex, g.elem_size, in[0].data, out->data, g.rows, g.size, g.P, g.row0 * g.P + g.off, g.size, 0);
}

extern "C" kb_status kb_cuda_loop_part_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                            kb_buf *out) {
    kb_loop_geom g;
    KB_TRY(kb_loop_part_geom(ex, a, in, n_in, &g));
    kb_cuda_device *dev = (kb_cuda_device *)ex->dev;
    KB_CUDA_CHECK(cudaMemsetAsync(out->data, 0, (size_t)out->size * g.elem_size, kb_cuda_stream(dev)));
    return copy_block(ex, g.elem_size, in[0].data, out->data, g.rows, g.size, g.size, 0, g.P, g.row0 * g.P + g.off);
}
