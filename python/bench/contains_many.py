"""The Python figure for docs/performance.md: `Snapshot.contains_many` per check.

    python python/bench/contains_many.py <publish-url> [--checks 1000000] [--rounds 5]

1M checks (random groups of the run, random customer ids: members, non-members and a few
unknown ids), the best of `--rounds` calls timed with time.perf_counter, for each input
form; and `contains` called once per check from a Python loop, for comparison."""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa

import cohort


def best(rounds: int, f) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("publish")
    parser.add_argument("--checks", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    start = time.perf_counter()
    snapshot = cohort.Snapshot.open(args.publish)
    print(f"{snapshot!r}: opened in {time.perf_counter() - start:.3f} s")
    n = args.checks
    rng = np.random.default_rng(42)
    group_ids = [g["id"] for g in snapshot.groups()]
    groups = np.array(group_ids)[rng.integers(0, len(group_ids), n)]
    # Ids of the run (the members of every group, so most checks hit a known customer) plus
    # 1% unknown ones.
    known = pa.concat_arrays([snapshot.members(g) for g in group_ids]).to_numpy(zero_copy_only=False)
    ids = known[rng.integers(0, len(known), n)]
    if snapshot.id_type == "string":
        unknown = np.array([f"nobody-{i}" for i in range(n // 100)])
    else:
        unknown = np.arange(-(n // 100), 0)
    ids = ids.astype(object) if snapshot.id_type == "string" else ids
    ids[rng.integers(0, n, n // 100)] = unknown
    group_list = groups.tolist()
    inputs = {
        "lists (str groups, Python ids)": (group_list, ids.tolist()),
        "numpy (str groups, ids)": (groups, ids.astype(str) if snapshot.id_type == "string" else ids),
        "pyarrow (groups, ids)": (pa.array(group_list), pa.array(ids.tolist())),
        "one group for all (str), numpy ids": (group_ids[0], ids.astype(str) if snapshot.id_type == "string" else ids),
    }
    expected = None
    for name, (g, i) in inputs.items():
        answers = snapshot.contains_many(g, i)
        if name.startswith("one group"):
            seconds = best(args.rounds, lambda: snapshot.contains_many(g, i))
        else:
            if expected is None:
                expected = answers
            assert (answers == expected).all(), name
            seconds = best(args.rounds, lambda: snapshot.contains_many(g, i))
        print(f"contains_many, {name}: {seconds * 1e9 / n:.1f} ns per check ({seconds * 1e3:.1f} ms for {n:,})")
    loop_n = min(n, 200_000)
    pairs = list(zip(group_list[:loop_n], ids.tolist()[:loop_n]))
    contains = snapshot.contains
    seconds = best(args.rounds, lambda: [contains(g, i) for g, i in pairs])
    print(f"contains in a Python loop: {seconds * 1e9 / loop_n:.1f} ns per check ({loop_n:,} checks)")


if __name__ == "__main__":
    main()
