package bench;

// Kafka Streams peer for side-by-side benchmarks against weft on the same broker
// and machine (driven by bench/kstreams/compare.sh). Each workload mirrors one
// of weft's bench/*.cpp programs: the same input records (keys, 88-byte values,
// murmur2 partitions), the same topology, the same weft-default settings where
// Kafka Streams has an equivalent, and the same measured interval:
//
//   stateless  = weft-bench-stateless (b): upper-case the value's first 16 bytes,
//                key unchanged, to a fresh output topic. N records over
//                100,000 keys "key%07d" (i % 100000). Timed from
//                KafkaStreams.start() until the output topic's end offsets sum
//                to N (polled every 20 ms, like weft's probe).
//   count      = weft-bench-eos (1): count per key in a RocksDB store with a
//                changelog, emitting every new count (record cache off) as an
//                8-byte big-endian long. N records over 100,000 keys "key%09d"
//                ((i * 7919) % 100000), 6 partitions. at_least_once and
//                exactly_once(_v2) alternate per round. Timed from start()
//                until the group's committed input offsets sum to N (polled
//                every 50 ms, like weft).
//   memory     = weft-bench-state --phase=3: 2N records over N keys, 24
//                partitions, count per key without output; peak resident set
//                (VmRSS sampled every 100 ms) while the app runs, and the RSS
//                the process held just before start().
//
// Settings (both guarantees): commit.interval.ms=100 (weft's default; Kafka
// Streams' own default is 30000 under at_least_once), 2 stream threads (weft's
// default num.stream.threads), replication factor 1, and by default RocksDB
// bounded like weft's stores: one 64 MiB LRU block cache shared by all stores,
// with a 32 MiB write-buffer manager charged to it (KS_ROCKSDB=default keeps
// Kafka Streams' per-store defaults). KS_PROPS="key=value,..." adds or
// overrides StreamsConfig properties (e.g. producer.linger.ms=5). Untimed: the
// main consumers leave the group on close, so that closing during a rebalance
// does not wait out the 45 s session timeout.
//
// Usage (java -cp 'target/classes:target/lib/*' bench.Bench ...):
//   suite BOOT stateless N [PARTS=6] [THREADS=2] [ROUNDS=2]
//   suite BOOT count     N [PARTS=6] [THREADS=2] [ROUNDS=2]
//   suite BOOT memory    N [PARTS=24] [THREADS=2]
//       one process like weft's: creates and fills its own input topic, runs
//       ROUNDS timed runs (fresh application.id each), deletes its topics.
//   produce BOOT TOPIC N PARTS KEYS VALUE_BYTES [stateless|count]
//   run BOOT stateless|count IN OUT N [eos] [THREADS=2]
//       one timed run on an existing input topic (fresh application.id).
//
// Output: one "RESULT side=kstreams ..." line per timed run (rate=records/s),
// and a last line "SUMMARY side=kstreams ..." (suite) with the best rate of
// each guarantee and the process's peak RSS (VmHWM). All key=value, space
// separated; sizes in MiB.

import java.io.IOException;
import java.nio.file.*;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.*;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.*;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.*;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.RocksDBConfigSetter;

public class Bench {
  static final int KEYS = 100_000;
  static final int VALUE_BYTES = 88; // weft: std::string value(88, 'v')
  static final long TIMEOUT_NS = TimeUnit.MINUTES.toNanos(10);
  static final String TAG = (System.currentTimeMillis() / 1000) + "-" + ProcessHandle.current().pid();
  static final Path STATE_ROOT = Paths.get(System.getProperty("java.io.tmpdir"), "kstreams-bench-" + TAG);

  public static void main(String[] a) throws Exception {
    Locale.setDefault(Locale.ROOT);
    if (System.getProperty("org.slf4j.simpleLogger.defaultLogLevel") == null)
      System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
    // state.dir is under /tmp on purpose (weft's benches use /tmp/<app>): same file system.
    System.setProperty("org.slf4j.simpleLogger.log.org.apache.kafka.streams.processor.internals.StateDirectory", "error");
    if (a.length < 2) usage();
    try {
      switch (a[0]) {
        case "produce":
          if (a.length < 7) usage();
          try (Admin admin = admin(a[1])) {
            create(admin, a[2], Integer.parseInt(a[4]));
          }
          produce(a[1], a[2], Long.parseLong(a[3]), Integer.parseInt(a[5]), Integer.parseInt(a[6]),
              a.length > 7 ? a[7] : "stateless", 20);
          break;
        case "run": {
          if (a.length < 6) usage();
          String mode = a[2];
          if (!mode.equals("stateless") && !mode.equals("count")) usage();
          boolean eos = a.length > 6 && a[6].equals("eos");
          int threads = a.length > 7 ? Integer.parseInt(a[7]) : 2;
          try (Admin admin = admin(a[1])) {
            int parts = admin.describeTopics(List.of(a[3])).allTopicNames().get().get(a[3]).partitions().size();
            create(admin, a[4], parts); // as many partitions as the input (kept if it exists)
            Result r = runOnce(admin, a[1], mode, a[3], a[4], parts, Long.parseLong(a[5]), eos, threads, 1, true);
            System.out.println(r.line());
          } finally {
            deleteDir(STATE_ROOT);
          }
          break;
        }
        case "suite": {
          if (a.length < 4) usage();
          String w = a[2];
          long n = Long.parseLong(a[3]);
          int parts = a.length > 4 ? Integer.parseInt(a[4]) : (w.equals("memory") ? 24 : 6);
          int threads = a.length > 5 ? Integer.parseInt(a[5]) : 2;
          int rounds = a.length > 6 ? Integer.parseInt(a[6]) : 2;
          try {
            switch (w) {
              case "stateless": suiteStateless(a[1], n, parts, threads, rounds); break;
              case "count": suiteCount(a[1], n, parts, threads, rounds); break;
              case "memory": suiteMemory(a[1], n, parts, threads); break;
              default: usage();
            }
          } finally {
            deleteDir(STATE_ROOT);
          }
          break;
        }
        default:
          usage();
      }
    } catch (Throwable t) {
      System.out.flush();
      System.err.println("kstreams-bench: " + t);
      t.printStackTrace();
      System.exit(1);
    }
    System.exit(0); // stray non-daemon client threads must not keep the JVM (and the harness) waiting
  }

  static void usage() {
    System.err.println("usage: bench.Bench suite BOOT stateless|count N [PARTS] [THREADS] [ROUNDS]\n"
        + "       bench.Bench suite BOOT memory N [PARTS=24] [THREADS]\n"
        + "       bench.Bench produce BOOT TOPIC N PARTS KEYS VALUE_BYTES [stateless|count]\n"
        + "       bench.Bench run BOOT stateless|count IN OUT N [eos] [THREADS]");
    System.exit(2);
  }

  // ------------------------------------------------------------------ suites

  /** Mirrors weft-bench-stateless: one input, ROUNDS runs each to a fresh output topic. */
  static void suiteStateless(String boot, long n, int parts, int threads, int rounds) throws Exception {
    try (Admin admin = admin(boot)) {
      brokerNote(admin);
      String in = "ks-bench-in-" + TAG;
      List<String> topics = new ArrayList<>(List.of(in));
      create(admin, in, parts);
      System.out.printf("producing %d %d-byte-value records to %s (%d partitions)...%n", n, VALUE_BYTES, in, parts);
      produce(boot, in, n, KEYS, VALUE_BYTES, "stateless", 20);
      double best = 0;
      try {
        for (int r = 1; r <= rounds; r++) {
          String out = "ks-bench-out-" + TAG + "-" + r;
          create(admin, out, parts);
          topics.add(out);
          Result res = runOnce(admin, boot, "stateless", in, out, parts, n, false, threads, r, true);
          System.out.printf("round %d: kstreams %.2f s (%.0f records/s; first record after %.2f s)%n",
              r, res.seconds, res.rate(), res.startup);
          System.out.println(res.line());
          best = Math.max(best, res.rate());
        }
      } finally {
        deleteTopics(admin, topics);
      }
      System.out.printf("SUMMARY side=kstreams workload=stateless records=%d partitions=%d threads=%d runs=%d "
          + "best_rate=%.0f vmhwm_mb=%d %s%n", n, parts, threads, rounds, best, procKb("VmHWM") / 1024, jvmNote());
    }
  }

  /** Mirrors weft-bench-eos (1): the count pipeline, at_least_once and exactly_once alternating. */
  static void suiteCount(String boot, long n, int parts, int threads, int rounds) throws Exception {
    try (Admin admin = admin(boot)) {
      brokerNote(admin);
      String in = "ks-eos-bench-in-" + TAG, out = "ks-eos-bench-out-" + TAG;
      List<String> topics = List.of(in, out);
      create(admin, in, parts);
      create(admin, out, parts);
      System.out.printf("producing %d records over %d keys to %s (%d partitions)...%n", n, KEYS, in, parts);
      produce(boot, in, n, KEYS, VALUE_BYTES, "count", 5);
      double bestAlo = 0, bestEos = 0;
      try {
        for (int r = 1; r <= rounds; r++) {
          Result alo = runOnce(admin, boot, "count", in, out, parts, n, false, threads, r, true);
          System.out.println(alo.line());
          Result eos = runOnce(admin, boot, "count", in, out, parts, n, true, threads, r, true);
          System.out.println(eos.line());
          System.out.printf("  round %d: at_least_once %.0f records/s, exactly_once %.0f records/s%n",
              r, alo.rate(), eos.rate());
          bestAlo = Math.max(bestAlo, alo.rate());
          bestEos = Math.max(bestEos, eos.rate());
        }
      } finally {
        deleteTopics(admin, topics);
      }
      System.out.printf("SUMMARY side=kstreams workload=count records=%d partitions=%d threads=%d runs=%d "
          + "best_rate_at_least_once=%.0f best_rate_exactly_once=%.0f vmhwm_mb=%d %s%n",
          n, parts, threads, rounds, bestAlo, bestEos, procKb("VmHWM") / 1024, jvmNote());
    }
  }

  /** Mirrors weft-bench-state --phase=3: 2N records over N keys, counted without output. */
  static void suiteMemory(String boot, long n, int parts, int threads) throws Exception {
    try (Admin admin = admin(boot)) {
      brokerNote(admin);
      String in = "ks-state-bench-" + parts + "-" + TAG;
      create(admin, in, parts);
      System.out.printf("producing %d records over %d keys to %s (%d partitions)...%n", 2 * n, n, in, parts);
      produce(boot, in, 2 * n, (int) n, VALUE_BYTES, "count", 20);
      Result res;
      try {
        res = runOnce(admin, boot, "count-noemit", in, null, parts, 2 * n, false, threads, 1, true);
        System.out.println(res.line());
      } finally {
        deleteTopics(admin, List.of(in));
      }
      System.out.printf("SUMMARY side=kstreams workload=memory records=%d keys=%d partitions=%d threads=%d "
          + "peak_rss_mb=%d rss_before_mb=%d rate=%.0f vmhwm_mb=%d %s%n", 2 * n, n, parts, threads,
          res.rssPeakKb / 1024, res.rssBeforeKb / 1024, res.rate(), procKb("VmHWM") / 1024, jvmNote());
    }
  }

  // ------------------------------------------------------------- input data

  /** "key" + `digits` decimal digits of k, zero-padded: weft's snprintf("key%07zu") / ("key%09zu"). */
  static byte[] key(int digits, long k) {
    byte[] b = new byte[3 + digits];
    b[0] = 'k'; b[1] = 'e'; b[2] = 'y';
    for (int j = 2 + digits; j >= 3; --j, k /= 10) b[j] = (byte) ('0' + k % 10);
    return b;
  }

  /**
   * The records weft's benches write: value = VALUE_BYTES x 'v'; keys as in
   * stateless_bench.cpp ("stateless": key%07d of i % keys) or state_bench.cpp /
   * eos_bench.cpp ("count": key%09d of (i * 7919) % keys). Partitioned by
   * murmur2 of the key (the Java client's default; weft uses librdkafka's
   * murmur2_random, the same function), idempotent, batches up to 1 MB like
   * librdkafka's default, so the topics hold the same records per partition.
   */
  static void produce(String boot, String topic, long n, int keys, int valueBytes, String fmt, int lingerMs)
      throws Exception {
    Properties p = new Properties();
    p.put("bootstrap.servers", boot);
    p.put("enable.idempotence", "true");
    p.put("acks", "all");
    p.put("linger.ms", Integer.toString(lingerMs));
    p.put("batch.size", "1000000");
    p.put("buffer.memory", Long.toString(64L << 20));
    byte[] v = new byte[valueBytes];
    Arrays.fill(v, (byte) 'v');
    boolean stateless = fmt.equals("stateless");
    long t0 = System.nanoTime();
    AtomicReference<Exception> failed = new AtomicReference<>();
    Callback cb = (md, e) -> { if (e != null) failed.compareAndSet(null, e); };
    try (KafkaProducer<byte[], byte[]> pr = new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
      for (long i = 0; i < n; i++) {
        byte[] k = stateless ? key(7, i % keys) : key(9, (i * 7919) % keys);
        pr.send(new ProducerRecord<>(topic, k, v), cb);
      }
      pr.flush();
    }
    if (failed.get() != null) throw failed.get();
    double s = (System.nanoTime() - t0) / 1e9;
    System.out.printf("produce topic=%s records=%d seconds=%.3f rate=%.0f%n", topic, n, s, n / s);
  }

  // ---------------------------------------------------------------- one run

  static final class Result {
    String mode, app;
    boolean eos;
    long records, rssBeforeKb, rssPeakKb;
    int round, threads, parts;
    double seconds, startup, closeSeconds;

    double rate() { return records / seconds; }

    String line() {
      double afterFirst = seconds - startup;
      return String.format(Locale.ROOT,
          "RESULT side=kstreams workload=%s guarantee=%s round=%d records=%d partitions=%d threads=%d "
              + "seconds=%.3f rate=%.0f first_record_s=%.3f rate_after_first=%.0f rss_before_mb=%d rss_peak_mb=%d "
              + "close_s=%.2f",
          mode, eos ? "exactly_once" : "at_least_once", round, records, parts, threads, seconds, rate(), startup,
          afterFirst > 0 ? records / afterFirst : 0, rssBeforeKb / 1024, rssPeakKb / 1024, closeSeconds);
    }
  }

  /**
   * One timed run with a fresh application.id (consumer group) and state dir.
   * mode: stateless | count | count-noemit. Timed like weft: from just before
   * KafkaStreams.start() until the output holds n new records (stateless) or
   * the group committed n input offsets (count); closing is not timed.
   */
  static Result runOnce(Admin admin, String boot, String mode, String in, String out, int parts, long n, boolean eos,
      int threads, int round, boolean deleteInternal) throws Exception {
    String app = "ks-bench-" + mode + "-" + (eos ? "eos" : "alo") + "-" + TAG + "-" + round;
    boolean stateless = mode.equals("stateless");
    AtomicLong first = new AtomicLong();
    Topology topo = topology(mode, in, out, first);
    Properties props = streamsProps(boot, app, threads, eos);
    KafkaStreams ks = new KafkaStreams(topo, props);
    AtomicReference<Throwable> failure = new AtomicReference<>();
    ks.setUncaughtExceptionHandler(e -> {
      failure.compareAndSet(null, e);
      return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    });
    long base = stateless ? endOffsets(admin, out, parts) : 0;
    if (base < 0) throw new IllegalStateException("no end offsets for " + out);
    List<TopicPartition> inputs = new ArrayList<>();
    for (int p = 0; p < parts; p++) inputs.add(new TopicPartition(in, p));
    RssSampler rss = new RssSampler();
    Result r = new Result();
    r.mode = mode; r.app = app; r.eos = eos; r.records = n; r.round = round; r.threads = threads; r.parts = parts;
    r.rssBeforeKb = procKb("VmRSS");
    rss.start();
    long t0 = System.nanoTime();
    ks.start();
    try {
      while (true) {
        long done = stateless ? endOffsets(admin, out, parts) - base : committed(admin, app, inputs);
        if (done >= n) break;
        if (failure.get() != null) throw new IllegalStateException(app + " failed", failure.get());
        KafkaStreams.State st = ks.state();
        if (st == KafkaStreams.State.ERROR || st == KafkaStreams.State.NOT_RUNNING
            || st == KafkaStreams.State.PENDING_ERROR)
          throw new IllegalStateException(app + " stopped: " + st);
        if (System.nanoTime() - t0 > TIMEOUT_NS) throw new IllegalStateException("timed out: " + app + " at " + done);
        Thread.sleep(stateless ? 20 : 50);
      }
      long t1 = System.nanoTime();
      r.seconds = (t1 - t0) / 1e9;
      r.startup = first.get() == 0 ? r.seconds : (first.get() - t0) / 1e9;
    } finally {
      rss.stop();
      r.rssPeakKb = Math.max(rss.peakKb, procKb("VmRSS"));
      long c0 = System.nanoTime();
      // Not timed. Closing while a rebalance is in flight (a short run can end
      // before the second stream thread has joined) blocks close() for the
      // consumers' session timeout (45 s): Kafka Streams' consumers do not
      // leave the group on close. Let the rebalance finish first.
      while (failure.get() == null && ks.state() == KafkaStreams.State.REBALANCING
          && System.nanoTime() - c0 < TimeUnit.SECONDS.toNanos(30))
        Thread.sleep(20);
      ks.close(Duration.ofSeconds(60));
      ks.cleanUp();
      if (deleteInternal) deleteInternalTopics(admin, app);
      r.closeSeconds = (System.nanoTime() - c0) / 1e9;
    }
    return r;
  }

  static Topology topology(String mode, String in, String out, AtomicLong first) {
    StreamsBuilder b = new StreamsBuilder();
    KStream<byte[], byte[]> s = b.stream(in, Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()))
        .peek((k, v) -> {
          if (first.get() == 0) first.compareAndSet(0, System.nanoTime());
        });
    if (mode.equals("stateless")) {
      s.mapValues(Bench::transform).to(out, Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));
    } else {
      // weft's counter: get, +1, put into RocksDB (changelogged), emit the new count.
      // The record cache is off so that every record reaches the store, the
      // changelog and the output, as in weft.
      KTable<byte[], Long> counts = s.groupByKey(Grouped.with(Serdes.ByteArray(), Serdes.ByteArray()))
          .count(Materialized.<byte[], Long, KeyValueStore<Bytes, byte[]>>as("counts")
              .withKeySerde(Serdes.ByteArray()).withValueSerde(Serdes.Long()).withCachingDisabled());
      if (mode.equals("count")) counts.toStream().to(out, Produced.with(Serdes.ByteArray(), Serdes.Long()));
    }
    return b.build();
  }

  /** weft's bench transform: upper-case the value's first 16 bytes (ASCII a-z). */
  static byte[] transform(byte[] v) {
    byte[] r = v.clone();
    for (int i = 0; i < r.length && i < 16; i++)
      if (r[i] >= 'a' && r[i] <= 'z') r[i] = (byte) (r[i] - 32);
    return r;
  }

  static Properties streamsProps(String boot, String app, int threads, boolean eos) {
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
    p.put(StreamsConfig.STATE_DIR_CONFIG, STATE_ROOT.toString());
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, eos ? StreamsConfig.EXACTLY_ONCE_V2 : StreamsConfig.AT_LEAST_ONCE);
    p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100); // weft's default, both guarantees
    p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
    // Only matters after the clock stops: Kafka Streams' consumers normally stay in
    // the group on close, and a close that meets a rebalance in flight then waits
    // out the session timeout (45 s) before the process can go on.
    p.put(StreamsConfig.mainConsumerPrefix("internal.leave.group.on.close"), true);
    if (!"default".equals(System.getenv().getOrDefault("KS_ROCKSDB", "bounded")))
      p.put(StreamsConfig.ROCKSDB_CONFIG_SETTER_CLASS_CONFIG, BoundedRocksDB.class);
    String extra = System.getenv().getOrDefault("KS_PROPS", "").trim();
    if (!extra.isEmpty())
      for (String kv : extra.split("[,\\s]+")) {
        int eq = kv.indexOf('=');
        if (eq <= 0) throw new IllegalArgumentException("KS_PROPS wants key=value, got " + kv);
        p.put(kv.substring(0, eq), kv.substring(eq + 1));
      }
    return p;
  }

  /**
   * weft's RocksDB budget (runtime/weft/state/rocksdb_env.cpp, defaults
   * statestore.cache.max.bytes=64 MiB, rocksdb.write.buffer.max.bytes=32 MiB):
   * one LRU cache for every store of the process, memtables charged to it,
   * index/filter blocks in the cache, 16 KiB blocks, 2 memtables of 4 MiB per store.
   * The bounded-memory recipe of Kafka Streams' memory-management docs.
   */
  public static class BoundedRocksDB implements RocksDBConfigSetter {
    static final org.rocksdb.Cache CACHE = new org.rocksdb.LRUCache(64L << 20, 4, false, 0.5);
    static final org.rocksdb.WriteBufferManager WBM = new org.rocksdb.WriteBufferManager(32L << 20, CACHE);

    @Override
    public void setConfig(String storeName, org.rocksdb.Options options, Map<String, Object> configs) {
      org.rocksdb.BlockBasedTableConfig t = (org.rocksdb.BlockBasedTableConfig) options.tableFormatConfig();
      t.setBlockCache(CACHE);
      t.setCacheIndexAndFilterBlocks(true);
      t.setCacheIndexAndFilterBlocksWithHighPriority(true);
      t.setPinL0FilterAndIndexBlocksInCache(true);
      t.setBlockSize(16 * 1024);
      options.setTableFormatConfig(t);
      options.setWriteBufferManager(WBM);
      options.setWriteBufferSize(4L << 20);
      options.setMaxWriteBufferNumber(2);
    }

    @Override
    public void close(String storeName, org.rocksdb.Options options) {
      // CACHE and WBM are shared by every store: never closed here.
    }
  }

  // ------------------------------------------------------------ kafka helpers

  static Admin admin(String boot) {
    Properties p = new Properties();
    p.put("bootstrap.servers", boot);
    return Admin.create(p);
  }

  static void create(Admin admin, String topic, int parts) throws Exception {
    try {
      admin.createTopics(List.of(new NewTopic(topic, parts, (short) 1))).all().get(30, TimeUnit.SECONDS);
    } catch (ExecutionException e) {
      if (!(e.getCause() instanceof TopicExistsException)) throw e;
    }
    // Wait until every partition has a leader (weft's ensure_topics does too).
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (endOffsets(admin, topic, parts) < 0) {
      if (System.nanoTime() > deadline) throw new IllegalStateException("no leaders for " + topic);
      Thread.sleep(50);
    }
  }

  /** Sum of the partitions' end offsets (high watermarks), -1 while unknown. */
  static long endOffsets(Admin admin, String topic, int parts) {
    Map<TopicPartition, OffsetSpec> q = new HashMap<>();
    for (int p = 0; p < parts; p++) q.put(new TopicPartition(topic, p), OffsetSpec.latest());
    try {
      long sum = 0;
      for (var e : admin.listOffsets(q).all().get(10, TimeUnit.SECONDS).values()) sum += e.offset();
      return sum;
    } catch (Exception e) {
      return -1;
    }
  }

  /** Sum of the group's committed offsets on `inputs` (0 while none). */
  static long committed(Admin admin, String group, List<TopicPartition> inputs) throws Exception {
    Map<TopicPartition, OffsetAndMetadata> m;
    try {
      m = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(10, TimeUnit.SECONDS);
    } catch (ExecutionException e) {
      return 0; // e.g. the coordinator is still loading
    }
    long sum = 0;
    for (TopicPartition tp : inputs) {
      OffsetAndMetadata o = m.get(tp);
      if (o != null) sum += Math.max(0, o.offset());
    }
    return sum;
  }

  static void deleteTopics(Admin admin, Collection<String> topics) {
    try {
      admin.deleteTopics(topics).all().get(30, TimeUnit.SECONDS);
    } catch (Exception e) {
      System.err.println("kstreams-bench: could not delete " + topics + ": " + e);
    }
  }

  /** Kafka Streams' internal topics (changelogs) of `app`. */
  static void deleteInternalTopics(Admin admin, String app) {
    try {
      List<String> mine = new ArrayList<>();
      for (String t : admin.listTopics().names().get(30, TimeUnit.SECONDS))
        if (t.startsWith(app + "-")) mine.add(t);
      if (!mine.isEmpty()) deleteTopics(admin, mine);
    } catch (Exception e) {
      System.err.println("kstreams-bench: could not list topics: " + e);
    }
  }

  /** Prints the broker's group.initial.rebalance.delay.ms: Kafka Streams joins a group, weft does not. */
  static void brokerNote(Admin admin) {
    try {
      Collection<Node> nodes = admin.describeCluster().nodes().get(30, TimeUnit.SECONDS);
      String id = Integer.toString(nodes.iterator().next().id());
      ConfigResource res = new ConfigResource(ConfigResource.Type.BROKER, id);
      Config c = admin.describeConfigs(List.of(res)).all().get(30, TimeUnit.SECONDS).get(res);
      ConfigEntry e = c.get("group.initial.rebalance.delay.ms");
      String v = e == null ? "?" : e.value();
      System.out.println("broker group.initial.rebalance.delay.ms=" + v
          + ("0".equals(v) ? "" : "  (WARNING: every Kafka Streams run waits this long for its first rebalance)"));
    } catch (Exception e) {
      System.out.println("broker group.initial.rebalance.delay.ms=? (" + e + ")");
    }
  }

  // ---------------------------------------------------------------- memory

  /** A line of /proc/self/status in KiB (VmRSS, VmHWM), 0 if unreadable. */
  static long procKb(String field) {
    try {
      for (String l : Files.readAllLines(Paths.get("/proc/self/status")))
        if (l.startsWith(field + ":")) return Long.parseLong(l.replaceAll("[^0-9]", ""));
    } catch (IOException | NumberFormatException e) {
      // not Linux
    }
    return 0;
  }

  /** VmRSS every 100 ms (weft's memory bench samples at the same rate). */
  static final class RssSampler implements Runnable {
    volatile boolean stop;
    volatile long peakKb;
    Thread t;

    void start() {
      t = new Thread(this, "rss-sampler");
      t.setDaemon(true);
      t.start();
    }

    void stop() throws InterruptedException {
      stop = true;
      t.join();
    }

    @Override
    public void run() {
      while (!stop) {
        peakKb = Math.max(peakKb, procKb("VmRSS"));
        try {
          Thread.sleep(100);
        } catch (InterruptedException e) {
          return;
        }
      }
    }
  }

  static String jvmNote() {
    Runtime rt = Runtime.getRuntime();
    return String.format(Locale.ROOT, "max_heap_mb=%d heap_committed_mb=%d rocksdb=%s",
        rt.maxMemory() >> 20, rt.totalMemory() >> 20,
        System.getenv().getOrDefault("KS_ROCKSDB", "bounded"));
  }

  static void deleteDir(Path dir) {
    if (!Files.exists(dir)) return;
    try (var walk = Files.walk(dir)) {
      walk.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
    } catch (IOException e) {
      System.err.println("kstreams-bench: could not delete " + dir + ": " + e);
    }
  }
}
