// C++ new/delete reach the slab through libstdc++'s operators, which call
// malloc, aligned_alloc and free: new T, new T[n], sized delete, and new
// with an alignment beyond the default (std::align_val_t, alignas types).
#include <dlfcn.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            std::fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            std::fprintf(stderr, __VA_ARGS__);                                    \
            std::fputc('\n', stderr);                                             \
            std::exit(1);                                                         \
        }                                                                         \
    } while (0)

static int (*owns)(const void *);
static void *volatile escape;

struct alignas(64) Line {
    unsigned char bytes[64];
};

struct alignas(256) Big {
    unsigned char bytes[1000];
};

struct Node {
    Node *next;
    int value;
};

static void check_ours(const void *p, std::size_t align, const char *what) {
    CHECK(p != nullptr, "%s returned null", what);
    CHECK(reinterpret_cast<std::uintptr_t>(p) % align == 0, "%s = %p not aligned to %zu", what, p, align);
    CHECK(owns(p) == 1, "%s = %p is not the slab's", what, p);
}

int main() {
    owns = reinterpret_cast<int (*)(const void *)>(dlsym(RTLD_DEFAULT, "lockfree_slab_owns"));
    CHECK(owns != nullptr, "run under LD_PRELOAD=liblockfree_slab_malloc.so");

    Node *n = new Node{nullptr, 7};
    check_ours(n, alignof(Node), "new Node");
    delete n;  // sized delete (C++14): operator delete(void *, size_t)

    int *arr = new int[1000];
    check_ours(arr, alignof(int), "new int[1000]");
    for (int i = 0; i < 1000; i++) arr[i] = i;
    delete[] arr;

    std::string *strings = new std::string[50];  // array cookie + constructors
    check_ours(strings, alignof(std::string), "new std::string[50]");
    delete[] strings;

    Line *line = new Line;
    check_ours(line, 64, "new alignas(64) Line");
    delete line;  // aligned (and sized) delete

    Big *bigs = new Big[3];
    check_ours(bigs, 256, "new alignas(256) Big[3]");
    delete[] bigs;

    void *raw = ::operator new(100, std::align_val_t(512));
    check_ours(raw, 512, "operator new(100, align_val_t(512))");
    ::operator delete(raw, 100, std::align_val_t(512));

    void *nothrow = ::operator new(300, std::nothrow);
    check_ours(nothrow, 16, "operator new(300, nothrow)");
    ::operator delete(nothrow);

    // Containers: the pattern survives growth and rehashing.
    std::vector<std::unique_ptr<Node>> nodes;
    std::unordered_map<int, std::string> names;
    for (int i = 0; i < 100000; i++) {
        nodes.emplace_back(new Node{nullptr, i});
        names.emplace(i, std::to_string(i));
    }
    for (int i = 0; i < 100000; i++) {
        CHECK(nodes[i]->value == i, "node %d", i);
        CHECK(names.at(i) == std::to_string(i), "name %d", i);
    }
    check_ours(nodes.back().get(), alignof(Node), "unique_ptr<Node>");

    bool threw = false;
    try {
        volatile std::size_t huge = SIZE_MAX / 2;
        char *never = new char[huge];
        escape = never;  // (an unused new/delete pair may be elided)
        delete[] never;
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw, "new char[SIZE_MAX / 2] should throw bad_alloc");

    std::printf("ok c++: new, new[], sized and aligned new/delete on the slab\n");
    return 0;
}
