/* xmalloc-style producer/consumer (after Lever & Boreham's xmalloc-test):
 * producers allocate blocks of 16..256 bytes, write them, and pass them in
 * batches of 256 through a shared queue to consumers, which read and free
 * them: every block is freed by another thread than its allocator.
 * Usage: xmalloc [producers=1] [consumers=1] [blocks per producer=20000000] */
#include "common.h"

enum { BATCH = 256, DEPTH = 64 };

struct batch {
    void *blocks[BATCH];
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    struct batch *queue[DEPTH];
    long head, tail, producers_left;
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0, 0};

static long per_producer;

static void push(struct batch *b) {
    pthread_mutex_lock(&q.lock);
    while (q.tail - q.head == DEPTH) pthread_cond_wait(&q.changed, &q.lock);
    q.queue[q.tail++ % DEPTH] = b;
    pthread_cond_broadcast(&q.changed);
    pthread_mutex_unlock(&q.lock);
}

static struct batch *pop(void) {
    pthread_mutex_lock(&q.lock);
    while (q.tail == q.head && q.producers_left) pthread_cond_wait(&q.changed, &q.lock);
    struct batch *b = q.tail == q.head ? NULL : q.queue[q.head++ % DEPTH];
    pthread_cond_broadcast(&q.changed);
    pthread_mutex_unlock(&q.lock);
    return b;
}

static void *producer(void *arg) {
    uint64_t rng = 1 + (uintptr_t)arg;
    for (long done = 0; done < per_producer; done += BATCH) {
        struct batch *b = xmalloc(sizeof *b);
        for (int i = 0; i < BATCH; i++) {
            size_t n = 16 + (next_rand(&rng) & 255) * 15 / 16;
            unsigned char *p = xmalloc(n);
            p[0] = (unsigned char)n;
            p[n - 1] = (unsigned char)i;
            b->blocks[i] = p;
        }
        push(b);
    }
    pthread_mutex_lock(&q.lock);
    q.producers_left--;
    pthread_cond_broadcast(&q.changed);
    pthread_mutex_unlock(&q.lock);
    return NULL;
}

static void *consumer(void *arg) {
    uint64_t *sum = arg;
    struct batch *b;
    while ((b = pop())) {
        for (int i = 0; i < BATCH; i++) {
            *sum += *(unsigned char *)b->blocks[i];
            free(b->blocks[i]);
        }
        free(b);
    }
    return NULL;
}

int main(int argc, char **argv) {
    long producers = arg(argc, argv, 1, 1), consumers = arg(argc, argv, 2, 1);
    per_producer = arg(argc, argv, 3, 20000000);
    q.producers_left = producers;
    pthread_t tid[64];
    uint64_t sums[64] = {0}, sum = 0;
    double t0 = now();
    for (long i = 0; i < producers; i++) pthread_create(&tid[i], NULL, producer, (void *)(uintptr_t)i);
    for (long i = 0; i < consumers; i++) pthread_create(&tid[producers + i], NULL, consumer, &sums[i]);
    for (long i = 0; i < producers + consumers; i++) pthread_join(tid[i], NULL);
    double elapsed = now() - t0;
    for (long i = 0; i < consumers; i++) sum += sums[i];
    printf("xmalloc %.3f %llu (%.1f M blocks/s)\n", elapsed, (unsigned long long)sum,
           (double)(producers * per_producer) / elapsed / 1e6);
    return 0;
}
