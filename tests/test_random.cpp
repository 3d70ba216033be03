// Reference values, gradients and bad input of the random family.
#include "kb_test_util.h"
