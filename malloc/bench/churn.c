/* Mixed-size churn: each thread keeps a working set of live blocks and
 * replaces a random one per step, with sizes from a skewed mix (most
 * 8..128 B, some 128 B..4 KiB, a few 4..64 KiB, rare 64..512 KiB), a tenth
 * of them by realloc and a tenth by calloc; every block's first and last
 * byte are written and read back.
 * Usage: churn [threads=2] [steps per thread=12000000] [live blocks=20000] */
#include "common.h"

static long steps, live;

static size_t pick(uint64_t *rng) {
    uint64_t r = next_rand(rng);
    unsigned bucket = (unsigned)(r % 1000);
    r >>= 10;
    if (bucket < 800) return 8 + r % 121;
    if (bucket < 970) return 128 + r % 3969;
    if (bucket < 998) return 4096 + r % 61441;
    return 65536 + r % 458753;
}

static void *run(void *arg) {
    uint64_t rng = 12345 + (uintptr_t)arg * 7919, sum = 0;
    unsigned char **blocks = calloc((size_t)live, sizeof *blocks);
    size_t *lens = calloc((size_t)live, sizeof *lens);
    for (long s = 0; s < steps; s++) {
        long i = (long)(next_rand(&rng) % (uint64_t)live);
        size_t n = pick(&rng);
        unsigned kind = (unsigned)(next_rand(&rng) % 10);
        if (blocks[i]) sum += blocks[i][0] + blocks[i][lens[i] - 1];
        if (kind == 0 && blocks[i]) {
            blocks[i] = realloc(blocks[i], n);
        } else {
            free(blocks[i]);
            blocks[i] = kind == 1 ? calloc(1, n) : malloc(n);
        }
        if (!blocks[i]) {
            fprintf(stderr, "allocation of %zu failed\n", n);
            exit(1);
        }
        blocks[i][0] = (unsigned char)s;
        blocks[i][n - 1] = (unsigned char)(s >> 8);
        lens[i] = n;
    }
    for (long i = 0; i < live; i++) free(blocks[i]);
    free(blocks);
    free(lens);
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
    long threads = arg(argc, argv, 1, 2);
    steps = arg(argc, argv, 2, 12000000);
    live = arg(argc, argv, 3, 20000);
    pthread_t tid[64];
    uint64_t sum = 0;
    double t0 = now();
    for (long t = 0; t < threads; t++) pthread_create(&tid[t], NULL, run, (void *)(uintptr_t)t);
    for (long t = 0; t < threads; t++) {
        void *r;
        pthread_join(tid[t], &r);
        sum += (uintptr_t)r;
    }
    printf("churn %.3f %llu\n", now() - t0, (unsigned long long)sum);
    return 0;
}
