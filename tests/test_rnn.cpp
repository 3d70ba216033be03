// Reference values, gradients and bad input of the rnn family.
#include "kb_test_util.h"
