// Benchmark (not a test): the price of weft's actors over a hand-written
// librdkafka program, in one process against one broker.
//
//   (a) raw:  what a careful librdkafka programmer writes for the same job:
//             --threads threads, each with its own consumer (assigned every
//             --threads-th partition) and its own producer, consuming in
//             batches of up to 1,000 (rd_kafka_consume_batch_queue),
//             transforming into a reused buffer, producing with weft's
//             producer settings (idempotence, linger.ms=5, murmur2_random),
//             offsets auto-committed (at least once, as weft here)
//   (b) weft: the same transform as a stateless service on a node with
//             --threads stream threads, default configuration
//   (c) weft with trace.headers=true: (b) stamping every output with the
//             weft.cause header
//
// All read the same 1,000,000 100-byte records over 6 partitions and write
// them to a topic of their own; each run is timed from start until its output
// topic holds every record. Prints records/s for each, the ratio b/a, and
// what the causal header costs (c against b), each variant's best of
// --rounds rounds (b and c alternate which goes first).
//
//   weft-bench-stateless [--bootstrap=127.0.0.1:9092] [--records=1000000]
//                        [--partitions=6] [--threads=2] [--rounds=2]
// bench/run.sh starts the local broker and runs it.

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "args.hpp"
#include "weft/kafka/admin.hpp"
#include "weft/kafka/consumer.hpp"
#include "weft/kafka/producer.hpp"
#include "weft/node.hpp"
#include "weft/services/stateless.hpp"

#include "cpu_time.hpp"

using namespace std::chrono;
using clock_type = steady_clock;

namespace {

std::string bootstrap = "127.0.0.1:9092";
size_t records = 1000000;
int partitions = 6;
int threads = 2;
int rounds = 2;

void die(const std::string& what) {
  std::fprintf(stderr, "bench: %s\n", what.c_str());
  std::exit(1);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// The transform every variant runs: upper-case the value's first 16 bytes,
/// in place.
void upper16(std::string& v) {
  for (size_t i = 0; i < v.size() && i < 16; ++i)
    if (v[i] >= 'a' && v[i] <= 'z') v[i] = static_cast<char>(v[i] - 32);
}

/// The transform as a weft service writes it: a new value.
std::string transform(const char* data, size_t len) {
  std::string out{data, len};
  upper16(out);
  return out;
}

int64_t end_offsets(weft::kafka::consumer& c, const std::string& topic) {
  int64_t sum = 0;
  for (int p = 0; p < partitions; ++p) {
    auto w = c.watermarks({topic, weft::partition_id{p}}, 10000);
    if (!w) return -1; // e.g. leadership not settled yet on a new topic: ask again
    sum += w->second;
  }
  return sum;
}

/// Seconds until `topic` holds `records` records, polling every 20 ms.
double wait_for_output(weft::kafka::consumer& probe, const std::string& topic,
                       clock_type::time_point start) {
  while (end_offsets(probe, topic) < static_cast<int64_t>(records)) {
    if (clock_type::now() - start > minutes(10)) die("timed out waiting for " + topic);
    std::this_thread::sleep_for(milliseconds(20));
  }
  return duration<double>(clock_type::now() - start).count();
}

/// One thread of the raw program: its own consumer on every `threads`-th
/// partition of `in` from `first`, its own producer, batch consume.
void raw_worker(const std::string& in, const std::string& out, const std::string& group,
                int first, std::atomic<bool>& stop) {
  char err[512];
  auto set = [&](rd_kafka_conf_t* conf, const char* k, const std::string& v) {
    if (rd_kafka_conf_set(conf, k, v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
      die(std::string{"raw: "} + k + ": " + err);
  };
  auto* cconf = rd_kafka_conf_new();
  set(cconf, "bootstrap.servers", bootstrap);
  set(cconf, "group.id", group);
  set(cconf, "enable.auto.commit", "true");
  auto* rc = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, err, sizeof err);
  if (!rc) die(std::string{"raw consumer: "} + err);
  rd_kafka_poll_set_consumer(rc);
  auto* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = first; p < partitions; p += threads)
    rd_kafka_topic_partition_list_add(list, in.c_str(), p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(rc, list);
  rd_kafka_topic_partition_list_destroy(list);
  auto* pconf = rd_kafka_conf_new();
  set(pconf, "bootstrap.servers", bootstrap);
  set(pconf, "enable.idempotence", "true");
  set(pconf, "linger.ms", "5");
  set(pconf, "partitioner", "murmur2_random");
  auto* rp = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, err, sizeof err);
  if (!rp) die(std::string{"raw producer: "} + err);
  auto* queue = rd_kafka_queue_get_consumer(rc);
  std::vector<rd_kafka_message_t*> batch(1000);
  std::string value;
  while (!stop) {
    auto n = rd_kafka_consume_batch_queue(queue, 100, batch.data(), batch.size());
    for (ssize_t i = 0; i < n; ++i) {
      auto* m = batch[static_cast<size_t>(i)];
      if (!m->err) {
        value.assign(static_cast<const char*>(m->payload), m->len);
        upper16(value);
        while (rd_kafka_producev(rp, RD_KAFKA_V_TOPIC(out.c_str()),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_KEY(m->key, m->key_len),
                                 RD_KAFKA_V_VALUE(value.data(), value.size()),
                                 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
          rd_kafka_poll(rp, 1);
      }
      rd_kafka_message_destroy(m);
    }
    rd_kafka_poll(rp, 0); // delivery reports, once per batch
  }
  rd_kafka_queue_destroy(queue);
  rd_kafka_flush(rp, 10000);
  rd_kafka_consumer_close(rc);
  rd_kafka_destroy(rc);
  rd_kafka_destroy(rp);
}

struct upper : weft::stateless<weft::bytes_serde, weft::bytes_serde> {
  weft::output<weft::bytes_serde, weft::bytes_serde> out;
  upper(std::string in, std::string out_topic) : stateless("upper", in) {
    out = to<weft::bytes_serde, weft::bytes_serde>(out_topic);
  }
  void process(const std::string& k, const std::string& v, weft::context& ctx) override {
    out.emit(ctx, k, transform(v.data(), v.size()));
  }
};

} // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* name) { return weft::bench::flag_value(argv[i], name); };
    if (auto v = val("--bootstrap="))
      bootstrap = v;
    else if (auto v = val("--records="))
      records = std::stoul(v);
    else if (auto v = val("--partitions="))
      partitions = std::stoi(v);
    else if (auto v = val("--threads="))
      threads = std::stoi(v);
    else if (auto v = val("--rounds="))
      rounds = std::max(1, std::stoi(v));
    else
      die("unknown argument " + a);
  }
  auto tag = std::to_string(::time(nullptr));
  auto in = "bench-in-" + tag;
  std::vector<std::string> outputs;
  auto admin = weft::kafka::admin::create({{"bootstrap.servers", bootstrap}});
  if (!admin) die(admin.error().message());
  if (auto s = (*admin)->ensure_topics({{in, partitions, 1, {}}}, 30000); !s)
    die(s.message());

  std::printf("producing %zu 100-byte records to %s (%d partitions)...\n", records,
              in.c_str(), partitions);
  {
    auto p = weft::kafka::producer::create({{"bootstrap.servers", bootstrap},
                                            {"linger.ms", "20"},
                                            {"partitioner", "murmur2_random"}});
    if (!p) die(p.error().message());
    std::string value(88, 'v');
    for (size_t i = 0; i < records; ++i) {
      char key[16];
      std::snprintf(key, sizeof key, "key%07zu", i % 100000);
      while ((*p)->send(in, -1, std::string_view{key, 10}, value).code() ==
             weft::errc::queue_full)
        std::this_thread::sleep_for(milliseconds(1));
    }
    if (auto s = (*p)->flush(120000); !s) die(s.message());
  }
  auto probe = weft::kafka::consumer::create(
      {{"bootstrap.servers", bootstrap}, {"group.id", "bench-probe-" + tag}});
  if (!probe) die(probe.error().message());

  // Two rounds, alternating, each variant with fresh output topics and
  // consumer groups; the better round of each counts (the first round also
  // warms up the broker's JIT and page cache).
  double secs_a = 1e9, secs_b = 1e9, secs_c = 1e9;
  std::vector<double> wall_ratio, cpu_ratio; // per round: with / without weft.cause
  for (int round = 0; round < rounds; ++round) {
    auto r = std::to_string(round);
    auto out_raw = "bench-raw-" + tag + "-" + r, out_weft = "bench-weft-" + tag + "-" + r,
         out_traced = "bench-traced-" + tag + "-" + r;
    if (auto s = (*admin)->ensure_topics({{out_raw, partitions, 1, {}},
                                          {out_weft, partitions, 1, {}},
                                          {out_traced, partitions, 1, {}}},
                                         30000);
        !s)
      die(s.message());
    outputs.push_back(out_raw);
    outputs.push_back(out_weft);
    outputs.push_back(out_traced);

    // (a) the raw librdkafka program, one consumer/producer pair per thread
    std::atomic<bool> stop{false};
    auto cpu_a0 = weft::bench::cpu_seconds();
    auto start_a = clock_type::now();
    std::vector<std::thread> raw;
    for (int t = 0; t < std::min(threads, partitions); ++t)
      raw.emplace_back(
          [&, t] { raw_worker(in, out_raw, "raw-" + tag + "-" + r, t, stop); });
    auto a = wait_for_output(**probe, out_raw, start_a);
    auto cpu_a = weft::bench::cpu_seconds() - cpu_a0;
    stop = true;
    for (auto& t : raw)
      t.join();

    // (b) the same transform as a weft service; (c) without weft.cause
    // Each weft run: wall seconds, and the CPU seconds this process spent
    // (the node's actors and librdkafka threads; the broker is another
    // process), which a loaded machine disturbs far less than wall time.
    auto run_weft = [&](const std::string& out, bool headers) {
      auto cfg = weft::config::from_map(
          {{"application.id",
            "bench-" + std::string{headers ? "traced" : "weft"} + "-" + tag + "-" + r},
           {"bootstrap.servers", bootstrap},
           {"num.stream.threads", std::to_string(threads)},
           {"trace.headers", headers ? "true" : "false"},
           {"log.level", "warn"}});
      if (!cfg) die(cfg.error().message());
      weft::node n{std::move(*cfg)};
      n.add<upper>(in, out);
      auto cpu0 = weft::bench::cpu_seconds();
      auto start = clock_type::now();
      if (auto s = n.start(); !s) die(s.message());
      auto secs = wait_for_output(**probe, out, start);
      auto cpu = weft::bench::cpu_seconds() - cpu0;
      n.request_stop();
      (void)n.wait();
      return std::pair{secs, cpu};
    };
    std::pair<double, double> b, c; // (b) default, (c) trace.headers=true
    if (round % 2 == 0) {
      b = run_weft(out_weft, false);
      c = run_weft(out_traced, true);
    } else {
      c = run_weft(out_traced, true);
      b = run_weft(out_weft, false);
    }
    std::printf("round %d: raw %.2f s (cpu %.2f s), weft %.2f s (cpu %.2f s), weft with "
                "trace.headers=true %.2f s (cpu %.2f s)\n",
                round + 1, a, cpu_a, b.first, b.second, c.first, c.second);
    secs_a = std::min(secs_a, a);
    secs_b = std::min(secs_b, b.first);
    secs_c = std::min(secs_c, c.first);
    wall_ratio.push_back(c.first / b.first);
    cpu_ratio.push_back(c.second / b.second);
  }

  double a = records / secs_a, b = records / secs_b, c = records / secs_c;
  std::printf("(a) raw librdkafka, %d threads : %10.0f records/s (%.2f s)\n", threads, a,
              secs_a);
  std::printf("(b) weft stateless node      : %10.0f records/s (%.2f s)\n", b, secs_b);
  std::printf("(c) ... trace.headers=true   : %10.0f records/s (%.2f s)\n", c, secs_c);
  std::printf("ratio b/a                    : %10.2f (target >= 0.8)\n", b / a);
  std::printf("weft.cause cost 1 - c/b      : %9.1f %% (best rounds)\n",
              100.0 * (1 - c / b));
  std::printf("weft.cause cost, median of the rounds' with/without: wall %+.1f %%, "
              "cpu %+.1f %%\n",
              100.0 * (median(wall_ratio) - 1), 100.0 * (median(cpu_ratio) - 1));
  outputs.push_back(in);
  (void)(*admin)->delete_topics(outputs, 30000);
  return 0;
}
