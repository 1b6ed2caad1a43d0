"""A tiny Chrome DevTools Protocol client over --remote-debugging-pipe (stdlib only).

Chromium reads commands from fd 3 and writes replies/events to fd 4, each message a JSON
object terminated by NUL. Enough to navigate, evaluate JS, and take screenshots.
"""
import base64
import json
import os
import subprocess
import tempfile
import time

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--remote-debugging-pipe"]


def _child_fds(r, w, *others):
    # move the pipe ends out of the way first, so that dup2 onto 3 and 4 cannot clobber them
    r2, w2 = os.dup(r), os.dup(w)
    r2 = os.dup2(r2, 100)
    w2 = os.dup2(w2, 101)
    os.dup2(r2, 3)
    os.dup2(w2, 4)
    for fd in (r2, w2) + tuple(f for f in (r, w) + others if f not in (3, 4)):
        try:
            os.close(fd)
        except OSError:
            pass


class Browser:
    def __init__(self, width=1400, height=1000, binary="chromium"):
        self.profile = tempfile.mkdtemp(prefix="cohort-dash-")
        r1, w1 = os.pipe()  # we write commands -> chrome's fd 3
        r2, w2 = os.pipe()  # chrome's fd 4 -> we read
        self.proc = subprocess.Popen(
            [binary, *FLAGS, "--user-data-dir=" + self.profile, "--window-size=%d,%d" % (width, height), "about:blank"],
            close_fds=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: _child_fds(r1, w2, w1, r2))
        os.close(r1)
        os.close(w2)
        self.w = os.fdopen(w1, "wb", buffering=0)
        self.r = os.fdopen(r2, "rb", buffering=0)
        self.buf = b""
        self.next_id = 0
        self.events = []
        self.console = []
        targets = self.call("Target.getTargets")["targetInfos"]
        page = [t for t in targets if t["type"] == "page"][0]
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def _read(self):
        while b"\0" not in self.buf:
            chunk = self.r.read(65536)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, session=False, **params):
        self.next_id += 1
        mid = self.next_id
        msg = {"id": mid, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        self.w.write(json.dumps(msg).encode() + b"\0")
        while True:
            m = self._read()
            if m.get("id") == mid:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"]))
                return m.get("result", {})
            if m.get("method") == "Runtime.consoleAPICalled":
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in m["params"]["args"]))
            elif m.get("method") == "Runtime.exceptionThrown":
                self.console.append("EXCEPTION " + json.dumps(m["params"]["exceptionDetails"])[:500])
            else:
                self.events.append(m)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", session=True, expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError("JS: %s" % json.dumps(r["exceptionDetails"])[:600])
        return r["result"].get("value")

    def goto(self, url):
        self.events.clear()
        self.call("Page.navigate", session=True, url=url)

    def wait(self, expr, timeout=10.0):
        end = time.time() + timeout
        while time.time() < end:
            try:
                v = self.eval(expr)
            except RuntimeError:
                v = None  # e.g. between documents while navigating
            if v:
                return v
            time.sleep(0.05)
        raise TimeoutError("waited %.0fs for: %s" % (timeout, expr))

    def screenshot(self, path, full=False):
        params = {"format": "png"}
        if full:
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", session=True, **params)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.call("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
