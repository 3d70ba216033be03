// Reference values and bad input of the nn family.
#include "kb_test_util.h"
