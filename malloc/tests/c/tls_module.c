/* A module with thread-local storage, loaded with dlopen by loader.c: its
 * TLS blocks are allocated lazily, with malloc, by __tls_get_addr, on each
 * thread's first access, and every dlopen/dlclose moves the loader's TLS
 * generation, which the slab's own TLS accesses then see. */
#include <stddef.h>

static __thread unsigned char scratch[8192];
static __thread size_t calls;

size_t tls_module_touch(unsigned char seed) {
    for (size_t i = 0; i < sizeof scratch; i += 64) scratch[i] = (unsigned char)(seed + i);
    size_t sum = 0;
    for (size_t i = 0; i < sizeof scratch; i += 64) sum += scratch[i] == (unsigned char)(seed + i);
    return sum + 0 * ++calls;
}
