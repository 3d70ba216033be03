// Op cases of the nn family (see op_cases.h).
#include "op_cases.h"

namespace kbt {

void add_nn_cases(std::vector<OpCase> &v) { (void)v; }

}  // namespace kbt
