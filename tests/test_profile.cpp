// Profiling: the per-op table and the Chrome trace (KB_PROFILE).
//
// A small function (dot + relu + sum, random inputs) is profiled on the CPU (and on CUDA when a
// GPU exists): call counts equal the calls made, times are positive and add up, labels name the
// ops, reset zeroes, the printed table names the ops, the trace parses with cJSON with one X
// event per op execution and per call, ordered per tid. Profiling off records nothing. The
// environment (KB_PROFILE, KB_PROFILE_TRACE, KB_PROFILE_TRACE_MAX) and bad arguments too.
#include <cjson/cJSON.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <unistd.h>

#include "kb_test_util.h"

namespace {

using namespace kbt;

std::string slurp(const std::string &path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The table kb_function_profile_print writes, as a string.
std::string print_table(const kb_function *fn, int top) {
    char *buf = nullptr;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    EXPECT_NE(f, nullptr);
    if (!f) return "";
    EXPECT_EQ(kb_function_profile_print(fn, f, top), KB_OK) << kb_last_error();
    fclose(f);
    std::string s(buf, len);
    free(buf);
    return s;
}

struct TraceEvent {
    std::string name, cat, ph;
    double ts = 0, dur = 0;
    int tid = 0;
    std::string shape, dtype, device;
};

// Parse a trace file; fails the test when it is not the expected JSON shape.
std::vector<TraceEvent> read_trace(const std::string &path, double *dropped = nullptr) {
    std::vector<TraceEvent> evs;
    std::string text = slurp(path);
    cJSON *root = cJSON_Parse(text.c_str());
    EXPECT_NE(root, nullptr) << "trace is not JSON: " << text.substr(0, 200);
    if (!root) return evs;
    cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "traceEvents");
    EXPECT_TRUE(cJSON_IsArray(list));
    EXPECT_TRUE(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "displayTimeUnit")));
    cJSON *other = cJSON_GetObjectItemCaseSensitive(root, "otherData");
    cJSON *dr = other ? cJSON_GetObjectItemCaseSensitive(other, "kb_dropped_events") : nullptr;
    EXPECT_TRUE(cJSON_IsNumber(dr)) << "otherData.kb_dropped_events missing";
    if (dropped) *dropped = cJSON_IsNumber(dr) ? dr->valuedouble : -1;
    cJSON *e;
    cJSON_ArrayForEach(e, list) {
        TraceEvent t;
        auto str = [&](cJSON *o, const char *k) {
            cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, k) : nullptr;
            return cJSON_IsString(v) ? std::string(v->valuestring) : std::string();
        };
        auto num = [&](const char *k) {
            cJSON *v = cJSON_GetObjectItemCaseSensitive(e, k);
            EXPECT_TRUE(cJSON_IsNumber(v)) << "event without numeric " << k;
            return cJSON_IsNumber(v) ? v->valuedouble : NAN;
        };
        t.name = str(e, "name");
        t.ph = str(e, "ph");
        t.tid = (int)num("tid");
        num("pid");
        if (t.ph == "X") {
            t.cat = str(e, "cat");
            t.ts = num("ts");
            t.dur = num("dur");
            cJSON *args = cJSON_GetObjectItemCaseSensitive(e, "args");
            t.shape = str(args, "shape");
            t.dtype = str(args, "dtype");
            t.device = str(args, "device");
        }
        evs.push_back(t);
    }
    cJSON_Delete(root);
    return evs;
}

std::string temp_path(const std::string &name) {
    return ::testing::TempDir() + "kb_profile_" + std::to_string((long long)getpid()) + "_" + name;
}

class Profile : public KbTest {
protected:
    static constexpr int64_t B = 6, K = 7, N = 5;
    std::vector<double> wv;
    kb_tensor *x = nullptr;
    kb_function *fn = nullptr;
    kb_device device = KB_DEVICE_CPU;

    void TearDown() override {
        kb_function_free(fn);
        KbTest::TearDown();
    }

    // fn(x) = sum(relu(dot(x, w))) with a random variable w.
    void build(kb_device dev) {
        device = dev;
        wv = random_values(gen, K * N, -1, 1);
        wv = rounded(wv, KB_FLOAT32);
        int64_t ps[2] = {KB_NONE, K};
        x = kb_placeholder(ctx, ps, 2, KB_FLOAT32, "x");
        kb_tensor *w = make_var(ctx, wv, {K, N}, KB_FLOAT32, "w");
        kb_tensor *l = kb_sum(kb_relu(kb_dot(x, w), 0, INFINITY, 0), nullptr, 0, 0);
        ASSERT_NE(l, nullptr) << kb_last_error();
        fn = kb_function_new(ctx, &x, 1, &l, 1, nullptr, 0, dev);
        ASSERT_NE(fn, nullptr) << kb_last_error();
    }

    // The context's trace as written now (through a temporary file), parsed; a failed write fails
    // the test and gives no events.
    std::vector<TraceEvent> trace_now(const char *name, double *dropped = nullptr) {
        std::string path = temp_path(name);
        kb_status st = kb_profile_write_trace(ctx, path.c_str());
        EXPECT_TRUE(ok(st));
        if (st != KB_OK) return {};
        auto evs = read_trace(path, dropped);
        std::remove(path.c_str());
        return evs;
    }

    // One call with a random batch; checks the value against loops (profiling changes nothing).
    void call_once() {
        std::vector<double> xv = rounded(random_values(gen, B * K, -2, 2), KB_FLOAT32);
        auto bytes = to_bytes(xv, KB_FLOAT32);
        Shape sh = {B, K};
        kb_feed f = feed_of(bytes, KB_FLOAT32, sh);
        ASSERT_TRUE(ok(kb_function_call(fn, &f, 1)));
        double want = 0;
        for (int64_t i = 0; i < B; ++i)
            for (int64_t j = 0; j < N; ++j) {
                double acc = 0;
                for (int64_t k = 0; k < K; ++k) acc += xv[i * K + k] * wv[k * N + j];
                want += std::max(acc, 0.0);
            }
        float got = 0;
        ASSERT_TRUE(ok(kb_function_get_output(fn, 0, &got, sizeof got)));
        EXPECT_NEAR(got, want, 1e-4 * (1 + std::fabs(want)));
    }

    std::vector<kb_op_profile> entries() {
        std::vector<kb_op_profile> v;
        int n = kb_function_profile_count(fn);
        EXPECT_GE(n, 0) << kb_last_error();
        for (int i = 0; i < n; ++i) {
            kb_op_profile e;
            memset(&e, 0, sizeof e);
            EXPECT_EQ(kb_function_profile_get(fn, i, &e), KB_OK) << kb_last_error();
            v.push_back(e);
        }
        return v;
    }

    // Counts, totals, labels and ordering after `calls` profiled calls.
    // The function's totals say no profiled call.
    void expect_zero_totals() {
        int64_t n = -1;
        double total = -1, op_ms = -1;
        ASSERT_TRUE(ok(kb_function_profile_totals(fn, &n, &total, &op_ms)));
        EXPECT_EQ(n, 0);
        EXPECT_EQ(total, 0);
        EXPECT_EQ(op_ms, 0);
    }

    void check_profile(int64_t calls, const char *want_device) {
        kb_function_info info;
        ASSERT_TRUE(ok(kb_function_get_info(fn, &info)));
        auto es = entries();
        ASSERT_EQ((int)es.size(), info.n_kernels) << "one entry per kernel node";
        std::set<std::string> ops;
        double sum = 0;
        for (size_t i = 0; i < es.size(); ++i) {
            const kb_op_profile &e = es[i];
            ASSERT_NE(e.label, nullptr);
            ASSERT_NE(e.op, nullptr);
            ops.insert(e.op);
            EXPECT_EQ(std::string(e.label).rfind(std::string(e.op) + "#", 0), 0u) << e.label << " vs " << e.op;
            EXPECT_EQ(e.calls, calls) << e.label;
            EXPECT_GT(e.total_ms, 0) << e.label;
            EXPECT_NEAR(e.mean_ms, e.total_ms / (double)calls, 1e-12 + 1e-9 * e.total_ms) << e.label;
            EXPECT_STREQ(e.device, want_device) << e.label;
            EXPECT_EQ(e.host_fallback, 0) << e.label;
            if (i) {
                EXPECT_GE(es[i - 1].total_ms, e.total_ms) << "sorted by total, largest first";
            }
            sum += e.total_ms;
        }
        EXPECT_TRUE(ops.count("dot") && ops.count("relu") && ops.count("sum"))
            << "ops: dot, relu and sum expected among the entries";
        int64_t n = -1;
        double total = -1, op_ms = -1;
        ASSERT_TRUE(ok(kb_function_profile_totals(fn, &n, &total, &op_ms)));
        EXPECT_EQ(n, calls);
        EXPECT_NEAR(op_ms, sum, 1e-9 * (1 + sum)) << "ops_ms is the sum of the entries";
        EXPECT_GT(total, 0);
        EXPECT_GE(total, op_ms) << "a call lasts at least as long as its ops";
    }
};

TEST_F(Profile, CpuCountsTotalsLabelsReset) {
    ASSERT_TRUE(ok(kb_set_profiling(ctx, 1)));
    EXPECT_EQ(kb_profiling(ctx), 1);
    build(KB_DEVICE_CPU);
    EXPECT_EQ(kb_function_profile_count(fn), 0) << "no entries before the first profiled call";
    for (int i = 0; i < 3; ++i) call_once();
    check_profile(3, "cpu");

    ASSERT_TRUE(ok(kb_function_profile_reset(fn)));
    for (const kb_op_profile &e : entries()) {
        EXPECT_EQ(e.calls, 0) << e.label;
        EXPECT_EQ(e.total_ms, 0) << e.label;
        EXPECT_EQ(e.mean_ms, 0) << e.label;
    }
    expect_zero_totals();
    for (int i = 0; i < 2; ++i) call_once();
    check_profile(2, "cpu");

    // Off: calls add nothing; on again: they count again.
    ASSERT_TRUE(ok(kb_set_profiling(ctx, 0)));
    EXPECT_EQ(kb_profiling(ctx), 0);
    call_once();
    check_profile(2, "cpu");
    ASSERT_TRUE(ok(kb_set_profiling(ctx, 1)));
    call_once();
    check_profile(3, "cpu");
}

TEST_F(Profile, PrintNamesTheOps) {
    ASSERT_TRUE(ok(kb_set_profiling(ctx, 1)));
    build(KB_DEVICE_CPU);
    for (int i = 0; i < 4; ++i) call_once();
    int n = kb_function_profile_count(fn);
    ASSERT_GE(n, 3);
    std::string all = print_table(fn, 100);
    EXPECT_NE(all.find("kb profile: function #"), std::string::npos) << all;
    EXPECT_NE(all.find(" on cpu, 4 calls,"), std::string::npos) << all;
    EXPECT_NE(all.find("ms/call (ops "), std::string::npos) << all;
    for (const kb_op_profile &e : entries()) {
        EXPECT_NE(all.find(e.label), std::string::npos) << e.label << " missing in\n" << all;
        EXPECT_NE(all.find("\n  " + std::string(e.op) + " "), std::string::npos) << e.op << " row missing in\n" << all;
    }
    EXPECT_EQ(all.find("more node"), std::string::npos) << all;
    // op rows: every node counted once, every call counted, sorted by total (largest first)
    {
        std::istringstream in(all);
        std::string line;
        bool in_ops = false;
        int nodes_sum = 0;
        long long calls_sum = 0;
        double prev = INFINITY;
        while (std::getline(in, line)) {
            if (line.rfind("  op ", 0) == 0) {
                in_ops = true;
                continue;
            }
            if (line.rfind("  node ", 0) == 0) break;
            if (!in_ops) continue;
            char name[64];
            int nodes;
            long long c;
            double total, mean, share;
            ASSERT_EQ(sscanf(line.c_str(), "%63s %d %lld %lf %lf %lf", name, &nodes, &c, &total, &mean, &share), 6)
                << line;
            EXPECT_LE(total, prev) << "op rows not sorted by total at " << line;
            prev = total;
            nodes_sum += nodes;
            calls_sum += c;
        }
        EXPECT_EQ(nodes_sum, n) << all;
        EXPECT_EQ(calls_sum, 4LL * n) << all;
    }
    // top = 1: one node row, then the rest counted
    std::string one = print_table(fn, 1);
    kb_op_profile first;
    ASSERT_TRUE(ok(kb_function_profile_get(fn, 0, &first)));
    EXPECT_NE(one.find(first.label), std::string::npos) << one;
    std::string more = "... " + std::to_string(n - 1) + " more node";
    EXPECT_NE(one.find(more), std::string::npos) << "expected '" << more << "' in\n" << one;
    kb_op_profile last;
    ASSERT_TRUE(ok(kb_function_profile_get(fn, n - 1, &last)));
    EXPECT_EQ(one.find(std::string(last.label) + " "), std::string::npos) << one;
}

TEST_F(Profile, TraceParsesWithOneEventPerOpAndCall) {
    ASSERT_TRUE(ok(kb_set_profiling(ctx, 1)));
    build(KB_DEVICE_CPU);
    const int calls = 3;
    for (int i = 0; i < calls; ++i) call_once();
    double dropped = -1;
    auto evs = trace_now("trace.json", &dropped);
    EXPECT_EQ(dropped, 0);
    int n = kb_function_profile_count(fn);
    std::set<std::string> labels;
    for (const kb_op_profile &e : entries()) labels.insert(e.label);
    int n_x = 0, n_call = 0, n_thread_names = 0;
    std::map<int, double> last_ts;
    std::vector<std::pair<double, double>> call_spans;
    for (const TraceEvent &e : evs) {
        if (e.ph == "M") {
            n_thread_names += e.name == "thread_name";
            continue;
        }
        ASSERT_EQ(e.ph, "X") << e.name;
        n_x++;
        EXPECT_GE(e.dur, 0) << e.name;
        EXPECT_GE(e.ts, 0) << e.name;
        if (last_ts.count(e.tid)) {
            EXPECT_GE(e.ts, last_ts[e.tid]) << "ts decreases on tid " << e.tid << " at " << e.name;
        }
        last_ts[e.tid] = e.ts;
        if (e.cat == "function") {
            n_call++;
            call_spans.push_back({e.ts, e.ts + e.dur});
            continue;
        }
        EXPECT_TRUE(labels.count(e.name)) << "unknown op event " << e.name;
        EXPECT_EQ(e.name.rfind(e.cat + "#", 0), 0u) << e.name << " has cat " << e.cat;
        EXPECT_EQ(e.device, "cpu") << e.name;
        EXPECT_EQ(e.dtype, "float32") << e.name;
        EXPECT_FALSE(e.shape.empty()) << e.name;
        if (e.cat == "dot") {
            EXPECT_EQ(e.shape, "(6, 5)");
        }
        if (e.cat == "sum") {
            EXPECT_EQ(e.shape, "()");
        }
        ASSERT_FALSE(call_spans.empty()) << "an op event before its call's event";
        EXPECT_GE(e.ts, call_spans.back().first) << e.name;
        EXPECT_LE(e.ts + e.dur, call_spans.back().second + 1e-6) << e.name << " ends after its call";
    }
    EXPECT_EQ(n_call, calls);
    EXPECT_EQ(n_x, calls * (n + 1)) << "one X event per op execution and per call";
    EXPECT_EQ(last_ts.size(), 1u) << "one function: one tid";
    EXPECT_EQ(n_thread_names, 1);
}

TEST_F(Profile, OffRecordsNothing) {
    ASSERT_TRUE(ok(kb_set_profiling(ctx, 0)));
    build(KB_DEVICE_CPU);
    for (int i = 0; i < 2; ++i) call_once();
    EXPECT_EQ(kb_function_profile_count(fn), 0);
    expect_zero_totals();
    kb_op_profile e;
    kb_clear_error();
    EXPECT_EQ(kb_function_profile_get(fn, 0, &e), KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_function_profile_get", "no profiled call"}));
    std::string s = print_table(fn, 0);
    EXPECT_NE(s.find("no profiled call"), std::string::npos) << s;
    auto evs = trace_now("off.json");
    for (const TraceEvent &t : evs) EXPECT_NE(t.ph, "X") << "an event while profiling was off: " << t.name;
    // kb_eval's one-shot functions are never profiled, even with profiling on
    ASSERT_TRUE(ok(kb_set_profiling(ctx, 1)));
    EXPECT_TRUE(allclose(eval_v(kb_add(make_const(ctx, {1, 2}, {2}), make_const(ctx, {3, 4}, {2}))), {4, 6}, 0, 0));
    evs = trace_now("eval.json");
    for (const TraceEvent &t : evs) EXPECT_NE(t.ph, "X") << "kb_eval was profiled: " << t.name;
}

// A loop op (foldl) is timed as one op; its body's ops are not profiled and nothing breaks.
TEST_F(Profile, LoopBodyIsOneOp) {
    ASSERT_TRUE(ok(kb_set_profiling(ctx, 1)));
    std::vector<double> ev = random_values(gen, 4 * 3, -1, 1);
    kb_tensor *elems = make_var(ctx, ev, {4, 3}, KB_FLOAT64, "elems");
    kb_tensor *acc = kb_foldl([](kb_tensor *a, kb_tensor *e, void *) { return kb_add(a, kb_square(e)); }, nullptr,
                              elems, make_const(ctx, {0, 0, 0}, {3}, KB_FLOAT64));
    ASSERT_NE(acc, nullptr) << kb_last_error();
    fn = kb_function_new(ctx, nullptr, 0, &acc, 1, nullptr, 0, KB_DEVICE_CPU);
    ASSERT_NE(fn, nullptr) << kb_last_error();
    for (int c = 0; c < 3; ++c) {
        ASSERT_TRUE(ok(kb_function_call(fn, nullptr, 0)));
        double got[3];
        ASSERT_TRUE(ok(kb_function_get_output(fn, 0, got, sizeof got)));
        for (int j = 0; j < 3; ++j) {
            double want = 0;
            for (int i = 0; i < 4; ++i) want += ev[i * 3 + j] * ev[i * 3 + j];
            EXPECT_NEAR(got[j], want, 1e-12) << j;
        }
    }
    auto es = entries();
    ASSERT_GE(es.size(), 1u);
    kb_function_info info;
    ASSERT_TRUE(ok(kb_function_get_info(fn, &info)));
    EXPECT_EQ((int)es.size(), info.n_kernels);
    for (const kb_op_profile &e : es) {
        EXPECT_EQ(e.calls, 3) << e.label;
        EXPECT_STRNE(e.op, "square") << "a body op was profiled: " << e.label;
    }
}

// A failed call (bad feed) adds nothing; the next good one counts.
TEST_F(Profile, FailedCallAddsNothing) {
    ASSERT_TRUE(ok(kb_set_profiling(ctx, 1)));
    build(KB_DEVICE_CPU);
    call_once();
    std::vector<double> bad = random_values(gen, 3 * 2, -1, 1);
    auto bytes = to_bytes(bad, KB_FLOAT32);
    Shape sh = {3, 2};
    kb_feed f = feed_of(bytes, KB_FLOAT32, sh);
    kb_clear_error();
    EXPECT_EQ(kb_function_call(fn, &f, 1), KB_ERR_SHAPE);
    int64_t n = -1;
    ASSERT_TRUE(ok(kb_function_profile_totals(fn, &n, nullptr, nullptr)));
    EXPECT_EQ(n, 1);
    call_once();
    check_profile(2, "cpu");
}

TEST_F(Profile, BadArguments) {
    kb_op_profile e;
    int64_t n;
    kb_clear_error();
    EXPECT_EQ(kb_set_profiling(nullptr, 1), KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_set_profiling", "ctx"}));
    EXPECT_EQ(kb_profiling(nullptr), 0);
    kb_clear_error();
    EXPECT_EQ(kb_function_profile_count(nullptr), -1);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_function_profile_count", "fn"}));
    kb_clear_error();
    EXPECT_EQ(kb_function_profile_get(nullptr, 0, &e), KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_function_profile_get", "fn"}));
    kb_clear_error();
    EXPECT_EQ(kb_function_profile_totals(nullptr, &n, nullptr, nullptr), KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_function_profile_totals", "fn"}));
    kb_clear_error();
    EXPECT_EQ(kb_function_profile_reset(nullptr), KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_function_profile_reset", "fn"}));
    kb_clear_error();
    EXPECT_EQ(kb_function_profile_print(nullptr, stderr, 0), KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_function_profile_print", "fn"}));
    kb_clear_error();
    EXPECT_EQ(kb_profile_write_trace(nullptr, "/tmp/x.json"), KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_profile_write_trace", "ctx"}));
    kb_clear_error();
    EXPECT_EQ(kb_profile_write_trace(ctx, nullptr), KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_profile_write_trace", "path"}));
    kb_clear_error();
    EXPECT_EQ(kb_profile_write_trace(ctx, "/nonexistent/dir/t.json"), KB_ERR_IO);
    EXPECT_TRUE(has_error(KB_ERR_IO, {"kb_profile_write_trace", "/nonexistent/dir/t.json"}));

    ASSERT_TRUE(ok(kb_set_profiling(ctx, 1)));
    build(KB_DEVICE_CPU);
    call_once();
    int count = kb_function_profile_count(fn);
    ASSERT_GT(count, 0);
    kb_clear_error();
    EXPECT_EQ(kb_function_profile_get(fn, count, &e), KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_function_profile_get", "out of range"}));
    kb_clear_error();
    EXPECT_EQ(kb_function_profile_get(fn, -1, &e), KB_ERR_INVALID_ARGUMENT);
    kb_clear_error();
    EXPECT_EQ(kb_function_profile_get(fn, 0, nullptr), KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_function_profile_get", "out"}));
    // the session still works and still profiles
    call_once();
    check_profile(2, "cpu");
}

// KB_PROFILE prints the table at kb_function_free; KB_PROFILE_TRACE writes the trace at
// kb_context_free; KB_PROFILE_TRACE_MAX bounds the buffer and the rest are counted as dropped.
TEST_F(Profile, EnvironmentTableTraceAndDroppedEvents) {
    std::string path = temp_path("env.json");
    setenv("KB_PROFILE", "1", 1);
    setenv("KB_PROFILE_TRACE", path.c_str(), 1);
    setenv("KB_PROFILE_TRACE_MAX", "5", 1);
    kb_context *c = nullptr;
    kb_context_options o = KB_CONTEXT_OPTIONS_DEFAULTS;
    o.device = KB_DEVICE_CPU;
    o.read_config = 0;
    kb_status st = kb_context_new(&c, &o);
    unsetenv("KB_PROFILE_TRACE_MAX");
    unsetenv("KB_PROFILE_TRACE");
    ASSERT_EQ(st, KB_OK) << kb_last_error();
    EXPECT_EQ(kb_profiling(c), 1);
    kb_tensor *a = make_var(c, random_values(gen, 4, -1, 1), {4}, KB_FLOAT32, "a");
    kb_tensor *y = kb_sum(kb_exp(a), nullptr, 0, 0);
    ASSERT_NE(y, nullptr) << kb_last_error();
    kb_function *f = kb_function_new(c, nullptr, 0, &y, 1, nullptr, 0, KB_DEVICE_CPU);
    ASSERT_NE(f, nullptr) << kb_last_error();
    const int calls = 3;
    for (int i = 0; i < calls; ++i) ASSERT_TRUE(ok(kb_function_call(f, nullptr, 0)));
    int n = kb_function_profile_count(f);
    ASSERT_GE(n, 2);
    ::testing::internal::CaptureStderr();
    kb_function_free(f);
    std::string table = ::testing::internal::GetCapturedStderr();
    unsetenv("KB_PROFILE");
    EXPECT_NE(table.find("kb profile: function #1 on cpu, 3 calls"), std::string::npos) << table;
    EXPECT_NE(table.find("\n  exp "), std::string::npos) << table;
    ::testing::internal::CaptureStderr();
    kb_context_free(c);
    std::string warn = ::testing::internal::GetCapturedStderr();
    int64_t want_dropped = calls * (n + 1) - 5;
    EXPECT_NE(warn.find(std::to_string(want_dropped) + " trace events were dropped"), std::string::npos) << warn;
    double dropped = -1;
    auto evs = read_trace(path, &dropped);
    std::remove(path.c_str());
    EXPECT_EQ(dropped, (double)want_dropped);
    int n_x = 0;
    for (const TraceEvent &t : evs) n_x += t.ph == "X";
    EXPECT_EQ(n_x, 5) << "the buffer keeps the first KB_PROFILE_TRACE_MAX events";
}

TEST_F(Profile, CudaCountsAndTrace) {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device: the CUDA profiling test is not run";
    ASSERT_TRUE(ok(kb_set_profiling(ctx, 1)));
    build(KB_DEVICE_CUDA);
    call_once(); // warm-up: planning, cuBLAS handle
    ASSERT_TRUE(ok(kb_function_profile_reset(fn)));
    for (int i = 0; i < 3; ++i) call_once();
    check_profile(3, "cuda");
    std::string s = print_table(fn, 0);
    EXPECT_NE(s.find(" on cuda:"), std::string::npos) << s;
    auto evs = trace_now("cuda.json");
    int n_x = 0;
    std::map<int, double> last_ts;
    for (const TraceEvent &e : evs) {
        if (e.ph != "X") continue;
        n_x++;
        EXPECT_GE(e.dur, 0) << e.name;
        if (last_ts.count(e.tid)) {
            EXPECT_GE(e.ts, last_ts[e.tid]) << e.name;
        }
        last_ts[e.tid] = e.ts;
        if (e.cat != "function") {
            EXPECT_EQ(e.device, "cuda") << e.name;
        }
    }
    EXPECT_EQ(n_x, 4 * (kb_function_profile_count(fn) + 1)) << "the warm-up call is in the trace too";
}

}  // namespace
