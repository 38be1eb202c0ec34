#include "weft/kafka/consumer.hpp"

#include <map>
#include <mutex>
#include <set>

#include "weft/kafka/client_config.hpp"
#include "weft/kafka/error.hpp"
#include "weft/log.hpp"

namespace weft::kafka {

// -- message_batch -------------------------------------------------------------

message_batch::~message_batch() {
  for (auto* m : msgs_)
    rd_kafka_message_destroy(m);
}

record_view message_batch::view(size_t i) const {
  auto* m = msgs_[i];
  record_view v;
  v.topic = rd_kafka_topic_name(m->rkt);
  v.partition = partition_id{m->partition};
  v.offset = weft::offset{m->offset};
  v.timestamp = rd_kafka_message_timestamp(m, nullptr);
  if (m->key) v.key = std::string_view{static_cast<const char*>(m->key), m->key_len};
  if (m->payload)
    v.value = std::string_view{static_cast<const char*>(m->payload), m->len};
  rd_kafka_headers_t* hdrs = nullptr;
  if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) v.headers_ = hdrs;
  return v;
}

weft::offset message_batch::next_offset() const {
  return msgs_.empty() ? weft::offset{-1} : weft::offset{msgs_.back()->offset + 1};
}

// -- partition_queue -----------------------------------------------------------

partition_queue::partition_queue(rd_kafka_t* rk, rd_kafka_queue_t* q, topic_partition tp)
  : rk_(rk), q_(q), tp_(std::move(tp)) {}

namespace {

// Every handle librdkafka gives for one partition's fetch queue shares the
// queue's one event callback. A plan made while an older plan of the same
// partition is still being torn down (a roll-back racing an added unit)
// holds two handles at once: the older one, destroyed later, must neither
// switch off the newer one's callback nor leave it pointing at freed memory.
// So the callback belongs to the handle that set it last.
std::mutex callback_owners_mu;
std::map<std::pair<rd_kafka_t*, topic_partition>, const partition_queue*> callback_owners;

} // namespace

partition_queue::~partition_queue() {
  {
    std::lock_guard<std::mutex> guard{callback_owners_mu};
    auto i = callback_owners.find({rk_, tp_});
    if (i != callback_owners.end() && i->second == this) {
      rd_kafka_queue_cb_event_enable(q_, nullptr, nullptr);
      callback_owners.erase(i);
    }
  }
  rd_kafka_queue_destroy(q_);
}

size_t partition_queue::drain(message_batch& out, size_t max, status* error) {
  auto& v = out.messages();
  const size_t before = v.size();
  size_t kept = before;
  int64_t again_from = -1, again_to = -1, again = 0;
  // Until a record is kept or the queue is empty: a caller takes 0 for "no
  // more now" and waits for the queue's wake-up, which comes only when
  // something new arrives, so records left behind a batch of dropped
  // duplicates (a rewound fetch) would wait for good.
  while (kept == before) {
    v.resize(before + max);
    auto n = rd_kafka_consume_batch_queue(q_, 0, v.data() + before, max);
    if (n <= 0) {
      v.resize(before);
      if (n < 0 && error)
        *error = from_rd(rd_kafka_last_error(), "consume " + to_string(tp_));
      break;
    }
    // Error events come as messages with err set: drop them from the batch.
    for (size_t i = before; i < before + static_cast<size_t>(n); ++i) {
      auto* m = v[i];
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (m->offset < next_) {
          if (again++ == 0) again_from = m->offset;
          again_to = m->offset;
          rd_kafka_message_destroy(m);
          continue;
        }
        next_ = m->offset + 1;
        // librdkafka parses a consumed message's headers on the first ask
        // and keeps them in the message; ask here, on the one thread that
        // drains, so views taken by several tasks at once (a partition
        // feeding several services) only read them: two first asks at once
        // raced (each parsed, one copy leaked).
        rd_kafka_headers_t* parsed = nullptr;
        (void)rd_kafka_message_headers(m, &parsed);
        v[kept++] = m;
        continue;
      }
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        // The fetch reached the end at this offset; the records before it
        // are ahead of the event in the queue, so they were drained already.
        eof_ = std::max(eof_, static_cast<int64_t>(m->offset));
      } else {
        auto st = from_rd(m->err, "fetch " + to_string(tp_));
        log::warn("{} ({})", st.message(), rd_kafka_message_errstr(m));
        if (error) *error = std::move(st);
      }
      rd_kafka_message_destroy(m);
    }
    v.resize(kept);
  }
  if (again > 0)
    log::warn("{}: dropped {} records at offsets {}..{}, below the committed offset "
              "or delivered before (the fetch rewound; next expected offset {})",
              to_string(tp_), again, again_from, again_to, next_);
  return kept - before;
}

size_t partition_queue::size() const {
  return rd_kafka_queue_length(q_);
}

bool partition_queue::at_end() const {
  if (eof_ >= 0 && eof_ >= next_) return true;
  if (next_ < 0) return false; // nothing drained: the start offset is unknown here
  int64_t lo = -1, hi = -1;
  if (rd_kafka_get_watermark_offsets(rk_, tp_.topic.c_str(), tp_.partition.value(), &lo,
                                     &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      hi < 0)
    return false;
  if (next_ >= hi) return true;
  // A read_committed reader is not handed the commit marker that ends a
  // transactional topic, but its position moves past it as the queue is
  // drained (see shard::restore_all): at the high watermark there is nothing
  // left (an open transaction keeps the position below it).
  auto l = make_tp_list({{tp_, weft::offset{RD_KAFKA_OFFSET_INVALID}}});
  if (rd_kafka_position(rk_, l.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) return false;
  return l->elems[0].offset >= hi;
}

void partition_queue::trampoline(rd_kafka_t*, void* opaque) {
  (*static_cast<std::function<void()>*>(opaque))();
}

void partition_queue::on_ready(std::function<void()> wake) {
  std::lock_guard<std::mutex> guard{callback_owners_mu};
  auto key = std::make_pair(rk_, tp_);
  if (!wake) {
    auto i = callback_owners.find(key);
    if (i != callback_owners.end() && i->second == this) {
      rd_kafka_queue_cb_event_enable(q_, nullptr, nullptr);
      callback_owners.erase(i);
    }
    if (wake_) retired_.push_back(std::move(wake_));
    return;
  }
  auto fn = std::make_unique<std::function<void()>>(std::move(wake));
  rd_kafka_queue_cb_event_enable(q_, &partition_queue::trampoline, fn.get());
  callback_owners[key] = this;
  // The previous callback object may still be in use by a librdkafka thread
  // for a moment; keeping it alive until this queue dies is simpler than
  // synchronising, and on_ready is called at most a few times per queue.
  if (wake_) retired_.push_back(std::move(wake_));
  wake_ = std::move(fn);
}

// -- consumer ------------------------------------------------------------------

tp_list_ptr
make_tp_list(const std::vector<std::pair<topic_partition, weft::offset>>& offs) {
  tp_list_ptr l{rd_kafka_topic_partition_list_new(static_cast<int>(offs.size()))};
  for (auto& [tp, off] : offs)
    rd_kafka_topic_partition_list_add(l.get(), tp.topic.c_str(), tp.partition.value())
        ->offset = off.value();
  return l;
}

void consumer::error_cb(rd_kafka_t*, int err, const char* reason, void* opaque) {
  auto* self = static_cast<consumer*>(opaque);
  auto st = from_rd(static_cast<rd_kafka_resp_err_t>(err), "consumer");
  if (self->on_error_)
    self->on_error_(status{st.code(), st.message() + " (" + reason + ")"});
  else
    log::warn("{} ({})", st.message(), reason);
}

result<std::unique_ptr<consumer>>
consumer::create(std::map<std::string, std::string> props, error_handler on_error) {
  if (props.find("group.id") == props.end())
    return make_error(errc::invalid_config, "consumer needs group.id");
  props.emplace("enable.auto.commit", "false");
  props.emplace("auto.offset.reset", "earliest");
  // Partition queues learn from it that a partition is at its end
  // (partition_queue::at_end); drain() and poll_events() drop the events.
  props.emplace("enable.partition.eof", "true");
  auto conf = make_conf(props);
  if (!conf) return conf.error();
  std::unique_ptr<consumer> c{new consumer};
  c->on_error_ = std::move(on_error);
  rd_kafka_conf_set_opaque(conf->get(), c.get());
  rd_kafka_conf_set_error_cb(conf->get(), &consumer::error_cb);
  char err[512];
  c->rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf->get(), err, sizeof err);
  if (!c->rk_) return make_error(errc::invalid_config, std::string{"consumer: "} + err);
  conf->release(); // owned by rk_ now
  rd_kafka_poll_set_consumer(c->rk_);
  c->main_q_ = rd_kafka_queue_get_consumer(c->rk_);
  return c;
}

consumer::~consumer() {
  if (!rk_) return;
  (void)close();
  if (main_q_) rd_kafka_queue_destroy(main_q_);
  rd_kafka_destroy(rk_);
}

status consumer::assign(const std::vector<topic_partition>& tps) {
  std::vector<std::pair<topic_partition, weft::offset>> offs;
  for (auto& tp : tps)
    offs.emplace_back(tp, weft::offset{RD_KAFKA_OFFSET_INVALID});
  auto l = make_tp_list(offs);
  return from_rd(rd_kafka_assign(rk_, l.get()), "assign");
}

static_assert(consumer::committed_offset == RD_KAFKA_OFFSET_INVALID);

status consumer::incremental_assign(const std::vector<topic_partition>& tps) {
  std::vector<std::pair<topic_partition, weft::offset>> offs;
  for (auto& tp : tps)
    offs.emplace_back(tp, weft::offset{RD_KAFKA_OFFSET_INVALID});
  return incremental_assign_at(offs);
}

status consumer::incremental_assign_at(
    const std::vector<std::pair<topic_partition, weft::offset>>& start) {
  if (start.empty()) return {};
  auto l = make_tp_list(start);
  auto* err = rd_kafka_incremental_assign(rk_, l.get());
  if (!err) return {};
  auto st = make_error(errc::kafka,
                       std::string{"incremental assign: "} + rd_kafka_error_string(err));
  rd_kafka_error_destroy(err);
  return st;
}

status consumer::incremental_unassign(const std::vector<topic_partition>& tps) {
  if (tps.empty()) return {};
  // Only what is assigned: librdkafka fails the whole call for one that is not.
  rd_kafka_topic_partition_list_t* current = nullptr;
  if (auto e = rd_kafka_assignment(rk_, &current); e)
    return from_rd(e, "reading the assignment");
  // Once each: librdkafka 2.0.2 asserts (aborts the process) on a partition
  // listed twice.
  std::set<topic_partition> unique;
  std::vector<std::pair<topic_partition, weft::offset>> drop;
  for (auto& tp : tps)
    if (unique.insert(tp).second && rd_kafka_topic_partition_list_find(
                                        current, tp.topic.c_str(), tp.partition.value()))
      drop.emplace_back(tp, weft::offset{RD_KAFKA_OFFSET_INVALID});
  rd_kafka_topic_partition_list_destroy(current);
  if (drop.empty()) return {};
  auto l = make_tp_list(drop);
  auto* err = rd_kafka_incremental_unassign(rk_, l.get());
  if (!err) return {};
  auto st = make_error(errc::kafka, std::string{"incremental unassign: "} +
                                        rd_kafka_error_string(err));
  rd_kafka_error_destroy(err);
  return st;
}

status
consumer::assign_at(const std::vector<std::pair<topic_partition, weft::offset>>& start) {
  if (start.empty()) return from_rd(rd_kafka_assign(rk_, nullptr), "unassign");
  auto l = make_tp_list(start);
  return from_rd(rd_kafka_assign(rk_, l.get()), "assign");
}

std::unique_ptr<partition_queue> consumer::take_queue(const topic_partition& tp) {
  auto* q = rd_kafka_queue_get_partition(rk_, tp.topic.c_str(), tp.partition.value());
  if (!q) return nullptr;
  rd_kafka_queue_forward(q, nullptr);
  return std::make_unique<partition_queue>(rk_, q, tp);
}

status
consumer::commit(const std::vector<std::pair<topic_partition, weft::offset>>& offsets,
                 bool async) {
  if (offsets.empty()) return {};
  auto l = make_tp_list(offsets);
  return from_rd(rd_kafka_commit(rk_, l.get(), async ? 1 : 0), "commit offsets");
}

status consumer::commit_sync(
    const std::vector<std::pair<topic_partition, weft::offset>>& offsets,
    int timeout_ms) {
  if (offsets.empty()) return {};
  auto l = make_tp_list(offsets);
  auto* q = rd_kafka_queue_new(rk_);
  auto err = rd_kafka_commit_queue(rk_, l.get(), q, nullptr, nullptr);
  status st = from_rd(err, "commit offsets");
  if (st.ok()) {
    auto* ev = rd_kafka_queue_poll(q, timeout_ms);
    if (!ev)
      st = make_error(errc::timed_out, "commit offsets: no answer within " +
                                           std::to_string(timeout_ms) + " ms");
    else {
      st = from_rd(rd_kafka_event_error(ev), "commit offsets");
      rd_kafka_event_destroy(ev);
    }
  }
  rd_kafka_queue_destroy(q);
  return st;
}

status consumer::pause(const topic_partition& tp) {
  auto l = make_tp_list({{tp, weft::offset{0}}});
  return from_rd(rd_kafka_pause_partitions(rk_, l.get()), "pause " + to_string(tp));
}

status consumer::resume(const topic_partition& tp) {
  auto l = make_tp_list({{tp, weft::offset{0}}});
  return from_rd(rd_kafka_resume_partitions(rk_, l.get()), "resume " + to_string(tp));
}

void consumer::poll_events(int timeout_ms) {
  auto* m = rd_kafka_consumer_poll(rk_, timeout_ms);
  if (!m) return;
  if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    auto st = from_rd(m->err, "consumer");
    if (on_error_)
      on_error_(
          status{st.code(), st.message() + " (" + rd_kafka_message_errstr(m) + ")"});
    else
      log::warn("{}", st.message());
  }
  // A data message here means a partition was not split off: a weft bug.
  rd_kafka_message_destroy(m);
}

result<int> consumer::partition_count(const std::string& topic, int timeout_ms) {
  return topic_partition_count(rk_, topic, timeout_ms);
}

int64_t consumer::position(const topic_partition& tp) {
  auto l = make_tp_list({{tp, weft::offset{RD_KAFKA_OFFSET_INVALID}}});
  if (rd_kafka_position(rk_, l.get()) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return RD_KAFKA_OFFSET_INVALID;
  return l->elems[0].offset;
}

result<std::pair<int64_t, int64_t>> consumer::watermarks(const topic_partition& tp,
                                                         int timeout_ms) {
  int64_t lo = 0, hi = 0;
  auto err = rd_kafka_query_watermark_offsets(rk_, tp.topic.c_str(), tp.partition.value(),
                                              &lo, &hi, timeout_ms);
  if (err) return from_rd(err, "watermarks of " + to_string(tp));
  return std::make_pair(lo, hi);
}

result<std::vector<int64_t>> consumer::committed(const std::vector<topic_partition>& tps,
                                                 int timeout_ms) {
  std::vector<std::pair<topic_partition, weft::offset>> offs;
  for (auto& tp : tps)
    offs.emplace_back(tp, weft::offset{RD_KAFKA_OFFSET_INVALID});
  auto l = make_tp_list(offs);
  if (auto err = rd_kafka_committed(rk_, l.get(), timeout_ms))
    return from_rd(err, "committed offsets");
  std::vector<int64_t> out;
  for (int i = 0; i < l->cnt; ++i)
    // A partition-level error (e.g. UNSTABLE_OFFSET_COMMIT): unknown.
    out.push_back(l->elems[i].err ? RD_KAFKA_OFFSET_INVALID : l->elems[i].offset);
  return out;
}

status consumer::close() {
  if (closed_ || !rk_) return {};
  closed_ = true;
  return from_rd(rd_kafka_consumer_close(rk_), "close consumer");
}

} // namespace weft::kafka
