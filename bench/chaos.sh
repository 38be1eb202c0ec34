#!/usr/bin/env bash
# The nemesis suite's long runs (issue 11's figures): the chaos tests of
# tests/chaos, each run a number of times under a longer storm, and one table
# per workload and fault interval with the distribution of what every run
# measured (settle time after the last fault, validation timeouts, REST
# availability, longest output gap) and how many runs passed every check.
#
#   bench/chaos.sh                       # 20 runs x {5 s, 10 s} x {orders, pipeline}, 120 s storms
#   RUNS=5 STORM_S=60 EVERY_MS=5000 WORKLOADS=orders bench/chaos.sh
#
# Environment: RUNS (20), STORM_S (120), EVERY_MS ("5000 10000"), WORKLOADS
# ("orders pipeline"), WEFT_BENCH_PORT (29292: its own broker, fresh for each
# run, restarted by the nemesis), OUT (bench-out/chaos-<date>: fault logs, summaries, node
# logs of failed runs, results.tsv). Seeds are 1000 * run + interval index,
# so a run can be replayed: SEED=<seed> RUNS=1 with the same settings (the
# storm replays; its timing on a loaded machine may not).
# Runs take about STORM_S + 60 s each; the whole default set about 5 hours on
# 2 cores. It is a benchmark, not a test: it never fails the build.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-20}
STORM_S=${STORM_S:-120}
EVERY_MS=${EVERY_MS:-"5000 10000"}
WORKLOADS=${WORKLOADS:-"orders pipeline"}
PORT=${WEFT_BENCH_PORT:-29292}
OUT=${OUT:-$ROOT/bench-out/chaos-$(date +%Y%m%d-%H%M%S)}
BUILD=${WEFT_BUILD_DIR:-$ROOT/build}
DATA=$ROOT/.weft/broker-$PORT
mkdir -p "$OUT"

[[ -x $BUILD/tests/weft_chaos_tests ]] || bash "$ROOT/tools/dev.sh" build

declare -A SPEC=(
  [orders]="chaos: the order system on three nodes*"
  [pipeline]="chaos: the counter pipeline on three nodes*"
)
RESULTS=$OUT/results.tsv
printf 'workload\tevery_ms\trun\tseed\tpassed\tfailed\tsummary\n' >"$RESULTS"

i_every=0
for every in $EVERY_MS; do
  i_every=$((i_every + 1))
  for workload in $WORKLOADS; do
    for run in $(seq 1 "$RUNS"); do
      seed=${SEED:-$((1000 * run + i_every))}
      dir=$OUT/$workload-$every-$run
      mkdir -p "$dir"
      echo "== $workload, a fault every $every ms, run $run/$RUNS (seed $seed)"
      # A fresh broker per run: one holding every earlier run's partitions
      # restarts ever more slowly, and the storm restarts it.
      "$ROOT/tools/weft-broker" wipe --port "$PORT" --data "$DATA" >/dev/null 2>&1
      "$ROOT/tools/weft-broker" start --port "$PORT" --data "$DATA" >/dev/null || {
        echo "   the broker did not start"
        continue
      }
      WEFT_TEST_BOOTSTRAP=127.0.0.1:$PORT WEFT_TEST_BROKER_DATA=$DATA \
        WEFT_CHAOS_SECONDS=$STORM_S WEFT_CHAOS_EVERY_MS=$every WEFT_CHAOS_SEED=$seed \
        WEFT_CHAOS_LOG_DIR=$dir \
        timeout $((STORM_S + 900)) "$BUILD/tests/weft_chaos_tests" "${SPEC[$workload]}" \
        >"$dir/output.txt" 2>&1
      summary=$(ls "$dir"/*-summary.txt 2>/dev/null | head -1)
      if [[ -z $summary ]]; then
        echo "   no summary (the test did not get that far): $dir/output.txt"
        printf '%s\t%s\t%s\t%s\t0\t1\t\n' "$workload" "$every" "$run" "$seed" >>"$RESULTS"
        continue
      fi
      tail -1 "$summary" | sed 's/^/   /'
      read -r passed failed < <(tail -1 "$summary" | awk '{print $1, $3}')
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$workload" "$every" "$run" "$seed" \
        "$passed" "$failed" "$summary" >>"$RESULTS"
      # Node logs are kept only for runs that failed a check.
      if [[ $failed != 0 ]]; then
        app=$(basename "$summary" -summary.txt)
        cp /tmp/"$app"-*.log "$dir"/ 2>/dev/null || true
      fi
    done
  done
done

"$ROOT/tools/weft-broker" stop --port "$PORT" --data "$DATA" >/dev/null 2>&1
python3 "$ROOT/bench/chaos_table.py" "$RESULTS" | tee "$OUT/table.md"
echo "results: $OUT"
