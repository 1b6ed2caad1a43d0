#!/usr/bin/env python3
"""One group per purchase-history aggregate kind: Cohort's time and peak RSS against
DuckDB's for the same memberships, on the same Parquet (`cohort gen`).

For each kind, `cohort run --dry-run` evaluates one group whose only condition is that
aggregate; DuckDB runs the equivalent query (the events up to as_of aggregated per
customer, left-joined onto the customers). Member counts must agree before anything is
timed. Runs alternate Cohort / DuckDB, one round per kind (the machines here are shared
and noisy: read ratios, not absolutes).

usage: aggregates.py --cohort target/release/cohort [--customers 10000000]
                     [--orders 100000000] [--workdir /tmp/cohort-aggregates]
Needs: pip install duckdb.
"""
import argparse
import os
import re
import subprocess
import sys
import time

AS_OF = "2026-11-22T00:00:00Z"

# kind -> (condition as TOML, DuckDB aggregate over the events, DuckDB condition on it)
KINDS = {
    "count": (
        '{ events = "orders", aggregate = "count", within_last = "365d", op = ">=", value = 3 }',
        "count(*) FILTER (WHERE ordered_at >= TIMESTAMPTZ '{as_of}' - INTERVAL 365 DAY)",
        "coalesce(v, 0) >= 3",
    ),
    "count_distinct": (
        '{ events = "orders", aggregate = "count_distinct", column = "category", op = ">=", value = 3 }',
        "count(DISTINCT category)",
        "coalesce(v, 0) >= 3",
    ),
    "sum": (
        '{ events = "orders", aggregate = "sum", column = "amount", within_last = "365d", op = ">", value = 500 }',
        "sum(CAST(amount AS DECIMAL(28, 10))) FILTER (WHERE ordered_at >= TIMESTAMPTZ '{as_of}' - INTERVAL 365 DAY)",
        "coalesce(v, 0) > 500",
    ),
    "avg": (
        '{ events = "orders", aggregate = "avg", column = "amount", op = "between", values = [50, 100] }',
        "avg(CAST(amount AS DECIMAL(28, 10)))",
        "v BETWEEN 50 AND 100",
    ),
    "min": (
        '{ events = "orders", aggregate = "min", column = "amount", op = "<", value = 10 }',
        "min(amount)",
        "v < 10",
    ),
    "max": (
        '{ events = "orders", aggregate = "max", column = "amount", op = ">", value = 200 }',
        "max(amount)",
        "v > 200",
    ),
    "first": (
        '{ events = "orders", aggregate = "first", column = "ordered_at", op = "before", value = "2025-06-01" }',
        "min(ordered_at)",
        "v < TIMESTAMPTZ '2025-06-01 00:00:00+00'",
    ),
    "last": (
        '{ events = "orders", aggregate = "last", column = "ordered_at", op = "is not in the last", value = "180d" }',
        "max(ordered_at)",
        "v < TIMESTAMPTZ '{as_of}' - INTERVAL 180 DAY",
    ),
}


def measured(command, cwd=None):
    """Runs a command under /usr/bin/time -v: (stdout, wall s, cpu s, peak RSS MiB)."""
    started = time.monotonic()
    done = subprocess.run(
        ["/usr/bin/time", "-v"] + command, cwd=cwd, capture_output=True, text=True
    )
    wall = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"{command} failed:\n{done.stderr[-3000:]}")
    field = lambda name: float(re.search(name + r": ([0-9.]+)", done.stderr).group(1))
    cpu = field("User time \\(seconds\\)") + field("System time \\(seconds\\)")
    rss = field("Maximum resident set size \\(kbytes\\)") / 1024
    return done.stdout, wall, cpu, rss


DUCKDB = """
import duckdb, sys
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute("SET enable_progress_bar = false")
n = con.execute('''
  WITH o AS (
    SELECT customer_id, {aggregate} AS v FROM read_parquet('{orders}')
    WHERE ordered_at <= TIMESTAMPTZ '{as_of}' GROUP BY customer_id)
  SELECT count(*) FROM read_parquet('{customers}') c LEFT JOIN o USING (customer_id)
  WHERE c.customer_id IS NOT NULL AND ({condition})
''').fetchone()[0]
print(n)
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cohort", required=True)
    parser.add_argument("--customers", type=int, default=10_000_000)
    parser.add_argument("--orders", type=int, default=100_000_000)
    parser.add_argument("--workdir", default="/tmp/cohort-aggregates")
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args()
    cohort = os.path.abspath(args.cohort)
    data = os.path.join(args.workdir, f"{args.customers}x{args.orders}")
    if not os.path.exists(os.path.join(data, "orders.parquet")):
        os.makedirs(data, exist_ok=True)
        subprocess.run(
            [cohort, "gen", "--customers", str(args.customers), "--orders",
             str(args.orders), "--seed", "11", "--out", data],
            check=True,
        )
    customers = os.path.join(data, "customers.parquet")
    orders = os.path.join(data, "orders.parquet")
    print(f"{args.customers:,} customers x {args.orders:,} orders, as_of {AS_OF}")
    print("| aggregate | members | cohort s | cohort CPU s | cohort RSS MiB | duckdb s | duckdb RSS MiB | duckdb / cohort |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind in args.kinds.split(","):
        condition, aggregate, where = KINDS[kind]
        project = os.path.join(args.workdir, "project-" + kind)
        os.makedirs(os.path.join(project, "queries"), exist_ok=True)
        with open(os.path.join(project, "queries", "g.toml"), "w") as f:
            f.write(f"[[include]]\nconditions = [{condition}]\n")
        with open(os.path.join(project, "cohort.toml"), "w") as f:
            f.write(f'customers = "{customers}"\n[events.orders]\nurl = "{orders}"\n')
        out, c_wall, c_cpu, c_rss = measured(
            [cohort, "run", "--dry-run", f"--as-of={AS_OF}", "--format=json"], cwd=project
        )
        members = int(re.search(r'"members":\s*(\d+)', out).group(1))
        script = DUCKDB.format(
            aggregate=aggregate.format(as_of=AS_OF), orders=orders, customers=customers,
            condition=where.format(as_of=AS_OF), as_of=AS_OF,
        )
        out, d_wall, _, d_rss = measured([sys.executable, "-c", script])
        theirs = int(out.strip().splitlines()[-1])
        if theirs != members:
            sys.exit(f"{kind}: cohort {members} members, duckdb {theirs}")
        print(f"| {kind} | {members:,} | {c_wall:.2f} | {c_cpu:.2f} | {c_rss:.0f} | "
              f"{d_wall:.2f} | {d_rss:.0f} | {d_wall / c_wall:.2f} |", flush=True)


if __name__ == "__main__":
    main()
