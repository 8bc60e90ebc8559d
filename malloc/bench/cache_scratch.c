/* cache-scratch (after Hoard's benchmark): the main thread allocates one
 * small object per thread, back to back, and hands each to a thread, which
 * frees it and then, repeatedly, allocates a small object, writes it many
 * times and frees it. An allocator that gives the freed objects back to
 * other threads makes them write to the same cache line (false sharing).
 * Usage: cache_scratch [threads=2] [iterations=300000] [object=8]
 *        [writes=500] */
#include "common.h"

static long iterations, writes;
static size_t object;

static void *run(void *arg) {
    free(arg);
    uint64_t sum = 0;
    for (long i = 0; i < iterations; i++) {
        volatile unsigned char *p = xmalloc(object);
        for (size_t k = 0; k < object; k++) p[k] = 0;
        for (long w = 0; w < writes; w++) {
            for (size_t k = 0; k < object; k++) p[k] = (unsigned char)(p[k] + w + k);
        }
        sum += p[0];
        free((void *)p);
    }
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
    long threads = arg(argc, argv, 1, 2);
    iterations = arg(argc, argv, 2, 300000);
    object = (size_t)arg(argc, argv, 3, 8);
    writes = arg(argc, argv, 4, 500);
    pthread_t tid[64];
    void *first[64];
    for (long t = 0; t < threads; t++) first[t] = xmalloc(object);
    uint64_t sum = 0;
    double t0 = now();
    for (long t = 0; t < threads; t++) pthread_create(&tid[t], NULL, run, first[t]);
    for (long t = 0; t < threads; t++) {
        void *r;
        pthread_join(tid[t], &r);
        sum += (uintptr_t)r;
    }
    double elapsed = now() - t0;
    printf("cache_scratch %.3f %llu\n", elapsed, (unsigned long long)sum);
    return 0;
}
