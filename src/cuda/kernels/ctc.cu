/* CUDA kernels of the ctc family (CTC: ctc_label_dense_to_sparse, ctc_batch_cost (loss + gradient in log space), ctc_decode). */
#include "cuda/kernels/common.cuh"
