/* The cost of one call through the C ABI on a cache hit: one thread, eight
 * blocks of 16..72 bytes allocated and freed in a loop (the calls stay in
 * the thread's cache on every allocator). Prints ns per call (an
 * allocation or a free). Build with -fno-builtin so the compiler keeps
 * every call. Usage: pair [rounds=20000000] */
#include "common.h"

int main(int argc, char **argv) {
    long rounds = arg(argc, argv, 1, 20000000);
    void *blocks[8];
    double t0 = now();
    for (long i = 0; i < rounds; i++) {
        for (int k = 0; k < 8; k++) blocks[k] = xmalloc((size_t)(16 + k * 8));
        for (int k = 0; k < 8; k++) free(blocks[k]);
    }
    double elapsed = now() - t0;
    printf("pair %.3f %.2f ns/call\n", elapsed, elapsed * 1e9 / ((double)rounds * 16));
    return 0;
}
