/* Larson-like server churn: each worker owns an array of live blocks and
 * replaces random ones (free, then malloc a random size); after each round
 * the worker exits and a fresh thread takes its array over, so blocks are
 * freed by threads that did not allocate them and thread caches come and go.
 *
 *   larson THREADS ROUNDS OPS_PER_ROUND SLOTS
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

struct worker {
    void **slots;
    size_t nslots, ops;
    uint64_t seed, sum;
};

static void *run(void *arg) {
    struct worker *w = arg;
    for (size_t i = 0; i < w->ops; i++) {
        uint64_t r = next_rand(&w->seed);
        size_t k = r % w->nslots;
        size_t n = 16 + (r >> 32) % 1000;
        free(w->slots[k]);
        char *p = malloc(n);
        p[0] = (char)n;
        p[n - 1] = (char)i;
        w->sum += (unsigned char)p[0];
        w->slots[k] = p;
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int rounds = argc > 2 ? atoi(argv[2]) : 50;
    size_t ops = argc > 3 ? strtoul(argv[3], 0, 10) : 200000;
    size_t nslots = argc > 4 ? strtoul(argv[4], 0, 10) : 10000;
    struct worker *w = calloc((size_t)threads, sizeof *w);
    for (int t = 0; t < threads; t++) {
        w[t].slots = calloc(nslots, sizeof(void *));
        w[t].nslots = nslots;
        w[t].ops = ops;
        w[t].seed = 0x9e3779b97f4a7c15ull * (uint64_t)(t + 1);
    }
    for (int round = 0; round < rounds; round++) {
        pthread_t tid[64];
        for (int t = 0; t < threads; t++) pthread_create(&tid[t], NULL, run, &w[t]);
        for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
        /* hand every array to the next worker: cross-thread frees */
        void **first = w[0].slots;
        for (int t = 0; t + 1 < threads; t++) w[t].slots = w[t + 1].slots;
        w[threads - 1].slots = first;
    }
    uint64_t sum = 0;
    for (int t = 0; t < threads; t++) {
        for (size_t k = 0; k < nslots; k++) free(w[t].slots[k]);
        free(w[t].slots);
        sum += w[t].sum;
    }
    free(w);
    printf("larson: %llu\n", (unsigned long long)sum);
    return 0;
}
