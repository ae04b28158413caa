/* Shared by the allocator benchmarks: a fast per-thread PRNG. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H
#include <stdint.h>

static inline uint64_t next_rand(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}
#endif
