/* Packed layouts of the rnn family (ops/rnn.c documents them), as one set of sizes shared by the
 * infer rules (ops/rnn.c), the CPU kernels (cpu/cpu_rnn.c), the CUDA kernels (kernels/rnn.cu) and
 * the layout test (tests/test_rnn.cpp), so that the block arithmetic of a kernel cannot drift from
 * the size of the buffer the plan allocates. Header only (static inline, plain C): it compiles as
 * C, C++ and CUDA host code. All sizes are element counts unless the name says bytes.
 */
#ifndef KB_OPS_RNN_LAYOUT_H
#define KB_OPS_RNN_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The reserve region of a pack starts at the first multiple of this many bytes past block 0
 * (relative to the pack; arena and pool buffers are 256-byte aligned, so the region is too). */
#define KB_RNN_RESERVE_ALIGN 256

typedef struct kb_rnn_layout {
    int G;           /* gate blocks: LSTM 4, GRU 3, simple RNN 1 */
    int kH;          /* state rows: LSTM 2 (h, c), else 1 */
    int64_t rows;    /* kH + T rows per batch entry */
    int64_t W;       /* width of the data pack: max(I, U) */
    int64_t nblocks; /* 1 + 2G blocks per pack */
    int64_t blk_f;   /* one block of the forward pack (cudnn_rnn; the gradient dpack): B * rows * U */
    int64_t blk_d;   /* one block of the data pack (cudnn_rnn_backward_data): B * rows * W */
    int64_t size_f;  /* the forward pack: nblocks * blk_f */
    int64_t size_d;  /* the data pack: nblocks * blk_d */
    int64_t size_w;  /* the weights pack (cudnn_rnn_backward_weights): (I + U + 2) * G * U */
} kb_rnn_layout;

/* mode: attrs.i64[0] of the family (0 LSTM, 1 GRU, 2 / 3 simple RNN); nb, nt, ni, nu: B, T, I,
 * U (>= 0, known). (Not named I: <complex.h>, which CBLAS may pull in, defines that macro.) */
static inline void kb_rnn_layout_of(int mode, int64_t nb, int64_t nt, int64_t ni, int64_t nu, kb_rnn_layout *l) {
    l->G = mode == 0 ? 4 : mode == 1 ? 3 : 1;
    l->kH = mode == 0 ? 2 : 1;
    l->rows = l->kH + nt;
    l->W = ni > nu ? ni : nu;
    l->nblocks = 1 + 2 * (int64_t)l->G;
    l->blk_f = nb * l->rows * nu;
    l->blk_d = nb * l->rows * l->W;
    l->size_f = l->nblocks * l->blk_f;
    l->size_d = l->nblocks * l->blk_d;
    l->size_w = (ni + nu + 2) * (int64_t)l->G * nu;
}

/* Byte offset of the reserve region in a pack whose blocks hold blk elements of es bytes. */
static inline size_t kb_rnn_reserve_offset(int64_t blk, size_t es) {
    return ((size_t)blk * es + (KB_RNN_RESERVE_ALIGN - 1)) & ~(size_t)(KB_RNN_RESERVE_ALIGN - 1);
}

/* Whether `bytes` of cuDNN reserve fit the reserve region of a pack of nblocks blocks of blk. */
static inline int kb_rnn_reserve_fits_pack(int64_t nblocks, int64_t blk, size_t es, size_t bytes) {
    size_t total = (size_t)nblocks * (size_t)blk * es, off = kb_rnn_reserve_offset(blk, es);
    return off <= total && bytes <= total - off;
}

/* The GPU keeps cuDNN's reserve in the packs when it fits both the forward pack and the data
 * pack (decided from sizes alone, so the three kernels agree); else it recomputes. */
static inline int kb_rnn_reserve_fits(const kb_rnn_layout *l, size_t es, size_t bytes) {
    return kb_rnn_reserve_fits_pack(l->nblocks, l->blk_f, es, bytes) &&
           kb_rnn_reserve_fits_pack(l->nblocks, l->blk_d, es, bytes);
}

#ifdef __cplusplus
}
#endif

#endif /* KB_OPS_RNN_LAYOUT_H */
