#!/usr/bin/env bash
# The C ABI (malloc/): builds liblockfree_slab_malloc.so and checks it from
# the outside, the way C programs use it. On a fresh machine it installs
# what it needs with apt (gcc, g++, sqlite3, python3, git) and fails clearly
# if it cannot. In order:
#   1. the crate's own tests (`cargo test -p lockfree-slab-malloc`: the
#      `override` feature in a Rust test binary, and the family's semantics);
#   2. the C and C++ test programs of malloc/tests/c, compiled with the
#      system compiler and run under LD_PRELOAD: every entry point, threads
#      (producer -> consumer with pattern checks, 1,000 threads, caches
#      flushed at pthread exit), fork while 4 threads allocate (500 rounds),
#      C++ new/delete, malloc before main and dlopen'd TLS;
#   3. a smoke run of the benchmark programs of malloc/bench (no timing);
#   4. real programs, each run twice, on glibc and under LD_PRELOAD: stdout
#      must be byte-identical, both must exit 0, stderr must hold no glibc
#      heap complaint, and LOCKFREE_SLAB_STATS=1 must show the slab served
#      their allocations: python3 (objects), gcc -O2 (a large C file), sort,
#      sqlite3, git.
# Nothing here asserts a timing; the benchmarks are malloc/bench/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$(date +%s)
step() { printf '\n==== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

step "tools"
need=()
command -v gcc >/dev/null || need+=(gcc)
command -v g++ >/dev/null || need+=(g++)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v python3 >/dev/null || need+=(python3)
command -v git >/dev/null || need+=(git)
if ((${#need[@]})); then
    echo "installing ${need[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } >/dev/null ||
        fail "could not install ${need[*]} with apt-get; install them and rerun"
fi
for tool in gcc g++ sqlite3 python3 git sort; do
    command -v "$tool" >/dev/null || fail "$tool is missing"
done

step "cargo test -p lockfree-slab-malloc"
cargo test -p lockfree-slab-malloc
cargo build --release -p lockfree-slab-malloc
lib=$root/target/release/liblockfree_slab_malloc.so
[[ -f $lib ]] || fail "$lib was not built"
for symbol in malloc free calloc realloc reallocarray posix_memalign aligned_alloc memalign valloc pvalloc \
    malloc_usable_size lockfree_slab_stats lockfree_slab_stats_print; do
    nm -D --defined-only "$lib" | grep -qw "$symbol" || fail "$lib does not export $symbol"
done

out=$root/target/malloc-ci
rm -rf "$out" && mkdir -p "$out"

step "C and C++ tests under LD_PRELOAD"
cflags=(-O2 -g -Wall -Wextra -pthread)
for test in family threads fork loader; do
    gcc "${cflags[@]}" -o "$out/$test" "malloc/tests/c/$test.c" -ldl
done
gcc -O2 -shared -fPIC -o "$out/tls_module.so" malloc/tests/c/tls_module.c
g++ "${cflags[@]}" -std=c++17 -o "$out/cxx_new" malloc/tests/c/cxx_new.cpp -ldl
run_test() {
    local name=$1
    shift
    if ! LD_PRELOAD=$lib timeout 120 "$@" >"$out/$name.out" 2>"$out/$name.err"; then
        cat "$out/$name.out" "$out/$name.err" >&2
        fail "$name exited non-zero"
    fi
    grep -q "^ok " "$out/$name.out" || fail "$name printed no ok line"
    cat "$out/$name.out"
}
run_test family "$out/family"
run_test threads "$out/threads"
run_test fork "$out/fork"
run_test cxx_new "$out/cxx_new"
run_test loader "$out/loader" "$out/tls_module.so"

step "benchmark smoke run (malloc/bench: each program once, small, on the slab; no timing)"
bench=(larson:"2 3 500 20000" xmalloc:"1 1 100000" cache_scratch:"2 2000 8 50" churn:"2 100000 2000" pair:"100000")
for entry in "${bench[@]}"; do
    program=${entry%%:*}
    gcc -O2 -pthread -fno-builtin -o "$out/bench_$program" "malloc/bench/$program.c"
    # shellcheck disable=SC2086
    LD_PRELOAD=$lib timeout 60 "$out/bench_$program" ${entry#*:} || fail "benchmark $program failed on the slab"
done

step "real programs: glibc and LD_PRELOAD give the same output"
# same NAME MIN_ALLOCATIONS CMD...: runs CMD (a shell command, in $work) on
# glibc, then on the slab with stats; compares; counts the slab's work.
same() {
    local name=$1 min=$2 cmd=$3
    local work=$out/$name
    mkdir -p "$work"
    (cd "$work" && rm -rf run && mkdir run && cd run && bash -c "$cmd") >"$work/glibc.out" 2>"$work/glibc.err" ||
        { cat "$work/glibc.err" >&2; fail "$name failed on glibc"; }
    (cd "$work" && rm -rf run && mkdir run && cd run && LOCKFREE_SLAB_STATS=1 LD_PRELOAD=$lib bash -c "$cmd") \
        >"$work/slab.out" 2>"$work/slab.err" ||
        { tail -50 "$work/slab.err" >&2; fail "$name failed under LD_PRELOAD"; }
    cmp -s "$work/glibc.out" "$work/slab.out" ||
        { diff "$work/glibc.out" "$work/slab.out" | head -20 >&2; fail "$name: output differs from glibc's"; }
    if grep -nE 'malloc\(\)|free\(\)|realloc\(\)|double free|corrupted|invalid pointer|munmap_chunk|Segmentation|Aborted' \
        "$work/slab.err"; then
        fail "$name: a heap complaint on stderr"
    fi
    # One stats line per process; the program's own processes served most.
    local served
    served=$(awk '/^lockfree-slab: [0-9]+ allocations/ { s += $2 } END { print s + 0 }' "$work/slab.err")
    ((served >= min)) || fail "$name: the slab served only $served allocations (expected >= $min)"
    printf 'ok %-8s %9d bytes of identical output, %10d allocations served by the slab\n' \
        "$name" "$(wc -c <"$work/slab.out")" "$served"
    passed=$((passed + 1))
}
passed=5 # the C and C++ tests above

programs=$root/malloc/tests/programs
same python 1000000 "PYTHONMALLOC=malloc PYTHONHASHSEED=0 python3 '$programs/objects.py' 100000"

# A large, real C file: mimalloc's sources in one translation unit, shipped
# in the cargo registry (libmimalloc-sys, a dev-dependency of the root
# crate); a generated one if the registry does not have it.
cargo fetch -q 2>/dev/null || true
mimalloc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/libmimalloc-sys-*/c_src/mimalloc/v2 2>/dev/null | tail -1 || true)
if [[ -n $mimalloc && -f $mimalloc/src/static.c ]]; then
    csource=$mimalloc/src/static.c
    cinclude=$mimalloc/include
else
    echo "(libmimalloc-sys sources not found: compiling a generated C file)"
    csource=$out/generated.c
    cinclude=$out
    python3 - "$csource" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    f.write("#include <string.h>\n#include <stdlib.h>\n")
    for i in range(3000):
        f.write(f"struct s{i} {{ int a[{i % 17 + 1}]; double d; char name[{i % 29 + 3}]; }};\n")
        f.write(f"int f{i}(struct s{i} *p, int n) {{ int t = 0; for (int k = 0; k < n; k++) "
                f"{{ t += p->a[k % {i % 17 + 1}] * {i} + (int)p->d; if (t > {i * 7}) t ^= k; }} "
                f"return t + (int)strlen(p->name); }}\n")
EOF
fi
same gcc 10000 "SOURCE_DATE_EPOCH=0 gcc -O2 -S -I '$cinclude' '$csource' -o -"

same sort 10000 "python3 -c 'import random; r = random.Random(7); print(\"\\n\".join(\"%016x,%d,%s\" % (r.getrandbits(64), r.randrange(10**6), \"w\" * r.randrange(1, 60)) for _ in range(300000)))' >input.txt && LC_ALL=C sort -t, -k2,2n -k1,1 --parallel=2 -S 64M input.txt | sha256sum && LC_ALL=C sort -u input.txt | wc -l"

same sqlite 10000 "sqlite3 db.sqlite <'$programs/sqlite.sql'"

same git 1000 "cd '$root' && git log --stat --no-color -n 200 && git rev-list --objects --all | LC_ALL=C sort | sha256sum && git grep -c -e SAFETY -- '*.rs' | LC_ALL=C sort && git cat-file --batch-all-objects --batch-check | LC_ALL=C sort | sha256sum"

echo
echo "malloc: $passed passed, 0 failed"
echo "malloc checks passed in $(($(date +%s) - start))s"
