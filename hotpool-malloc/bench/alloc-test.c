/* The shape of alloc-test (OLogN Technologies / ITHare, as mimalloc-bench
 * runs it): each of THREADS threads keeps a working set of slots and does
 * ITERATIONS steps; a step frees a random slot's block if it has one and
 * allocates a new one into it, with sizes up to 1 KiB from a Pareto-like
 * distribution (most blocks small, a long tail), so blocks live for
 * random spans and the set stays near half full. Prints a checksum.
 *
 *   alloc-test THREADS ITERATIONS
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"

#define SLOTS (1 << 16)
#define MAX_SIZE 1024

static size_t iterations;

/* Sizes in [8, MAX_SIZE] from a Pareto-like density (shape 1.5: most
 * blocks small, a long tail), as an inverse-transform table so that the
 * benchmark times the allocator, not the math library. */
#define TABLE 4096
static size_t table[TABLE];

static void fill_table(void) {
    for (size_t i = 0; i < TABLE; i++) {
        double u = 1.0 - (i + 0.5) / TABLE; /* in (0, 1) */
        double x = 8.0 / pow(u, 1.0 / 1.5);
        table[i] = x > MAX_SIZE ? MAX_SIZE : (size_t)x;
    }
}

static void *worker(void *arg) {
    struct job *j = arg;
    uint64_t seed = j->seed;
    unsigned long long sum = 0;
    char **set = calloc(SLOTS, sizeof *set);
    for (size_t i = 0; i < iterations; i++) {
        uint64_t r = next_rand(&seed);
        size_t k = r % SLOTS;
        if (set[k]) {
            sum += (unsigned char)set[k][0];
            free(set[k]);
            set[k] = 0;
            if (r & (1ull << 63)) continue; /* sometimes only a free */
        }
        size_t n = table[(next_rand(&seed) >> 20) % TABLE];
        set[k] = malloc(n);
        set[k][0] = (char)n;
    }
    for (size_t k = 0; k < SLOTS; k++) free(set[k]);
    free(set);
    j->sum = sum;
    return 0;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    iterations = argc > 2 ? strtoul(argv[2], 0, 10) : 20000000;
    fill_table();
    unsigned long long sum = run_jobs(threads, 0x2545f4914f6cdd1dull, worker);
    printf("alloc-test: %llu\n", sum);
    return 0;
}
