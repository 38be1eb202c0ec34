#include "weft/kafka/producer.hpp"

#include <algorithm>
#include <chrono>

#include "weft/kafka/client_config.hpp"
#include "weft/kafka/consumer.hpp"
#include "weft/kafka/error.hpp"
#include "weft/log.hpp"

namespace weft::kafka {

namespace {

// A record's key_suffix travels to the partitioner in the two low bits of
// its opaque pointer (librdkafka hands the partitioner nothing else of the
// record but its key): 1 = 8 bytes, 2 = 16 bytes.
constexpr uintptr_t suffix_bits = 3;

void* tag(void* opaque, uint8_t key_suffix) {
  auto bits = key_suffix == 8 ? 1u : key_suffix == 16 ? 2u : 0u;
  return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(opaque) | bits);
}

void* untag(void* opaque) {
  return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(opaque) & ~suffix_bits);
}

size_t suffix_of(const void* opaque) {
  switch (reinterpret_cast<uintptr_t>(opaque) & suffix_bits) {
  case 1:
    return 8;
  case 2:
    return 16;
  default:
    return 0;
  }
}

} // namespace

void producer::dr_cb(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* self = static_cast<producer*>(opaque);
  if (!self->on_delivery_) {
    if (m->err) log::error("delivery failed: {}", rd_kafka_err2str(m->err));
    return;
  }
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    static const status ok;
    self->on_delivery_(untag(m->_private), ok, m->offset);
  } else {
    self->on_delivery_(
        untag(m->_private),
        from_rd(m->err, std::string{"deliver to "} + rd_kafka_topic_name(m->rkt)), -1);
  }
}

int32_t producer::partition_cb(const rd_kafka_topic_t* rkt, const void* key,
                               size_t key_len, int32_t partitions, void* rkt_opaque,
                               void* msg_opaque) {
  auto suffix = suffix_of(msg_opaque);
  if (suffix > 0 && key && key_len >= suffix)
    // Kafka Streams' WindowedStreamPartitioner: murmur2 of the plain key.
    return rd_kafka_msg_partitioner_murmur2(rkt, key, key_len - suffix, partitions,
                                            rkt_opaque, msg_opaque);
  auto* self = static_cast<producer*>(rkt_opaque);
  return self->partitioner_(rkt, key, key_len, partitions, rkt_opaque, msg_opaque);
}

void producer::error_cb(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  auto* self = static_cast<producer*>(opaque);
  status st;
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char buf[512];
    auto orig = rd_kafka_fatal_error(rk, buf, sizeof buf);
    st = status{errc::kafka_fatal,
                std::string{"producer: fatal: "} + rd_kafka_err2name(orig) + ": " + buf};
  } else {
    auto e = from_rd(static_cast<rd_kafka_resp_err_t>(err), "producer");
    st = status{e.code(), e.message() + " (" + reason + ")"};
  }
  if (self->on_error_)
    self->on_error_(st);
  else
    log::warn("{}", st.message());
}

result<std::unique_ptr<producer>>
producer::create(std::map<std::string, std::string> props, delivery_handler on_delivery,
                 error_handler on_error) {
  props.emplace("enable.idempotence", "true");
  props.emplace("linger.ms", "5");
  // librdkafka's default, named so that the default topic configuration
  // (where partition_cb goes) exists.
  props.emplace("partitioner", "consistent_random");
  auto conf = make_conf(props);
  if (!conf) return conf.error();
  std::unique_ptr<producer> p{new producer};
  p->on_delivery_ = std::move(on_delivery);
  p->on_error_ = std::move(on_error);
  // Every topic partitions through partition_cb, which hands plain keys to
  // the configured partitioner (librdkafka's default: consistent_random).
  static const std::map<std::string, partitioner_fn> partitioners{
      {"random", &rd_kafka_msg_partitioner_random},
      {"consistent", &rd_kafka_msg_partitioner_consistent},
      {"consistent_random", &rd_kafka_msg_partitioner_consistent_random},
      {"murmur2", &rd_kafka_msg_partitioner_murmur2},
      {"murmur2_random", &rd_kafka_msg_partitioner_murmur2_random},
      {"fnv1a", &rd_kafka_msg_partitioner_fnv1a},
      {"fnv1a_random", &rd_kafka_msg_partitioner_fnv1a_random}};
  auto fn = partitioners.find(props["partitioner"]);
  auto* tconf = rd_kafka_conf_get_default_topic_conf(conf->get());
  if (fn == partitioners.end() || !tconf)
    return make_error(errc::invalid_config,
                      "librdkafka property 'partitioner': '" + props["partitioner"] +
                          "' is not one of random, consistent, consistent_random, "
                          "murmur2, murmur2_random, fnv1a, fnv1a_random");
  p->partitioner_ = fn->second;
  rd_kafka_topic_conf_set_partitioner_cb(tconf, &producer::partition_cb);
  rd_kafka_topic_conf_set_opaque(tconf, p.get());
  rd_kafka_conf_set_opaque(conf->get(), p.get());
  rd_kafka_conf_set_dr_msg_cb(conf->get(), &producer::dr_cb);
  rd_kafka_conf_set_error_cb(conf->get(), &producer::error_cb);
  char err[512];
  p->rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf->get(), err, sizeof err);
  if (!p->rk_) return make_error(errc::invalid_config, std::string{"producer: "} + err);
  conf->release();
  auto* raw = p.get();
  p->poller_ = std::thread{[raw] {
    while (!raw->stop_.load(std::memory_order_relaxed))
      rd_kafka_poll(raw->rk_, 50);
  }};
  return p;
}

void producer::stop_polling() {
  stop_ = true;
  if (poller_.joinable()) poller_.join();
}

producer::~producer() {
  if (!rk_) return;
  stop_polling();
  // Purged records' delivery reports are dropped with the handle, never
  // served: their opaque pointers may already be gone.
  rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_destroy(rk_);
}

status producer::send(std::string_view topic, int32_t partition,
                      std::optional<std::string_view> key,
                      std::optional<std::string_view> value, timestamp_ms ts,
                      const std::vector<header>* headers, void* opaque,
                      uint8_t key_suffix, const header_ref* extra) {
  if (key_suffix != 0) {
    if ((key_suffix != 8 && key_suffix != 16) || !key || key->size() < key_suffix)
      return make_error(errc::invalid_argument,
                        "produce to '" + std::string{topic} + "': key_suffix " +
                            std::to_string(key_suffix) +
                            " must be 8 or 16 and no longer than the key");
    opaque = tag(opaque, key_suffix);
  }
  rd_kafka_headers_t* hdrs = nullptr;
  const size_t nheaders = (headers ? headers->size() : 0) + (extra ? 1 : 0);
  if (nheaders > 0) {
    hdrs = rd_kafka_headers_new(nheaders);
    if (headers)
      for (auto& h : *headers)
        rd_kafka_header_add(hdrs, h.key.data(), static_cast<ssize_t>(h.key.size()),
                            h.value.data(), static_cast<ssize_t>(h.value.size()));
    if (extra)
      rd_kafka_header_add(hdrs, extra->key.data(),
                          static_cast<ssize_t>(extra->key.size()), extra->value.data(),
                          static_cast<ssize_t>(extra->value.size()));
  }
  // rd_kafka_producev wants a NUL-terminated topic name.
  char name[256];
  std::string long_name;
  const char* tname = name;
  if (topic.size() < sizeof name) {
    topic.copy(name, topic.size());
    name[topic.size()] = '\0';
  } else {
    long_name.assign(topic);
    tname = long_name.c_str();
  }
  void* kptr = key ? const_cast<char*>(key->data()) : nullptr;
  size_t klen = key ? key->size() : 0;
  void* vptr = value ? const_cast<char*>(value->data()) : nullptr;
  size_t vlen = value ? value->size() : 0;
  auto err = rd_kafka_producev(
      rk_, RD_KAFKA_V_TOPIC(tname), RD_KAFKA_V_PARTITION(partition),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(kptr, klen),
      RD_KAFKA_V_VALUE(vptr, vlen), RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_HEADERS(hdrs),
      RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return {};
  if (hdrs) rd_kafka_headers_destroy(hdrs); // not taken over on failure
  if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
    return make_error(errc::queue_full, "producer queue full");
  return from_rd(err, "produce to '" + std::string{topic} + "'");
}

status producer::send(const record& r, void* opaque, const header_ref* extra) {
  std::optional<std::string_view> k, v;
  if (r.key) k = *r.key;
  if (r.value) v = *r.value;
  return send(r.topic, r.partition, k, v, r.timestamp, &r.headers, opaque, r.key_suffix,
              extra);
}

status producer::flush(int timeout_ms) {
  return from_rd(rd_kafka_flush(rk_, timeout_ms), "flush producer");
}

status producer::learn_topics(const std::vector<std::string>& topics, int timeout_ms) {
  using namespace std::chrono;
  auto deadline = steady_clock::now() + milliseconds(timeout_ms);
  std::string unknown;
  for (auto& topic : topics) {
    auto* rkt = rd_kafka_topic_new(rk_, topic.c_str(), nullptr);
    bool known = false;
    std::string why = "no topic handle";
    for (int attempt = 1; rkt && !known; ++attempt) {
      auto left = duration_cast<milliseconds>(deadline - steady_clock::now()).count();
      if (left <= 0) break;
      const rd_kafka_metadata_t* md = nullptr;
      auto err = rd_kafka_metadata(rk_, 0, rkt, &md,
                                   static_cast<int>(std::min<int64_t>(left, 5000)));
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        why = rd_kafka_err2str(err);
      } else if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR ||
                 md->topics[0].partition_cnt == 0) {
        why = md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err)
                                 : "not in the answer";
      } else {
        known = true;
        for (int p = 0; p < md->topics[0].partition_cnt; ++p)
          if (md->topics[0].partitions[p].leader < 0)
            known = false, why = "no leader yet";
      }
      if (md) rd_kafka_metadata_destroy(md);
      if (!known) { // the broker's metadata catches up with a new topic: ask again
        auto rest = duration_cast<milliseconds>(deadline - steady_clock::now()).count();
        std::this_thread::sleep_for(
            milliseconds(std::clamp<int64_t>(rest, 0, std::min(50 * attempt, 500))));
      }
    }
    if (rkt) rd_kafka_topic_destroy(rkt);
    if (!known) unknown += (unknown.empty() ? "" : ", ") + topic + " (" + why + ")";
  }
  if (!unknown.empty())
    return make_error(errc::timed_out, "producer: no partitions known for " + unknown +
                                           " after " + std::to_string(timeout_ms) +
                                           " ms");
  return {};
}

int producer::outstanding() const {
  return rd_kafka_outq_len(rk_);
}

status producer::init_transactions(int timeout_ms) {
  return from_rd(rd_kafka_init_transactions(rk_, timeout_ms), "init transactions");
}

status producer::begin_transaction() {
  return from_rd(rd_kafka_begin_transaction(rk_), "begin transaction");
}

status producer::send_offsets_to_transaction(
    const std::vector<std::pair<topic_partition, weft::offset>>& offsets,
    consumer& source, int timeout_ms) {
  auto l = make_tp_list(offsets);
  auto* meta = rd_kafka_consumer_group_metadata(source.handle());
  auto st = from_rd(rd_kafka_send_offsets_to_transaction(rk_, l.get(), meta, timeout_ms),
                    "send offsets to transaction");
  rd_kafka_consumer_group_metadata_destroy(meta);
  return st;
}

status producer::commit_transaction(int timeout_ms) {
  return from_rd(rd_kafka_commit_transaction(rk_, timeout_ms), "commit transaction");
}

status producer::abort_transaction(int timeout_ms) {
  return from_rd(rd_kafka_abort_transaction(rk_, timeout_ms), "abort transaction");
}

} // namespace weft::kafka
