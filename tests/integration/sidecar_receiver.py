#!/usr/bin/env python3
"""A push subscription's application, for the sidecar tests and benchmark.

Takes the sidecar's POSTs (one record, or an array of them), appends one
line per record to --out *before* answering 200 (so a record in the file is
one the application took), and answers 400 to a POST holding a record whose
key is --refuse-key, or whose value is an object with "tag" --refuse-tag (a
record the application keeps failing on) — with --refuse-while FILE only
while that file exists (the downstream is away, then back).

Line: {"p": partition, "o": offset, "k": key, "ts": record timestamp,
       "recv_ms": wall-clock ms at receipt}
"""
import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--refuse-key", default=None)
    ap.add_argument("--refuse-tag", default=None)
    ap.add_argument("--refuse-while", default=None)
    args = ap.parse_args()

    def refused(r):
        if args.refuse_while is not None and not os.path.exists(args.refuse_while):
            return False
        if args.refuse_key is not None and r.get("key") == args.refuse_key:
            return True
        v = r.get("value")
        return (args.refuse_tag is not None and isinstance(v, dict)
                and v.get("tag") == args.refuse_tag)
    out = open(args.out, "a", buffering=1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the sidecar reuses its connection
        # Headers and body go out in two writes: with Nagle on, the second
        # waits for the sidecar's delayed ACK (40 ms a record).
        disable_nagle_algorithm = True

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(n))
            records = body if isinstance(body, list) else [body]
            now = int(time.time() * 1000)
            if any(refused(r) for r in records):
                return self.answer(400, b'{"error":"refused"}')
            lines = "".join(
                json.dumps({"p": r["partition"], "o": r["offset"], "k": r["key"],
                            "ts": r["timestamp"], "recv_ms": now}) + "\n"
                for r in records)
            out.write(lines)
            out.flush()
            self.answer(200, b"{}")

        def answer(self, status, payload):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"receiver listening on {args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
