#!/usr/bin/env python3
"""Checks tools/grafana/weft-dashboard.json against the code's metric names.

Every PromQL expression must parse (promtool check rules, one recording rule
per panel query), and every weft_ metric it names must be one the README's
metrics table lists (the table is checked against a live page by
tests/integration/observe.test.cpp). Exit 0 when both hold.

    tools/grafana/check-dashboard.py [README.md] [weft-dashboard.json]
"""
import json
import os
import re
import subprocess
import sys
import tempfile

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
readme = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "README.md")
board = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, "tools/grafana/weft-dashboard.json")

with open(board) as f:
    dash = json.load(f)
exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]

with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as rules:
    rules.write("groups:\n  - name: weft-dashboard\n    rules:\n")
    for i, e in enumerate(exprs):
        rules.write(f"      - record: weft:dashboard_query_{i}\n        expr: {json.dumps(e)}\n")
try:
    r = subprocess.run(["promtool", "check", "rules", rules.name], capture_output=True, text=True)
except FileNotFoundError:
    sys.exit("check-dashboard: promtool is missing (Debian package prometheus; tools/setup.sh installs it)")
finally:
    os.unlink(rules.name)
if r.returncode != 0:
    sys.exit("check-dashboard: a query does not parse:\n" + r.stdout + r.stderr)

with open(readme) as f:
    text = f.read()
listed = set()
for row in re.findall(r"^\| `weft_[^|]*", text, re.M):
    names = re.findall(r"`(weft_[a-z_]+|_[a-z_]+)`", row)
    base = None
    for n in names:
        if n.startswith("weft_"):
            base = n
            listed.add(n)
        elif base:  # `_usage_bytes` continues the previous name's stem
            stem = base.rsplit("_", 2)[0]
            listed.add(stem + n)
suffixes = ("_bucket", "_sum", "_count")
missing = set()
for e in exprs:
    for name in re.findall(r"\bweft_[a-z_]+\b", e):
        for s in suffixes:
            if name.endswith(s) and name[: -len(s)] in listed:
                name = name[: -len(s)]
        if name not in listed:
            missing.add(name)
if missing:
    sys.exit("check-dashboard: the dashboard uses metrics the README does not list: "
             + ", ".join(sorted(missing)))
print(f"check-dashboard: {len(exprs)} queries parse and use only listed metrics")
