#!/usr/bin/env bash
# The quick-start commands. Each one first runs tools/setup.sh (quick when the
# machine is already set up).
#
#   tools/dev.sh build          configure (Ninja, RelWithDebInfo) and build
#   tools/dev.sh test [ARGS]    build, then ctest; ARGS go to ctest, e.g.
#                               -L unit, -LE broker, -R 'broker:.*'
#                               (the suite starts and stops its own broker on
#                               port 19092 through a CTest fixture)
#   tools/dev.sh run [ARGS]     build, start the local broker on 127.0.0.1:9092
#                               and run the main job with ARGS
#
# Environment: CI=true adds -DWEFT_WERROR=ON; WEFT_BUILD_DIR (default build),
# WEFT_BUILD_TYPE (default RelWithDebInfo), WEFT_CMAKE_ARGS (extra, split on
# spaces), WEFT_JOBS (default 2).
set -euo pipefail

# The program `run` starts: the order system demo (examples/orders).
WEFT_MAIN_JOB=build/examples/orders/weft-orders-demo

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD_DIR=${WEFT_BUILD_DIR:-build}
JOBS=${WEFT_JOBS:-2}
RUN_PORT=9092

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' \
    "${BASH_SOURCE[0]}" >&"${2:-2}"
  exit "${1:-2}"
}

setup() { bash "$ROOT/tools/setup.sh"; }

build() {
  local -a args
  args=(-G Ninja -S . -B "$BUILD_DIR" "-DCMAKE_BUILD_TYPE=${WEFT_BUILD_TYPE:-RelWithDebInfo}")
  if [[ ${CI:-} == true ]]; then
    args+=(-DWEFT_WERROR=ON)
  fi
  # shellcheck disable=SC2206  # split extra arguments on spaces
  args+=(${WEFT_CMAKE_ARGS:-})
  cmake "${args[@]}"
  cmake --build "$BUILD_DIR" -j"$JOBS"
}

cmd=${1:-}
(($#)) && shift
case $cmd in
  build)
    (($# == 0)) || usage
    setup
    build
    ;;
  test)
    setup
    build
    exec ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$JOBS" "$@"
    ;;
  run)
    setup
    build
    "$ROOT/tools/weft-broker" start --port "$RUN_PORT"
    job=$WEFT_MAIN_JOB
    [[ $job == build/* ]] && job=$BUILD_DIR/${job#build/} # honour WEFT_BUILD_DIR
    [[ $job == /* ]] || job=$ROOT/$job
    if [[ ! -x $job ]]; then
      echo "dev.sh: the broker is up on 127.0.0.1:$RUN_PORT, but the main job" \
        "$job was not built (WEFT_MAIN_JOB in tools/dev.sh names it)." >&2
      echo "dev.sh: stop the broker with: tools/weft-broker stop" >&2
      exit 1
    fi
    echo "dev.sh: running ${job#"$ROOT"/} against 127.0.0.1:$RUN_PORT" \
      "(the broker keeps running; stop it with: tools/weft-broker stop)"
    exec "$job" "$@"
    ;;
  -h | --help | help) usage 0 1 ;;
  *) usage ;;
esac
