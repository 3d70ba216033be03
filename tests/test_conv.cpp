// Reference values and bad input of the conv family.
#include "kb_test_util.h"
