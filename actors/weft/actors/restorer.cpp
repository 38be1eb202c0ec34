#include "weft/actors/restorer.hpp"

#include <chrono>

#include "weft/kafka/consumer.hpp"
#include "weft/log.hpp"
#include "weft/state/shard.hpp"

namespace weft::detail {

restorer::restorer(std::map<std::string, std::string> props, size_t batch, int timeout_ms)
  : props_(std::move(props)), batch_(batch), timeout_ms_(timeout_ms) {
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

void restorer::run() {
  std::unique_ptr<kafka::consumer> reader;
  while (true) {
    job j;
    {
      std::unique_lock<std::mutex> lock{mu_};
      cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (stop_) {
        for (auto& left : jobs_)
          left.done(make_error(errc::shutting_down, "node stopping"), 0);
        jobs_.clear();
        return;
      }
      j = std::move(jobs_.front());
      jobs_.pop_front();
    }
    if (!reader) {
      auto c = kafka::consumer::create(props_);
      if (!c) {
        j.done(c.error(), 0);
        continue;
      }
      reader = std::move(*c);
    }
    auto start = std::chrono::steady_clock::now();
    auto n = j.shard->restore(*reader, batch_, timeout_ms_);
    if (!n) {
      j.done(n.error(), 0);
      continue;
    }
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (*n > 0)
      log::info("restored {} changes into partition {} in {:.2f} s ({:.0f}/s)", *n,
                j.shard->partition(), secs, *n / std::max(secs, 1e-6));
    j.done({}, *n);
  }
}

} // namespace weft::detail
