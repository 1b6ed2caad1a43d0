#!/usr/bin/env python3
"""A stand-in for `cohort serve` to develop and test the dashboard without cargo.

Serves the real assets (cohort-serve/src/assets) at `/` and `/assets/...`, and canned JSON
for the dashboard API as the Rust side implements it:

  GET  /v1/dashboard   run header + N generated groups (with history, entered/exited)
  POST /v1/overlap     symmetric intersection matrix
  GET  /v1/schema      customers columns + operators per kind (404 with --no-sizing)
  POST /v1/size        evaluates the definition on 20,000 synthetic customers; a 422
                       with structured problems for unknown attributes (e.g. `agee`),
                       bad operators, wrong value types, unknown groups

Only 127.0.0.1. Stdlib only.

  python3 tests/dashboard/mock_server.py [--port 0] [--groups 500] [--token T]
                                         [--no-sizing] [--allow-sql] [--port-file F]

With --port 0 a free port is taken; the URL is printed on the first stdout line and
written to --port-file if given.
"""
import argparse
import datetime as dt
import difflib
import json
import os
import random
import sys
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
ASSETS = os.path.normpath(os.path.join(HERE, "..", "..", "src", "serve", "assets"))
AS_OF = dt.datetime(2024, 6, 30, tzinfo=dt.timezone.utc)

OPS = {
    "equals": ("is equal", "one"), "not_equals": ("is not equal", "one"),
    "in": ("is one of", "list"), "not_in": ("is not one of", "list"),
    "contains": ("contains", "list"), "not_contains": ("does not contain", "list"),
    "starts_with": ("starts with", "one"), "ends_with": ("ends with", "one"),
    "gt": ("is greater than", "one"), "gte": ("is greater than or equal", "one"),
    "lt": ("is less than", "one"), "lte": ("is less than or equal", "one"),
    "between": ("is between", "two"), "exists": ("exists", "none"),
    "not_exists": ("doesn't exist", "none"), "is_true": ("is true", "none"),
    "is_false": ("is false", "none"), "within_last": ("is in the last", "one"),
    "not_within_last": ("is not in the last", "one"), "before": ("is before", "one"),
    "after": ("is after", "one"), "on": ("is on", "one"),
}
KIND_OPS = {
    "number": ["equals", "not_equals", "in", "not_in", "gt", "gte", "lt", "lte", "between", "exists", "not_exists"],
    "string": ["equals", "not_equals", "in", "not_in", "contains", "not_contains", "starts_with", "ends_with",
               "gt", "gte", "lt", "lte", "between", "exists", "not_exists"],
    "date": ["equals", "not_equals", "before", "after", "on", "gt", "gte", "lt", "lte", "between",
             "within_last", "not_within_last", "exists", "not_exists"],
    "timestamp": ["before", "after", "on", "gt", "gte", "lt", "lte", "between", "within_last",
                  "not_within_last", "exists", "not_exists"],
    "boolean": ["is_true", "is_false", "equals", "not_equals", "exists", "not_exists"],
    "list": ["contains", "not_contains", "exists", "not_exists"],
    "other": ["exists", "not_exists"],
}
ALIASES = {v[0]: k for k, v in OPS.items()}
ALIASES.update({"=": "equals", "!=": "not_equals", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte",
                "does not exist": "not_exists", "in group": "in_group", "not in group": "not_in_group",
                "is between": "between"})

COLUMNS = [
    ("customer_id", "Int64", "number", False),
    ("age", "Int32", "number", True),
    ("country", "Utf8", "string", True),
    ("state", "Utf8", "string", True),
    ("email", "Utf8", "string", True),
    ("loyalty_tier", "Utf8", "string", True),
    ("tags", "List(Utf8)", "list", True),
    ("store_shopper", "Boolean", "boolean", True),
    ("signup_date", "Date32", "date", True),
    ("last_visit_at", "Timestamp(Microsecond, UTC)", "timestamp", True),
    ("lifetime_value", "Float64", "number", True),
]
KIND = {c[0]: c[2] for c in COLUMNS}
COUNTRIES = [("United States", ["Alaska", "Florida", "Alabama", "Texas", "California", "New York"]),
             ("Canada", ["British Columbia", "Nova Scotia", "Ontario", "Quebec"]),
             ("Mexico", ["Jalisco", "Yucatán"]), ("Germany", ["Bayern", "Berlin"])]
TIERS = ["bronze", "silver", "GOLD", "platinum", "Platinum"]
TAGS = ["newsletter", "sms", "returns", "vip-event", "outlet"]
DOMAINS = ["gmail.com", "example.com", "yahoo.com", "outlook.com"]


def make_customers(n=20000, seed=7):
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        country, states = rnd.choices(COUNTRIES, weights=[55, 20, 15, 10])[0]
        out.append({
            "customer_id": i,
            "age": None if rnd.random() < 0.08 else rnd.randint(12, 90),
            "country": None if rnd.random() < 0.02 else country,
            "state": rnd.choice(states),
            "email": None if rnd.random() < 0.05 else "user%d@%s" % (i, rnd.choice(DOMAINS)),
            "loyalty_tier": None if rnd.random() < 0.3 else rnd.choice(TIERS),
            "tags": rnd.sample(TAGS, rnd.randint(0, 3)),
            "store_shopper": rnd.random() < 0.4,
            "signup_date": (AS_OF - dt.timedelta(days=rnd.randint(0, 2000))).date(),
            "last_visit_at": None if rnd.random() < 0.1 else AS_OF - dt.timedelta(hours=rnd.randint(0, 24 * 400)),
            "lifetime_value": round(rnd.expovariate(1 / 400), 2),
        })
    return out


def make_groups(n, customers, seed=11):
    rnd = random.Random(seed)
    words = ["us", "ca", "adults", "vip", "lapsed", "newsletter", "shoes", "winter", "spring", "outlet",
             "gold", "store", "online", "mobile", "high_value", "churn_risk", "loyal", "new", "returning", "gmail"]
    base = [("us_adults", "US adults", "Seed example: customers from the US, not younger than 18 or of unknown age"),
            ("us_canada_adults", "US & Canada adults", "Campaign: winter launch"),
            ("vip", "VIP", None), ("lapsed", "Lapsed: no order in the last 180 days", None),
            ("gmail_newsletter", "Gmail newsletter readers", None)]
    groups = []
    for i in range(n):
        if i < len(base):
            gid, name, desc = base[i]
        else:
            a, b = rnd.sample(words, 2)
            gid = "%s_%s_%03d" % (a, b, i)
            name = ("%s %s" % (a, b)).replace("_", " ").capitalize() + " #%d" % i
            desc = rnd.choice([None, None, "Campaign: %s %d" % (rnd.choice(["summer", "winter", "black friday"]), 2024),
                               "Generated by the CRM export"])
        size = int(customers * min(0.95, rnd.betavariate(0.7, 4)))
        runs = rnd.randint(1, 30)
        hist, m = [], size
        for r in range(runs):
            hist.append(m)
            m = max(0, int(m * rnd.uniform(0.93, 1.06)))
        hist.reverse()
        hist[-1] = size
        day0 = AS_OF - dt.timedelta(days=runs - 1)
        history = [{"run_id": "run-%s" % (day0 + dt.timedelta(days=k)).strftime("%Y%m%d"),
                    "as_of": (day0 + dt.timedelta(days=k)).isoformat().replace("+00:00", "Z"),
                    "members": v} for k, v in enumerate(hist)]
        prev = hist[-2] if runs > 1 else None
        entered = exited = None
        if prev is not None:
            churn = rnd.randint(0, max(1, size // 40))
            entered = max(0, size - prev) + churn
            exited = max(0, prev - size) + churn
        warnings = []
        if rnd.random() < 0.06:
            warnings.append("static include: %d ids not in the customers table (e.g. C%06d)" % (rnd.randint(1, 40), rnd.randint(0, 999999)))
        if rnd.random() < 0.02:
            warnings.append("include[0] can never match: age < 18 and age doesn't exist on the same attribute")
        groups.append({"id": gid, "name": name, "description": desc, "members": size,
                       "share": size / customers if customers else 0, "entered": entered, "exited": exited,
                       "new": prev is None,
                       "warnings": warnings, "history": history})
    return groups


class Problems(Exception):
    def __init__(self, problems):
        super().__init__("definition has problems")
        self.problems = problems


def parse_time(v):
    s = str(v)
    if len(s) == 10:
        return dt.datetime.fromisoformat(s).replace(tzinfo=dt.timezone.utc)
    t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def parse_window(s):
    s = str(s).strip()
    units = {"h": 1, "d": 24, "w": 24 * 7}
    if len(s) < 2 or s[-1] not in units or not s[:-1].isdigit():
        raise ValueError("bad window %r: expected a number and a unit h, d or w, e.g. '30d'" % s)
    return dt.timedelta(hours=int(s[:-1]) * units[s[-1]])


class Evaluator:
    def __init__(self, customers, groups, allow_sql):
        self.customers = customers
        self.groups = {g["id"]: g for g in groups}
        self.allow_sql = allow_sql

    def compile(self, d):
        problems = []
        if not isinstance(d, dict):
            raise Problems([{"severity": "error", "path": "", "group": "", "message": "a definition is a JSON object",
                             "hint": None, "line": None, "column": None}])
        clauses = {}
        for kind in ("include", "exclude"):
            clauses[kind] = []
            for i, cl in enumerate(d.get(kind) or []):
                mode = cl.get("match", "all")
                if mode not in ("all", "any"):
                    problems.append(self.p("%s[%d]" % (kind, i), "match must be 'all' or 'any', not '%s'" % mode))
                preds = []
                conds = cl.get("conditions") or []
                for j, c in enumerate(conds):
                    path = "%s[%d].conditions[%d]" % (kind, i, j)
                    try:
                        preds.append(self.cond(c, path))
                    except Problems as e:
                        problems.extend(e.problems)
                clauses[kind].append((mode, preds))
                # a lint, as cohort validate does
                ops = {(c.get("attribute"), ALIASES.get(str(c.get("op", "")).lower(), str(c.get("op", "")).lower()))
                       for c in conds if isinstance(c, dict)}
                for a, o in ops:
                    if mode == "all" and o in ("lt", "lte", "gt", "gte", "equals") and (a, "not_exists") in ops:
                        problems.append(self.p("%s[%d]" % (kind, i), "this clause can never match: '%s' %s and '%s' doesn't exist" % (a, o, a),
                                               severity="warning", hint="use match = \"any\" in an exclude clause"))
        if any(p["severity"] == "error" for p in problems):
            raise Problems(problems)
        return clauses, problems

    @staticmethod
    def p(path, message, hint=None, severity="error"):
        return {"severity": severity, "path": path, "group": "(request)", "message": message, "hint": hint,
                "line": None, "column": None}

    def cond(self, c, path):
        if not isinstance(c, dict):
            raise Problems([self.p(path, "a condition is a table")])
        if "sql" in c:
            if not self.allow_sql:
                raise Problems([self.p(path, "SQL conditions are refused over HTTP", hint="start cohort serve with --allow-sql")])
            return lambda r: False
        op_raw = str(c.get("op", ""))
        op = ALIASES.get(op_raw.lower(), op_raw.lower())
        if "events" in c:
            if c["events"] != "orders":
                raise Problems([self.p(path, "unknown event table '%s'" % c["events"], hint="did you mean 'orders'?")])
            try:
                v = float(c.get("value"))
            except (TypeError, ValueError):
                raise Problems([self.p(path, "value must be a number")])
            h = zlib.crc32(json.dumps(c, sort_keys=True).encode())
            return lambda r: (r["customer_id"] * 2654435761 + h) % 100 < max(1, min(99, 60 - v))
        if op in ("in_group", "not_in_group"):
            g = c.get("value")
            if g not in self.groups:
                close = difflib.get_close_matches(str(g), list(self.groups), n=1)
                raise Problems([self.p(path, "unknown group '%s'" % g, hint="did you mean '%s'?" % close[0] if close else None)])
            share = self.groups[g]["share"]
            salt = zlib.crc32(g.encode())
            inside = lambda r: ((r["customer_id"] * 40503 + salt) % 10007) / 10007 < share
            return inside if op == "in_group" else (lambda r: not inside(r))
        attr = c.get("attribute")
        if attr not in KIND:
            close = difflib.get_close_matches(str(attr), list(KIND), n=1)
            raise Problems([self.p(path, "unknown attribute '%s'" % attr, hint="did you mean '%s'?" % close[0] if close else None)])
        kind = KIND[attr]
        if op not in OPS:
            raise Problems([self.p(path, "unknown operator '%s'" % op_raw)])
        if op not in KIND_OPS[kind]:
            raise Problems([self.p(path, "operator '%s' is not valid for %s column '%s'" % (op_raw, kind, attr))])
        arity = OPS[op][1]
        vals = c.get("values")
        if vals is None and "value" in c:
            vals = [c["value"]]
        vals = vals if isinstance(vals, list) else ([] if vals is None else [vals])
        if arity == "one" and len(vals) != 1:
            raise Problems([self.p(path, "'%s' takes one value" % op_raw)])
        if arity == "two" and len(vals) != 2:
            raise Problems([self.p(path, "'%s' takes values = [low, high]" % op_raw)])
        ic = bool(c.get("ignore_case"))

        def conv(v):
            if op in ("within_last", "not_within_last"):
                return parse_window(v)
            if kind == "number":
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ValueError("value %s for number column '%s' is not a number" % (json.dumps(v), attr))
                return v
            if kind in ("date", "timestamp"):
                return parse_time(v)
            if kind == "boolean":
                if not isinstance(v, bool):
                    raise ValueError("value %s for boolean column '%s' is not true or false" % (json.dumps(v), attr))
                return v
            if not isinstance(v, str):
                raise ValueError("value %s for string column '%s' is not a string" % (json.dumps(v), attr))
            return v.lower() if ic else v
        try:
            vs = [conv(v) for v in vals]
        except ValueError as e:
            raise Problems([self.p(path, str(e))])
        if op == "in" and not vs:
            pass

        def get(r):
            x = r[attr]
            if x is None:
                return None
            if kind == "date":
                x = dt.datetime(x.year, x.month, x.day, tzinfo=dt.timezone.utc)
            if ic and isinstance(x, str):
                x = x.lower()
            if ic and isinstance(x, list):
                x = [s.lower() for s in x]
            return x
        v0 = vs[0] if vs else None
        f = {
            "equals": lambda x: x == v0, "not_equals": lambda x: x != v0,
            "in": lambda x: x in vs, "not_in": lambda x: x not in vs,
            "contains": lambda x: any(v in x for v in vs), "not_contains": lambda x: not any(v in x for v in vs),
            "starts_with": lambda x: x.startswith(v0), "ends_with": lambda x: x.endswith(v0),
            "gt": lambda x: x > v0, "gte": lambda x: x >= v0, "lt": lambda x: x < v0, "lte": lambda x: x <= v0,
            "between": lambda x: vs[0] <= x <= vs[1], "exists": lambda x: True,
            "is_true": lambda x: x is True, "is_false": lambda x: x is False,
            "within_last": lambda x: AS_OF - v0 <= x <= AS_OF, "not_within_last": lambda x: x < AS_OF - v0,
            "before": lambda x: x < v0, "after": lambda x: x > v0, "on": lambda x: x.date() == v0.date(),
        }
        if op == "not_exists":
            return lambda r: r[attr] is None
        fn = f[op]

        def pred(r):
            x = get(r)
            return x is not None and fn(x)
        return pred

    def size(self, d):
        clauses, warnings = self.compile(d)

        def clause_fn(mode, preds):
            if mode == "any":
                return lambda r: any(p(r) for p in preds)
            return lambda r: all(p(r) for p in preds)
        inc = [clause_fn(*c) for c in clauses["include"]]
        exc = [clause_fn(*c) for c in clauses["exclude"]]
        ic = [0] * len(inc)
        ec = [0] * len(exc)
        members = 0
        for r in self.customers:
            hit_i = False
            for k, f in enumerate(inc):
                if f(r):
                    ic[k] += 1
                    hit_i = True
            hit_e = False
            for k, f in enumerate(exc):
                if f(r):
                    ec[k] += 1
                    hit_e = True
            if hit_i and not hit_e:
                members += 1
        return {"customers": len(self.customers), "members": members,
                "clauses": {"include": ic, "exclude": ec}, "problems": warnings}


def make_handler(cfg):
    customers = make_customers()
    groups = make_groups(cfg.groups, len(customers))
    ev = Evaluator(customers, groups, cfg.allow_sql)
    dashboard = {
        "run_id": "run-20240630T020000Z-7f3a",
        "as_of": AS_OF.isoformat().replace("+00:00", "Z"),
        "loaded_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "customers": len(customers),
        "warnings": ["static include of 'vip': 2 ids not in the customers table (e.g. 11)"] if cfg.groups else [],
        "sizing": {"enabled": not cfg.no_sizing, "allow_sql": cfg.allow_sql,
                   "reason": "live sizing is not enabled: start cohort serve with --customers <url> (or a cohort.toml)"
                   if cfg.no_sizing else None},
        "groups": groups,
    }
    gid_index = {g["id"]: g for g in groups}
    dashboard_bytes = json.dumps(dashboard).encode()

    def examples(name):
        seen = []
        for r in customers:
            v = r[name]
            if v is None or isinstance(v, list):
                continue
            s = v.isoformat() if hasattr(v, "isoformat") else str(v).lower() if isinstance(v, bool) else str(v)
            if s not in seen:
                seen.append(s)
            if len(seen) >= 5:
                break
        return seen
    schema = {
        "columns": [{"name": n, "type": t, "kind": k, "nullable": nl, "examples": examples(n)} for n, t, k, nl in COLUMNS],
        "operators": {k: [{"op": o, "label": OPS[o][0], "arity": OPS[o][1]} for o in ops] for k, ops in KIND_OPS.items()},
        "groups": [g["id"] for g in groups],
        "events": ["orders"],
    }
    types = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
             ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            if cfg.verbose:
                sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

        def send(self, status, body, ctype="application/json"):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def authed(self):
            if not cfg.token:
                return True
            if self.headers.get("Authorization") == "Bearer " + cfg.token:
                return True
            self.send(401, {"error": "missing or wrong bearer token"})
            return False

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n > 1 << 20:
                raise ValueError("body too large")
            try:
                return json.loads(self.rfile.read(n) or b"null")
            except json.JSONDecodeError as e:
                raise ValueError("body is not JSON: %s" % e)

        def do_GET(self):
            path = self.path.split("?")[0]
            if path == "/" or path.startswith("/assets/"):
                name = "index.html" if path == "/" else path[len("/assets/"):]
                full = os.path.normpath(os.path.join(ASSETS, name))
                if not full.startswith(ASSETS + os.sep) or not os.path.isfile(full):
                    return self.send(404, {"error": "no such asset"})
                with open(full, "rb") as f:
                    return self.send(200, f.read(), types.get(os.path.splitext(full)[1], "application/octet-stream"))
            if path == "/healthz":
                return self.send(200, {"ok": True})
            if not self.authed():
                return
            if path == "/v1/dashboard":
                if cfg.delay:
                    time.sleep(cfg.delay)
                return self.send(200, dashboard_bytes)
            if path == "/v1/schema":
                if cfg.no_sizing:
                    return self.send(404, {"error": dashboard["sizing"]["reason"]})
                return self.send(200, schema)
            self.send(404, {"error": "not found: %s" % path})

        def do_POST(self):
            path = self.path.split("?")[0]
            if not self.authed():
                return
            try:
                body = self.body()
            except ValueError as e:
                return self.send(400, {"error": str(e)})
            if path == "/v1/overlap":
                ids = (body or {}).get("groups") or []
                missing = [g for g in ids if g not in gid_index]
                if missing:
                    return self.send(404, {"error": "unknown group '%s'" % missing[0]})
                sizes = [gid_index[g]["members"] for g in ids]
                m = []
                for i, a in enumerate(ids):
                    row = []
                    for j, b in enumerate(ids):
                        if i == j:
                            row.append(sizes[i])
                            continue
                        x, y = sorted([a, b])
                        f = (zlib.crc32((x + "|" + y).encode()) % 1000) / 1000
                        row.append(int(min(sizes[i], sizes[j]) * f * f))
                    m.append(row)
                return self.send(200, {"groups": ids, "members": sizes, "matrix": m})
            if path == "/v1/size":
                if cfg.no_sizing:
                    return self.send(404, {"error": dashboard["sizing"]["reason"]})
                t = time.perf_counter()
                try:
                    res = ev.size(body)
                except Problems as e:
                    return self.send(422, {"error": "definition has problems", "problems": e.problems})
                res["elapsed_ms"] = round((time.perf_counter() - t) * 1000)
                return self.send(200, res)
            self.send(404, {"error": "not found: %s" % path})

    return H


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--groups", type=int, default=500)
    ap.add_argument("--token")
    ap.add_argument("--no-sizing", action="store_true")
    ap.add_argument("--allow-sql", action="store_true")
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before /v1/dashboard answers")
    ap.add_argument("--port-file")
    ap.add_argument("--verbose", action="store_true")
    cfg = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", cfg.port), make_handler(cfg))
    url = "http://127.0.0.1:%d/" % srv.server_address[1]
    print(url, flush=True)
    if cfg.port_file:
        with open(cfg.port_file + ".tmp", "w") as f:
            f.write(url)
        os.replace(cfg.port_file + ".tmp", cfg.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
