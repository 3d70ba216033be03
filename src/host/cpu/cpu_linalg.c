/* CPU kernels of the linalg family. */
#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"
