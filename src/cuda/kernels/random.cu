/* CUDA kernels of the random family (random (Philox counter-based generator: cuRAND device API on the GPU, the same generator on the CPU) and dropout).
 *
 * cuRAND's device API (curand_kernel.h), never the host API (not capture-safe, see DESIGN.md):
 * one thread per Philox block b = element / E (E = 4 values for float16/bfloat16/float32, 2 for
 * float64), curand_init(seed, subsequence = b, offset = 4 * run, &state) then one curand4-family
 * call, so the counter is {lo(run), hi(run), lo(b), hi(b)} and the results do not depend on the
 * grid. The scheme and the value formulas are documented in ops/random.c; cpu/cpu_random.c
 * implements the same generator (uniform / binomial / dropout masks bit-identical; normal and
 * truncated normal within a few ulp of double before the rounding to the dtype).
 * Roofline: write-bound (E values per Philox block of ~20 32x32->64 multiplies; float / double
 * blocks are stored as one 16-byte float4 / double2 when the output is 16-byte aligned, the
 * arena's 256-byte alignment makes that the rule); the run counter
 * is a kernel argument, advanced on the host per launch (graph capture would need it read from
 * device memory, as PyTorch's PhiloxCudaState; not done yet).
 */
#include <curand_kernel.h>

#include "cuda/kernels/common.cuh"

namespace {

enum Dist { UNIFORM = 0, NORMAL = 1, BINOMIAL = 2, TRUNCATED = 3, DROPOUT = 4 };

struct Params {
    unsigned long long seed, run;
    double a, b;   /* uniform: lo, hi; normal / truncated: mean, stddev; binomial: p; dropout: level, scale */
    float af, bf;  /* binomial: (float)p; dropout: (float)level, float scale */
    int vec;       /* out is 16-byte aligned: float / double blocks are stored as float4 / double2 */
};

constexpr double kTwoPi2Pow32 = 2.0 * 3.141592653589793 * 0x1p-32;
constexpr double kErfSqrt2 = 0.9544997361036416; /* erf(sqrt(2)) = P(|z| < 2) */
constexpr double kSqrt2 = 1.4142135623730951;

__device__ __forceinline__ double ud(unsigned x) { return ((double)x + 0.5) * 0x1p-32; }

__device__ __forceinline__ double trunc_z(double u) {
    double z = kSqrt2 * erfinv(kErfSqrt2 * (2.0 * u - 1.0));
    return z < -2.0 ? -2.0 : (z > 2.0 ? 2.0 : z);
}

/* One 16-bit float step towards -inf (h finite), as the CPU's bits_down. */
__device__ __forceinline__ unsigned short bits_down(unsigned short h) {
    if (h & 0x8000u) return (unsigned short)(h + 1u);
    return h == 0 ? (unsigned short)0x8001u : (unsigned short)(h - 1u);
}

/* v rounded to T, stepped one ulp down when it rounded to >= hi (uniform's [lo, hi)). */
template <typename T>
__device__ __forceinline__ T store_below(double v, double lo, double hi) {
    T r = kb_dev_store<T>(v);
    if (!(hi > lo) || kb_dev_load(r) < hi) return r;
    if constexpr (std::is_same<T, __half>::value) return __ushort_as_half(bits_down(__half_as_ushort(r)));
    else if constexpr (std::is_same<T, __nv_bfloat16>::value)
        return __ushort_as_bfloat16(bits_down(__bfloat16_as_ushort(r)));
    else if constexpr (std::is_same<T, float>::value) return ::nextafterf(r, -HUGE_VALF);
    else return ::nextafter(r, -HUGE_VAL);
}

template <typename T, int D>
__device__ __forceinline__ T finish(double v, const Params &p) {
    if constexpr (D == UNIFORM) return store_below<T>(v, p.a, p.b);
    else if constexpr (D == NORMAL || D == TRUNCATED) return kb_dev_store<T>(fma(p.b, v, p.a));
    else return kb_dev_store<T>(v);
}

template <typename T, int D>
__global__ void k_random(T *__restrict__ out, int64_t n, Params p) {
    constexpr int E = std::is_same<T, double>::value ? 2 : 4;
    const int64_t nb = (n + E - 1) / E;
    KB_GRID_LOOP(b, nb) {
        curandStatePhilox4_32_10_t st;
        curand_init(p.seed, (unsigned long long)b, 4ull * p.run, &st);
        double v[4];
        if constexpr (E == 2) {
            if constexpr (D == NORMAL) {
                double2 z = curand_normal2_double(&st);
                v[0] = z.x;
                v[1] = z.y;
            } else {
                double2 u = curand_uniform2_double(&st);
                if constexpr (D == UNIFORM) {
                    v[0] = fma(p.b - p.a, u.x, p.a);
                    v[1] = fma(p.b - p.a, u.y, p.a);
                } else if constexpr (D == TRUNCATED) {
                    v[0] = trunc_z(u.x);
                    v[1] = trunc_z(u.y);
                } else if constexpr (D == BINOMIAL) {
                    v[0] = u.x <= p.a ? 1.0 : 0.0;
                    v[1] = u.y <= p.a ? 1.0 : 0.0;
                } else {
                    v[0] = u.x >= p.a ? p.b : 0.0;
                    v[1] = u.y >= p.a ? p.b : 0.0;
                }
            }
        } else {
            if constexpr (D == NORMAL || D == TRUNCATED) {
                uint4 x = curand4(&st);
                unsigned w[4] = {x.x, x.y, x.z, x.w};
                if constexpr (D == NORMAL) {
#pragma unroll
                    for (int k = 0; k < 4; k += 2) {
                        double s = sqrt(-2.0 * log(ud(w[k])));
                        double sn, cs;
                        sincos(((double)w[k + 1] + 0.5) * kTwoPi2Pow32, &sn, &cs);
                        v[k] = sn * s;
                        v[k + 1] = cs * s;
                    }
                } else {
#pragma unroll
                    for (int k = 0; k < 4; ++k) v[k] = trunc_z(ud(w[k]));
                }
            } else {
                float4 u4 = curand_uniform4(&st);
                float u[4] = {u4.x, u4.y, u4.z, u4.w};
#pragma unroll
                for (int k = 0; k < 4; ++k) {
                    if constexpr (D == UNIFORM) v[k] = fma(p.b - p.a, (double)u[k], p.a);
                    else if constexpr (D == BINOMIAL) v[k] = u[k] <= p.af ? 1.0 : 0.0;
                    else v[k] = u[k] >= p.af ? (double)p.bf : 0.0;
                }
            }
        }
        if constexpr (std::is_same<T, float>::value) {
            if (p.vec && b * 4 + 4 <= n) { /* one 16-byte store per block */
                reinterpret_cast<float4 *>(out)[b] = make_float4(finish<T, D>(v[0], p), finish<T, D>(v[1], p),
                                                                 finish<T, D>(v[2], p), finish<T, D>(v[3], p));
                continue;
            }
        } else if constexpr (std::is_same<T, double>::value) {
            if (p.vec && b * 2 + 2 <= n) {
                reinterpret_cast<double2 *>(out)[b] = make_double2(finish<T, D>(v[0], p), finish<T, D>(v[1], p));
                continue;
            }
        }
#pragma unroll
        for (int k = 0; k < E; ++k) {
            int64_t i = b * E + k;
            if (i < n) out[i] = finish<T, D>(v[k], p);
        }
    }
}

/* The node's seed and this run's index; advances the node's CUDA run counter (attrs i64[2]). */
Params params_next(const kb_attrs *a) {
    Params p;
    memset(&p, 0, sizeof p);
    p.seed = (unsigned long long)a->i64[0];
    p.run = (unsigned long long)a->i64[2];
    ((kb_attrs *)a)->i64[2] = (int64_t)(p.run + 1u);
    return p;
}

template <typename T, int D>
kb_status launch(const kb_exec *ex, const kb_attrs *a, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    Params p = params_next(a);
    const int64_t n = out->size;
    if (n == 0) return KB_OK;
    switch (D) {
    case UNIFORM:
    case NORMAL:
    case TRUNCATED:
        p.a = a->lo;
        p.b = a->hi;
        break;
    case BINOMIAL:
        p.a = a->value;
        p.af = (float)a->value;
        break;
    default: /* DROPOUT: scale as the CPU computes it */
        p.a = a->value;
        p.af = (float)a->value;
        p.b = 1.0 / (1.0 - a->value);
        p.bf = 1.0f / (1.0f - p.af);
        break;
    }
    p.vec = ((uintptr_t)out->data % 16u) == 0;
    KB_TRY(kb_cuda_bind(dev));
    constexpr int E = std::is_same<T, double>::value ? 2 : 4;
    k_random<T, D><<<kb_blocks(dev, (n + E - 1) / E, KB_THREADS), KB_THREADS, 0, dev->stream>>>((T *)out->data, n, p);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

template <int D>
kb_status dispatch(const kb_exec *ex, const kb_attrs *a, kb_buf *out) {
    switch (out->dtype) {
    case KB_FLOAT16: return launch<__half, D>(ex, a, out);
    case KB_BFLOAT16: return launch<__nv_bfloat16, D>(ex, a, out);
    case KB_FLOAT32: return launch<float, D>(ex, a, out);
    case KB_FLOAT64: return launch<double, D>(ex, a, out);
    default: return kb_cuda_dtype_error(ex, out->dtype, "float16, bfloat16, float32 or float64");
    }
}

}  // namespace

extern "C" kb_status kb_cuda_random_uniform(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                            kb_buf *out) {
    (void)in;
    (void)n_in;
    return dispatch<UNIFORM>(ex, a, out);
}

extern "C" kb_status kb_cuda_random_normal(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                           kb_buf *out) {
    (void)in;
    (void)n_in;
    return dispatch<NORMAL>(ex, a, out);
}

extern "C" kb_status kb_cuda_random_binomial(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                             kb_buf *out) {
    (void)in;
    (void)n_in;
    return dispatch<BINOMIAL>(ex, a, out);
}

extern "C" kb_status kb_cuda_truncated_normal(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                              kb_buf *out) {
    (void)in;
    (void)n_in;
    return dispatch<TRUNCATED>(ex, a, out);
}

extern "C" kb_status kb_cuda_dropout_mask(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                          kb_buf *out) {
    (void)in;
    (void)n_in;
    return dispatch<DROPOUT>(ex, a, out);
}
