// What timestamp order needs from the client layer, on librdkafka's mock
// cluster [mock]: a partition queue knows when it drained its partition to
// the end, and windowed keys go to the partition of their plain key.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include "weft/kafka/consumer.hpp"
#include "weft/kafka/mock_cluster.hpp"
#include "weft/kafka/producer.hpp"

using namespace weft;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<kafka::mock_cluster> start_mock() {
  auto m = kafka::mock_cluster::create(1);
  REQUIRE(m.ok());
  return std::move(*m);
}

std::unique_ptr<kafka::producer> make_producer(const std::string& bootstrap,
                                               std::atomic<int>& failed) {
  auto p = kafka::producer::create(
      {{"bootstrap.servers", bootstrap}, {"partitioner", "murmur2_random"}},
      [&failed](void*, const status& st, int64_t) {
        if (!st.ok()) ++failed;
      });
  REQUIRE(p.ok());
  return std::move(*p);
}

/// Drains `q` into `out`, `step` records at a time, until `pred` holds or
/// 20 s passed (end-of-partition events come through drain() too).
bool drain_until(kafka::partition_queue& q, kafka::message_batch& out,
                 const std::function<bool()>& pred, size_t step = 1000) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!pred() && std::chrono::steady_clock::now() < deadline) {
    if (q.drain(out, step) == 0) std::this_thread::sleep_for(5ms);
  }
  return pred();
}

} // namespace

TEST_CASE("a partition queue knows when it drained its partition to the end", "[mock]") {
  auto mock = start_mock();
  REQUIRE(mock->create_topic("ends", 1).ok());
  std::atomic<int> failed{0};
  auto p = make_producer(mock->bootstrap_servers(), failed);
  for (int i = 0; i < 50; ++i)
    REQUIRE(p->send("ends", 0, std::to_string(i), std::string_view{"v"}).ok());
  REQUIRE(p->flush(10000).ok());

  auto c = kafka::consumer::create(
      {{"bootstrap.servers", mock->bootstrap_servers()}, {"group.id", "g"}});
  REQUIRE(c.ok());
  topic_partition tp{"ends", partition_id{0}};
  auto q = (*c)->take_queue(tp);
  REQUIRE((*c)->assign({tp}).ok());
  CHECK_FALSE(q->at_end()); // nothing fetched: unknown
  kafka::message_batch b;
  // Never at the end while records are left.
  REQUIRE(drain_until(
      *q, b,
      [&] {
        if (b.size() < 50) CHECK_FALSE(q->at_end());
        return b.size() == 50 && q->at_end();
      },
      7));

  // New records: once a fetch brought them, not at the end until they are
  // drained too. (Before that fetch the partition still counts as at its
  // end: what was known at the last fetch answer, as Kafka Streams' lag.)
  for (int i = 0; i < 10; ++i)
    REQUIRE(p->send("ends", 0, std::to_string(i), std::string_view{"w"}).ok());
  REQUIRE(p->flush(10000).ok());
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (q->size() == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  REQUIRE(q->size() > 0);
  kafka::message_batch more;
  REQUIRE(drain_until(
      *q, more,
      [&] {
        if (more.size() < 10) CHECK_FALSE(q->at_end());
        return more.size() == 10 && q->at_end();
      },
      3));
  CHECK(failed == 0);
}

TEST_CASE("an empty partition is at its end once its first fetch answered", "[mock]") {
  auto mock = start_mock();
  REQUIRE(mock->create_topic("empty", 1).ok());
  auto c = kafka::consumer::create(
      {{"bootstrap.servers", mock->bootstrap_servers()}, {"group.id", "g"}});
  REQUIRE(c.ok());
  topic_partition tp{"empty", partition_id{0}};
  auto q = (*c)->take_queue(tp);
  REQUIRE((*c)->assign({tp}).ok());
  kafka::message_batch b;
  // The end-of-partition event arrives through the queue.
  CHECK(drain_until(*q, b, [&] { return q->at_end(); }));
  CHECK(b.size() == 0);
}

TEST_CASE("a windowed key goes to the partition of its plain key", "[mock]") {
  auto mock = start_mock();
  REQUIRE(mock->create_topic("windows", 6).ok());
  std::atomic<int> failed{0};
  auto p = make_producer(mock->bootstrap_servers(), failed);
  const std::string window(8, '\x01'), session(16, '\x02');
  // Per plain key: the key itself, its time- and session-windowed forms
  // with their suffixes, and the time-windowed form hashed whole.
  for (int i = 0; i < 100; ++i) {
    auto k = "key-" + std::to_string(i);
    REQUIRE(p->send("windows", -1, k, std::string_view{"plain"}).ok());
    REQUIRE(p->send("windows", -1, k + window, std::string_view{"time"}, 0, nullptr,
                    nullptr, 8)
                .ok());
    REQUIRE(p->send("windows", -1, k + session, std::string_view{"session"}, 0, nullptr,
                    nullptr, 16)
                .ok());
    REQUIRE(p->send("windows", -1, k + window, std::string_view{"whole"}).ok());
  }
  REQUIRE(p->flush(10000).ok());
  CHECK(failed == 0);
  // A suffix other than 8 or 16, or longer than the key, is refused.
  CHECK(p->send("windows", -1, std::string_view{"k"}, std::string_view{"v"}, 0, nullptr,
                nullptr, 4)
            .code() == errc::invalid_argument);
  CHECK(p->send("windows", -1, std::string_view{"short"}, std::string_view{"v"}, 0,
                nullptr, nullptr, 8)
            .code() == errc::invalid_argument);

  auto c = kafka::consumer::create(
      {{"bootstrap.servers", mock->bootstrap_servers()}, {"group.id", "g"}});
  REQUIRE(c.ok());
  std::vector<std::unique_ptr<kafka::partition_queue>> qs;
  std::vector<topic_partition> tps;
  for (int i = 0; i < 6; ++i) {
    tps.push_back({"windows", partition_id{i}});
    qs.push_back((*c)->take_queue(tps.back()));
  }
  REQUIRE((*c)->assign(tps).ok());
  // plain key -> kind -> partition
  std::map<std::string, std::map<std::string, int32_t>> where;
  size_t seen = 0;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (seen < 400 && std::chrono::steady_clock::now() < deadline) {
    bool any = false;
    for (auto& q : qs) {
      kafka::message_batch b;
      if (q->drain(b, 1000) == 0) continue;
      any = true;
      for (size_t i = 0; i < b.size(); ++i) {
        auto v = b.view(i);
        std::string kind{*v.value};
        auto key = std::string{*v.key};
        auto plain = key.substr(0, key.size() - (kind == "plain"     ? 0
                                                 : kind == "session" ? 16
                                                                     : 8));
        where[plain][kind] = v.partition.value();
        ++seen;
      }
    }
    if (!any) std::this_thread::sleep_for(5ms);
  }
  REQUIRE(seen == 400);
  size_t whole_elsewhere = 0;
  for (auto& [k, kinds] : where) {
    INFO(k);
    CHECK(kinds.at("time") == kinds.at("plain"));
    CHECK(kinds.at("session") == kinds.at("plain"));
    if (kinds.at("whole") != kinds.at("plain")) ++whole_elsewhere;
  }
  CHECK(whole_elsewhere > 50); // hashing the whole key scatters them (5 of 6)
}
