/* conv ops (issue 4): see ops/ops_conv.def. */
#include "ops/ops_common.h"
