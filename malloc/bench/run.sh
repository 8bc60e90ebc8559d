#!/usr/bin/env bash
# The C benchmarks of malloc/bench under LD_PRELOAD of lockfree-slab,
# mimalloc, jemalloc and TCMalloc (the distribution's packages) and glibc:
# every program on every allocator, the allocators' order rotated from one
# repetition to the next (alternated processes), REPS repetitions (default 5,
# at least 3). Wall time and peak RSS come from /usr/bin/time; the table
# gives medians with their spread (min-max) and slab's time over the faster
# of mimalloc and jemalloc, with the geometric mean of those ratios.
#
#   bash malloc/bench/run.sh [REPS]        (ARGS_<program>="..." to resize one)
#
# SLAB_RUSTFLAGS="-C llvm-args=-enable-tlsdesc" measures a build of the
# library with other flags (in its own target directory); see
# docs/PERFORMANCE.md for what that one changes.
#
# Not part of CI: it asserts nothing, and takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
reps=${1:-5}
((reps >= 3)) || { echo "at least 3 repetitions" >&2; exit 1; }
libdir=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
missing=()
for lib in libmimalloc.so.2 libjemalloc.so.2 libtcmalloc_minimal.so.4; do
    [[ -f $libdir/$lib ]] || missing+=("$lib")
done
if ((${#missing[@]})); then
    echo "installing the peers (${missing[*]})" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4 time; } >/dev/null
fi
[[ -x /usr/bin/time ]] || { apt-get install -y -qq time >/dev/null; }

slab_lib=$PWD/target/release/liblockfree_slab_malloc.so
if [[ -n ${SLAB_RUSTFLAGS:-} ]]; then
    RUSTFLAGS=$SLAB_RUSTFLAGS cargo build --release -p lockfree-slab-malloc --target-dir target/malloc-bench-flags >&2
    slab_lib=$PWD/target/malloc-bench-flags/release/liblockfree_slab_malloc.so
else
    cargo build --release -p lockfree-slab-malloc >&2
fi
out=target/malloc-bench
mkdir -p "$out"
programs=(larson xmalloc cache_scratch churn)
for p in "${programs[@]}"; do
    gcc -O2 -pthread -o "$out/$p" "malloc/bench/$p.c"
done

declare -A lib=(
    [slab]=$slab_lib
    [mimalloc]=$libdir/libmimalloc.so.2
    [jemalloc]=$libdir/libjemalloc.so.2
    [tcmalloc]=$libdir/libtcmalloc_minimal.so.4
    [glibc]=
)
allocators=(slab mimalloc jemalloc tcmalloc glibc)
results=$out/results.tsv
: >"$results"
for ((rep = 0; rep < reps; rep++)); do
    for p in "${programs[@]}"; do
        for ((i = 0; i < ${#allocators[@]}; i++)); do
            a=${allocators[(i + rep) % ${#allocators[@]}]}
            args_var=ARGS_$p
            # shellcheck disable=SC2086
            if ! LD_PRELOAD=${lib[$a]} /usr/bin/time -f "%e %M" -o "$out/time.txt" \
                timeout 300 "$out/$p" ${!args_var:-} >"$out/stdout.txt" 2>"$out/stderr.txt"; then
                echo "$p on $a FAILED:" >&2
                cat "$out/stderr.txt" >&2
                printf '%s\t%s\tfail\tfail\n' "$p" "$a" >>"$results"
                continue
            fi
            read -r wall rss <"$out/time.txt"
            printf '%s\t%s\t%s\t%s\n' "$p" "$a" "$wall" "$rss" >>"$results"
            printf '%-14s %-9s %6.2f s %8d KiB\n' "$p" "$a" "$wall" "$rss" >&2
        done
    done
done

python3 - "$results" "$reps" <<'EOF'
import math, statistics, sys
from collections import defaultdict
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
reps = int(sys.argv[2])
times, rss, failed = defaultdict(list), defaultdict(list), set()
for program, alloc, wall, kib in rows:
    if wall == "fail":
        failed.add((program, alloc))
        continue
    times[program, alloc].append(float(wall))
    rss[program, alloc].append(int(kib))
allocs = ["slab", "mimalloc", "jemalloc", "tcmalloc", "glibc"]
programs = list(dict.fromkeys(r[0] for r in rows))
def cell(program, alloc):
    if (program, alloc) in failed or not times[program, alloc]:
        return "FAILED"
    t = times[program, alloc]
    return f"{statistics.median(t):.2f} ({min(t):.2f}–{max(t):.2f})"
print(f"Wall time, s: median of {reps} (min–max). Ratio: slab ÷ the faster of mimalloc and jemalloc,")
print("of the medians and of the fastest runs (the least disturbed on a shared machine)\n")
print("| program | " + " | ".join(allocs) + " | ratio (median) | ratio (fastest) |")
print("| --- |" + " ---: |" * (len(allocs) + 2))
def ratio(program, pick):
    got = {a: pick(times[program, a]) for a in allocs if times[program, a]}
    peers = [got[a] for a in ("mimalloc", "jemalloc") if a in got]
    return got["slab"] / min(peers) if "slab" in got and peers else float("nan")
def geo(values):
    good = [v for v in values if v == v]
    return math.exp(sum(math.log(v) for v in good) / len(good)) if good else float("nan")
medians, fastest = [], []
for program in programs:
    medians.append(ratio(program, statistics.median))
    fastest.append(ratio(program, min))
    print(f"| {program} | " + " | ".join(cell(program, a) for a in allocs) +
          f" | {medians[-1]:.2f} | {fastest[-1]:.2f} |")
print(f"\nGeometric mean of slab ÷ the faster of mimalloc and jemalloc: **{geo(medians):.2f}** of the medians, "
      f"**{geo(fastest):.2f}** of the fastest runs (below 1: slab faster)\n")
print(f"Peak RSS, MiB: median of {reps}\n")
print("| program | " + " | ".join(allocs) + " |")
print("| --- |" + " ---: |" * len(allocs))
for program in programs:
    print(f"| {program} | " + " | ".join(
        f"{statistics.median(rss[program, a]) / 1024:.1f}" if rss[program, a] else "FAILED" for a in allocs) + " |")
EOF
