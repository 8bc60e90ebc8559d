/* larson-style server simulation (after Larson & Krishnan's benchmark):
 * each thread owns a chunk of slots holding live blocks of 16..1024 bytes;
 * each step frees a random slot's block and allocates a new one there. At
 * the end of each round every thread exits and a new one takes over the
 * *next* thread's chunk, so blocks are freed by other threads than the ones
 * that allocated them, and thread creation/exit is part of the load.
 * Usage: larson [threads=2] [rounds=100] [slots per thread=2000]
 *        [steps per round=200000] */
#include "common.h"

static void **slots;
static size_t *lens;
static long per_thread, steps;

struct job {
    long first;
    uint64_t seed;
    uint64_t sum;
};

static void *run(void *p) {
    struct job *job = p;
    uint64_t rng = job->seed, sum = 0;
    for (long s = 0; s < steps; s++) {
        long i = job->first + (long)(next_rand(&rng) % (uint64_t)per_thread);
        if (slots[i]) {
            sum += ((unsigned char *)slots[i])[lens[i] - 1];
            free(slots[i]);
        }
        size_t n = 16 + next_rand(&rng) % 1009;
        unsigned char *b = xmalloc(n);
        b[0] = (unsigned char)s;
        b[n - 1] = (unsigned char)(s >> 3);
        slots[i] = b;
        lens[i] = n;
    }
    job->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    long threads = arg(argc, argv, 1, 2), rounds = arg(argc, argv, 2, 100);
    per_thread = arg(argc, argv, 3, 2000);
    steps = arg(argc, argv, 4, 200000);
    long total = threads * per_thread;
    slots = calloc((size_t)total, sizeof *slots);
    lens = calloc((size_t)total, sizeof *lens);
    uint64_t sum = 0;
    double t0 = now();
    for (long r = 0; r < rounds; r++) {
        pthread_t tid[64];
        struct job jobs[64];
        for (long t = 0; t < threads; t++) {
            jobs[t] = (struct job){((t + r) % threads) * per_thread, (uint64_t)(r * 131 + t + 1) * 0x9E3779B97F4A7C15ull, 0};
            pthread_create(&tid[t], NULL, run, &jobs[t]);
        }
        for (long t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            sum += jobs[t].sum;
        }
    }
    double elapsed = now() - t0;
    for (long i = 0; i < total; i++) free(slots[i]);
    printf("larson %.3f %llu (%.1f Mops/s)\n", elapsed, (unsigned long long)sum,
           2.0 * (double)(threads * rounds * steps) / elapsed / 1e6);
    return 0;
}
