// The function planner: buffers are reused by lifetime (and views share their input's buffer),
// so a wrong lifetime shows up as a wrong value. Random DAGs with many short- and long-lived
// intermediates, views and broadcasts are checked against a double-precision reference computed
// here, node by node, for several output sets (each gives different lifetimes) and two calls.
#include <cmath>

#include "kb_test_util.h"

namespace {

using namespace kbt;

class Planner : public KbTest {};

struct Node {
    kb_tensor *t;
    std::vector<double> v; // (4, 6) values, row-major
};

constexpr int R = 4, C = 6;

TEST_F(Planner, RandomDagsMatchReference) {
    for (int trial = 0; trial < 6; ++trial) {
        std::vector<Node> nodes;
        for (int i = 0; i < 3; ++i) { // leaves: two variables and a constant
            std::vector<double> v = random_values(gen, R * C, -1, 1);
            kb_tensor *t = i < 2 ? make_var(ctx, v, {R, C}, KB_FLOAT64) : make_const(ctx, v, {R, C}, KB_FLOAT64);
            nodes.push_back({t, v});
        }
        std::vector<double> row = random_values(gen, C, 0.5, 1.5);
        kb_tensor *rowt = make_const(ctx, row, {C}, KB_FLOAT64);
        std::uniform_int_distribution<int> pick_op(0, 6);
        for (int k = 0; k < 40; ++k) {
            // prefer recent nodes, sometimes reach far back (long lifetimes)
            std::uniform_int_distribution<size_t> near(nodes.size() > 4 ? nodes.size() - 4 : 0, nodes.size() - 1);
            std::uniform_int_distribution<size_t> any(0, nodes.size() - 1);
            const Node &a = nodes[gen() % 3 ? near(gen) : any(gen)];
            const Node &b = nodes[any(gen)];
            Node n;
            n.v.resize(R * C);
            int64_t flat[1] = {R * C}, back[2] = {R, C};
            switch (pick_op(gen)) {
            case 0:
                n.t = kb_add(a.t, b.t);
                for (int i = 0; i < R * C; ++i) n.v[i] = a.v[i] + b.v[i];
                break;
            case 1:
                n.t = kb_subtract(a.t, b.t);
                for (int i = 0; i < R * C; ++i) n.v[i] = a.v[i] - b.v[i];
                break;
            case 2: // keep magnitudes bounded: a*b/(1+|.|) is not available, so scale by the row
                n.t = kb_multiply(kb_multiply(a.t, b.t), rowt);
                for (int i = 0; i < R * C; ++i) n.v[i] = a.v[i] * b.v[i] * row[i % C];
                break;
            case 3:
                n.t = kb_negative(a.t);
                for (int i = 0; i < R * C; ++i) n.v[i] = -a.v[i];
                break;
            case 4: // a view of a view: shares the buffer
                n.t = kb_reshape(kb_identity(kb_reshape(a.t, flat, 1)), back, 2);
                n.v = a.v;
                break;
            case 5: { // a reduction broadcast back: a - mean(a, axis 1, keepdims)
                int ax = 1;
                n.t = kb_subtract(a.t, kb_mean(a.t, &ax, 1, 1));
                for (int r = 0; r < R; ++r) {
                    double m = 0;
                    for (int c = 0; c < C; ++c) m += a.v[r * C + c];
                    for (int c = 0; c < C; ++c) n.v[r * C + c] = a.v[r * C + c] - m / C;
                }
                break;
            }
            default:
                n.t = kb_divide(a.t, rowt);
                for (int i = 0; i < R * C; ++i) n.v[i] = a.v[i] / row[i % C];
                break;
            }
            ASSERT_NE(n.t, nullptr) << kb_last_error();
            nodes.push_back(n);
        }
        for (int set = 0; set < 3; ++set) {
            std::vector<size_t> idx;
            for (int j = 0; j < 5; ++j) idx.push_back(3 + gen() % (nodes.size() - 3));
            idx.push_back(nodes.size() - 1);
            std::vector<kb_tensor *> outs;
            for (size_t i : idx) outs.push_back(nodes[i].t);
            kb_function *fn = kb_function_new(ctx, nullptr, 0, outs.data(), (int)outs.size(), nullptr, 0,
                                              KB_DEVICE_CPU);
            ASSERT_NE(fn, nullptr) << kb_last_error();
            for (int call = 0; call < 2; ++call) {
                ASSERT_TRUE(ok(kb_function_call(fn, nullptr, 0)));
                for (size_t o = 0; o < idx.size(); ++o) {
                    size_t nb = 0;
                    const void *p = kb_function_output(fn, (int)o, nullptr, nullptr, nullptr, &nb);
                    ASSERT_NE(p, nullptr) << kb_last_error();
                    ASSERT_EQ(nb, sizeof(double) * R * C);
                    EXPECT_TRUE(allclose(from_bytes(p, R * C, KB_FLOAT64), nodes[idx[o]].v, 1e-12, 1e-12))
                        << "trial " << trial << ", output set " << set << ", output " << o << " (node "
                        << idx[o] << "), call " << call;
                }
            }
            kb_function_free(fn);
        }
    }
}

// A chain of 20 elementwise ops needs two live buffers at a time, not twenty; views and leaves
// take no arena space and launch nothing.
TEST_F(Planner, ArenaReusesDeadBuffers) {
    std::vector<double> v = random_values(gen, 64 * 64, -1, 1);
    kb_tensor *x = make_var(ctx, v, {64, 64}, KB_FLOAT64);
    kb_tensor *y = x;
    int64_t flat[1] = {64 * 64};
    for (int i = 0; i < 20; ++i) y = kb_negative(i == 10 ? kb_reshape(y, flat, 1) : y);
    kb_function *fn = kb_function_new(ctx, nullptr, 0, &y, 1, nullptr, 0, KB_DEVICE_CPU);
    ASSERT_NE(fn, nullptr) << kb_last_error();
    ASSERT_TRUE(ok(kb_function_call(fn, nullptr, 0)));
    kb_function_info info;
    ASSERT_TRUE(ok(kb_function_get_info(fn, &info)));
    const size_t one = 64 * 64 * sizeof(double);
    EXPECT_EQ(info.device, KB_DEVICE_CPU);
    EXPECT_EQ(info.n_nodes, 22);  // the variable, 20 negatives, one reshape
    EXPECT_EQ(info.n_kernels, 20);
    EXPECT_EQ(info.n_host_fallbacks, 0);
    EXPECT_EQ(info.n_plans, 1);
    EXPECT_EQ(info.naive_bytes, 20 * one);
    EXPECT_LE(info.arena_bytes, 2 * one);
    std::vector<double> want = v; // 20 negations
    EXPECT_TRUE(allclose(from_bytes(kb_function_output(fn, 0, nullptr, nullptr, nullptr, nullptr), v.size(), KB_FLOAT64),
                         want, 0, 0));
    kb_function_free(fn);
    EXPECT_EQ(kb_function_get_info(nullptr, &info), KB_ERR_INVALID_ARGUMENT);
}

// One tensor listed as many outputs (more than the session has tensors): each output gets it.
TEST_F(Planner, SameOutputManyTimes) {
    kb_tensor *x = make_const(ctx, {1, -2}, {2}, KB_FLOAT64);
    kb_tensor *y = kb_negative(x);
    std::vector<kb_tensor *> outs(7, y);
    outs[3] = x;
    kb_function *fn = kb_function_new(ctx, nullptr, 0, outs.data(), (int)outs.size(), nullptr, 0, KB_DEVICE_CPU);
    ASSERT_NE(fn, nullptr) << kb_last_error();
    ASSERT_TRUE(ok(kb_function_call(fn, nullptr, 0)));
    for (int i = 0; i < 7; ++i)
        EXPECT_TRUE(allclose(from_bytes(kb_function_output(fn, i, nullptr, nullptr, nullptr, nullptr), 2, KB_FLOAT64),
                             i == 3 ? std::vector<double>{1, -2} : std::vector<double>{-1, 2}, 0, 0))
            << "output " << i;
    kb_function_free(fn);
}

// Notices go to the session's log callback; setting it needs a context.
TEST_F(Planner, LogCallbackIsPerContext) {
    EXPECT_EQ(kb_context_set_log_callback(nullptr, nullptr, nullptr), KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(ok(kb_context_set_log_callback(ctx, [](kb_log_level, const char *, void *) {}, nullptr)));
    EXPECT_TRUE(ok(kb_context_set_log_callback(ctx, nullptr, nullptr)));
}

} // namespace
