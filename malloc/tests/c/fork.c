/* fork while 4 threads allocate, 500 rounds: every child allocates (small
 * and large blocks), checks and frees them, and exits 0 — whatever the
 * parent's other threads were doing inside the allocator at the fork.
 * Then system() and posix_spawn(), whose children exec at once. */
#include "common.h"

#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

enum { WORKERS = 4, ROUNDS = 500 };

static atomic_int stop;

static void *worker(void *arg) {
    uint64_t rng = 77 + (uintptr_t)arg;
    /* The workers take the CPU time the forking thread and its children
     * leave: on a machine with fewer cores than threads, the rounds would
     * otherwise wait for time slices (nice is per thread on Linux). */
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
    void *held[64] = {0};
    size_t sizes[64] = {0};
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        unsigned i = next_rand(&rng) % 64;
        if (held[i]) {
            CHECK(verify(held[i], sizes[i], sizes[i]) == sizes[i], "worker block damaged");
            free(held[i]);
        }
        uint64_t r = next_rand(&rng);
        sizes[i] = r % 16 == 0 ? 1 + r % 100000 : 1 + r % 2048;
        held[i] = malloc(sizes[i]);
        CHECK(held[i] != NULL, "malloc(%zu)", sizes[i]);
        fill(held[i], sizes[i], sizes[i]);
    }
    for (int i = 0; i < 64; i++) free(held[i]);
    return NULL;
}

/* What every child does before exiting 0. */
static void child(int round) {
    void *blocks[200];
    for (int i = 0; i < 200; i++) {
        size_t size = i % 20 == 0 ? (size_t)(50000 + i) : 1 + (size_t)(i * 37 % 3000);
        blocks[i] = malloc(size);
        if (!blocks[i]) _exit(2);
        fill(blocks[i], size, (uint64_t)round * 1000 + i);
    }
    for (int i = 0; i < 200; i++) {
        size_t size = i % 20 == 0 ? (size_t)(50000 + i) : 1 + (size_t)(i * 37 % 3000);
        if (verify(blocks[i], size, (uint64_t)round * 1000 + i) != size) _exit(3);
        free(blocks[i]);
    }
    char *s = strdup("child");
    if (!s) _exit(4);
    free(s);
    exit(0); /* the full exit path: atexit handlers, thread-local destructors */
}

int main(void) {
    pthread_t threads[WORKERS];
    for (uintptr_t i = 0; i < WORKERS; i++) CHECK(pthread_create(&threads[i], NULL, worker, (void *)i) == 0, "create");
    for (int round = 0; round < ROUNDS; round++) {
        fflush(stdout);
        pid_t pid = fork();
        CHECK(pid >= 0, "fork: %s", strerror(errno));
        if (pid == 0) child(round);
        int status;
        CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "round %d: child status %#x", round, status);
    }
    for (int i = 0; i < 20; i++) CHECK(system("exit 0") == 0, "system()");
    for (int i = 0; i < 20; i++) {
        pid_t pid;
        char *argv[] = {"/bin/sh", "-c", "exit 0", NULL};
        CHECK(posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) == 0, "posix_spawn");
        int status;
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0, "spawned child");
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < WORKERS; i++) pthread_join(threads[i], NULL);
    struct slab_api api = slab_api();
    struct lockfree_slab_stats s = slab_stats(&api);
    CHECK(s.allocations > 1000, "only %llu allocations reached the slab", (unsigned long long)s.allocations);
    printf("ok fork: %d children of a 4-thread parent exited 0; 20 system(), 20 posix_spawn()\n", ROUNDS);
    return 0;
}
