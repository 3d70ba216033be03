// Reference values and bad input of the shape family.
#include "kb_test_util.h"
