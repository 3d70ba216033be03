// Reference values and bad input of the elementwise family.
#include "kb_test_util.h"
