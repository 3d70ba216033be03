/* linalg ops: filled by the tensor-API work (see ops/ops_linalg.def). */
#include "ops/ops_common.h"
