// Reference values and bad input of the norm family.
#include "kb_test_util.h"
