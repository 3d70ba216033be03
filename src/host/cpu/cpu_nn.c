/* CPU kernels of the nn family. */
#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"
