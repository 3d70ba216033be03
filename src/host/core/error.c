/* Thread-local last error and status names. */
#include <stdarg.h>
#include <stdio.h>

#include "core/error.h"

static _Thread_local kb_status tl_status = KB_OK;
static _Thread_local char tl_message[1024];
static _Thread_local unsigned tl_count;

unsigned kb_error_count(void) { return tl_count; }

kb_status kb_set_error(kb_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_message, sizeof tl_message, fmt, ap);
    va_end(ap);
    tl_status = s;
    tl_count++;
    return s;
}

void kb_null_arg(const char *fn, const char *arg) {
    if (tl_status == KB_OK)
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: argument %s is NULL", fn, arg);
    else
        tl_count++; /* still a failure of this call */
}

kb_status kb_last_status(void) { return tl_status; }
const char *kb_last_error(void) { return tl_message; }

void kb_clear_error(void) {
    tl_status = KB_OK;
    tl_message[0] = '\0';
}

const char *kb_status_string(kb_status s) {
    switch (s) {
    case KB_OK: return "KB_OK";
    case KB_ERR_INVALID_ARGUMENT: return "KB_ERR_INVALID_ARGUMENT";
    case KB_ERR_SHAPE: return "KB_ERR_SHAPE";
    case KB_ERR_DTYPE: return "KB_ERR_DTYPE";
    case KB_ERR_AXIS: return "KB_ERR_AXIS";
    case KB_ERR_INVALID_STATE: return "KB_ERR_INVALID_STATE";
    case KB_ERR_NOT_SUPPORTED: return "KB_ERR_NOT_SUPPORTED";
    case KB_ERR_CONFIG: return "KB_ERR_CONFIG";
    case KB_ERR_IO: return "KB_ERR_IO";
    case KB_ERR_OUT_OF_MEMORY: return "KB_ERR_OUT_OF_MEMORY";
    case KB_ERR_NO_DEVICE: return "KB_ERR_NO_DEVICE";
    case KB_ERR_CUDA: return "KB_ERR_CUDA";
    case KB_ERR_CUBLAS: return "KB_ERR_CUBLAS";
    case KB_ERR_CUDNN: return "KB_ERR_CUDNN";
    case KB_ERR_CURAND: return "KB_ERR_CURAND";
    case KB_ERR_INTERNAL: return "KB_ERR_INTERNAL";
    }
    return "KB_ERR_UNKNOWN";
}
