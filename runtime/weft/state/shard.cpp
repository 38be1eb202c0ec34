#include "weft/state/shard.hpp"

#include <chrono>
#include <filesystem>
#include <thread>

#include "weft/kafka/consumer.hpp"

namespace weft::state {

store_factory::~store_factory() = default;

std::string changelog_topic(const std::string& app, const std::string& store) {
  return app + "-" + store + "-changelog";
}

result<std::unique_ptr<shard>> shard::open(store_factory& factory, const std::string& dir,
                                           const std::string& app, int32_t partition,
                                           const std::vector<store_spec>& specs,
                                           changelog_sink* sink) {
  std::unique_ptr<shard> sh{new shard};
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
    e.delivered = std::make_unique<std::atomic<int64_t>>(-1);
    switch (s.type) {
    case store_spec::kind::kv: {
      auto st = factory.kv(store_dir, s, sink);
      if (!st) return st.error();
      e.kv = std::move(*st);
      e.checkpointed = e.kv->checkpoint();
      break;
    }
    case store_spec::kind::window: {
      auto st = factory.window(store_dir, s, sink);
      if (!st) return st.error();
      e.window = std::move(*st);
      e.checkpointed = e.window->checkpoint();
      break;
    }
    case store_spec::kind::session: {
      auto st = factory.session(store_dir, s, sink);
      if (!st) return st.error();
      e.session = std::move(*st);
      e.checkpointed = e.session->checkpoint();
      break;
    }
    }
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

std::atomic<int64_t>* shard::delivered_offset(std::string_view store) {
  for (auto& e : entries_)
    if (e.spec.name == store) return e.delivered.get();
  return nullptr;
}

status shard::flush() {
  for (auto& e : entries_) {
    status st = e.kv ? e.kv->flush() : e.window ? e.window->flush() : e.session->flush();
    if (!st) return st;
  }
  return {};
}

status shard::write_checkpoints() {
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

status shard::restore_one(entry& e, kafka::consumer& reader, size_t batch, int timeout_ms,
                          uint64_t& applied) {
  topic_partition tp{changelog_topic(app_, e.spec.name), partition_id{partition_}};
  auto marks = reader.watermarks(tp, timeout_ms);
  if (!marks) return marks.error();
  auto [low, high] = *marks;
  int64_t from = std::max(e.checkpointed, low);
  if (from >= high) return {}; // nothing newer than the local state
  auto q = reader.take_queue(tp);
  std::vector<std::pair<topic_partition, weft::offset>> start{{tp, weft::offset{from}}};
  if (auto st = reader.assign_at(start); !st) return st;
  std::vector<change> changes;
  changes.reserve(batch);
  int64_t next = from;
  auto apply = [&]() -> status {
    if (changes.empty()) return {};
    status st = e.kv       ? e.kv->restore(changes, next)
                : e.window ? e.window->restore(changes, next)
                           : e.session->restore(changes, next);
    applied += changes.size();
    changes.clear();
    return st;
  };
  auto last_progress = std::chrono::steady_clock::now();
  while (next < high) {
    kafka::message_batch b;
    status err;
    if (q->drain(b, batch - changes.size(), &err) == 0) {
      if (std::chrono::steady_clock::now() - last_progress >
          std::chrono::milliseconds(timeout_ms))
        return make_error(errc::timed_out,
                          "restoring " + to_string(tp) + ": stuck at offset " +
                              std::to_string(next) + " of " + std::to_string(high) +
                              (err.ok() ? "" : " (" + err.message() + ")"));
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      continue;
    }
    last_progress = std::chrono::steady_clock::now();
    for (size_t i = 0; i < b.size(); ++i) {
      auto v = b.view(i);
      if (!v.key) continue; // not a change (keys are never null in changelogs)
      change c;
      c.key.assign(*v.key);
      if (v.value) c.value = std::string{*v.value};
      changes.push_back(std::move(c));
      next = v.offset.value() + 1;
    }
    if (changes.size() >= batch)
      if (auto st = apply(); !st) return st;
  }
  if (auto st = apply(); !st) return st;
  e.checkpointed = next;
  e.delivered->store(next - 1, std::memory_order_release);
  return reader.assign_at({});
}

result<uint64_t> shard::restore(kafka::consumer& reader, size_t batch, int timeout_ms) {
  uint64_t applied = 0;
  for (auto& e : entries_)
    if (auto st = restore_one(e, reader, batch, timeout_ms, applied); !st) return st;
  return applied;
}

} // namespace weft::state
