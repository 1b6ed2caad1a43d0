#!/usr/bin/env python3
"""Headless-Chromium checks of the dashboard against the mock server (stdlib only).

  python3 tests/dashboard/browser_check.py [--shots /tmp/dash-shots] [--runs 5]

Starts tests/dashboard/mock_server.py (three instances: plain, --token, --no-sizing) on
127.0.0.1, drives Chromium over --remote-debugging-pipe (cdp.py), asserts what renders,
prints first-render timings and saves screenshots. Also runs one plain
`chromium --dump-dom --virtual-time-budget` check, the way a CI test without CDP would.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cdp  # noqa: E402

FAILS = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def start_mock(*args):
    port_file = tempfile.mktemp(prefix="cohort-mock-")
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "mock_server.py"), "--port-file", port_file, *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(port_file):
            with open(port_file) as f:
                return proc, f.read().strip()
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mock server did not start")


def post(url, body, token=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **({"Authorization": "Bearer " + token} if token else {})})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def get(url):
    with urllib.request.urlopen(url) as r:
        return json.load(r)


def build_url(base, definition):
    return base + "#build=" + urllib.parse.quote(json.dumps(definition), safe="")


LOADED = "document.documentElement.dataset.loaded === 'true' && document.documentElement.dataset.rowsComplete === 'true' && !!document.documentElement.dataset.allRowsMs"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shots", default="/tmp/dash-shots")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--chromium", default="chromium")
    a = ap.parse_args()
    os.makedirs(a.shots, exist_ok=True)
    mocks = []
    try:
        plain, base = start_mock("--groups", "500")
        mocks.append(plain)
        tok_proc, tok_base = start_mock("--groups", "40", "--token", "s3cret")
        mocks.append(tok_proc)
        off_proc, off_base = start_mock("--groups", "40", "--no-sizing")
        mocks.append(off_proc)

        # --- 0. the CLI way: --dump-dom with a virtual time budget
        dom = subprocess.run([a.chromium, *[f for f in cdp.FLAGS if f != "--remote-debugging-pipe"],
                              "--user-data-dir=" + tempfile.mkdtemp(), "--virtual-time-budget=3000", "--dump-dom", base],
                             capture_output=True, text=True, timeout=60).stdout
        check(dom.count('data-testid="group-row"') == 500, "dump-dom: 500 group rows (%d)" % dom.count('data-testid="group-row"'))
        check('data-group-id="us_adults"' in dom, "dump-dom: row us_adults")

        b = cdp.Browser(1400, 1000, a.chromium)
        try:
            # --- 1. groups table, timings
            dash = get(base + "v1/dashboard")
            timings = []
            for i in range(a.runs):
                b.goto(base + "?run=%d" % i)
                time.sleep(0.2)
                b.wait(LOADED, 20)
                timings.append(b.eval("JSON.stringify(document.documentElement.dataset)"))
            ts = [json.loads(t) for t in timings]

            def med(k):
                return statistics.median(float(t[k]) for t in ts)
            print("timings over %d loads (median ms since navigation start): script %.0f, data %.0f, "
                  "first rows in DOM %.0f, first rows painted %.0f, all rows painted %.0f; table build %.1f ms, render %.1f ms"
                  % (len(ts), med("scriptStartMs"), med("dataMs"), med("firstRenderMs"), med("firstPaintMs"),
                     med("allRowsMs"), med("tableMs"), med("renderMs")))
            print("  raw:", [(t["firstRenderMs"], t["firstPaintMs"], t["allRowsMs"]) for t in ts])
            n_rows = b.eval("document.querySelectorAll('[data-testid=group-row]').length")
            check(n_rows == 500, "500 group rows (%d)" % n_rows)
            g = [x for x in dash["groups"] if x["id"] == "us_adults"][0]
            cell = b.eval("document.querySelector('[data-group-id=us_adults] [data-testid=group-members]').textContent")
            check(cell == "{:,}".format(g["members"]), "us_adults members cell %s == %s" % (cell, g["members"]))
            check(b.eval("document.getElementById('run-id').textContent") == dash["run_id"], "run id in the header")
            b.screenshot(os.path.join(a.shots, "groups.png"))

            # sort by id, then filter
            b.eval("document.querySelector('th[data-sort=id] button').click()")
            b.wait("document.documentElement.dataset.rowsComplete === 'true'")
            ids = b.eval("[...document.querySelectorAll('[data-testid=group-row]')].map(r => r.dataset.groupId)")
            check(ids == sorted(ids) and len(ids) == 500, "sorted by id ascending")
            b.eval("document.querySelector('th[data-sort=id] button').click()")
            b.wait("document.documentElement.dataset.rowsComplete === 'true'")
            ids = b.eval("[...document.querySelectorAll('[data-testid=group-row]')].map(r => r.dataset.groupId)")
            check(ids == sorted(ids, reverse=True), "second click: descending")
            b.eval("(() => { const f = document.getElementById('group-filter'); f.value = 'us_'; f.dispatchEvent(new Event('input', {bubbles: true})); })()")
            time.sleep(0.3)
            b.wait("document.documentElement.dataset.rowsComplete === 'true'")
            ids = b.eval("[...document.querySelectorAll('[data-testid=group-row]')].map(r => r.dataset.groupId)")
            expect = [x["id"] for x in dash["groups"] if "us_" in (x["id"] + "\0" + (x["name"] or "") + "\0" + (x["description"] or "")).lower()]
            check(sorted(ids) == sorted(expect), "filter 'us_': %d rows" % len(ids))

            # --- 2. overlap: tick checkboxes, compare
            b.goto(base + "?o#groups")
            time.sleep(0.2)
            b.wait(LOADED, 20)
            pick = ["us_adults", "us_canada_adults", "vip", "lapsed", "gmail_newsletter"] + [x["id"] for x in dash["groups"][5:10]]
            for gid in pick:
                b.eval("document.querySelector('[data-group-id=\"%s\"] input[data-sel]').click()" % gid)
            check(b.eval("document.getElementById('selected-count').textContent") == str(len(pick)), "selection count")
            b.eval("document.getElementById('compare-selected').click()")
            b.wait("document.querySelectorAll('[data-testid=overlap-cell]').length === %d" % (len(pick) ** 2))
            st, ov = post(base + "v1/overlap", {"groups": pick})
            c = b.eval("document.querySelector('[data-testid=overlap-cell][data-row=us_adults][data-col=vip]').dataset.count")
            check(int(c) == ov["matrix"][0][2], "overlap cell us_adults×vip = %s" % c)
            b.screenshot(os.path.join(a.shots, "overlap.png"))

            # --- 3. live sizing from a link (the JSON definition in the hash)
            us_adults = {"include": [{"match": "all", "conditions": [{"attribute": "country", "op": "equals", "value": "United States"}]}],
                         "exclude": [{"match": "any", "conditions": [{"attribute": "age", "op": "lt", "value": 18},
                                                                   {"attribute": "age", "op": "not_exists"}]}]}
            st, want = post(base + "v1/size", us_adults)
            b.goto(build_url(base, us_adults))
            time.sleep(0.2)
            b.wait("document.querySelector('[data-testid=live-count]').dataset.members !== undefined", 20)
            got = b.eval("document.querySelector('[data-testid=live-count]').dataset.members")
            check(int(got) == want["members"], "live count %s == POST /v1/size %s" % (got, want["members"]))
            cc = b.eval("[...document.querySelectorAll('[data-testid=clause-count]')].map(e => e.textContent)")
            check(cc == ["{:,} customers".format(want["clauses"]["include"][0]), "{:,} customers".format(want["clauses"]["exclude"][0])],
                  "per-clause counts %s" % cc)
            shown = json.loads(b.eval("document.getElementById('def-json').textContent"))
            check(shown == us_adults, "JSON pane round-trips the definition")

            # compose: add a condition through the form, as a user would
            b.eval("""(() => {
              const clause = document.querySelector('.clause[data-path="include[0]"]');
              clause.querySelector('button[data-add-cond=attr]').click();
            })()""")
            b.eval("""(() => {
              const row = document.querySelector('.cond[data-path="include[0].conditions[1]"]');
              const sel = row.querySelector('[data-f=attribute]');
              sel.value = 'state'; sel.dispatchEvent(new Event('change', {bubbles: true}));
            })()""")
            b.eval("""(() => {
              const row = document.querySelector('.cond[data-path="include[0].conditions[1]"]');
              const op = row.querySelector('[data-f=op]');
              op.value = 'in'; op.dispatchEvent(new Event('change', {bubbles: true}));
            })()""")
            b.eval("""(() => {
              const row = document.querySelector('.cond[data-path="include[0].conditions[1]"]');
              const v = row.querySelector('[data-f=listText]');
              v.value = 'Alaska, Florida'; v.dispatchEvent(new Event('input', {bubbles: true}));
            })()""")
            composed = json.loads(b.eval("document.getElementById('def-json').textContent"))
            check(composed["include"][0]["conditions"][1] == {"attribute": "state", "op": "in", "values": ["Alaska", "Florida"]},
                  "composed condition %s" % composed["include"][0]["conditions"][1])
            st, want2 = post(base + "v1/size", composed)
            b.wait("document.querySelector('[data-testid=live-count]').dataset.members === '%d' && document.documentElement.dataset.sizeState === 'ok'" % want2["members"], 10)
            check(True, "live count follows the form: %d" % want2["members"])
            b.eval("window.scrollTo(0, 0)")
            b.screenshot(os.path.join(a.shots, "build.png"))

            # --- 4. a bad attribute: the problem shows next to its condition
            bad = {"include": [{"match": "all", "conditions": [{"attribute": "country", "op": "equals", "value": "Canada"},
                                                               {"attribute": "agee", "op": "gte", "value": 18}]}]}
            b.goto(build_url(base, bad))
            time.sleep(0.2)
            b.wait("!!document.querySelector('[data-testid=problem]')", 20)
            probs = b.eval("[...document.querySelectorAll('[data-testid=problem]')].map(p => [p.closest('.cond') && p.closest('.cond').dataset.path, p.textContent])")
            check(len(probs) == 1 and probs[0][0] == "include[0].conditions[1]" and "unknown attribute 'agee'" in probs[0][1]
                  and "did you mean 'age'?" in probs[0][1], "problem inline: %s" % probs)
            b.screenshot(os.path.join(a.shots, "build-problem.png"))

            # incomplete rows are not sent; a lint warning on a clause lands on the clause
            lint = {"include": [{"match": "all", "conditions": [{"attribute": "age", "op": "lt", "value": 18},
                                                                {"attribute": "age", "op": "not_exists"}]}]}
            b.goto(build_url(base, lint))
            time.sleep(0.2)
            b.wait("document.documentElement.dataset.sizeState === 'ok'", 20)
            w = b.eval("[...document.querySelectorAll('[data-testid=problem]')].map(p => [p.dataset.severity, p.parentNode.dataset.problemsFor])")
            check(w == [["warning", "include[0]"]], "lint warning on the clause: %s" % w)
        finally:
            b.close()

        # --- 5. token mode: asks once, keeps it for the tab
        b = cdp.Browser(1200, 800, a.chromium)
        try:
            b.goto(tok_base)
            time.sleep(0.2)
            b.wait("document.querySelector('[data-testid=token-prompt]').open === true", 20)
            b.screenshot(os.path.join(a.shots, "token.png"))
            check(True, "token prompt shown")
            b.eval("""(() => { document.getElementById('token-input').value = 'wrong';
                       document.querySelector('[data-testid=token-submit]').click(); })()""")
            b.wait("document.querySelector('[data-testid=token-prompt]').open && document.getElementById('token-error').textContent", 10)
            check("not accepted" in b.eval("document.getElementById('token-error').textContent"), "a wrong token asks again, with the reason")
            b.eval("""(() => { document.getElementById('token-input').value = 's3cret';
                       document.querySelector('[data-testid=token-submit]').click(); })()""")
            b.wait(LOADED, 20)
            check(b.eval("document.querySelectorAll('[data-testid=group-row]').length") == 40, "rows after the token")
            b.goto(tok_base + "?again#build")
            time.sleep(0.2)
            b.wait("document.documentElement.dataset.loaded === 'true' && !document.getElementById('builder').hidden", 20)
            check(not b.eval("document.querySelector('[data-testid=token-prompt]').open"), "no second prompt after a reload")
        finally:
            b.close()

        # --- 6. sizing disabled: the reason instead of the form
        b = cdp.Browser(1200, 700, a.chromium)
        try:
            b.goto(off_base + "#build")
            time.sleep(0.2)
            b.wait("!document.getElementById('sizing-disabled').hidden", 20)
            txt = b.eval("document.getElementById('sizing-disabled').textContent")
            check("--customers" in txt and b.eval("document.getElementById('builder').hidden"), "sizing disabled: %s" % txt)
            b.screenshot(os.path.join(a.shots, "sizing-disabled.png"))
            errs = [c for c in b.console if c.startswith("EXCEPTION")]
            check(not errs, "no JS exceptions (%s)" % errs[:1])
        finally:
            b.close()
    finally:
        for p in mocks:
            p.terminate()
            p.wait()
    print("\n%d failed" % len(FAILS) if FAILS else "\nall checks passed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
