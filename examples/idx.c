/* IDX reader: see idx.h. */
#include "idx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Read exactly n bytes; -1 with a message on a short read or a zlib error. */
static int read_all(gzFile f, const char *path, void *buf, size_t n, const char *what, char *err, size_t err_len) {
    size_t got = 0;
    while (got < n) {
        size_t chunk = n - got > (1u << 30) ? (1u << 30) : n - got;
        int r = gzread(f, (char *)buf + got, (unsigned)chunk);
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            snprintf(err, err_len, "%s: corrupt file while reading the %s: %s", path, what,
                     zerr == Z_ERRNO ? strerror(errno) : msg);
            return -1;
        }
        if (r == 0) {
            snprintf(err, err_len, "%s: truncated: the %s needs %zu bytes, the file ends after %zu", path, what, n,
                     got);
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

int idx_load(const char *path, int want_rank, idx_array *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    gzFile f = gzopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
        return -1;
    }
    unsigned char head[4];
    int rc = read_all(f, path, head, 4, "header", err, err_len);
    if (rc == 0 && (head[0] != 0 || head[1] != 0)) {
        snprintf(err, err_len, "%s: not an IDX file (magic %02x %02x %02x %02x)", path, head[0], head[1], head[2],
                 head[3]);
        rc = -1;
    } else if (rc == 0 && head[2] != 0x08) {
        snprintf(err, err_len, "%s: IDX element type 0x%02x, only unsigned bytes (0x08) are read", path, head[2]);
        rc = -1;
    } else if (rc == 0 && (head[3] < 1 || head[3] > 4 || (want_rank > 0 && head[3] != want_rank))) {
        if (want_rank > 0)
            snprintf(err, err_len, "%s: %d dimensions, expected %d", path, head[3], want_rank);
        else
            snprintf(err, err_len, "%s: %d dimensions, 1 to 4 are read", path, head[3]);
        rc = -1;
    }
    int64_t size = 1;
    for (int i = 0; rc == 0 && i < head[3]; ++i) {
        unsigned char d[4];
        rc = read_all(f, path, d, 4, "header", err, err_len);
        if (rc) break;
        out->dims[i] = (int64_t)d[0] << 24 | (int64_t)d[1] << 16 | (int64_t)d[2] << 8 | d[3];
        if (out->dims[i] == 0 || size > ((int64_t)1 << 40) / out->dims[i]) {
            snprintf(err, err_len, "%s: implausible dimension %d = %lld", path, i, (long long)out->dims[i]);
            rc = -1;
            break;
        }
        size *= out->dims[i];
    }
    if (rc == 0) {
        out->rank = head[3];
        out->size = size;
        out->data = (uint8_t *)malloc((size_t)size);
        if (!out->data) {
            snprintf(err, err_len, "%s: out of memory for %lld bytes", path, (long long)size);
            rc = -1;
        }
    }
    if (rc == 0) rc = read_all(f, path, out->data, (size_t)size, "data", err, err_len);
    if (rc == 0) { /* trailing bytes mean the header lies about the size */
        unsigned char extra;
        int r = gzread(f, &extra, 1);
        if (r != 0) {
            snprintf(err, err_len, "%s: %s after the %lld data bytes the header announces", path,
                     r > 0 ? "extra bytes" : "corrupt data", (long long)size);
            rc = -1;
        }
    }
    gzclose(f);
    if (rc) idx_free(out);
    return rc;
}

void idx_free(idx_array *a) {
    free(a->data);
    memset(a, 0, sizeof *a);
}
