#!/usr/bin/env bash
# How count-by-key's cost grows (issue 13, item 5): throughput, CPU per
# record and peak memory at 10^5, 10^6 and 10^7 keys (6 partitions) and at
# 6, 24 and 96 partitions (10^6 keys); restore time against changelog size
# (10^5, 10^6, 10^7 records). Each cell is one weft-bench-scaling process.
#
#   bench/scaling.sh [BOOTSTRAP]
#
# Without BOOTSTRAP it starts a local broker of its own (tools/weft-broker,
# port $PORT, default 29692) and stops it at the end. Environment:
#   KEYS ["100000 1000000 10000000"]   key counts of the keys table
#   PARTS ["6 24 96"]                  partition counts (at 10^6 keys)
#   RESTORE ["100000 1000000 10000000"] changelog sizes of the restore table
#   WEFT_BUILD_DIR [build]
# A cost that grows faster than the work shows as a rising "CPU µs/record"
# (count) or falling records/s (restore) down a column.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/${WEFT_BUILD_DIR:-build}/bench/weft-bench-scaling"
[[ -x $BIN ]] || { echo "scaling.sh: $BIN missing: build first (tools/dev.sh build)" >&2; exit 1; }
KEYS=${KEYS:-"100000 1000000 10000000"}
PARTS=${PARTS:-"6 24 96"}
RESTORE=${RESTORE:-"100000 1000000 10000000"}
PORT=${PORT:-29692}
if [[ $# -ge 1 ]]; then
  BOOTSTRAP=$1
else
  BOOTSTRAP=127.0.0.1:$PORT
  "$ROOT/tools/weft-broker" wipe --port "$PORT" >/dev/null 2>&1 || true
  "$ROOT/tools/weft-broker" start --port "$PORT"
  trap '"$ROOT/tools/weft-broker" stop --port "$PORT" >/dev/null 2>&1 || true' EXIT
fi

# run ARGS...: one measurement; prints its "scaling ..." line's fields.
run() {
  local line
  line=$("$BIN" --bootstrap="$BOOTSTRAP" "$@" 2>/dev/null | grep '^scaling ') ||
    { echo "scaling.sh: weft-bench-scaling $* failed" >&2; exit 1; }
  echo "$line"
}
# field NAME LINE
field() { sed -E "s/.* $1=([^ ]+).*/\\1/" <<<"$2"; }

echo "count-by-key, at_least_once, every count emitted ($(date -u +%F), $(nproc) cores)"
echo
echo "| keys | partitions | records | records/s | CPU µs/record | peak RSS MB |"
echo "|---:|---:|---:|---:|---:|---:|"
row() {
  local l
  l=$(run --mode=count "$@")
  printf '| %s | %s | %s | %s | %s | %s |\n' "$(field keys "$l")" "$(field partitions "$l")" \
    "$(field records "$l")" "$(field records_per_s "$l")" "$(field cpu_us_per_record "$l")" \
    "$(field peak_rss_mb "$l")"
}
for k in $KEYS; do row --keys="$k" --partitions=6; done
for p in $PARTS; do
  [[ $p == 6 && " $KEYS " == *" 1000000 "* ]] && continue # the keys table has it
  row --keys=1000000 --partitions="$p"
done
echo
echo "restore from the changelog (6 partitions, one record per key, empty state folder)"
echo
echo "| changelog records | seconds (incl. start-up) | records/s | peak RSS MB |"
echo "|---:|---:|---:|---:|"
for n in $RESTORE; do
  l=$(run --mode=restore --records="$n" --partitions=6)
  printf '| %s | %s | %s | %s |\n' "$n" "$(field seconds "$l")" "$(field records_per_s "$l")" \
    "$(field peak_rss_mb "$l")"
done
