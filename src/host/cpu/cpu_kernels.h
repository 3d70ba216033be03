/* CPU kernels: kb_cpu_<name> for each op of ops.def (the parity reference; OpenMP + CBLAS). */
#ifndef KB_CPU_KERNELS_H
#define KB_CPU_KERNELS_H

#include "ops/op.h"

#define KB_OP(ID, name) kb_status kb_cpu_##name(const kb_exec *, const kb_attrs *, const kb_buf *, int, kb_buf *);
#include "ops/ops.def"
#undef KB_OP

#endif
