// Op cases of the control family (see op_cases.h).
#include "op_cases.h"

namespace kbt {

void add_control_cases(std::vector<OpCase> &v) { (void)v; }

}  // namespace kbt
