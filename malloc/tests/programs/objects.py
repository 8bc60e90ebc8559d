"""Builds, sorts and hashes a few hundred MB of Python objects; prints a
digest that depends on every object, so a run on another allocator must
print the same bytes. Run with PYTHONMALLOC=malloc (every object through
malloc, not pymalloc's arenas) and PYTHONHASHSEED=0."""
import hashlib
import random
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
rng = random.Random(20261121)
records = []
for i in range(n):
    key = rng.randrange(1 << 40)
    records.append({
        "id": i,
        "key": key,
        "name": "user-%012x" % key,
        "scores": [rng.random() for _ in range(4)],
        "tags": tuple("t%d" % rng.randrange(50) for _ in range(rng.randrange(1, 5))),
        "blob": rng.randbytes(rng.randrange(0, 1200)),
        "text": "%d:" % i * rng.randrange(1, 40),
    })
index = {r["name"]: r for r in records}
records.sort(key=lambda r: (r["tags"], r["key"]))
digest = hashlib.sha256()
for r in records:
    digest.update(repr((r["id"], r["name"], r["scores"], r["tags"], r["blob"], r["text"])).encode())
groups = {}
for r in records:
    groups.setdefault(r["tags"][0], []).append(r["id"])
print("records", len(records), "names", len(index), "groups", len(groups))
print("largest group", max(len(g) for g in groups.values()))
print("sha256", digest.hexdigest())
