/* The CPU device: 64-byte aligned malloc, memcpy, nothing to synchronise, CLOCK_MONOTONIC timers. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "graph/device.h"

static kb_status cpu_alloc(void *dev, size_t n, void **p) {
    (void)dev;
    size_t rounded = (n + 63) / 64 * 64;
    *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!*p) return kb_set_error(KB_ERR_OUT_OF_MEMORY, "cpu: out of host memory allocating %zu bytes", n);
    return KB_OK;
}
static void cpu_free(void *dev, void *p) { (void)dev; free(p); }
static kb_status cpu_copy(void *dev, void *dst, const void *src, size_t n) {
    (void)dev;
    if (n) memmove(dst, src, n);
    return KB_OK;
}
static kb_status cpu_memset0(void *dev, void *dst, size_t n) {
    (void)dev;
    if (n) memset(dst, 0, n);
    return KB_OK;
}
static kb_status cpu_sync(void *dev) { (void)dev; return KB_OK; }
static void cpu_range_push(void *dev, const char *name) { (void)dev; (void)name; }
static void cpu_range_pop(void *dev) { (void)dev; }
static kb_status cpu_stats(void *dev, kb_memory_stats *out) {
    (void)dev;
    memset(out, 0, sizeof *out);
    out->device = KB_DEVICE_CPU;
    return KB_OK;
}
static kb_status cpu_release(void *dev) { (void)dev; return KB_OK; }
static void cpu_destroy(void *dev) { (void)dev; }

/* A timer is one malloc'd CLOCK_MONOTONIC time in nanoseconds. */
static kb_status cpu_timer_new(void *dev, void **t) {
    (void)dev;
    *t = calloc(1, sizeof(int64_t));
    if (!*t) return kb_set_error(KB_ERR_OUT_OF_MEMORY, "cpu: out of host memory for a profiling timer");
    return KB_OK;
}
static void cpu_timer_free(void *dev, void *t) { (void)dev; free(t); }
static kb_status cpu_timer_record(void *dev, void *t) {
    (void)dev;
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return kb_set_error(KB_ERR_INTERNAL, "cpu: clock_gettime(CLOCK_MONOTONIC) failed");
    *(int64_t *)t = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    return KB_OK;
}
static kb_status cpu_timer_ms(void *dev, void *a, void *b, double *ms) {
    (void)dev;
    *ms = (double)(*(const int64_t *)b - *(const int64_t *)a) * 1e-6;
    return KB_OK;
}

const kb_device_api kb_cpu_device_api = {
    KB_DEVICE_CPU,  cpu_alloc,      cpu_free,         cpu_copy,    cpu_copy,    cpu_copy,   cpu_memset0,
    cpu_sync,       cpu_range_push, cpu_range_pop,    cpu_stats,   cpu_release, cpu_destroy,
    cpu_timer_new,  cpu_timer_free, cpu_timer_record, cpu_timer_ms,
};
