#!/usr/bin/env python3
"""Tabulates bench/chaos.sh runs: one Markdown table per workload and fault
interval, with the distribution (median, max) of what each run's summary
measured and the checks that failed in any run.

    bench/chaos_table.py bench-out/chaos-<date>/results.tsv
"""
import csv
import re
import statistics
import sys
from collections import defaultdict


def rows_of(summary_path):
    """The summary's rows as {label: (status, value)}; status PASS/FAIL/''."""
    rows = {}
    with open(summary_path) as f:
        for line in f:
            if not line.startswith("|"):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|", 1)]
            if len(cells) != 2:
                continue
            label, value = cells
            status = ""
            for s in ("PASS ", "FAIL "):
                if label.startswith(s):
                    status, label = s.strip(), label[len(s):]
            rows[label] = (status, value)
    return rows


def number(text, pattern):
    m = re.search(pattern, text or "")
    return float(m.group(1)) if m else None


def dist(values, unit=""):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return "median %s%s, max %s%s (%d runs)" % (
        fmt(statistics.median(values)), unit, fmt(max(values)), unit, len(values))


def low(values, unit=""):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return "median %s%s, min %s%s" % (fmt(statistics.median(values)), unit,
                                       fmt(min(values)), unit)


def fmt(v):
    return ("%.2f" % v).rstrip("0").rstrip(".") if v != int(v) else "%d" % v


def main(path):
    groups = defaultdict(list)
    with open(path) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            groups[(r["workload"], int(r["every_ms"]))].append(r)
    for (workload, every), runs in sorted(groups.items()):
        settle, faults, timeouts, answered, in_row, gap = [], [], [], [], [], []
        failed_checks = defaultdict(int)
        passed_all = no_summary = 0
        for r in runs:
            if not r["summary"]:
                no_summary += 1
                continue
            rows = rows_of(r["summary"])
            if r["failed"] == "0":
                passed_all += 1
            for label, (status, _) in rows.items():
                if status == "FAIL":
                    failed_checks[label] += 1
            settle.append(number(rows.get("settle time after the last fault", ("", ""))[1],
                                 r"(\d+) ms"))
            faults.append(number(rows.get("faults", ("", ""))[1], r"^(\d+)"))
            for label, (_, value) in rows.items():
                if label.startswith("orders accepted"):
                    timeouts.append(number(value, r"\(([\d.]+) %\)"))
                elif label.startswith("REST calls answered"):
                    answered.append(number(value, r"^([\d.]+) %"))
                elif label.startswith("no POST failed"):
                    in_row.append(number(value, r"most in a row: (\d+)"))
                elif label.startswith("longest gap in committed output"):
                    gap.append(number(value, r"(\d+) ms"))
        print("\n### %s, a fault every %d ms\n" % (workload, every))
        print("| measure | value |")
        print("|---|---|")
        print("| runs | %d (%d passed every check, %d without a summary) |" %
              (len(runs), passed_all, no_summary))
        print("| faults per run | %s |" % dist(faults))
        print("| settle time after the last fault | %s |" % dist(settle, " ms"))
        if timeouts:
            print("| orders failed by the validation timeout | %s |" % dist(timeouts, " %"))
            print("| REST calls answered | %s |" % low(answered, " %"))
            print("| most consecutive POST failures | %s |" % dist(in_row))
        if gap:
            print("| longest gap in committed output | %s |" % dist(gap, " ms"))
        for label, n in sorted(failed_checks.items()):
            print("| FAILED in %d runs | %s |" % (n, label))


if __name__ == "__main__":
    main(sys.argv[1])
