/*
 * Profiling: per-op times of functions (KB_PROFILE) and the Chrome trace (KB_PROFILE_TRACE).
 */
#include "graph/tensor.h"
