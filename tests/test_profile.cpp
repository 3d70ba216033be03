// Profiling: the per-op table and the Chrome trace (KB_PROFILE).
#include "kb_test_util.h"
