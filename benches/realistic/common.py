"""Shared pieces of the realistic benchmark: data preparation, the translation of group
definitions to DuckDB SQL (exactly per SPEC §2.1–2.2), reading a published snapshot
(Roaring portable format, decoded with numpy), member fingerprints, and a process runner
that measures wall time, CPU time and peak RSS.

Translation rules (SPEC §2):
- a condition on a null attribute is false, whatever the operator (negated ones
  included), except `not_exists`: every translated condition but exists / not_exists is
  wrapped in coalesce(..., false);
- `ignore_case`: lower() on both sides, in DuckDB (lower(col) op lower('literal'));
- a date compares as the instant of its UTC midnight; windows are relative to the fixed
  as_of and include both ends; before / after are strict; `on` is the same UTC day.
  Instants are computed here in integer microseconds and compared against DATE literals
  (date columns: exact day rounding) or TIMESTAMPTZ literals (timestamp columns);
- SQL conditions are passed through with now() / current_date() replaced by as_of;
- in_group / not_in_group inline the referenced group's final membership;
- members = (OR includes AND NOT OR excludes) ∪ static.include − static.exclude.
"""
import datetime as dt
import glob
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

US_PER_DAY = 86_400_000_000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
DATE_COLUMNS = {"signup_date", "birth_date"}
TIMESTAMP_COLUMNS = {"last_visit_at"}
LIST_COLUMNS = {"tags"}


# ---- data ------------------------------------------------------------------------------
def prepare_data(cohort, workdir, customers, id_type, files=4, seed=42):
    """`cohort gen` output split into `files` Parquet files of whole 1M-row row groups (or
    equal parts when smaller). Returns the folder holding part-*.parquet."""
    import pyarrow.parquet as pq

    base = os.path.join(workdir, f"data-{customers}-{id_type}")
    folder = os.path.join(base, "customers")
    if glob.glob(os.path.join(folder, "part-*.parquet")):
        return folder
    gen = os.path.join(base, "gen")
    print(f"generating {customers} customers ({id_type} ids) in {base} ...", file=sys.stderr)
    subprocess.run([cohort, "gen", "--customers", str(customers), "--id-type", id_type,
                    "--seed", str(seed), "--out", gen], check=True)
    src = pq.ParquetFile(os.path.join(gen, "customers.parquet"))
    rows = src.metadata.num_rows
    row_group = 1 << 20
    per_file = max(1, -(-rows // files))
    if rows >= files * row_group:  # keep gen's 1M-row row groups whole
        per_file = -(-(-(-rows // row_group)) // files) * row_group
    os.makedirs(folder + ".tmp", exist_ok=True)
    writer, written, part = None, 0, 0
    for batch in src.iter_batches(batch_size=65_536):
        while batch.num_rows:
            if writer is None:
                path = os.path.join(folder + ".tmp", f"part-{part:03d}.parquet")
                writer = pq.ParquetWriter(path, src.schema_arrow, compression="snappy")
                written = 0
            take = min(batch.num_rows, per_file - written)
            writer.write_batch(batch.slice(0, take), row_group_size=row_group)
            batch, written = batch.slice(take), written + take
            if written == per_file:
                writer.close()
                writer, part = None, part + 1
    if writer:
        writer.close()
    os.rename(folder + ".tmp", folder)
    os.remove(os.path.join(gen, "customers.parquet"))
    return folder


# ---- definitions -> DuckDB SQL ---------------------------------------------------------
def quote(v):
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"CAST({v!r} AS DOUBLE)"
    return repr(v)


def instant_us(text):
    """A date (UTC midnight) or an RFC 3339 timestamp, as microseconds since the epoch."""
    if len(text) == 10:
        d = dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    else:
        d = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    delta = d - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def window_us(text):
    n, unit = int(text[:-1]), text[-1]
    return n * {"h": 3_600_000_000, "d": US_PER_DAY, "w": 7 * US_PER_DAY}[unit]


def day_literal(days):
    return "DATE '" + (dt.date(1970, 1, 1) + dt.timedelta(days=days)).isoformat() + "'"


def ts_literal(us):
    d = EPOCH + dt.timedelta(microseconds=us)
    return "TIMESTAMPTZ '" + d.strftime("%Y-%m-%d %H:%M:%S.%f") + "+00'"


def instant_cmp(col, attr, op, us):
    """`value op instant` for a date or timestamp column."""
    if attr in TIMESTAMP_COLUMNS:
        return f"{col} {op} {ts_literal(us)}"
    floor, ceil = us // US_PER_DAY, -(-us // US_PER_DAY)
    # A date d stands for the instant d * day: d < t <=> d < ceil(t); d <= t <=> d <= floor(t)...
    day = {"<": ceil, "<=": floor, ">": floor, ">=": ceil}[op]
    return f"{col} {op} {day_literal(day)}"


def instant_range(col, attr, lo_us, hi_us):
    return f"({instant_cmp(col, attr, '>=', lo_us)} AND {instant_cmp(col, attr, '<=', hi_us)})"


def sql_escape_hatch(text, as_of_us):
    """A DataFusion SQL condition as DuckDB SQL: now() / current_date() are as_of, and
    decimal literals are DOUBLE (DataFusion parses 23.95 as Float64, DuckDB as DECIMAL:
    `total_spend > 23.95 * order_count` differs for 431.1 vs 18 orders otherwise)."""
    parts = text.split("'")
    for i in range(0, len(parts), 2):  # outside string literals only
        parts[i] = re.sub(r"(?<![\w.])(\d+\.\d*|\.\d+)(?![\w.])", r"CAST(\1 AS DOUBLE)", parts[i])
    text = "'".join(parts)
    now = ts_literal(as_of_us)
    today = day_literal(as_of_us // US_PER_DAY)
    text = re.sub(r"\bnow\(\)", now, text, flags=re.I)
    return re.sub(r"\bcurrent_date\(\)", today, text, flags=re.I)


def condition_sql(c, ctx):
    if "sql" in c:
        return f"coalesce(({sql_escape_hatch(c['sql'], ctx.as_of_us)}), false)"
    op = c["op"].replace(" ", "_")
    if op in ("in_group", "not_in_group"):
        inner = ctx.group_sql(c["value"])
        return inner if op == "in_group" else f"NOT {inner}"
    attr = c["attribute"]
    col = f'"{attr}"'
    vs = c["values"] if "values" in c else ([c["value"]] if "value" in c else [])
    if op == "exists":
        return f"({col} IS NOT NULL)"
    if op == "not_exists":
        return f"({col} IS NULL)"
    if op == "is_true":
        return f"coalesce({col}, false)"
    if op == "is_false":
        return f"coalesce(NOT {col}, false)"
    if attr in LIST_COLUMNS:
        any_ = f"list_has_any({col}, [{', '.join(quote(v) for v in vs)}]::VARCHAR[])"
        e = any_ if op == "contains" else f"NOT {any_}"
    elif attr in DATE_COLUMNS or attr in TIMESTAMP_COLUMNS:
        e = temporal_sql(col, attr, op, vs, ctx.as_of_us)
    else:
        if c.get("ignore_case"):
            col = f"lower({col})"
            lits = [f"lower({quote(v)})" for v in vs]
        else:
            lits = [quote(v) for v in vs]
        cmp = {"equals": "=", "not_equals": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
        if op in cmp:
            e = f"{col} {cmp[op]} {lits[0]}"
        elif op == "between":
            e = f"{col} BETWEEN {lits[0]} AND {lits[1]}"
        elif op == "in":
            e = f"{col} IN ({', '.join(lits)})"
        elif op == "not_in":
            e = f"{col} NOT IN ({', '.join(lits)})"
        elif op in ("contains", "not_contains", "starts_with", "ends_with"):
            fn = {"contains": "contains", "not_contains": "contains",
                  "starts_with": "starts_with", "ends_with": "ends_with"}[op]
            e = "(" + " OR ".join(f"{fn}({col}, {lit})" for lit in lits) + ")"
            if op == "not_contains":
                e = f"NOT {e}"
        else:
            raise SystemExit(f"no translation for operator {op} on {attr}")
    return f"coalesce({e}, false)"


def temporal_sql(col, attr, op, vs, as_of_us):
    if op == "within_last":
        return instant_range(col, attr, as_of_us - window_us(vs[0]), as_of_us)
    if op == "not_within_last":
        return instant_cmp(col, attr, "<", as_of_us - window_us(vs[0]))
    ts = [instant_us(v) for v in vs]
    if op in ("before", "lt"):
        return instant_cmp(col, attr, "<", ts[0])
    if op in ("after", "gt"):
        return instant_cmp(col, attr, ">", ts[0])
    if op == "gte":
        return instant_cmp(col, attr, ">=", ts[0])
    if op == "lte":
        return instant_cmp(col, attr, "<=", ts[0])
    if op == "between":
        return instant_range(col, attr, ts[0], ts[1])
    if op == "on":
        day = ts[0] // US_PER_DAY * US_PER_DAY
        return instant_range(col, attr, day, day + US_PER_DAY - 1)
    raise SystemExit(f"no translation for temporal operator {op}")


class Translator:
    """DuckDB SQL of each group's final membership (a boolean expression per row)."""

    def __init__(self, groups, id_type, as_of, id_column="customer_id"):
        self.groups, self.id_type, self.id_column = groups, id_type, id_column
        self.as_of_us = instant_us(as_of)
        self.cache = {}

    def ids(self, values):
        if self.id_type == "string":
            return ", ".join(quote(str(v)) for v in values)
        return ", ".join(str(int(v)) for v in values)

    def clause(self, clause):
        parts = [condition_sql(c, self) for c in clause.get("conditions", [])]
        if not parts:
            return "true" if clause.get("match", "all") == "all" else "false"
        joiner = " AND " if clause.get("match", "all") == "all" else " OR "
        return "(" + joiner.join(parts) + ")"

    def group_sql(self, gid):
        if gid in self.cache:
            return self.cache[gid]
        g = self.groups[gid]
        include = " OR ".join(self.clause(c) for c in g.get("include", [])) or "false"
        exclude = " OR ".join(self.clause(c) for c in g.get("exclude", [])) or "false"
        e = f"(({include}) AND NOT ({exclude}))"
        st = g.get("static", {})
        if st.get("include"):
            e = f"({e} OR {self.id_column} IN ({self.ids(st['include'])}))"
        if st.get("exclude"):
            e = f"({e} AND {self.id_column} NOT IN ({self.ids(st['exclude'])}))"
        self.cache[gid] = e
        return e


def load_groups(folder):
    groups = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            with open(os.path.join(folder, name)) as f:
                groups[name[:-5]] = json.load(f)
    return groups


# ---- published snapshot ----------------------------------------------------------------
def decode_roaring(buf):
    """Standard 32-bit Roaring portable format -> sorted uint32 numpy array."""
    cookie = int.from_bytes(buf[0:4], "little")
    pos = 0
    if cookie & 0xFFFF == 12347:
        n = (cookie >> 16) + 1
        pos = 4
        run_bits = np.frombuffer(buf, np.uint8, (n + 7) // 8, pos)
        runs = np.unpackbits(run_bits, bitorder="little")[:n].astype(bool)
        pos += (n + 7) // 8
        has_offsets = n >= 4
    elif cookie == 12346:
        n = int.from_bytes(buf[4:8], "little")
        pos = 8
        runs = np.zeros(n, bool)
        has_offsets = True
    else:
        raise ValueError(f"not a portable roaring bitmap (cookie {cookie})")
    header = np.frombuffer(buf, "<u2", 2 * n, pos).reshape(n, 2)
    pos += 4 * n
    if has_offsets:
        pos += 4 * n
    out = []
    for i in range(n):
        key, card = int(header[i, 0]) << 16, int(header[i, 1]) + 1
        if runs[i]:
            r = int.from_bytes(buf[pos:pos + 2], "little")
            pairs = np.frombuffer(buf, "<u2", 2 * r, pos + 2).reshape(r, 2).astype(np.uint32)
            pos += 2 + 4 * r
            vals = np.concatenate([np.arange(s, s + l + 1, dtype=np.uint32) for s, l in pairs]) \
                if r else np.zeros(0, np.uint32)
        elif card <= 4096:
            vals = np.frombuffer(buf, "<u2", card, pos).astype(np.uint32)
            pos += 2 * card
        else:
            words = np.frombuffer(buf, np.uint8, 8192, pos)
            vals = np.flatnonzero(np.unpackbits(words, bitorder="little")).astype(np.uint32)
            pos += 8192
        out.append(vals + key)
    return np.concatenate(out) if out else np.zeros(0, np.uint32)


class Snapshot:
    def __init__(self, publish):
        run_id = open(os.path.join(publish, "LATEST")).read().strip()
        self.dir = os.path.join(publish, "runs", run_id)
        with open(os.path.join(self.dir, "manifest.json")) as f:
            self.manifest = json.load(f)
        self.groups = {g["id"]: g for g in self.manifest["groups"]}
        mapping = self.manifest["id_mapping"]
        self.dictionary = None
        if mapping != "identity":
            import pyarrow.parquet as pq
            self.dictionary = pq.read_table(os.path.join(self.dir, mapping["path"])).column(0)
        self.files = {}

    def members(self, gid):
        """The group's external ids, as a pyarrow array."""
        import pyarrow as pa
        b = self.groups[gid]["bitmap"]
        if b["path"] not in self.files:
            with open(os.path.join(self.dir, b["path"]), "rb") as f:
                self.files[b["path"]] = f.read()
        bits = decode_roaring(memoryview(self.files[b["path"]])[b["offset"]:b["offset"] + b["length"]])
        assert len(bits) == self.groups[gid]["members"], gid
        if self.dictionary is None:
            return pa.array(bits.astype(np.int64))
        return self.dictionary.take(pa.array(bits)).combine_chunks()


# ---- member fingerprints ---------------------------------------------------------------
def duckdb_fingerprints(con, source, sqls, id_column="customer_id", chunk=200):
    """{gid: (count, sum of hash(id))} for every group, by DuckDB, a few scans."""
    out = {}
    items = list(sqls.items())
    for i in range(0, len(items), chunk):
        part = items[i:i + chunk]
        cols = ", ".join(f"count(*) FILTER (WHERE {e}), sum(hash({id_column})) FILTER (WHERE {e})"
                         for _, e in part)
        row = con.execute(f"SELECT {cols} FROM read_parquet({quote(source)})").fetchall()[0]
        for j, (gid, _) in enumerate(part):
            out[gid] = (int(row[2 * j]), int(row[2 * j + 1] or 0))
    return out


def cohort_fingerprint(con, ids):
    import pyarrow as pa
    con.register("cohort_members", pa.table({"id": ids}))
    n, h = con.execute("SELECT count(*), sum(hash(id)) FROM cohort_members").fetchall()[0]
    con.unregister("cohort_members")
    return int(n), int(h or 0)


def member_diff(con, source, expr, ids, id_column="customer_id", limit=5):
    """Ids DuckDB has and Cohort lacks, and the reverse (a few of each, with their rows)."""
    import pyarrow as pa
    con.register("cohort_members", pa.table({"id": ids}))
    only_duck = con.execute(
        f"SELECT * FROM read_parquet({quote(source)}) WHERE {expr} AND {id_column} NOT IN "
        f"(SELECT id FROM cohort_members) LIMIT {limit}").fetchall()
    only_cohort = con.execute(
        f"SELECT * FROM read_parquet({quote(source)}) WHERE NOT ({expr}) AND {id_column} IN "
        f"(SELECT id FROM cohort_members) LIMIT {limit}").fetchall()
    con.unregister("cohort_members")
    return only_duck, only_cohort


# ---- processes -------------------------------------------------------------------------
TIME = "/usr/bin/time"


def run(cmd, **kw):
    """Runs a command to completion; returns dict(wall, cpu (user+sys s), rss (MiB), out).

    Peak RSS and CPU come from GNU time (/usr/bin/time) when present: getrusage of a
    child forked straight from this Python process would report at least this process's
    own RSS (Linux keeps ru_maxrss across fork and exec). Output goes through temporary
    files so a large stdout cannot block the child."""
    import tempfile
    wrap = os.path.exists(TIME)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.NamedTemporaryFile("r") as stats:
        full = [TIME, "-o", stats.name, "-f", "%M %U %S", *cmd] if wrap else cmd
        start = time.perf_counter()
        p = subprocess.Popen(full, stdout=out, stderr=err, text=True, **kw)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - start
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({p.returncode}):\n{errors[-3000:]}")
        if wrap:
            rss_kib, user, system = stats.read().split()[-3:]
            cpu, rss = float(user) + float(system), int(rss_kib) / 1024
        else:
            cpu, rss = usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
    return {"wall": wall, "cpu": cpu, "rss": rss, "out": text, "err": errors}
