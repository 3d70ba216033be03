// Op cases of the random family (see op_cases.h).
#include "op_cases.h"

namespace kbt {

void add_random_cases(std::vector<OpCase> &v) { (void)v; }

}  // namespace kbt
