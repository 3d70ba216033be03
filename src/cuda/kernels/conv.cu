/* CUDA kernels of the conv family. */
#include "cuda/kernels/common.cuh"
