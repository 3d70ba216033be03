/*
 * What the examples share besides kb: CHECK, the error check (a kb call that fails, written as a
 * condition, prints kb's message and the status name and exits with status 1; define
 * EXAMPLE_NAME before including this), and a small seedable generator for their data.
 */
#ifndef KB_EXAMPLES_EXAMPLE_UTIL_H
#define KB_EXAMPLES_EXAMPLE_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <kb/kb.h>

#define CHECK(x)                                                                                  \
    do {                                                                                          \
        if (!(x)) {                                                                               \
            fprintf(stderr, "%s: %s failed: %s (%s)\n", EXAMPLE_NAME, #x, kb_last_error(),         \
                    kb_status_string(kb_last_status()));                                          \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

/* xorshift64*: uniform in [0, 1), reproducible from the state the example seeds (never 0). */
static uint64_t rng_state = 1;
static inline double urand(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

#endif
