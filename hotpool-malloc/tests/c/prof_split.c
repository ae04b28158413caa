/* Keeps 80 MiB live in blocks of at most 1 KiB allocated from three
 * functions, 60/30/10 of the bytes, then exits with the blocks still live.
 * Run by scripts/preload-test.sh under LD_PRELOAD with
 * HOTPOOL_CONF=prof:true,lg_prof_sample:14,prof_final:true: the heap
 * profile written at exit must give each function its share (jeprof
 * --text). Built with default flags: no frame pointers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024 * 1024)

/* Static, so that the only allocations are the three sites'. */
static void *kept[80 * MIB / 256];
static size_t nkept;

/* Each function stores what it allocates, so its call to malloc is not a
 * tail call and its frame is on the stack. */
__attribute__((noinline)) static void sixty_percent_site(size_t bytes) {
  for (size_t i = 0; i < bytes / 512; i++) {
    kept[nkept] = malloc(512);
    memset(kept[nkept++], 0x60, 512);
  }
}

__attribute__((noinline)) static void thirty_percent_site(size_t bytes) {
  for (size_t i = 0; i < bytes / 256; i++) {
    kept[nkept] = malloc(256);
    memset(kept[nkept++], 0x30, 256);
  }
}

__attribute__((noinline)) static void ten_percent_site(size_t bytes) {
  for (size_t i = 0; i < bytes / 1024; i++) {
    kept[nkept] = calloc(1, 1024);
    ((char *)kept[nkept++])[0] = 0x10;
  }
}

int main(void) {
  for (int round = 0; round < 8; round++) {
    sixty_percent_site(6 * MIB);
    thirty_percent_site(3 * MIB);
    ten_percent_site(MIB);
  }
  /* Garbage freed again must not show. */
  size_t mark = nkept;
  sixty_percent_site(16 * MIB);
  while (nkept > mark) free(kept[--nkept]);
  printf("prof_split: %zu blocks live\n", nkept);
  return 0;
}
