/* Producer/consumer: producers allocate blocks and pass them in batches
 * through a bounded queue; consumers touch and free them. Every free is a
 * remote one.
 *
 *   xthread PAIRS BLOCKS_PER_PRODUCER
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define BATCH 256
#define DEPTH 64

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    void **batches[DEPTH];
    size_t head, tail;
};

struct pair {
    struct queue q;
    size_t blocks;
    uint64_t sum;
};

static void *produce(void *arg) {
    struct pair *p = arg;
    uint64_t seed = (uintptr_t)p | 1;
    for (size_t done = 0; done < p->blocks; done += BATCH) {
        void **b = malloc(BATCH * sizeof(void *));
        for (int i = 0; i < BATCH; i++) {
            size_t n = 8 + next_rand(&seed) % 512;
            char *o = malloc(n);
            memset(o, (int)i, n < 64 ? n : 64);
            b[i] = o;
        }
        pthread_mutex_lock(&p->q.lock);
        while (p->q.head - p->q.tail == DEPTH) pthread_cond_wait(&p->q.not_full, &p->q.lock);
        p->q.batches[p->q.head++ % DEPTH] = b;
        pthread_cond_signal(&p->q.not_empty);
        pthread_mutex_unlock(&p->q.lock);
    }
    pthread_mutex_lock(&p->q.lock);
    while (p->q.head - p->q.tail == DEPTH) pthread_cond_wait(&p->q.not_full, &p->q.lock);
    p->q.batches[p->q.head++ % DEPTH] = NULL;
    pthread_cond_signal(&p->q.not_empty);
    pthread_mutex_unlock(&p->q.lock);
    return NULL;
}

static void *consume(void *arg) {
    struct pair *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->q.lock);
        while (p->q.head == p->q.tail) pthread_cond_wait(&p->q.not_empty, &p->q.lock);
        void **b = p->q.batches[p->q.tail++ % DEPTH];
        pthread_cond_signal(&p->q.not_full);
        pthread_mutex_unlock(&p->q.lock);
        if (!b) return NULL;
        for (int i = 0; i < BATCH; i++) {
            p->sum += *(unsigned char *)b[i];
            free(b[i]);
        }
        free(b);
    }
}

int main(int argc, char **argv) {
    int pairs = argc > 1 ? atoi(argv[1]) : 2;
    size_t blocks = argc > 2 ? strtoul(argv[2], 0, 10) : 4000000;
    struct pair *ps = calloc((size_t)pairs, sizeof *ps);
    pthread_t prod[32], cons[32];
    for (int i = 0; i < pairs; i++) {
        pthread_mutex_init(&ps[i].q.lock, NULL);
        pthread_cond_init(&ps[i].q.not_empty, NULL);
        pthread_cond_init(&ps[i].q.not_full, NULL);
        ps[i].blocks = blocks;
        pthread_create(&cons[i], NULL, consume, &ps[i]);
        pthread_create(&prod[i], NULL, produce, &ps[i]);
    }
    uint64_t sum = 0;
    for (int i = 0; i < pairs; i++) {
        pthread_join(prod[i], NULL);
        pthread_join(cons[i], NULL);
        sum += ps[i].sum;
    }
    free(ps);
    printf("xthread: %llu\n", (unsigned long long)sum);
    return 0;
}
