/* CUDA kernels of the linalg family. */
#include "cuda/kernels/common.cuh"
