// Sparse COO tensors: placeholders fed with COO entries, to_dense, is_sparse, dot with a sparse
// left operand (values and gradients against reference loops), and bad input.
#include <cstring>

#include "kb_test_util.h"

namespace {

using namespace kbt;

class Sparse : public KbTest {};

struct Coo {
    std::vector<int64_t> idx;  // (nnz, 2)
    std::vector<float> val;
};

// nnz random entries of an m x k matrix (duplicates possible: they are summed).
Coo random_coo(std::mt19937_64 &gen, int64_t m, int64_t k, int nnz) {
    Coo c;
    auto v = random_values(gen, (size_t)nnz, -2, 2);
    for (int j = 0; j < nnz; ++j) {
        c.idx.push_back((int64_t)(gen() % (uint64_t)m));
        c.idx.push_back((int64_t)(gen() % (uint64_t)k));
        c.val.push_back((float)v[(size_t)j]);
    }
    return c;
}

std::vector<double> dense_of(const Coo &c, int64_t m, int64_t k) {
    std::vector<double> d((size_t)(m * k), 0.0);
    for (size_t j = 0; j < c.val.size(); ++j) d[(size_t)(c.idx[2 * j] * k + c.idx[2 * j + 1])] += c.val[j];
    return d;
}

kb_feed sparse_feed(const Coo &c, const int64_t *dense_shape) {
    kb_feed f = {};
    f.data = c.val.data();
    f.nbytes = c.val.size() * sizeof(float);
    f.dtype = KB_FLOAT32;
    f.rank = 2;
    f.shape = dense_shape;
    f.indices = c.idx.data();
    return f;
}

TEST_F(Sparse, PlaceholderFedWithCooToDense) {
    int64_t ps[2] = {KB_NONE, 4};
    kb_tensor *sp = kb_sparse_placeholder(ctx, ps, 2, KB_FLOAT32, "sp");
    ASSERT_NE(sp, nullptr) << kb_last_error();
    EXPECT_EQ(kb_is_sparse(sp), 1);
    kb_tensor *d = kb_to_dense(sp);
    ASSERT_NE(d, nullptr) << kb_last_error();
    EXPECT_EQ(kb_is_sparse(d), 0);
    kb_function *fn = kb_function_new(ctx, &sp, 1, &d, 1, nullptr, 0, KB_DEVICE_CPU);
    ASSERT_NE(fn, nullptr) << kb_last_error();
    // Two calls with different dense shapes and entry counts (one plan each).
    for (int64_t rows : {3, 6}) {
        Coo c = random_coo(gen, rows, 4, (int)rows + 2);
        int64_t ds[2] = {rows, 4};
        kb_feed f = sparse_feed(c, ds);
        ASSERT_TRUE(ok(kb_function_call(fn, &f, 1)));
        std::vector<float> out((size_t)rows * 4);
        ASSERT_TRUE(ok(kb_function_get_output(fn, 0, out.data(), out.size() * sizeof(float))));
        EXPECT_TRUE(allclose(std::vector<double>(out.begin(), out.end()), dense_of(c, rows, 4), 1e-6, 1e-6))
            << "rows " << rows;
    }
    // No entries: all zeros.
    Coo empty;
    int64_t ds[2] = {2, 4};
    kb_feed f = sparse_feed(empty, ds);
    ASSERT_TRUE(ok(kb_function_call(fn, &f, 1)));
    std::vector<float> out(8, 1.0f);
    ASSERT_TRUE(ok(kb_function_get_output(fn, 0, out.data(), out.size() * sizeof(float))));
    EXPECT_TRUE(allclose(std::vector<double>(out.begin(), out.end()), std::vector<double>(8, 0.0), 0, 0));
    kb_function_free(fn);
}

TEST_F(Sparse, IsSparseAndDenseInputs) {
    kb_tensor *x = make_var(ctx, {1, 2}, {2});
    EXPECT_EQ(kb_is_sparse(x), 0);
    EXPECT_EQ(kb_is_sparse(nullptr), 0);
    EXPECT_EQ(kb_to_dense(x), x) << "a dense tensor is returned as is";
}

// dot(sparse A, y) and its gradients against loops; the product never densifies A.
TEST_F(Sparse, DotMatchesReferenceWithGradients) {
    const int64_t m = 5, k = 7, n = 3;
    Coo c = random_coo(gen, m, k, 12);
    int64_t is[2] = {12, 2}, ds[2] = {m, k};
    kb_tensor *ix = kb_constant(ctx, c.idx.data(), c.idx.size() * sizeof(int64_t), KB_INT64, is, 2, nullptr);
    std::vector<double> vals(c.val.begin(), c.val.end());
    kb_tensor *v = make_var(ctx, vals, {12}, KB_FLOAT64);
    kb_tensor *carrier = kb_zeros(ctx, ds, 2, KB_FLOAT64, nullptr);
    kb_tensor *a = kb_sparse_tensor(ix, v, carrier);
    ASSERT_NE(a, nullptr) << kb_last_error();
    auto yv = random_values(gen, (size_t)(k * n), -1, 1);
    kb_tensor *y = make_var(ctx, yv, {k, n}, KB_FLOAT64);
    kb_tensor *p = kb_dot(a, y);
    ASSERT_NE(p, nullptr) << kb_last_error();
    EXPECT_EQ(static_shape(p), (Shape{m, n}));
    auto wv = random_values(gen, (size_t)(m * n), -1, 1);
    kb_tensor *w = make_const(ctx, wv, {m, n}, KB_FLOAT64);
    kb_tensor *loss = kb_sum(kb_multiply(p, w), nullptr, 0, 0);
    kb_tensor *wrt[2] = {v, y}, *g[2] = {nullptr, nullptr};
    ASSERT_TRUE(ok(kb_gradients(loss, wrt, 2, g)));
    RunResult r = run_function(ctx, {p, g[0], g[1]}, KB_DEVICE_CPU);
    ASSERT_EQ(r.status, KB_OK) << r.error;
    std::vector<double> ad = dense_of(c, m, k), ref((size_t)(m * n), 0.0), gy((size_t)(k * n), 0.0),
                        gv(12, 0.0);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j)
            for (int64_t q = 0; q < k; ++q) {
                ref[(size_t)(i * n + j)] += ad[(size_t)(i * k + q)] * yv[(size_t)(q * n + j)];
                gy[(size_t)(q * n + j)] += ad[(size_t)(i * k + q)] * wv[(size_t)(i * n + j)];
            }
    for (size_t e = 0; e < 12; ++e)
        for (int64_t j = 0; j < n; ++j)
            gv[e] += wv[(size_t)(c.idx[2 * e] * n + j)] * yv[(size_t)(c.idx[2 * e + 1] * n + j)];
    EXPECT_TRUE(allclose(r.outs[0].v, ref, 1e-12, 1e-12));
    EXPECT_TRUE(allclose(r.outs[1].v, gv, 1e-12, 1e-12)) << "d loss / d values";
    EXPECT_TRUE(allclose(r.outs[2].v, gy, 1e-12, 1e-12)) << "d loss / d y = A^T w";
}

// A sparse tensor used by a dense op is densified.
TEST_F(Sparse, DenseOpsSeeTheDenseValue) {
    const int64_t is[2] = {2, 2}, ds[2] = {2, 2};
    const int64_t idx[4] = {0, 1, 1, 0};
    kb_tensor *ix = kb_constant(ctx, idx, sizeof idx, KB_INT64, is, 2, nullptr);
    kb_tensor *v = make_const(ctx, {3, 4}, {2});
    kb_tensor *a = kb_sparse_tensor(ix, v, kb_zeros(ctx, ds, 2, KB_FLOAT32, nullptr));
    kb_tensor *s = kb_add(a, make_const(ctx, {1, 1, 1, 1}, {2, 2}));
    EXPECT_TRUE(allclose(eval_v(s), {1, 4, 5, 1}, 0, 0));
}

class SparseErrors : public KbTest {
protected:
    void SetUp() override {
        KbTest::SetUp();
        int64_t ps[2] = {KB_NONE, 3};
        sp = kb_sparse_placeholder(ctx, ps, 2, KB_FLOAT32, "sp");
        ASSERT_NE(sp, nullptr) << kb_last_error();
        kb_tensor *d = kb_to_dense(sp);
        fn = kb_function_new(ctx, &sp, 1, &d, 1, nullptr, 0, KB_DEVICE_CPU);
        ASSERT_NE(fn, nullptr) << kb_last_error();
    }
    void TearDown() override {
        kb_function_free(fn);
        KbTest::TearDown();
    }
    kb_tensor *sp = nullptr;
    kb_function *fn = nullptr;
};

TEST_F(SparseErrors, IndexOutsideTheDenseShape) {
    Coo c{{0, 1, 2, 3}, {1.0f, 2.0f}};  // (2, 3) is outside (2, 3)
    int64_t ds[2] = {2, 3};
    kb_feed f = sparse_feed(c, ds);
    EXPECT_EQ(kb_function_call(fn, &f, 1), KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"sparse index 1", "(2, 3)", "outside the dense shape"}));
    // The function stays usable.
    Coo good{{1, 2}, {5.0f}};
    f = sparse_feed(good, ds);
    EXPECT_TRUE(ok(kb_function_call(fn, &f, 1)));
}

TEST_F(SparseErrors, BadFeeds) {
    Coo c{{0, 1}, {1.0f}};
    int64_t ds[2] = {2, 3};
    kb_feed f = sparse_feed(c, ds);
    f.nbytes = 3;
    EXPECT_EQ(kb_function_call(fn, &f, 1), KB_ERR_SHAPE);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"not a multiple of 4"}));
    f = sparse_feed(c, ds);
    f.indices = nullptr;
    EXPECT_EQ(kb_function_call(fn, &f, 1), KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"NULL indices"}));
    int64_t bad[2] = {2, 4};
    f = sparse_feed(c, bad);
    EXPECT_EQ(kb_function_call(fn, &f, 1), KB_ERR_SHAPE) << "dense shape against the placeholder's (None, 3)";
    EXPECT_EQ(kb_function_call(fn, &f, 2), KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"takes 1 inputs, got 2"}));
}

TEST_F(Sparse, IndicesForADensePlaceholder) {
    int64_t ps[1] = {2};
    kb_tensor *x = kb_placeholder(ctx, ps, 1, KB_FLOAT32, "x");
    kb_function *fn = kb_function_new(ctx, &x, 1, &x, 1, nullptr, 0, KB_DEVICE_CPU);
    ASSERT_NE(fn, nullptr) << kb_last_error();
    float d[2] = {1, 2};
    int64_t idx[2] = {0, 1};
    kb_feed f = {d, sizeof d, KB_FLOAT32, 1, ps, idx};
    EXPECT_EQ(kb_function_call(fn, &f, 1), KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"not a sparse placeholder"}));
    kb_function_free(fn);
}

TEST_F(Sparse, BadConstruction) {
    int64_t ps[2] = {2, 2};
    EXPECT_EQ(kb_sparse_placeholder(ctx, ps, 2, KB_BOOL, "b"), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_DTYPE, {"kb_sparse_placeholder", "bool"}));
    int64_t is[2] = {1, 2};
    int32_t idx32[2] = {0, 0};
    kb_tensor *ix32 = kb_constant(ctx, idx32, sizeof idx32, KB_INT32, is, 2, nullptr);
    kb_tensor *v = make_const(ctx, {1}, {1});
    kb_tensor *carrier = kb_zeros(ctx, ps, 2, KB_FLOAT32, nullptr);
    EXPECT_EQ(kb_sparse_tensor(ix32, v, carrier), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_DTYPE, {"kb_sparse_tensor", "int64"}));
    int64_t idx[2] = {0, 0};
    kb_tensor *ix = kb_constant(ctx, idx, sizeof idx, KB_INT64, is, 2, nullptr);
    kb_tensor *a = kb_sparse_tensor(ix, v, carrier);
    ASSERT_NE(a, nullptr) << kb_last_error();
    int64_t ys[3] = {2, 2, 2};
    kb_tensor *y3 = kb_zeros(ctx, ys, 3, KB_FLOAT32, nullptr);
    EXPECT_EQ(kb_dot(a, y3), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_NOT_SUPPORTED, {"kb_dot", "2-D"}));
    kb_tensor *y64 = kb_zeros(ctx, ps, 2, KB_FLOAT64, nullptr);
    EXPECT_EQ(kb_dot(a, y64), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_DTYPE, {"kb_dot"}));
    int64_t ws[2] = {3, 2};
    kb_tensor *wrong = kb_zeros(ctx, ws, 2, KB_FLOAT32, nullptr);
    EXPECT_EQ(kb_dot(a, wrong), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"kb_dot", "2 columns", "3 rows"}));
}

}  // namespace
