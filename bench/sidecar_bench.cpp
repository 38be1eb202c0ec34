// weft-bench-sidecar: push delivery of weft-sidecar to a local application.
//
//   weft-bench-sidecar [--bootstrap=127.0.0.1:9092] [--records=50000]
//                      [--rate=1000] [--seconds=5] [--policy=fail]
//
// The application is an HTTP server in this process (C++, so the figures
// are the sidecar's, not a slow receiver's) that answers 200 at once. For
// batch.max 1 and 100:
//   1. backlog: --records records pre-loaded in a 4-partition topic; the
//      sidecar started; records/s from the first record taken to the last;
//   2. live: the sidecar caught up, --rate records/s produced for --seconds;
//      delivery latency = receipt − the record's CreateTime, p50/p99/max.
// Baseline, same run, same receiver: a plain librdkafka consumer in this
// process that POSTs each record (or batch) as the sidecar would, with no
// commits — what push delivery costs at least. Prints sidecar/baseline.
// --policy sets the subscription's bad.record.policy (park: what its
// bookkeeping costs while the application takes every record).
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <weft/kafka/admin.hpp>
#include <weft/kafka/consumer.hpp>
#include <weft/kafka/producer.hpp>

extern char** environ;

namespace {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

std::string bootstrap = "127.0.0.1:9092";
size_t records = 50000;
int rate = 1000;
int seconds = 5;
std::string policy = "fail";

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// The application: counts what it takes and the latency of each record.
struct receiver {
  httplib::Server server;
  std::thread thread;
  int port = 0;
  std::mutex mu;
  size_t taken = 0;
  std::vector<int64_t> latencies;
  clock_type::time_point first, last;

  receiver() {
    server.Post("/in", [this](const httplib::Request& req, httplib::Response& res) {
      const auto now = wall_ms();
      auto body = json::parse(req.body, nullptr, false);
      std::lock_guard<std::mutex> lock{mu};
      auto take = [&](const json& r) {
        if (taken++ == 0) first = clock_type::now();
        latencies.push_back(now - r["timestamp"].get<int64_t>());
      };
      if (body.is_array())
        for (auto& r : body)
          take(r);
      else
        take(body);
      last = clock_type::now();
      res.set_content("{}", "application/json");
    });
    server.set_tcp_nodelay(true);
    port = server.bind_to_any_port("127.0.0.1");
    thread = std::thread{[this] { server.listen_after_bind(); }};
  }
  ~receiver() {
    server.stop();
    thread.join();
  }
  void reset() {
    std::lock_guard<std::mutex> lock{mu};
    taken = 0;
    latencies.clear();
  }
  size_t count() {
    std::lock_guard<std::mutex> lock{mu};
    return taken;
  }
  /// Waits until `n` records were taken (bounded); the time of the last one.
  bool wait_for(size_t n, std::chrono::seconds limit) {
    const auto until = clock_type::now() + limit;
    while (clock_type::now() < until) {
      if (count() >= n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::fprintf(stderr, "weft-bench-sidecar: %zu of %zu records after %lld s\n", count(),
                 n, static_cast<long long>(limit.count()));
    return false;
  }
};

/// Produces n records, at per_second (0: at once). `warmed` runs after a
/// first record (not counted) went out: a new producer's first records wait
/// for its connection and metadata, which is not delivery latency.
void produce(const std::string& topic, size_t n, int per_second,
             const std::function<void()>& warmed = {}) {
  auto p = weft::kafka::producer::create(
      {{"bootstrap.servers", bootstrap}, {"linger.ms", per_second > 0 ? "0" : "5"}});
  if (!p) throw std::runtime_error(p.error().message());
  if (warmed) {
    (void)(*p)->send(topic, -1, std::string{"warm-up"}, std::string{R"({"i":-1})"});
    (void)(*p)->flush(30000);
    warmed();
  }
  const auto start = clock_type::now();
  for (size_t i = 0; i < n; ++i) {
    if (per_second > 0)
      std::this_thread::sleep_until(start +
                                    std::chrono::microseconds(i * 1000000 / per_second));
    const auto value = json{{"i", i}, {"pad", std::string(64, 'x')}}.dump();
    while (!(*p)->send(topic, -1, "k" + std::to_string(i % 1000), value).ok())
      (void)(*p)->flush(100);
  }
  (void)(*p)->flush(30000);
}

/// weft-sidecar as a child process.
struct sidecar_proc {
  pid_t pid = -1;
  sidecar_proc(const std::string& app, const std::string& topic, const std::string& url,
               int batch) {
    std::vector<std::string> args{WEFT_SIDECAR,
                                  "--application.id=" + app,
                                  "--bootstrap.servers=" + bootstrap,
                                  "--state.dir=/tmp/" + app,
                                  "--node.id=bench",
                                  "--sidecar.http.port=0",
                                  "--log.level=warn",
                                  "--subscription.s.topic=" + topic,
                                  "--subscription.s.url=" + url,
                                  "--subscription.s.batch.max=" + std::to_string(batch),
                                  "--subscription.s.bad.record.policy=" + policy};
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid, WEFT_SIDECAR, nullptr, nullptr, argv.data(), environ) != 0)
      throw std::runtime_error("cannot start weft-sidecar");
  }
  ~sidecar_proc() {
    ::kill(pid, SIGTERM);
    int st = 0;
    ::waitpid(pid, &st, 0);
  }
};

/// The baseline: consume every partition, POST as the sidecar does, no commits.
void baseline(const std::string& topic, int partitions, const std::string& base,
              int batch, std::atomic<bool>& stop) {
  auto c = weft::kafka::consumer::create({{"bootstrap.servers", bootstrap},
                                          {"group.id", topic + "-baseline"},
                                          {"enable.partition.eof", "false"}});
  if (!c) throw std::runtime_error(c.error().message());
  std::vector<std::pair<weft::topic_partition, weft::offset>> start;
  for (int p = 0; p < partitions; ++p)
    start.emplace_back(weft::topic_partition{topic, weft::partition_id{p}},
                       weft::offset{RD_KAFKA_OFFSET_BEGINNING});
  (void)(*c)->assign_at(start);
  httplib::Client client{base};
  client.set_keep_alive(true);
  client.set_tcp_nodelay(true);
  while (!stop) {
    weft::kafka::message_batch mb;
    for (int wait = 100; mb.size() < static_cast<size_t>(batch); wait = 0) {
      auto* m = rd_kafka_consumer_poll((*c)->handle(), wait);
      if (!m) break;
      if (m->err) {
        rd_kafka_message_destroy(m);
        break;
      }
      mb.messages().push_back(m);
    }
    if (mb.empty()) continue;
    json items = json::array();
    for (size_t i = 0; i < mb.size(); ++i) {
      auto v = mb.view(i);
      items.push_back({{"topic", topic},
                       {"partition", v.partition.value()},
                       {"offset", v.offset.value()},
                       {"timestamp", v.timestamp},
                       {"key", std::string{*v.key}},
                       {"value", json::parse(*v.value)}});
    }
    const auto body = batch == 1 ? items[0].dump() : items.dump();
    while (!stop && !client.Post("/in", body, "application/json"))
      ;
  }
}

struct figures {
  double per_second = 0;
  int64_t p50 = 0, p99 = 0, max = 0;
};

int64_t percentile(std::vector<int64_t> v, double q) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1,
                    static_cast<size_t>(q * static_cast<double>(v.size())))];
}

/// One run: backlog then live, through the sidecar or the baseline.
figures run(bool through_sidecar, int batch, receiver& rcv) {
  static int round = 0;
  const auto app =
      "bench-sidecar-" + std::to_string(::getpid()) + "-" + std::to_string(++round);
  const auto topic = app + "-events";
  auto admin = weft::kafka::admin::create({{"bootstrap.servers", bootstrap}});
  if (!admin || !(*admin)->ensure_topics({{topic, 4, 1, {}}}, 30000))
    throw std::runtime_error("cannot create " + topic);
  produce(topic, records, 0);
  rcv.reset();
  figures f;
  std::atomic<bool> stop{false};
  std::unique_ptr<sidecar_proc> sc;
  std::thread base;
  const auto url = "http://127.0.0.1:" + std::to_string(rcv.port);
  if (through_sidecar)
    sc = std::make_unique<sidecar_proc>(app, topic, url + "/in", batch);
  else
    base = std::thread{[&] { baseline(topic, 4, url, batch, stop); }};
  const bool backlog_done = rcv.wait_for(records, std::chrono::seconds(600));
  {
    std::lock_guard<std::mutex> lock{rcv.mu};
    // From the first record taken to the last: start-up (a group join, a
    // node's start) is not delivery.
    f.per_second = static_cast<double>(records - 1) /
                   std::chrono::duration<double>(rcv.last - rcv.first).count();
  }
  if (backlog_done) {
    const size_t live = static_cast<size_t>(rate) * static_cast<size_t>(seconds);
    produce(topic, live, rate, [&] {
      rcv.wait_for(records + 1, std::chrono::seconds(30));
      rcv.reset();
    });
    rcv.wait_for(live, std::chrono::seconds(60));
    std::lock_guard<std::mutex> lock{rcv.mu};
    f.p50 = percentile(rcv.latencies, 0.50);
    f.p99 = percentile(rcv.latencies, 0.99);
    f.max = percentile(rcv.latencies, 1.0);
  }
  stop = true;
  if (base.joinable()) base.join();
  sc.reset();
  (void)(*admin)->delete_topics({topic}, 30000);
  return f;
}

} // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* prefix) { return a.substr(std::string{prefix}.size()); };
    if (a.rfind("--bootstrap=", 0) == 0)
      bootstrap = value("--bootstrap=");
    else if (a.rfind("--records=", 0) == 0)
      records = std::stoul(value("--records="));
    else if (a.rfind("--rate=", 0) == 0)
      rate = std::stoi(value("--rate="));
    else if (a.rfind("--seconds=", 0) == 0)
      seconds = std::stoi(value("--seconds="));
    else if (a.rfind("--policy=", 0) == 0)
      policy = value("--policy=");
    else {
      std::fprintf(stderr,
                   "usage: %s [--bootstrap=H:P] [--records=N] [--rate=R] [--seconds=S] "
                   "[--policy=fail|skip|dead_letter|park]\n",
                   argv[0]);
      return 2;
    }
  }
  receiver rcv;
  std::printf(
      "push delivery to a local application: %zu records backlog, then %d records/s "
      "live for %d s (latency = receipt - CreateTime), bad.record.policy=%s\n",
      records, rate, seconds, policy.c_str());
  for (int batch : {1, 100}) {
    auto b = run(false, batch, rcv);
    auto s = run(true, batch, rcv);
    std::printf(
        "batch.max=%-3d baseline (consume+POST loop): %9.0f rec/s  live p50 %3lld ms "
        "p99 %3lld ms max %4lld ms\n",
        batch, b.per_second, static_cast<long long>(b.p50), static_cast<long long>(b.p99),
        static_cast<long long>(b.max));
    std::printf(
        "batch.max=%-3d weft-sidecar push:             %9.0f rec/s  live p50 %3lld ms "
        "p99 %3lld ms max %4lld ms  (throughput %.2fx baseline)\n",
        batch, s.per_second, static_cast<long long>(s.p50), static_cast<long long>(s.p99),
        static_cast<long long>(s.max), s.per_second / b.per_second);
    std::fflush(stdout);
  }
  return 0;
}
