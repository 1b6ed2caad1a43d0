#!/usr/bin/env python3
"""Cohort against DuckDB on realistic, mostly distinct groups (issue 20), whole process
against whole process, runs alternating within one invocation.

For every case (id type × group shape × group count):
  1. data: `cohort gen --customers N --id-type T --seed 42`, split into --files Parquet
     files (1M-row row groups kept whole); Cohort and DuckDB read the same folder;
  2. groups: benches/realistic/make_groups.py (--shape distinct: mostly distinct random
     conditions over every operator; --shape shared: the old benches/make_groups.py shape);
  3. verification, before any timing: `cohort run` publishes a snapshot; each group's
     members are read back from it (Roaring portable format, mapped through the id
     dictionary) and compared with DuckDB's members for the translated SQL (see
     common.py for the translation rules), by count and by sum(hash(id)) over the ids
     (at --customers ≤ 1M also by an exact set difference on mismatch, with example rows).
     Any difference stops the case (exit 1 at the end);
  4. timing, --rounds rounds, command order alternating each round:
       cohort run      (publishes into an empty folder each time: a first run, no reuse)
       duckdb A        one CREATE TABLE ... AS SELECT id ... WHERE <group> per group
       duckdb B        one scan: CREATE TABLE AS SELECT list(id) FILTER (WHERE <group>)...
     Each command is a fresh process; wall time, user+sys CPU (getrusage of the child)
     and peak RSS are recorded.
Report (Markdown, stdout): median / min wall seconds, median CPU seconds, peak RSS,
CPU ns per customer × group, CPU ns per customer × distinct condition (Cohort's own count
from its run report), and DuckDB's best median / Cohort's median. Also written as JSON
to WORKDIR/results.json.

Full size (issue 20; release build; ~1 h at 3 rounds):
  python3 benches/realistic/compare.py --cohort $CARGO_TARGET_DIR/release/cohort \
      --customers 10000000 --groups 100,1000 --id-types int,string --shapes distinct,shared \
      --rounds 3 --workdir /tmp/cohort-realistic
Small sanity check (debug build is fine):
  python3 benches/realistic/compare.py --cohort target/debug/cohort --customers 200000 \
      --groups 100 --rounds 1

Needs: pip install duckdb pyarrow numpy.
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import duckdb  # noqa: E402

import common  # noqa: E402
import make_groups  # noqa: E402

AS_OF = "2026-11-22T00:00:00Z"


def duckdb_script(kind, source, sqls):
    head = ("import duckdb, json, sys\ncon = duckdb.connect()\n"
            "con.execute(\"SET TimeZone='UTC'\")\n")
    src = f"read_parquet({common.quote(source)})"
    if kind == "A":
        body = "\n".join(
            f"con.execute({json.dumps(f'CREATE TABLE {gid} AS SELECT customer_id FROM {src} WHERE {e}')})"
            for gid, e in sqls.items())
        tail = ("print(json.dumps([con.execute(f'SELECT count(*) FROM {g}').fetchall()[0][0] "
                f"for g in {json.dumps(list(sqls))}]))\n")
        return head + body + "\n" + tail
    cols = ", ".join(f"list(customer_id) FILTER (WHERE {e}) AS {gid}" for gid, e in sqls.items())
    lens = ", ".join(f"len({gid})" for gid in sqls)
    return (head + f"con.execute({json.dumps(f'CREATE TABLE members AS SELECT {cols} FROM {src}')})\n"
            f"print(json.dumps(list(con.execute({json.dumps(f'SELECT {lens} FROM members')}).fetchall()[0])))\n")


def verify(args, case, source, groups, sqls, cohort_cmd, publish):
    """Same members on both sides, for every group. Returns (cohort report, problems)."""
    shutil.rmtree(publish, ignore_errors=True)
    report = json.loads(common.run(cohort_cmd)["out"])
    snap = common.Snapshot(publish)
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    theirs = common.duckdb_fingerprints(con, source, sqls)
    problems = []
    for gid in groups:
        ids = snap.members(gid)
        ours = common.cohort_fingerprint(con, ids)
        if ours != theirs[gid]:
            msg = f"{case}: {gid}: cohort {ours[0]} members, duckdb {theirs[gid][0]}"
            if args.customers <= 1_000_000:
                only_duck, only_cohort = common.member_diff(con, source, sqls[gid], ids)
                msg += f"\n  only duckdb: {only_duck}\n  only cohort: {only_cohort}"
            problems.append(msg)
    counts = {g["group"]: g["members"] for g in report["groups"]}
    for gid in groups:
        if counts.get(gid) != len(snap.members(gid)) and not problems:
            problems.append(f"{case}: {gid}: run report says {counts.get(gid)}, snapshot disagrees")
    return report, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cohort", required=True)
    ap.add_argument("--customers", type=int, default=10_000_000)
    ap.add_argument("--groups", default="100", help="comma-separated group counts")
    ap.add_argument("--id-types", default="int,string")
    ap.add_argument("--shapes", default="distinct", help="distinct,shared")
    ap.add_argument("--duckdb", default="A,B", help="DuckDB formulations to time (A,B)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--files", type=int, default=4, help="Parquet files to split the data into")
    ap.add_argument("--seed", type=int, default=1, help="group generator seed")
    ap.add_argument("--as-of", default=AS_OF)
    ap.add_argument("--verify-only", action="store_true")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "cohort-realistic"))
    args = ap.parse_args()
    cohort = os.path.abspath(args.cohort)
    os.makedirs(args.workdir, exist_ok=True)
    config = os.path.join(args.workdir, "cohort.toml")  # empty: no stray cohort.toml applies
    open(config, "w").close()

    results, failures = [], []
    for id_type in args.id_types.split(","):
        source_dir = common.prepare_data(cohort, args.workdir, args.customers, id_type, args.files)
        source = os.path.join(source_dir, "*.parquet")
        for shape in args.shapes.split(","):
            for n in (int(x) for x in args.groups.split(",")):
                case = f"{shape} {n} groups, {id_type} ids"
                queries = os.path.join(args.workdir, f"groups-{shape}-{n}-{id_type}")
                groups = make_groups.make(n, shape, id_type, args.customers, args.seed)
                make_groups.write(queries, groups)
                keys = make_groups.condition_keys(groups)
                sqls = {gid: common.Translator(groups, id_type, args.as_of).group_sql(gid)
                        for gid in groups}
                scripts = {}
                for kind in args.duckdb.split(","):
                    scripts[kind] = os.path.join(args.workdir, f"duckdb_{kind}_{shape}_{n}_{id_type}.py")
                    with open(scripts[kind], "w") as f:
                        f.write(duckdb_script(kind, source, sqls))
                publish = os.path.join(args.workdir, "snapshots")
                cohort_cmd = [cohort, "run", "--config", config, "--customers", source_dir,
                              "--queries", queries, "--as-of", args.as_of, "--publish", publish,
                              "--format", "json"]
                report, problems = verify(args, case, source, groups, sqls, cohort_cmd, publish)
                members = sum(g["members"] for g in report["groups"])
                print(f"{case}: {len(keys)} written conditions, {len(set(keys))} distinct "
                      f"(cohort compiles {report['conditions']}); {members / report['customers']:.2f} "
                      f"memberships per customer; "
                      + ("SAME MEMBERS for every group" if not problems else
                         f"{len(problems)} GROUPS DIFFER"), file=sys.stderr)
                if problems:
                    failures.extend(problems)
                    print("\n".join(problems), file=sys.stderr)
                    continue
                if args.verify_only:
                    continue
                commands = {"cohort run": cohort_cmd}
                for kind, label in (("A", "duckdb A (CREATE TABLE per group)"),
                                    ("B", "duckdb B (one scan, list FILTER)")):
                    if kind in scripts:
                        commands[label] = [sys.executable, scripts[kind]]
                samples = {k: [] for k in commands}
                names = list(commands)
                for r in range(args.rounds):
                    for name in (names if r % 2 == 0 else names[::-1]):
                        if name == "cohort run":
                            shutil.rmtree(publish, ignore_errors=True)
                        samples[name].append(common.run(commands[name]))
                    print(f"{case}: round {r + 1}/{args.rounds}", file=sys.stderr)
                for name in names:
                    s = samples[name]
                    results.append({
                        "case": case, "id_type": id_type, "shape": shape, "groups": n,
                        "customers": report["customers"], "distinct_conditions": report["conditions"],
                        "written_conditions": len(keys), "command": name,
                        "wall_median": statistics.median(x["wall"] for x in s),
                        "wall_min": min(x["wall"] for x in s),
                        "cpu_median": statistics.median(x["cpu"] for x in s),
                        "rss_peak": max(x["rss"] for x in s),
                    })
    if results:
        print_table(results)
        with open(os.path.join(args.workdir, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
    if failures:
        print(f"\n{len(failures)} groups differ between Cohort and DuckDB", file=sys.stderr)
        sys.exit(1)


def print_table(results):
    print("| case | command | median s | min s | CPU s | peak RSS MiB | CPU ns / cust×group "
          "| CPU ns / cust×distinct cond | DuckDB best / cohort |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
    cases = []
    for r in results:
        if r["case"] not in cases:
            cases.append(r["case"])
    for case in cases:
        rows = [r for r in results if r["case"] == case]
        duck = [r["wall_median"] for r in rows if r["command"].startswith("duckdb")]
        ours = [r["wall_median"] for r in rows if r["command"] == "cohort run"][0]
        for r in rows:
            cg = r["customers"] * r["groups"]
            cd = r["customers"] * r["distinct_conditions"]
            ratio = f"{min(duck) / ours:.2f}×" if duck and r["command"] == "cohort run" else ""
            print(f"| {case} | {r['command']} | {r['wall_median']:.2f} | {r['wall_min']:.2f} "
                  f"| {r['cpu_median']:.2f} | {r['rss_peak']:.0f} | {r['cpu_median'] * 1e9 / cg:.1f} "
                  f"| {r['cpu_median'] * 1e9 / cd:.1f} | {ratio} |")


if __name__ == "__main__":
    main()
