#!/usr/bin/env bash
# Builds the benchmarks, starts the local broker (port 9092 unless
# WEFT_BENCH_PORT is set) and runs them. Arguments go to the benchmark.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${WEFT_BENCH_PORT:-9092}
bash "$ROOT/tools/dev.sh" build
"$ROOT/tools/weft-broker" start --port "$PORT"
"$ROOT/${WEFT_BUILD_DIR:-build}/bench/weft-bench-stateless" --bootstrap="127.0.0.1:$PORT" "$@"
"$ROOT/${WEFT_BUILD_DIR:-build}/bench/weft-bench-state" --bootstrap="127.0.0.1:$PORT"
"$ROOT/${WEFT_BUILD_DIR:-build}/bench/weft-bench-eos" --bootstrap="127.0.0.1:$PORT"
"$ROOT/${WEFT_BUILD_DIR:-build}/bench/weft-bench-park" --bootstrap="127.0.0.1:$PORT"
"$ROOT/${WEFT_BUILD_DIR:-build}/bench/weft-bench-orders" --bootstrap="127.0.0.1:$PORT"
"$ROOT/${WEFT_BUILD_DIR:-build}/bench/weft-bench-timers" --bootstrap="127.0.0.1:$PORT"
"$ROOT/${WEFT_BUILD_DIR:-build}/bench/weft-bench-cluster" --bootstrap="127.0.0.1:$PORT"
"$ROOT/${WEFT_BUILD_DIR:-build}/bench/weft-bench-sidecar" --bootstrap="127.0.0.1:$PORT"
