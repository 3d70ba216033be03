/*
 * The device interface: how the graph executor reaches memory, copies, synchronisation and
 * profiling ranges on a device. The CPU implements it with malloc/memcpy (graph/device_cpu.c);
 * the CUDA runtime (src/cuda/device.cu) implements it with one compute stream per context and a
 * stream-ordered caching pool, and timers with CUDA events. src/host reaches CUDA only through
 * this table.
 */
#ifndef KB_GRAPH_DEVICE_H
#define KB_GRAPH_DEVICE_H

#include <stddef.h>
#include "kb/kb.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kb_device_api {
    kb_device kind;
    /* Allocate n bytes (n may be 0: returns a unique non-NULL pointer or NULL, both freeable).
     * Out of memory: KB_ERR_OUT_OF_MEMORY with the size in the message. */
    kb_status (*alloc)(void *dev, size_t n, void **p);
    void (*free)(void *dev, void *p);
    /* Copies are ordered on the device's stream. h2d may return before the copy ends only when
     * src stays valid until the next sync; kb always syncs before host memory is reused. */
    kb_status (*copy_h2d)(void *dev, void *dst, const void *src, size_t n);
    kb_status (*copy_d2h)(void *dev, void *dst, const void *src, size_t n);
    kb_status (*copy_d2d)(void *dev, void *dst, const void *src, size_t n);
    kb_status (*memset0)(void *dev, void *dst, size_t n);
    /* Wait for all queued work; reports asynchronous kernel errors. */
    kb_status (*sync)(void *dev);
    /* NVTX ranges (no-ops where absent). */
    void (*range_push)(void *dev, const char *name);
    void (*range_pop)(void *dev);
    kb_status (*stats)(void *dev, kb_memory_stats *out);
    kb_status (*release)(void *dev);
    void (*destroy)(void *dev);
    /* Profiling timers (graph/profile.c): an opaque timestamp taken in stream order. timer_new
     * makes one (CUDA: a cudaEvent with timing; CPU: a slot for a CLOCK_MONOTONIC time); make
     * them once and reuse them, never per call. timer_record stamps it when the work queued so
     * far is done (CUDA: cudaEventRecord on the compute stream; CPU: now). timer_ms sets *ms to
     * b - a in milliseconds; both must be recorded and, on CUDA, reached (call sync first). */
    kb_status (*timer_new)(void *dev, void **t);
    void (*timer_free)(void *dev, void *t);
    kb_status (*timer_record)(void *dev, void *t);
    kb_status (*timer_ms)(void *dev, void *a, void *b, double *ms);
} kb_device_api;

extern const kb_device_api kb_cpu_device_api;

#ifdef KB_WITH_CUDA
/* Number of usable CUDA devices; 0 when there is no driver or no GPU (never an error). */
int kb_cuda_count(void);
/* Open CUDA device \p ordinal for one context: sets *dev and *api, writes a readable name. */
kb_status kb_cuda_open(int ordinal, void **dev, const kb_device_api **api, char *name, size_t name_len);
struct kb_cuda_device;
/* cuBLAS TF32 math for float32 products on this device (applied now and to a handle made later). */
kb_status kb_cuda_set_tf32(struct kb_cuda_device *dev, int on);
/* The device's compute stream as a cudaStream_t. */
void *kb_cuda_stream_handle(struct kb_cuda_device *dev);
#endif

#ifdef __cplusplus
}
#endif
#endif
