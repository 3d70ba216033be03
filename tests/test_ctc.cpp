// Reference values, gradients and bad input of the ctc family.
#include "kb_test_util.h"
