#!/usr/bin/env python3
"""Cohort against DuckDB on the same Parquet and the same groups, whole process against
whole process, runs alternating in one invocation. Prints medians, ratios and peak RSS.

  1. materialize N groups: `cohort run` vs DuckDB in its two best formulations
     (A: one CREATE TABLE ... AS SELECT id ... WHERE ... per group;
      B: one scan with list(id) FILTER (WHERE ...) per group);
  2. size one simple segment: `cohort size --where` vs DuckDB count(*).

Before timing, the member counts of DuckDB's formulation B are checked against Cohort's
for every group, so both sides provably compute the same thing.

usage: compare.py --cohort target/release/cohort [--customers 10000000] [--rounds 5]
                  [--workdir /tmp/cohort-bench]
Needs: pip install duckdb. Generates the data and groups on first use.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
AS_OF = "2026-11-22T00:00:00Z"
SIMPLE_SEGMENT = "country = 'United States' AND age >= 18"


def quote(v):
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def condition_sql(c, groups):
    """One condition as DuckDB SQL with Cohort's null rule: NULL counts as false."""
    op = c["op"]
    if op in ("in group", "not in group"):
        inner = group_sql(c["value"], groups)
        return inner if op == "in group" else f"NOT ({inner})"
    col = f'"{c["attribute"]}"'
    v = c.get("value")
    vs = c.get("values")
    ic = c.get("ignore_case", False)
    if ic:
        col, v = f"lower({col})", v.lower() if isinstance(v, str) else v
    if op == "equals":
        e = f"{col} = {quote(v)}"
    elif op == "in":
        e = f"{col} IN ({', '.join(quote(x) for x in vs)})"
    elif op in ("gt", "gte", "lt", "lte"):
        e = f"{col} {dict(gt='>', gte='>=', lt='<', lte='<=')[op]} {quote(v)}"
    elif op == "between":
        e = f"{col} BETWEEN {quote(vs[0])} AND {quote(vs[1])}"
    elif op == "ends_with":
        e = f"ends_with({col}, {quote(v)})"
    elif op == "starts_with":
        e = f"starts_with({col}, {quote(v)})"
    elif op == "contains" and c["attribute"] == "tags":
        e = f"list_contains({col}, {quote(v)})"
    elif op == "contains":
        e = f"contains({col}, {quote(v)})"
    elif op == "within_last":
        days = int(v[:-1]) * {"d": 1, "w": 7}[v[-1]]
        e = (f"{col} BETWEEN TIMESTAMPTZ '{AS_OF}' - INTERVAL {days} DAY "
             f"AND TIMESTAMPTZ '{AS_OF}'")
    elif op == "exists":
        return f"{col} IS NOT NULL"
    elif op == "not_exists":
        return f"{col} IS NULL"
    else:
        raise SystemExit(f"compare.py: operator {op} not translated")
    return f"coalesce({e}, false)"


def clause_sql(clause, groups):
    parts = [condition_sql(c, groups) for c in clause.get("conditions", [])]
    if not parts:
        return "true" if clause.get("match", "all") == "all" else "false"
    joiner = " AND " if clause.get("match", "all") == "all" else " OR "
    return "(" + joiner.join(parts) + ")"


def group_sql(gid, groups):
    g = groups[gid]
    include = " OR ".join(clause_sql(c, groups) for c in g.get("include", [])) or "false"
    exclude = " OR ".join(clause_sql(c, groups) for c in g.get("exclude", [])) or "false"
    e = f"(({include}) AND NOT ({exclude}))"
    st = g.get("static", {})
    if st.get("include"):
        e = f"({e} OR customer_id IN ({', '.join(str(i) for i in st['include'])}))"
    if st.get("exclude"):
        e = f"({e} AND customer_id NOT IN ({', '.join(str(i) for i in st['exclude'])}))"
    return e


def run(cmd, **kw):
    """Runs a command; returns (seconds, peak RSS in MiB, stdout)."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - start
    out, err = p.stdout.read(), p.stderr.read()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])}... failed ({p.returncode}):\n{err[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024, out


def duckdb_script(kind, parquet, sqls):
    if kind == "A":
        body = "\n".join(
            f"con.execute({json.dumps(f'CREATE TABLE {gid} AS SELECT customer_id FROM read_parquet({quote(parquet)}) WHERE {sql}')})"
            for gid, sql in sqls)
        return f"import duckdb\ncon = duckdb.connect()\n{body}\n"
    if kind == "B":
        cols = ", ".join(f"list(customer_id) FILTER (WHERE {sql}) AS {gid}" for gid, sql in sqls)
        return ("import duckdb, json, sys\ncon = duckdb.connect()\n"
                f"row = con.execute({json.dumps(f'SELECT {cols} FROM read_parquet({quote(parquet)})')}).fetchone()\n"
                "json.dump([len(x or []) for x in row], sys.stdout)\n")
    return ("import duckdb, sys\ncon = duckdb.connect()\n"
            f"print(con.execute({json.dumps(f'SELECT count(*) FROM read_parquet({quote(parquet)}) WHERE {SIMPLE_SEGMENT}')}).fetchone()[0])\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cohort", required=True)
    ap.add_argument("--customers", type=int, default=10_000_000)
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "cohort-bench"))
    args = ap.parse_args()
    cohort = os.path.abspath(args.cohort)

    data = os.path.join(args.workdir, f"data-{args.customers}")
    parquet = os.path.join(data, "customers.parquet")
    if not os.path.exists(parquet):
        print(f"generating {args.customers} customers in {data} ...", file=sys.stderr)
        subprocess.run([cohort, "gen", "--customers", str(args.customers), "--seed", "42",
                        "--out", data], check=True)
    queries = os.path.join(args.workdir, f"groups-{args.groups}")
    subprocess.run([sys.executable, os.path.join(HERE, "..", "make_groups.py"), queries,
                    str(args.groups)], check=True)
    groups = {}
    for name in sorted(os.listdir(queries)):
        with open(os.path.join(queries, name)) as f:
            groups[name[:-5]] = json.load(f)
    sqls = [(gid, group_sql(gid, groups)) for gid in groups]
    scripts = {}
    for kind in ("A", "B", "size"):
        path = os.path.join(args.workdir, f"duckdb_{kind}.py")
        with open(path, "w") as f:
            f.write(duckdb_script(kind, parquet, sqls))
        scripts[kind] = path
    publish = os.path.join(args.workdir, "snapshots")
    # An empty config so a cohort.toml in the current folder cannot interfere.
    config = os.path.join(args.workdir, "cohort.toml")
    open(config, "w").close()
    common = ["--config", config, "--customers", parquet, "--queries", queries, "--as-of", AS_OF]
    commands = {
        "cohort run": [cohort, "run", *common, "--publish", publish, "--format", "json"],
        "duckdb A (CREATE TABLE per group)": [sys.executable, scripts["A"]],
        "duckdb B (one scan, list FILTER)": [sys.executable, scripts["B"]],
        "cohort size --where": [cohort, "size", "--config", config, "--customers", parquet,
                                "--queries", queries, "--where", SIMPLE_SEGMENT,
                                "--format", "json"],
        "duckdb count(*)": [sys.executable, scripts["size"]],
    }

    # Same answers first.
    _, _, out = run(commands["cohort run"])
    report = json.loads(out)
    ours = {g["group"]: g["members"] for g in report["groups"]}
    _, _, out = run(commands["duckdb B (one scan, list FILTER)"])
    theirs = dict(zip(groups, json.loads(out)))
    wrong = {g: (ours[g], theirs[g]) for g in groups if ours[g] != theirs[g]}
    if wrong:
        raise SystemExit(f"member counts differ (cohort, duckdb): {wrong}")
    _, _, out = run(commands["cohort size --where"])
    ours_size = json.loads(out)["groups"][0]["members"]
    _, _, out = run(commands["duckdb count(*)"])
    if ours_size != int(out):
        raise SystemExit(f"size differs: cohort {ours_size}, duckdb {out}")
    print(f"same members for all {len(groups)} groups and the simple segment "
          f"({report['customers']} customers, {report['conditions']} distinct conditions)")

    times = {k: [] for k in commands}
    rss = {k: 0.0 for k in commands}
    names = list(commands)
    for r in range(args.rounds):
        order = names if r % 2 == 0 else list(reversed(names))
        for name in order:
            elapsed, peak, _ = run(commands[name])
            times[name].append(elapsed)
            rss[name] = max(rss[name], peak)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{'command':36} {'median s':>9} {'min s':>7} {'peak RSS MiB':>13}")
    for k in names:
        print(f"{k:36} {med[k]:9.2f} {min(times[k]):7.2f} {rss[k]:13.0f}")
    best = min(med["duckdb A (CREATE TABLE per group)"], med["duckdb B (one scan, list FILTER)"])
    print(f"\nmaterialize {len(groups)} groups: DuckDB's better formulation / cohort run = "
          f"{best / med['cohort run']:.2f}x")
    print(f"size one segment: duckdb count(*) / cohort size = "
          f"{med['duckdb count(*)'] / med['cohort size --where']:.2f}x")


if __name__ == "__main__":
    main()
