/* Family ctc: CTC: ctc_label_dense_to_sparse, ctc_batch_cost (loss + gradient in log space), ctc_decode.
 * Entries, validation / shape rules, gradient rules and public constructors. */
#include "ops/ops_common.h"
