/*
 * The CUDA device of a context: kb_cuda_count, kb_cuda_open and the kb_device_api table.
 *
 * - One non-blocking compute stream per context; every copy, memset, allocation and kernel is
 *   ordered on it. sync = cudaStreamSynchronize (reports asynchronous kernel errors).
 * - Memory: a cudaMemPool_t of our own per context with release threshold UINT64_MAX (cached
 *   memory is kept; ~1 us per alloc/free pair), cudaMallocFromPoolAsync / cudaFreeAsync on the
 *   stream. Without pool support, or with KB_MEM_DEBUG=1 (for compute-sanitizer), plain
 *   cudaMalloc / cudaFree. in_use and peak are our own counters from a ptr -> size table;
 *   reserved is the pool's cudaMemPoolAttrReservedMemCurrent.
 * - Out of memory: synchronise, trim the pool to 0, retry once, then KB_ERR_OUT_OF_MEMORY.
 * - cuBLAS, cuRAND and cuDNN handles are created on first use, bound to the stream.
 * - Profiling timers are cudaEvents recorded on the stream (read with cudaEventElapsedTime).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <new>

#include "cuda/cuda_internal.h"

#ifdef KB_WITH_NVTX
#include <nvtx3/nvToolsExt.h>
#endif

/* ------------------------------------------------------------------------------------------ */
/* Error conversion                                                                            */
/* ------------------------------------------------------------------------------------------ */

extern "C" kb_status kb_cuda_fail(cudaError_t e, const char *expr, const char *file, int line) {
    /* Clear the (non-sticky) error so later cudaGetLastError() checks do not see it again. */
    (void)cudaGetLastError();
    kb_status s = e == cudaErrorMemoryAllocation ? KB_ERR_OUT_OF_MEMORY : KB_ERR_CUDA;
    return kb_set_error(s, "%s failed: %s (%s) (%s:%d)", expr, cudaGetErrorString(e),
                        cudaGetErrorName(e), file, line);
}

extern "C" kb_status kb_cublas_fail(cublasStatus_t e, const char *expr, const char *file, int line) {
    kb_status s = e == CUBLAS_STATUS_ALLOC_FAILED ? KB_ERR_OUT_OF_MEMORY : KB_ERR_CUBLAS;
    return kb_set_error(s, "%s failed: %s (%s:%d)", expr, cublasGetStatusString(e), file, line);
}

static const char *curand_status_string(curandStatus_t e) {
    switch (e) {
    case CURAND_STATUS_SUCCESS: return "CURAND_STATUS_SUCCESS";
    case CURAND_STATUS_VERSION_MISMATCH: return "CURAND_STATUS_VERSION_MISMATCH: header and library versions differ";
    case CURAND_STATUS_NOT_INITIALIZED: return "CURAND_STATUS_NOT_INITIALIZED: generator not initialized";
    case CURAND_STATUS_ALLOCATION_FAILED: return "CURAND_STATUS_ALLOCATION_FAILED: memory allocation failed";
    case CURAND_STATUS_TYPE_ERROR: return "CURAND_STATUS_TYPE_ERROR: generator is the wrong type";
    case CURAND_STATUS_OUT_OF_RANGE: return "CURAND_STATUS_OUT_OF_RANGE: argument out of range";
    case CURAND_STATUS_LENGTH_NOT_MULTIPLE: return "CURAND_STATUS_LENGTH_NOT_MULTIPLE: length is not a multiple of the dimension";
    case CURAND_STATUS_DOUBLE_PRECISION_REQUIRED: return "CURAND_STATUS_DOUBLE_PRECISION_REQUIRED: GPU lacks double precision";
    case CURAND_STATUS_LAUNCH_FAILURE: return "CURAND_STATUS_LAUNCH_FAILURE: kernel launch failure";
    case CURAND_STATUS_PREEXISTING_FAILURE: return "CURAND_STATUS_PREEXISTING_FAILURE: preexisting failure on library entry";
    case CURAND_STATUS_INITIALIZATION_FAILED: return "CURAND_STATUS_INITIALIZATION_FAILED: initialization of CUDA failed";
    case CURAND_STATUS_ARCH_MISMATCH: return "CURAND_STATUS_ARCH_MISMATCH: architecture mismatch";
    case CURAND_STATUS_INTERNAL_ERROR: return "CURAND_STATUS_INTERNAL_ERROR: internal library error";
    default: return "unknown cuRAND status";
    }
}

extern "C" kb_status kb_curand_fail(curandStatus_t e, const char *expr, const char *file, int line) {
    kb_status s = e == CURAND_STATUS_ALLOCATION_FAILED ? KB_ERR_OUT_OF_MEMORY : KB_ERR_CURAND;
    return kb_set_error(s, "%s failed: %s (%s:%d)", expr, curand_status_string(e), file, line);
}

#ifdef KB_WITH_CUDNN
extern "C" kb_status kb_cudnn_fail(cudnnStatus_t e, const char *expr, const char *file, int line) {
    kb_status s = e == CUDNN_STATUS_ALLOC_FAILED ? KB_ERR_OUT_OF_MEMORY : KB_ERR_CUDNN;
    return kb_set_error(s, "%s failed: %s (%s:%d)", expr, cudnnGetErrorString(e), file, line);
}
#endif

/* ------------------------------------------------------------------------------------------ */
/* Device binding, handles                                                                     */
/* ------------------------------------------------------------------------------------------ */

extern "C" kb_status kb_cuda_bind(struct kb_cuda_device *dev) {
    int cur = -1;
    KB_CUDA_CHECK(cudaGetDevice(&cur));
    if (cur != dev->ordinal) KB_CUDA_CHECK(cudaSetDevice(dev->ordinal));
    return KB_OK;
}

extern "C" cudaStream_t kb_cuda_stream(struct kb_cuda_device *dev) { return dev->stream; }
extern "C" void *kb_cuda_stream_handle(struct kb_cuda_device *dev) { return (void *)dev->stream; }

/* cuBLAS workspace: NVIDIA recommends 32 MiB on Hopper; preallocating it keeps cuBLAS from
 * allocating during stream capture. */
#define KB_CUBLAS_WORKSPACE ((size_t)32 << 20)

extern "C" kb_status kb_cuda_cublas(struct kb_cuda_device *dev, cublasHandle_t *out) {
    if (!dev->cublas) {
        /* cublasCreate binds the handle (and the workspace below) to the current device, which
         * another context may have switched since this one last ran. */
        KB_TRY(kb_cuda_bind(dev));
        cublasHandle_t h = NULL;
        KB_CUBLAS_CHECK(cublasCreate(&h));
        cublasStatus_t st = cublasSetStream(h, dev->stream);
        if (st == CUBLAS_STATUS_SUCCESS)
            st = cublasSetMathMode(h, dev->allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
        if (st != CUBLAS_STATUS_SUCCESS) {
            cublasDestroy(h);
            return kb_cublas_fail(st, "cublasSetStream/cublasSetMathMode", __FILE__, __LINE__);
        }
        void *ws = NULL;
        cudaError_t ce = cudaMalloc(&ws, KB_CUBLAS_WORKSPACE);
        if (ce == cudaSuccess) {
            st = cublasSetWorkspace(h, ws, KB_CUBLAS_WORKSPACE);
            if (st != CUBLAS_STATUS_SUCCESS) {
                cudaFree(ws);
                cublasDestroy(h);
                return kb_cublas_fail(st, "cublasSetWorkspace(h, ws, 32 MiB)", __FILE__, __LINE__);
            }
            dev->cublas_ws = ws;
            dev->cublas_ws_size = KB_CUBLAS_WORKSPACE;
        } else {
            /* Not fatal: cuBLAS then uses its own workspace. */
            (void)cudaGetLastError();
        }
        dev->cublas = h;
    }
    *out = dev->cublas;
    return KB_OK;
}

extern "C" kb_status kb_cuda_set_tf32(struct kb_cuda_device *dev, int on) {
    dev->allow_tf32 = on ? 1 : 0;
    if (dev->cublas)
        KB_CUBLAS_CHECK(cublasSetMathMode(dev->cublas, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    return KB_OK;
}

extern "C" kb_status kb_cuda_curand(struct kb_cuda_device *dev, curandGenerator_t *out) {
    if (!dev->curand) {
        KB_TRY(kb_cuda_bind(dev)); /* the generator's state lives on the current device */
        curandGenerator_t g = NULL;
        KB_CURAND_CHECK(curandCreateGenerator(&g, CURAND_RNG_PSEUDO_PHILOX4_32_10));
        curandStatus_t st = curandSetStream(g, dev->stream);
        if (st != CURAND_STATUS_SUCCESS) {
            curandDestroyGenerator(g);
            return kb_curand_fail(st, "curandSetStream(g, dev->stream)", __FILE__, __LINE__);
        }
        dev->curand = g;
    }
    *out = dev->curand;
    return KB_OK;
}

#ifdef KB_WITH_CUDNN
#define KB_CUDNN_MIN_VERSION 91400 /* 9.14.0: the floor we build against (DESIGN.md) */

extern "C" kb_status kb_cuda_cudnn(struct kb_cuda_device *dev, cudnnHandle_t *out) {
    if (!dev->cudnn) {
        size_t v = cudnnGetVersion();
        if (v < KB_CUDNN_MIN_VERSION)
            return kb_set_error(KB_ERR_CUDNN,
                                "cuDNN runtime %zu.%zu.%zu is too old: kb needs cuDNN >= 9.14.0 "
                                "(built against %d.%d.%d)",
                                v / 10000, (v / 100) % 100, v % 100, CUDNN_MAJOR, CUDNN_MINOR,
                                CUDNN_PATCHLEVEL);
        KB_TRY(kb_cuda_bind(dev)); /* cudnnCreate uses the current device */
        cudnnHandle_t h = NULL;
        KB_CUDNN_CHECK(cudnnCreate(&h));
        cudnnStatus_t st = cudnnSetStream(h, dev->stream);
        if (st != CUDNN_STATUS_SUCCESS) {
            cudnnDestroy(h);
            return kb_cudnn_fail(st, "cudnnSetStream(h, dev->stream)", __FILE__, __LINE__);
        }
        dev->cudnn = h;
    }
    *out = dev->cudnn;
    return KB_OK;
}
#endif

/* ------------------------------------------------------------------------------------------ */
/* ptr -> size table                                                                           */
/* ------------------------------------------------------------------------------------------ */

static size_t slot_hash(const void *p, size_t mask) {
    uint64_t x = (uint64_t)(uintptr_t)p >> 8; /* pool pointers are >= 256-aligned */
    x *= 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 17) & mask;
}

/* Insert (caller holds mu). Returns 0 on host out-of-memory. */
static int table_put(struct kb_cuda_device *d, void *p, size_t n) {
    if ((d->count + 1) * 2 > d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 256;
        kb_cuda_alloc_slot *ns = (kb_cuda_alloc_slot *)calloc(ncap, sizeof *ns);
        if (!ns) return 0;
        for (size_t i = 0; i < d->cap; i++) {
            if (!d->slots[i].ptr) continue;
            size_t j = slot_hash(d->slots[i].ptr, ncap - 1);
            while (ns[j].ptr) j = (j + 1) & (ncap - 1);
            ns[j] = d->slots[i];
        }
        free(d->slots);
        d->slots = ns;
        d->cap = ncap;
    }
    size_t mask = d->cap - 1, j = slot_hash(p, mask);
    while (d->slots[j].ptr) j = (j + 1) & mask;
    d->slots[j].ptr = p;
    d->slots[j].size = n;
    d->count++;
    return 1;
}

/* Remove p (caller holds mu); returns its size, or (size_t)-1 if unknown. */
static size_t table_take(struct kb_cuda_device *d, void *p) {
    if (!d->cap) return (size_t)-1;
    size_t mask = d->cap - 1, j = slot_hash(p, mask);
    while (d->slots[j].ptr && d->slots[j].ptr != p) j = (j + 1) & mask;
    if (!d->slots[j].ptr) return (size_t)-1;
    size_t n = d->slots[j].size;
    /* Backward-shift deletion keeps probe chains intact without tombstones. */
    size_t hole = j, k = j;
    for (;;) {
        k = (k + 1) & mask;
        if (!d->slots[k].ptr) break;
        size_t home = slot_hash(d->slots[k].ptr, mask);
        /* Move k into the hole unless its home lies cyclically in (hole, k]. */
        int in_range = hole <= k ? (home > hole && home <= k) : (home > hole || home <= k);
        if (!in_range) {
            d->slots[hole] = d->slots[k];
            hole = k;
        }
    }
    d->slots[hole].ptr = NULL;
    d->slots[hole].size = 0;
    d->count--;
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* kb_device_api                                                                               */
/* ------------------------------------------------------------------------------------------ */

static size_t pool_reserved(struct kb_cuda_device *d) {
    if (!d->use_pool) return d->in_use;
    uint64_t v = 0;
    if (cudaMemPoolGetAttribute(d->pool, cudaMemPoolAttrReservedMemCurrent, &v) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return (size_t)v;
}

static cudaError_t raw_alloc(struct kb_cuda_device *d, size_t n, void **p) {
    if (d->use_pool) return cudaMallocFromPoolAsync(p, n, d->pool, d->stream);
    return cudaMalloc(p, n);
}

static kb_status cu_alloc(void *vd, size_t n, void **p) {
    struct kb_cuda_device *d = (struct kb_cuda_device *)vd;
    *p = NULL;
    if (n == 0) return KB_OK; /* NULL is a valid, freeable empty buffer */
    KB_TRY(kb_cuda_bind(d));
    void *q = NULL;
    cudaError_t e = raw_alloc(d, n, &q);
    if (e == cudaErrorMemoryAllocation) {
        /* Give cached memory back to the driver and retry once. */
        (void)cudaGetLastError();
        KB_CUDA_CHECK(cudaStreamSynchronize(d->stream));
        if (d->use_pool) KB_CUDA_CHECK(cudaMemPoolTrimTo(d->pool, 0));
        q = NULL;
        e = raw_alloc(d, n, &q);
    }
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        size_t in_use, reserved = d->use_pool ? pool_reserved(d) : 0;
        {
            std::lock_guard<std::mutex> lk(d->mu); /* in_use is shared with cu_free on other threads */
            in_use = d->in_use;
        }
        if (!d->use_pool) reserved = in_use;
        return kb_set_error(KB_ERR_OUT_OF_MEMORY,
                            "cuda:%d: out of memory allocating %zu bytes (in use %zu, reserved %zu)",
                            d->ordinal, n, in_use, reserved);
    }
    if (e != cudaSuccess) return kb_cuda_fail(e, "cudaMallocFromPoolAsync(p, n, pool, stream)", __FILE__, __LINE__);
    {
        std::lock_guard<std::mutex> lk(d->mu);
        if (!table_put(d, q, n)) {
            if (d->use_pool) cudaFreeAsync(q, d->stream);
            else cudaFree(q);
            return kb_set_error(KB_ERR_OUT_OF_MEMORY,
                                "cuda:%d: out of host memory tracking an allocation of %zu bytes",
                                d->ordinal, n);
        }
        d->in_use += n;
        if (d->in_use > d->peak) d->peak = d->in_use;
    }
    *p = q;
    return KB_OK;
}

static void cu_free(void *vd, void *p);
extern "C" kb_status kb_cuda_scratch_alloc(struct kb_cuda_device *dev, size_t n, void **p) { return cu_alloc(dev, n, p); }
extern "C" void kb_cuda_scratch_free(struct kb_cuda_device *dev, void *p) { cu_free(dev, p); }

static void cu_free(void *vd, void *p) {
    struct kb_cuda_device *d = (struct kb_cuda_device *)vd;
    if (!p) return;
    {
        std::lock_guard<std::mutex> lk(d->mu);
        size_t n = table_take(d, p);
        if (n != (size_t)-1) d->in_use -= n;
    }
    if (kb_cuda_bind(d) != KB_OK) return;
    cudaError_t e = d->use_pool ? cudaFreeAsync(p, d->stream) : cudaFree(p);
    /* free cannot report; a failure here is a prior sticky error that sync will report. */
    if (e != cudaSuccess) (void)cudaGetLastError();
}

static kb_status cu_copy_h2d(void *vd, void *dst, const void *src, size_t n) {
    struct kb_cuda_device *d = (struct kb_cuda_device *)vd;
    if (n == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(d));
    KB_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, d->stream));
    return KB_OK;
}

static kb_status cu_copy_d2h(void *vd, void *dst, const void *src, size_t n) {
    struct kb_cuda_device *d = (struct kb_cuda_device *)vd;
    if (n == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(d));
    KB_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, d->stream));
    /* The host reads dst right after: wait for it (pageable memory may already be synchronous). */
    KB_CUDA_CHECK(cudaStreamSynchronize(d->stream));
    return KB_OK;
}

static kb_status cu_copy_d2d(void *vd, void *dst, const void *src, size_t n) {
    struct kb_cuda_device *d = (struct kb_cuda_device *)vd;
    if (n == 0 || dst == src) return KB_OK;
    KB_TRY(kb_cuda_bind(d));
    KB_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, d->stream));
    return KB_OK;
}

static kb_status cu_memset0(void *vd, void *dst, size_t n) {
    struct kb_cuda_device *d = (struct kb_cuda_device *)vd;
    if (n == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(d));
    KB_CUDA_CHECK(cudaMemsetAsync(dst, 0, n, d->stream));
    return KB_OK;
}

static kb_status cu_sync(void *vd) {
    struct kb_cuda_device *d = (struct kb_cuda_device *)vd;
    KB_TRY(kb_cuda_bind(d));
    KB_CUDA_CHECK(cudaStreamSynchronize(d->stream));
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

static void cu_range_push(void *vd, const char *name) {
    (void)vd;
#ifdef KB_WITH_NVTX
    nvtxRangePushA(name ? name : "");
#else
    (void)name;
#endif
}

static void cu_range_pop(void *vd) {
    (void)vd;
#ifdef KB_WITH_NVTX
    nvtxRangePop();
#endif
}

static kb_status cu_stats(void *vd, kb_memory_stats *out) {
    struct kb_cuda_device *d = (struct kb_cuda_device *)vd;
    KB_TRY(kb_cuda_bind(d));
    out->device = KB_DEVICE_CUDA;
    {
        std::lock_guard<std::mutex> lk(d->mu);
        out->in_use = d->in_use;
        out->peak = d->peak;
    }
    if (d->use_pool) {
        uint64_t v = 0;
        KB_CUDA_CHECK(cudaMemPoolGetAttribute(d->pool, cudaMemPoolAttrReservedMemCurrent, &v));
        out->reserved = (size_t)v;
    } else {
        out->reserved = out->in_use;
    }
    return KB_OK;
}

static kb_status cu_release(void *vd) {
    struct kb_cuda_device *d = (struct kb_cuda_device *)vd;
    KB_TRY(kb_cuda_bind(d));
    KB_CUDA_CHECK(cudaStreamSynchronize(d->stream));
    if (d->use_pool) KB_CUDA_CHECK(cudaMemPoolTrimTo(d->pool, 0));
    return KB_OK;
}

static void cu_destroy(void *vd) {
    struct kb_cuda_device *d = (struct kb_cuda_device *)vd;
    if (!d) return;
    if (kb_cuda_bind(d) == KB_OK) {
        if (d->stream) (void)cudaStreamSynchronize(d->stream);
        if (d->cublas) cublasDestroy(d->cublas);
        if (d->curand) curandDestroyGenerator(d->curand);
#ifdef KB_WITH_CUDNN
        if (d->cudnn) cudnnDestroy(d->cudnn);
#endif
        if (d->cublas_ws) cudaFree(d->cublas_ws);
        /* Free whatever the host side leaked, so the pool can go. */
        for (size_t i = 0; i < d->cap; i++) {
            void *p = d->slots[i].ptr;
            if (!p) continue;
            if (d->use_pool) cudaFreeAsync(p, d->stream);
            else cudaFree(p);
        }
        if (d->stream) {
            (void)cudaStreamSynchronize(d->stream);
            cudaStreamDestroy(d->stream);
        }
        if (d->use_pool && d->pool) cudaMemPoolDestroy(d->pool);
        (void)cudaGetLastError();
    }
    free(d->slots);
    delete d;
}

/* Profiling timers: one cudaEvent (with timing) each, recorded on the compute stream. */
static kb_status cu_timer_new(void *vd, void **t) {
    struct kb_cuda_device *d = (struct kb_cuda_device *)vd;
    *t = NULL;
    KB_TRY(kb_cuda_bind(d));
    cudaEvent_t e = NULL;
    KB_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDefault));
    *t = (void *)e;
    return KB_OK;
}

static void cu_timer_free(void *vd, void *t) {
    struct kb_cuda_device *d = (struct kb_cuda_device *)vd;
    if (!t || kb_cuda_bind(d) != KB_OK) return;
    if (cudaEventDestroy((cudaEvent_t)t) != cudaSuccess) (void)cudaGetLastError();
}

static kb_status cu_timer_record(void *vd, void *t) {
    struct kb_cuda_device *d = (struct kb_cuda_device *)vd;
    KB_TRY(kb_cuda_bind(d));
    KB_CUDA_CHECK(cudaEventRecord((cudaEvent_t)t, d->stream));
    return KB_OK;
}

static kb_status cu_timer_ms(void *vd, void *a, void *b, double *ms) {
    (void)vd;
    float f = 0.0f;
    KB_CUDA_CHECK(cudaEventElapsedTime(&f, (cudaEvent_t)a, (cudaEvent_t)b));
    *ms = (double)f;
    return KB_OK;
}

static const kb_device_api cuda_api = {
    KB_DEVICE_CUDA, cu_alloc,      cu_free,         cu_copy_h2d,  cu_copy_d2h, cu_copy_d2d,
    cu_memset0,     cu_sync,       cu_range_push,   cu_range_pop, cu_stats,    cu_release,
    cu_destroy,     cu_timer_new,  cu_timer_free,   cu_timer_record, cu_timer_ms,
};

/* ------------------------------------------------------------------------------------------ */
/* Entry points                                                                                */
/* ------------------------------------------------------------------------------------------ */

extern "C" int kb_cuda_count(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n < 0 ? 0 : n;
}

static int env_flag(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

extern "C" kb_status kb_cuda_open(int ordinal, void **devp, const kb_device_api **api, char *name,
                                  size_t name_len) {
    *devp = NULL;
    *api = NULL;
    int n = kb_cuda_count();
    if (n == 0) return kb_set_error(KB_ERR_NO_DEVICE, "no CUDA device available (no driver or no GPU)");
    if (ordinal < 0 || ordinal >= n)
        return kb_set_error(KB_ERR_NO_DEVICE, "CUDA device %d requested, but only %d device%s present",
                            ordinal, n, n == 1 ? " is" : "s are");
    KB_CUDA_CHECK(cudaSetDevice(ordinal));
    cudaDeviceProp prop;
    KB_CUDA_CHECK(cudaGetDeviceProperties(&prop, ordinal));
    int pools = 0;
    KB_CUDA_CHECK(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, ordinal));

    struct kb_cuda_device *d = new (std::nothrow) kb_cuda_device();
    if (!d) return kb_set_error(KB_ERR_OUT_OF_MEMORY, "cuda:%d: out of host memory", ordinal);
    d->ordinal = ordinal;
    d->sm_count = prop.multiProcessorCount > 0 ? prop.multiProcessorCount : 1;
    d->max_blocks = d->sm_count * 32;
    d->total_mem = prop.totalGlobalMem;
    d->mem_debug = env_flag("KB_MEM_DEBUG");
    d->use_pool = pools && !d->mem_debug;

    cudaError_t e = cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        d->stream = NULL;
        kb_status s = kb_cuda_fail(e, "cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking)", __FILE__, __LINE__);
        cu_destroy(d);
        return s;
    }
    if (d->use_pool) {
        cudaMemPoolProps props;
        memset(&props, 0, sizeof props);
        props.allocType = cudaMemAllocationTypePinned;
        props.handleTypes = cudaMemHandleTypeNone;
        props.location.type = cudaMemLocationTypeDevice;
        props.location.id = ordinal;
        e = cudaMemPoolCreate(&d->pool, &props);
        if (e == cudaSuccess) {
            uint64_t thr = UINT64_MAX; /* keep cached memory: the default 0 is a performance trap */
            e = cudaMemPoolSetAttribute(d->pool, cudaMemPoolAttrReleaseThreshold, &thr);
        }
        if (e != cudaSuccess) {
            kb_status s = kb_cuda_fail(e, "cudaMemPoolCreate/cudaMemPoolSetAttribute", __FILE__, __LINE__);
            if (d->pool) cudaMemPoolDestroy(d->pool);
            d->pool = NULL;
            d->use_pool = 0;
            cu_destroy(d);
            return s;
        }
    }

    if (name && name_len) {
        double gib = (double)prop.totalGlobalMem / (double)(1ull << 30);
        snprintf(name, name_len, "cuda:%d %s (sm_%d%d, %.1f GiB)", ordinal, prop.name, prop.major,
                 prop.minor, gib);
    }
    *devp = d;
    *api = &cuda_api;
    return KB_OK;
}
