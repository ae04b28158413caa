/* Large blocks, in the shape of mimalloc-bench's malloc-large: 20 slots,
 * each iteration replaces the block of a random slot by a new one of a
 * random size between 1 and 32 MiB and writes one byte per page of it
 * (a program uses what it allocates); then the same number of buffers
 * grown by realloc from 64 KiB to 32 MiB in doubling steps, each step's
 * new half touched. Prints a checksum.
 *
 *   large ITERATIONS
 */
#include <stdio.h>
#include <stdlib.h>

#include "common.h"

#define SLOTS 20
#define MIB ((size_t)1 << 20)
#define PAGE 4096

static uint64_t touch(char *p, size_t from, size_t to) {
    uint64_t sum = 0;
    for (size_t i = from; i < to; i += PAGE) {
        p[i] = (char)(i >> 12);
        sum += (unsigned char)p[i];
    }
    return sum;
}

int main(int argc, char **argv) {
    size_t iters = argc > 1 ? strtoul(argv[1], 0, 10) : 2000;
    uint64_t seed = 42, sum = 0;
    char *slot[SLOTS] = {0};
    for (size_t i = 0; i < iters; i++) {
        uint64_t r = next_rand(&seed);
        size_t k = r % SLOTS;
        size_t size = MIB + (r >> 20) % (31 * MIB);
        free(slot[k]);
        slot[k] = malloc(size);
        if (!slot[k]) return 1;
        sum += touch(slot[k], 0, size);
    }
    for (size_t k = 0; k < SLOTS; k++) free(slot[k]);
    for (size_t i = 0; i < iters / 20; i++) {
        char *buf = NULL;
        size_t len = 0;
        for (size_t size = 64 << 10; size <= 32 * MIB; size *= 2) {
            buf = realloc(buf, size);
            if (!buf) return 1;
            sum += touch(buf, len, size);
            len = size;
        }
        free(buf);
    }
    printf("large: checksum %llu\n", (unsigned long long)sum);
    return 0;
}
