/* Every entry point of the family, with glibc's semantics: alignment,
 * errno, zero sizes, realloc chains across classes and into glibc and back,
 * every aligned entry point, and malloc_usable_size honesty (the whole
 * usable size is written and checked, neighbours included). */
#include "common.h"

#include <malloc.h>
#include <stdalign.h>
#include <stddef.h>
#include <unistd.h>

/* Sizes the compiler cannot see through (it would fold or warn about
 * requests it knows must fail). */
static volatile size_t HUGE_SIZE = SIZE_MAX;
static volatile size_t HALF = SIZE_MAX / 2;

static void check_aligned(void *p, size_t align, const char *what, size_t size) {
    CHECK(p != NULL, "%s(%zu) returned NULL", what, size);
    CHECK(((uintptr_t)p & (align - 1)) == 0, "%s(%zu) = %p is not aligned to %zu", what, size, p, align);
}

static void test_malloc_free(const struct slab_api *api) {
    /* Every size up to 64 KiB (step 1 to 1 KiB, then 61): aligned to 16,
     * usable size >= asked, the whole usable size writable without touching
     * the neighbours. */
    enum { LIVE = 64 };
    void *live[LIVE] = {0};
    size_t sizes[LIVE] = {0};
    size_t n = 0;
    for (size_t size = 0; size <= 65536; size += size < 1024 ? 1 : 61, n++) {
        size_t slot = n % LIVE;
        if (live[slot]) {
            size_t usable = malloc_usable_size(live[slot]);
            CHECK(verify(live[slot], usable, sizes[slot]) == usable, "block of %zu lost its contents", sizes[slot]);
            free(live[slot]);
        }
        void *p = malloc(size);
        check_aligned(p, alignof(max_align_t), "malloc", size);
        size_t usable = malloc_usable_size(p);
        CHECK(usable >= size, "malloc_usable_size(malloc(%zu)) = %zu", size, usable);
        fill(p, usable, size);
        live[slot] = p;
        sizes[slot] = size;
    }
    for (size_t i = 0; i < LIVE; i++) {
        size_t usable = malloc_usable_size(live[i]);
        CHECK(verify(live[i], usable, sizes[i]) == usable, "block of %zu lost its contents", sizes[i]);
        free(live[i]);
    }
    /* malloc(0) is a unique, freeable pointer; free(NULL) does nothing. */
    void *a = malloc(0), *b = malloc(0);
    CHECK(a && b && a != b, "malloc(0) gave %p and %p", a, b);
    free(a);
    free(b);
    free(NULL);
    /* Small blocks are the slab's, large ones glibc's. */
    void *small = malloc(100), *large = malloc(1 << 20);
    CHECK(api->owns(small) == 1, "malloc(100) = %p is not the slab's", small);
    CHECK(large && api->owns(large) == 0, "malloc(1 MiB) = %p should be glibc's", large);
    CHECK(malloc_usable_size(large) >= (1 << 20), "glibc's usable size %zu", malloc_usable_size(large));
    free(small);
    free(large);
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL)");
    /* Failure: NULL and ENOMEM. */
    errno = 0;
    CHECK(malloc(HUGE_SIZE) == NULL && errno == ENOMEM, "malloc(HUGE_SIZE): errno %d", errno);
    errno = 0;
    CHECK(malloc(HALF) == NULL && errno == ENOMEM, "malloc(SIZE_MAX/2): errno %d", errno);
}

static void test_calloc(void) {
    for (size_t size = 1; size <= 200000; size = size * 3 / 2 + 1) {
        /* Dirty a block of the same size first, so a reused one shows. */
        void *dirty = malloc(size);
        memset(dirty, 0xAB, size);
        free(dirty);
        unsigned char *p = calloc(1, size);
        check_aligned(p, 16, "calloc", size);
        for (size_t i = 0; i < size; i++) CHECK(p[i] == 0, "calloc(1, %zu)[%zu] = %u", size, i, p[i]);
        free(p);
        p = calloc(size, 3);
        CHECK(p != NULL, "calloc(%zu, 3)", size);
        for (size_t i = 0; i < size * 3; i++) CHECK(p[i] == 0, "calloc(%zu, 3)[%zu]", size, i);
        free(p);
    }
    void *zero = calloc(0, 0);
    CHECK(zero != NULL, "calloc(0, 0) returned NULL");
    free(zero);
    errno = 0;
    CHECK(calloc(HALF, 3) == NULL && errno == ENOMEM, "calloc overflow: errno %d", errno);
    errno = 0;
    CHECK(calloc(1, HUGE_SIZE) == NULL && errno == ENOMEM, "calloc(1, HUGE_SIZE): errno %d", errno);
}

static void test_realloc(void) {
    /* A chain that grows from 1 B to 256 KiB (slab classes, then glibc) and
     * shrinks back; the contents survive every step. */
    size_t size = 1;
    unsigned char *p = realloc(NULL, size); /* realloc(NULL, n) is malloc(n) */
    CHECK(p != NULL, "realloc(NULL, 1)");
    fill(p, size, 7);
    for (int round = 0; round < 2; round++) {
        while (size < (256 << 10)) {
            size_t next = size * 5 / 4 + 3;
            p = realloc(p, next);
            check_aligned(p, 16, "realloc", next);
            CHECK(verify(p, size, 7) == size, "realloc to %zu lost bytes", next);
            fill(p, next, 7);
            size = next;
        }
        while (size > 1) {
            size_t next = size * 2 / 3;
            p = realloc(p, next);
            check_aligned(p, 16, "realloc", next);
            CHECK(verify(p, next, 7) == next, "realloc down to %zu lost bytes", next);
            size = next;
        }
    }
    /* Same class: stays in place. */
    unsigned char *q = malloc(100);
    size_t usable = malloc_usable_size(q);
    unsigned char *same = realloc(q, usable);
    CHECK(same == q, "realloc within the block moved it");
    /* realloc(p, 0) frees and returns NULL, as glibc. */
    CHECK(realloc(same, 0) == NULL, "realloc(p, 0) should free and return NULL");
    CHECK(realloc(p, 0) == NULL, "realloc(p, 0) should free and return NULL");
    /* Failure leaves the block valid. */
    q = malloc(64);
    fill(q, 64, 9);
    errno = 0;
    CHECK(realloc(q, HALF) == NULL && errno == ENOMEM, "realloc(huge): errno %d", errno);
    CHECK(verify(q, 64, 9) == 64, "failed realloc damaged the block");
    /* reallocarray: overflow is ENOMEM and the block stays. */
    errno = 0;
    CHECK(reallocarray(q, HALF, 4) == NULL && errno == ENOMEM, "reallocarray overflow: errno %d", errno);
    q = reallocarray(q, 100, 8);
    CHECK(q && verify(q, 64, 9) == 64, "reallocarray lost bytes");
    free(q);
    /* A glibc block (1 MiB) shrunk to a small size stays valid. */
    q = malloc(1 << 20);
    fill(q, 1 << 20, 11);
    q = realloc(q, 32);
    CHECK(q && verify(q, 32, 11) == 32, "shrinking a glibc block lost bytes");
    q = realloc(q, 3 << 20);
    CHECK(q && verify(q, 32, 11) == 32, "growing it again lost bytes");
    free(q);
}

static void test_aligned(const struct slab_api *api) {
    const size_t sizes[] = {0, 1, 8, 16, 24, 100, 1000, 4095, 4096, 5000, 40000, 300000};
    for (size_t align = 1; align <= (1 << 16); align <<= 1) {
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            size_t size = sizes[i];
            size_t want = align < 16 ? 16 : align;
            void *p = NULL;
            if (align >= sizeof(void *)) {
                CHECK(posix_memalign(&p, align, size) == 0, "posix_memalign(%zu, %zu)", align, size);
                check_aligned(p, want, "posix_memalign", size);
                CHECK(malloc_usable_size(p) >= size, "posix_memalign usable size");
                fill(p, size, align + size);
                CHECK(verify(p, size, align + size) == size, "posix_memalign block");
                free(p);
            }
            p = aligned_alloc(align, size);
            check_aligned(p, want, "aligned_alloc", size);
            CHECK(malloc_usable_size(p) >= size, "aligned_alloc usable size");
            memset(p, 0x5A, size);
            free(p);
            p = memalign(align, size);
            check_aligned(p, want, "memalign", size);
            memset(p, 0x5A, size);
            free(p);
        }
    }
    /* Page alignment up to a class is served by the slab. */
    void *page = aligned_alloc(4096, 100);
    CHECK(api->owns(page) == 1, "aligned_alloc(4096, 100) should be the slab's");
    free(page);
    /* Errors. */
    void *p = (void *)1;
    CHECK(posix_memalign(&p, 3, 10) == EINVAL && p == (void *)1, "posix_memalign(3): EINVAL, *out untouched");
    CHECK(posix_memalign(&p, 4, 10) == EINVAL, "posix_memalign(4) (not a multiple of sizeof(void *))");
    CHECK(posix_memalign(&p, 0, 10) == EINVAL, "posix_memalign(0)");
    CHECK(posix_memalign(&p, 64, HALF) == ENOMEM, "posix_memalign(huge)");
    errno = 0;
    CHECK(aligned_alloc(48, 10) == NULL && errno == EINVAL, "aligned_alloc(48): EINVAL, got %d", errno);
    errno = 0;
    CHECK(memalign(HALF + 2, 10) == NULL && errno == EINVAL, "memalign(> SIZE_MAX/2+1): EINVAL");
    /* memalign rounds a non-power of two up. */
    p = memalign(48, 10);
    check_aligned(p, 64, "memalign(48)", 10);
    free(p);
    size_t pagesize = (size_t)sysconf(_SC_PAGESIZE);
    p = valloc(10);
    check_aligned(p, pagesize, "valloc", 10);
    free(p);
    p = pvalloc(10);
    check_aligned(p, pagesize, "pvalloc", 10);
    CHECK(malloc_usable_size(p) >= pagesize, "pvalloc rounds up to a page: usable %zu", malloc_usable_size(p));
    memset(p, 1, pagesize);
    free(p);
    errno = 0;
    CHECK(pvalloc(HUGE_SIZE - 10) == NULL && errno == ENOMEM, "pvalloc overflow: errno %d", errno);
}

int main(void) {
    struct slab_api api = slab_api();
    struct lockfree_slab_stats before = slab_stats(&api);
    test_malloc_free(&api);
    test_calloc();
    test_realloc();
    test_aligned(&api);
    struct lockfree_slab_stats after = slab_stats(&api);
    CHECK(after.allocations - before.allocations > 1000, "only %llu allocations reached the slab",
          (unsigned long long)(after.allocations - before.allocations));
    printf("ok family: %llu allocations served by the slab\n",
           (unsigned long long)(after.allocations - before.allocations));
    return 0;
}
