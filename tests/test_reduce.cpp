// Reference values and bad input of the reduce family.
#include "kb_test_util.h"
