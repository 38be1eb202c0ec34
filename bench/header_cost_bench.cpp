// Benchmark (not a test): what one record header costs a bare librdkafka
// producer — the same producer weft uses (idempotent, linger.ms=5,
// RD_KAFKA_MSG_F_COPY) — without weft around it, to tell librdkafka's share
// of the weft.cause header's cost (README, "Follow a key") from weft's.
//
// Produces --records 100-byte records (a 10-byte key, an 88-byte value) to a
// new topic in three ways, alternating for --rounds rounds, and prints the
// process CPU seconds of each (the broker is another process):
//   none     no headers
//   built    the header built and destroyed on this thread, not handed over
//   header   one header, `weft.cause` with a 34-byte value, handed to
//            librdkafka (which frees it on its own thread after delivery)
//
//   weft-bench-header-cost [--bootstrap=127.0.0.1:9092] [--records=500000]
//                          [--rounds=3]

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include "cpu_time.hpp"

namespace {

std::string bootstrap = "127.0.0.1:9092";
int records = 500000;
int rounds = 3;

enum class mode { none, built, header };

/// CPU seconds to produce every record and see it delivered.
double produce(const std::string& topic, mode m) {
  char err[512];
  auto* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err);
  rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err);
  auto* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) {
    std::fprintf(stderr, "bench: %s\n", err);
    std::exit(1);
  }
  std::string value(88, 'v');
  const std::string cause = "upper@bench-in-1796582442/5/123456";
  const double start = weft::bench::cpu_seconds();
  for (int i = 0; i < records; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "key%07d", i % 100000);
    rd_kafka_headers_t* h = nullptr;
    if (m != mode::none) {
      h = rd_kafka_headers_new(1);
      rd_kafka_header_add(h, "weft.cause", 10, cause.data(),
                          static_cast<ssize_t>(cause.size()));
      if (m == mode::built) {
        rd_kafka_headers_destroy(h);
        h = nullptr;
      }
    }
    while (rd_kafka_producev(
               rk, RD_KAFKA_V_TOPIC(topic.c_str()),
               RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, 10),
               RD_KAFKA_V_VALUE(value.data(), value.size()), RD_KAFKA_V_HEADERS(h),
               RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(rk, 1);
    if (i % 1000 == 0) rd_kafka_poll(rk, 0);
  }
  if (rd_kafka_flush(rk, 120000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::fprintf(stderr, "bench: records not delivered within 120 s\n");
    std::exit(1);
  }
  const double cpu = weft::bench::cpu_seconds() - start;
  rd_kafka_destroy(rk);
  return cpu;
}

} // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--bootstrap=", 0) == 0)
      bootstrap = a.substr(12);
    else if (a.rfind("--records=", 0) == 0)
      records = std::max(1, std::atoi(a.c_str() + 10));
    else if (a.rfind("--rounds=", 0) == 0)
      rounds = std::max(1, std::atoi(a.c_str() + 9));
    else {
      std::fprintf(stderr, "bench: unknown argument %s\n", a.c_str());
      return 1;
    }
  }
  const std::string topic = "bench-header-cost-" + std::to_string(::time(nullptr));
  const std::pair<const char*, mode> modes[] = {
      {"none", mode::none}, {"built", mode::built}, {"header", mode::header}};
  std::map<std::string, std::vector<double>> cpu;
  for (int r = 0; r < rounds; ++r) {
    for (int k = 0; k < 3; ++k) {
      auto& [name, m] = modes[(k + r) % 3]; // a different variant first each round
      cpu[name].push_back(produce(topic, m));
    }
    std::printf("round %d: none %.3f s, built %.3f s, header %.3f s (cpu)\n", r + 1,
                cpu["none"].back(), cpu["built"].back(), cpu["header"].back());
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double none = median(cpu["none"]);
  std::printf("%d records, median cpu: none %.3f s, built %.3f s (%+.0f %%), header "
              "%.3f s (%+.0f %%)\n",
              records, none, median(cpu["built"]),
              100 * (median(cpu["built"]) / none - 1), median(cpu["header"]),
              100 * (median(cpu["header"]) / none - 1));
  std::printf("(the topic %s is left on the broker)\n", topic.c_str());
  return 0;
}
