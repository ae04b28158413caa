/* A cfrac-like big-number workload (mimalloc-bench's cfrac factors with
 * continued fractions through a bignum library that allocates every
 * result): expands sqrt(N) as a continued fraction for a 120-bit N in
 * heap-allocated bignums, each operation allocating its result and the
 * operands freed as soon as they are dead, and tries each residue Q_k
 * against a factor base of small primes (every trial division allocates
 * its quotient). Blocks are tiny (16-48 B) and short-lived. Prints how
 * many residues were smooth and a checksum.
 *
 *   cfrac STEPS
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A natural number: n limbs of 32 bits, least significant first. */
typedef struct { uint32_t n; uint32_t d[]; } num;

static num *make(uint32_t n) {
    num *x = malloc(sizeof(num) + (n ? n : 1) * sizeof(uint32_t));
    x->n = n;
    return x;
}
static num *trim(num *x) { while (x->n && !x->d[x->n - 1]) x->n--; return x; }
static num *from_u64(uint64_t v) {
    num *x = make(2);
    x->d[0] = (uint32_t)v; x->d[1] = (uint32_t)(v >> 32);
    return trim(x);
}
static int cmp(const num *a, const num *b) {
    if (a->n != b->n) return a->n < b->n ? -1 : 1;
    for (uint32_t i = a->n; i-- > 0;)
        if (a->d[i] != b->d[i]) return a->d[i] < b->d[i] ? -1 : 1;
    return 0;
}
static num *add(const num *a, const num *b) {
    if (a->n < b->n) { const num *t = a; a = b; b = t; }
    num *r = make(a->n + 1);
    uint64_t c = 0;
    for (uint32_t i = 0; i < a->n; i++) {
        c += (uint64_t)a->d[i] + (i < b->n ? b->d[i] : 0);
        r->d[i] = (uint32_t)c; c >>= 32;
    }
    r->d[a->n] = (uint32_t)c;
    return trim(r);
}
/* a - b, a >= b */
static num *sub(const num *a, const num *b) {
    num *r = make(a->n);
    int64_t c = 0;
    for (uint32_t i = 0; i < a->n; i++) {
        c += (int64_t)a->d[i] - (i < b->n ? b->d[i] : 0);
        r->d[i] = (uint32_t)c; c = c < 0 ? -1 : 0;
    }
    return trim(r);
}
static num *mul(const num *a, const num *b) {
    num *r = make(a->n + b->n);
    memset(r->d, 0, r->n * sizeof(uint32_t));
    for (uint32_t i = 0; i < a->n; i++) {
        uint64_t c = 0;
        for (uint32_t j = 0; j < b->n; j++) {
            c += (uint64_t)a->d[i] * b->d[j] + r->d[i + j];
            r->d[i + j] = (uint32_t)c; c >>= 32;
        }
        r->d[i + b->n] = (uint32_t)c;
    }
    return trim(r);
}
static uint32_t bits(const num *a) {
    if (!a->n) return 0;
    return 32 * (a->n - 1) + (32 - __builtin_clz(a->d[a->n - 1]));
}
/* q = a / b, returns q and sets *rem = a % b (b > 0): binary long
 * division in a scratch copy; both results newly allocated. */
static num *divmod(const num *a, const num *b, num **rem) {
    num *q = make(a->n), *r = make(b->n + 1);
    memset(q->d, 0, q->n * sizeof(uint32_t));
    r->n = 0;
    for (uint32_t k = bits(a); k-- > 0;) {
        /* r = 2r + bit k of a */
        uint32_t carry = (a->d[k / 32] >> (k % 32)) & 1;
        for (uint32_t i = 0; i < r->n; i++) {
            uint32_t top = r->d[i] >> 31;
            r->d[i] = r->d[i] << 1 | carry; carry = top;
        }
        if (carry) r->d[r->n++] = carry;
        if (cmp(r, b) >= 0) {
            int64_t c = 0;
            for (uint32_t i = 0; i < r->n; i++) {
                c += (int64_t)r->d[i] - (i < b->n ? b->d[i] : 0);
                r->d[i] = (uint32_t)c; c = c < 0 ? -1 : 0;
            }
            trim(r);
            q->d[k / 32] |= 1u << (k % 32);
        }
    }
    *rem = r;
    return trim(q);
}
/* q = a / s for a small s; returns q, sets *rem. */
static num *div_small(const num *a, uint32_t s, uint32_t *rem) {
    num *q = make(a->n);
    uint64_t r = 0;
    for (uint32_t i = a->n; i-- > 0;) {
        r = r << 32 | a->d[i];
        q->d[i] = (uint32_t)(r / s); r %= s;
    }
    *rem = (uint32_t)r;
    return trim(q);
}
static num *isqrt(const num *n) {
    /* Newton from above: x = (x + n/x) / 2 until it stops falling */
    num *x = make(n->n / 2 + 1), *r;
    memset(x->d, 0xff, x->n * sizeof(uint32_t));
    for (;;) {
        num *q = divmod(n, x, &r);
        num *s = add(x, q);
        uint32_t dummy;
        num *y = div_small(s, 2, &dummy);
        free(q); free(r); free(s);
        if (cmp(y, x) >= 0) { free(y); return x; }
        free(x); x = y;
    }
}

int main(int argc, char **argv) {
    long steps = argc > 1 ? atol(argv[1]) : 200000;
    /* N = p * q, two 60-bit primes' product, as cfrac's inputs are */
    num *p = from_u64(1152921504606846883ull), *q = from_u64(1152921504606846803ull);
    num *n = mul(p, q);
    free(p); free(q);
    static const uint32_t base[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47,
        53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137, 139};
    num *a0 = isqrt(n), *m = from_u64(0), *d = from_u64(1), *a = from_u64(0);
    free(a); a = add(a0, m);
    /* convergent numerators mod n: P_{-1} = 1, P_0 = a0 */
    num *p1 = from_u64(1), *p2 = add(a0, m), *r;
    long smooth = 0;
    unsigned long long sum = 0;
    for (long k = 0; k < steps; k++) {
        /* m' = d a - m; d' = (n - m'^2) / d; a' = (a0 + m') / d' */
        num *da = mul(d, a);
        num *m2 = sub(da, m);
        free(da); free(m);
        m = m2;
        num *mm = mul(m, m);
        num *t = sub(n, mm);
        num *d2 = divmod(t, d, &r);
        free(mm); free(t); free(r); free(d);
        d = d2;
        num *s = add(a0, m);
        free(a);
        a = divmod(s, d, &r);
        free(s); free(r);
        /* P_k = a P_{k-1} + P_{k-2} mod n */
        num *ap = mul(a, p2);
        num *pn = add(ap, p1);
        num *pr;
        num *qq = divmod(pn, n, &pr);
        free(ap); free(pn); free(qq); free(p1);
        p1 = p2; p2 = pr;
        /* is Q_k = d smooth over the factor base? */
        num *left = make(d->n);
        memcpy(left->d, d->d, d->n * sizeof(uint32_t));
        for (size_t i = 0; i < sizeof base / sizeof *base && left->n; i++) {
            for (;;) {
                uint32_t rem;
                num *qd = div_small(left, base[i], &rem);
                if (rem) { free(qd); break; }
                free(left); left = qd;
            }
        }
        if (left->n == 1 && left->d[0] == 1) smooth++;
        sum += p2->n ? p2->d[0] : 0;
        free(left);
    }
    printf("cfrac: %ld smooth, %llu\n", smooth, sum);
    free(n); free(a0); free(m); free(d); free(a); free(p1); free(p2);
    return 0;
}
