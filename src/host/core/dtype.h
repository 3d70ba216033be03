/* dtype utilities: sizes, names, and element conversion through double (host side). */
#ifndef KB_CORE_DTYPE_H
#define KB_CORE_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include "kb/kb.h"

int kb_dtype_valid(kb_dtype dt);
int kb_dtype_is_float(kb_dtype dt);
/* Element i of buffer p (dtype dt) as double, and store of a double (rounded / truncated as C
 * casts; float16 and bfloat16 round to nearest even; bool stores v != 0). */
double kb_load_f64(const void *p, kb_dtype dt, int64_t i);
void kb_store_f64(void *p, kb_dtype dt, int64_t i, double v);
/* Convert n elements; exact for every pair of integer types and float->float. */
void kb_convert(const void *src, kb_dtype sdt, void *dst, kb_dtype ddt, int64_t n);
uint16_t kb_f32_to_f16(float f);
float kb_f16_to_f32(uint16_t h);
uint16_t kb_f32_to_bf16(float f);
float kb_bf16_to_f32(uint16_t h);

#endif
