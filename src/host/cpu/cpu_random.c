/* CPU kernels of the random family (random (Philox counter-based generator: cuRAND device API on the GPU, the same generator on the CPU) and dropout). */
#include "cpu/cpu_common.h"
