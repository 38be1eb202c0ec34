#include "weft/kafka/admin.hpp"

#include <chrono>
#include <thread>

#include "weft/kafka/client_config.hpp"
#include "weft/kafka/error.hpp"

namespace weft::kafka {

namespace {

struct queue_deleter {
  void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
};
struct event_deleter {
  void operator()(rd_kafka_event_t* e) const { rd_kafka_event_destroy(e); }
};
using queue_ptr = std::unique_ptr<rd_kafka_queue_t, queue_deleter>;
using event_ptr = std::unique_ptr<rd_kafka_event_t, event_deleter>;

} // namespace

result<std::unique_ptr<admin>> admin::create(std::map<std::string, std::string> props) {
  auto conf = make_conf(props);
  if (!conf) return conf.error();
  std::unique_ptr<admin> a{new admin};
  char err[512];
  a->rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf->get(), err, sizeof err);
  if (!a->rk_) return make_error(errc::invalid_config, std::string{"admin: "} + err);
  conf->release();
  return a;
}

admin::~admin() {
  if (rk_) rd_kafka_destroy(rk_);
}

result<int> admin::partition_count(const std::string& topic, int timeout_ms) {
  return topic_partition_count(rk_, topic, timeout_ms);
}

status admin::wait_for_brokers(int timeout_ms) {
  const rd_kafka_metadata_t* md = nullptr;
  auto err = rd_kafka_metadata(rk_, 0, nullptr, &md, timeout_ms);
  if (md) rd_kafka_metadata_destroy(md);
  return from_rd(err, "connect to the brokers");
}

status admin::ensure_topics(const std::vector<new_topic>& topics, int timeout_ms) {
  if (topics.empty()) return {};
  char err[512];
  std::vector<rd_kafka_NewTopic_t*> nts;
  auto free_all = [&] {
    for (auto* t : nts)
      rd_kafka_NewTopic_destroy(t);
  };
  for (auto& t : topics) {
    auto* nt = rd_kafka_NewTopic_new(t.name.c_str(), t.partitions, t.replication_factor,
                                     err, sizeof err);
    if (!nt) {
      free_all();
      return make_error(errc::invalid_argument, "topic '" + t.name + "': " + err);
    }
    for (auto& [k, v] : t.configs)
      rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str());
    nts.push_back(nt);
  }
  queue_ptr q{rd_kafka_queue_new(rk_)};
  auto* opts = rd_kafka_AdminOptions_new(rk_, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, err, sizeof err);
  rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, err, sizeof err);
  rd_kafka_CreateTopics(rk_, nts.data(), nts.size(), opts, q.get());
  rd_kafka_AdminOptions_destroy(opts);
  free_all();
  event_ptr ev{rd_kafka_queue_poll(q.get(), timeout_ms + 1000)};
  if (!ev)
    return make_error(errc::timed_out, "create topics: no answer from the brokers");
  if (auto e = rd_kafka_event_error(ev.get())) return from_rd(e, "create topics");
  auto* res = rd_kafka_event_CreateTopics_result(ev.get());
  size_t cnt = 0;
  auto** results = rd_kafka_CreateTopics_result_topics(res, &cnt);
  for (size_t i = 0; i < cnt; ++i) {
    auto terr = rd_kafka_topic_result_error(results[i]);
    if (terr == RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    std::string name = rd_kafka_topic_result_name(results[i]);
    if (terr != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      const char* s = rd_kafka_topic_result_error_string(results[i]);
      return make_error(errc::kafka, "create topic '" + name + "': " +
                                         rd_kafka_err2name(terr) + ": " + (s ? s : ""));
    }
    for (auto& t : topics)
      if (t.name == name) {
        // Another process may be creating it right now (several nodes
        // starting at once): its metadata shows up moments later.
        auto until =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        auto n = partition_count(name, timeout_ms);
        while (!n && n.error().code() == errc::not_found &&
               std::chrono::steady_clock::now() < until) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          n = partition_count(name, timeout_ms);
        }
        if (!n) return n.error();
        if (*n != t.partitions)
          return make_error(errc::invalid_config,
                            "topic '" + name + "' exists with " + std::to_string(*n) +
                                " partitions, but " + std::to_string(t.partitions) +
                                " are needed");
      }
  }
  // Metadata propagates asynchronously: wait until every topic is visible so
  // that producers and consumers created next see it.
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (auto& t : topics) {
    while (true) {
      auto n = partition_count(t.name, timeout_ms);
      if (n && *n == t.partitions) break;
      if (std::chrono::steady_clock::now() > deadline)
        return make_error(errc::timed_out,
                          "topic '" + t.name + "' not visible in metadata");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return {};
}

status admin::delete_topics(const std::vector<std::string>& names, int timeout_ms) {
  if (names.empty()) return {};
  std::vector<rd_kafka_DeleteTopic_t*> dts;
  for (auto& n : names)
    dts.push_back(rd_kafka_DeleteTopic_new(n.c_str()));
  queue_ptr q{rd_kafka_queue_new(rk_)};
  char err[512];
  auto* opts = rd_kafka_AdminOptions_new(rk_, RD_KAFKA_ADMIN_OP_DELETETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, err, sizeof err);
  rd_kafka_DeleteTopics(rk_, dts.data(), dts.size(), opts, q.get());
  rd_kafka_AdminOptions_destroy(opts);
  for (auto* d : dts)
    rd_kafka_DeleteTopic_destroy(d);
  event_ptr ev{rd_kafka_queue_poll(q.get(), timeout_ms + 1000)};
  if (!ev)
    return make_error(errc::timed_out, "delete topics: no answer from the brokers");
  if (auto e = rd_kafka_event_error(ev.get())) return from_rd(e, "delete topics");
  auto* res = rd_kafka_event_DeleteTopics_result(ev.get());
  size_t cnt = 0;
  auto** results = rd_kafka_DeleteTopics_result_topics(res, &cnt);
  for (size_t i = 0; i < cnt; ++i) {
    auto terr = rd_kafka_topic_result_error(results[i]);
    if (terr && terr != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
      return from_rd(terr, std::string{"delete topic '"} +
                               rd_kafka_topic_result_name(results[i]) + "'");
  }
  return {};
}

} // namespace weft::kafka
