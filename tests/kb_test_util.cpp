#include "kb_test_util.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace kbt {

int64_t numel(const Shape &s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
}

std::string shape_str(const Shape &s) {
    std::ostringstream o;
    o << "(";
    for (size_t i = 0; i < s.size(); ++i) o << (i ? "," : "") << s[i];
    if (s.size() == 1) o << ",";
    o << ")";
    return o.str();
}

// ---- seeds -------------------------------------------------------------------------------------

uint64_t process_seed() {
    static const uint64_t seed = [] {
        uint64_t s;
        const char *env = std::getenv("KB_TEST_SEED");
        if (env && *env) {
            s = std::strtoull(env, nullptr, 10);
        } else {
            s = (uint64_t)std::chrono::high_resolution_clock::now().time_since_epoch().count();
            s %= 1000000007ull;
        }
        std::cout << "[ kb      ] random seed: KB_TEST_SEED=" << s << std::endl;
        return s;
    }();
    return seed;
}

uint64_t test_seed() {
    uint64_t h = 1469598103934665603ull;  // FNV-1a of the full test name
    const ::testing::TestInfo *ti = ::testing::UnitTest::GetInstance()->current_test_info();
    if (ti) {
        std::string name = std::string(ti->test_suite_name()) + "." + ti->name();
        for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
    }
    return process_seed() ^ h;
}

std::vector<double> random_values(std::mt19937_64 &gen, size_t n, double lo, double hi,
                                  const std::vector<double> &kinks, double margin) {
    std::uniform_real_distribution<double> dist(lo, hi);
    std::vector<double> v(n);
    for (size_t i = 0; i < n; ++i) {
        for (int tries = 0;; ++tries) {
            double x = dist(gen);
            bool bad = (x == 0.0);
            for (double k : kinks)
                if (std::fabs(x - k) < margin) bad = true;
            if (!bad || tries > 1000) {
                v[i] = x;
                break;
            }
        }
    }
    return v;
}

// ---- conversions -------------------------------------------------------------------------------

static uint16_t float_to_half(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t mant = x & 0x7fffffu;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00u);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        mant |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t h = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) ++h;
        return (uint16_t)(sign | h);
    }
    uint32_t h = sign | ((uint32_t)exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;
    return (uint16_t)h;
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ffu;
    uint32_t x;
    if (exp == 0) {
        if (mant == 0) {
            x = sign;
        } else {
            int e = -1;
            do {
                ++e;
                mant <<= 1;
            } while (!(mant & 0x400u));
            x = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        x = sign | 0x7f800000u | (mant << 13);
    } else {
        x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

static uint16_t float_to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

static float bf16_to_float(uint16_t b) {
    uint32_t x = (uint32_t)b << 16;
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

std::vector<unsigned char> to_bytes(const std::vector<double> &v, kb_dtype dt) {
    size_t es = kb_dtype_size(dt);
    std::vector<unsigned char> out(v.size() * es);
    for (size_t i = 0; i < v.size(); ++i) {
        unsigned char *p = out.data() + i * es;
        double x = v[i];
        switch (dt) {
        case KB_FLOAT16: { uint16_t h = float_to_half((float)x); std::memcpy(p, &h, 2); break; }
        case KB_BFLOAT16: { uint16_t h = float_to_bf16((float)x); std::memcpy(p, &h, 2); break; }
        case KB_FLOAT32: { float f = (float)x; std::memcpy(p, &f, 4); break; }
        case KB_FLOAT64: std::memcpy(p, &x, 8); break;
        case KB_INT8: { int8_t a = (int8_t)x; std::memcpy(p, &a, 1); break; }
        case KB_UINT8: { uint8_t a = (uint8_t)x; std::memcpy(p, &a, 1); break; }
        case KB_INT32: { int32_t a = (int32_t)x; std::memcpy(p, &a, 4); break; }
        case KB_INT64: { int64_t a = (int64_t)x; std::memcpy(p, &a, 8); break; }
        case KB_BOOL: { uint8_t a = x != 0.0; std::memcpy(p, &a, 1); break; }
        default: ADD_FAILURE() << "to_bytes: bad dtype " << (int)dt; return {};
        }
    }
    return out;
}

std::vector<double> from_bytes(const void *ptr, size_t n, kb_dtype dt) {
    const unsigned char *p = static_cast<const unsigned char *>(ptr);
    size_t es = kb_dtype_size(dt);
    std::vector<double> v(n);
    for (size_t i = 0; i < n; ++i) {
        const unsigned char *q = p + i * es;
        switch (dt) {
        case KB_FLOAT16: { uint16_t h; std::memcpy(&h, q, 2); v[i] = half_to_float(h); break; }
        case KB_BFLOAT16: { uint16_t h; std::memcpy(&h, q, 2); v[i] = bf16_to_float(h); break; }
        case KB_FLOAT32: { float f; std::memcpy(&f, q, 4); v[i] = f; break; }
        case KB_FLOAT64: std::memcpy(&v[i], q, 8); break;
        case KB_INT8: { int8_t a; std::memcpy(&a, q, 1); v[i] = a; break; }
        case KB_UINT8: { uint8_t a; std::memcpy(&a, q, 1); v[i] = a; break; }
        case KB_INT32: { int32_t a; std::memcpy(&a, q, 4); v[i] = a; break; }
        case KB_INT64: { int64_t a; std::memcpy(&a, q, 8); v[i] = (double)a; break; }
        case KB_BOOL: { uint8_t a; std::memcpy(&a, q, 1); v[i] = a; break; }
        default: ADD_FAILURE() << "from_bytes: bad dtype " << (int)dt; return {};
        }
    }
    return v;
}

// ---- tensors -----------------------------------------------------------------------------------

kb_tensor *make_const(kb_context *ctx, const std::vector<double> &v, const Shape &s, kb_dtype dt) {
    std::vector<unsigned char> b = to_bytes(v, dt == KB_FLOATX ? kb_floatx(ctx) : dt);
    kb_tensor *t = kb_constant(ctx, b.data(), b.size(), dt, s.data(), (int)s.size(), nullptr);
    if (!t) ADD_FAILURE() << "kb_constant " << shape_str(s) << ": " << kb_last_error();
    return t;
}

kb_tensor *make_var(kb_context *ctx, const std::vector<double> &v, const Shape &s, kb_dtype dt,
                    const char *name) {
    std::vector<unsigned char> b = to_bytes(v, dt == KB_FLOATX ? kb_floatx(ctx) : dt);
    kb_tensor *t = kb_variable(ctx, b.data(), b.size(), dt, s.data(), (int)s.size(), name);
    if (!t) ADD_FAILURE() << "kb_variable " << shape_str(s) << ": " << kb_last_error();
    return t;
}

Shape static_shape(const kb_tensor *t) {
    int64_t dims[KB_MAX_RANK];
    int r = kb_int_shape(t, dims);
    if (r < 0) {
        ADD_FAILURE() << "kb_int_shape failed: " << kb_last_error();
        return {};
    }
    Shape s(dims, dims + r);
    for (int64_t d : s)
        if (d < 0) ADD_FAILURE() << "static_shape: unknown dim in " << shape_str(s);
    return s;
}

HostValue eval(kb_tensor *t) {
    HostValue hv;
    if (!t) {
        ADD_FAILURE() << "eval(NULL): " << kb_last_error();
        return hv;
    }
    hv.dtype = kb_dtype_of(t);
    hv.shape = static_shape(t);
    size_t n = (size_t)numel(hv.shape);
    std::vector<unsigned char> buf(n * kb_dtype_size(hv.dtype) + 1);
    kb_status s = kb_eval(t, buf.data(), n * kb_dtype_size(hv.dtype));
    if (s != KB_OK) {
        ADD_FAILURE() << "kb_eval: " << kb_status_string(s) << ": " << kb_last_error();
        return hv;
    }
    hv.v = from_bytes(buf.data(), n, hv.dtype);
    return hv;
}

std::vector<double> eval_v(kb_tensor *t) { return eval(t).v; }

std::vector<double> get_v(kb_tensor *t) {
    if (!t) {
        ADD_FAILURE() << "get_v(NULL): " << kb_last_error();
        return {};
    }
    kb_dtype dt = kb_dtype_of(t);
    size_t n = (size_t)numel(static_shape(t));
    std::vector<unsigned char> buf(n * kb_dtype_size(dt) + 1);
    kb_status s = kb_get_value(t, buf.data(), n * kb_dtype_size(dt));
    if (s != KB_OK) {
        ADD_FAILURE() << "kb_get_value: " << kb_status_string(s) << ": " << kb_last_error();
        return {};
    }
    return from_bytes(buf.data(), n, dt);
}

// ---- comparisons -------------------------------------------------------------------------------

Tol default_tol(kb_dtype dt) {
    switch (dt) {
    case KB_FLOAT16: return {1e-3, 1e-3};
    case KB_BFLOAT16: return {1e-2, 1e-2};
    case KB_FLOAT32: return {1e-5, 1e-6};
    case KB_FLOAT64: return {1e-12, 1e-12};
    default: return {0.0, 0.0};
    }
}

::testing::AssertionResult allclose(const std::vector<double> &a, const std::vector<double> &e,
                                    double rtol, double atol) {
    if (a.size() != e.size())
        return ::testing::AssertionFailure()
               << "size " << a.size() << " != expected size " << e.size();
    int bad = 0;
    std::ostringstream msg;
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        bool good;
        if (std::isnan(e[i])) good = std::isnan(a[i]);
        else if (std::isinf(e[i])) good = a[i] == e[i];
        else good = std::isfinite(a[i]) && std::fabs(a[i] - e[i]) <= atol + rtol * std::fabs(e[i]);
        if (!good) {
            if (bad < 8)
                msg << "\n  [" << i << "] got " << std::setprecision(17) << a[i] << " expected "
                    << e[i] << " (diff " << std::fabs(a[i] - e[i]) << ")";
            ++bad;
            if (std::fabs(a[i] - e[i]) > worst || std::isnan(a[i])) worst = std::fabs(a[i] - e[i]);
        }
    }
    if (bad == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << bad << " of " << a.size()
                                         << " elements differ (rtol " << rtol << ", atol " << atol
                                         << ", worst " << worst << "):" << msg.str();
}

::testing::AssertionResult allclose(const std::vector<double> &a, const std::vector<double> &e,
                                    Tol t) {
    return allclose(a, e, t.rtol, t.atol);
}

::testing::AssertionResult ok(kb_status s) {
    if (s == KB_OK) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << kb_status_string(s) << ": " << kb_last_error();
}

::testing::AssertionResult has_error(kb_status want, const std::vector<std::string> &needles) {
    kb_status got = kb_last_status();
    std::string m = kb_last_error();
    if (got != want)
        return ::testing::AssertionFailure() << "status " << kb_status_string(got) << " (\"" << m
                                             << "\"), expected " << kb_status_string(want);
    for (const std::string &n : needles)
        if (m.find(n) == std::string::npos)
            return ::testing::AssertionFailure()
                   << "message \"" << m << "\" does not mention \"" << n << "\"";
    return ::testing::AssertionSuccess() << kb_status_string(got) << ": " << m;
}

// ---- functions ---------------------------------------------------------------------------------

std::vector<double> rounded(const std::vector<double> &v, kb_dtype dt) {
    return from_bytes(to_bytes(v, dt).data(), v.size(), dt);
}

kb_feed feed_of(const std::vector<unsigned char> &bytes, kb_dtype dt, const Shape &shape) {
    kb_feed f = {};
    f.data = bytes.data();
    f.nbytes = bytes.size();
    f.dtype = dt;
    f.rank = (int)shape.size();
    f.shape = shape.data();
    return f;
}

RunResult run_function(kb_context *ctx, const std::vector<kb_tensor *> &outputs, kb_device device,
                       const std::vector<kb_tensor *> &inputs, const std::vector<kb_feed> &feeds,
                       const std::vector<kb_tensor *> &updates) {
    RunResult r;
    kb_function *fn = kb_function_new(ctx, inputs.data(), (int)inputs.size(), outputs.data(),
                                      (int)outputs.size(), updates.data(), (int)updates.size(),
                                      device);
    if (!fn) {
        r.status = kb_last_status();
        r.error = std::string("kb_function_new: ") + kb_last_error();
        return r;
    }
    r.device = kb_function_device(fn);
    kb_status s = kb_function_call(fn, feeds.data(), (int)feeds.size());
    if (s != KB_OK) {
        r.status = s;
        r.error = std::string("kb_function_call: ") + kb_last_error();
        kb_function_free(fn);
        return r;
    }
    for (size_t i = 0; i < outputs.size(); ++i) {
        HostValue hv;
        int rank = 0;
        int64_t dims[KB_MAX_RANK];
        size_t nbytes = 0;
        const void *p = kb_function_output(fn, (int)i, &hv.dtype, &rank, dims, &nbytes);
        if (!p && nbytes != 0) {
            r.status = kb_last_status();
            r.error = std::string("kb_function_output: ") + kb_last_error();
            break;
        }
        hv.shape.assign(dims, dims + rank);
        size_t n = (size_t)numel(hv.shape);
        if (nbytes != n * kb_dtype_size(hv.dtype)) {
            r.status = KB_ERR_INTERNAL;
            r.error = "kb_function_output: nbytes " + std::to_string(nbytes) + " does not match " +
                      shape_str(hv.shape);
            break;
        }
        if (n) hv.v = from_bytes(p, n, hv.dtype);
        r.outs.push_back(std::move(hv));
    }
    kb_function_free(fn);
    return r;
}

// ---- gradient check ----------------------------------------------------------------------------

static kb_status set_var(kb_tensor *v, const std::vector<double> &x) {
    std::vector<unsigned char> b = to_bytes(x, KB_FLOAT64);
    return kb_set_value(v, b.data(), b.size());
}

::testing::AssertionResult grad_check(kb_context *ctx, const Builder &build,
                                      const std::vector<Shape> &shapes,
                                      const std::vector<std::vector<double>> &values,
                                      std::mt19937_64 &gen, GradCheckOptions opt) {
    const int n = (int)shapes.size();
    std::vector<kb_tensor *> vars;
    for (int i = 0; i < n; ++i) {
        kb_tensor *v = make_var(ctx, values[i], shapes[i], KB_FLOAT64);
        if (!v) return ::testing::AssertionFailure() << "variable " << i << ": " << kb_last_error();
        vars.push_back(v);
    }
    kb_tensor *out = build(ctx, vars);
    if (!out) return ::testing::AssertionFailure() << "build: " << kb_last_error();
    if (kb_dtype_of(out) != KB_FLOAT64)
        return ::testing::AssertionFailure()
               << "output dtype " << kb_dtype_name(kb_dtype_of(out)) << ", expected float64";
    Shape os = static_shape(out);
    std::vector<double> rv = random_values(gen, (size_t)numel(os), -1.0, 1.0, {0.0}, 0.1);
    kb_tensor *R = make_const(ctx, rv, os, KB_FLOAT64);
    kb_tensor *loss = kb_sum(kb_multiply(out, R), nullptr, 0, 0);
    if (!loss) return ::testing::AssertionFailure() << "loss: " << kb_last_error();
    std::vector<kb_tensor *> grads(n, nullptr);
    kb_status s = kb_gradients(loss, vars.data(), n, grads.data());
    if (s != KB_OK)
        return ::testing::AssertionFailure()
               << "kb_gradients: " << kb_status_string(s) << ": " << kb_last_error();

    std::vector<kb_tensor *> gouts;
    for (int i = 0; i < n; ++i)
        if (grads[i]) gouts.push_back(grads[i]);
    std::vector<std::vector<double>> ana(n);
    if (!gouts.empty()) {
        RunResult rg = run_function(ctx, gouts, KB_DEVICE_CPU);
        if (rg.status != KB_OK)
            return ::testing::AssertionFailure() << "analytic gradient: " << rg.error;
        size_t k = 0;
        for (int i = 0; i < n; ++i) {
            if (!grads[i]) continue;
            if (rg.outs[k].shape != shapes[i])
                return ::testing::AssertionFailure()
                       << "gradient " << i << " has shape " << shape_str(rg.outs[k].shape)
                       << ", its variable " << shape_str(shapes[i]);
            if (rg.outs[k].dtype != KB_FLOAT64)
                return ::testing::AssertionFailure() << "gradient " << i << " is not float64";
            ana[i] = rg.outs[k++].v;
        }
    }
    for (int i = 0; i < n; ++i)
        if (!grads[i]) ana[i].assign((size_t)numel(shapes[i]), 0.0);

    kb_tensor *const outs[1] = {loss};
    kb_function *fl = kb_function_new(ctx, nullptr, 0, outs, 1, nullptr, 0, KB_DEVICE_CPU);
    if (!fl) return ::testing::AssertionFailure() << "loss function: " << kb_last_error();
    auto loss_at = [&](double *L) -> kb_status {
        kb_status st = kb_function_call(fl, nullptr, 0);
        if (st != KB_OK) return st;
        return kb_function_get_output(fl, 0, L, sizeof(double));
    };

    ::testing::AssertionResult result = ::testing::AssertionSuccess();
    int bad = 0;
    std::ostringstream msg;
    for (int i = 0; i < n && bad < 8; ++i) {
        std::vector<double> x = values[i];
        for (size_t j = 0; j < x.size(); ++j) {
            double x0 = x[j];
            double h = opt.rel_step * std::max(1.0, std::fabs(x0));
            double lp = 0, lm = 0;
            x[j] = x0 + h;
            kb_status s1 = set_var(vars[i], x);
            if (s1 == KB_OK) s1 = loss_at(&lp);
            x[j] = x0 - h;
            kb_status s2 = set_var(vars[i], x);
            if (s2 == KB_OK) s2 = loss_at(&lm);
            x[j] = x0;
            if (s1 != KB_OK || s2 != KB_OK) {
                kb_function_free(fl);
                return ::testing::AssertionFailure() << "finite differences: " << kb_last_error();
            }
            double num = (lp - lm) / (2 * h);
            double a = ana[i][j];
            if (!(std::fabs(num - a) <= opt.atol + opt.rtol * std::fabs(num))) {
                if (bad < 8)
                    msg << "\n  input " << i << " " << shape_str(shapes[i]) << " [" << j
                        << "] x=" << std::setprecision(12) << x0 << ": numeric " << num
                        << " analytic " << a << (grads[i] ? "" : " (NULL gradient)");
                ++bad;
            }
        }
        set_var(vars[i], x);
    }
    kb_function_free(fl);
    if (bad)
        return ::testing::AssertionFailure()
               << bad << " gradient elements differ (rtol " << opt.rtol << ", atol " << opt.atol
               << "):" << msg.str();
    return result;
}

// ---- devices -----------------------------------------------------------------------------------

bool cuda_available() { return kb_cuda_device_count() > 0; }

::testing::AssertionResult parity_check(kb_context *ctx, const Builder &build,
                                        const std::vector<Shape> &shapes,
                                        const std::vector<std::vector<double>> &values, kb_dtype dt,
                                        Tol tol) {
    std::vector<kb_tensor *> vars;
    for (size_t i = 0; i < shapes.size(); ++i) vars.push_back(make_var(ctx, values[i], shapes[i], dt));
    kb_tensor *out = build(ctx, vars);
    if (!out) return ::testing::AssertionFailure() << "build: " << kb_last_error();
    RunResult cpu = run_function(ctx, {out}, KB_DEVICE_CPU);
    if (cpu.status != KB_OK) return ::testing::AssertionFailure() << "cpu: " << cpu.error;
    RunResult gpu = run_function(ctx, {out}, KB_DEVICE_CUDA);
    if (gpu.status != KB_OK) return ::testing::AssertionFailure() << "cuda: " << gpu.error;
    if (cpu.device != KB_DEVICE_CPU || gpu.device != KB_DEVICE_CUDA)
        return ::testing::AssertionFailure()
               << "functions ran on devices " << cpu.device << " and " << gpu.device
               << " (is KB_DEVICE set in the environment?)";
    if (cpu.outs[0].shape != gpu.outs[0].shape || cpu.outs[0].dtype != gpu.outs[0].dtype)
        return ::testing::AssertionFailure()
               << "cpu " << shape_str(cpu.outs[0].shape) << " vs cuda "
               << shape_str(gpu.outs[0].shape);
    return allclose(gpu.outs[0].v, cpu.outs[0].v, tol);
}

// ---- fixture -----------------------------------------------------------------------------------

void KbTest::SetUp() {
    seed = test_seed();
    gen.seed(seed);
    RecordProperty("kb_seed", std::to_string(process_seed()));
    kb_clear_error();
    kb_context_options o = KB_CONTEXT_OPTIONS_DEFAULTS;
    o.device = context_device();
    o.read_config = 0;
    o.seed = seed;
    kb_status s = kb_context_new(&ctx, &o);
    ASSERT_EQ(s, KB_OK) << kb_last_error();
    ASSERT_NE(ctx, nullptr);
}

void KbTest::TearDown() {
    kb_context_free(ctx);
    ctx = nullptr;
}

}  // namespace kbt
