#!/usr/bin/env python3
"""The dashboard's first render for many groups (issue 22: under 200 ms for 500 groups on
loopback), measured in a real headless Chromium driven over the DevTools protocol.

  1. `cohort gen` customers and benches/realistic/make_groups.py groups (--groups, mostly
     distinct conditions), one `cohort run` publishing them;
  2. `cohort serve` on 127.0.0.1 (a free port), with --customers so sizing is on;
  3. headless Chromium (fresh profile, the flags of tests/it/dashboard.rs) with a
     DevTools port; each round opens a fresh tab on the dashboard and waits (bounded) for
     the page's own timings on <html> (cohort-serve/src/assets/app.js), all from navigation
     start, in real time:
       data-script-start-ms the page's script starts (HTML, CSS and JS loaded)
       data-data-ms         /v1/dashboard's answer has arrived
       data-first-render-ms header and the first screenful of rows are in the DOM
       data-first-paint-ms  the frame showing them is painted
       data-all-rows-ms     every row is in the DOM and painted
Prints the median and the worst of --rounds rounds (the first round is a cold cache).

  python3 benches/dashboard/first_render.py --cohort $CARGO_TARGET_DIR/release/cohort \
      --groups 500 --customers 100000 --rounds 10

Needs: chromium on PATH; pip install websocket-client (the DevTools protocol's socket).
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket  # websocket-client

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
AS_OF = "2026-11-22T00:00:00Z"
TIMINGS = ["data-script-start-ms", "data-data-ms", "data-first-render-ms", "data-first-paint-ms", "data-all-rows-ms"]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-extensions", "--hide-scrollbars", "--window-size=1280,900"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, check, limit=60.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    sys.exit(f"{what}: not within {limit:.0f} s")


def prepare(cohort, work, groups, customers):
    gen = os.path.join(work, "gen")
    subprocess.run([cohort, "gen", "--customers", str(customers), "--id-type", "int",
                    "--seed", "42", "--out", gen], check=True, stdout=subprocess.DEVNULL)
    queries = os.path.join(work, "queries")
    subprocess.run([sys.executable, os.path.join(REPO, "benches", "realistic", "make_groups.py"),
                    queries, "--groups", str(groups), "--customers", str(customers)],
                   check=True)
    publish = os.path.join(work, "snapshots")
    source = os.path.join(gen, "customers.parquet")
    subprocess.run([cohort, "run", "--customers", source, "--queries", queries,
                    "--as-of", AS_OF, "--publish", publish], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return source, queries, publish


class Cdp:
    """One tab of the browser, over its DevTools web socket."""

    def __init__(self, url):
        self.ws = websocket.create_connection(url, timeout=30)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def attributes(self):
        expression = ("JSON.stringify(Object.fromEntries([" +
                      ",".join(json.dumps(t) for t in TIMINGS + ["data-loaded"]) +
                      "].map(a => [a, document.documentElement.getAttribute(a)])))")
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        # While the page navigates there is no document to ask yet.
        value = result.get("result", {}).get("value")
        return json.loads(value) if isinstance(value, str) else {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cohort", required=True)
    ap.add_argument("--groups", type=int, default=500)
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="cohort-first-render-") as work:
        source, queries, publish = prepare(args.cohort, work, args.groups, args.customers)
        serve_port = free_port()
        server = subprocess.Popen(
            [args.cohort, "serve", "--listen", f"127.0.0.1:{serve_port}", "--publish", publish,
             "--customers", source, "--queries", queries, "--as-of", AS_OF],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        devtools = free_port()
        browser = subprocess.Popen(
            [args.chromium, *FLAGS, f"--remote-debugging-port={devtools}",
             f"--user-data-dir={os.path.join(work, 'profile')}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{serve_port}/"
            wait_until("cohort serve", lambda: _answers(base + "healthz"))
            wait_until("chromium", lambda: _answers(f"http://127.0.0.1:{devtools}/json/version"))
            rows = []
            for round_ in range(args.rounds):
                target = _json(f"http://127.0.0.1:{devtools}/json/new?about:blank", method="PUT")
                tab = Cdp(target["webSocketDebuggerUrl"])
                tab.call("Page.enable")
                tab.call("Page.navigate", url=base)
                values = wait_until(
                    "the dashboard's timings",
                    lambda: (lambda a: a if a.get("data-all-rows-ms") else None)(tab.attributes()))
                if values.get("data-loaded") != "true":
                    sys.exit(f"the dashboard did not load: {values}")
                rows.append({t: float(values[t]) for t in TIMINGS})
                tab.ws.close()
                _answers(f"http://127.0.0.1:{devtools}/json/close/{target['id']}")
                print(f"round {round_ + 1}: " +
                      ", ".join(f"{t[5:-3]} {rows[-1][t]:.1f}" for t in TIMINGS), file=sys.stderr)
        finally:
            for process in (browser, server):
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()

    print(f"{args.groups} groups, {args.customers} customers, {args.rounds} rounds, "
          "headless Chromium on loopback; ms from navigation start\n")
    print("| timing | median ms | worst ms | first (cold) ms |")
    print("|---|--:|--:|--:|")
    for t in TIMINGS:
        values = [r[t] for r in rows]
        print(f"| {t} | {statistics.median(values):.1f} | {max(values):.1f} | {values[0]:.1f} |")


def _answers(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _json(url, method="GET"):
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


if __name__ == "__main__":
    main()
