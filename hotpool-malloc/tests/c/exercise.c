/* Exercises every function libhotpool_malloc.so exports, under LD_PRELOAD:
 * sizes from 0 to huge, alignments, glibc's errno and NULL/0 rules, threads
 * created and destroyed in waves with cross-thread frees, fork while other
 * threads allocate, allocation before main, in thread-specific-data
 * destructors and in atexit handlers.
 *
 *   exercise           run every check; exit 0 and print "exercise: ok"
 *   exercise foreign   free() a pointer hotpool never made: must abort
 *
 * Build: cc -O2 -pthread -o exercise exercise.c
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;
static int checks;

#define CHECK(cond)                                                        \
    do {                                                                   \
        checks++;                                                          \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                  \
    } while (0)

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 7);
}

static int intact(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7)) return 0;
    return 1;
}

/* Keeps the compiler from folding calls with absurd sizes at build time. */
static size_t opaque(size_t v) {
    volatile size_t x = v;
    return x;
}

static int aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

/* ---- before main ------------------------------------------------------ */

static char *early;

__attribute__((constructor)) static void before_main(void) {
    early = malloc(100);
    if (early) strcpy(early, "allocated in a constructor");
}

/* ---- the interface is ours ------------------------------------------- */

static void interposed(void) {
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    CHECK(sym != NULL && dladdr(sym, &info) != 0);
    CHECK(sym != NULL && info.dli_fname && strstr(info.dli_fname, "hotpool") != NULL);
    CHECK(early != NULL && strcmp(early, "allocated in a constructor") == 0);
    free(early);
}

/* ---- malloc, calloc, free, usable size -------------------------------- */

static void basics(void) {
    static const size_t sizes[] = {0, 1, 7, 8, 9, 16, 24, 100, 1000, 4096, 14336,
                                   14337, 65536, 100000, 1 << 20, (1 << 20) + 1,
                                   5 << 20, 40 << 20};
    void *held[sizeof sizes / sizeof sizes[0]];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = malloc(sizes[i]);
        CHECK(p != NULL);
        CHECK(aligned(p, 16));
        CHECK(malloc_usable_size(p) >= sizes[i]);
        fill(p, sizes[i], (unsigned)i);
        held[i] = p;
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        CHECK(intact(held[i], sizes[i], (unsigned)i));
        free(held[i]);
    }
    void *a = malloc(0), *b = malloc(0);
    CHECK(a && b && a != b);
    free(a);
    free(b);
    free(NULL);
    CHECK(malloc_usable_size(NULL) == 0);

    for (size_t n = 1; n <= (8u << 20); n *= 3) {
        unsigned char *p = malloc(n);
        memset(p, 0xab, n);
        free(p);
        unsigned char *z = calloc(1, n);
        CHECK(z != NULL);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) bad += z[i] != 0;
        CHECK(bad == 0);
        free(z);
    }

    errno = 0;
    CHECK(malloc(opaque(SIZE_MAX)) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(malloc(opaque(PTRDIFF_MAX)) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(opaque(SIZE_MAX / 2), 3) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(1 << 20, 1 << 20) == NULL || errno == 0); /* 1 TiB: may fail, with ENOMEM */
}

/* ---- realloc, reallocarray ------------------------------------------- */

/* Failing calls go through volatile pointers: the compiler then does not
 * assume the block was freed (it was not: the calls fail). */
static void *(*volatile realloc_v)(void *, size_t) = realloc;
static void *(*volatile reallocarray_v)(void *, size_t, size_t) = reallocarray;

static void reallocs(void) {
    static const size_t path[] = {10, 24, 200, 5000, 40000, 20000, 900000,
                                  3 << 20, 9 << 20, 2 << 20, 100, 1};
    unsigned char *p = realloc(NULL, 5);
    CHECK(p != NULL);
    fill(p, 5, 1);
    size_t have = 5;
    for (size_t i = 0; i < sizeof path / sizeof path[0]; i++) {
        unsigned char *q = realloc(p, path[i]);
        CHECK(q != NULL && aligned(q, 16));
        CHECK(malloc_usable_size(q) >= path[i]);
        CHECK(intact(q, have < path[i] ? have : path[i], 1));
        fill(q, path[i], 1);
        have = path[i];
        p = q;
    }
    errno = 0;
    CHECK(realloc_v(p, SIZE_MAX - 4096) == NULL && errno == ENOMEM);
    CHECK(intact(p, have, 1)); /* a failed realloc keeps the block */
    errno = 0;
    CHECK(reallocarray_v(p, SIZE_MAX / 2, 4) == NULL && errno == ENOMEM);
    CHECK(intact(p, have, 1));
    unsigned char *r = reallocarray(p, 1000, 8);
    CHECK(r != NULL && intact(r, have, 1) && malloc_usable_size(r) >= 8000);
    CHECK(realloc(r, 0) == NULL); /* glibc: frees, returns NULL */

    /* an aligned block moves to an ordinary one and keeps its bytes */
    unsigned char *al = aligned_alloc(1 << 16, 300);
    fill(al, 300, 9);
    unsigned char *moved = realloc(al, 100000);
    CHECK(moved != NULL && intact(moved, 300, 9));
    free(moved);
}

/* ---- alignment families ----------------------------------------------- */

static void alignments(void) {
    long page = sysconf(_SC_PAGESIZE);
    for (size_t a = sizeof(void *); a <= (64u << 20); a *= 2) {
        void *p = NULL;
        CHECK(posix_memalign(&p, a, 100) == 0 && p != NULL && aligned(p, a));
        memset(p, 1, 100);
        free(p);
        p = aligned_alloc(a, 3 * a);
        CHECK(p != NULL && aligned(p, a));
        memset(p, 2, 3 * a);
        free(p);
        p = memalign(a, 1);
        CHECK(p != NULL && aligned(p, a));
        free(p);
    }
    void *p = (void *)1;
    CHECK(posix_memalign(&p, 0, 8) == EINVAL && p == (void *)1);
    CHECK(posix_memalign(&p, 4, 8) == EINVAL);  /* below sizeof(void *) */
    CHECK(posix_memalign(&p, 24, 8) == EINVAL); /* not a power of two */
    CHECK(posix_memalign(&p, 64, opaque(SIZE_MAX - 100)) == ENOMEM && p == (void *)1);
    CHECK(posix_memalign(&p, 64, 0) == 0 && p != NULL && aligned(p, 64));
    free(p);
    errno = 0;
    CHECK(aligned_alloc(24, 48) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(aligned_alloc(0, 48) == NULL && errno == EINVAL);
    p = memalign(48, 10); /* glibc rounds the alignment up to 64 */
    CHECK(p != NULL && aligned(p, 64));
    free(p);
    errno = 0;
    CHECK(memalign(SIZE_MAX / 2 + 2, 10) == NULL && errno == EINVAL);

    p = valloc(10);
    CHECK(p != NULL && aligned(p, (size_t)page));
    free(p);
    p = pvalloc(page + 1);
    CHECK(p != NULL && aligned(p, (size_t)page) && malloc_usable_size(p) >= 2 * (size_t)page);
    free(p);
    p = pvalloc(0);
    CHECK(p != NULL && aligned(p, (size_t)page) && malloc_usable_size(p) >= (size_t)page);
    free(p);
    errno = 0;
    CHECK(pvalloc(opaque(SIZE_MAX - 10)) == NULL && errno == ENOMEM);
    CHECK(malloc_trim(0) == 1);
}

/* ---- threads ---------------------------------------------------------- */

#define RING 256
struct ring {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    void *slot[RING];
    size_t head, tail;
    int done;
};

static pthread_key_t late_key;

/* thread-specific-data destructor running after hotpool's own */
static void late_destructor(void *v) {
    free(v);
    void *p = malloc(300);
    memset(p, 3, 300);
    free(p);
}

static void *producer(void *arg) {
    struct ring *r = arg;
    pthread_setspecific(late_key, malloc(40));
    for (unsigned i = 0; i < 20000; i++) {
        size_t n = 8 + (i * 2654435761u) % 3000;
        unsigned char *p = malloc(n);
        p[0] = (unsigned char)n;
        p[n - 1] = (unsigned char)i;
        pthread_mutex_lock(&r->lock);
        while (r->head - r->tail == RING) pthread_cond_wait(&r->cond, &r->lock);
        r->slot[r->head++ % RING] = p;
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
        void *own = malloc(n / 2 + 1);
        free(own);
    }
    pthread_mutex_lock(&r->lock);
    r->done = 1;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

static void *consumer(void *arg) {
    struct ring *r = arg;
    size_t got = 0;
    pthread_setspecific(late_key, malloc(40));
    for (;;) {
        pthread_mutex_lock(&r->lock);
        while (r->head == r->tail && !r->done) pthread_cond_wait(&r->cond, &r->lock);
        if (r->head == r->tail) {
            pthread_mutex_unlock(&r->lock);
            break;
        }
        void *p = r->slot[r->tail++ % RING];
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
        free(p); /* freed by another thread than its allocator */
        got++;
    }
    return (void *)got;
}

static void *short_lived(void *arg) {
    (void)arg;
    void *keep[64];
    for (int i = 0; i < 64; i++) keep[i] = malloc((size_t)(i * 97 % 20000) + 1);
    for (int i = 0; i < 64; i++) free(keep[i]);
    pthread_setspecific(late_key, malloc(16));
    return NULL;
}

static void threads(void) {
    CHECK(pthread_key_create(&late_key, late_destructor) == 0);
    /* waves of short-lived threads: caches made, flushed and reused */
    for (int wave = 0; wave < 40; wave++) {
        pthread_t t[16];
        for (int i = 0; i < 16; i++) CHECK(pthread_create(&t[i], NULL, short_lived, NULL) == 0);
        for (int i = 0; i < 16; i++) pthread_join(t[i], NULL);
    }
    /* producer/consumer pairs: every object freed by another thread */
    struct ring rings[4];
    pthread_t prod[4], cons[4];
    for (int i = 0; i < 4; i++) {
        memset(&rings[i], 0, sizeof rings[i]);
        pthread_mutex_init(&rings[i].lock, NULL);
        pthread_cond_init(&rings[i].cond, NULL);
        CHECK(pthread_create(&cons[i], NULL, consumer, &rings[i]) == 0);
        CHECK(pthread_create(&prod[i], NULL, producer, &rings[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        void *got;
        pthread_join(prod[i], NULL);
        pthread_join(cons[i], &got);
        CHECK((size_t)got == 20000);
    }
}

/* ---- fork ------------------------------------------------------------- */

static volatile int churn_stop;

static void *churn(void *arg) {
    (void)arg;
    while (!churn_stop) {
        void *p[32];
        for (int i = 0; i < 32; i++) p[i] = malloc((size_t)(i * 331 % 70000) + 1);
        for (int i = 0; i < 32; i++) free(p[i]);
    }
    return NULL;
}

static void forks(void) {
    pthread_t t[3];
    for (int i = 0; i < 3; i++) CHECK(pthread_create(&t[i], NULL, churn, NULL) == 0);
    for (int round = 0; round < 20; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            /* the child: one thread, locks released by the atfork handlers */
            int ok = 1;
            for (int i = 0; i < 2000; i++) {
                unsigned char *p = malloc((size_t)(i * 53 % 50000) + 1);
                if (!p) ok = 0;
                else p[0] = 1;
                free(p);
            }
            void *big = malloc(3 << 20);
            ok &= big != NULL;
            free(big);
            exit(ok ? 0 : 3); /* runs atexit handlers, which allocate */
        }
        int status = 0;
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    churn_stop = 1;
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
}

/* ---- exit ------------------------------------------------------------- */

static void at_exit_allocates(void) {
    char *p = malloc(64);
    strcpy(p, "atexit");
    free(realloc(p, 5000));
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "foreign") == 0) {
        static char not_heap[64];
        free((void *)opaque((size_t)(not_heap + 16)));
        fprintf(stderr, "exercise: free of a foreign pointer returned\n");
        return 1;
    }
    atexit(at_exit_allocates);
    interposed();
    basics();
    reallocs();
    alignments();
    threads();
    forks();
    if (failures) {
        fprintf(stderr, "exercise: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("exercise: ok (%d checks)\n", checks);
    return 0;
}
