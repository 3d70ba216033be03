/* The loop node's host drivers, shared by the CPU kernels (cpu/cpu_control.c) and the CUDA
 * launchers (cuda/kernels/control.cu). Plain C. */
#ifndef KB_OPS_CONTROL_H
#define KB_OPS_CONTROL_H

#include <stddef.h>
#include <stdint.h>
#include "ops/op.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Run a loop node on \p device: the traced body (a nested kb_function compiled once per device
 * and cached on the node) runs once per step, fed by device pointers; every step's row of the
 * (T + 1, P) output is written with device copies on the device's stream (no host sync). */
kb_status kb_loop_run(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out,
                      kb_device device);

/* Where a loop_part / loop_part_grad node's part lies in the loop's (T + 1, P) rows: rows
 * (T for every step, 1 for the last step's row only), the first row, the part's column offset
 * and size, in elements of elem_size bytes. */
typedef struct kb_loop_geom {
    int64_t rows, row0, P, off, size;
    size_t elem_size;
} kb_loop_geom;
/* \p in are the part op's inputs (the (T + 1, P) or part buffer first, then the loop's inputs). */
kb_status kb_loop_part_geom(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_loop_geom *g);

#ifdef __cplusplus
}
#endif
#endif
