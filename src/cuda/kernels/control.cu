/* CUDA kernels of the control family (control flow: the loop node (map_fn, foldl, foldr, rnn) and its traced bodies). */
#include "cuda/kernels/common.cuh"
