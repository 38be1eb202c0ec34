#!/usr/bin/env python3
"""loyalty: a Python service in the order system, through weft-sidecar.

It reacts to SHIPPED orders (a push subscription on `orders`), looks the
customer up in the sidecar's `customers` table (their level), and writes a
fact back: loyalty points to `loyalty-points`, keyed by customer id.

Effect once: the sidecar delivers each order record at least once; the
write carries the order id as its idempotency id, so a repeated delivery
(after a crash of this service or of the sidecar) writes nothing new.

Standard library only. Answers the sidecar:
  200  the record is handled (points written, or nothing to do)
  503  not now (the sidecar or Kafka did not take the write): the sidecar
       keeps the record and retries it with back-off
  400  the record is not an order: the sidecar's bad.record.policy takes it
       after subscription.<name>.max.attempts

  python3 examples/sidecar/loyalty.py --port 8090 --sidecar http://127.0.0.1:7080
"""
import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Points per unit of currency spent, by customer level.
MULTIPLIER = {"bronze": 1.0, "silver": 1.5, "gold": 2.0, "platinum": 3.0}


class Sidecar:
    """The weft-sidecar HTTP API beside this service."""

    def __init__(self, base, token=None):
        self.base = base.rstrip("/")
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = "Bearer " + token

    def call(self, method, path, body=None):
        """(status, parsed JSON body); status 0 when the sidecar is not there."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=self.headers)
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")
        except (urllib.error.URLError, OSError):
            return 0, None

    def row(self, table, key):
        return self.call("GET", f"/v1/tables/{table}/" + urllib.parse.quote(key, safe=""))

    def write(self, topic, key, value, id):
        return self.call("POST", f"/v1/topics/{topic}", {"id": id, "key": key, "value": value})


def handle(record, sidecar, args):
    """One order record; returns the HTTP status to answer the sidecar."""
    order = record.get("value")
    if not isinstance(order, dict) or "state" not in order:
        return 400
    if order["state"] != "SHIPPED":
        return 200
    customer_id = str(order.get("customerId"))
    status, row = sidecar.row(args.customers_table, customer_id)
    if status == 404:
        level = None  # no such customer: no points, nothing to retry
    elif status == 200:
        level = row["value"].get("level")
    else:
        return 503  # the table is restoring or its partition moves: later
    if level not in MULTIPLIER:
        print(f"loyalty: order {order.get('id')}: customer {customer_id} unknown "
              f"or without a level; no points", flush=True)
        return 200
    points = int(order["quantity"] * order["price"] * MULTIPLIER[level])
    fact = {"customerId": customer_id, "orderId": order["id"], "points": points,
            "level": level, "source": f"{record['topic']}/{record['partition']}@{record['offset']}"}
    status, _ = sidecar.write(args.points_topic, customer_id, fact, "shipped-" + order["id"])
    return 200 if status in (200, 201) else 503


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8090, help="where the sidecar pushes orders")
    ap.add_argument("--sidecar", default="http://127.0.0.1:7080", help="the sidecar's API")
    ap.add_argument("--token", default=None, help="the sidecar's bearer token, if set")
    ap.add_argument("--customers-table", default="customers")
    ap.add_argument("--points-topic", default="loyalty-points")
    args = ap.parse_args()
    sidecar = Sidecar(args.sidecar, args.token)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"    # the sidecar keeps its connection
        disable_nagle_algorithm = True   # no 40 ms stall between headers and body

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            try:
                body = json.loads(self.rfile.read(n))
            except ValueError:
                return self.answer(400)
            records = body if isinstance(body, list) else [body]
            status = 200
            for r in records:  # in offset order per partition
                status = handle(r, sidecar, args)
                if status != 200:
                    break  # the sidecar sends the batch again: writes are idempotent
            self.answer(status)

        def answer(self, status):
            payload = b"{}"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"loyalty: listening on 127.0.0.1:{args.port}, sidecar {args.sidecar}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
