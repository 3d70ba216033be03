/* CPU kernels of the norm family. */
#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"
