/* CUDA kernels of the image family. */
#include "cuda/kernels/common.cuh"
