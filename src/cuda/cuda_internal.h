/*
 * Private header of the CUDA runtime (src/cuda only; src/host never includes it).
 *
 * struct kb_cuda_device is the per-context CUDA state: the device ordinal, one non-blocking
 * compute stream, the stream-ordered memory pool with our own in-use/peak counters, and the
 * lazily created library handles (cuBLAS, cuRAND, cuDNN) bound to the stream.
 *
 * Error rule: every CUDA / cuBLAS / cuDNN / cuRAND return code goes through one of the
 * KB_*_CHECK macros below, which record "<expr> failed: <library string> (<file>:<line>)" with
 * kb_set_error and `return` the kb_status from the enclosing function.
 */
#ifndef KB_CUDA_INTERNAL_H
#define KB_CUDA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <mutex>

#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <curand.h>
#ifdef KB_WITH_CUDNN
#include <cudnn.h>
#endif

#include "kb/kb.h"
#include "core/error.h"
#include "graph/device.h"
#include "ops/op.h"

/* One slot of the ptr -> size table (open addressing, linear probing, backward-shift delete). */
struct kb_cuda_alloc_slot {
    void *ptr; /* NULL: empty */
    size_t size;
};

struct kb_cuda_device {
    int ordinal;
    int sm_count;           /* multiprocessors, for grid sizing */
    int max_blocks;         /* grid-stride cap: sm_count * 32 */
    size_t total_mem;       /* bytes of device memory */
    cudaStream_t stream;    /* the one compute stream of the context (non-blocking) */

    /* Memory. use_pool: cudaMallocFromPoolAsync / cudaFreeAsync on `pool`; else cudaMalloc. */
    int use_pool;
    int mem_debug;          /* KB_MEM_DEBUG=1: plain cudaMalloc/cudaFree, no caching */
    cudaMemPool_t pool;
    std::mutex mu;          /* guards the table and counters below */
    kb_cuda_alloc_slot *slots;
    size_t cap;             /* power of two, or 0 */
    size_t count;           /* live allocations */
    size_t in_use, peak;    /* bytes requested by live allocations */

    /* Library handles, created on first use. */
    int allow_tf32;         /* opt-in: cuBLAS TF32 tensor-op math for float32 */
    cublasHandle_t cublas;
    void *cublas_ws;        /* preallocated cuBLAS workspace (graph-capture safe) */
    size_t cublas_ws_size;
    curandGenerator_t curand;
#ifdef KB_WITH_CUDNN
    cudnnHandle_t cudnn;
#endif
};

#ifdef __cplusplus
extern "C" {
#endif

/* Record a failed library call; return the kb_status it maps to. */
kb_status kb_cuda_fail(cudaError_t e, const char *expr, const char *file, int line);
kb_status kb_cublas_fail(cublasStatus_t e, const char *expr, const char *file, int line);
kb_status kb_curand_fail(curandStatus_t e, const char *expr, const char *file, int line);
#ifdef KB_WITH_CUDNN
kb_status kb_cudnn_fail(cudnnStatus_t e, const char *expr, const char *file, int line);
#endif

/* Getters. The handles are created lazily, bound to the device's stream. */
cudaStream_t kb_cuda_stream(struct kb_cuda_device *dev);
kb_status kb_cuda_cublas(struct kb_cuda_device *dev, cublasHandle_t *out);
kb_status kb_cuda_curand(struct kb_cuda_device *dev, curandGenerator_t *out);
#ifdef KB_WITH_CUDNN
kb_status kb_cuda_cudnn(struct kb_cuda_device *dev, cudnnHandle_t *out);
#endif
/* Scratch memory for a launcher (cuDNN workspaces, partial results) from the device's
 * stream-ordered pool: allocate, enqueue the work, then free on the stream (the memory is
 * reused only by work queued after it). Counted in the memory stats like any allocation. */
kb_status kb_cuda_scratch_alloc(struct kb_cuda_device *dev, size_t n, void **p);
void kb_cuda_scratch_free(struct kb_cuda_device *dev, void *p);
/* Opt in to (1) or out of (0) TF32 tensor-op math for float32 GEMMs. */
kb_status kb_cuda_set_tf32(struct kb_cuda_device *dev, int on);
/* Make dev's ordinal the calling thread's current device (no-op when it already is). */
kb_status kb_cuda_bind(struct kb_cuda_device *dev);

#ifdef __cplusplus
}
#endif

#define KB_CUDA_CHECK(expr)                                                          \
    do {                                                                             \
        cudaError_t kb_ce_ = (expr);                                                 \
        if (kb_ce_ != cudaSuccess) return kb_cuda_fail(kb_ce_, #expr, __FILE__, __LINE__); \
    } while (0)

#define KB_CUBLAS_CHECK(expr)                                                        \
    do {                                                                             \
        cublasStatus_t kb_be_ = (expr);                                              \
        if (kb_be_ != CUBLAS_STATUS_SUCCESS)                                         \
            return kb_cublas_fail(kb_be_, #expr, __FILE__, __LINE__);                \
    } while (0)

#define KB_CURAND_CHECK(expr)                                                        \
    do {                                                                             \
        curandStatus_t kb_re_ = (expr);                                              \
        if (kb_re_ != CURAND_STATUS_SUCCESS)                                         \
            return kb_curand_fail(kb_re_, #expr, __FILE__, __LINE__);                \
    } while (0)

#ifdef KB_WITH_CUDNN
#define KB_CUDNN_CHECK(expr)                                                         \
    do {                                                                             \
        cudnnStatus_t kb_de_ = (expr);                                               \
        if (kb_de_ != CUDNN_STATUS_SUCCESS)                                          \
            return kb_cudnn_fail(kb_de_, #expr, __FILE__, __LINE__);                 \
    } while (0)
#endif

/* The kb_cuda_device of a kernel's exec record. */
static inline struct kb_cuda_device *kb_cuda_dev(const kb_exec *ex) {
    return (struct kb_cuda_device *)ex->dev;
}

#endif
