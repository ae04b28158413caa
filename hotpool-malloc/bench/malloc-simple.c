/* The shape of glibc's benchtests/bench-malloc-simple.c: one thread
 * allocates a batch of COUNT blocks of one size and frees them in the
 * order allocated, over and over, for sizes 16 B-1 KiB and batches of
 * 25-1600 blocks; then the same again after a second thread has existed
 * (glibc then leaves its single-thread fast paths). Prints a checksum and
 * nothing timed: the caller times the whole run.
 *
 *   malloc-simple ROUNDS
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static void *nothing(void *arg) { return arg; }

static unsigned long long run(size_t rounds) {
    static const size_t sizes[] = {16, 64, 256, 1024};
    static const size_t counts[] = {25, 100, 400, 1600};
    static void *blocks[1600];
    unsigned long long sum = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        for (size_t c = 0; c < sizeof counts / sizeof *counts; c++) {
            /* the same number of blocks for every batch size */
            size_t reps = rounds * 1600 / counts[c];
            for (size_t r = 0; r < reps; r++) {
                for (size_t i = 0; i < counts[c]; i++) {
                    char *p = malloc(sizes[s]);
                    p[0] = (char)i;
                    blocks[i] = p;
                }
                for (size_t i = 0; i < counts[c]; i++) {
                    sum += (unsigned char)((char *)blocks[i])[0];
                    free(blocks[i]);
                }
            }
        }
    }
    return sum;
}

int main(int argc, char **argv) {
    size_t rounds = argc > 1 ? strtoul(argv[1], 0, 10) : 2000;
    unsigned long long single = run(rounds);
    pthread_t t;
    pthread_create(&t, 0, nothing, 0);
    pthread_join(t, 0);
    unsigned long long multi = run(rounds);
    printf("malloc-simple: %llu %llu\n", single, multi);
    return 0;
}
