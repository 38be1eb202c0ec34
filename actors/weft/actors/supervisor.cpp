#include "weft/actors/supervisor.hpp"

#include <map>

#include "weft/actors/messages.hpp"
#include "weft/actors/node_context.hpp"
#include "weft/actors/partition_actor.hpp"
#include "weft/actors/task_actor.hpp"
#include "weft/log.hpp"

namespace weft::detail {

namespace {

struct supervisor_state {
  node_context* ctx = nullptr;
  fatal_handler on_fatal;
  std::vector<caf::actor> tasks;
  std::vector<caf::actor> partitions;
  std::vector<topic_partition> partition_tps;
  std::vector<std::vector<size_t>> partition_tasks;
  /// Latest committable offset reported per (partition index, task index).
  std::map<std::pair<size_t, size_t>, int64_t> reported;
  std::map<topic_partition, int64_t> committed;
  std::map<topic_partition, size_t> partition_index;
  size_t drained = 0;
  bool stopping = false;
  bool failed = false;
  caf::response_promise stop_promise;
  std::chrono::milliseconds interval{100};
  std::chrono::steady_clock::time_point last_progress;
  uint64_t last_processed = 0;
  static inline const char* name = "weft.supervisor";
};

using supervisor_actor = caf::stateful_actor<supervisor_state>;

void record_offsets(supervisor_actor* self, size_t task, const task_offsets& offs) {
  auto& st = self->state;
  for (auto& [topic, off] : offs) {
    // The task's partition number is the same for every topic it reads.
    for (size_t p = 0; p < st.partition_tps.size(); ++p) {
      if (st.partition_tps[p].topic != topic) continue;
      auto& feeds = st.partition_tasks[p];
      if (std::find(feeds.begin(), feeds.end(), task) == feeds.end()) continue;
      st.reported[{p, task}] = off;
    }
  }
}

/// Offsets every task fed by a partition agrees to commit, newer than the
/// last commit.
partition_offsets commit_candidates(supervisor_actor* self) {
  auto& st = self->state;
  partition_offsets out;
  for (size_t p = 0; p < st.partition_tps.size(); ++p) {
    int64_t low = INT64_MAX;
    for (auto t : st.partition_tasks[p]) {
      auto i = st.reported.find({p, t});
      if (i == st.reported.end()) {
        low = -1;
        break;
      }
      low = std::min(low, i->second);
    }
    if (low < 0 || low == INT64_MAX) continue;
    auto& last = st.committed[st.partition_tps[p]];
    if (low > last) {
      out.emplace_back(st.partition_tps[p], weft::offset{low});
    }
  }
  return out;
}

void commit(supervisor_actor* self) {
  auto offs = commit_candidates(self);
  if (offs.empty()) return;
  auto s = self->state.ctx->consumer->commit(offs, true);
  if (!s.ok()) {
    log::warn("{}", s.message());
    return;
  }
  for (auto& [tp, off] : offs) {
    log::debug("commit {} at {}", to_string(tp), off.value());
    self->state.committed[tp] = off.value();
  }
  self->state.ctx->counters.commits.fetch_add(1, std::memory_order_relaxed);
}

void log_progress(supervisor_actor* self) {
  auto& st = self->state;
  auto now = std::chrono::steady_clock::now();
  if (now - st.last_progress < std::chrono::seconds(10)) return;
  auto processed = st.ctx->counters.processed.load(std::memory_order_relaxed);
  auto secs = std::chrono::duration<double>(now - st.last_progress).count();
  if (processed != st.last_processed)
    log::info("processed {} records ({:.0f}/s), produced {}, bad {}, paused {} times",
              processed, (processed - st.last_processed) / secs,
              st.ctx->counters.produced.load(std::memory_order_relaxed),
              st.ctx->counters.bad_records.load(std::memory_order_relaxed),
              st.ctx->counters.pauses.load(std::memory_order_relaxed));
  st.last_progress = now;
  st.last_processed = processed;
}

void answer_stop(supervisor_actor* self) {
  auto& st = self->state;
  if (st.stop_promise.pending()) st.stop_promise.deliver(caf::unit);
}

caf::behavior supervisor_behavior(supervisor_actor* self, node_context* ctx,
                                  assignment_plan plan, fatal_handler on_fatal) {
  auto& st = self->state;
  st.ctx = ctx;
  st.on_fatal = std::move(on_fatal);
  st.interval = std::chrono::milliseconds(ctx->cfg.get_int("commit.interval.ms"));
  st.last_progress = std::chrono::steady_clock::now();
  auto& sys = self->system();
  auto me = caf::actor_cast<caf::actor>(self);
  for (size_t i = 0; i < plan.tasks.size(); ++i) {
    auto& t = plan.tasks[i];
    auto a = spawn_task_actor(sys, ctx, t.service, t.partition, i, me);
    self->monitor(a);
    self->link_to(a);
    st.tasks.push_back(a);
  }
  for (auto& p : plan.partitions) {
    std::vector<caf::actor> feeds;
    for (auto t : p.tasks)
      feeds.push_back(st.tasks[t]);
    auto a = spawn_partition_actor(sys, ctx, p.queue, std::move(feeds), me);
    self->monitor(a);
    self->link_to(a);
    st.partition_index[p.tp] = st.partitions.size();
    st.partitions.push_back(a);
    st.partition_tps.push_back(p.tp);
    st.partition_tasks.push_back(p.tasks);
  }
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    if (msg.reason == caf::exit_reason::normal) return;
    if (st.stopping && msg.reason == caf::exit_reason::user_shutdown) return;
    auto why = "an actor of this node died: " + self->system().render(msg.reason);
    log::error("{}", why);
    st.failed = true;
    if (st.on_fatal) st.on_fatal(why);
    if (st.stopping) answer_stop(self);
  });
  self->delayed_send(self, st.interval, tick_atom::value);
  return {
      [self](tick_atom) {
        auto& st = self->state;
        commit(self);
        for (auto& t : st.tasks)
          self->send(t, tick_atom::value);
        log_progress(self);
        if (!st.stopping) self->delayed_send(self, st.interval, tick_atom::value);
      },
      [self](offsets_atom, size_t task, const task_offsets& offs) {
        record_offsets(self, task, offs);
      },
      [self](failed_atom, const std::string& why) {
        auto& st = self->state;
        st.failed = true;
        if (st.on_fatal) st.on_fatal(why);
        if (st.stopping) answer_stop(self);
      },
      [self](stop_atom) -> caf::result<void> {
        auto& st = self->state;
        st.stopping = true;
        st.stop_promise = self->make_response_promise();
        for (auto& p : st.partitions)
          self->send(p, stop_atom::value);
        for (auto& t : st.tasks)
          self->send(t, stop_atom::value);
        if (st.failed || st.partitions.empty()) answer_stop(self);
        return st.stop_promise;
      },
      [self](drained_atom, const std::string&, int32_t) {
        auto& st = self->state;
        if (++st.drained == st.partitions.size()) answer_stop(self);
      },
      [self](final_atom, bool flush) -> caf::result<partition_offsets> {
        // Ask every task for what is safe to commit now, then answer with the
        // offsets per partition.
        auto rp = self->make_response_promise<partition_offsets>();
        auto& st = self->state;
        auto left = std::make_shared<size_t>(st.tasks.size());
        auto finish = [self, rp]() mutable { rp.deliver(commit_candidates(self)); };
        if (st.tasks.empty()) {
          finish();
          return rp;
        }
        for (size_t i = 0; i < st.tasks.size(); ++i)
          self->request(st.tasks[i], std::chrono::seconds(10), final_atom::value, flush)
              .then(
                  [self, i, left, finish](const task_offsets& offs) mutable {
                    record_offsets(self, i, offs);
                    if (--*left == 0) finish();
                  },
                  [left, finish](caf::error&) mutable {
                    if (--*left == 0) finish();
                  });
        return rp;
      },
  };
}

} // namespace

caf::actor spawn_supervisor(caf::actor_system& sys, node_context* ctx,
                            assignment_plan plan, fatal_handler on_fatal) {
  return sys.spawn(supervisor_behavior, ctx, std::move(plan), std::move(on_fatal));
}

} // namespace weft::detail
