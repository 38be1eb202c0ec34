#include "subscription_source.hpp"

#include <algorithm>
#include <chrono>

#include <weft/log.hpp>

namespace sidecar {

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

} // namespace

weft::result<std::unique_ptr<subscription_source>>
subscription_source::create(const subscription_spec& s,
                            std::map<std::string, std::string> props,
                            const std::string& application_id,
                            const std::string& static_member_id) {
  std::unique_ptr<subscription_source> src{new subscription_source};
  src->topic_ = s.topic;
  src->group_ = application_id + "-sub-" + s.name;
  props["group.id"] = src->group_;
  props["auto.offset.reset"] = s.start;
  props["enable.auto.commit"] = "false";
  props["enable.auto.offset.store"] = "false";
  props["enable.partition.eof"] = "false";
  // librdkafka 2.0.2's default is 45 s: the partitions of a sidecar killed
  // without a static id would wait that long for another member.
  props.try_emplace("session.timeout.ms", "10000");
  props.try_emplace("heartbeat.interval.ms", "1000");
  if (!static_member_id.empty())
    props["group.instance.id"] = src->group_ + "-" + static_member_id;
  auto c = weft::kafka::consumer::create(std::move(props), [name = s.name](const weft::status& st) {
    weft::log::warn("subscription {}: {}", name, st.message());
  });
  if (!c) return c.error();
  src->consumer_ = std::move(*c);
  auto* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, s.topic.c_str(), RD_KAFKA_PARTITION_UA);
  auto err = rd_kafka_subscribe(src->consumer_->handle(), topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err)
    return weft::make_error(weft::errc::kafka, "subscription " + s.name + ": subscribe to " +
                                                   s.topic + ": " + rd_kafka_err2str(err));
  src->last_commit_ms_ = now_ms();
  return src;
}

subscription_source::~subscription_source() {
  if (!consumer_) return;
  if (auto st = commit_sync(5000); !st)
    weft::log::warn("subscription group {}: final commit: {}", group_, st.message());
  (void)consumer_->close();
}

void subscription_source::poll(weft::kafka::message_batch& out, size_t max,
                               int timeout_ms) {
  auto* rk = consumer_->handle();
  int wait = timeout_ms;
  while (out.size() < max) {
    auto* m = rd_kafka_consumer_poll(rk, wait);
    if (!m) return;
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        weft::log::warn("subscription group {}: {}", group_, rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      return;
    }
    out.messages().push_back(m);
    wait = 0; // take what is there, without waiting for more
  }
}

void subscription_source::mark(int32_t partition, int64_t offset) {
  auto& next = marked_[partition];
  next = std::max(next, offset + 1);
}

void subscription_source::commit(int64_t interval_ms, bool force) {
  const auto now = now_ms();
  if (!force && now - last_commit_ms_ < interval_ms) return;
  last_commit_ms_ = now;
  std::vector<std::pair<weft::topic_partition, weft::offset>> offs;
  for (auto& [p, o] : marked_)
    if (committed_[p] != o)
      offs.emplace_back(weft::topic_partition{topic_, weft::partition_id{p}}, weft::offset{o});
  if (offs.empty()) return;
  if (auto st = consumer_->commit(offs, true); !st)
    weft::log::warn("subscription group {}: commit: {}", group_, st.message());
  for (auto& [tp, o] : offs)
    committed_[tp.partition.value()] = o.value();
}

weft::status subscription_source::commit_sync(int timeout_ms) {
  std::vector<std::pair<weft::topic_partition, weft::offset>> offs;
  for (auto& [p, o] : marked_)
    offs.emplace_back(weft::topic_partition{topic_, weft::partition_id{p}}, weft::offset{o});
  if (offs.empty()) return {};
  auto st = consumer_->commit_sync(offs, timeout_ms);
  if (st)
    for (auto& [tp, o] : offs)
      committed_[tp.partition.value()] = o.value();
  return st;
}

std::vector<int32_t> subscription_source::assignment() {
  std::vector<int32_t> out;
  rd_kafka_topic_partition_list_t* l = nullptr;
  if (rd_kafka_assignment(consumer_->handle(), &l) != RD_KAFKA_RESP_ERR_NO_ERROR) return out;
  for (int i = 0; i < l->cnt; ++i)
    out.push_back(l->elems[i].partition);
  rd_kafka_topic_partition_list_destroy(l);
  return out;
}

void subscription_source::retain(const std::vector<int32_t>& partitions) {
  auto keep = [&](int32_t p) {
    return std::find(partitions.begin(), partitions.end(), p) != partitions.end();
  };
  for (auto* m : {&marked_, &committed_})
    for (auto i = m->begin(); i != m->end();)
      i = keep(i->first) ? std::next(i) : m->erase(i);
}

} // namespace sidecar
