/* CPU kernels of the conv family. */
#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"
