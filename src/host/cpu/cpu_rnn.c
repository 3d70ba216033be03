/* CPU kernels of the rnn family (fused recurrent layers (cuDNN LSTM / GRU / simple RNN over a sequence, CPU twin)). */
#include "cpu/cpu_common.h"
