/* norm ops (issue 4): see ops/ops_norm.def. */
#include "ops/ops_common.h"
