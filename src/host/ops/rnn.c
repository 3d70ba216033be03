/* Family rnn: fused recurrent layers (cuDNN LSTM / GRU / simple RNN over a sequence, CPU twin).
 * Entries, validation / shape rules, gradient rules and public constructors. */
#include "ops/ops_common.h"
