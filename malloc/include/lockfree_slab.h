/*
 * lockfree-slab as C's malloc: the entry points liblockfree_slab_malloc.so
 * (and a Rust binary linking lockfree-slab-malloc) exports besides the
 * standard ones.
 *
 * The standard family -- malloc, free, calloc, realloc, reallocarray,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc,
 * malloc_usable_size -- is exported under its usual names (feature
 * `override`, on by default) with glibc's semantics; declare them with
 * <stdlib.h> and <malloc.h>. Requests the slab does not serve (larger than
 * its largest class, 256 KiB; aligned beyond a page; a class used up) are
 * served by glibc's own allocator, and freed there again.
 *
 * LOCKFREE_SLAB_STATS=1 in the environment prints the stats table to
 * stderr when the process exits.
 *
 * A program that may also run without the library can look these up at
 * run time instead of linking them:
 *     int (*stats)(struct lockfree_slab_stats *) =
 *         (int (*)(struct lockfree_slab_stats *))dlsym(RTLD_DEFAULT, "lockfree_slab_stats");
 */
#ifndef LOCKFREE_SLAB_H
#define LOCKFREE_SLAB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A snapshot of the slab's counters, summed over its size classes. Blocks
 * glibc served are not counted. While other threads allocate, the fields
 * are a mix of slightly different moments; when none does, carved ==
 * in_use + in_caches + free_in_stacks exactly. */
struct lockfree_slab_stats {
    uint64_t allocations;     /* blocks handed out, since the start */
    uint64_t frees;           /* blocks given back, since the start */
    uint64_t in_use;          /* blocks handed out and not freed yet */
    uint64_t bytes_in_use;    /* their bytes (whole blocks) */
    uint64_t in_caches;       /* free blocks held in threads' caches */
    uint64_t free_in_stacks;  /* free blocks on the shared stacks */
    uint64_t carved;          /* blocks carved from the region so far */
    uint64_t requested_bytes; /* bytes the allocations asked for: 0, counted only with checks on */
    uint64_t cache_hits;      /* allocations served from a thread's cache */
    uint64_t cached_threads;  /* threads holding a cache slot now */
    uint64_t capacity_bytes;  /* the pool's capacity */
    uint64_t reserved_bytes;  /* address space reserved */
};

/* Fills *out (if not NULL). Returns 1 if the slab serves requests (the
 * first call of any entry point builds it), 0 if not (its region could not
 * be reserved: glibc then serves everything, and *out is all zeros). */
int lockfree_slab_stats(struct lockfree_slab_stats *out);

/* Prints the stats table to stderr, as LOCKFREE_SLAB_STATS=1 does at exit. */
void lockfree_slab_stats_print(void);

/* Returns the calling thread's cached free blocks to the shared stacks.
 * Threads do this by themselves when they exit (pthread threads too). */
void lockfree_slab_flush_thread_cache(void);

/* Gives the physical memory of pages holding only free blocks back to the
 * OS (their addresses stay reserved); returns the bytes of RSS released.
 * Safe while other threads allocate. */
size_t lockfree_slab_trim(void);

/* 1 if ptr is a block the slab handed out, 0 otherwise (NULL, glibc's). */
int lockfree_slab_owns(const void *ptr);

#ifdef __cplusplus
}
#endif

#endif /* LOCKFREE_SLAB_H */
