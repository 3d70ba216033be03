/* image ops: filled by the tensor-API work (see ops/ops_image.def). */
#include "ops/ops_common.h"
