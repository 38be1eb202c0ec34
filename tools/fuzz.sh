#!/usr/bin/env bash
# Builds and runs weft's libFuzzer targets (tests/fuzz; README "Fuzzing").
# The main build uses gcc; libFuzzer needs clang, so the targets live in a
# clang tree of their own. `tools/dev.sh test` runs both steps through CTest
# (the fixture "fuzz: build", then one "fuzz: <name>" test per target).
#
#   tools/fuzz.sh build DIR [LAUNCHER]   configure tests/fuzz with clang into DIR
#                                        and build every target (LAUNCHER: e.g.
#                                        ccache, as the main build uses)
#   tools/fuzz.sh run DIR NAME [SECONDS] fuzz target NAME for SECONDS (default
#                                        $WEFT_FUZZ_SECONDS or 30) on its seed
#                                        corpus; a crash fails with the input's path
#   tools/fuzz.sh all [SECONDS]          both, for every target, in build/fuzz
#
# Runs at nice 19 (idle cores only).
# Environment: WEFT_FUZZ_CXX / WEFT_FUZZ_CC (default clang++-14 / clang-14,
# else clang++ / clang), WEFT_FUZZ_SECONDS.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FUZZ_SRC=$ROOT/tests/fuzz

say() { printf 'fuzz: %s\n' "$*"; }
die() { printf 'fuzz: error: %s\n' "$*" >&2; exit 1; }

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' \
    "${BASH_SOURCE[0]}" >&2
  exit 2
}

pick() { # first program of the arguments on the PATH
  local p
  for p in "$@"; do
    if command -v "$p" >/dev/null; then
      echo "$p"
      return
    fi
  done
  return 1
}

build() {
  local dir=$1 launcher=${2:-}
  local cxx cc
  cxx=${WEFT_FUZZ_CXX:-$(pick clang++-14 clang++)} ||
    die "no clang++ on the PATH: install clang-14 and libclang-rt-14-dev (tools/setup.sh does)"
  cc=${WEFT_FUZZ_CC:-$(pick clang-14 clang)} || die "no clang on the PATH (see above)"
  local -a args=(-S "$FUZZ_SRC" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo
    "-DCMAKE_CXX_COMPILER=$cxx" "-DCMAKE_C_COMPILER=$cc")
  command -v ninja >/dev/null && args+=(-G Ninja)
  # A tree configured with another generator cannot be reconfigured with this one.
  if [[ -f $dir/CMakeCache.txt ]] && ! grep -q "^CMAKE_CXX_COMPILER:.*$cxx" "$dir/CMakeCache.txt"; then
    rm -rf "$dir"
  fi
  if [[ -n $launcher ]]; then
    args+=("-DCMAKE_CXX_COMPILER_LAUNCHER=$launcher" "-DCMAKE_C_COMPILER_LAUNCHER=$launcher")
  fi
  say "configuring $dir with $cxx"
  cmake "${args[@]}" >"$dir.configure.log" 2>&1 || {
    cat "$dir.configure.log" >&2
    die "configuring the fuzz tree failed (log above)"
  }
  cmake --build "$dir" --target weft_fuzzers -j"${WEFT_JOBS:-2}"
}

run() {
  local dir=$1 name=$2 secs=${3:-${WEFT_FUZZ_SECONDS:-30}}
  local bin=$dir/fuzz-$name
  [[ -x $bin ]] || die "$bin is not built: run tools/fuzz.sh build $dir"
  local seeds=$FUZZ_SRC/corpus/$name regress=$FUZZ_SRC/regressions/$name
  [[ -d $seeds ]] || die "no seed corpus $seeds"
  # New inputs the fuzzer finds go to a scratch corpus in the build tree (kept
  # between runs there); the committed seeds and regressions are only read.
  local scratch=$dir/corpus/$name artifacts=$dir/artifacts/$name
  mkdir -p "$scratch" "$artifacts"
  local -a corpora=("$scratch" "$seeds")
  [[ -d $regress ]] && corpora+=("$regress")
  local -a opts=(-max_total_time="$secs" -timeout=25 -rss_limit_mb=2048
    -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$artifacts/")
  [[ -f $FUZZ_SRC/dict/$name.dict ]] && opts+=(-dict="$FUZZ_SRC/dict/$name.dict")
  local log=$dir/$name.log
  say "$name: fuzzing for $secs s (log: $log)"
  local rc=0
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$FUZZ_SRC/ubsan.supp} \
    "$bin" "${opts[@]}" "${corpora[@]}" >"$log" 2>&1 || rc=$?
  local execs corpus
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus=$(find "$scratch" "$seeds" -type f | wc -l)
  if ((rc != 0)); then
    tail -n 60 "$log" >&2
    local crash
    crash=$(ls -t "$artifacts" 2>/dev/null | head -1)
    say "$name: FAILED after ${execs:-?} executions (exit $rc)"
    if [[ -n $crash ]]; then
      say "the input is $artifacts/$crash"
      say "reproduce: $bin $artifacts/$crash"
      say "once fixed, keep it as a regression test:" \
        "cp $artifacts/$crash $regress/ (the fuzz-replay test runs it on every build)"
    fi
    return 1
  fi
  say "$name: ${execs:-?} executions in $secs s, corpus $corpus inputs, no crash"
}

cmd=${1:-}
(($#)) && shift
# Fuzzing and its clang build fill idle cores only: at the lowest priority they
# never slow the broker tests that `ctest -j2` runs beside them (under CI's
# load a fuzzer at equal priority starved three-node cluster tests past their
# bounds). libFuzzer's time budget is wall time, so a fuzz run still ends on time.
renice -n 19 -p $$ >/dev/null 2>&1 || true
case $cmd in
  build)
    (($# >= 1 && $# <= 2)) || usage
    build "$@"
    ;;
  run)
    (($# >= 2 && $# <= 3)) || usage
    run "$@"
    ;;
  all)
    (($# <= 1)) || usage
    dir=$ROOT/build/fuzz
    build "$dir" "$(command -v ccache || true)"
    failed=0
    for d in "$FUZZ_SRC"/corpus/*/; do
      run "$dir" "$(basename "$d")" "${1:-}" || failed=1
    done
    exit $failed
    ;;
  *) usage ;;
esac
