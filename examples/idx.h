/*
 * IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or plain, read with zlib.
 *
 * An IDX file is a 4-byte magic (0, 0, type, number of dimensions), the dimensions as big-endian
 * uint32, then the data in C order. Only unsigned bytes (type 0x08) are read here.
 */
#ifndef KB_EXAMPLES_IDX_H
#define KB_EXAMPLES_IDX_H

#include <stddef.h>
#include <stdint.h>

typedef struct idx_array {
    int rank;
    int64_t dims[4];
    int64_t size;   /* product of dims */
    uint8_t *data;  /* malloc'd, size bytes */
} idx_array;

/* Read \p path into \p out. Returns 0, or -1 with a message in err (the file, what is wrong) and
 * *out left empty. A missing, truncated or corrupt file, a wrong type or a rank above 4 is an error;
 * so is a rank other than \p want_rank when want_rank > 0. */
int idx_load(const char *path, int want_rank, idx_array *out, char *err, size_t err_len);
void idx_free(idx_array *a);

#endif
