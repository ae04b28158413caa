/* A burst of small blocks, all freed, then the program sleeps without
 * calling the allocator. Prints resident memory before the burst, at its
 * peak and after the sleep, in KiB: "before B peak P after A".
 * Usage: idle_return [blocks [sleep_ms]] (defaults: 4194304 blocks of
 * 64 B, 12000 ms: decay_ms + 2 s at hotpool's defaults). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long rss_kib(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2) {
        fprintf(stderr, "idle_return: cannot read /proc/self/statm\n");
        exit(2);
    }
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? strtoul(argv[1], 0, 10) : 4194304;
    long sleep_ms = argc > 2 ? strtol(argv[2], 0, 10) : 12000;
    long before = rss_kib();
    void **blocks = malloc(n * sizeof *blocks);
    if (!blocks) return 3;
    for (size_t i = 0; i < n; i++) {
        blocks[i] = malloc(64);
        if (!blocks[i]) return 3;
        ((volatile char *)blocks[i])[0] = (char)i;
    }
    long peak = rss_kib();
    for (size_t i = 0; i < n; i++) free(blocks[i]);
    free(blocks);
    struct timespec ts = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
    printf("before %ld peak %ld after %ld\n", before, peak, rss_kib());
    return 0;
}
