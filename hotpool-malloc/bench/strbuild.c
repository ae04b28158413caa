/* A realloc-heavy string builder: many buffers grow by small appends (each
 * append a realloc to the exact new length, as naive C code does), are
 * read, sometimes shrunk to fit, and freed; a few grow past a megabyte.
 *
 *   strbuild STRINGS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int main(int argc, char **argv) {
    size_t strings = argc > 1 ? strtoul(argv[1], 0, 10) : 20000;
    uint64_t seed = 7, sum = 0;
    char *keep[64] = {0};
    for (size_t s = 0; s < strings; s++) {
        uint64_t r = next_rand(&seed);
        size_t target = (r % 100 == 0) ? (1u << 20) + (r >> 40) % (3u << 20) : 64 + (r >> 20) % 16000;
        size_t len = 0;
        char *buf = NULL;
        while (len < target) {
            size_t piece = 1 + next_rand(&seed) % 40;
            if (len > 4096) piece *= 16;
            buf = realloc(buf, len + piece + 1);
            memset(buf + len, 'a' + (int)(len % 26), piece);
            len += piece;
            buf[len] = 0;
        }
        sum += (unsigned char)buf[len / 2];
        if (r & 1) buf = realloc(buf, len / 2 + 1); /* shrink to a prefix */
        size_t k = (r >> 8) % 64;
        free(keep[k]);
        keep[k] = buf;
    }
    for (int k = 0; k < 64; k++) free(keep[k]);
    printf("strbuild: %llu\n", (unsigned long long)sum);
    return 0;
}
