/* Thread-local last error: the one way kb reports why a call failed (docs/errors.md). */
#ifndef KB_CORE_ERROR_H
#define KB_CORE_ERROR_H

#include "kb/kb.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define KB_PRINTF(a, b)
#endif

/* Record status s with a printf-style message and return s. */
kb_status kb_set_error(kb_status s, const char *fmt, ...) KB_PRINTF(2, 3);
/* For a NULL argument: record only if no error is pending, so the first error of a chain
 * of calls survives (kb_relu(kb_add(kb_dot(bad), b)) reports dot's error). */
void kb_null_arg(const char *fn, const char *arg);
/* Number of errors recorded on this thread so far (tells a failed step from a NULL on purpose). */
unsigned kb_error_count(void);

#define KB_TRY(expr)                                   \
    do {                                               \
        kb_status kb_try_s_ = (expr);                  \
        if (kb_try_s_ != KB_OK) return kb_try_s_;      \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
