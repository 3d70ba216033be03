/* dtype names and sizes; element conversion for host buffers (cast kernels, feeds, constants). */
#include <math.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"

static const char *const kNames[KB_DTYPE_COUNT] = {"float16", "bfloat16", "float32", "float64", "int8",
                                                   "uint8",   "int32",    "int64",   "bool"};
static const size_t kSizes[KB_DTYPE_COUNT] = {2, 2, 4, 8, 1, 1, 4, 8, 1};

int kb_dtype_valid(kb_dtype dt) { return (int)dt >= 0 && (int)dt < KB_DTYPE_COUNT; }
int kb_dtype_is_float(kb_dtype dt) { return dt == KB_FLOAT16 || dt == KB_BFLOAT16 || dt == KB_FLOAT32 || dt == KB_FLOAT64; }
const char *kb_dtype_name(kb_dtype dt) { return kb_dtype_valid(dt) ? kNames[dt] : NULL; }
size_t kb_dtype_size(kb_dtype dt) { return kb_dtype_valid(dt) ? kSizes[dt] : 0; }

kb_status kb_dtype_from_name(const char *name, kb_dtype *out) {
    if (!name || !out) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_dtype_from_name: NULL argument");
    for (int i = 0; i < KB_DTYPE_COUNT; ++i)
        if (strcmp(name, kNames[i]) == 0) {
            *out = (kb_dtype)i;
            return KB_OK;
        }
    return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_dtype_from_name: unknown dtype '%s'", name);
}

/* IEEE binary16 <-> binary32, round to nearest even, with subnormals, inf and NaN. */
uint16_t kb_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t man = x & 0x7fffffu;
    if (exp == 0xffu) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0u));
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000u;
        int shift = 14 - e;
        uint32_t h = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* may carry into inf: correct */
    return (uint16_t)(sign | h);
}

float kb_f16_to_f32(uint16_t h) {
    uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t x;
    if (exp == 0) {
        if (man == 0) {
            x = sign;
        } else {
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400u));
            x = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        x = sign | 0x7f800000u | (man << 13);
    } else {
        x = sign | ((exp - 15 + 127) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

uint16_t kb_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

float kb_bf16_to_f32(uint16_t h) {
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

double kb_load_f64(const void *p, kb_dtype dt, int64_t i) {
    switch (dt) {
    case KB_FLOAT16: return kb_f16_to_f32(((const uint16_t *)p)[i]);
    case KB_BFLOAT16: return kb_bf16_to_f32(((const uint16_t *)p)[i]);
    case KB_FLOAT32: return ((const float *)p)[i];
    case KB_FLOAT64: return ((const double *)p)[i];
    case KB_INT8: return ((const int8_t *)p)[i];
    case KB_UINT8: return ((const uint8_t *)p)[i];
    case KB_INT32: return ((const int32_t *)p)[i];
    case KB_INT64: return (double)((const int64_t *)p)[i];
    case KB_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return 0.0;
    }
}

/* C casts of out-of-range or NaN floats to integers are undefined: saturate, NaN -> 0. */
static int64_t to_i64(double v, double lo, double hi) {
    if (isnan(v)) return 0;
    if (v <= lo) return (int64_t)lo;
    if (v >= hi) return (int64_t)hi;
    return (int64_t)v;
}

void kb_store_f64(void *p, kb_dtype dt, int64_t i, double v) {
    switch (dt) {
    case KB_FLOAT16: ((uint16_t *)p)[i] = kb_f32_to_f16((float)v); break;
    case KB_BFLOAT16: ((uint16_t *)p)[i] = kb_f32_to_bf16((float)v); break;
    case KB_FLOAT32: ((float *)p)[i] = (float)v; break;
    case KB_FLOAT64: ((double *)p)[i] = v; break;
    case KB_INT8: ((int8_t *)p)[i] = (int8_t)to_i64(v, -128.0, 127.0); break;
    case KB_UINT8: ((uint8_t *)p)[i] = (uint8_t)to_i64(v, 0.0, 255.0); break;
    case KB_INT32: ((int32_t *)p)[i] = (int32_t)to_i64(v, -2147483648.0, 2147483647.0); break;
    case KB_INT64: ((int64_t *)p)[i] = to_i64(v, -9223372036854775808.0, 9223372036854774784.0); break;
    case KB_BOOL: ((uint8_t *)p)[i] = (uint8_t)(v != 0.0); break;
    default: break;
    }
}

void kb_convert(const void *src, kb_dtype sdt, void *dst, kb_dtype ddt, int64_t n) {
    if (sdt == ddt) {
        memcpy(dst, src, (size_t)n * kb_dtype_size(sdt));
        return;
    }
    if (sdt == KB_INT64 && !kb_dtype_is_float(ddt)) { /* keep int64 exact */
        const int64_t *s = (const int64_t *)src;
        for (int64_t i = 0; i < n; ++i) {
            int64_t v = s[i];
            switch (ddt) {
            case KB_INT8: ((int8_t *)dst)[i] = (int8_t)v; break;
            case KB_UINT8: ((uint8_t *)dst)[i] = (uint8_t)v; break;
            case KB_INT32: ((int32_t *)dst)[i] = (int32_t)v; break;
            case KB_BOOL: ((uint8_t *)dst)[i] = v != 0; break;
            default: break;
            }
        }
        return;
    }
    if (ddt == KB_INT64 && !kb_dtype_is_float(sdt)) {
        for (int64_t i = 0; i < n; ++i) ((int64_t *)dst)[i] = (int64_t)kb_load_f64(src, sdt, i);
        return;
    }
    for (int64_t i = 0; i < n; ++i) kb_store_f64(dst, ddt, i, kb_load_f64(src, sdt, i));
}
