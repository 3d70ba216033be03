// THE table of op cases: every op of src/host/ops/ops.def has at least one entry (checked by
// test_op_table). The foundation ops' cases are in op_cases.cpp, each later family's in
// op_cases_<family>.cpp. test_gradients runs the float64 finite-difference check on every case
// with `grad`, test_parity runs every case on CPU and CUDA in float32 and float64 (and float16 /
// bfloat16 for cases marked `half`).
//
// A case builds its output from its inputs (variables of the dtype under test, filled with
// random values in [lo, hi] kept `margin` away from `kinks`). Internal ops (relu_grad,
// sqrt_grad, max_grad, sum_like, broadcast_like, reshape_like, fill_like, log_softmax) are
// reached through the public API that makes them: kb_gradients of the op they differentiate,
// categorical_crossentropy, ones_like.
#ifndef KB_TEST_OP_CASES_H
#define KB_TEST_OP_CASES_H

#include <string>
#include <vector>

#include "kb_test_util.h"
#include "ops/op.h"

namespace kbt {

struct Range {
    double lo, hi;
};

struct OpCase {
    kb_op_id op;                 // the op this case exercises
    std::string name;            // unique, [A-Za-z0-9_]
    Builder build;               // inputs -> output
    std::vector<Shape> shapes;   // one per input
    std::vector<Range> ranges;   // one per input, or one for all
    std::vector<double> kinks;   // keep inputs away from these points
    bool grad;                   // run the finite-difference check
    Tol tol32;                   // parity tolerance, float32
    Tol tol64;                   // parity tolerance, float64
    bool half = false;           // also run parity in float16 and bfloat16 (tolerance THALF)
};

using In = const std::vector<kb_tensor *> &;

// Tolerances: elementwise (one or a few roundings), reductions/products (summation order),
// exact (data movement), and float16/bfloat16 parity (computed in float32, rounded once or a
// few times to an 8- or 11-bit mantissa).
const Tol T32{1e-5, 1e-6}, T64{1e-12, 1e-12};
const Tol T32R{1e-4, 1e-5}, T64R{1e-10, 1e-12};
const Tol EXACT{0.0, 0.0};
const Tol THALF{2e-2, 2e-2};

OpCase mk(kb_op_id op, std::string name, Builder b, std::vector<Shape> shapes,
          std::vector<Range> ranges, bool grad, Tol t32 = T32, Tol t64 = T64,
          std::vector<double> kinks = {});
// d sum(y * w) / d x: the public way to make an op's gradient (vector-Jacobian product) ops.
kb_tensor *vjp(kb_tensor *y, kb_tensor *w, kb_tensor *x);
kb_tensor *scalar_like(kb_context *ctx, double v, kb_tensor *x);

// The families' cases, one file each (tests/op_cases_<family>.cpp), appended by op_cases().
void add_elementwise_cases(std::vector<OpCase> &v);
void add_reduce_cases(std::vector<OpCase> &v);
void add_shape_cases(std::vector<OpCase> &v);
void add_linalg_cases(std::vector<OpCase> &v);
void add_image_cases(std::vector<OpCase> &v);
void add_sparse_cases(std::vector<OpCase> &v);
void add_nn_cases(std::vector<OpCase> &v);
void add_norm_cases(std::vector<OpCase> &v);
void add_conv_cases(std::vector<OpCase> &v);
void add_random_cases(std::vector<OpCase> &v);
void add_control_cases(std::vector<OpCase> &v);
void add_ctc_cases(std::vector<OpCase> &v);
void add_rnn_cases(std::vector<OpCase> &v);

const std::vector<OpCase> &op_cases();
// Random inputs for case c (one vector per input).
std::vector<std::vector<double>> case_inputs(const OpCase &c, std::mt19937_64 &gen);

}  // namespace kbt

#endif
