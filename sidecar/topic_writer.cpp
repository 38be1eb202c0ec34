#include "topic_writer.hpp"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include <weft/kafka/admin.hpp>
#include <weft/kafka/producer.hpp>
#include <weft/log.hpp>
#include <weft/services/partitioner.hpp>

namespace sidecar {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

std::string digest_of(const std::string& bytes) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

namespace {

/// One record's delivery report.
struct slot {
  weft::status st;
  int64_t offset = -1;
  bool done = false;
};

struct pending {
  write_request req;
  std::promise<weft::result<write_outcome>> done;
  std::vector<int32_t> partitions; ///< per record, resolved by the writer
};

/// What the id record keeps of a write: enough to answer its retries.
json id_record(const write_request& r, const json& offsets) {
  return json{{"digest", r.digest}, {"topic", r.topic}, {"offsets", offsets}};
}

} // namespace

struct topic_writer::impl {
  std::map<std::string, std::string> props;
  std::string requests;
  const table_reader* reader = nullptr;
  std::chrono::milliseconds timeout{10000};
  std::unique_ptr<weft::kafka::producer> producer;
  std::unique_ptr<weft::kafka::admin> admin;
  std::map<std::string, int> partition_counts; ///< writer thread only
  uint32_t round_robin = 0;

  // Delivery reports of the open transaction.
  std::mutex dr_mu;
  std::condition_variable dr_cv;
  size_t dr_done = 0;

  // Requests queued for the writer, and ids in flight or written lately.
  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<std::shared_ptr<pending>> queue;
  bool stopping = false;
  std::map<std::string, std::shared_future<weft::result<write_outcome>>> in_flight;
  /// Ids this process committed, until the table surely has them (a minute).
  std::map<std::string, std::pair<json, clock_type::time_point>> recent;
  writer_counters counters;
  std::thread thread;

  weft::status start_producer() {
    producer.reset();
    auto p = weft::kafka::producer::create(
        props, [this](void* opaque, const weft::status& st, int64_t offset) {
          auto* s = static_cast<slot*>(opaque);
          std::lock_guard<std::mutex> lock{dr_mu};
          s->st = st;
          s->offset = offset;
          s->done = true;
          ++dr_done;
          dr_cv.notify_all();
        });
    if (!p) return p.error();
    producer = std::move(*p);
    return producer->init_transactions(static_cast<int>(timeout.count()));
  }

  weft::result<int> partitions_of(const std::string& topic) {
    auto i = partition_counts.find(topic);
    if (i != partition_counts.end()) return i->second;
    auto n = admin->partition_count(topic, static_cast<int>(timeout.count()));
    if (!n) return n.error();
    partition_counts[topic] = *n;
    return *n;
  }

  /// Fulfils a request and lets its id be written again (by a retry after
  /// a failure) or found (in `recent`, after a success).
  void finish(pending& p, weft::result<write_outcome> out) {
    std::lock_guard<std::mutex> lock{mu};
    if (out && !p.req.id.empty())
      recent[p.req.id] = {id_record(p.req, out->body["offsets"]), clock_type::now()};
    if (!p.req.id.empty()) in_flight.erase(p.req.id);
    p.done.set_value(std::move(out));
  }

  /// Writes one batch of requests in one transaction; fulfils every promise.
  void write_batch(std::vector<std::shared_ptr<pending>>& batch) {
    // Resolve partitions first (a missing topic fails its request alone).
    std::vector<std::shared_ptr<pending>> ok;
    for (auto& p : batch) {
      auto n = partitions_of(p->req.topic);
      if (!n) {
        finish(*p, n.error());
        continue;
      }
      for (auto& r : p->req.records) {
        if (r.partition >= *n) {
          p->partitions.clear();
          break;
        }
        p->partitions.push_back(r.partition >= 0 ? r.partition
                                : r.key          ? weft::partition_for(*r.key, *n)
                                                 : static_cast<int32_t>(round_robin++ % *n));
      }
      if (p->partitions.size() != p->req.records.size()) {
        finish(*p, weft::make_error(
            weft::errc::invalid_argument,
            "partition: topic '" + p->req.topic + "' has " + std::to_string(*n) +
                " partitions (0 to " + std::to_string(*n - 1) + ")"));
        continue;
      }
      ok.push_back(p);
    }
    if (ok.empty()) return;
    auto fail_all = [&](const weft::status& st) {
      for (auto& p : ok)
        finish(*p, st);
    };
    if (auto st = producer->begin_transaction(); !st) {
      weft::log::warn("sidecar writes: begin_transaction: {}", st.message());
      (void)start_producer();
      return fail_all(st);
    }
    std::vector<std::vector<slot>> slots(ok.size());
    size_t sent = 0;
    {
      std::lock_guard<std::mutex> lock{dr_mu};
      dr_done = 0;
    }
    const auto deadline = clock_type::now() + timeout;
    weft::status failed;
    for (size_t i = 0; i < ok.size() && failed.ok(); ++i) {
      auto& p = *ok[i];
      slots[i].resize(p.req.records.size());
      for (size_t j = 0; j < p.req.records.size() && failed.ok(); ++j) {
        auto r = p.req.records[j];
        r.partition = p.partitions[j];
        for (;;) {
          auto st = producer->send(r, &slots[i][j]);
          if (st.ok()) {
            ++sent;
            break;
          }
          if (st.code() != weft::errc::queue_full || clock_type::now() > deadline) {
            failed = st;
            break;
          }
          // The queue drains as deliveries come back: wait for one (bounded).
          std::unique_lock<std::mutex> lock{dr_mu};
          dr_cv.wait_for(lock, std::chrono::milliseconds(10));
        }
      }
    }
    // Every record acknowledged before the ids are written: their offsets go
    // into the id records.
    if (failed.ok()) {
      std::unique_lock<std::mutex> lock{dr_mu};
      if (!dr_cv.wait_until(lock, deadline, [&] { return dr_done >= sent; }))
        failed = weft::make_error(weft::errc::timed_out,
                                  "Kafka did not acknowledge the records in " +
                                      std::to_string(timeout.count()) + " ms");
    }
    std::vector<json> offsets(ok.size(), json::array());
    for (size_t i = 0; i < ok.size() && failed.ok(); ++i)
      for (size_t j = 0; j < slots[i].size(); ++j) {
        auto& s = slots[i][j];
        if (!s.st.ok()) {
          failed = s.st;
          break;
        }
        offsets[i].push_back({{"partition", ok[i]->partitions[j]}, {"offset", s.offset}});
      }
    std::vector<slot> id_slots(ok.size());
    for (size_t i = 0; i < ok.size() && failed.ok(); ++i) {
      if (ok[i]->req.id.empty()) continue;
      auto st = producer->send(requests, -1, ok[i]->req.id,
                               id_record(ok[i]->req, offsets[i]).dump(), 0, nullptr,
                               &id_slots[i]);
      if (!st) failed = st;
    }
    if (failed.ok()) failed = producer->commit_transaction(static_cast<int>(timeout.count()));
    if (!failed.ok()) {
      weft::log::warn("sidecar writes: a transaction of {} requests failed: {}", ok.size(),
                      failed.message());
      auto st = producer->abort_transaction(static_cast<int>(timeout.count()));
      if (!st.ok() || failed.code() == weft::errc::kafka_fatal) {
        weft::log::warn("sidecar writes: renewing the producer ({})", st.message());
        if (auto s2 = start_producer(); !s2)
          weft::log::error("sidecar writes: producer: {}", s2.message());
      }
      {
        std::lock_guard<std::mutex> lock{mu};
        ++counters.aborted;
      }
      return fail_all(failed);
    }
    {
      std::lock_guard<std::mutex> lock{mu};
      ++counters.transactions;
    }
    for (size_t i = 0; i < ok.size(); ++i) {
      auto& p = *ok[i];
      write_outcome out;
      out.body = json{{"topic", p.req.topic}, {"offsets", offsets[i]}};
      if (!p.req.id.empty()) out.body["id"] = p.req.id;
      {
        std::lock_guard<std::mutex> lock{mu};
        counters.records += p.req.records.size();
      }
      finish(p, std::move(out));
    }
    std::lock_guard<std::mutex> lock{mu};
    const auto now = clock_type::now();
    if (recent.size() > 100000)
      for (auto i = recent.begin(); i != recent.end();)
        i = now - i->second.second > std::chrono::minutes(1) ? recent.erase(i) : std::next(i);
  }

  void run() {
    for (;;) {
      std::vector<std::shared_ptr<pending>> batch;
      {
        std::unique_lock<std::mutex> lock{mu};
        cv.wait(lock, [&] { return stopping || !queue.empty(); });
        if (stopping) break;
        // Up to 500 requests per transaction: one commit serves them all.
        while (!queue.empty() && batch.size() < 500) {
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
      }
      write_batch(batch);
    }
    std::deque<std::shared_ptr<pending>> left;
    {
      std::lock_guard<std::mutex> lock{mu};
      left.swap(queue);
    }
    for (auto& p : left)
      finish(*p, weft::make_error(weft::errc::shutting_down, "the sidecar stops"));
  }

  /// The answer to a request whose id was written before.
  weft::result<write_outcome> replay(const write_request& r, const json& stored) {
    std::lock_guard<std::mutex> lock{mu};
    if (stored.value("digest", "") != r.digest || stored.value("topic", "") != r.topic) {
      ++counters.conflicts;
      write_outcome out;
      out.http_status = 409;
      out.body = json{{"error", "id '" + r.id + "' was used for another request"}};
      return out;
    }
    ++counters.replayed;
    write_outcome out;
    out.http_status = 200;
    out.body = json{{"topic", r.topic},
                    {"offsets", stored.value("offsets", json::array())},
                    {"id", r.id},
                    {"replayed", true}};
    return out;
  }
};

weft::result<std::unique_ptr<topic_writer>>
topic_writer::create(std::map<std::string, std::string> props,
                     const std::string& application_id, const std::string& node_id,
                     const table_reader& reader, int64_t timeout_ms) {
  std::unique_ptr<topic_writer> w{new topic_writer};
  w->impl_ = std::make_unique<impl>();
  auto& m = *w->impl_;
  auto admin_props = props;
  props["transactional.id"] = application_id + "-sidecar-" + node_id;
  // A sidecar killed mid-transaction with another node.id next time holds
  // readers back this long at most.
  props.try_emplace("transaction.timeout.ms", "10000");
  // The application waits for its write: send at once rather than batch long.
  props.try_emplace("linger.ms", "1");
  m.props = std::move(props);
  m.requests = requests_topic(application_id);
  m.reader = &reader;
  m.timeout = std::chrono::milliseconds(timeout_ms);
  for (auto k : {"partitioner", "transactional.id", "transaction.timeout.ms", "linger.ms",
                 "enable.idempotence", "acks"})
    admin_props.erase(k);
  auto a = weft::kafka::admin::create(admin_props);
  if (!a) return a.error();
  m.admin = std::move(*a);
  if (auto st = m.start_producer(); !st) return st;
  m.thread = std::thread{[&m] { m.run(); }};
  return w;
}

topic_writer::~topic_writer() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> lock{impl_->mu};
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

writer_counters topic_writer::counters() const {
  std::lock_guard<std::mutex> lock{impl_->mu};
  return impl_->counters;
}

weft::result<write_outcome> topic_writer::write(write_request r) {
  auto& m = *impl_;
  const auto deadline = clock_type::now() + m.timeout;
  auto mine = std::make_shared<pending>();
  std::shared_future<weft::result<write_outcome>> done = mine->done.get_future().share();
  const std::string id = r.id;
  {
    std::lock_guard<std::mutex> lock{m.mu};
    ++m.counters.requests;
  }
  if (!id.empty()) {
    for (;;) {
      std::shared_future<weft::result<write_outcome>> other;
      std::optional<json> known;
      {
        std::lock_guard<std::mutex> lock{m.mu};
        if (auto i = m.recent.find(id); i != m.recent.end()) {
          known = i->second.first;
        } else if (auto f = m.in_flight.find(id); f != m.in_flight.end()) {
          other = f->second;
        } else {
          m.in_flight.emplace(id, done); // the writer erases it when done
          break;
        }
      }
      if (known) return m.replay(r, *known);
      // The same id is being written by another request of this node.
      if (other.wait_until(deadline) != std::future_status::ready)
        return weft::make_error(weft::errc::timed_out,
                                "a request with id '" + id + "' is still being written");
    }
    auto stored = m.reader->get(requests_store, id);
    std::optional<weft::result<write_outcome>> answer;
    if (!stored) {
      answer = weft::result<write_outcome>{stored.error()};
    } else if (!*stored && !m.reader->caught_up(requests_store)) {
      // The id may be in Kafka and not yet in the table (a restart).
      answer = weft::result<write_outcome>{weft::make_error(
          weft::errc::state_not_ready,
          "the table of write ids is still reading its topic after a restart; retry")};
    } else if (*stored) {
      auto v = json::parse(**stored, nullptr, false);
      answer = v.is_discarded() ? weft::result<write_outcome>{weft::make_error(
                                      weft::errc::internal, "corrupt id record")}
                                : m.replay(r, v);
    }
    if (answer) {
      mine->done.set_value(*answer);
      std::lock_guard<std::mutex> lock{m.mu};
      m.in_flight.erase(id);
      return *answer;
    }
  }
  {
    std::lock_guard<std::mutex> lock{m.mu};
    mine->req = std::move(r);
    m.queue.push_back(mine);
  }
  m.cv.notify_one();
  if (done.wait_until(deadline) != std::future_status::ready)
    return weft::make_error(weft::errc::timed_out,
                            "Kafka did not acknowledge the write in time; retry with the "
                            "same id");
  return done.get();
}

} // namespace sidecar
