/* Threads allocate and free in a loop until standard input ends; "ready"
 * on stdout once they run. scripts/preload-test.sh runs it under
 * LD_PRELOAD with HOTPOOL_CONF=stats_signal:SIGUSR2 and signals it. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int stop;

static void *work(void *arg) {
  unsigned long seed = (unsigned long)arg, rounds = 0;
  void *held[256] = {0};
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    for (int i = 0; i < 256; i++) {
      seed = seed * 6364136223846793005UL + 1442695040888963407UL;
      free(held[i]);
      size_t size = 8 + (seed >> 33) % (i % 16 == 0 ? 40000 : 1000);
      held[i] = malloc(size);
      memset(held[i], (int)i, size < 64 ? size : 64);
    }
    rounds++;
  }
  for (int i = 0; i < 256; i++) free(held[i]);
  return (void *)rounds;
}

int main(void) {
  pthread_t t[4];
  for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, work, (void *)(i + 1));
  printf("ready\n");
  fflush(stdout);
  char buf[256];
  while (read(0, buf, sizeof buf) > 0) {}
  atomic_store(&stop, 1);
  unsigned long total = 0;
  for (int i = 0; i < 4; i++) {
    void *r;
    pthread_join(t[i], &r);
    total += (unsigned long)r;
  }
  printf("done %s\n", total > 0 ? "ok" : "no rounds");
  return 0;
}
