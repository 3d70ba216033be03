/* Family random: random (Philox counter-based generator: cuRAND device API on the GPU, the same generator on the CPU) and dropout.
 * Entries, validation / shape rules, gradient rules and public constructors. */
#include "ops/ops_common.h"
