/* The dynamic loader and the slab: malloc before main (a constructor),
 * blocks allocated there freed in main, and dlopen/dlclose of a module with
 * thread-local storage (argv[1]) while threads allocate and touch the
 * module's TLS — the loader allocates its DTV entries and TLS blocks with
 * malloc from inside __tls_get_addr, and the slab's own TLS accesses run
 * after each change of the loader's TLS generation. */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>

static void *before_main[100];

__attribute__((constructor)) static void early(void) {
    for (int i = 0; i < 100; i++) {
        before_main[i] = malloc((size_t)(i * 97 % 5000 + 1));
        if (!before_main[i]) abort();
        fill(before_main[i], (size_t)(i * 97 % 5000 + 1), (uint64_t)i);
    }
}

static const char *module_path;
static atomic_int stop;

static void *worker(void *arg) {
    uint64_t rng = 5 + (uintptr_t)arg;
    unsigned long rounds = 0;
    while (!atomic_load(&stop)) {
        /* Load the module in this thread too, touch its TLS, unload. */
        void *module = dlopen(module_path, RTLD_NOW | RTLD_LOCAL);
        CHECK(module != NULL, "dlopen: %s", dlerror());
        size_t (*touch)(unsigned char) = (size_t (*)(unsigned char))dlsym(module, "tls_module_touch");
        CHECK(touch && touch((unsigned char)rounds) == 8192 / 64, "the module's TLS");
        void *blocks[16];
        for (int i = 0; i < 16; i++) {
            size_t size = 1 + next_rand(&rng) % 3000;
            blocks[i] = malloc(size);
            CHECK(blocks[i] != NULL, "malloc");
            fill(blocks[i], size, size);
            *(size_t *)blocks[i] = size;
        }
        for (int i = 0; i < 16; i++) free(blocks[i]);
        CHECK(dlclose(module) == 0, "dlclose");
        rounds++;
    }
    return (void *)rounds;
}

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: loader path/to/tls_module.so");
    module_path = argv[1];
    struct slab_api api = slab_api();
    for (int i = 0; i < 100; i++) {
        size_t size = (size_t)(i * 97 % 5000 + 1);
        CHECK(verify(before_main[i], size, (uint64_t)i) == size, "block from before main damaged");
        free(before_main[i]);
    }
    pthread_t threads[4];
    for (uintptr_t i = 0; i < 4; i++) CHECK(pthread_create(&threads[i], NULL, worker, (void *)i) == 0, "create");
    for (int i = 0; i < 200; i++) {
        void *module = dlopen(module_path, RTLD_NOW | RTLD_LOCAL);
        CHECK(module != NULL, "dlopen: %s", dlerror());
        void *p = malloc(100);
        CHECK(p != NULL && api.owns(p), "malloc after dlopen is the slab's");
        free(p);
        CHECK(dlclose(module) == 0, "dlclose");
    }
    atomic_store(&stop, 1);
    unsigned long total = 0;
    for (int i = 0; i < 4; i++) {
        void *rounds;
        pthread_join(threads[i], &rounds);
        total += (unsigned long)(uintptr_t)rounds;
    }
    CHECK(total > 0, "the workers never ran");
    printf("ok loader: 100 blocks from before main; %lu dlopen/TLS/dlclose rounds in 4 threads\n", total + 200);
    return 0;
}
