#include "weft/state/shard.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>
#include <tuple>

#include "weft/kafka/consumer.hpp"
#include "weft/log.hpp"
#include "weft/state/epoch_group.hpp"
#include "weft/state/layered_store.hpp"

namespace weft::state {

store_factory::~store_factory() = default;

std::string changelog_topic(const std::string& app, const std::string& store) {
  return app + "-" + store + "-changelog";
}

shard::~shard() = default;

result<std::unique_ptr<shard>> shard::open(store_factory& factory, const std::string& dir,
                                           const std::string& app, int32_t partition,
                                           const std::vector<store_spec>& specs,
                                           changelog_sink* sink, bool transactional) {
  std::unique_ptr<shard> sh{new shard};
  if (transactional) sh->epochs_ = std::make_unique<epoch_group>();
  auto* epochs = sh->epochs_.get();
  sh->app_ = app;
  sh->partition_ = partition;
  sh->specs_ = specs;
  for (auto& s : specs) {
    auto store_dir = dir + "/" + app + "/" + std::to_string(partition) + "/" + s.name;
    std::error_code ec;
    std::filesystem::create_directories(store_dir, ec);
    if (ec)
      return make_error(errc::io, "cannot create state folder '" + store_dir +
                                      "': " + ec.message() + " (check state.dir)");
    entry e;
    e.spec = s;
    e.delivered = std::make_shared<std::atomic<int64_t>>(-1);
    switch (s.type) {
    case store_spec::kind::kv: {
      auto st = factory.kv(store_dir, s, sink, epochs);
      if (!st) return st.error();
      e.kv = std::move(*st);
      e.checkpointed = e.kv->checkpoint();
      break;
    }
    case store_spec::kind::window: {
      auto st = factory.window(store_dir, s, sink, epochs);
      if (!st) return st.error();
      e.window = std::move(*st);
      e.checkpointed = e.window->checkpoint();
      break;
    }
    case store_spec::kind::session: {
      auto st = factory.session(store_dir, s, sink, epochs);
      if (!st) return st.error();
      e.session = std::move(*st);
      e.checkpointed = e.session->checkpoint();
      break;
    }
    }
    if (e.kv)
      e.hook = dynamic_cast<timestamp_hook*>(e.kv.get());
    else if (e.window)
      e.hook = dynamic_cast<timestamp_hook*>(e.window.get());
    else
      e.hook = dynamic_cast<timestamp_hook*>(e.session.get());
    if (e.kv) e.cache = dynamic_cast<discard_hook*>(e.kv.get());
    if (e.kv)
      e.counter = dynamic_cast<const write_counter*>(e.kv.get());
    else if (e.window)
      e.counter = dynamic_cast<const write_counter*>(e.window.get());
    else
      e.counter = dynamic_cast<const write_counter*>(e.session.get());
    sh->entries_.push_back(std::move(e));
  }
  return sh;
}

kv_store* shard::kv(std::string_view name) {
  for (auto& e : entries_)
    if (e.spec.name == name) return e.kv.get();
  return nullptr;
}

window_store* shard::window(std::string_view name) {
  for (auto& e : entries_)
    if (e.spec.name == name) return e.window.get();
  return nullptr;
}

session_store* shard::session(std::string_view name) {
  for (auto& e : entries_)
    if (e.spec.name == name) return e.session.get();
  return nullptr;
}

std::shared_ptr<std::atomic<int64_t>> shard::delivered_offset(std::string_view store) {
  for (auto& e : entries_)
    if (e.spec.name == store) return e.delivered;
  return nullptr;
}

void shard::set_record_timestamp(timestamp_ms ts) {
  for (auto& e : entries_)
    if (e.hook) e.hook->set_timestamp(ts);
}

uint64_t shard::writes() const {
  uint64_t n = 0;
  for (auto& e : entries_)
    if (e.counter) n += e.counter->writes();
  return n;
}

status shard::flush() {
  for (auto& e : entries_) {
    status st = e.kv ? e.kv->flush() : e.window ? e.window->flush() : e.session->flush();
    if (!st) return st;
  }
  return {};
}

status shard::write_checkpoints() {
  if (epochs_)
    return make_error(errc::internal, "the stores of partition " +
                                          std::to_string(partition_) +
                                          " are transactional: use commit_epoch()");
  for (auto& e : entries_) {
    auto next = e.delivered->load(std::memory_order_acquire) + 1;
    if (next <= 0 || next <= e.checkpointed) continue;
    status st = e.kv       ? e.kv->write_checkpoint(next)
                : e.window ? e.window->write_checkpoint(next)
                           : e.session->write_checkpoint(next);
    if (!st) return st;
    e.checkpointed = next;
  }
  return {};
}

status shard::seal_epoch() {
  if (!epochs_)
    return make_error(errc::internal, "seal_epoch on the non-transactional stores of "
                                      "partition " +
                                          std::to_string(partition_));
  return epochs_->seal();
}

status shard::commit_epoch() {
  if (!epochs_)
    return make_error(errc::internal, "commit_epoch on the non-transactional stores of "
                                      "partition " +
                                          std::to_string(partition_));
  for (auto& e : entries_) {
    // Every changelog record of the epoch is delivered (its transaction
    // committed), so the highest delivered offset covers the epoch's writes.
    // Not past the last checkpoint: nothing of this store was logged since,
    // so the checkpoint that is there still matches.
    auto next = e.delivered->load(std::memory_order_acquire) + 1;
    std::optional<int64_t> cp;
    if (next > 0 && next > e.checkpointed) cp = next;
    if (auto st = epochs_->commit(e.spec.name, cp); !st) return st;
    if (cp) e.checkpointed = *cp;
  }
  return {};
}

void shard::abort_epoch() {
  // The caches first: their dirty entries are writes of this epoch too, and
  // a flush must never push them down (and into the changelog) later.
  for (auto& e : entries_)
    if (e.cache) e.cache->discard();
  if (epochs_) epochs_->abort();
}

/// One changelog partition being restored.
struct shard::cursor {
  shard* owner;
  entry* e;
  topic_partition tp;
  std::unique_ptr<kafka::partition_queue> queue;
  int64_t next;
  int64_t high;
  std::vector<change> changes;
  uint64_t applied = 0;
};

status shard::apply(cursor& c) {
  if (c.changes.empty()) return {};
  auto& e = *c.e;
  status st = e.kv       ? e.kv->restore(c.changes, c.next)
              : e.window ? e.window->restore(c.changes, c.next)
                         : e.session->restore(c.changes, c.next);
  c.applied += c.changes.size();
  c.changes.clear();
  return st;
}

status shard::finish(cursor& c) {
  auto& e = *c.e;
  auto stored = e.kv       ? e.kv->checkpoint()
                : e.window ? e.window->checkpoint()
                           : e.session->checkpoint();
  if (c.changes.empty() && c.next > stored) {
    // Only markers (or aborted records) since the last change: record that
    // they are read, so the next restore starts after them, not at them.
    status st = e.kv       ? e.kv->restore({}, c.next)
                : e.window ? e.window->restore({}, c.next)
                           : e.session->restore({}, c.next);
    if (!st) return st;
  }
  if (auto st = apply(c); !st) return st;
  e.checkpointed = c.next;
  e.delivered->store(c.next - 1, std::memory_order_release);
  return {};
}

result<std::vector<uint64_t>>
shard::restore_all(const std::vector<shard*>& shards, kafka::consumer& reader,
                   size_t batch, int timeout_ms, const std::atomic<bool>* interrupt,
                   kafka::consumer* uncommitted, restore_progress* publish_to) {
  std::vector<cursor> cursors;
  std::vector<std::pair<topic_partition, weft::offset>> starts;
  for (auto* sh : shards)
    for (auto& e : sh->entries_) {
      topic_partition tp{changelog_topic(sh->app_, e.spec.name),
                         partition_id{sh->partition_}};
      // A changelog created moments ago may not have a leader yet: retry
      // transient errors until the timeout.
      auto deadline =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
      auto marks = reader.watermarks(tp, timeout_ms);
      auto first_error = std::chrono::steady_clock::now();
      bool warned = false;
      while (!marks && marks.error().code() == errc::kafka &&
             std::chrono::steady_clock::now() < deadline) {
        if (!warned &&
            std::chrono::steady_clock::now() - first_error > std::chrono::seconds(1)) {
          log::warn("restore of {} waits: {}", to_string(tp), marks.error().message());
          warned = true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        marks = reader.watermarks(tp, timeout_ms);
      }
      if (!marks) return marks.error();
      // With isolation.level=read_committed, `high` is the last stable
      // offset: the end of what the reader will ever return while a
      // transaction is open on the changelog.
      auto [low, high] = *marks;
      if (uncommitted) {
        // A task taking a shard over: its previous owner's last transaction
        // may be committed while its markers are not written yet (the
        // coordinator writes them after answering EndTxn). The stable end
        // then stops before that transaction's changes, whose input offsets
        // are committed already: the state would miss them. Only the owner
        // writes a changelog partition, so wait until nothing is open on it.
        auto waited_from = std::chrono::steady_clock::now();
        while (true) {
          auto hw = uncommitted->watermarks(tp, timeout_ms);
          if (!hw) return hw.error();
          if (high >= hw->second) break;
          if (interrupt && interrupt->load(std::memory_order_acquire))
            return make_error(errc::shutting_down, "restore interrupted");
          if (std::chrono::steady_clock::now() - waited_from >
              std::chrono::milliseconds(std::min(timeout_ms, 5000))) {
            // Markers take milliseconds. A transaction open this long was
            // left by a writer with another transactional.id (a state folder
            // wiped after a crash): the broker aborts it at its timeout.
            log::warn("restore of {}: a transaction stays open on the changelog "
                      "(stable end {}, high watermark {}); restoring up to the "
                      "stable end",
                      to_string(tp), high, hw->second);
            break;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          auto again = reader.watermarks(tp, timeout_ms);
          if (!again) return again.error();
          std::tie(low, high) = *again;
        }
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now() - waited_from)
                      .count();
        if (us > 20000)
          log::debug("restore of {} waited {} ms for the transaction markers",
                     to_string(tp), us / 1000);
      }
      int64_t from = std::max(e.checkpointed, low);
      if (from >= high) continue; // nothing newer than the local state
      cursor c{sh, &e, tp, reader.take_queue(tp), from, high, {}};
      c.changes.reserve(batch);
      starts.emplace_back(tp, weft::offset{from});
      cursors.push_back(std::move(c));
    }
  if (!cursors.empty()) {
    // All partitions at once: librdkafka fetches them in parallel while this
    // thread writes to RocksDB.
    if (auto st = reader.assign_at(starts); !st) return st;
    auto last_progress = std::chrono::steady_clock::now();
    size_t open = cursors.size();
    // What is left to read, published for the metrics page each round.
    auto publish = [&] {
      if (!publish_to) return;
      int64_t left = 0;
      for (auto& c : cursors)
        left += std::max<int64_t>(0, c.high - c.next);
      publish_to->remaining.store(left, std::memory_order_relaxed);
    };
    struct clear_remaining {
      restore_progress* p;
      ~clear_remaining() {
        if (p) p->remaining.store(0, std::memory_order_relaxed);
      }
    } clear{publish_to};
    publish();
    while (open > 0) {
      if (interrupt && interrupt->load(std::memory_order_acquire)) {
        // Keep what was read: each applied batch carries its checkpoint, and
        // the next restore starts from there instead of from the last finish.
        for (auto& c : cursors) {
          if (c.next >= c.high) continue;
          if (auto st = apply(c); !st) return st;
          auto& e = *c.e;
          e.checkpointed = std::max(e.checkpointed, e.kv       ? e.kv->checkpoint()
                                                    : e.window ? e.window->checkpoint()
                                                               : e.session->checkpoint());
        }
        (void)reader.assign_at({});
        return make_error(errc::shutting_down, "restore interrupted");
      }
      bool progress = false;
      for (auto& c : cursors) {
        if (c.next >= c.high) continue;
        kafka::message_batch b;
        status err;
        if (c.queue->drain(b, batch - c.changes.size(), &err) == 0) {
          // A transactional changelog ends in a commit (or abort) marker,
          // and aborted records may come before it: a read_committed reader
          // never returns them, so the record at high - 1 may never arrive.
          // librdkafka moves the position past them as the queue is drained.
          auto pos = reader.position(c.tp);
          if (pos >= c.high) {
            c.next = pos;
            if (auto st = finish(c); !st) return st;
            --open;
            progress = true;
            continue;
          }
          if (std::chrono::steady_clock::now() - last_progress >
              std::chrono::milliseconds(timeout_ms))
            return make_error(errc::timed_out,
                              "restoring " + to_string(c.tp) + ": stuck at offset " +
                                  std::to_string(std::max(c.next, pos)) + " of " +
                                  std::to_string(c.high) +
                                  (err.ok() ? "" : " (" + err.message() + ")"));
          continue;
        }
        progress = true;
        if (publish_to)
          publish_to->records.fetch_add(b.size(), std::memory_order_relaxed);
        for (size_t i = 0; i < b.size(); ++i) {
          auto v = b.view(i);
          c.next = v.offset.value() + 1;
          if (!v.key) continue; // not a change (keys are never null in changelogs)
          change ch;
          ch.key.assign(*v.key);
          if (v.value) ch.value = std::string{*v.value};
          c.changes.push_back(std::move(ch));
        }
        if (c.next >= c.high) {
          if (auto st = finish(c); !st) return st;
          --open;
        } else if (c.changes.size() >= batch) {
          if (auto st = apply(c); !st) return st;
        }
      }
      if (progress) {
        last_progress = std::chrono::steady_clock::now();
        publish();
      } else
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (auto st = reader.assign_at({}); !st) return st;
  }
  std::vector<uint64_t> applied(shards.size(), 0);
  for (auto& c : cursors)
    for (size_t i = 0; i < shards.size(); ++i)
      if (shards[i] == c.owner) applied[i] += c.applied;
  return applied;
}

result<uint64_t> shard::restore(kafka::consumer& reader, size_t batch, int timeout_ms) {
  auto n = restore_all({this}, reader, batch, timeout_ms);
  if (!n) return n.error();
  return n->at(0);
}

} // namespace weft::state
