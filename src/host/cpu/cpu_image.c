/* CPU kernels of the image family. */
#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"
