#!/usr/bin/env bash
# compare.sh — weft's bench binaries vs Apache Kafka Streams 3.9.1 (the Maven
# project in this folder, bench/kstreams), side by side against ONE broker in
# ONE invocation. See README.md here for how to read the table it prints.
#
#   bench/kstreams/compare.sh              its own broker (tools/weft-broker) on
#                                          127.0.0.1:WEFT_BENCH_PORT, stopped on exit
#   bench/kstreams/compare.sh BOOTSTRAP    an existing broker, e.g. 127.0.0.1:9092
#   N=100000 ROUNDS=1 WORKLOADS=stateless bench/kstreams/compare.sh    a short check
#
# Runs from any directory. Environment (defaults in brackets):
#   N [1000000]         records per workload (the memory workload uses 2N over N keys)
#   ROUNDS [2]          harness rounds. Each round runs every workload once per side,
#                       alternating who goes first (weft in odd rounds, Kafka Streams
#                       in even ones). Each of those processes times 2 runs itself
#                       (weft-bench-eos fixes 2, weft-bench-stateless defaults to
#                       --rounds=2; the peer mirrors them), so every throughput cell
#                       is the best of 2*ROUNDS runs per side.
#   WORKLOADS ["stateless count memory"]
#   PARTS [6], THREADS [2]   stateless only: --partitions/--threads of weft-bench-stateless
#                       and the peer's partitions/num.stream.threads. count is fixed
#                       by weft-bench-eos at 6 partitions and weft's default 2 threads
#                       (the peer uses the same); memory at 24 partitions, 2 threads.
#   WEFT_BENCH_PORT [29592]   port of the script's own broker (no BOOTSTRAP given); the
#                       script wipes whatever tools/weft-broker runs on it, starts it
#                       fresh (data in <root>/.weft/broker-PORT, controller on PORT+1),
#                       and on exit stops it (and wipes it if every process succeeded;
#                       after a failure its data and logs are kept)
#   WEFT_BENCH_DIR [<root>/build/bench]   weft-bench-stateless, -eos, -state; <root> is
#                       the project root found from this script's location
#                       (<root>/$WEFT_BUILD_DIR/bench when WEFT_BUILD_DIR is set). If
#                       the default folder lacks them, `tools/dev.sh build` builds
#                       them first; an existing build is used as it is.
#   WEFT_BENCH_CONFIG []   extra weft config "k=v,k=v", inherited by the weft benchmarks;
#                       those that read it apply it to their nodes (weft-bench-eos: count)
#   KS_DIR [bench/kstreams]   the peer's Maven project (this script's folder), built
#                       with `$MVN -q -B package` into KS_DIR/target when its classes are
#                       missing or older than Bench.java / pom.xml (in a temporary
#                       copy when KS_DIR is read-only); Maven's output: OUT/mvn.log
#   MVN [mvn], JAVA [java]   the commands (tools/setup.sh installs Debian's maven and
#                       default-jdk-headless; Java 17 or later)
#   KS_JAVA_OPTS []     JVM options of the peer (JVM defaults otherwise; heap size moves its RSS)
#   KS_ROCKSDB [bounded] bounded: weft's RocksDB budget (shared 64 MiB cache + 32 MiB
#                       write buffers); default: Kafka Streams' per-store defaults
#   KS_PROPS []         extra StreamsConfig properties, "k=v,k=v"
#   OUT [/tmp/weft-vs-kstreams-DATE]          logs, /usr/bin/time reports, parsed numbers
#   PROC_TIMEOUT [1800] seconds per benchmark process
#
# What runs (weft's benches create and fill their own input topics and delete them
# afterwards; they cannot read a topic chosen here, so the peer writes the SAME
# records to topics of its own: same keys, 88-byte 'v' values, murmur2 partitioning
# (librdkafka murmur2_random == the Java client's default), same partition count):
#
#  stateless (at_least_once)
#    weft: weft-bench-stateless --records=N --partitions=PARTS --threads=THREADS.
#          N records, keys "key%07d" (i % 100000); a weft node with one stateless
#          service upper-casing the value's first 16 bytes; 2 rounds, each timed
#          from node.start() until the output topic's end offsets sum to N (20 ms
#          polls). Only its "(b) weft" figures (the "weft X s" of each round line)
#          are used; the raw librdkafka loop (a) and the trace.headers=true node (c)
#          run in the same process but are not part of this table.
#    KS:   Bench suite stateless: same input; stream -> mapValues(same transform)
#          -> to(out); 2 runs, each timed from KafkaStreams.start() until the
#          output's end offsets sum to N (20 ms polls).
#  count-by-key (at_least_once, exactly_once)
#    weft: weft-bench-eos --records=N (section 1): N records over 100,000 keys
#          "key%09d" ((i*7919) % 100000), 6 partitions; a service that gets, +1 and
#          puts the count in a RocksDB store with a changelog and emits every new
#          count; at_least_once and exactly_once alternate, 2 rounds, each timed
#          from node.start() until the group's committed input offsets sum to N
#          (50 ms polls). commit.interval.ms=100. Its latency section (2) is run
#          short (--seconds=1 --rate=1000) and ignored.
#    KS:   Bench suite count: same input; groupByKey().count(RocksDB store
#          "counts", changelog on, record cache OFF so every record reaches the
#          store, changelog and output, as in weft).toStream().to(out); ALOS and
#          exactly_once_v2 alternate, 2 rounds, timed the same way (committed
#          offsets of application.id, 50 ms polls). commit.interval.ms=100 under
#          both guarantees (Kafka Streams' default is 30000 under ALOS, which with
#          this end condition would measure the commit interval, not throughput).
#  memory (count without output, 24 partitions, 2N records over N keys)
#    weft: weft-bench-state --phase=3 --records=N: peak VmRSS sampled every 100 ms
#          while the node runs (and what the process held before node start).
#    KS:   Bench suite memory: the same, sampled the same way in the JVM.
#
# Memory columns: for stateless/count, the peak RSS of the WHOLE benchmark
# process (/usr/bin/time -v), which on both sides includes producing the input
# in-process, and on weft's side also the raw librdkafka loop and the
# trace.headers=true node (stateless) or the latency section (count); ALOS and
# EOS rows come from one process per side. The memory row is the clean
# node-vs-app figure.
#
# Unavoidable differences (README.md in this folder lists them too):
#  - threads: weft's THREADS are CAF scheduler threads; librdkafka and RocksDB add
#    their own. Kafka Streams' THREADS are stream threads, each with its own
#    consumer and producer (and client I/O threads).
#  - start-up: both intervals include start-up. weft (cluster.enabled=false)
#    assigns partitions itself; Kafka Streams joins a consumer group (one
#    rebalance; the peer prints the broker's group.initial.rebalance.delay.ms,
#    0 on tools/weft-broker, Kafka's default 3000 elsewhere). The peer also
#    prints rate_after_first (from its first input record) for reference.
#  - client defaults are each side's own (KS producer linger.ms=100, weft 5;
#    KS max.poll.records=1000; ...); KS_PROPS (and WEFT_BENCH_CONFIG for count)
#    can align them.
#  - weft's progress probe creates a librdkafka consumer every 50 ms inside the
#    measured process (count); the peer uses one Admin client.
#  - weft's RocksDB writes a WAL (sync off); Kafka Streams disables the WAL.
#
# Needs /usr/bin/time (Debian package `time`), a JDK 17+ and Maven; Maven
# Central must be reachable the first time (the peer's jars, and the broker's
# jars through tools/weft-broker install). Exit status: 0 when every benchmark
# process succeeded, 1 otherwise, 2 usage.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

case ${1:-} in
  -h | --help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
    exit 0
    ;;
  -*)
    printf 'compare: unknown option %s (try --help)\n' "$1" >&2
    exit 2
    ;;
esac
(($# <= 1)) || { printf 'compare: one BOOTSTRAP at most (try --help)\n' >&2; exit 2; }
BOOT=${1:-}
N=${N:-1000000}
ROUNDS=${ROUNDS:-2}
WORKLOADS=${WORKLOADS:-stateless count memory}
PARTS=${PARTS:-6}
THREADS=${THREADS:-2}
PORT=${WEFT_BENCH_PORT:-29592}
WEFT_BENCH_DIR_DEFAULT=$ROOT/${WEFT_BUILD_DIR:-build}/bench
WEFT_BENCH_DIR=${WEFT_BENCH_DIR:-$WEFT_BENCH_DIR_DEFAULT}
KS_DIR=${KS_DIR:-$HERE}
KS_JAVA_OPTS=${KS_JAVA_OPTS:-}
export KS_ROCKSDB=${KS_ROCKSDB:-bounded} KS_PROPS=${KS_PROPS:-}
OUT=${OUT:-/tmp/weft-vs-kstreams-$(date +%Y%m%d-%H%M%S)}
PROC_TIMEOUT=${PROC_TIMEOUT:-1800}
TIME=/usr/bin/time
JAVA=${JAVA:-java}
MVN=${MVN:-mvn}
BROKER=$ROOT/tools/weft-broker

say() { printf 'compare: %s\n' "$*"; }
die() { printf 'compare: error: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ checks ---
for v in N ROUNDS PARTS THREADS PORT PROC_TIMEOUT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
for w in $WORKLOADS; do
  case $w in stateless | count | memory) ;; *) die "unknown workload $w (stateless, count, memory)" ;; esac
done
[[ -x $TIME ]] || die "$TIME missing (apt-get install -y time)"
command -v "$JAVA" >/dev/null || die "no '$JAVA' (a JDK 17 or later): run tools/setup.sh"
command -v "$MVN" >/dev/null || die "no '$MVN' (Maven): run tools/setup.sh"
[[ -f $KS_DIR/pom.xml && -f $KS_DIR/src/main/java/bench/Bench.java ]] ||
  die "no Kafka Streams peer in $KS_DIR (pom.xml, src/main/java/bench/Bench.java)"
missing=0
for b in weft-bench-stateless weft-bench-eos weft-bench-state; do
  [[ -x $WEFT_BENCH_DIR/$b ]] || missing=1
done
if ((missing)) && [[ $WEFT_BENCH_DIR == "$WEFT_BENCH_DIR_DEFAULT" ]]; then
  say "no weft benchmarks in $WEFT_BENCH_DIR: building them (tools/dev.sh build)"
  bash "$ROOT/tools/dev.sh" build || die "tools/dev.sh build failed"
fi
for b in weft-bench-stateless weft-bench-eos weft-bench-state; do
  [[ -x $WEFT_BENCH_DIR/$b ]] || die "no $WEFT_BENCH_DIR/$b (build weft, or set WEFT_BENCH_DIR)"
done
mkdir -p "$OUT" || die "cannot create $OUT"

# ------------------------------------------------- the Kafka Streams peer ---
if [[ ! -w $KS_DIR ]]; then # a read-only checkout: build a copy
  copy=${TMPDIR:-/tmp}/weft-kstreams-peer
  if ! mkdir -p "$copy" || ! cp -rp "$KS_DIR/pom.xml" "$KS_DIR/src" "$copy/"; then
    die "cannot copy $KS_DIR to $copy"
  fi
  KS_DIR=$copy
fi
KS_CLASS=$KS_DIR/target/classes/bench/Bench.class
if [[ ! -f $KS_CLASS || ! -d $KS_DIR/target/lib || $KS_DIR/src/main/java/bench/Bench.java -nt $KS_CLASS ||
  $KS_DIR/pom.xml -nt $KS_CLASS ]]; then
  say "building the Kafka Streams peer ($MVN -q -B package in $KS_DIR; output in $OUT/mvn.log)"
  if ! (cd "$KS_DIR" && "$MVN" -q -B -Dstyle.color=never package </dev/null >"$OUT/mvn.log" 2>&1); then
    tail -n 30 "$OUT/mvn.log" | sed 's/^/    /' >&2
    die "mvn package failed in $KS_DIR (log: $OUT/mvn.log)"
  fi
  touch "$KS_CLASS" # an unchanged class keeps its old time stamp: do not rebuild next time
fi
KS_CP="$KS_DIR/target/classes:$KS_DIR/target/lib/*"
ks_jars=("$KS_DIR"/target/lib/kafka-streams-[0-9]*.jar)
KS_VERSION=${ks_jars[0]##*/}
KS_VERSION=${KS_VERSION%.jar}
# shellcheck disable=SC2206  # KS_JAVA_OPTS is a list of options, split on spaces
KS_CMD=("$JAVA" $KS_JAVA_OPTS -cp "$KS_CP" bench.Bench)

# ------------------------------------------------------------------ broker ---
OWN_BROKER=0
if [[ -z $BOOT ]]; then
  OWN_BROKER=1
  BOOT=127.0.0.1:$PORT
  # Stops the script's broker; wipes it when every benchmark process succeeded.
  stop_broker() {
    local rc=$?
    trap - EXIT INT TERM
    if ((rc == 0)) && [[ ! -s $OUT/failures.txt ]]; then
      "$BROKER" wipe --port "$PORT" >"$OUT/broker-stop.log" 2>&1 ||
        say "warning: 'tools/weft-broker wipe --port $PORT' failed: $(tail -n 1 "$OUT/broker-stop.log")"
    else
      "$BROKER" stop --port "$PORT" >"$OUT/broker-stop.log" 2>&1 ||
        say "warning: 'tools/weft-broker stop --port $PORT' failed: $(tail -n 1 "$OUT/broker-stop.log")"
      say "broker stopped; its data and logs are kept in $ROOT/.weft/broker-$PORT (tools/weft-broker wipe --port $PORT)"
    fi
    exit "$rc"
  }
  trap stop_broker EXIT
  trap 'say interrupted; exit 130' INT
  trap 'say terminated; exit 143' TERM
  say "starting a fresh broker on $BOOT (tools/weft-broker; log in $OUT/broker-start.log)"
  "$BROKER" wipe --port "$PORT" >"$OUT/broker-start.log" 2>&1 || {
    cat "$OUT/broker-start.log" >&2
    die "tools/weft-broker wipe --port $PORT failed"
  }
  "$BROKER" start --port "$PORT" >>"$OUT/broker-start.log" 2>&1 || {
    cat "$OUT/broker-start.log" >&2
    die "tools/weft-broker start --port $PORT failed"
  }
  say "$(tail -n 1 "$OUT/broker-start.log")"
fi
host=${BOOT%%,*}
port=${host##*:}
host=${host%:*}
timeout 3 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null || die "no broker listening on $host:$port"
: >"$OUT/rates.tsv"
: >"$OUT/rss.tsv"
: >"$OUT/mem.tsv"
: >"$OUT/failures.txt"
WEFT_SRC=$(git -C "$WEFT_BENCH_DIR/../.." describe --always --dirty 2>/dev/null || echo '?')

{
  echo "date:      $(date -Is)"
  echo "host:      $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "broker:    $BOOT$( ((OWN_BROKER)) && echo " (started by this script: tools/weft-broker, data $ROOT/.weft/broker-$PORT)")"
  echo "weft:      $WEFT_BENCH_DIR (source tree at $WEFT_SRC) WEFT_BENCH_CONFIG='${WEFT_BENCH_CONFIG:-}'"
  echo "kstreams:  $KS_VERSION, $("$JAVA" -version 2>&1 | head -1), KS_JAVA_OPTS='$KS_JAVA_OPTS' KS_ROCKSDB=$KS_ROCKSDB KS_PROPS='$KS_PROPS'"
  echo "workloads: $WORKLOADS; N=$N ROUNDS=$ROUNDS stateless PARTS=$PARTS THREADS=$THREADS; count 6 partitions, 2 threads; memory 24 partitions, 2 threads"
  echo "output:    $OUT"
} | tee "$OUT/env.txt"
((THREADS == 2)) || say "note: THREADS=$THREADS applies to stateless only; weft-bench-eos/-state use weft's default 2, and so does the peer there"

LAST_RC=0
# run NAME CMD...: one benchmark process under /usr/bin/time -v; stdout+stderr to NAME.log.
# timeout --foreground keeps the process in this script's process group, so
# that Ctrl-C reaches it (and then this script's trap stops the broker).
run() {
  local name=$1
  shift
  say "$(date +%T) $name: $*"
  local t0=$SECONDS
  "$TIME" -v -o "$OUT/$name.time" timeout --foreground -k 30 "$PROC_TIMEOUT" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  LAST_RC=$rc
  if ((rc != 0)); then
    echo "$name rc=$rc" >>"$OUT/failures.txt"
    say "$name FAILED (exit $rc) after $((SECONDS - t0)) s; tail of $OUT/$name.log:"
    tail -n 15 "$OUT/$name.log" | sed 's/^/    /'
  else
    say "$name done in $((SECONDS - t0)) s"
  fi
  return 0
}

max_rss_kb() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1" 2>/dev/null; }

# Appends "side workload guarantee rate" lines and "side workload kb" RSS lines.
parse() {
  local side=$1 w=$2 name=$3 log="$OUT/$3.log"
  [[ -f $log ]] || return 0
  local kb lines
  kb=$(max_rss_kb "$OUT/$name.time")
  lines=$(cat "$OUT/rates.tsv" "$OUT/mem.tsv" | wc -l)
  case $side/$w in
    weft/stateless)
      # round 1: raw A s (cpu ..), weft B s (cpu C s), weft with trace.headers=true D s (cpu E s)
      awk -v n="$N" '/^round [0-9]+: raw .*, weft [0-9.]+ s/ {
          s = 0
          for (i = 1; i < NF; i++) if ($i == "weft" && $(i + 1) ~ /^[0-9.]+$/) { s = $(i + 1); break }
          if (s > 0) printf "weft stateless at_least_once %.0f\n", n / s }' "$log" >>"$OUT/rates.tsv"
      ;;
    weft/count)
      awk '/^ *round [0-9]+: at_least_once [0-9]+ records\/s, exactly_once [0-9]+ records\/s/ {
          printf "weft count at_least_once %s\nweft count exactly_once %s\n", $4, $7 }' "$log" >>"$OUT/rates.tsv"
      ;;
    kstreams/stateless | kstreams/count)
      awk '/^RESULT side=kstreams/ { w = ""; g = ""; r = ""; f = ""
          for (i = 1; i <= NF; i++) { split($i, kv, "=")
            if (kv[1] == "workload") w = kv[2]; else if (kv[1] == "guarantee") g = kv[2]
            else if (kv[1] == "rate") r = kv[2]; else if (kv[1] == "first_record_s") f = kv[2] }
          printf "kstreams %s %s %s %s\n", w, g, r, f }' "$log" >>"$OUT/rates.tsv"
      ;;
    weft/memory)
      # (3) 24 shards, R records over K keys: peak resident P MB (process held B MB before the node started)
      awk '/^\(3\) .*peak resident/ { for (i = 1; i <= NF; i++) { if ($i == "resident") p = $(i + 1); if ($i == "held") b = $(i + 1) }
          printf "weft memory %s %s\n", p, b }' "$log" >>"$OUT/mem.tsv"
      ;;
    kstreams/memory)
      awk '/^SUMMARY side=kstreams workload=memory/ { for (i = 1; i <= NF; i++) { split($i, kv, "=")
            if (kv[1] == "peak_rss_mb") p = kv[2]; if (kv[1] == "rss_before_mb") b = kv[2] }
          printf "kstreams memory %s %s\n", p, b }' "$log" >>"$OUT/mem.tsv"
      ;;
  esac
  [[ -n $kb ]] && echo "$side $w $kb" >>"$OUT/rss.tsv"
  # A process that succeeded but printed nothing this script recognises: its
  # output format changed. Say so rather than print "-" in the table.
  if ((LAST_RC == 0)) && (($(cat "$OUT/rates.tsv" "$OUT/mem.tsv" | wc -l) == lines)); then
    echo "$name no-figures-parsed" >>"$OUT/failures.txt"
    say "$name: no figures found in $log (has its output format changed? see parse() in ${BASH_SOURCE[0]})"
  fi
  return 0
}

run_side() {
  local side=$1 w=$2 r=$3 name="$2-$1-r$3"
  case $side/$w in
    weft/stateless) run "$name" "$WEFT_BENCH_DIR/weft-bench-stateless" --bootstrap="$BOOT" \
      --records="$N" --partitions="$PARTS" --threads="$THREADS" ;;
    weft/count) run "$name" "$WEFT_BENCH_DIR/weft-bench-eos" --bootstrap="$BOOT" --records="$N" \
      --seconds=1 --rate=1000 ;;
    weft/memory) run "$name" "$WEFT_BENCH_DIR/weft-bench-state" --bootstrap="$BOOT" --records="$N" --phase=3 ;;
    kstreams/stateless) run "$name" "${KS_CMD[@]}" suite "$BOOT" stateless "$N" "$PARTS" "$THREADS" 2 ;;
    kstreams/count) run "$name" "${KS_CMD[@]}" suite "$BOOT" count "$N" 6 2 2 ;;
    kstreams/memory) run "$name" "${KS_CMD[@]}" suite "$BOOT" memory "$N" 24 2 ;;
  esac
  parse "$side" "$w" "$name"
}

for ((r = 1; r <= ROUNDS; r++)); do
  for w in $WORKLOADS; do
    if ((r % 2)); then order="weft kstreams"; else order="kstreams weft"; fi
    for side in $order; do run_side "$side" "$w" "$r"; done
  done
done

# ------------------------------------------------------------------ report ---
report() {
  awk -v n="$N" -v parts="$PARTS" -v threads="$THREADS" '
    function fmt_rate(x) { return x == "" ? "-" : sprintf("%.0f", x) }
    function fmt_mb(kb) { return kb == "" ? "-" : sprintf("%.0f MB", kb / 1024) }
    function median(key,   k, i, j, t, a, c) {
      c = cnt[key]; if (!c) return ""
      for (i = 1; i <= c; i++) a[i] = val[key, i]
      for (i = 2; i <= c; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return c % 2 ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2
    }
    FILENAME ~ /rates.tsv$/ { key = $1 SUBSEP $2 SUBSEP $3; cnt[key]++; val[key, cnt[key]] = $4
      if ($4 + 0 > best[key] + 0) best[key] = $4
      if ($1 == "kstreams" && $5 != "") { fk = $2 SUBSEP $3; fcnt[fk]++; fsum[fk] += $5 }
      next }
    FILENAME ~ /rss.tsv$/ { k = $1 SUBSEP $2; if ($3 + 0 > rss[k] + 0) rss[k] = $3; next }
    FILENAME ~ /mem.tsv$/ { k = $1; if ($3 + 0 > mpeak[k] + 0) { mpeak[k] = $3; mbefore[k] = $4 }; next }
    END {
      split("stateless at_least_once|count at_least_once|count exactly_once", rows, "|")
      label["stateless at_least_once"] = sprintf("stateless, %dp/%dt (at_least_once)", parts, threads)
      label["count at_least_once"] = "count-by-key, 6p/2t (at_least_once)"
      label["count exactly_once"] = "count-by-key, 6p/2t (exactly_once)"
      line = "------------------------------------------------------------------------------------------------------"
      printf "%-44s | %11s | %11s | %9s | %9s | %9s\n", "workload (" n " records)", "weft rec/s", "KS rec/s", "weft/KS", "weft RSS*", "KS RSS*"
      print line
      for (i = 1; i <= 3; i++) {
        split(rows[i], wg, " "); w = wg[1]; g = wg[2]
        kw = "weft" SUBSEP w SUBSEP g; kk = "kstreams" SUBSEP w SUBSEP g
        if (!cnt[kw] && !cnt[kk]) continue
        ratio = (best[kw] > 0 && best[kk] > 0) ? sprintf("%.2f", best[kw] / best[kk]) : "-"
        printf "%-44s | %11s | %11s | %9s | %9s | %9s\n", label[rows[i]], fmt_rate(best[kw]), fmt_rate(best[kk]), ratio,
               fmt_mb(rss["weft" SUBSEP w]), fmt_mb(rss["kstreams" SUBSEP w])
      }
      if (("weft" in mpeak) || ("kstreams" in mpeak)) {
        mr = (mpeak["weft"] > 0 && mpeak["kstreams"] > 0) ? sprintf("%.2f", mpeak["weft"] / mpeak["kstreams"]) : "-"
        printf "%-44s | %11s | %11s | %9s | %9s | %9s\n", "memory: count 24p, " 2 * n " over " n " keys", "-", "-", mr,
               (mpeak["weft"] == "" ? "-" : mpeak["weft"] " MB"), (mpeak["kstreams"] == "" ? "-" : mpeak["kstreams"] " MB")
      }
      print line
      print "rec/s: best run per side (N / seconds from start() to the end condition, start-up included)."
      print "* RSS: peak resident set of the whole benchmark process (/usr/bin/time -v; input producer included;"
      print "  ALOS and EOS share one process per side). memory row: peak VmRSS while the node/app ran, sampled"
      print "  every 100 ms in-process on both sides; ratio there is weft/KS of that peak."
      print ""
      printf "%-44s | %5s | %15s | %15s | %s\n", "details", "runs", "weft median", "KS median", "KS first record after (mean s)"
      for (i = 1; i <= 3; i++) {
        split(rows[i], wg, " "); w = wg[1]; g = wg[2]
        kw = "weft" SUBSEP w SUBSEP g; kk = "kstreams" SUBSEP w SUBSEP g
        if (!cnt[kw] && !cnt[kk]) continue
        fk = w SUBSEP g
        printf "%-44s | %2d/%-2d | %15s | %15s | %s\n", label[rows[i]], cnt[kw], cnt[kk], fmt_rate(median(kw)), fmt_rate(median(kk)),
               fcnt[fk] ? sprintf("%.2f", fsum[fk] / fcnt[fk]) : "-"
      }
      if (("weft" in mpeak) || ("kstreams" in mpeak))
        printf "%-44s | RSS before start: weft %s MB, KS %s MB\n", "memory", mbefore["weft"], mbefore["kstreams"]
    }' "$OUT/rates.tsv" "$OUT/rss.tsv" "$OUT/mem.tsv"
}

echo
report | tee "$OUT/table.txt"
if [[ -s $OUT/failures.txt ]]; then
  echo
  say "FAILED processes (see their logs in $OUT): $(tr '\n' ' ' <"$OUT/failures.txt")"
  say "logs: $OUT"
  exit 1
fi
say "logs: $OUT"
