// Every entry of the op table (src/host/ops/ops.def) is complete and has a test case.
#include <set>
#include <string>

#include "graph/tensor.h"
#include "op_cases.h"

namespace {

using kbt::op_cases;

TEST(OpTable, EveryEntryIsComplete) {
    std::set<std::string> names;
    for (int i = 0; i < KB_OP_COUNT; ++i) {
        const kb_op_def *d = kb_op_table[i];
        ASSERT_NE(d, nullptr) << "kb_op_table[" << i << "] is NULL";
        ASSERT_NE(d->name, nullptr) << "op " << i << " has no name";
        EXPECT_STRNE(d->name, "") << "op " << i;
        EXPECT_TRUE(names.insert(d->name).second) << "duplicate op name " << d->name;
        EXPECT_NE(d->infer, nullptr) << d->name << ": no infer (validation + shape) rule";
        EXPECT_NE(d->cpu, nullptr) << d->name << ": no CPU kernel";
        EXPECT_TRUE(d->grad != nullptr || (d->flags & KB_OPF_NONDIFF))
            << d->name << ": no gradient rule and not flagged KB_OPF_NONDIFF";
        EXPECT_GE(d->n_inputs, 1) << d->name << ": n_inputs " << d->n_inputs;
        EXPECT_LE(d->n_inputs, 8) << d->name;
    }
}

// The X-macro order of ops.def is the enum order and the table order.
TEST(OpTable, TableOrderMatchesOpsDef) {
    const char *expected[] = {
#define KB_OP(ID, name) #name,
#include "ops/ops.def"
#undef KB_OP
    };
    static_assert(sizeof expected / sizeof expected[0] == KB_OP_COUNT, "ops.def and KB_OP_COUNT");
    for (int i = 0; i < KB_OP_COUNT; ++i) {
        ASSERT_NE(kb_op_table[i], nullptr);
        // The entry's name is the Keras name; for most ops it is also the ops.def name.
        if (std::string(expected[i]) != kb_op_table[i]->name)
            ADD_FAILURE() << "kb_op_table[" << i << "] is \"" << kb_op_table[i]->name
                          << "\", ops.def says \"" << expected[i] << "\"";
    }
}

TEST(OpTable, SpecificFlags) {
    // Structural ops that have no derivative.
    EXPECT_TRUE(kb_op_table[KB_OP_SHAPE]->flags & KB_OPF_NONDIFF);
    EXPECT_TRUE(kb_op_table[KB_OP_SIZE]->flags & KB_OPF_NONDIFF);
    // update is applied by kb_function after the outputs.
    EXPECT_TRUE(kb_op_table[KB_OP_ASSIGN]->flags & KB_OPF_UPDATE);
    // print_tensor runs on the host by design.
    EXPECT_TRUE(kb_op_table[KB_OP_PRINT_TENSOR]->flags & KB_OPF_HOST);
    // Differentiable public ops of the proving set have a gradient rule.
    for (kb_op_id id : {KB_OP_ADD, KB_OP_SUBTRACT, KB_OP_MULTIPLY, KB_OP_DIVIDE, KB_OP_NEGATIVE,
                        KB_OP_SQUARE, KB_OP_EXP, KB_OP_LOG, KB_OP_SQRT, KB_OP_SUM, KB_OP_MEAN,
                        KB_OP_MAX, KB_OP_DOT, KB_OP_PERMUTE, KB_OP_RESHAPE, KB_OP_RELU,
                        KB_OP_SIGMOID, KB_OP_SOFTMAX, KB_OP_IDENTITY})
        EXPECT_NE(kb_op_table[id]->grad, nullptr) << kb_op_table[id]->name;
}

TEST(OpTable, EveryOpHasATestCase) {
    int count[KB_OP_COUNT] = {0};
    std::set<std::string> names;
    for (const kbt::OpCase &c : op_cases()) {
        ASSERT_GE((int)c.op, 0);
        ASSERT_LT((int)c.op, (int)KB_OP_COUNT);
        ++count[c.op];
        EXPECT_TRUE(names.insert(c.name).second) << "duplicate case name " << c.name;
        EXPECT_TRUE(c.build) << c.name;
        EXPECT_FALSE(c.shapes.empty()) << c.name;
        EXPECT_FALSE(c.ranges.empty()) << c.name;
    }
    for (int i = 0; i < KB_OP_COUNT; ++i)
        EXPECT_GE(count[i], 1) << "op " << (kb_op_table[i] ? kb_op_table[i]->name : "?")
                               << " (id " << i << ") has no case in tests/op_cases.cpp";
}

// Every differentiable op has at least one case that runs the finite-difference check.
TEST(OpTable, EveryDifferentiableOpHasAGradientCase) {
    int count[KB_OP_COUNT] = {0};
    for (const kbt::OpCase &c : op_cases())
        if (c.grad) ++count[c.op];
    for (int i = 0; i < KB_OP_COUNT; ++i) {
        const kb_op_def *d = kb_op_table[i];
        if (!d || (d->flags & (KB_OPF_NONDIFF | KB_OPF_UPDATE))) continue;
        if (i == KB_OP_STOP_GRADIENT) continue;  // gradient is zero by definition (test_gradients)
        EXPECT_GE(count[i], 1) << d->name << " is differentiable but no case checks its gradient";
    }
}

// Every case really makes the op it is listed for: walk the built graph (internal view of
// graph/tensor.h) from the output and find a node of that op.
bool graph_has_op(const kb_tensor *t, kb_op_id op, std::set<const kb_tensor *> &seen) {
    if (!t || !seen.insert(t).second) return false;
    if (t->kind == KB_KIND_OP && t->op == op) return true;
    for (int i = 0; i < t->n_in && i < KB_MAX_INPUTS; ++i)
        if (graph_has_op(t->in[i], op, seen)) return true;
    return false;
}

TEST(OpTable, EveryCaseMakesItsOp) {
    kb_context *ctx = nullptr;
    kb_context_options o = KB_CONTEXT_OPTIONS_DEFAULTS;
    o.device = KB_DEVICE_CPU;
    o.read_config = 0;
    ASSERT_EQ(kb_context_new(&ctx, &o), KB_OK) << kb_last_error();
    std::mt19937_64 gen(kbt::test_seed());
    for (const kbt::OpCase &c : op_cases()) {
        auto in = kbt::case_inputs(c, gen);
        std::vector<kb_tensor *> vars;
        for (size_t i = 0; i < c.shapes.size(); ++i)
            vars.push_back(kbt::make_var(ctx, in[i], c.shapes[i], KB_FLOAT32));
        kb_tensor *out = c.build(ctx, vars);
        if (!out) {
            ADD_FAILURE() << c.name << ": " << kb_last_error();
            kb_clear_error();
            continue;
        }
        std::set<const kb_tensor *> seen;
        EXPECT_TRUE(graph_has_op(out, c.op, seen))
            << "case " << c.name << " is listed for op " << kb_op_table[c.op]->name
            << " but its graph has no such node";
    }
    kb_context_free(ctx);
}

// Every case builds, in float32 and float64, into a tensor with a static shape.
TEST(OpTable, EveryCaseBuilds) {
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
        for (const kbt::OpCase &c : op_cases()) {
            kb_context *ctx = nullptr;
            kb_context_options o = KB_CONTEXT_OPTIONS_DEFAULTS;
            o.device = KB_DEVICE_CPU;
            o.read_config = 0;
            ASSERT_EQ(kb_context_new(&ctx, &o), KB_OK) << kb_last_error();
            std::mt19937_64 gen(kbt::test_seed());
            auto in = kbt::case_inputs(c, gen);
            std::vector<kb_tensor *> vars;
            for (size_t i = 0; i < c.shapes.size(); ++i)
                vars.push_back(kbt::make_var(ctx, in[i], c.shapes[i], dt));
            kb_tensor *out = c.build(ctx, vars);
            EXPECT_NE(out, nullptr) << c.name << " (" << kb_dtype_name(dt) << "): " << kb_last_error();
            kb_context_free(ctx);
        }
    }
}

}  // namespace
