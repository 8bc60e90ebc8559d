/* Shared by the C tests: checks that exit with a message, the slab's own
 * entry points looked up at run time (the tests are linked against nothing
 * but libc and run under LD_PRELOAD), and byte patterns. */
#ifndef LOCKFREE_SLAB_TEST_COMMON_H
#define LOCKFREE_SLAB_TEST_COMMON_H

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../include/lockfree_slab.h"

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
            exit(1);                                                              \
        }                                                                         \
    } while (0)

/* The slab's extension entry points, found in whatever is loaded: only the
 * slab defines these names, so no lookup order matters. */
struct slab_api {
    int (*stats)(struct lockfree_slab_stats *);
    int (*owns)(const void *);
    void (*flush)(void);
    size_t (*trim)(void);
};

static inline struct slab_api slab_api(void) {
    struct slab_api api;
    api.stats = (int (*)(struct lockfree_slab_stats *))dlsym(RTLD_DEFAULT, "lockfree_slab_stats");
    api.owns = (int (*)(const void *))dlsym(RTLD_DEFAULT, "lockfree_slab_owns");
    api.flush = (void (*)(void))dlsym(RTLD_DEFAULT, "lockfree_slab_flush_thread_cache");
    api.trim = (size_t (*)(void))dlsym(RTLD_DEFAULT, "lockfree_slab_trim");
    CHECK(api.stats && api.owns && api.flush && api.trim,
          "the slab's entry points are missing: run under LD_PRELOAD=liblockfree_slab_malloc.so");
    return api;
}

static inline struct lockfree_slab_stats slab_stats(const struct slab_api *api) {
    struct lockfree_slab_stats s;
    CHECK(api->stats(&s) == 1, "the slab is not serving requests");
    return s;
}

/* The byte at offset i of a block tagged `seed`. */
static inline unsigned char pattern(uint64_t seed, size_t i) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + i;
    x ^= x >> 29;
    return (unsigned char)(x * 0xBF58476D1CE4E5B9ull >> 56);
}

static inline void fill(void *p, size_t n, uint64_t seed) {
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++) b[i] = pattern(seed, i);
}

/* The first offset that does not hold the pattern, or n. */
static inline size_t verify(const void *p, size_t n, uint64_t seed) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != pattern(seed, i)) return i;
    return n;
}

/* xorshift64*: deterministic sizes. */
static inline uint64_t next_rand(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

#endif
