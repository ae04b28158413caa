/* Small-object churn in one thread: a working set of small blocks (8-256
 * bytes, skewed small like real programs), random replacement, plus short
 * bursts allocated and freed in LIFO order.
 *
 *   churn WORKING_SET OPS
 */
#include <stdio.h>
#include <stdlib.h>

#include "common.h"

int main(int argc, char **argv) {
    size_t live = argc > 1 ? strtoul(argv[1], 0, 10) : 200000;
    size_t ops = argc > 2 ? strtoul(argv[2], 0, 10) : 30000000;
    uint64_t seed = 42, sum = 0;
    char **set = calloc(live, sizeof *set);
    for (size_t i = 0; i < ops; i++) {
        uint64_t r = next_rand(&seed);
        if ((r & 63) == 0) {
            /* a burst: temporaries made and dropped in LIFO order */
            char *tmp[32];
            for (int k = 0; k < 32; k++) tmp[k] = malloc(16 + (size_t)k * 8);
            for (int k = 31; k >= 0; k--) {
                tmp[k][0] = (char)k;
                sum += (unsigned char)tmp[k][0];
                free(tmp[k]);
            }
            continue;
        }
        size_t k = (r >> 8) % live;
        size_t n = 8 + ((r >> 40) % 32) * ((r >> 60) + 1) / 2;
        free(set[k]);
        set[k] = malloc(n);
        set[k][0] = (char)n;
        sum += (unsigned char)set[k][0];
    }
    for (size_t k = 0; k < live; k++) free(set[k]);
    free(set);
    printf("churn: %llu\n", (unsigned long long)sum);
    return 0;
}
