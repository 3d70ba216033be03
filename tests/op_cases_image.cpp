// Op cases of the image family (see op_cases.h).
#include "op_cases.h"

namespace kbt {

void add_image_cases(std::vector<OpCase> &v) { (void)v; }

}  // namespace kbt
