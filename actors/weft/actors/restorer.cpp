#include "weft/actors/restorer.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iterator>
#include <optional>
#include <vector>

#include "weft/kafka/consumer.hpp"
#include "weft/log.hpp"
#include "weft/state/shard.hpp"

namespace weft::detail {

restorer::restorer(std::map<std::string, std::string> props, size_t batch, int timeout_ms,
                   state::restore_progress* progress)
  : props_(std::move(props)), batch_(batch), timeout_ms_(timeout_ms),
    progress_(progress) {
  thread_ = std::thread{[this] { run(); }};
}

restorer::~restorer() {
  {
    std::lock_guard<std::mutex> guard{mu_};
    stop_ = true;
    interrupt_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

uint64_t restorer::submit(open_fn open, done_fn done) {
  uint64_t ticket;
  {
    std::lock_guard<std::mutex> guard{mu_};
    ticket = ++next_ticket_;
    jobs_.push_back({ticket, std::move(open), std::move(done)});
  }
  cv_.notify_all();
  return ticket;
}

void restorer::cancel(uint64_t ticket) {
  std::unique_lock<std::mutex> lock{mu_};
  for (auto i = jobs_.begin(); i != jobs_.end();)
    i = i->ticket == ticket ? jobs_.erase(i) : std::next(i);
  if (std::find(running_.begin(), running_.end(), ticket) != running_.end() &&
      ++cancelled_running_ == running_.size()) {
    interrupt_ = true; // nobody waits for this batch any more
    cv_.notify_all();
  }
  cv_.wait(lock, [&] {
    return std::find(running_.begin(), running_.end(), ticket) == running_.end();
  });
}

namespace {

/// Opens every job's shard, up to `parallel` at once: a RocksDB open waits
/// on the disk (syncs of a new WAL and MANIFEST) more than it computes.
template <class Job>
std::vector<std::optional<result<restorer::shard_ptr>>> open_all(std::vector<Job>& batch,
                                                                 size_t parallel) {
  std::vector<std::optional<result<restorer::shard_ptr>>> opened(batch.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < batch.size();)
      opened[i].emplace(batch[i].open());
  };
  std::vector<std::thread> helpers;
  for (size_t k = 1; k < std::min(parallel, batch.size()); ++k)
    helpers.emplace_back(work);
  work();
  for (auto& t : helpers)
    t.join();
  return opened;
}

} // namespace

bool restorer::pause(std::chrono::milliseconds backoff) {
  std::unique_lock<std::mutex> lock{mu_};
  return !cv_.wait_for(lock, backoff, [&] { return stop_ || interrupt_.load(); });
}

void restorer::run() {
  std::unique_ptr<kafka::consumer> reader;
  // Reads the high watermark (the reader, read_committed, sees the last
  // stable offset): a shard taken over waits for its changelog's markers.
  std::unique_ptr<kafka::consumer> uncommitted;
  while (true) {
    std::vector<job> batch;
    {
      std::unique_lock<std::mutex> lock{mu_};
      cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (stop_) {
        for (auto& left : jobs_)
          left.done(make_error(errc::shutting_down, "node stopping"), 0);
        jobs_.clear();
        return;
      }
      // Every job waiting now opens and restores together.
      batch.assign(std::make_move_iterator(jobs_.begin()),
                   std::make_move_iterator(jobs_.end()));
      jobs_.clear();
      for (auto& j : batch)
        running_.push_back(j.ticket);
      cancelled_running_ = 0;
      interrupt_ = false;
    }
    auto open_start = std::chrono::steady_clock::now();
    auto opened = open_all(batch, max_parallel_opens);
    auto open_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - open_start)
                       .count();
    // The jobs whose shard opened go on to the restore; the others are done.
    std::vector<job> restoring;
    std::vector<shard_ptr> shards;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!*opened[i]) {
        batch[i].done(opened[i]->error(), 0);
        continue;
      }
      restoring.push_back(std::move(batch[i]));
      shards.push_back(std::move(**opened[i]));
    }
    log::debug("restorer: opened {} of {} shards in {} ms", shards.size(), batch.size(),
               open_ms);
    // Whatever happens below, cancel() may go on once the batch is done.
    auto release = [this] {
      {
        std::lock_guard<std::mutex> guard{mu_};
        running_.clear();
        cancelled_running_ = 0;
      }
      cv_.notify_all();
    };
    auto fail_all = [&](const status& why) {
      for (auto& j : restoring)
        j.done(why, 0);
      release();
    };
    if (restoring.empty()) {
      release();
      continue;
    }
    // Opened on first use, and anew after a failed restore.
    auto connect = [&](std::unique_ptr<kafka::consumer>& c,
                       std::map<std::string, std::string> props) -> status {
      if (c) return {};
      auto made = kafka::consumer::create(std::move(props));
      if (!made) return made.error();
      c = std::move(*made);
      return {};
    };
    auto hw_props = props_;
    hw_props["isolation.level"] = "read_uncommitted";
    hw_props["group.id"] += "-hw";
    std::vector<state::shard*> raw;
    for (auto& s : shards)
      raw.push_back(s.get());
    auto start = std::chrono::steady_clock::now();
    if (progress_)
      progress_->shards_active.store(static_cast<int64_t>(raw.size()),
                                     std::memory_order_relaxed);
    const auto give_up_at = start + retry_window;
    auto backoff = std::chrono::milliseconds(250);
    result<std::vector<uint64_t>> n = make_error(errc::timed_out, "not restored yet");
    for (int attempt = 1;; ++attempt) {
      status connected = connect(reader, props_);
      if (connected) connected = connect(uncommitted, hw_props);
      n = connected ? state::shard::restore_all(raw, *reader, batch_, timeout_ms_,
                                                &interrupt_, uncommitted.get(), progress_)
                    : result<std::vector<uint64_t>>{connected};
      if (n || n.error().code() == errc::shutting_down) break;
      if (std::chrono::steady_clock::now() + backoff >= give_up_at) {
        log::error("restoring {} shards failed after {} attempts in {:.1f} s: {}",
                   shards.size(), attempt,
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
                       .count(),
                   n.error().message());
        break;
      }
      // A client may hold metadata from before a broker restart: start over
      // with new ones. What was applied is kept (each shard's checkpoint).
      log::warn("restoring {} shards failed (attempt {}): {}; retrying in {} ms with new "
                "Kafka clients",
                shards.size(), attempt, n.error().message(), backoff.count());
      reader.reset();
      uncommitted.reset();
      retries_.fetch_add(1, std::memory_order_relaxed);
      if (!pause(backoff)) {
        n = make_error(errc::shutting_down, "restore cancelled");
        break;
      }
      backoff = std::min(backoff * 2, std::chrono::milliseconds(4000));
    }
    if (progress_) {
      progress_->shards_active.store(0, std::memory_order_relaxed);
      if (n) progress_->shards_done.fetch_add(raw.size(), std::memory_order_relaxed);
    }
    if (!n) {
      fail_all(n.error());
      continue;
    }
    auto secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    uint64_t total = 0;
    for (auto x : *n)
      total += x;
    if (total > 0 || secs > 1.0)
      log::info("restored {} changes into {} shards in {:.2f} s ({:.0f}/s)", total,
                shards.size(), secs, total / std::max(secs, 1e-6));
    else
      log::debug("restorer: {} shards at their changelogs' end in {:.0f} ms",
                 shards.size(), secs * 1000);
    for (size_t i = 0; i < restoring.size(); ++i)
      restoring[i].done(std::move(shards[i]), n->at(i));
    release();
  }
}

} // namespace weft::detail
