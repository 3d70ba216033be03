// Reference values and bad input of the image family.
#include "kb_test_util.h"
