// Reference values, gradients and bad input of the control family.
#include "kb_test_util.h"
