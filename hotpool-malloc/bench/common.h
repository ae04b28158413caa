/* Shared by the allocator benchmarks: a fast per-thread PRNG, and a
 * runner of seeded worker threads. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

static inline uint64_t next_rand(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* A worker's seed and, when it returns, its checksum. A worker keeps both
 * in locals while it runs: the jobs sit side by side in one cache line. */
struct job { uint64_t seed; unsigned long long sum; };

/* Runs `worker` on `threads` threads, thread i seeded with
 * `seed * (i + 1)`; returns the sum of their checksums. */
static inline unsigned long long run_jobs(int threads, uint64_t seed, void *(*worker)(void *)) {
    pthread_t *t = calloc(threads, sizeof *t);
    struct job *jobs = calloc(threads, sizeof *jobs);
    for (int i = 0; i < threads; i++) {
        jobs[i].seed = seed * (i + 1);
        pthread_create(&t[i], 0, worker, &jobs[i]);
    }
    unsigned long long sum = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], 0);
        sum += jobs[i].sum;
    }
    free(jobs);
    free(t);
    return sum;
}
#endif
