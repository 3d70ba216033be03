// Reference values and bad input of the linalg family.
#include "kb_test_util.h"
