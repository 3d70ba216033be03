// CPU-vs-CUDA parity: every op case compiled for KB_DEVICE_CPU and KB_DEVICE_CUDA in float32 and
// float64 (and float16 / bfloat16 for cases marked `half`), outputs compared with the case's
// per-dtype tolerance. Skips visibly without a GPU.
#include <cstring>

#include "op_cases.h"

namespace {

using namespace kbt;

struct ParityParam {
    size_t index;
    kb_dtype dtype;
};

void PrintTo(const ParityParam &p, std::ostream *os) {
    *os << op_cases()[p.index].name << " " << kb_dtype_name(p.dtype);
}

class OpParity : public KbTest, public ::testing::WithParamInterface<ParityParam> {
protected:
    // A CUDA context when a GPU is present, so that both devices are initialised.
    kb_device context_device() const override {
        return cuda_available() ? KB_DEVICE_CUDA : KB_DEVICE_CPU;
    }
};

TEST_P(OpParity, CpuVsCuda) {
    KB_REQUIRE_CUDA();
    const OpCase &c = op_cases()[GetParam().index];
    const kb_dtype dt = GetParam().dtype;
    auto in = case_inputs(c, gen);
    const bool quiet = c.op == KB_OP_PRINT_TENSOR;
    if (quiet) ::testing::internal::CaptureStdout();
    ::testing::AssertionResult r =
        parity_check(ctx, c.build, c.shapes, in, dt,
                     dt == KB_FLOAT32 ? c.tol32 : dt == KB_FLOAT64 ? c.tol64 : THALF);
    if (quiet) ::testing::internal::GetCapturedStdout();
    EXPECT_TRUE(r) << c.name << " " << kb_dtype_name(dt);
}

std::vector<ParityParam> parity_params() {
    std::vector<ParityParam> p;
    for (size_t i = 0; i < op_cases().size(); ++i) {
        p.push_back({i, KB_FLOAT32});
        p.push_back({i, KB_FLOAT64});
        if (op_cases()[i].half) {
            p.push_back({i, KB_FLOAT16});
            p.push_back({i, KB_BFLOAT16});
        }
    }
    return p;
}

const char *dtype_suffix(kb_dtype dt) {
    return dt == KB_FLOAT16 ? "_f16" : dt == KB_BFLOAT16 ? "_bf16" : dt == KB_FLOAT32 ? "_f32" : "_f64";
}

INSTANTIATE_TEST_SUITE_P(Cases, OpParity, ::testing::ValuesIn(parity_params()),
                         [](const ::testing::TestParamInfo<ParityParam> &p) {
                             return op_cases()[p.param.index].name + dtype_suffix(p.param.dtype);
                         });

class Parity : public KbTest {
protected:
    kb_device context_device() const override {
        return cuda_available() ? KB_DEVICE_CUDA : KB_DEVICE_CPU;
    }
};

// Placeholders with unknown batch, fed on both devices; gradients compiled on both devices.
TEST_F(Parity, FeedsAndGradients) {
    KB_REQUIRE_CUDA();
    int64_t ps[2] = {KB_NONE, 4};
    kb_tensor *x = kb_placeholder(ctx, ps, 2, KB_FLOAT32, "x");
    auto wv = random_values(gen, 12, -1, 1);
    kb_tensor *w = make_var(ctx, wv, {4, 3});
    kb_tensor *y = kb_softmax(kb_dot(x, w), -1);
    kb_tensor *loss = kb_mean(kb_log(y), nullptr, 0, 0);
    kb_tensor *g = nullptr;
    ASSERT_TRUE(ok(kb_gradients(loss, &w, 1, &g)));
    for (int64_t batch : {1, 7, 33}) {
        auto xv = random_values(gen, (size_t)batch * 4, -2, 2);
        auto bytes = to_bytes(xv, KB_FLOAT32);
        Shape s = {batch, 4};
        RunResult c = run_function(ctx, {y, g}, KB_DEVICE_CPU, {x}, {feed_of(bytes, KB_FLOAT32, s)});
        RunResult d = run_function(ctx, {y, g}, KB_DEVICE_CUDA, {x}, {feed_of(bytes, KB_FLOAT32, s)});
        ASSERT_EQ(c.status, KB_OK) << c.error;
        ASSERT_EQ(d.status, KB_OK) << d.error;
        EXPECT_EQ(d.device, KB_DEVICE_CUDA);
        EXPECT_TRUE(allclose(d.outs[0].v, c.outs[0].v, 1e-5, 1e-6)) << "batch " << batch;
        EXPECT_TRUE(allclose(d.outs[1].v, c.outs[1].v, 1e-4, 1e-6)) << "batch " << batch;
    }
}

// A larger matrix product (cuBLAS vs CBLAS) with strict float32 math (no TF32).
TEST_F(Parity, DotLargeStrictFloat32) {
    KB_REQUIRE_CUDA();
    const int64_t m = 64, k = 256, n = 48;
    auto av = random_values(gen, m * k, -1, 1), bv = random_values(gen, k * n, -1, 1);
    kb_tensor *a = make_var(ctx, av, {m, k}), *b = make_var(ctx, bv, {k, n});
    kb_tensor *c = kb_dot(a, b);
    RunResult rc = run_function(ctx, {c}, KB_DEVICE_CPU);
    RunResult rd = run_function(ctx, {c}, KB_DEVICE_CUDA);
    ASSERT_EQ(rc.status, KB_OK) << rc.error;
    ASSERT_EQ(rd.status, KB_OK) << rd.error;
    // TF32 would give ~1e-3 relative error; strict float32 stays near 1e-6.
    EXPECT_TRUE(allclose(rd.outs[0].v, rc.outs[0].v, 1e-4, 1e-4));
}

// Variables updated on the device are read back correctly on the host.
TEST_F(Parity, UpdatesOnDevice) {
    KB_REQUIRE_CUDA();
    kb_tensor *v = make_var(ctx, {1, 2, 3}, {3});
    kb_tensor *inc = make_const(ctx, {0.5, 0.5, 0.5}, {3});
    kb_tensor *u = kb_update_add(v, inc);
    kb_function *fn = kb_function_new(ctx, nullptr, 0, nullptr, 0, &u, 1, KB_DEVICE_CUDA);
    ASSERT_NE(fn, nullptr) << kb_last_error();
    EXPECT_EQ(kb_function_device(fn), KB_DEVICE_CUDA);
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(ok(kb_function_call(fn, nullptr, 0)));
    EXPECT_TRUE(allclose(get_v(v), {3, 4, 5}, 0, 0));
    // A host write is seen by the next device run.
    std::vector<float> nv = {10, 20, 30};
    ASSERT_TRUE(ok(kb_set_value(v, nv.data(), sizeof(float) * 3)));
    ASSERT_TRUE(ok(kb_function_call(fn, nullptr, 0)));
    EXPECT_TRUE(allclose(get_v(v), {10.5, 20.5, 30.5}, 0, 0));
    kb_function_free(fn);
}

TEST_F(Parity, MemoryStats) {
    KB_REQUIRE_CUDA();
    kb_tensor *a = make_var(ctx, random_values(gen, 1024, -1, 1), {32, 32});
    RunResult r = run_function(ctx, {kb_dot(a, a)}, KB_DEVICE_CUDA);
    ASSERT_EQ(r.status, KB_OK) << r.error;
    kb_memory_stats st;
    ASSERT_TRUE(ok(kb_memory_stats_get(ctx, &st)));
    EXPECT_EQ(st.device, KB_DEVICE_CUDA);
    EXPECT_GT(st.peak, 0u);
    EXPECT_GE(st.reserved, st.in_use);
    EXPECT_GE(st.peak, st.in_use);
    EXPECT_TRUE(ok(kb_memory_release(ctx)));
}

}  // namespace
