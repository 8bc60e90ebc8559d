/* Threads of a C program (pthread_create, which runs no Rust code of its
 * own):
 * 1. producer -> consumer: producers allocate blocks of mixed sizes and
 *    fill them with a pattern tagged by (producer, sequence); consumers
 *    check every byte, then free them, so nearly every block is freed by
 *    another thread than the one that allocated it;
 * 2. 1,000 threads created and joined, each allocating and freeing;
 * 3. after the joins, the exited threads' caches are back on the shared
 *    stacks: in_caches and cached_threads drop to what the main thread
 *    holds. (lockfree_slab_stats allocates its snapshot through malloc, so
 *    right after a flush the main thread holds one slot and one refill
 *    again: the baseline is measured the same way before any thread.) */
#include "common.h"

#include <pthread.h>

enum { PRODUCERS = 2, CONSUMERS = 2, PER_PRODUCER = 200000, RING = 1024 };

struct message {
    unsigned char *block;
    size_t size;
    uint64_t seed;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_full, not_empty;
    struct message slots[RING];
    size_t head, tail; /* head: next to take; tail: next to fill */
    int producers_left;
} ring = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {{0}}, 0, 0, PRODUCERS};

static void put(struct message m) {
    pthread_mutex_lock(&ring.lock);
    while (ring.tail - ring.head == RING) pthread_cond_wait(&ring.not_full, &ring.lock);
    ring.slots[ring.tail++ % RING] = m;
    pthread_cond_signal(&ring.not_empty);
    pthread_mutex_unlock(&ring.lock);
}

/* 0 when every producer is done and the ring is empty. */
static int take(struct message *m) {
    pthread_mutex_lock(&ring.lock);
    while (ring.tail == ring.head && ring.producers_left > 0) pthread_cond_wait(&ring.not_empty, &ring.lock);
    int got = ring.tail != ring.head;
    if (got) {
        *m = ring.slots[ring.head++ % RING];
        pthread_cond_signal(&ring.not_full);
    }
    pthread_mutex_unlock(&ring.lock);
    return got;
}

static void *producer(void *arg) {
    uint64_t id = (uint64_t)(uintptr_t)arg, rng = 0x1234567 + id;
    for (uint64_t i = 0; i < PER_PRODUCER; i++) {
        uint64_t r = next_rand(&rng);
        /* Mostly small, some up to 4 KiB, a few beyond the slab (64 KiB). */
        size_t size = r % 100 < 90 ? 1 + r % 256 : r % 100 < 99 ? 1 + r % 4096 : 40000 + r % 30000;
        unsigned char *block = malloc(size);
        CHECK(block != NULL, "malloc(%zu)", size);
        uint64_t seed = id << 32 | i;
        fill(block, size, seed);
        put((struct message){block, size, seed});
    }
    pthread_mutex_lock(&ring.lock);
    ring.producers_left--;
    pthread_cond_broadcast(&ring.not_empty);
    pthread_mutex_unlock(&ring.lock);
    return NULL;
}

static uint64_t consumed[CONSUMERS];

static void *consumer(void *arg) {
    size_t id = (size_t)(uintptr_t)arg;
    struct message m;
    while (take(&m)) {
        size_t bad = verify(m.block, m.size, m.seed);
        CHECK(bad == m.size, "block %p of %zu bytes (seed %llx) damaged at byte %zu", (void *)m.block, m.size,
              (unsigned long long)m.seed, bad);
        free(m.block);
        consumed[id]++;
    }
    return NULL;
}

static void *churn(void *arg) {
    uint64_t rng = 99 + (uintptr_t)arg;
    void *held[32];
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 32; i++) {
            size_t size = 1 + next_rand(&rng) % 512;
            held[i] = malloc(size);
            CHECK(held[i] != NULL, "malloc(%zu)", size);
            fill(held[i], size, (uint64_t)size);
            *(size_t *)held[i] = size;
        }
        for (int i = 0; i < 32; i++) free(held[i]);
    }
    return NULL;
}

int main(void) {
    struct slab_api api = slab_api();
    /* Twice: the main thread's very first allocation registers it, which
     * the second measurement, like the last, does not repeat. */
    api.flush();
    struct lockfree_slab_stats base = slab_stats(&api);
    api.flush();
    base = slab_stats(&api);

    pthread_t threads[PRODUCERS + CONSUMERS];
    for (uintptr_t i = 0; i < PRODUCERS; i++) CHECK(pthread_create(&threads[i], NULL, producer, (void *)i) == 0, "create");
    for (uintptr_t i = 0; i < CONSUMERS; i++)
        CHECK(pthread_create(&threads[PRODUCERS + i], NULL, consumer, (void *)i) == 0, "create");
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++) pthread_join(threads[i], NULL);
    uint64_t total = 0;
    for (int i = 0; i < CONSUMERS; i++) total += consumed[i];
    CHECK(total == (uint64_t)PRODUCERS * PER_PRODUCER, "consumed %llu of %llu", (unsigned long long)total,
          (unsigned long long)PRODUCERS * PER_PRODUCER);

    /* 1,000 threads, at most 8 alive at once, created and joined. */
    enum { WAVE = 8, TOTAL = 1000 };
    for (int started = 0; started < TOTAL; started += WAVE) {
        pthread_t wave[WAVE];
        for (int i = 0; i < WAVE; i++) CHECK(pthread_create(&wave[i], NULL, churn, (void *)(uintptr_t)(started + i)) == 0, "create");
        for (int i = 0; i < WAVE; i++) CHECK(pthread_join(wave[i], NULL) == 0, "join");
    }

    /* Every exited thread flushed its cache: once the main thread flushes
     * its own, what is cached is what the snapshot itself caused. */
    api.flush();
    struct lockfree_slab_stats s = slab_stats(&api);
    CHECK(s.in_caches == base.in_caches, "%llu blocks cached after every thread exited (baseline %llu)",
          (unsigned long long)s.in_caches, (unsigned long long)base.in_caches);
    CHECK(s.cached_threads == base.cached_threads && s.cached_threads <= 1, "%llu threads hold a cache slot",
          (unsigned long long)s.cached_threads);
    CHECK(s.carved == s.in_use + s.in_caches + s.free_in_stacks, "accounting: carved %llu != %llu + %llu + %llu",
          (unsigned long long)s.carved, (unsigned long long)s.in_use, (unsigned long long)s.in_caches,
          (unsigned long long)s.free_in_stacks);
    printf("ok threads: %llu messages across threads, %d threads joined; %llu allocations, %llu in use, %llu cached\n",
           (unsigned long long)total, TOTAL, (unsigned long long)s.allocations, (unsigned long long)s.in_use,
           (unsigned long long)s.in_caches);
    return 0;
}
