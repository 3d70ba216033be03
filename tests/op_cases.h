// THE table of op cases: every op of src/host/ops/ops.def has at least one entry (checked by
// test_op_table). test_gradients runs the float64 finite-difference check on every case with
// `grad`, test_parity runs every case on CPU and CUDA in float32 and float64.
//
// A case builds its output from its inputs (variables of the dtype under test, filled with
// random values in [lo, hi] kept `margin` away from `kinks`). Internal ops (relu_grad,
// sqrt_grad, max_grad, sum_like, broadcast_like, reshape_like, fill_like, log_softmax, clip) are
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
};

const std::vector<OpCase> &op_cases();
// Random inputs for case c (one vector per input).
std::vector<std::vector<double>> case_inputs(const OpCase &c, std::mt19937_64 &gen);

}  // namespace kbt

#endif
