/* The shape of glibc's benchtests/bench-malloc-thread.c: THREADS threads,
 * each with a working set of 1024 blocks, replace a random block by a new
 * one of a random size between 4 B and 32 KiB, drawn so that small sizes
 * are the most frequent (the density falls as 1/size, as glibc's table
 * does). A fixed count of replacements per thread instead of glibc's
 * fixed duration, so that the output is the same under every allocator.
 *
 *   malloc-thread THREADS ITERATIONS
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"

#define WORKING_SET 1024
#define MIN_SIZE 4
#define MAX_SIZE 32768
#define TABLE 4096

static size_t table[TABLE];
static size_t iterations;

static void *worker(void *arg) {
    struct job *j = arg;
    uint64_t seed = j->seed;
    unsigned long long sum = 0;
    char *set[WORKING_SET] = {0};
    for (size_t i = 0; i < iterations; i++) {
        uint64_t r = next_rand(&seed);
        size_t k = r % WORKING_SET;
        size_t n = table[(r >> 20) % TABLE];
        free(set[k]);
        set[k] = malloc(n);
        set[k][0] = (char)n;
        set[k][n - 1] = (char)k;
        sum += (unsigned char)set[k][0];
    }
    for (size_t k = 0; k < WORKING_SET; k++) free(set[k]);
    j->sum = sum;
    return 0;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    iterations = argc > 2 ? strtoul(argv[2], 0, 10) : 5000000;
    /* inverse-transform table of a density proportional to 1/size */
    for (size_t i = 0; i < TABLE; i++) {
        double u = (i + 0.5) / TABLE;
        table[i] = (size_t)(MIN_SIZE * pow((double)MAX_SIZE / MIN_SIZE, u));
    }
    unsigned long long sum = run_jobs(threads, 0x9e3779b97f4a7c15ull, worker);
    printf("malloc-thread: %llu\n", sum);
    return 0;
}
