/* Family control: control flow: the loop node (map_fn, foldl, foldr, rnn) and its traced bodies.
 * Entries, validation / shape rules, gradient rules and public constructors. */
#include "ops/ops_common.h"
