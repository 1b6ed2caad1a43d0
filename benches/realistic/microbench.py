#!/usr/bin/env python3
"""CPU cost of each condition kind, in ns per row, through the real CLI (issue 20).

For each condition kind of make_groups.KINDS (string kinds twice: as written and with
ignore_case), a queries folder of --per-kind groups, each holding ONE distinct condition
of that kind (fewer when the kind has fewer distinct conditions, e.g. booleans), is
evaluated with `cohort run --dry-run` (the whole pipeline: scan, conditions, bitmaps,
id checks; nothing published) over the same data. A baseline folder holds --per-kind
empty groups (no include clause: no condition, no column besides the id is read).

  ns per row × condition = (median CPU of the kind − median CPU of the baseline)
                           / (customers × conditions)

CPU is user + sys of the child process (getrusage). It includes decoding the columns the
kind reads (amortized over its conditions: all of one kind's conditions share one scan)
and turning each condition's result into a bitmap. Kinds run in a different order each
round (rotated) so drift is spread evenly.

usage:
  microbench.py --cohort $CARGO_TARGET_DIR/release/cohort [--customers 10000000]
                [--id-type int] [--per-kind 10] [--rounds 3] [--kinds a,b]
                [--workdir /tmp/cohort-realistic]
Shares its data folder with compare.py (same --workdir). Markdown table on stdout.
"""
import argparse
import json
import os
import random
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402
import make_groups  # noqa: E402

def kind_conditions(kind, per_kind, seed=7):
    """Up to per_kind distinct conditions of one kind ('<kind>' or '<kind> ignore_case')."""
    base, _, variant = kind.partition(" ")
    rng = random.Random(f"{seed}:{kind}")
    out, seen = [], set()
    for _ in range(per_kind * 50):
        make_groups.IGNORE_CASE_OVERRIDE = variant == "ignore_case"
        c = make_groups.KINDS[base](rng)
        make_groups.IGNORE_CASE_OVERRIDE = None
        key = json.dumps(c, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(c)
        if len(out) == per_kind:
            break
    return out


def all_kinds():
    kinds = []
    for k in make_groups.KINDS:
        kinds.append(k)
        if k.startswith("str_") and k != "str_range":
            kinds.append(k + " ignore_case")
    return kinds


def write_folder(folder, conditions):
    groups = {}
    for i, c in enumerate(conditions):
        groups[f"m{i:03d}"] = {"include": [{"match": "all", "conditions": [c]}]} if c else {}
    make_groups.write(folder, groups)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cohort", required=True)
    ap.add_argument("--customers", type=int, default=10_000_000)
    ap.add_argument("--id-type", choices=["int", "string"], default="int")
    ap.add_argument("--per-kind", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--kinds", default="", help="comma-separated subset (default: all)")
    ap.add_argument("--as-of", default="2026-11-22T00:00:00Z")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "cohort-realistic"))
    args = ap.parse_args()
    cohort = os.path.abspath(args.cohort)
    os.makedirs(args.workdir, exist_ok=True)
    config = os.path.join(args.workdir, "cohort.toml")
    open(config, "w").close()
    source_dir = common.prepare_data(cohort, args.workdir, args.customers, args.id_type, args.files)

    kinds = args.kinds.split(",") if args.kinds else all_kinds()
    folders, counts = {}, {}
    root = os.path.join(args.workdir, f"micro-{args.id_type}")
    for kind in ["baseline"] + kinds:
        conds = [None] * args.per_kind if kind == "baseline" else kind_conditions(kind, args.per_kind)
        folders[kind] = os.path.join(root, kind.replace(" ", "-"))
        counts[kind] = len(conds)
        write_folder(folders[kind], conds)

    def command(kind):
        return [cohort, "run", "--dry-run", "--config", config, "--customers", source_dir,
                "--queries", folders[kind], "--as-of", args.as_of,
                "--publish", os.path.join(args.workdir, "micro-snapshots"), "--format", "json"]

    cpu = {k: [] for k in folders}
    wall = {k: [] for k in folders}
    shares = {}
    names = list(folders)
    customers = None
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for kind in order:
            res = common.run(command(kind))
            cpu[kind].append(res["cpu"])
            wall[kind].append(res["wall"])
            report = json.loads(res["out"])
            customers = report["customers"]
            shares[kind] = sum(g["members"] for g in report["groups"]) / max(1, customers * counts[kind])
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr)

    base = statistics.median(cpu["baseline"])
    print(f"{customers} customers, {args.id_type} ids, `cohort run --dry-run`, "
          f"{args.rounds} rounds; baseline ({counts['baseline']} empty groups): "
          f"CPU {base:.3f} s, wall {statistics.median(wall['baseline']):.3f} s\n")
    print("| kind | conditions | mean share of customers | median CPU s | CPU s over baseline "
          "| CPU ns per row × condition | median wall s |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for kind in kinds:
        c = statistics.median(cpu[kind])
        ns = (c - base) * 1e9 / (customers * counts[kind])
        print(f"| {kind} | {counts[kind]} | {shares[kind]:.1%} | {c:.3f} | {c - base:.3f} "
              f"| {ns:.2f} | {statistics.median(wall[kind]):.3f} |")


if __name__ == "__main__":
    main()
