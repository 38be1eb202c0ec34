// Benchmark (not a test) of clustering: three weft-test-node processes
// (--test.service=pipeline: splitter -> pair-counter with the kv store
// "counts" -> gate, exactly_once, cluster.enabled=true) against one broker.
//
//   (1) failover pause, with num.standby.replicas=1 and with =0: 12 input
//       partitions (12 stateful counter units), 1,000,000 keys of state
//       pre-loaded (one event per key, counted before the timed part), input
//       flowing at --rate over existing keys; once the cluster is settled and
//       every standby is at lag 0, kill -9 one non-leader node. The pause of a
//       moved counter unit p is the gap in <out>-counts partition p (which
//       only unit p writes): from its last committed record appended before
//       the kill to its first one appended after. --kills=N rounds (default
//       3): the victim comes back with its state folder, and once all is
//       settled again the next non-leader is killed. The counts topic is
//       created with message.timestamp.type=LogAppendTime: weft's outputs
//       keep their input's timestamp, so CreateTime would be the time the
//       input event was produced, not when the result was written. Also from the node
//       logs: detection (the leader's "node X is gone" minus the kill), fencing,
//       publication of the new generation and its application on the new
//       owners; and the largest gap of the units that did not move (every
//       node restarts its tasks at a new generation).
//   (2) throughput: the same --events input counted by 1 node and by 3 nodes
//       (both cluster.enabled=true), from starting the processes until every
//       count is committed (read_committed), and the ratio 3 nodes / 1 node.
//   --tls=off,on runs everything once with plain node-to-node connections and
//   once over TLS (cluster.tls.*, certificates made by tools/weft-certs in a
//   temporary folder), in this order and in the same run, and prints what TLS
//   costs: the failover pause and the throughput, on / off.
//
// After each run the committed outputs are checked to be exactly once: every
// event split once, every key's counts exactly 1..n in order, every gated
// key once.
//
//   weft-bench-cluster [--bootstrap=127.0.0.1:9092] [--keys=1000000]
//                      [--events=300000] [--rate=5000] [--kills=3]
//                      [--standbys=1,0] [--partitions=12]
//                      [--only=failover|throughput] [--node.<key>=<value>...]
//                      [--tls=off|on|off,on] [--test-node=PATH] [--keep]
// --node.log.level=debug passes --log.level=debug to every node (any weft
// key); --test-node runs another build's weft-test-node (e.g. to compare
// two versions of the runtime). --keep leaves the topics; state folders are
// always removed; node logs stay in /tmp/<app>-<node>.log. bench/run.sh
// starts the local broker and runs the benchmarks.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <librdkafka/rdkafka.h>
#include <nlohmann/json.hpp>

#include "weft/kafka/admin.hpp"
#include "weft/kafka/consumer.hpp"
#include "weft/kafka/producer.hpp"
#include "weft/serde.hpp"

using namespace std::chrono;
using clock_type = steady_clock;
using nlohmann::json;

namespace {

std::string bootstrap = "127.0.0.1:9092";
size_t state_keys = 1000000;
size_t tp_events = 300000;
size_t rate = 5000;
int kills = 3;
std::vector<int> standby_configs{1, 0}; ///< num.standby.replicas to fail over with
int parts = 12;
bool keep_topics = false;
std::vector<std::string> node_extra; ///< --node.<key>=<value> as --<key>=<value>
std::string test_node = WEFT_TEST_NODE;
std::vector<bool> tls_modes{false}; ///< --tls: runs without and/or with TLS
bool tls_now = false;               ///< the mode being run
std::string tls_dir;                ///< certificates of n1..n3 (ca.pem, nX.pem/.key)

/// Node processes still running: die() ends them (exit runs no destructors).
std::mutex children_mu;
std::set<pid_t> children;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "bench: %s\n", what.c_str());
  {
    std::lock_guard<std::mutex> guard{children_mu};
    for (auto pid : children)
      ::kill(pid, SIGKILL);
  }
  std::exit(1);
}

int64_t wall_ms() {
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

double secs_since(clock_type::time_point t) {
  return duration<double>(clock_type::now() - t).count();
}

bool wait_until(const std::function<bool()>& pred, milliseconds limit,
                milliseconds every = milliseconds(100)) {
  auto deadline = clock_type::now() + limit;
  while (clock_type::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(every);
  }
  return pred();
}

// ---------------------------------------------------------------------------
// Node processes.

/// A child process with stdout and stderr appended to a log file; SIGKILLed
/// when the handle dies while it still runs.
class child {
 public:
  child(const std::string& program, const std::vector<std::string>& args,
        const std::string& log) {
    pid_ = ::fork();
    if (pid_ < 0) die("fork failed");
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      std::vector<char*> argv{const_cast<char*>(program.c_str())};
      for (auto& a : args)
        argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(program.c_str(), argv.data());
      ::_exit(127);
    }
    std::lock_guard<std::mutex> guard{children_mu};
    children.insert(pid_);
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;
  ~child() { kill_hard(); }

  bool running() {
    if (reaped_) return false;
    if (::waitpid(pid_, &status_, WNOHANG) == pid_) reaped();
    return !reaped_;
  }
  void kill_hard() {
    if (reaped_) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status_, 0);
    reaped();
  }
  /// Sends `sig` and waits up to `limit`: the exit code, or -1 if still running.
  int stop(int sig, milliseconds limit) {
    if (!reaped_) ::kill(pid_, sig);
    wait_until([&] { return !running(); }, limit, milliseconds(20));
    if (!reaped_) return -1;
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  }

 private:
  void reaped() {
    reaped_ = true;
    std::lock_guard<std::mutex> guard{children_mu};
    children.erase(pid_);
  }
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

std::optional<json> get_json(int port, const std::string& path) {
  httplib::Client c{"127.0.0.1", port};
  c.set_connection_timeout(1);
  c.set_read_timeout(5);
  auto res = c.Get(path.c_str());
  if (!res || res->status != 200) return std::nullopt;
  auto j = json::parse(res->body, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

/// HTTP ports of this run: away from the tests' 20000-24999 and below the
/// ephemeral range.
int port_base() {
  return 25000 + (::getpid() % 700) * 10;
}

// ---------------------------------------------------------------------------
// Topics, input and outputs.

std::unique_ptr<weft::kafka::admin> admin;

/// The pipeline's topics (as tests/integration/pipeline.hpp names them).
struct pipeline_topics {
  std::string in, out;
  std::string a() const { return out + "-a"; }
  std::string b() const { return out + "-b"; }
  std::string counts() const { return out + "-counts"; }
  std::string gated() const { return out + "-gated"; }
};

void create_outputs(const pipeline_topics& t) {
  std::vector<weft::kafka::new_topic> ts{
      {t.a(), parts, 1, {}},
      {t.b(), parts, 1, {}},
      {t.counts(), parts, 1, {{"message.timestamp.type", "LogAppendTime"}}},
      {t.gated(), parts, 1, {}}};
  if (auto s = admin->ensure_topics(ts, 30000); !s) die(s.message());
}

void create_input(const std::string& topic) {
  if (auto s = admin->ensure_topics({{topic, parts, 1, {}}}, 30000); !s) die(s.message());
}

/// Every topic whose name starts with `prefix` (the apps' internal topics).
std::vector<std::string> topics_with_prefix(const std::string& prefix) {
  auto c = weft::kafka::consumer::create(
      {{"bootstrap.servers", bootstrap}, {"group.id", prefix + "-lister"}});
  if (!c) die(c.error().message());
  const rd_kafka_metadata_t* md = nullptr;
  std::vector<std::string> out;
  if (rd_kafka_metadata((*c)->handle(), 1, nullptr, &md, 10000) !=
      RD_KAFKA_RESP_ERR_NO_ERROR)
    return out;
  for (int i = 0; i < md->topic_cnt; ++i) {
    std::string name = md->topics[i].topic;
    if (name.rfind(prefix, 0) == 0) out.push_back(name);
  }
  rd_kafka_metadata_destroy(md);
  return out;
}

void delete_topics(const std::string& prefix) {
  if (keep_topics) return;
  auto names = topics_with_prefix(prefix);
  if (!names.empty()) (void)admin->delete_topics(names, 30000);
}

/// Event i of the pipeline's input (pipeline.hpp): id "e<i>", key
/// "k<i % keys>"; keys divisible by 5 only ever get A events, the others
/// alternate A and B per round over the keys.
char event_type(size_t i, size_t keys) {
  auto k = i % keys;
  return (k % 5 == 0 || (i / keys) % 2 == 0) ? 'A' : 'B';
}

std::unique_ptr<weft::kafka::producer> make_producer(std::atomic<size_t>* failed) {
  auto p =
      weft::kafka::producer::create({{"bootstrap.servers", bootstrap},
                                     {"partitioner", "murmur2_random"},
                                     {"linger.ms", "5"},
                                     {"batch.num.messages", "10000"},
                                     {"queue.buffering.max.messages", "500000"}},
                                    [failed](void*, const weft::status& st, int64_t) {
                                      if (!st.ok()) ++*failed;
                                    });
  if (!p) die(p.error().message());
  return std::move(*p);
}

void send_event(weft::kafka::producer& p, const std::string& topic, size_t i,
                size_t keys) {
  char id[24], value[32];
  int il = std::snprintf(id, sizeof id, "e%zu", i);
  int vl = std::snprintf(value, sizeof value, "k%zu:%c", i % keys, event_type(i, keys));
  while (true) {
    auto st = p.send(topic, -1, std::string_view{id, size_t(il)},
                     std::string_view{value, size_t(vl)});
    if (st.ok()) return;
    if (st.code() != weft::errc::queue_full) die(st.message());
    std::this_thread::sleep_for(milliseconds(1));
  }
}

/// Produces events [from, to) and waits for every delivery.
void produce(const std::string& topic, size_t from, size_t to, size_t keys) {
  std::atomic<size_t> failed{0};
  auto p = make_producer(&failed);
  for (size_t i = from; i < to; ++i)
    send_event(*p, topic, i, keys);
  if (auto s = p->flush(120000); !s) die(s.message());
  if (failed) die(std::to_string(failed) + " input records not delivered");
}

/// Feeds events from `from` on at about `per_second`, on a thread of its own,
/// until stopped; sent() is exact after stop().
class feeder {
 public:
  feeder(std::string topic, size_t from, size_t keys, size_t per_second)
    : producer_(make_producer(&failed_)), next_(from) {
    thread_ = std::thread{[this, topic, keys, per_second] {
      auto start = clock_type::now();
      size_t n = 0;
      while (!stop_) {
        // Paced in 10 ms slices: event n leaves at start + n / rate.
        auto due = size_t(secs_since(start) * double(per_second));
        for (; n < due && !stop_; ++n)
          send_event(*producer_, topic, next_ + n, keys);
        std::this_thread::sleep_for(milliseconds(10));
      }
      sent_ = n;
    }};
  }
  feeder(const feeder&) = delete;
  feeder& operator=(const feeder&) = delete;
  ~feeder() { stop(); }

  void stop() {
    if (!thread_.joinable()) return;
    stop_ = true;
    thread_.join();
    if (auto s = producer_->flush(120000); !s) die(s.message());
    if (failed_) die(std::to_string(failed_) + " input records not delivered");
  }
  /// Events sent (all delivered once stop() returned).
  size_t sent() const { return sent_; }

 private:
  std::atomic<size_t> failed_{0};
  std::unique_ptr<weft::kafka::producer> producer_;
  size_t next_;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> sent_{0};
  std::thread thread_;
};

/// One committed record of <out>-counts.
struct count_record {
  int32_t partition;
  uint32_t key;      ///< k<key>
  int64_t count;     ///< the key's new count
  int64_t append_ms; ///< the broker's LogAppendTime
};

/// Reads every partition of `topics` from the start (read_committed) and
/// calls `on` per message until `done()` (polled between drains).
void read_topics(const std::vector<std::string>& topics,
                 const std::function<void(const rd_kafka_message_t*)>& on,
                 const std::function<bool(bool got)>& done) {
  auto c = weft::kafka::consumer::create(
      {{"bootstrap.servers", bootstrap},
       {"group.id", topics.front() + "-bench-reader-" + std::to_string(wall_ms())},
       {"isolation.level", "read_committed"},
       {"fetch.wait.max.ms", "10"}});
  if (!c) die(c.error().message());
  std::vector<weft::topic_partition> tps;
  std::vector<std::unique_ptr<weft::kafka::partition_queue>> qs;
  for (auto& topic : topics) {
    auto n = (*c)->partition_count(topic, 10000);
    if (!n) die(topic + ": " + n.error().message());
    for (int p = 0; p < *n; ++p) {
      tps.push_back({topic, weft::partition_id{p}});
      qs.push_back((*c)->take_queue(tps.back()));
    }
  }
  if (auto s = (*c)->assign(tps); !s) die(s.message());
  while (true) {
    bool got = false;
    for (auto& q : qs) {
      weft::kafka::message_batch b;
      q->drain(b, 10000);
      for (auto* m : b.messages())
        on(m);
      got |= !b.empty();
    }
    if (done(got)) return;
    if (!got) std::this_thread::sleep_for(milliseconds(5));
  }
}

/// Reads finished topics: until `expected` records arrived and nothing new
/// came for a second, or nothing new for 20 s.
void read_all(const std::vector<std::string>& topics, size_t expected,
              const std::function<void(const rd_kafka_message_t*)>& on) {
  size_t n = 0;
  auto last_new = clock_type::now();
  read_topics(
      topics,
      [&](const rd_kafka_message_t* m) {
        ++n;
        on(m);
      },
      [&](bool got) {
        if (got) last_new = clock_type::now();
        auto quiet = clock_type::now() - last_new;
        return (n >= expected && quiet > seconds(1)) || quiet > seconds(20);
      });
}

uint32_t parse_key(const void* key, size_t len) {
  // "k<n>"
  uint32_t n = 0;
  auto* s = static_cast<const char*>(key);
  for (size_t i = 1; i < len; ++i)
    n = n * 10 + uint32_t(s[i] - '0');
  return n;
}

/// Tails <out>-counts on a thread of its own, keeping every committed record.
class counts_reader {
 public:
  explicit counts_reader(std::string topic) {
    thread_ = std::thread{[this, topic] {
      read_topics(
          {topic},
          [this](const rd_kafka_message_t* m) {
            rd_kafka_timestamp_type_t type;
            auto ts = rd_kafka_message_timestamp(m, &type);
            if (type != RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME) wrong_ts_type_ = true;
            auto v = weft::int64_serde::deserialize(
                std::string_view{static_cast<const char*>(m->payload), m->len});
            std::lock_guard<std::mutex> guard{mu_};
            records_.push_back(
                {m->partition, parse_key(m->key, m->key_len), v ? *v : -1, ts});
            if (records_.size() == 1) first_at_ = clock_type::now();
            last_at_ = clock_type::now();
            n_ = records_.size();
          },
          [this](bool) { return stop_.load(); });
    }};
  }
  counts_reader(const counts_reader&) = delete;
  counts_reader& operator=(const counts_reader&) = delete;
  ~counts_reader() { stop(); }

  size_t size() const { return n_; }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  /// After stop(): the records, in offset order per partition.
  const std::vector<count_record>& records() const { return records_; }
  bool wrong_timestamp_type() const { return wrong_ts_type_; }
  clock_type::time_point first_at() {
    std::lock_guard<std::mutex> guard{mu_};
    return first_at_;
  }
  clock_type::time_point last_at() {
    std::lock_guard<std::mutex> guard{mu_};
    return last_at_;
  }

 private:
  std::mutex mu_;
  std::vector<count_record> records_;
  clock_type::time_point first_at_, last_at_;
  std::atomic<size_t> n_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> wrong_ts_type_{false};
  std::thread thread_;
};

/// The exactly-once verdict on the committed outputs of events [0, total).
struct eo_result {
  bool ok = true;
  std::string detail;
};

eo_result check_outputs(const pipeline_topics& t, const std::vector<count_record>& counts,
                        size_t total, size_t keys) {
  eo_result r;
  auto fail = [&](const std::string& what) {
    r.ok = false;
    r.detail += (r.detail.empty() ? "" : "; ") + what;
  };
  // Every event split once, into -a or -b.
  std::vector<uint8_t> seen(total, 0);
  size_t split = 0, dup = 0, alien = 0;
  read_all({t.a(), t.b()}, total, [&](const rd_kafka_message_t* m) {
    ++split;
    auto i = parse_key(m->payload, m->len); // "e<i>"
    if (i >= total)
      ++alien;
    else if (seen[i]++)
      ++dup;
  });
  if (split != total || dup || alien)
    fail("split: " + std::to_string(split) + " records for " + std::to_string(total) +
         " events, " + std::to_string(dup) + " duplicates, " + std::to_string(alien) +
         " unknown");
  // Every key's counts exactly 1..n, in order.
  std::vector<int64_t> want(keys, 0);
  std::vector<uint8_t> types(keys, 0);
  for (size_t i = 0; i < total; ++i) {
    ++want[i % keys];
    types[i % keys] |= event_type(i, keys) == 'A' ? 1 : 2;
  }
  std::vector<int64_t> last(keys, 0);
  size_t out_of_order = 0;
  std::string example;
  for (auto& c : counts) {
    if (c.key >= keys || c.count != last[c.key] + 1) {
      if (example.empty())
        example = "k" + std::to_string(c.key) + " got " + std::to_string(c.count) +
                  " after " + std::to_string(c.key < keys ? last[c.key] : -1);
      ++out_of_order;
    }
    if (c.key < keys) last[c.key] = std::max(last[c.key], c.count);
  }
  size_t short_keys = 0;
  for (size_t k = 0; k < keys; ++k)
    short_keys += last[k] != want[k];
  if (counts.size() != total || out_of_order || short_keys) {
    // Per partition of the counts (= counter unit): records beyond or short
    // of what its keys need.
    std::map<int32_t, int64_t> diff;
    std::vector<int32_t> partition_of(keys, -1);
    for (auto& c : counts) {
      ++diff[c.partition];
      if (c.key < keys) partition_of[c.key] = c.partition;
    }
    for (size_t k = 0; k < keys; ++k)
      if (partition_of[k] >= 0) diff[partition_of[k]] -= want[k];
    std::string per;
    for (auto& [p, d] : diff)
      if (d != 0)
        per += " p" + std::to_string(p) + (d > 0 ? " +" : " ") + std::to_string(d);
    // When the first count beyond a key's events was written, per second
    // (local time, as in the node logs).
    std::map<std::string, size_t> beyond;
    for (auto& c : counts)
      if (c.key < keys && c.count == want[c.key] + 1) {
        auto secs = std::time_t(c.append_ms / 1000);
        std::tm tm{};
        ::localtime_r(&secs, &tm);
        char b[16];
        std::strftime(b, sizeof b, "%H:%M:%S", &tm);
        ++beyond[b];
      }
    if (!beyond.empty()) {
      per += "; first count beyond a key's events appended at";
      for (auto& [at, n] : beyond)
        per += " " + at + " (" + std::to_string(n) + ")";
    }
    fail("counts: " + std::to_string(counts.size()) + " records for " +
         std::to_string(total) + " events, " + std::to_string(out_of_order) +
         " not the next count (first: " + (example.empty() ? "none" : example) + "), " +
         std::to_string(short_keys) +
         " keys whose last count is wrong; records beyond "
         "the keys' counts per counter unit:" +
         (per.empty() ? " none" : per));
  }
  // Every key with an A and a B gated once.
  size_t gated_want = 0;
  for (auto t2 : types)
    gated_want += t2 == 3;
  std::vector<uint8_t> fired(keys, 0);
  size_t gated = 0, wrong = 0;
  read_all({t.gated()}, gated_want, [&](const rd_kafka_message_t* m) {
    ++gated;
    auto k = parse_key(m->key, m->key_len);
    if (k >= keys || types[k] != 3 || fired[k]++) ++wrong;
  });
  if (gated != gated_want || wrong)
    fail("gated: " + std::to_string(gated) + " for " + std::to_string(gated_want) +
         " keys, " + std::to_string(wrong) + " wrong or repeated");
  if (r.ok)
    r.detail = std::to_string(total) + " events split once, " +
               std::to_string(counts.size()) + " counts exactly 1..n over " +
               std::to_string(keys) + " keys, " + std::to_string(gated) +
               " keys gated once";
  return r;
}

// ---------------------------------------------------------------------------
// A cluster of weft-test-node processes.

struct node_proc {
  std::string id;
  int http_port = 0;
  std::string state_dir, log;
  std::unique_ptr<child> proc;
};

struct cluster {
  pipeline_topics topics;
  std::string app;
  std::vector<std::string> extra;
  std::map<std::string, node_proc> nodes;
  int next_port;

  cluster(pipeline_topics t, std::string application, std::vector<std::string> x,
          int first_port)
    : topics(std::move(t)), app(std::move(application)), extra(std::move(x)),
      next_port(first_port) {}
  ~cluster() {
    for (auto& [id, n] : nodes) {
      if (n.proc) n.proc->kill_hard();
      std::filesystem::remove_all(n.state_dir);
    }
  }

  /// Starts node `id` afresh (empty state folder and log).
  node_proc& start(const std::string& id) {
    auto& n = nodes[id];
    n.id = id;
    n.http_port = next_port++;
    n.state_dir = "/tmp/" + app + "-" + id;
    n.log = "/tmp/" + app + "-" + id + ".log";
    std::filesystem::remove_all(n.state_dir);
    std::filesystem::remove(n.log);
    return launch(n);
  }

  /// Starts a stopped node again with its state folder, port and log.
  node_proc& restart(const std::string& id) { return launch(nodes.at(id)); }

  node_proc& launch(node_proc& n) {
    std::vector<std::string> args{"--test.service=pipeline",
                                  "--test.in=" + topics.in,
                                  "--test.out=" + topics.out,
                                  "--application.id=" + app,
                                  "--bootstrap.servers=" + bootstrap,
                                  "--state.dir=" + n.state_dir,
                                  "--processing.guarantee=exactly_once",
                                  "--commit.interval.ms=100",
                                  "--cluster.enabled=true",
                                  "--node.id=" + n.id,
                                  "--http.port=" + std::to_string(n.http_port)};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), node_extra.begin(), node_extra.end());
    if (tls_now)
      for (auto& a : {std::string{"--cluster.tls.enabled=true"},
                      "--cluster.tls.ca=" + tls_dir + "/ca.pem",
                      "--cluster.tls.certificate=" + tls_dir + "/" + n.id + ".pem",
                      "--cluster.tls.key=" + tls_dir + "/" + n.id + ".key"})
        args.push_back(a);
    n.proc = std::make_unique<child>(test_node, args, n.log);
    return n;
  }

  std::optional<json> view(const std::string& id) {
    return get_json(nodes[id].http_port, "/cluster");
  }

  /// As cluster.test.cpp: node `id` sees exactly `members` connected, every
  /// unit active on one of them and running (lag reported), no warm-up, and
  /// actives within one of each other.
  bool settled(const std::string& id, const std::set<std::string>& members) {
    auto v = view(id);
    if (!v || !v->contains("units")) return false;
    std::set<std::string> connected;
    for (auto& m : (*v)["members"])
      if (m["connected"].get<bool>()) connected.insert(m["id"].get<std::string>());
    if (connected != members) return false;
    std::map<std::string, int> load;
    for (auto& u : (*v)["units"]) {
      auto owner = u["active"].get<std::string>();
      if (!members.count(owner) || u.contains("warmup") || u["active_lag"].is_null())
        return false;
      ++load[owner];
    }
    int lo = INT32_MAX, hi = 0;
    for (auto& m : members) {
      lo = std::min(lo, load[m]);
      hi = std::max(hi, load[m]);
    }
    return hi - lo <= 1;
  }

  /// The largest standby lag in node `id`'s view; nullopt while one is unknown.
  std::optional<int64_t> max_standby_lag(const std::string& id) {
    auto v = view(id);
    if (!v || !v->contains("units")) return std::nullopt;
    int64_t worst = 0;
    for (auto& u : (*v)["units"])
      for (auto& s : u["standbys"]) {
        if (s["lag"].is_null()) return std::nullopt;
        worst = std::max(worst, s["lag"].get<int64_t>());
      }
    return worst;
  }

  void stop_all() {
    for (auto& [id, n] : nodes)
      if (n.proc && n.proc->running()) {
        auto code = n.proc->stop(SIGTERM, seconds(60));
        if (code != 0)
          std::printf("  note: node %s exited with %d on SIGTERM (log %s)\n", id.c_str(),
                      code, n.log.c_str());
      }
  }
};

// ---------------------------------------------------------------------------
// Node logs: "2026-11-26 15:02:42.123 warn  [123] cluster: ..." in local time.

std::optional<int64_t> log_time_ms(const std::string& line) {
  int y, mo, d, h, mi, s, ms;
  if (std::sscanf(line.c_str(), "%d-%d-%d %d:%d:%d.%d", &y, &mo, &d, &h, &mi, &s, &ms) !=
      7)
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  tm.tm_isdst = -1;
  return int64_t(std::mktime(&tm)) * 1000 + ms;
}

/// Time of the first line at or after `since_ms` containing every one of
/// `needles`.
std::optional<int64_t> first_log_line(const std::string& log, int64_t since_ms,
                                      const std::vector<std::string>& needles) {
  std::ifstream f{log};
  std::string line;
  while (std::getline(f, line)) {
    auto t = log_time_ms(line);
    if (!t || *t < since_ms) continue;
    bool all = true;
    for (auto& n : needles)
      all &= line.find(n) != std::string::npos;
    if (all) return t;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// (1) Failover.

/// One kill -9 and what followed it.
struct kill_round {
  std::string victim;
  std::vector<int> moved; ///< counter units (= counts partitions) it ran
  size_t units_owned = 0;
  int64_t kill_ms = 0;
  int64_t until_ms = 0;       ///< the victim's restart (or the end of the input)
  int64_t standby_lag = -1;   ///< the largest standby lag just before the kill
  std::vector<double> pauses; ///< per moved unit, s
  double other_gap_max = -1;
  std::optional<int64_t> detect_ms, fenced_ms, published_ms, applied_ms;
  double settled_s = -1;
};

struct failover_result {
  bool tls = false;
  int standbys = 0;
  double preload_s = 0;
  size_t total_events = 0;
  std::vector<kill_round> rounds;
  eo_result eo;
  bool ts_ok = true;
};

double median(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  auto n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double max_of(const std::vector<double>& v) {
  return v.empty() ? -1 : *std::max_element(v.begin(), v.end());
}

/// Waits until node `leader` sees `members` settled and every standby at
/// lag 0; returns the largest standby lag seen last (-1 unknown).
int64_t wait_caught_up(cluster& c, const std::string& leader,
                       const std::set<std::string>& members) {
  auto start = clock_type::now();
  int64_t lag = -1;
  bool ok = wait_until(
      [&] {
        auto l = c.max_standby_lag(leader);
        if (l) lag = *l;
        return l && *l == 0 && c.settled(leader, members);
      },
      seconds(60));
  if (ok)
    std::printf("  settled, every standby at lag 0 (waited %.1f s with input at %zu "
                "events/s)\n",
                secs_since(start), rate);
  else
    std::printf("  note: not settled with every standby at lag 0 within 60 s (max lag "
                "%lld); killing anyway\n",
                static_cast<long long>(lag));
  return lag;
}

/// Kills the non-leader that runs the most counter units; returns the round
/// with what the cluster view and the clock say (the outputs are read later).
kill_round kill_one(cluster& c, const std::set<std::string>& all) {
  kill_round k;
  auto v = c.view("n1");
  if (!v) die("no cluster view from n1");
  auto leader = (*v)["leader"].get<std::string>();
  std::map<std::string, std::vector<int>> counter_units;
  std::map<std::string, size_t> owned;
  for (auto& u : (*v)["units"]) {
    auto owner = u["active"].get<std::string>();
    ++owned[owner];
    auto tasks = u["tasks"].get<std::string>();
    if (tasks.rfind("pair-counter/", 0) == 0)
      counter_units[owner].push_back(std::stoi(tasks.substr(13)));
  }
  std::printf("  counter units / all units per node:");
  for (auto& id : all) {
    std::printf(" %s %zu/%zu", id.c_str(), counter_units[id].size(), owned[id]);
    if (id != leader && counter_units[id].size() > k.moved.size()) {
      k.victim = id;
      k.moved = counter_units[id];
    }
  }
  std::printf("\n");
  if (k.victim.empty()) die("no non-leader node runs a counter unit");
  k.units_owned = owned[k.victim];
  std::string list;
  for (auto p : k.moved)
    list += (list.empty() ? "" : ",") + std::to_string(p);
  std::printf("  leader %s; kill -9 %s, which runs %zu units, counter units [%s]\n",
              leader.c_str(), k.victim.c_str(), k.units_owned, list.c_str());
  std::set<std::string> survivors = all;
  survivors.erase(k.victim);
  k.kill_ms = wall_ms();
  auto killed = clock_type::now();
  c.nodes[k.victim].proc->kill_hard();
  if (wait_until([&] { return c.settled(leader, survivors); }, seconds(60),
                 milliseconds(50)))
    k.settled_s = secs_since(killed);
  else
    std::printf("  note: the survivors did not settle within 60 s of the kill\n");
  // The failover's steps in the logs, ms after the kill (lines have ms
  // resolution: look from one ms before).
  auto rel = [&](std::optional<int64_t> t) -> std::optional<int64_t> {
    if (!t) return std::nullopt;
    return *t - k.kill_ms;
  };
  auto& leader_log = c.nodes[leader].log;
  auto since = k.kill_ms - 1;
  k.detect_ms =
      rel(first_log_line(leader_log, since, {"cluster: node " + k.victim + " is gone"}));
  k.fenced_ms =
      rel(first_log_line(leader_log, since, {"cluster: fenced node " + k.victim + " "}));
  k.published_ms = rel(first_log_line(leader_log, since, {"for members ["}));
  for (auto& id : survivors) {
    auto a = rel(first_log_line(c.nodes[id].log, since, {"applied in"}));
    if (a && (!k.applied_ms || *a > *k.applied_ms)) k.applied_ms = a;
  }
  return k;
}

/// From the committed outputs: each moved unit's pause, and the largest gap
/// of the other counter units that ends after the kill (from `from_ms` until
/// the victim restarts).
void measure_pauses(kill_round& k, const std::vector<count_record>& counts,
                    int64_t from_ms) {
  std::map<int32_t, int64_t> before, after;
  std::map<int32_t, std::vector<int64_t>> window;
  for (auto& rec : counts) {
    if (rec.append_ms <= k.kill_ms)
      before[rec.partition] = std::max(before[rec.partition], rec.append_ms);
    else if (!after.count(rec.partition) || rec.append_ms < after[rec.partition])
      after[rec.partition] = rec.append_ms;
    if (rec.append_ms > from_ms && rec.append_ms < k.until_ms)
      window[rec.partition].push_back(rec.append_ms);
  }
  std::printf("  kill of %s: moved units' pause (s):", k.victim.c_str());
  for (auto p : k.moved) {
    if (!before.count(p) || !after.count(p)) {
      std::printf(" p%d: no output on one side of the kill", p);
      continue;
    }
    k.pauses.push_back(double(after[p] - before[p]) / 1000.0);
    std::printf(" p%d %.2f", p, k.pauses.back());
  }
  std::printf("\n  other counter units' largest gap (s, starting at s after the kill):");
  for (auto& [p, ts] : window) {
    if (std::find(k.moved.begin(), k.moved.end(), p) != k.moved.end()) continue;
    std::sort(ts.begin(), ts.end());
    int64_t gap = 0, at = 0;
    for (size_t i = 1; i < ts.size(); ++i)
      if (ts[i] > k.kill_ms && ts[i] - ts[i - 1] > gap) {
        gap = ts[i] - ts[i - 1];
        at = ts[i - 1] - k.kill_ms;
      }
    std::printf(" p%d %.2f@%+.2f", p, double(gap) / 1000.0, double(at) / 1000.0);
    k.other_gap_max = std::max(k.other_gap_max, double(gap) / 1000.0);
  }
  std::printf("\n");
}

failover_result run_failover(const std::string& tag, int standbys, int first_port) {
  failover_result r;
  r.tls = tls_now;
  r.standbys = standbys;
  auto app = "cbench-" + tag + "-failover-sb" + std::to_string(standbys) +
             (tls_now ? "-tls" : "");
  pipeline_topics t{app + "-in", app};
  create_input(t.in);
  create_outputs(t);
  std::printf("(1) failover, num.standby.replicas=%d, TLS %s (application %s)\n",
              standbys, tls_now ? "on" : "off", app.c_str());
  counts_reader counts{t.counts()};
  auto t0 = clock_type::now();
  produce(t.in, 0, state_keys, state_keys);
  std::printf("  pre-load: %zu events with distinct keys produced in %.1f s\n",
              state_keys, secs_since(t0));
  cluster c{t, app, {"--num.standby.replicas=" + std::to_string(standbys)}, first_port};
  auto t1 = clock_type::now();
  std::set<std::string> all{"n1", "n2", "n3"};
  for (auto& id : all)
    c.start(id);
  if (!wait_until([&] { return counts.size() >= state_keys; }, minutes(8), seconds(1)))
    die("pre-load: only " + std::to_string(counts.size()) + " of " +
        std::to_string(state_keys) + " counts after 8 minutes; logs /tmp/" + app +
        "-n*.log");
  r.preload_s = secs_since(t1);
  std::printf("  pre-load: %zu counts committed by 3 nodes in %.1f s (%.0f events/s, "
              "from process start)\n",
              state_keys, r.preload_s, double(state_keys) / r.preload_s);
  if (!wait_until([&] { return c.settled("n1", all); }, seconds(90)))
    die("the 3 nodes did not settle in 90 s");

  auto feed_ms = wall_ms();
  feeder feed{t.in, state_keys, state_keys, rate};
  std::this_thread::sleep_for(seconds(3));
  for (int round = 0; round < kills; ++round) {
    if (round > 0) {
      // The last victim comes back with its state folder, as after a crash.
      auto& last = r.rounds.back();
      last.until_ms = wall_ms();
      c.restart(last.victim);
      std::printf("  restarted %s\n", last.victim.c_str());
      // Let the rejoin's warm-ups and handoffs finish before the next kill.
      wait_caught_up(c, "n1", all);
      std::this_thread::sleep_for(seconds(2));
    }
    auto lag = wait_caught_up(c, "n1", all);
    r.rounds.push_back(kill_one(c, all));
    r.rounds.back().standby_lag = lag;
    std::this_thread::sleep_for(seconds(5));
  }
  r.rounds.back().until_ms = wall_ms();
  feed.stop();
  r.total_events = state_keys + feed.sent();
  if (!wait_until([&] { return counts.size() >= r.total_events; }, minutes(3),
                  milliseconds(200)))
    std::printf("  note: only %zu of %zu counts committed 3 minutes after the input "
                "stopped\n",
                counts.size(), r.total_events);
  std::this_thread::sleep_for(seconds(1)); // anything beyond the expected count
  c.stop_all();
  counts.stop();
  r.ts_ok = !counts.wrong_timestamp_type();
  for (size_t i = 0; i < r.rounds.size(); ++i) {
    // Steady input from a second after the feeder started (before, the units
    // idled after the pre-load), and after the previous round's restart.
    auto from = std::max(feed_ms + 1000, r.rounds[i].kill_ms - 2000);
    measure_pauses(r.rounds[i], counts.records(), from);
  }
  r.eo = check_outputs(t, counts.records(), r.total_events, state_keys);
  std::printf("  exactly once: %s — %s\n", r.eo.ok ? "yes" : "NO", r.eo.detail.c_str());
  std::printf("  logs: /tmp/%s-n{1,2,3}.log\n", app.c_str());
  delete_topics(app);
  return r;
}

// ---------------------------------------------------------------------------
// (2) Throughput, 1 vs 3 nodes.

struct throughput_result {
  bool tls = false;
  int nodes = 0;
  double total_s = 0, processing_s = 0;
  eo_result eo;
};

throughput_result run_throughput(const std::string& tag, const std::string& in,
                                 size_t keys, int nodes, int first_port) {
  throughput_result r;
  r.tls = tls_now;
  r.nodes = nodes;
  auto app = "cbench-" + tag + "-tp" + std::to_string(nodes) + (tls_now ? "-tls" : "");
  pipeline_topics t{in, app};
  create_outputs(t);
  counts_reader counts{t.counts()};
  cluster c{t, app, {}, first_port};
  auto start = clock_type::now();
  for (int i = 1; i <= nodes; ++i)
    c.start("n" + std::to_string(i));
  if (!wait_until([&] { return counts.size() >= tp_events; }, minutes(5),
                  milliseconds(20)))
    die(std::to_string(nodes) + " node(s): only " + std::to_string(counts.size()) +
        " of " + std::to_string(tp_events) + " counts after 5 minutes; logs /tmp/" + app +
        "-n*.log");
  r.total_s = secs_since(start);
  r.processing_s = duration<double>(counts.last_at() - counts.first_at()).count();
  std::this_thread::sleep_for(seconds(1));
  c.stop_all();
  counts.stop();
  r.eo = check_outputs(t, counts.records(), tp_events, keys);
  std::printf("(2) %d node(s): %zu events counted in %.1f s from process start (%.0f "
              "events/s), %.1f s from first to last count; exactly once: %s — %s\n",
              nodes, tp_events, r.total_s, double(tp_events) / r.total_s, r.processing_s,
              r.eo.ok ? "yes" : "NO", r.eo.detail.c_str());
  delete_topics(app);
  return r;
}

std::string ms_or_dash(std::optional<int64_t> v) {
  if (!v) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", double(*v) / 1000.0);
  return b;
}

std::string s_or_dash(double v) {
  if (v < 0) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}

} // namespace

int main(int argc, char** argv) {
  std::string only;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name) -> std::optional<std::string> {
      auto n = std::strlen(name);
      if (a.compare(0, n, name) == 0) return a.substr(n);
      return std::nullopt;
    };
    if (auto v = value("--bootstrap="))
      bootstrap = *v;
    else if (auto v = value("--keys="))
      state_keys = std::stoul(*v);
    else if (auto v = value("--events="))
      tp_events = std::stoul(*v);
    else if (auto v = value("--rate="))
      rate = std::stoul(*v);
    else if (auto v = value("--standbys=")) {
      standby_configs.clear();
      for (size_t at = 0; at < v->size();) {
        auto comma = v->find(',', at);
        if (comma == std::string::npos) comma = v->size();
        standby_configs.push_back(std::stoi(v->substr(at, comma - at)));
        at = comma + 1;
      }
    } else if (auto v = value("--kills="))
      kills = std::stoi(*v);
    else if (auto v = value("--partitions="))
      parts = std::stoi(*v);
    else if (auto v = value("--only="))
      only = *v;
    else if (auto v = value("--test-node="))
      test_node = *v;
    else if (auto v = value("--tls=")) {
      tls_modes.clear();
      for (auto& m : {std::string{"off"}, std::string{"on"}})
        if (v->find(m) != std::string::npos) tls_modes.push_back(m == "on");
      if (tls_modes.empty()) die("--tls= takes off, on or off,on");
    } else if (auto v = value("--node."))
      node_extra.push_back("--" + *v);
    else if (a == "--keep")
      keep_topics = true;
    else
      die("unknown argument " + a +
          " (--bootstrap= --keys= --events= --rate= --partitions= "
          "--kills= --standbys=1,0 --only=failover|throughput --node.<key>=<value> "
          "--tls=off,on --test-node=PATH "
          "--keep)");
  }
  if (state_keys == 0 || tp_events == 0 || rate == 0 || parts <= 0)
    die("sizes must be > 0");
  ::signal(SIGPIPE, SIG_IGN);
  auto a = weft::kafka::admin::create({{"bootstrap.servers", bootstrap}});
  if (!a) die(a.error().message());
  admin = std::move(*a);
  if (auto s = admin->wait_for_brokers(10000); !s)
    die("no broker at " + bootstrap + ": " + s.message());
  auto tag = std::to_string(::time(nullptr));
  auto started = clock_type::now();
  int port = port_base();
  std::printf("weft cluster bench: %d partitions, %u cores, broker %s\n", parts,
              std::thread::hardware_concurrency(), bootstrap.c_str());

  if (std::find(tls_modes.begin(), tls_modes.end(), true) != tls_modes.end()) {
    char tmpl[] = "/tmp/weft-bench-certs-XXXXXX";
    if (!::mkdtemp(tmpl)) die("mkdtemp failed");
    tls_dir = tmpl;
    std::string tool = WEFT_SOURCE_DIR "/tools/weft-certs";
    std::string cmd = tool + " ca " + tls_dir + "/c";
    for (auto* id : {"n1", "n2", "n3"})
      cmd += " && " + tool + " node " + tls_dir + "/c " + id + " 127.0.0.1";
    if (std::system(("(" + cmd + ") >/dev/null").c_str()) != 0)
      die("cannot make certificates: " + cmd);
    tls_dir += "/c";
  }

  std::vector<failover_result> fo;
  std::vector<throughput_result> tp;
  for (bool mode : tls_modes) {
    tls_now = mode;
    if (only.empty() || only == "failover")
      for (int sb : standby_configs) {
        fo.push_back(run_failover(tag, sb, port));
        port += 3;
      }

    if (only.empty() || only == "throughput") {
      auto in = "cbench-" + tag + "-tp-in" + (mode ? "-tls" : "");
      size_t keys = std::max<size_t>(tp_events / 10, 1);
      create_input(in);
      auto t0 = clock_type::now();
      produce(in, 0, tp_events, keys);
      std::printf("(2) throughput input: %zu events over %zu keys produced in %.1f s\n",
                  tp_events, keys, secs_since(t0));
      for (int n : {1, 3}) {
        tp.push_back(run_throughput(tag, in, keys, n, port));
        port += 3;
      }
      if (!keep_topics) (void)admin->delete_topics({in}, 30000);
    }
  }
  if (!tls_dir.empty())
    std::filesystem::remove_all(std::filesystem::path{tls_dir}.parent_path());

  std::printf(
      "\n=== summary (%d partitions, commit.interval.ms=100, exactly_once, %.0f s "
      "in all) ===\n",
      parts, secs_since(started));
  bool all_ok = true;
  if (!fo.empty()) {
    std::printf("failover after kill -9 of 1 of 3 nodes, %zu keys of state, input at %zu "
                "events/s (target with standbys: pause < 3 s, detection ~1 s)\n",
                state_keys, rate);
    std::printf(
        "  tls  standbys  kill  moved  pause max  median  others' max gap  detect  "
        "fenced  published  applied  settled\n");
    for (auto& r : fo) {
      all_ok &= r.eo.ok && r.ts_ok;
      std::vector<double> pauses;
      for (size_t i = 0; i < r.rounds.size(); ++i) {
        auto& k = r.rounds[i];
        pauses.insert(pauses.end(), k.pauses.begin(), k.pauses.end());
        std::printf("  %3s  %8d  %4zu  %5zu  %9s  %6s  %15s  %6s  %6s  %9s  %7s  %7s\n",
                    r.tls ? "on" : "off", r.standbys, i + 1, k.moved.size(),
                    s_or_dash(max_of(k.pauses)).c_str(),
                    s_or_dash(median(k.pauses)).c_str(),
                    s_or_dash(k.other_gap_max).c_str(), ms_or_dash(k.detect_ms).c_str(),
                    ms_or_dash(k.fenced_ms).c_str(), ms_or_dash(k.published_ms).c_str(),
                    ms_or_dash(k.applied_ms).c_str(), s_or_dash(k.settled_s).c_str());
      }
      std::printf("  %3s  %8d   all  %5zu  %9s  %6s   exactly once: %s\n",
                  r.tls ? "on" : "off", r.standbys, pauses.size(),
                  s_or_dash(max_of(pauses)).c_str(), s_or_dash(median(pauses)).c_str(),
                  r.eo.ok ? "yes" : "NO");
    }
    std::printf(
        "  (seconds after the kill; pause = gap in a moved counter unit's committed "
        "output (LogAppendTime),\n   max/median over the moved units; others = the "
        "counter units that did not move; detect,\n   fenced, published = the leader's "
        "log lines; applied = the last survivor's; settled = its /cluster)\n");
    for (auto& r : fo)
      if (!r.ts_ok)
        std::printf("  WARNING: counts records without LogAppendTime (standbys=%d)\n",
                    r.standbys);
  }
  if (tp.size() >= 2) {
    for (auto& r : tp)
      all_ok &= r.eo.ok;
    std::printf("throughput of the count pipeline, %zu events (%zu keys), 1 vs 3 node "
                "processes on %u cores\n",
                tp_events, std::max<size_t>(tp_events / 10, 1),
                std::thread::hardware_concurrency());
    std::printf(
        "  tls  nodes  from start (s)  events/s  first->last count (s)  events/s  "
        "exactly once\n");
    for (auto& r : tp)
      std::printf("  %3s  %5d  %14.1f  %8.0f  %21.1f  %8.0f  %s\n", r.tls ? "on" : "off",
                  r.nodes, r.total_s, double(tp_events) / r.total_s, r.processing_s,
                  double(tp_events) / std::max(r.processing_s, 1e-3),
                  r.eo.ok ? "yes" : "NO");
    for (size_t i = 0; i + 1 < tp.size(); i += 2)
      std::printf("  TLS %s: ratio 3 nodes / 1 node: %.2f from start, %.2f first->last\n",
                  tp[i].tls ? "on" : "off", tp[i].total_s / tp[i + 1].total_s,
                  tp[i].processing_s / std::max(tp[i + 1].processing_s, 1e-3));
  }
  if (tls_modes.size() == 2) {
    std::printf("TLS cost, on / off (same run):\n");
    for (auto& on : fo) {
      if (!on.tls) continue;
      for (auto& off : fo) {
        if (off.tls || off.standbys != on.standbys) continue;
        std::vector<double> p_on, p_off;
        for (auto& k : on.rounds)
          p_on.insert(p_on.end(), k.pauses.begin(), k.pauses.end());
        for (auto& k : off.rounds)
          p_off.insert(p_off.end(), k.pauses.begin(), k.pauses.end());
        std::printf(
            "  failover pause, standbys=%d: median %s on vs %s off, max %s vs %s\n",
            on.standbys, s_or_dash(median(p_on)).c_str(),
            s_or_dash(median(p_off)).c_str(), s_or_dash(max_of(p_on)).c_str(),
            s_or_dash(max_of(p_off)).c_str());
      }
    }
    for (auto& on : tp) {
      if (!on.tls) continue;
      for (auto& off : tp)
        if (!off.tls && off.nodes == on.nodes)
          std::printf("  throughput, %d node(s): %.0f vs %.0f events/s first->last "
                      "(ratio %.2f), %.0f vs %.0f from start (ratio %.2f)\n",
                      on.nodes, double(tp_events) / std::max(on.processing_s, 1e-3),
                      double(tp_events) / std::max(off.processing_s, 1e-3),
                      off.processing_s / std::max(on.processing_s, 1e-3),
                      double(tp_events) / on.total_s, double(tp_events) / off.total_s,
                      off.total_s / on.total_s);
    }
  }
  return all_ok ? 0 : 1;
}
