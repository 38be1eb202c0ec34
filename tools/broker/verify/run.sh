#!/usr/bin/env bash
# Builds verify_eos.c with gcc, starts a fresh local broker with
# tools/weft-broker on a spare port, runs the checks, stops the broker.
# Usage: tools/broker/verify/run.sh [PORT]   (default 19192; controller PORT+1)
# The broker's data and logs stay in .weft/broker-PORT for inspection; the
# next run wipes them. Exit status is verify_eos's.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
PORT=${1:-19192}
OUT=$ROOT/.weft/verify
BROKER=$ROOT/tools/weft-broker

mkdir -p "$OUT"
# shellcheck disable=SC2046  # pkg-config's flags are meant to be split
gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -g -Wall -Wextra -Werror \
  -o "$OUT/verify_eos" "$ROOT/tools/broker/verify/verify_eos.c" \
  $(pkg-config --cflags --libs rdkafka)

"$BROKER" wipe --port "$PORT"
trap '"$BROKER" stop --port "$PORT"' EXIT
"$BROKER" start --port "$PORT"
"$OUT/verify_eos" "127.0.0.1:$PORT"
