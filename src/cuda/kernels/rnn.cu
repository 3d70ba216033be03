/* CUDA kernels of the rnn family (fused recurrent layers (cuDNN LSTM / GRU / simple RNN over a sequence, CPU twin)). */
#include "cuda/kernels/common.cuh"
