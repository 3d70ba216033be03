// Bad input for each public function: NULL arguments, wrong dtype, shape, rank, axis, byte count,
// tensors of two contexts. Each gives its status and a message naming the function (and the
// argument), never aborts or prints, keeps the first error of a chain, and leaves the session
// usable.
#include <cmath>
#include <cstring>
#include <thread>

#include "kb_test_util.h"

namespace {

using namespace kbt;

class Errors : public KbTest {
protected:
    void SetUp() override {
        KbTest::SetUp();
        x23 = make_const(ctx, {1, 2, 3, 4, 5, 6}, {2, 3});
        v23 = make_var(ctx, {1, 2, 3, 4, 5, 6}, {2, 3});
        x234 = make_const(ctx, std::vector<double>(24, 0.5), {2, 3, 4});
        kb_clear_error();
    }
    void TearDown() override {
        // The session is usable after every error.
        if (ctx) {
            kb_tensor *a = make_const(ctx, {1, 2}, {2});
            kb_tensor *b = kb_add(a, kb_square(a));
            EXPECT_NE(b, nullptr) << "session unusable: " << kb_last_error();
            if (b) {
                EXPECT_TRUE(allclose(eval_v(b), {2, 6}, 0, 0)) << "session unusable after an error";
            }
        }
        KbTest::TearDown();
    }
    kb_tensor *x23 = nullptr, *v23 = nullptr, *x234 = nullptr;
};

// A NULL argument: INVALID_ARGUMENT, the message names the function and the argument.
#define EXPECT_NULL_ARG(call, fn, arg)                                                       \
    do {                                                                                     \
        kb_clear_error();                                                                    \
        (void)(call);                                                                        \
        EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {fn, arg})) << #call;                 \
    } while (0)

#define EXPECT_STATUS_CALL(call, st, ...)                                                    \
    do {                                                                                     \
        kb_clear_error();                                                                    \
        EXPECT_EQ((call), (st)) << #call << ": " << kb_last_error();                         \
        EXPECT_TRUE(has_error(st, ##__VA_ARGS__)) << #call;                                  \
    } while (0)

TEST_F(Errors, StatusApi) {
    kb_clear_error();
    EXPECT_EQ(kb_last_status(), KB_OK);
    ASSERT_NE(kb_last_error(), nullptr);
    EXPECT_STREQ(kb_last_error(), "");
    EXPECT_STREQ(kb_status_string(KB_OK), "KB_OK");
    EXPECT_STREQ(kb_status_string(KB_ERR_SHAPE), "KB_ERR_SHAPE");
    EXPECT_STREQ(kb_status_string(KB_ERR_CONFIG), "KB_ERR_CONFIG");
    EXPECT_NE(kb_status_string((kb_status)1234), nullptr);
    (void)kb_add(x23, nullptr);
    EXPECT_EQ(kb_last_status(), KB_ERR_INVALID_ARGUMENT);
    EXPECT_STRNE(kb_last_error(), "");
    kb_clear_error();
    EXPECT_EQ(kb_last_status(), KB_OK);
    EXPECT_STREQ(kb_last_error(), "");
    // A successful call does not clear a pending error (errors are read once at the end).
    (void)kb_add(x23, nullptr);
    (void)kb_add(x23, x23);
    EXPECT_EQ(kb_last_status(), KB_ERR_INVALID_ARGUMENT);
}

TEST_F(Errors, NullArgumentsContext) {
    EXPECT_NULL_ARG(kb_context_new(nullptr, nullptr), "kb_context_new", "out");
    EXPECT_NULL_ARG(kb_set_epsilon(nullptr, 1e-3), "kb_set_epsilon", "ctx");
    EXPECT_NULL_ARG(kb_set_floatx(nullptr, KB_FLOAT32), "kb_set_floatx", "ctx");
    EXPECT_NULL_ARG(kb_set_image_data_format(nullptr, KB_CHANNELS_LAST), "kb_set_image_data_format", "ctx");
    EXPECT_NULL_ARG(kb_clear_session(nullptr), "kb_clear_session", "ctx");
    EXPECT_NULL_ARG(kb_manual_variable_initialization(nullptr, 1), "kb_manual_variable_initialization", "ctx");
    EXPECT_NULL_ARG(kb_set_learning_phase(nullptr, 1), "kb_set_learning_phase", "ctx");
    EXPECT_NULL_ARG(kb_learning_phase(nullptr), "kb_learning_phase", "ctx");
    EXPECT_NULL_ARG(kb_memory_stats_get(nullptr, nullptr), "kb_memory_stats_get", "ctx");
    EXPECT_NULL_ARG(kb_memory_stats_get(ctx, nullptr), "kb_memory_stats_get", "out");
    EXPECT_NULL_ARG(kb_memory_release(nullptr), "kb_memory_release", "ctx");
    float f[2];
    int32_t i[2] = {1, 2};
    EXPECT_NULL_ARG(kb_cast_to_floatx(nullptr, i, KB_INT32, 2, f, sizeof f), "kb_cast_to_floatx", "ctx");
    EXPECT_NULL_ARG(kb_cast_to_floatx(ctx, nullptr, KB_INT32, 2, f, sizeof f), "kb_cast_to_floatx", "src");
    EXPECT_NULL_ARG(kb_cast_to_floatx(ctx, i, KB_INT32, 2, nullptr, sizeof f), "kb_cast_to_floatx", "dst");
    kb_dtype d;
    EXPECT_NULL_ARG(kb_dtype_from_name(nullptr, &d), "kb_dtype_from_name", "name");
    // Getters of a NULL tensor report an error and return their documented sentinel.
    kb_clear_error();
    int64_t dims[KB_MAX_RANK];
    EXPECT_EQ(kb_int_shape(nullptr, dims), -1);
    EXPECT_EQ(kb_ndim(nullptr), -1);
    EXPECT_EQ(kb_dtype_of(nullptr), KB_FLOATX);
    EXPECT_EQ(kb_count_params(nullptr), -1);
    EXPECT_EQ(kb_last_status(), KB_ERR_INVALID_ARGUMENT);
}

TEST_F(Errors, NullArgumentsTensorCreation) {
    int64_t s[2] = {2, 2};
    float data[4] = {1, 2, 3, 4};
    EXPECT_NULL_ARG(kb_variable(nullptr, data, sizeof data, KB_FLOAT32, s, 2, nullptr), "kb_variable", "ctx");
    EXPECT_NULL_ARG(kb_variable(ctx, data, sizeof data, KB_FLOAT32, nullptr, 2, nullptr), "kb_variable", "shape");
    EXPECT_NULL_ARG(kb_constant(nullptr, data, sizeof data, KB_FLOAT32, s, 2, nullptr), "kb_constant", "ctx");
    EXPECT_NULL_ARG(kb_constant(ctx, nullptr, sizeof data, KB_FLOAT32, s, 2, nullptr), "kb_constant", "data");
    EXPECT_NULL_ARG(kb_constant_scalar(nullptr, 1.0, KB_FLOAT32, s, 2), "kb_constant_scalar", "ctx");
    EXPECT_NULL_ARG(kb_placeholder(nullptr, s, 2, KB_FLOAT32, nullptr), "kb_placeholder", "ctx");
    EXPECT_NULL_ARG(kb_zeros(nullptr, s, 2, KB_FLOAT32, nullptr), "kb_zeros", "ctx");
    EXPECT_NULL_ARG(kb_ones(nullptr, s, 2, KB_FLOAT32, nullptr), "kb_ones", "ctx");
    EXPECT_NULL_ARG(kb_zeros(ctx, nullptr, 2, KB_FLOAT32, nullptr), "kb_zeros", "shape");
    EXPECT_NULL_ARG(kb_eye(nullptr, 3, 3, KB_FLOAT32, nullptr), "kb_eye", "ctx");
    EXPECT_NULL_ARG(kb_zeros_like(nullptr, KB_FLOATX), "kb_zeros_like", "x");
    EXPECT_NULL_ARG(kb_ones_like(nullptr, KB_FLOATX), "kb_ones_like", "x");
    EXPECT_NULL_ARG(kb_identity(nullptr), "kb_identity", "x");
    EXPECT_NULL_ARG(kb_shape(nullptr), "kb_shape", "x");
    EXPECT_NULL_ARG(kb_size(nullptr), "kb_size", "x");
    EXPECT_NULL_ARG(kb_cast(nullptr, KB_FLOAT64), "kb_cast", "x");
    EXPECT_NULL_ARG(kb_stop_gradient(nullptr), "kb_stop_gradient", "x");
    EXPECT_NULL_ARG(kb_print_tensor(nullptr, "m"), "kb_print_tensor", "x");
}

TEST_F(Errors, NullArgumentsValues) {
    float out[6];
    EXPECT_NULL_ARG(kb_eval(nullptr, out, sizeof out), "kb_eval", "x");
    EXPECT_NULL_ARG(kb_eval(x23, nullptr, sizeof out), "kb_eval", "out");
    EXPECT_NULL_ARG(kb_get_value(nullptr, out, sizeof out), "kb_get_value", "x");
    EXPECT_NULL_ARG(kb_get_value(v23, nullptr, sizeof out), "kb_get_value", "out");
    EXPECT_NULL_ARG(kb_set_value(nullptr, out, sizeof out), "kb_set_value", "var");
    EXPECT_NULL_ARG(kb_set_value(v23, nullptr, sizeof out), "kb_set_value", "data");
    EXPECT_NULL_ARG(kb_batch_get_value(nullptr, 1, nullptr, nullptr), "kb_batch_get_value", "xs");
    EXPECT_NULL_ARG(kb_batch_set_value(nullptr, 1, nullptr, nullptr), "kb_batch_set_value", "vars");
    EXPECT_NULL_ARG(kb_update(nullptr, x23), "kb_update", "x");
    EXPECT_NULL_ARG(kb_update(v23, nullptr), "kb_update", "new_x");
    EXPECT_NULL_ARG(kb_update_add(v23, nullptr), "kb_update_add", "increment");
    EXPECT_NULL_ARG(kb_update_sub(v23, nullptr), "kb_update_sub", "decrement");
    EXPECT_NULL_ARG(kb_moving_average_update(nullptr, x23, 0.9), "kb_moving_average_update", "x");
    EXPECT_NULL_ARG(kb_moving_average_update(v23, nullptr, 0.9), "kb_moving_average_update", "value");
}

TEST_F(Errors, NullArgumentsFunctionAndGradients) {
    kb_tensor *y = kb_square(v23);
    EXPECT_NULL_ARG(kb_function_new(nullptr, nullptr, 0, &y, 1, nullptr, 0, KB_DEVICE_CPU), "kb_function_new", "ctx");
    EXPECT_NULL_ARG(kb_function_new(ctx, nullptr, 1, &y, 1, nullptr, 0, KB_DEVICE_CPU), "kb_function_new", "inputs");
    EXPECT_NULL_ARG(kb_function_new(ctx, nullptr, 0, nullptr, 1, nullptr, 0, KB_DEVICE_CPU), "kb_function_new", "outputs");
    EXPECT_NULL_ARG(kb_function_new(ctx, nullptr, 0, &y, 1, nullptr, 1, KB_DEVICE_CPU), "kb_function_new", "updates");
    kb_tensor *null_out = nullptr;
    EXPECT_NULL_ARG(kb_function_new(ctx, nullptr, 0, &null_out, 1, nullptr, 0, KB_DEVICE_CPU), "kb_function_new", "outputs");
    EXPECT_NULL_ARG(kb_function_call(nullptr, nullptr, 0), "kb_function_call", "fn");
    EXPECT_NULL_ARG(kb_function_output(nullptr, 0, nullptr, nullptr, nullptr, nullptr), "kb_function_output", "fn");
    float o;
    EXPECT_NULL_ARG(kb_function_get_output(nullptr, 0, &o, sizeof o), "kb_function_get_output", "fn");
    kb_tensor *g = nullptr;
    kb_tensor *loss = kb_sum(y, nullptr, 0, 0);
    EXPECT_NULL_ARG(kb_gradients(nullptr, &v23, 1, &g), "kb_gradients", "loss");
    EXPECT_NULL_ARG(kb_gradients(loss, nullptr, 1, &g), "kb_gradients", "vars");
    EXPECT_NULL_ARG(kb_gradients(loss, &v23, 1, nullptr), "kb_gradients", "grads_out");
    kb_tensor *null_var = nullptr;
    EXPECT_NULL_ARG(kb_gradients(loss, &null_var, 1, &g), "kb_gradients", "vars");
    // kb_function_free(NULL) is a no-op.
    kb_function_free(nullptr);
}

TEST_F(Errors, NullArgumentsOps) {
    int ax = 0;
    int64_t s[1] = {6};
    int p[2] = {1, 0};
    EXPECT_NULL_ARG(kb_add(nullptr, x23), "kb_add", "x");
    EXPECT_NULL_ARG(kb_add(x23, nullptr), "kb_add", "y");
    EXPECT_NULL_ARG(kb_subtract(nullptr, x23), "kb_subtract", "x");
    EXPECT_NULL_ARG(kb_multiply(x23, nullptr), "kb_multiply", "y");
    EXPECT_NULL_ARG(kb_divide(nullptr, x23), "kb_divide", "x");
    EXPECT_NULL_ARG(kb_negative(nullptr), "kb_negative", "x");
    EXPECT_NULL_ARG(kb_square(nullptr), "kb_square", "x");
    EXPECT_NULL_ARG(kb_exp(nullptr), "kb_exp", "x");
    EXPECT_NULL_ARG(kb_log(nullptr), "kb_log", "x");
    EXPECT_NULL_ARG(kb_sqrt(nullptr), "kb_sqrt", "x");
    EXPECT_NULL_ARG(kb_sum(nullptr, &ax, 1, 0), "kb_sum", "x");
    EXPECT_NULL_ARG(kb_mean(nullptr, &ax, 1, 0), "kb_mean", "x");
    EXPECT_NULL_ARG(kb_max(nullptr, &ax, 1, 0), "kb_max", "x");
    EXPECT_NULL_ARG(kb_sum(x23, nullptr, 2, 0), "kb_sum", "axes");
    EXPECT_NULL_ARG(kb_dot(nullptr, x23), "kb_dot", "x");
    EXPECT_NULL_ARG(kb_dot(x23, nullptr), "kb_dot", "y");
    EXPECT_NULL_ARG(kb_transpose(nullptr), "kb_transpose", "x");
    EXPECT_NULL_ARG(kb_permute_dimensions(nullptr, p, 2), "kb_permute_dimensions", "x");
    EXPECT_NULL_ARG(kb_permute_dimensions(x23, nullptr, 2), "kb_permute_dimensions", "pattern");
    EXPECT_NULL_ARG(kb_reshape(nullptr, s, 1), "kb_reshape", "x");
    EXPECT_NULL_ARG(kb_reshape(x23, nullptr, 1), "kb_reshape", "shape");
    EXPECT_NULL_ARG(kb_relu(nullptr, 0, INFINITY, 0), "kb_relu", "x");
    EXPECT_NULL_ARG(kb_sigmoid(nullptr), "kb_sigmoid", "x");
    EXPECT_NULL_ARG(kb_softmax(nullptr, -1), "kb_softmax", "x");
    EXPECT_NULL_ARG(kb_categorical_crossentropy(nullptr, x23, 0, -1), "kb_categorical_crossentropy", "target");
    EXPECT_NULL_ARG(kb_categorical_crossentropy(x23, nullptr, 0, -1), "kb_categorical_crossentropy", "output");
}

TEST_F(Errors, WrongDtype) {
    kb_tensor *d23 = make_const(ctx, {1, 2, 3, 4, 5, 6}, {2, 3}, KB_FLOAT64);
    EXPECT_NULL_WITH(kb_add(x23, d23), KB_ERR_DTYPE, {"kb_add", "float32", "float64"});
    EXPECT_NULL_WITH(kb_subtract(x23, d23), KB_ERR_DTYPE, {"subtract"});
    EXPECT_NULL_WITH(kb_multiply(d23, x23), KB_ERR_DTYPE, {"multiply"});
    EXPECT_NULL_WITH(kb_divide(x23, d23), KB_ERR_DTYPE, {"divide"});
    kb_tensor *d32 = make_const(ctx, {1, 2, 3, 4, 5, 6}, {3, 2}, KB_FLOAT64);
    EXPECT_NULL_WITH(kb_dot(x23, d32), KB_ERR_DTYPE, {"dot"});
    EXPECT_NULL_WITH(kb_categorical_crossentropy(x23, d23, 0, -1), KB_ERR_DTYPE, {"categorical_crossentropy"});
    EXPECT_NULL_WITH(kb_update(v23, d23), KB_ERR_DTYPE, {"update"});
    // Invalid dtype values.
    int64_t s[1] = {2};
    float two[2] = {1, 2};
    kb_clear_error();
    EXPECT_EQ(kb_variable(ctx, two, sizeof two, (kb_dtype)12, s, 1, nullptr), nullptr);
    EXPECT_NE(kb_last_status(), KB_OK);
    kb_clear_error();
    EXPECT_EQ(kb_cast(x23, (kb_dtype)12), nullptr);
    EXPECT_NE(kb_last_status(), KB_OK);
    kb_clear_error();
    EXPECT_EQ(kb_placeholder(ctx, s, 1, (kb_dtype)-7, nullptr), nullptr);
    EXPECT_NE(kb_last_status(), KB_OK);
    // Gradient of an integer loss: not differentiable.
    kb_tensor *iv = make_var(ctx, {1, 2}, {2}, KB_INT32);
    kb_tensor *g = nullptr;
    kb_clear_error();
    EXPECT_NE(kb_gradients(kb_sum(kb_cast(iv, KB_INT32), nullptr, 0, 0), &iv, 1, &g), KB_OK);
    EXPECT_NE(std::string(kb_last_error()), "");
}

TEST_F(Errors, NonBroadcastableShapes) {
    kb_tensor *a4 = make_const(ctx, {1, 2, 3, 4}, {4});
    kb_tensor *a32 = make_const(ctx, {1, 2, 3, 4, 5, 6}, {3, 2});
    EXPECT_NULL_WITH(kb_add(x23, a4), KB_ERR_SHAPE, {"kb_add", "(2, 3)"});
    EXPECT_NULL_WITH(kb_subtract(x23, a32), KB_ERR_SHAPE, {"subtract"});
    EXPECT_NULL_WITH(kb_multiply(x234, x23), KB_ERR_SHAPE, {"multiply"});
    EXPECT_NULL_WITH(kb_divide(a4, x23), KB_ERR_SHAPE, {"divide"});
    EXPECT_NULL_WITH(kb_categorical_crossentropy(x23, a32, 0, -1), KB_ERR_SHAPE, {"categorical_crossentropy"});
    EXPECT_NULL_WITH(kb_update(v23, a32), KB_ERR_SHAPE, {"update"});
    EXPECT_NULL_WITH(kb_update_add(v23, a32), KB_ERR_SHAPE);
}

TEST_F(Errors, Axes) {
    int a3 = 3, am4 = -4, rep[2] = {1, 1}, same[2] = {1, -2};
    EXPECT_NULL_WITH(kb_sum(x234, &a3, 1, 0), KB_ERR_AXIS, {"kb_sum", "3"});
    EXPECT_NULL_WITH(kb_mean(x234, &am4, 1, 0), KB_ERR_AXIS, {"mean"});
    EXPECT_NULL_WITH(kb_max(x234, rep, 2, 0), KB_ERR_AXIS, {"max"});
    EXPECT_NULL_WITH(kb_sum(x234, same, 2, 1), KB_ERR_AXIS, {"sum"});
    EXPECT_NULL_WITH(kb_softmax(x234, 3), KB_ERR_AXIS, {"softmax"});
    EXPECT_NULL_WITH(kb_softmax(x234, -4), KB_ERR_AXIS, {"softmax"});
    EXPECT_NULL_WITH(kb_categorical_crossentropy(x23, x23, 0, 2), KB_ERR_AXIS, {"categorical_crossentropy"});
    int bad_perm[3] = {0, 0, 1}, oob_perm[3] = {0, 1, 3};
    EXPECT_NULL_WITH(kb_permute_dimensions(x234, bad_perm, 3), KB_ERR_AXIS, {"permute_dimensions"});
    EXPECT_NULL_WITH(kb_permute_dimensions(x234, oob_perm, 3), KB_ERR_AXIS, {"permute_dimensions"});
    int short_perm[2] = {1, 0};
    kb_clear_error();
    EXPECT_EQ(kb_permute_dimensions(x234, short_perm, 2), nullptr);
    EXPECT_TRUE(kb_last_status() == KB_ERR_AXIS || kb_last_status() == KB_ERR_SHAPE)
        << kb_status_string(kb_last_status()) << ": " << kb_last_error();
    // Axes of a rank-0 tensor: there are none.
    kb_tensor *sc = kb_constant_scalar(ctx, 1.0, KB_FLOAT32, nullptr, 0);
    int a0 = 0;
    EXPECT_NULL_WITH(kb_sum(sc, &a0, 1, 0), KB_ERR_AXIS);
    EXPECT_NULL_WITH(kb_softmax(sc, -1), KB_ERR_AXIS, {"softmax"});
    EXPECT_NULL_WITH(kb_categorical_crossentropy(sc, sc, 0, -1), KB_ERR_AXIS, {"categorical_crossentropy"});
    // More axes than the rank.
    int many[4] = {0, 1, 2, 0};
    kb_clear_error();
    EXPECT_EQ(kb_sum(x234, many, 4, 0), nullptr);
    EXPECT_TRUE(kb_last_status() == KB_ERR_AXIS || kb_last_status() == KB_ERR_INVALID_ARGUMENT)
        << kb_status_string(kb_last_status());
    kb_clear_error();
    EXPECT_EQ(kb_sum(x234, many, -1, 0), nullptr) << "negative axis count";
    EXPECT_NE(kb_last_status(), KB_OK);
}

TEST_F(Errors, DotInnerDimension) {
    kb_tensor *a45 = make_const(ctx, std::vector<double>(20, 1.0), {4, 5});
    EXPECT_NULL_WITH(kb_dot(x23, a45), KB_ERR_SHAPE, {"kb_dot", "(2, 3)", "(4, 5)"});
    kb_tensor *a425 = make_const(ctx, std::vector<double>(40, 1.0), {4, 2, 5});
    EXPECT_NULL_WITH(kb_dot(x23, a425), KB_ERR_SHAPE, {"dot"});
    kb_tensor *v4 = make_const(ctx, {1, 2, 3, 4}, {4});
    EXPECT_NULL_WITH(kb_dot(x23, v4), KB_ERR_SHAPE, {"dot"});
}

TEST_F(Errors, Reshape) {
    int64_t bad[2] = {4, 2}, two_unknown[2] = {-1, -1}, neg[2] = {-3, 2}, nofit[2] = {4, -1};
    EXPECT_NULL_WITH(kb_reshape(x23, bad, 2), KB_ERR_SHAPE, {"kb_reshape"});
    EXPECT_NULL_WITH(kb_reshape(x23, nofit, 2), KB_ERR_SHAPE, {"reshape"});
    kb_clear_error();
    EXPECT_EQ(kb_reshape(x23, two_unknown, 2), nullptr);
    EXPECT_NE(kb_last_status(), KB_OK);
    kb_clear_error();
    EXPECT_EQ(kb_reshape(x23, neg, 2), nullptr);
    EXPECT_NE(kb_last_status(), KB_OK);
    int64_t big[9] = {1, 1, 1, 1, 1, 1, 1, 1, 6};
    kb_clear_error();
    EXPECT_EQ(kb_reshape(x23, big, 9), nullptr) << "rank above KB_MAX_RANK";
    EXPECT_NE(kb_last_status(), KB_OK);
}

TEST_F(Errors, CreationShapes) {
    float data[4] = {1, 2, 3, 4};
    int64_t s22[2] = {2, 2}, s23[2] = {2, 3}, sneg[2] = {2, -3}, s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 4};
    EXPECT_NULL_WITH(kb_variable(ctx, data, sizeof data, KB_FLOAT32, s23, 2, nullptr), KB_ERR_SHAPE, {"kb_variable"});
    EXPECT_NULL_WITH(kb_variable(ctx, data, 3, KB_FLOAT32, s22, 2, nullptr), KB_ERR_SHAPE, {"kb_variable"});
    EXPECT_NULL_WITH(kb_constant(ctx, data, 2 * sizeof(float), KB_FLOAT32, s22, 2, nullptr), KB_ERR_SHAPE,
                     {"kb_constant"});
    kb_clear_error();
    EXPECT_EQ(kb_variable(ctx, data, sizeof data, KB_FLOAT32, sneg, 2, nullptr), nullptr);
    EXPECT_NE(kb_last_status(), KB_OK);
    kb_clear_error();
    EXPECT_EQ(kb_variable(ctx, data, sizeof data, KB_FLOAT32, s9, 9, nullptr), nullptr) << "rank 9";
    EXPECT_NE(kb_last_status(), KB_OK);
    kb_clear_error();
    EXPECT_EQ(kb_placeholder(ctx, s9, 9, KB_FLOAT32, nullptr), nullptr);
    EXPECT_NE(kb_last_status(), KB_OK);
    int64_t pbad[2] = {-5, 3};
    kb_clear_error();
    EXPECT_EQ(kb_placeholder(ctx, pbad, 2, KB_FLOAT32, nullptr), nullptr) << "-5 is not KB_NONE";
    EXPECT_NE(kb_last_status(), KB_OK);
    kb_clear_error();
    EXPECT_EQ(kb_eye(ctx, -1, 3, KB_FLOAT32, nullptr), nullptr);
    EXPECT_NE(kb_last_status(), KB_OK);
    // Variables need a static shape.
    int64_t unknown[2] = {KB_NONE, 2};
    kb_clear_error();
    EXPECT_EQ(kb_variable(ctx, nullptr, 0, KB_FLOAT32, unknown, 2, nullptr), nullptr);
    EXPECT_NE(kb_last_status(), KB_OK);
}

TEST_F(Errors, GetSetValueByteCount) {
    float buf[6];
    std::memset(buf, 0x7f, sizeof buf);
    EXPECT_STATUS_CALL(kb_get_value(v23, buf, 5 * sizeof(float)), KB_ERR_SHAPE, {"kb_get_value"});
    EXPECT_STATUS_CALL(kb_eval(x23, buf, 7 * sizeof(float)), KB_ERR_SHAPE, {"kb_eval"});
    float nv[6] = {9, 9, 9, 9, 9, 9};
    EXPECT_STATUS_CALL(kb_set_value(v23, nv, 5 * sizeof(float)), KB_ERR_SHAPE, {"kb_set_value"});
    EXPECT_TRUE(allclose(get_v(v23), {1, 2, 3, 4, 5, 6}, 0, 0)) << "nothing written";
    double dv[6] = {9, 9, 9, 9, 9, 9};
    EXPECT_STATUS_CALL(kb_set_value(v23, dv, sizeof dv), KB_ERR_SHAPE, {"kb_set_value"});
    EXPECT_TRUE(allclose(get_v(v23), {1, 2, 3, 4, 5, 6}, 0, 0)) << "nothing written";
    // set_value of something that is not a variable.
    kb_clear_error();
    EXPECT_EQ(kb_set_value(x23, nv, sizeof nv), KB_ERR_INVALID_ARGUMENT);
    kb_clear_error();
    EXPECT_EQ(kb_set_value(kb_add(v23, v23), nv, sizeof nv), KB_ERR_INVALID_ARGUMENT);
}

TEST_F(Errors, UpdateTargetsMustBeVariables) {
    EXPECT_NULL_WITH(kb_update(x23, x23), KB_ERR_INVALID_ARGUMENT, {"kb_update"});
    EXPECT_NULL_WITH(kb_update_add(kb_square(v23), x23), KB_ERR_INVALID_ARGUMENT, {"kb_update_add"});
}

TEST_F(Errors, TwoContextsMixed) {
    kb_context *other = nullptr;
    kb_context_options o = KB_CONTEXT_OPTIONS_DEFAULTS;
    o.device = KB_DEVICE_CPU;
    o.read_config = 0;
    ASSERT_TRUE(ok(kb_context_new(&other, &o)));
    kb_tensor *y = make_const(other, {1, 2, 3, 4, 5, 6}, {2, 3});
    kb_clear_error();
    EXPECT_EQ(kb_add(x23, y), nullptr);
    EXPECT_EQ(kb_last_status(), KB_ERR_INVALID_ARGUMENT) << kb_last_error();
    EXPECT_NE(std::string(kb_last_error()).find("context"), std::string::npos) << kb_last_error();
    kb_clear_error();
    EXPECT_EQ(kb_dot(x23, kb_transpose(y)), nullptr);
    EXPECT_NE(kb_last_status(), KB_OK);
    // A function of one context cannot take another context's tensors.
    kb_clear_error();
    kb_function *fn = kb_function_new(ctx, nullptr, 0, &y, 1, nullptr, 0, KB_DEVICE_CPU);
    EXPECT_EQ(fn, nullptr);
    EXPECT_NE(kb_last_status(), KB_OK);
    kb_function_free(fn);
    kb_tensor *g = nullptr;
    kb_clear_error();
    EXPECT_NE(kb_gradients(kb_sum(x23, nullptr, 0, 0), &y, 1, &g), KB_OK);
    // Both contexts still work.
    EXPECT_TRUE(allclose(eval_v(kb_add(y, y)), {2, 4, 6, 8, 10, 12}, 0, 0));
    kb_context_free(other);
}

TEST_F(Errors, FirstErrorOfAChainSurvives) {
    kb_tensor *a45 = make_const(ctx, std::vector<double>(20, 1.0), {4, 5});
    kb_clear_error();
    kb_tensor *r = kb_relu(kb_add(kb_dot(x23, a45), x23), 0, INFINITY, 0);
    EXPECT_EQ(r, nullptr);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"dot"})) << "the dot's error, not a NULL-argument error";
    EXPECT_EQ(std::string(kb_last_error()).find("NULL"), std::string::npos) << kb_last_error();
    // The same for a function built from the failed chain.
    kb_function *fn = kb_function_new(ctx, nullptr, 0, &r, 1, nullptr, 0, KB_DEVICE_CPU);
    EXPECT_EQ(fn, nullptr);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"dot"}));
    kb_tensor *g = nullptr;
    EXPECT_NE(kb_gradients(r, &v23, 1, &g), KB_OK);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"dot"}));
}

TEST_F(Errors, OtherInvalidArguments) {
    kb_tensor *y = kb_square(v23);
    kb_clear_error();
    EXPECT_EQ(kb_function_new(ctx, nullptr, -1, &y, 1, nullptr, 0, KB_DEVICE_CPU), nullptr);
    EXPECT_EQ(kb_last_status(), KB_ERR_INVALID_ARGUMENT);
    kb_clear_error();
    EXPECT_EQ(kb_function_new(ctx, nullptr, 0, &y, 1, nullptr, 0, (kb_device)3), nullptr);
    EXPECT_EQ(kb_last_status(), KB_ERR_INVALID_ARGUMENT);
    kb_tensor *g = nullptr;
    kb_clear_error();
    EXPECT_EQ(kb_gradients(kb_sum(y, nullptr, 0, 0), &v23, -1, &g), KB_ERR_INVALID_ARGUMENT);
    // CUDA asked for without a GPU.
    if (!cuda_available()) {
        kb_clear_error();
        EXPECT_EQ(kb_function_new(ctx, nullptr, 0, &y, 1, nullptr, 0, KB_DEVICE_CUDA), nullptr);
        EXPECT_EQ(kb_last_status(), KB_ERR_NO_DEVICE);
        kb_context *c = nullptr;
        kb_context_options o = KB_CONTEXT_OPTIONS_DEFAULTS;
        o.device = KB_DEVICE_CUDA;
        o.read_config = 0;
        kb_clear_error();
        EXPECT_EQ(kb_context_new(&c, &o), KB_ERR_NO_DEVICE);
        kb_context_free(c);
    }
}

TEST_F(Errors, LastErrorIsPerThread) {
    kb_clear_error();
    (void)kb_add(x23, nullptr);
    ASSERT_EQ(kb_last_status(), KB_ERR_INVALID_ARGUMENT);
    kb_status other_before = KB_ERR_INTERNAL, other_after = KB_ERR_INTERNAL;
    std::string other_msg;
    std::thread t([&] {
        other_before = kb_last_status();  // a fresh thread has no error
        int a3 = 3;
        (void)kb_sum(x234, &a3, 1, 0);
        other_after = kb_last_status();
        other_msg = kb_last_error();
    });
    t.join();
    EXPECT_EQ(other_before, KB_OK);
    EXPECT_EQ(other_after, KB_ERR_AXIS) << other_msg;
    EXPECT_EQ(kb_last_status(), KB_ERR_INVALID_ARGUMENT) << "the other thread's error is not seen here";
    EXPECT_NE(std::string(kb_last_error()).find("kb_add"), std::string::npos);
}

TEST_F(Errors, UserErrorsNeverPrint) {
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    int a3 = 3;
    int64_t bad[2] = {4, 2};
    float buf[2];
    (void)kb_add(nullptr, x23);
    (void)kb_sum(x234, &a3, 1, 0);
    (void)kb_reshape(x23, bad, 2);
    (void)kb_dot(x23, x23);
    (void)kb_get_value(v23, buf, sizeof buf);
    (void)kb_set_floatx(ctx, KB_INT32);
    (void)kb_set_learning_phase(ctx, 2);
    std::string out = ::testing::internal::GetCapturedStdout();
    std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(out, "");
    EXPECT_EQ(err, "");
}

// Shapes whose element count overflows are a status, never an overflowed allocation: leaves,
// placeholders, ops that would produce one, reshape targets and feeds.
TEST_F(Errors, HugeShapes) {
    const int64_t big = (int64_t)1 << 40;
    int64_t s2[2] = {big, big};
    kb_clear_error();
    EXPECT_EQ(kb_variable(ctx, nullptr, 0, KB_FLOAT32, s2, 2, nullptr), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"kb_variable", "2^56"}));
    EXPECT_EQ(kb_zeros(ctx, s2, 2, KB_FLOAT32, nullptr), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"kb_zeros"}));
    EXPECT_EQ(kb_placeholder(ctx, s2, 2, KB_FLOAT32, nullptr), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"kb_placeholder"}));
    // (big, 1) * (1, big) broadcasts to big*big
    int64_t c1[2] = {KB_NONE, 1}, r1[2] = {1, KB_NONE};
    kb_tensor *a = kb_placeholder(ctx, c1, 2, KB_FLOAT32, "a");
    kb_tensor *b = kb_placeholder(ctx, r1, 2, KB_FLOAT32, "b");
    kb_tensor *p = kb_multiply(a, b);
    ASSERT_NE(p, nullptr) << kb_last_error();
    kb_tensor *ins[2] = {a, b};
    kb_function *fn = kb_function_new(ctx, ins, 2, &p, 1, nullptr, 0, KB_DEVICE_CPU);
    ASSERT_NE(fn, nullptr) << kb_last_error();
    int64_t fa[2] = {big, 1}, fb[2] = {1, big};
    kb_feed feeds[2] = {{nullptr, 0, KB_FLOAT32, 2, fa, nullptr}, {nullptr, 0, KB_FLOAT32, 2, fb, nullptr}};
    EXPECT_NE(kb_function_call(fn, feeds, 2), KB_OK) << "a 2^40-element feed with 0 bytes";
    kb_function_free(fn);
    kb_tensor *x = make_const(ctx, {1, 2}, {2});
    int64_t t3[3] = {big, big, 1};
    EXPECT_EQ(kb_reshape(x, t3, 3), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"kb_reshape"}));
    kb_tensor *ok_t = kb_multiply(x, x);
    EXPECT_NE(ok_t, nullptr) << "session usable after the errors";
}

}  // namespace
