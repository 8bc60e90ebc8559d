/* Shared by the benchmark programs: a clock, a seeded generator, and a
 * checksum sink so no work is optimised away. Each program prints one line:
 * "<name> <seconds> <checksum>"; run.sh takes wall time and peak RSS from
 * /usr/bin/time. */
#ifndef LOCKFREE_SLAB_BENCH_COMMON_H
#define LOCKFREE_SLAB_BENCH_COMMON_H

#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static inline uint64_t next_rand(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static inline void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "malloc(%zu) failed\n", n);
        exit(1);
    }
    return p;
}

static inline long arg(int argc, char **argv, int i, long fallback) {
    return argc > i ? atol(argv[i]) : fallback;
}

#endif
