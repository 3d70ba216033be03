/* CUDA kernels of the norm family. */
#include "cuda/kernels/common.cuh"
