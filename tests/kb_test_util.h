// Helpers shared by the kb GoogleTest suites: the four-way test pattern of DESIGN.md
// (reference values, float64 finite-difference gradients, CPU-vs-CUDA parity, bad input).
//
// Seeds: every test draws its random inputs from a std::mt19937_64 seeded with the process seed
// (env KB_TEST_SEED, else time-based) mixed with the test's full name; the seed is printed and
// recorded as a test property, so `KB_TEST_SEED=<n>` reproduces a failing run.
//
// Tolerances (per dtype, stated once here):
//   float32: rtol 1e-5, atol 1e-6   (one or a few float32 roundings)
//   float64: rtol 1e-12, atol 1e-12 (exact up to a few float64 roundings)
//   integer and bool: exact
//   finite differences (float64, central, h = 1e-6 * max(1, |x|)): rtol 1e-5, atol 1e-8
#ifndef KB_TEST_UTIL_H
#define KB_TEST_UTIL_H

#include <gtest/gtest.h>
#include <kb/kb.h>

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace kbt {

using Shape = std::vector<int64_t>;

int64_t numel(const Shape &s);
std::string shape_str(const Shape &s);

// ---- seeds and random inputs -------------------------------------------------------------------

// The process seed: KB_TEST_SEED if set, else time-based; printed once on first use.
uint64_t process_seed();
// Seed of the running test: process seed mixed with the test's full name (order-independent).
uint64_t test_seed();

// n uniform values in [lo, hi], never all zeros (exact zeros are redrawn), and at least `margin`
// away from every point in `kinks` (relu thresholds, 0 for sqrt/log, ...).
std::vector<double> random_values(std::mt19937_64 &gen, size_t n, double lo, double hi,
                                  const std::vector<double> &kinks = {}, double margin = 0.05);

// ---- host buffers <-> doubles ------------------------------------------------------------------

std::vector<unsigned char> to_bytes(const std::vector<double> &v, kb_dtype dt);
std::vector<double> from_bytes(const void *p, size_t n, kb_dtype dt);

// v rounded to dtype dt and back (the values a dt tensor made from v holds).
std::vector<double> rounded(const std::vector<double> &v, kb_dtype dt);

// A value read back from kb, converted to double.
struct HostValue {
    kb_dtype dtype = KB_FLOAT32;
    Shape shape;
    std::vector<double> v;
};

// ---- tensors -----------------------------------------------------------------------------------

kb_tensor *make_const(kb_context *ctx, const std::vector<double> &v, const Shape &s,
                      kb_dtype dt = KB_FLOAT32);
kb_tensor *make_var(kb_context *ctx, const std::vector<double> &v, const Shape &s,
                    kb_dtype dt = KB_FLOAT32, const char *name = nullptr);
// The static shape of t (fails the test if a dim is unknown).
Shape static_shape(const kb_tensor *t);
// kb_eval(t) on the context's device. On failure: ADD_FAILURE with kb_last_error(), empty v.
HostValue eval(kb_tensor *t);
std::vector<double> eval_v(kb_tensor *t);
// kb_get_value(t) converted to double.
std::vector<double> get_v(kb_tensor *t);

// ---- comparisons -------------------------------------------------------------------------------

struct Tol {
    double rtol, atol;
};
Tol default_tol(kb_dtype dt);
// |a - e| <= atol + rtol * |e| elementwise; NaN equals NaN, infinities must match exactly.
::testing::AssertionResult allclose(const std::vector<double> &actual,
                                    const std::vector<double> &expected, double rtol, double atol);
::testing::AssertionResult allclose(const std::vector<double> &actual,
                                    const std::vector<double> &expected, Tol t);

// Status check that prints kb's message: EXPECT_TRUE(kbt::ok(s)).
::testing::AssertionResult ok(kb_status s);
// The status of the last call was `want` and the message contains each of `needles`.
::testing::AssertionResult has_error(kb_status want, const std::vector<std::string> &needles = {});

// A constructor call that must fail: NULL, with status `st` and a message containing the needles.
#define EXPECT_NULL_WITH(call, st, ...)                     \
    do {                                                    \
        kb_clear_error();                                   \
        EXPECT_EQ((call), nullptr) << #call;                \
        EXPECT_TRUE(has_error(st, ##__VA_ARGS__)) << #call; \
    } while (0)

// ---- functions ---------------------------------------------------------------------------------

struct RunResult {
    kb_status status = KB_OK;   // first failing status (function_new, call, output)
    std::string error;          // its message
    kb_device device = KB_DEVICE_CPU; // the device the function reported
    std::vector<HostValue> outs;
};
// Compile outputs (and updates) with kb_function_new on `device`, call it once with `feeds`,
// read every output. The function is freed afterwards.
RunResult run_function(kb_context *ctx, const std::vector<kb_tensor *> &outputs, kb_device device,
                       const std::vector<kb_tensor *> &inputs = {},
                       const std::vector<kb_feed> &feeds = {},
                       const std::vector<kb_tensor *> &updates = {});

// A kb_feed for a host buffer (keeps a pointer to `bytes` and `shape`: keep them alive).
kb_feed feed_of(const std::vector<unsigned char> &bytes, kb_dtype dt, const Shape &shape);

// ---- gradients ---------------------------------------------------------------------------------

using Builder = std::function<kb_tensor *(kb_context *, const std::vector<kb_tensor *> &)>;

struct GradCheckOptions {
    double rtol = 1e-5;
    double atol = 1e-8;
    double rel_step = 1e-6;
};
// Finite-difference gradient check in float64 on the CPU. Makes float64 variables with
// `values`, out = build(vars), L = sum(out * R) with R a fixed random tensor of out's shape, the
// analytic gradient from kb_gradients(L, vars) (NULL = zeros), the numeric one by central
// differences. Passes if |num - ana| <= atol + rtol * |num| for every element.
::testing::AssertionResult grad_check(kb_context *ctx, const Builder &build,
                                      const std::vector<Shape> &shapes,
                                      const std::vector<std::vector<double>> &values,
                                      std::mt19937_64 &gen, GradCheckOptions opt = {});

// ---- devices -----------------------------------------------------------------------------------

bool cuda_available();
// Compile the same graph for KB_DEVICE_CPU and KB_DEVICE_CUDA (inputs are variables of dtype
// `dt` holding `values`) and compare every output with `tol`. Call only when cuda_available().
::testing::AssertionResult parity_check(kb_context *ctx, const Builder &build,
                                        const std::vector<Shape> &shapes,
                                        const std::vector<std::vector<double>> &values, kb_dtype dt,
                                        Tol tol);

#define KB_REQUIRE_CUDA()                                                                      \
    do {                                                                                       \
        if (!::kbt::cuda_available()) GTEST_SKIP() << "no CUDA device: parity not run";        \
    } while (0)

// ---- fixture -----------------------------------------------------------------------------------

// A CPU context with read_config = 0 (defaults only, no keras.json) and a fixed printed seed.
class KbTest : public ::testing::Test {
protected:
    void SetUp() override;
    void TearDown() override;
    virtual kb_device context_device() const { return KB_DEVICE_CPU; }

    kb_context *ctx = nullptr;
    uint64_t seed = 0;
    std::mt19937_64 gen;
};

}  // namespace kbt

#endif
