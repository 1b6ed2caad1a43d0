#!/usr/bin/env python3
"""Lookups while live sizings run (issue 36): `cohort serve` as a real process on
127.0.0.1, member lookups timed with and without four expensive sizings at once, the 429s
of a fifth sizing, and how soon a sizing past a 10 ms --size-timeout is answered and its
scan stops.

  1. a project folder (--data, reused when it has data and a published run): `cohort gen`
     customers, ten simple groups, a cohort.toml without event tables, one `cohort run`;
  2. `cohort serve --allow-sql --max-concurrent-sizes 4` on a free port;
  3. one sizing alone, of the seed example and of the expensive definition (3 each);
     lookups alone: --lookup-threads threads (keep-alive connections) each sending
     --lookups `GET /v1/groups/{g}/members/{id}` for random groups and ids;
  4. the same lookups while four threads each send the expensive definition (substring
     searches and SQL conditions) to `POST /v1/size` again and again, and a fifth thread
     sends one more sizing every 100 ms (answered 429 while the four hold the slots);
  5. a second server with `--size-timeout 10ms --max-concurrent-sizes 1`: --timeouts
     sizings one after another, each answer's time, and the time until
     `cohort_sizings_running` in /metrics is back to 0 (the scan has stopped).
Every loop is bounded; the servers are stopped by PID (SIGTERM, then SIGKILL).

  python3 benches/serve/lookups_under_sizing.py --customers 1000000 \\
      --cohort $CARGO_TARGET_DIR/release/cohort

Prints a Markdown table for docs/performance.md ("Lookups while sizing").
"""
import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

AS_OF = "2026-11-20T00:00:00Z"
GROUPS = {
    "us": [{"attribute": "country", "op": "equals", "value": "United States"}],
    "canada": [{"attribute": "country", "op": "equals", "value": "Canada"}],
    "adults": [{"attribute": "age", "op": "gte", "value": 18}],
    "seniors": [{"attribute": "age", "op": "gte", "value": 65}],
    "gold": [{"attribute": "loyalty_tier", "op": "in", "values": ["gold", "platinum"]}],
    "registered": [{"attribute": "registered", "op": "is_true"}],
    "store": [{"attribute": "store_shopper", "op": "is_true"}],
    "gmail": [{"attribute": "email", "op": "ends_with", "value": "@gmail.com"}],
    "big_spenders": [{"attribute": "total_spend", "op": "gt", "value": 1000}],
    "frequent": [{"attribute": "order_count", "op": "gte", "value": 10}],
}
# Substring searches over every email and city, and SQL the engine evaluates row by row.
EXPENSIVE = {"include": [
    {"conditions": [{"attribute": "email", "op": "contains",
                     "values": ["ab", "cd", "ef", "gh", "ij", "kl"], "ignore_case": True}]},
    {"conditions": [{"sql": "strpos(lower(concat(email, city, state)), 'xy') > 0"}]},
    {"conditions": [{"sql": "length(regexp_replace(email, '[aeiou]', '', 'g')) > 14"}]},
    {"match": "all", "conditions": [
        {"attribute": "city", "op": "contains", "values": ["an", "or", "el"], "ignore_case": True},
        {"sql": "character_length(upper(email)) % 7 = 3"}]},
]}

# The seed example of SPEC §2, for a sizing's own time.
SIMPLE = {"include": [{"conditions": [
    {"attribute": "country", "op": "equals", "value": "United States"}]}],
    "exclude": [{"match": "any", "conditions": [
        {"attribute": "age", "op": "lt", "value": 18},
        {"attribute": "age", "op": "not_exists"}]}]}


def find_cohort(given):
    if given:
        return given
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "target")
    path = os.path.join(target, "release", "cohort")
    if not os.path.exists(path):
        sys.exit(f"no {path}: build it with `cargo build --release` or pass --cohort")
    return path


def prepare(cohort, folder, customers):
    """The project folder, with data and a published run."""
    os.makedirs(os.path.join(folder, "queries"), exist_ok=True)
    data = os.path.join(folder, "data", "customers.parquet")
    if not os.path.exists(data):
        print(f"generating {customers} customers in {folder} ...", file=sys.stderr)
        subprocess.run([cohort, "gen", "--customers", str(customers), "--seed", "42",
                        "--out", os.path.join(folder, "data")], check=True,
                       stdout=subprocess.DEVNULL)
    with open(os.path.join(folder, "cohort.toml"), "w") as f:
        f.write('customers = "data/customers.parquet"\nid_column = "customer_id"\n'
                'queries = "queries"\npublish = "snapshots"\n')
    for gid, conditions in GROUPS.items():
        with open(os.path.join(folder, "queries", f"{gid}.json"), "w") as f:
            json.dump({"include": [{"conditions": conditions}]}, f)
    if not os.path.exists(os.path.join(folder, "snapshots", "LATEST")):
        print("publishing a run ...", file=sys.stderr)
        subprocess.run([cohort, "run", "--as-of", AS_OF], cwd=folder, check=True,
                       stdout=subprocess.DEVNULL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`cohort serve` on a free port of 127.0.0.1, stopped by PID."""

    def __init__(self, cohort, folder, extra):
        self.port = free_port()
        self.log = open(os.path.join(folder, f"serve-{self.port}.log"), "w")
        self.process = subprocess.Popen(
            [cohort, "serve", "--listen", f"127.0.0.1:{self.port}", "--poll-interval", "1h",
             *extra], cwd=folder, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"cohort serve exited with {self.process.returncode}; see {self.log.name}")
            try:
                # Answers once the run is loaded; /v1/schema once the table is opened.
                conn = self.connect(5)
                answered = request(conn, "GET", "/v1/schema")[0] == 200
                conn.close()
                if answered:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        sys.exit("cohort serve did not answer within 300 s")

    def connect(self, timeout):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def running(self):
        """`cohort_sizings_running` in /metrics."""
        conn = self.connect(5)
        _, body, _ = request(conn, "GET", "/metrics")
        conn.close()
        for line in body.decode().splitlines():
            if line.startswith("cohort_sizings_running "):
                return int(line.split()[1])
        raise SystemExit("no cohort_sizings_running in /metrics")

    def stop(self):
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self.log.close()


def request(conn, method, path, body=None):
    """(status, body, seconds) of one request on a keep-alive connection."""
    headers = {"content-type": "application/json"} if body is not None else {}
    started = time.perf_counter()
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, data, time.perf_counter() - started


def lookups(server, threads, per_thread, customers, seed):
    """Latencies (s) of `threads` × `per_thread` member lookups; every answer must be 200."""
    out, failures = [], []

    def worker(n):
        rnd = random.Random(seed * 1000 + n)
        conn = server.connect(60)
        mine = []
        for _ in range(per_thread):
            gid = rnd.choice(list(GROUPS))
            status, body, seconds = request(
                conn, "GET", f"/v1/groups/{gid}/members/{rnd.randint(1, customers)}")
            if status != 200:
                failures.append((status, body[:200]))
            mine.append(seconds)
        conn.close()
        out.extend(mine)

    workers = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if failures:
        sys.exit(f"{len(failures)} lookups failed, e.g. {failures[0]}")
    return out


def sizing_loop(server, stop, results, most=10_000):
    conn = server.connect(900)
    body = json.dumps(EXPENSIVE)
    for _ in range(most):
        if stop.is_set():
            break
        status, data, seconds = request(conn, "POST", "/v1/size", body)
        results.append((status, seconds, data[:200]))
    conn.close()


def probe_loop(server, stop, results, most=3_000):
    """One more sizing every 100 ms: 429 while the others hold every slot."""
    conn = server.connect(900)
    body = json.dumps(EXPENSIVE)
    for _ in range(most):
        if stop.wait(0.1):
            break
        results.append(request(conn, "POST", "/v1/size", body))
    conn.close()


def wait_until(what, check, limit):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.005)
    sys.exit(f"{what}: not within {limit} s")


def ms(seconds):
    return f"{seconds * 1000:.2f}"


def quantile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def row(label, values):
    return (f"| {label} | {len(values):,} | {ms(statistics.median(values))} | "
            f"{ms(quantile(values, 0.99))} | {ms(max(values))} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cohort", help="the cohort binary (default: $CARGO_TARGET_DIR/release/cohort)")
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--data", help="project folder (default /tmp/cohort-lookups-under-sizing-N)")
    ap.add_argument("--lookups", type=int, default=5_000, help="per lookup thread and phase")
    ap.add_argument("--lookup-threads", type=int, default=2)
    ap.add_argument("--sizings", type=int, default=4, help="sizings looping at once")
    ap.add_argument("--timeouts", type=int, default=5, help="sizings past a 10 ms timeout")
    ap.add_argument("--size-threads", type=int, help="cohort serve --size-threads")
    args = ap.parse_args()
    cohort = find_cohort(args.cohort)
    folder = args.data or f"/tmp/cohort-lookups-under-sizing-{args.customers}"
    prepare(cohort, folder, args.customers)
    threads = ["--size-threads", str(args.size_threads)] if args.size_threads else []

    server = Server(cohort, folder, ["--allow-sql", "--max-concurrent-sizes", str(args.sizings),
                                     "--size-timeout", "600s", *threads])
    try:
        lookups(server, args.lookup_threads, 500, args.customers, seed=0)  # warm up
        alone_sizings = {}
        for name, definition in (("simple", SIMPLE), ("expensive", EXPENSIVE)):
            conn = server.connect(900)
            times = []
            for _ in range(3):
                status, data, seconds = request(conn, "POST", "/v1/size", json.dumps(definition))
                if status != 200:
                    sys.exit(f"the {name} sizing answered {status}: {data[:200]}")
                times.append(seconds)
            conn.close()
            alone_sizings[name] = statistics.median(times)
        alone = lookups(server, args.lookup_threads, args.lookups, args.customers, seed=1)
        stop, sized, probed = threading.Event(), [], []
        loops = [threading.Thread(target=sizing_loop, args=(server, stop, sized), daemon=True)
                 for _ in range(args.sizings)]
        for t in loops:
            t.start()
        wait_until("every sizing slot taken", lambda: server.running() == args.sizings, 120)
        probe = threading.Thread(target=probe_loop, args=(server, stop, probed), daemon=True)
        probe.start()
        started = time.monotonic()
        busy = lookups(server, args.lookup_threads, args.lookups, args.customers, seed=2)
        busy_seconds = time.monotonic() - started
        stop.set()
        probe.join()
        for t in loops:
            t.join()
    finally:
        server.stop()
    if not sized or any(s != 200 for s, _, _ in sized):
        sys.exit(f"sizings failed: {[x for x in sized if x[0] != 200][:3]}")

    slow = Server(cohort, folder, ["--allow-sql", "--max-concurrent-sizes", "1",
                                   "--size-timeout", "10ms", *threads])
    answered, stopped = [], []
    try:
        conn = slow.connect(900)
        for _ in range(args.timeouts):
            wait_until("a free slot", lambda: slow.running() == 0, 120)
            started = time.perf_counter()
            status, data, seconds = request(conn, "POST", "/v1/size", json.dumps(EXPENSIVE))
            if status != 504:
                sys.exit(f"a sizing past a 10 ms timeout answered {status}: {data[:200]}")
            answered.append(seconds)
            wait_until("the timed-out scan's end", lambda: slow.running() == 0, 120)
            stopped.append(time.perf_counter() - started)
        conn.close()
    finally:
        slow.stop()

    too_many = [(s, sec) for s, _, sec in probed if s == 429]
    print(f"{args.customers:,} customers, {len(GROUPS)} groups; {args.lookup_threads} lookup "
          f"threads (keep-alive); the lookups while sizing took {busy_seconds:.1f} s; "
          f"{args.sizings} expensive sizings at once took {statistics.median(s for _, s, _ in sized):.2f} s "
          f"each (median of {len(sized)})")
    print("one sizing alone (median of 3): " + ", ".join(
        f"{name} {seconds:.2f} s" for name, seconds in alone_sizings.items()) + "\n")
    print("| lookups | n | p50 ms | p99 ms | max ms |")
    print("|---|--:|--:|--:|--:|")
    print(row("alone", alone))
    print(row(f"while {args.sizings} sizings run", busy))
    if too_many:
        print(row(f"a {args.sizings + 1}th sizing: 429", [sec for _, sec in too_many]))
    slow_lookups = sum(1 for x in busy if x > 0.010)
    print(f"\nlookups over 10 ms while sizing: {slow_lookups} of {len(busy):,}")
    others = sorted({s for s, _, _ in probed if s != 429})
    print(f"{len(too_many)} of {len(probed)} extra sizings answered 429 (others: {others})")
    print(f"a sizing with --size-timeout 10ms: answered 504 in {ms(statistics.median(answered))} ms "
          f"median ({ms(max(answered))} max); its slot free again (scan stopped) "
          f"{ms(statistics.median(stopped))} ms after it was sent ({ms(max(stopped))} max), "
          f"{len(answered)} tries")
    print("  each try, answer / slot free (ms): " +
          ", ".join(f"{ms(a)} / {ms(b)}" for a, b in zip(answered, stopped)))


if __name__ == "__main__":
    main()
