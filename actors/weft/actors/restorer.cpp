#include "weft/actors/restorer.hpp"

#include <algorithm>
#include <chrono>
#include <iterator>
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
  }
  cv_.notify_all();
  thread_.join();
}

void restorer::submit(state::shard* shard, done_fn done) {
  {
    std::lock_guard<std::mutex> guard{mu_};
    jobs_.push_back({shard, std::move(done)});
  }
  cv_.notify_all();
}

void restorer::cancel(state::shard* shard) {
  std::unique_lock<std::mutex> lock{mu_};
  for (auto i = jobs_.begin(); i != jobs_.end();)
    i = i->shard == shard ? jobs_.erase(i) : std::next(i);
  cv_.wait(lock, [&] {
    return std::find(running_.begin(), running_.end(), shard) == running_.end();
  });
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
      // Every job waiting now restores together (in parallel fetches).
      batch.assign(std::make_move_iterator(jobs_.begin()),
                   std::make_move_iterator(jobs_.end()));
      jobs_.clear();
      for (auto& j : batch)
        running_.push_back(j.shard);
    }
    // Whatever happens below, cancel() may go on once the batch is done.
    auto release = [this] {
      {
        std::lock_guard<std::mutex> guard{mu_};
        running_.clear();
      }
      cv_.notify_all();
    };
    // Opened on first use; a failure fails this batch and is tried again.
    auto open = [&](std::unique_ptr<kafka::consumer>& c,
                    std::map<std::string, std::string> props) {
      if (c) return true;
      auto made = kafka::consumer::create(std::move(props));
      if (!made) {
        for (auto& j : batch)
          j.done(made.error(), 0);
        release();
        return false;
      }
      c = std::move(*made);
      return true;
    };
    auto hw_props = props_;
    hw_props["isolation.level"] = "read_uncommitted";
    hw_props["group.id"] += "-hw";
    if (!open(reader, props_) || !open(uncommitted, std::move(hw_props))) continue;
    std::vector<state::shard*> shards;
    for (auto& j : batch)
      shards.push_back(j.shard);
    auto start = std::chrono::steady_clock::now();
    if (progress_)
      progress_->shards_active.store(static_cast<int64_t>(shards.size()),
                                     std::memory_order_relaxed);
    auto n = state::shard::restore_all(shards, *reader, batch_, timeout_ms_, nullptr,
                                       uncommitted.get(), progress_);
    if (progress_) {
      progress_->shards_active.store(0, std::memory_order_relaxed);
      if (n) progress_->shards_done.fetch_add(shards.size(), std::memory_order_relaxed);
    }
    if (!n) {
      for (auto& j : batch)
        j.done(n.error(), 0);
      release();
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
    for (size_t i = 0; i < batch.size(); ++i)
      batch[i].done({}, n->at(i));
    release();
  }
}

} // namespace weft::detail
