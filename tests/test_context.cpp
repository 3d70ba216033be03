// Context and configuration: the Keras session state (spec 2.0) and keras.json / KERAS_BACKEND
// loading (spec 3). keras.json tests use a fresh temporary KERAS_HOME per test.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <unistd.h>

#include "kb_test_util.h"

namespace fs = std::filesystem;

namespace {

using namespace kbt;

class Context : public KbTest {};

TEST_F(Context, Defaults) {
    EXPECT_DOUBLE_EQ(kb_epsilon(ctx), 1e-7);
    EXPECT_EQ(kb_floatx(ctx), KB_FLOAT32);
    EXPECT_EQ(kb_image_data_format(ctx), KB_CHANNELS_LAST);
    EXPECT_EQ(kb_context_device(ctx), KB_DEVICE_CPU);
    ASSERT_NE(kb_context_device_name(ctx), nullptr);
    EXPECT_NE(std::string(kb_context_device_name(ctx)).find("cpu"), std::string::npos)
        << kb_context_device_name(ctx);
    EXPECT_EQ(kb_get_manual_variable_initialization(ctx), 0);
    EXPECT_GE(kb_cuda_device_count(), 0);
    if (!kb_cuda_compiled()) {
        EXPECT_EQ(kb_cuda_device_count(), 0);
    }
}

TEST_F(Context, NullOptionsGiveDefaults) {
    // opts NULL reads keras.json from $KERAS_HOME (ctest points it into the build tree).
    kb_context *c = nullptr;
    ASSERT_TRUE(ok(kb_context_new(&c, nullptr)));
    ASSERT_NE(c, nullptr);
    EXPECT_NE(kb_context_device(c), KB_DEVICE_AUTO);
    kb_context_free(c);
    kb_context_free(nullptr);  // no-op
}

TEST_F(Context, Epsilon) {
    ASSERT_TRUE(ok(kb_set_epsilon(ctx, 1e-5)));
    EXPECT_DOUBLE_EQ(kb_epsilon(ctx), 1e-5);
    ASSERT_TRUE(ok(kb_set_epsilon(ctx, 0.25)));
    EXPECT_DOUBLE_EQ(kb_epsilon(ctx), 0.25);
    // Two contexts never see each other's state.
    kb_context *other = nullptr;
    kb_context_options o = KB_CONTEXT_OPTIONS_DEFAULTS;
    o.device = KB_DEVICE_CPU;
    o.read_config = 0;
    ASSERT_TRUE(ok(kb_context_new(&other, &o)));
    EXPECT_DOUBLE_EQ(kb_epsilon(other), 1e-7);
    kb_context_free(other);
}

TEST_F(Context, EpsilonMustBeFinite) {
    kb_clear_error();
    EXPECT_EQ(kb_set_epsilon(ctx, NAN), KB_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(kb_set_epsilon(ctx, INFINITY), KB_ERR_INVALID_ARGUMENT);
    EXPECT_DOUBLE_EQ(kb_epsilon(ctx), 1e-7);
}

TEST_F(Context, NullContextGetters) {
    kb_clear_error();
    EXPECT_TRUE(std::isnan(kb_epsilon(nullptr)));
    EXPECT_EQ(kb_last_status(), KB_ERR_INVALID_ARGUMENT);
    kb_clear_error();
    EXPECT_EQ(kb_get_uid(nullptr, "x"), -1);
    EXPECT_EQ(kb_last_status(), KB_ERR_INVALID_ARGUMENT);
}

TEST_F(Context, KbDeviceEnvironment) {
    // KB_DEVICE=cpu makes an AUTO context and AUTO functions run on the CPU.
    ::setenv("KB_DEVICE", "cpu", 1);
    kb_context *c = nullptr;
    kb_context_options o = KB_CONTEXT_OPTIONS_DEFAULTS;
    o.read_config = 0;
    ASSERT_TRUE(ok(kb_context_new(&c, &o)));
    EXPECT_EQ(kb_context_device(c), KB_DEVICE_CPU);
    kb_tensor *a = make_const(c, {1, 2}, {2});
    kb_tensor *y = kb_add(a, a);
    kb_function *fn = kb_function_new(c, nullptr, 0, &y, 1, nullptr, 0, KB_DEVICE_AUTO);
    ASSERT_NE(fn, nullptr) << kb_last_error();
    EXPECT_EQ(kb_function_device(fn), KB_DEVICE_CPU);
    kb_function_free(fn);
    kb_context_free(c);
    // An invalid value is a configuration error (at context or at function creation).
    ::setenv("KB_DEVICE", "tpu", 1);
    c = nullptr;
    kb_clear_error();
    kb_status s = kb_context_new(&c, &o);
    if (s == KB_OK) {
        kb_tensor *b = make_const(c, {1, 2}, {2});
        kb_tensor *z = kb_add(b, b);
        kb_function *f2 = kb_function_new(c, nullptr, 0, &z, 1, nullptr, 0, KB_DEVICE_AUTO);
        EXPECT_EQ(f2, nullptr) << "KB_DEVICE=tpu accepted";
        kb_function_free(f2);
    }
    EXPECT_TRUE(has_error(KB_ERR_CONFIG, {"KB_DEVICE"}));
    kb_context_free(c);
    ::unsetenv("KB_DEVICE");
}

TEST_F(Context, Floatx) {
    for (kb_dtype dt : {KB_FLOAT16, KB_FLOAT64, KB_FLOAT32}) {
        ASSERT_TRUE(ok(kb_set_floatx(ctx, dt))) << kb_dtype_name(dt);
        EXPECT_EQ(kb_floatx(ctx), dt);
    }
    // ints, cast at the call: a C++ load of an out-of-range enum value is UB (UBSan flags it).
    for (int bad : {(int)KB_INT32, (int)KB_BOOL, (int)KB_INT64, (int)KB_BFLOAT16, 12}) {
        kb_clear_error();
        EXPECT_EQ(kb_set_floatx(ctx, (kb_dtype)bad), KB_ERR_INVALID_ARGUMENT) << bad;
        EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"floatx"}));
        EXPECT_EQ(kb_floatx(ctx), KB_FLOAT32) << "a rejected floatx leaves the old value";
    }
}

TEST_F(Context, CastToFloatx) {
    const int32_t src[3] = {1, -2, 3};
    float f[3];
    ASSERT_TRUE(ok(kb_cast_to_floatx(ctx, src, KB_INT32, 3, f, sizeof f)));
    EXPECT_EQ(f[0], 1.0f);
    EXPECT_EQ(f[1], -2.0f);
    EXPECT_EQ(f[2], 3.0f);
    ASSERT_TRUE(ok(kb_set_floatx(ctx, KB_FLOAT64)));
    const float src2[2] = {0.5f, -0.25f};
    double d[2];
    ASSERT_TRUE(ok(kb_cast_to_floatx(ctx, src2, KB_FLOAT32, 2, d, sizeof d)));
    EXPECT_EQ(d[0], 0.5);
    EXPECT_EQ(d[1], -0.25);
    // dst must hold exactly n * sizeof(floatx).
    kb_clear_error();
    EXPECT_EQ(kb_cast_to_floatx(ctx, src2, KB_FLOAT32, 2, d, sizeof(float) * 2), KB_ERR_SHAPE);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"kb_cast_to_floatx"}));
    // float16 floatx.
    ASSERT_TRUE(ok(kb_set_floatx(ctx, KB_FLOAT16)));
    uint16_t h[3];
    ASSERT_TRUE(ok(kb_cast_to_floatx(ctx, src, KB_INT32, 3, h, sizeof h)));
    EXPECT_TRUE(allclose(from_bytes(h, 3, KB_FLOAT16), {1, -2, 3}, 0, 0));
}

TEST_F(Context, ImageDataFormat) {
    ASSERT_TRUE(ok(kb_set_image_data_format(ctx, KB_CHANNELS_FIRST)));
    EXPECT_EQ(kb_image_data_format(ctx), KB_CHANNELS_FIRST);
    ASSERT_TRUE(ok(kb_set_image_data_format(ctx, KB_CHANNELS_LAST)));
    EXPECT_EQ(kb_image_data_format(ctx), KB_CHANNELS_LAST);
    kb_clear_error();
    EXPECT_EQ(kb_set_image_data_format(ctx, (kb_data_format)7), KB_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(kb_image_data_format(ctx), KB_CHANNELS_LAST);
}

TEST_F(Context, Uids) {
    EXPECT_EQ(kb_get_uid(ctx, "dense"), 1);
    EXPECT_EQ(kb_get_uid(ctx, "dense"), 2);
    EXPECT_EQ(kb_get_uid(ctx, "conv"), 1);
    EXPECT_EQ(kb_get_uid(ctx, "dense"), 3);
    EXPECT_EQ(kb_get_uid(ctx, nullptr), 1);
    EXPECT_EQ(kb_get_uid(ctx, ""), 2) << "NULL prefix means \"\"";
    kb_reset_uids(ctx);
    EXPECT_EQ(kb_get_uid(ctx, "dense"), 1) << "after reset the next uid equals the first";
    EXPECT_EQ(kb_get_uid(ctx, "conv"), 1);
}

TEST_F(Context, LearningPhase) {
    kb_tensor *lp = kb_learning_phase(ctx);
    ASSERT_NE(lp, nullptr) << kb_last_error();
    EXPECT_EQ(kb_dtype_of(lp), KB_INT32);
    EXPECT_EQ(kb_ndim(lp), 0);
    int32_t v = -1;
    ASSERT_TRUE(ok(kb_eval(lp, &v, sizeof v)));
    EXPECT_EQ(v, 0) << "test mode unless set or fed";
    ASSERT_TRUE(ok(kb_set_learning_phase(ctx, 1)));
    ASSERT_TRUE(ok(kb_eval(kb_learning_phase(ctx), &v, sizeof v)));
    EXPECT_EQ(v, 1);
    kb_clear_error();
    EXPECT_EQ(kb_set_learning_phase(ctx, 2), KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_set_learning_phase"}));
    EXPECT_EQ(kb_set_learning_phase(ctx, -1), KB_ERR_INVALID_ARGUMENT);
    ASSERT_TRUE(ok(kb_eval(kb_learning_phase(ctx), &v, sizeof v)));
    EXPECT_EQ(v, 1) << "a rejected value leaves the phase unchanged";
    ASSERT_TRUE(ok(kb_set_learning_phase(ctx, 0)));
    ASSERT_TRUE(ok(kb_eval(kb_learning_phase(ctx), &v, sizeof v)));
    EXPECT_EQ(v, 0);
}

TEST_F(Context, LearningPhaseFedToFunction) {
    kb_tensor *lp = kb_learning_phase(ctx);
    ASSERT_NE(lp, nullptr);
    kb_tensor *y = kb_cast(lp, KB_FLOAT32);
    kb_function *fn = kb_function_new(ctx, &lp, 1, &y, 1, nullptr, 0, KB_DEVICE_CPU);
    ASSERT_NE(fn, nullptr) << kb_last_error();
    for (int32_t phase : {1, 0, 1}) {
        kb_feed f = {&phase, sizeof phase, KB_INT32, 0, nullptr, nullptr};
        ASSERT_TRUE(ok(kb_function_call(fn, &f, 1)));
        float out = -1;
        ASSERT_TRUE(ok(kb_function_get_output(fn, 0, &out, sizeof out)));
        EXPECT_EQ(out, (float)phase);
    }
    kb_function_free(fn);
}

TEST_F(Context, ManualVariableInitialization) {
    ASSERT_TRUE(ok(kb_manual_variable_initialization(ctx, 1)));
    EXPECT_EQ(kb_get_manual_variable_initialization(ctx), 1);
    // Variables hold their value from creation either way.
    kb_tensor *v = make_var(ctx, {1, 2}, {2});
    EXPECT_TRUE(allclose(get_v(v), {1, 2}, 0, 0));
    ASSERT_TRUE(ok(kb_manual_variable_initialization(ctx, 0)));
    EXPECT_EQ(kb_get_manual_variable_initialization(ctx), 0);
}

TEST_F(Context, BackendDefault) {
    ::unsetenv("KERAS_BACKEND");
    ASSERT_NE(kb_backend(ctx), nullptr);
    EXPECT_STREQ(kb_backend(ctx), "tensorflow");
}

TEST_F(Context, ClearSession) {
    EXPECT_EQ(kb_get_uid(ctx, "x"), 1);
    EXPECT_EQ(kb_get_uid(ctx, "x"), 2);
    ASSERT_TRUE(ok(kb_set_learning_phase(ctx, 1)));
    kb_tensor *a = make_var(ctx, {1, 2, 3}, {3});
    kb_tensor *y = kb_square(a);
    kb_function *fn = kb_function_new(ctx, nullptr, 0, &y, 1, nullptr, 0, KB_DEVICE_CPU);
    ASSERT_NE(fn, nullptr) << kb_last_error();
    ASSERT_TRUE(ok(kb_function_call(fn, nullptr, 0)));
    ASSERT_TRUE(ok(kb_set_epsilon(ctx, 1e-4)));

    ASSERT_TRUE(ok(kb_clear_session(ctx)));
    EXPECT_EQ(kb_get_uid(ctx, "x"), 1) << "clear_session resets uids";
    int32_t phase = -1;
    ASSERT_TRUE(ok(kb_eval(kb_learning_phase(ctx), &phase, sizeof phase)));
    EXPECT_EQ(phase, 0) << "clear_session resets the learning phase";
    EXPECT_DOUBLE_EQ(kb_epsilon(ctx), 1e-4) << "configuration survives clear_session";

    kb_clear_error();
    EXPECT_EQ(kb_function_call(fn, nullptr, 0), KB_ERR_INVALID_STATE);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_STATE));
    kb_function_free(fn);  // the handle stays freeable

    // The session is usable after the clear.
    kb_tensor *b = make_var(ctx, {4, 5}, {2});
    EXPECT_TRUE(allclose(eval_v(kb_add(b, b)), {8, 10}, 0, 0));
}

// ---- keras.json ----------------------------------------------------------------------------------

class KerasJson : public ::testing::Test {
protected:
    void SetUp() override {
        kb_clear_error();
        const ::testing::TestInfo *ti = ::testing::UnitTest::GetInstance()->current_test_info();
        dir = fs::temp_directory_path() /
              ("kb_test_keras_" + std::string(ti->name()) + "_" + std::to_string(::getpid()));
        fs::remove_all(dir);
        fs::create_directories(dir);
        ::unsetenv("KERAS_BACKEND");
    }
    void TearDown() override {
        kb_context_free(ctx);
        ::unsetenv("KERAS_BACKEND");
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    std::string file() const { return (dir / "keras.json").string(); }
    void write(const std::string &text) const { std::ofstream(file()) << text; }
    std::string read() const {
        std::ifstream in(file());
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }
    kb_status open(const std::string &home) {
        kb_context_options o = KB_CONTEXT_OPTIONS_DEFAULTS;
        o.device = KB_DEVICE_CPU;
        o.read_config = 1;
        o.keras_home = home.empty() ? nullptr : home.c_str();
        kb_context_free(ctx);
        ctx = nullptr;
        return kb_context_new(&ctx, &o);
    }
    kb_status open() { return open(dir.string()); }

    fs::path dir;
    kb_context *ctx = nullptr;
};

// A key of a JSON object (string or number value), found with a regex: the test stays
// independent of the library's JSON parser.
std::string json_value(const std::string &text, const std::string &key) {
    std::smatch m;
    std::regex re("\"" + key + "\"\\s*:\\s*(\"[^\"]*\"|[-+0-9.eE]+)");
    if (!std::regex_search(text, m, re)) return "<missing>";
    return m[1].str();
}

TEST_F(KerasJson, MissingFileIsWrittenWithDefaults) {
    ASSERT_FALSE(fs::exists(file()));
    ASSERT_TRUE(ok(open()));
    ASSERT_TRUE(fs::exists(file())) << "keras.json is written when missing, as Keras does";
    std::string text = read();
    EXPECT_EQ(json_value(text, "floatx"), "\"float32\"") << text;
    EXPECT_EQ(json_value(text, "backend"), "\"tensorflow\"") << text;
    EXPECT_EQ(json_value(text, "image_data_format"), "\"channels_last\"") << text;
    std::string eps = json_value(text, "epsilon");
    ASSERT_NE(eps, "<missing>") << text;
    EXPECT_DOUBLE_EQ(std::strtod(eps.c_str(), nullptr), 1e-7) << text;
    EXPECT_NE(eps.find_first_of(".eE"), std::string::npos)
        << "epsilon must be written as a float so Keras can read the file back: " << eps;
    EXPECT_EQ(kb_floatx(ctx), KB_FLOAT32);
    EXPECT_DOUBLE_EQ(kb_epsilon(ctx), 1e-7);
    EXPECT_STREQ(kb_backend(ctx), "tensorflow");
    // Reading the written file back works.
    ASSERT_TRUE(ok(open()));
    EXPECT_EQ(kb_floatx(ctx), KB_FLOAT32);
}

TEST_F(KerasJson, MissingDirectoryIsCreated) {
    fs::path sub = dir / "nested" / "home";
    ASSERT_TRUE(ok(open(sub.string())));
    EXPECT_TRUE(fs::exists(sub / "keras.json"));
}

TEST_F(KerasJson, ValuesAreReadFromFile) {
    write(R"({"floatx": "float64", "epsilon": 0.001, "backend": "theano", "image_data_format": "channels_first"})");
    ASSERT_TRUE(ok(open()));
    EXPECT_EQ(kb_floatx(ctx), KB_FLOAT64);
    EXPECT_DOUBLE_EQ(kb_epsilon(ctx), 1e-3);
    EXPECT_EQ(kb_image_data_format(ctx), KB_CHANNELS_FIRST);
    EXPECT_STREQ(kb_backend(ctx), "theano");
    // floatx from the file is the default dtype of new tensors.
    int64_t s[1] = {2};
    EXPECT_EQ(kb_dtype_of(kb_zeros(ctx, s, 1, KB_FLOATX, nullptr)), KB_FLOAT64);
    // An existing file is not rewritten.
    EXPECT_NE(read().find("theano"), std::string::npos);
}

TEST_F(KerasJson, PartialFileKeepsDefaults) {
    write(R"({"floatx": "float16"})");
    ASSERT_TRUE(ok(open()));
    EXPECT_EQ(kb_floatx(ctx), KB_FLOAT16);
    EXPECT_DOUBLE_EQ(kb_epsilon(ctx), 1e-7);
    EXPECT_EQ(kb_image_data_format(ctx), KB_CHANNELS_LAST);
    EXPECT_STREQ(kb_backend(ctx), "tensorflow");
}

TEST_F(KerasJson, KerasHomeFromEnvironment) {
    ::setenv("KERAS_HOME", dir.string().c_str(), 1);
    write(R"({"epsilon": 0.5})");
    ASSERT_TRUE(ok(open("")));  // keras_home NULL: $KERAS_HOME
    EXPECT_DOUBLE_EQ(kb_epsilon(ctx), 0.5);
}

TEST_F(KerasJson, InvalidJsonIsAConfigError) {
    write("{\"floatx\": \"float32\", ");
    EXPECT_EQ(open(), KB_ERR_CONFIG);
    EXPECT_TRUE(has_error(KB_ERR_CONFIG, {"keras.json"}));
    EXPECT_NE(std::string(kb_last_error()).find(dir.string()), std::string::npos)
        << "the message names the file: " << kb_last_error();
    EXPECT_EQ(ctx, nullptr) << "no context on error";
}

TEST_F(KerasJson, InvalidFloatx) {
    write(R"({"floatx": "int32"})");
    EXPECT_EQ(open(), KB_ERR_CONFIG);
    EXPECT_TRUE(has_error(KB_ERR_CONFIG, {"floatx", "int32"}));
}

TEST_F(KerasJson, IntegerEpsilonIsRejected) {
    // Keras asserts isinstance(epsilon, float): a JSON integer 1 fails.
    write(R"({"epsilon": 1})");
    EXPECT_EQ(open(), KB_ERR_CONFIG);
    EXPECT_TRUE(has_error(KB_ERR_CONFIG, {"epsilon"}));
}

TEST_F(KerasJson, StringEpsilonIsRejected) {
    write(R"({"epsilon": "1e-7"})");
    EXPECT_EQ(open(), KB_ERR_CONFIG);
    EXPECT_TRUE(has_error(KB_ERR_CONFIG, {"epsilon"}));
}

TEST_F(KerasJson, InvalidImageDataFormat) {
    write(R"({"image_data_format": "channels_middle"})");
    EXPECT_EQ(open(), KB_ERR_CONFIG);
    EXPECT_TRUE(has_error(KB_ERR_CONFIG, {"image_data_format", "channels_middle"}));
}

TEST_F(KerasJson, NotAnObjectIsRejected) {
    write("[1, 2, 3]");
    EXPECT_EQ(open(), KB_ERR_CONFIG);
}

TEST_F(KerasJson, KerasBackendEnvOverridesFile) {
    write(R"({"backend": "theano"})");
    ::setenv("KERAS_BACKEND", "cntk", 1);
    ASSERT_TRUE(ok(open()));
    EXPECT_STREQ(kb_backend(ctx), "cntk");
    EXPECT_EQ(read().find("cntk"), std::string::npos);
}

TEST_F(KerasJson, EmptyKerasBackendIsIgnored) {
    write(R"({"backend": "theano"})");
    ::setenv("KERAS_BACKEND", "", 1);
    ASSERT_TRUE(ok(open()));
    EXPECT_STREQ(kb_backend(ctx), "theano");
}

TEST_F(KerasJson, KerasBackendEnvIsNeverWritten) {
    ::setenv("KERAS_BACKEND", "cntk", 1);
    ASSERT_TRUE(ok(open()));
    EXPECT_STREQ(kb_backend(ctx), "cntk");
    ASSERT_TRUE(fs::exists(file()));
    EXPECT_EQ(json_value(read(), "backend"), "\"tensorflow\"")
        << "the file gets the value before KERAS_BACKEND is applied: " << read();
}

TEST_F(KerasJson, ReadConfigZeroIgnoresFile) {
    write(R"({"floatx": "float64"})");
    kb_context_options o = KB_CONTEXT_OPTIONS_DEFAULTS;
    o.device = KB_DEVICE_CPU;
    o.read_config = 0;
    std::string home = dir.string();
    o.keras_home = home.c_str();
    ASSERT_TRUE(ok(kb_context_new(&ctx, &o)));
    EXPECT_EQ(kb_floatx(ctx), KB_FLOAT32);
}

TEST_F(KerasJson, ContextUsableAfterConfigError) {
    write("not json");
    EXPECT_EQ(open(), KB_ERR_CONFIG);
    write(R"({"floatx": "float32"})");
    ASSERT_TRUE(ok(open()));
    kb_tensor *a = make_const(ctx, {1, 2}, {2});
    EXPECT_TRUE(allclose(eval_v(kb_add(a, a)), {2, 4}, 0, 0));
}

}  // namespace
