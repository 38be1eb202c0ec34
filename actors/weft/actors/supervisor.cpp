#include "weft/actors/supervisor.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "weft/actors/node_context.hpp"
#include "weft/actors/partition_actor.hpp"
#include "weft/actors/task_actor.hpp"
#include "weft/log.hpp"

namespace weft::detail {

namespace {

struct supervisor_state {
  node_context* ctx = nullptr;
  task_manager_actor manager;
  std::vector<task_actor> tasks;
  std::vector<partition_actor> partitions;
  std::vector<topic_partition> partition_tps;
  std::vector<std::vector<size_t>> partition_tasks;
  /// Latest committable offset reported per (partition index, task index).
  std::map<std::pair<size_t, size_t>, int64_t> reported;
  std::map<topic_partition, int64_t> committed;
  std::map<topic_partition, size_t> partition_index;
  /// at_least_once: partitions (by index) that stopped and have nothing in
  /// flight (a release's, or the node's stop).
  std::set<size_t> drained;
  bool stopping = false;
  bool failed = false;
  caf::response_promise stop_promise;
  std::chrono::milliseconds interval{100};
  std::chrono::steady_clock::time_point last_progress;
  uint64_t last_processed = 0;

  /// The (service, partition) of each task, by task index.
  std::vector<task_key> task_keys;
  uint64_t plan_version = 0;                               ///< of the last full plan
  std::vector<std::pair<plan_ptr, uint64_t>> pending_adds; ///< while rolling back
  /// Exiting: children still alive, and the reason to quit with.
  std::set<caf::actor_addr> live_children;
  std::optional<caf::error> exiting;

  // exactly_once
  std::map<caf::actor_addr, size_t> task_of; ///< current tasks only
  std::set<caf::actor_addr> dying;           ///< replaced actors not yet down
  weft::epoch epoch;
  bool collecting = false; ///< markers out, waiting for every task
  std::vector<bool> aligned;
  std::vector<bool> direct_tasks;      ///< take markers straight from here
  std::vector<bool> direct_partitions; ///< feed only direct tasks: no marker
  std::vector<bool> joined; ///< per task: takes part in the epochs (input released)
  std::vector<bool> fed;    ///< per partition: released to its tasks
  size_t epoch_tasks = 0;   ///< tasks taking part in the open epoch
  size_t aligned_count = 0;
  caf::timestamp epoch_start;
  size_t restoring = 0; ///< tasks whose shard is not restored yet
  bool feeding = false; ///< partition actors released
  bool rolling_back = false;
  /// A task failed: the open transaction is aborted once every task is
  /// halted, then the node stops (`failing_why` says why).
  bool failing = false;
  std::string failing_why;
  bool final_epoch = false; ///< stopping: the epoch that ends the node
  /// Per task and per partition: released (its actor told to exit); its slot
  /// stays so indices hold, and every loop skips it.
  std::vector<bool> retired;
  std::vector<bool> retired_partitions;
  std::vector<bool> restored; ///< per task: its shard restored (or it has none)
  /// A release in progress (release_atom).
  struct release_op {
    std::set<size_t> tasks; ///< leaving, not yet retired
    caf::typed_response_promise<bool, partition_offsets> rp;
    // at_least_once
    std::set<size_t> draining; ///< leaving partitions not drained yet
    size_t asked = 0;          ///< settle requests not answered yet
    bool unsettled = false;    ///< a task answered it is not settled
    std::vector<size_t> parts; ///< the leaving partitions
    partition_offsets final;   ///< their last offsets, for the answer
    std::chrono::steady_clock::time_point deadline;
    uint64_t id = 0; ///< tells a late answer of an earlier release apart
  };
  uint64_t releases = 0;
  std::chrono::milliseconds release_timeout{15000}; ///< at_least_once
  std::optional<release_op> releasing;
  std::set<caf::actor_addr> retiring; ///< retired actors not yet down
  int txn_timeout_ms = 30000;
  std::chrono::steady_clock::time_point last_broker_commit;
  std::chrono::milliseconds epoch_timeout{30000};
  static inline const char* name = "weft.supervisor";
};

using supervisor_self = supervisor_actor::stateful_pointer<supervisor_state>;

void record_offsets(supervisor_self self, size_t task, const task_offsets& offs) {
  auto& st = self->state;
  for (auto& [topic, off] : offs) {
    // The task's partition number is the same for every topic it reads.
    for (size_t p = 0; p < st.partition_tps.size(); ++p) {
      if (st.partition_tps[p].topic != topic) continue;
      auto& feeds = st.partition_tasks[p];
      if (std::find(feeds.begin(), feeds.end(), task) == feeds.end()) continue;
      st.reported[{p, task}] = off.value();
    }
  }
}

/// The offset of partition `p` every task it feeds agrees to commit: the
/// lowest they reported; -1 while one has reported none (or none feeds it).
int64_t agreed_offset(const supervisor_state& st, size_t p) {
  int64_t low = INT64_MAX;
  for (auto t : st.partition_tasks[p]) {
    auto i = st.reported.find({p, t});
    if (i == st.reported.end()) return -1;
    low = std::min(low, i->second);
  }
  return low == INT64_MAX ? -1 : low;
}

/// Offsets every task fed by a partition agrees to commit, newer than the
/// last commit.
partition_offsets commit_candidates(supervisor_self self) {
  auto& st = self->state;
  partition_offsets out;
  for (size_t p = 0; p < st.partition_tps.size(); ++p) {
    auto low = agreed_offset(st, p);
    if (low < 0) continue;
    // Only offsets this node committed are in `committed` (an idle epoch
    // sends them again: a default 0 there would rewind the group).
    auto last = st.committed.find(st.partition_tps[p]);
    if (last == st.committed.end() || low > last->second) {
      out.emplace_back(st.partition_tps[p], weft::offset{low});
    }
  }
  return out;
}

void commit(supervisor_self self) {
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

void log_progress(supervisor_self self) {
  auto& st = self->state;
  auto now = std::chrono::steady_clock::now();
  if (now - st.last_progress < std::chrono::seconds(10)) return;
  auto& c = st.ctx->counters;
  auto totals = c.sum();
  auto processed = totals.processed;
  auto secs = std::chrono::duration<double>(now - st.last_progress).count();
  if (processed != st.last_processed) {
    std::string epochs;
    if (st.ctx->exactly_once) {
      auto committed = c.epochs_committed.load(std::memory_order_relaxed);
      epochs = fmt::format(
          "; epochs committed {}, aborted {}, mean marker->commit {:.1f} ms, of it "
          "{:.1f} ms in transaction calls",
          committed, c.epochs_aborted.load(std::memory_order_relaxed),
          committed ? c.commit_us_total.load() / 1000.0 / committed : 0.0,
          committed ? c.txn_us_total.load() / 1000.0 / committed : 0.0);
    }
    log::info("processed {} records ({:.0f}/s), produced {}, bad {}, paused {} times, "
              "processed ahead of an empty input {} times{}",
              processed, (processed - st.last_processed) / secs, totals.produced,
              totals.bad, c.pauses.load(std::memory_order_relaxed),
              c.enforced_processing.load(std::memory_order_relaxed), epochs);
  }
  st.last_progress = now;
  st.last_processed = processed;
}

void answer_stop(supervisor_self self) {
  auto& st = self->state;
  if (st.stop_promise.pending()) st.stop_promise.deliver(caf::unit);
}

/// Spawns the task and partition actors of `plan` next to the running ones
/// (partition actors are held under exactly_once until every shard restored;
/// the plan's partitions feed only the plan's tasks).
void add_children(supervisor_self self, const assignment_plan& plan) {
  auto& st = self->state;
  auto* ctx = st.ctx;
  auto& sys = self->system();
  auto me = caf::actor_cast<supervisor_actor>(self);
  const size_t base = st.tasks.size();
  std::vector<size_t> sources(plan.tasks.size(), 0);
  // A task whose partitions feed no other task takes markers directly (a
  // shared partition needs the in-band marker: every task reading it must cut
  // at the same offset, since the partition has one committed offset).
  std::vector<bool> direct(plan.tasks.size(), true);
  for (auto& p : plan.partitions)
    for (auto t : p.tasks) {
      ++sources[t];
      if (p.tasks.size() > 1) direct[t] = false;
    }
  for (auto& p : plan.partitions)
    st.direct_partitions.push_back(p.tasks.size() == 1 && direct[p.tasks[0]]);
  for (size_t i = 0; i < plan.tasks.size(); ++i) {
    auto& t = plan.tasks[i];
    auto a = spawn_task_actor(sys, ctx, t.service, t.partition, base + i, sources[i],
                              ctx->exactly_once && direct[i], me);
    self->monitor(a);
    self->link_to(a);
    st.live_children.insert(a.address());
    st.task_of[a.address()] = base + i;
    st.tasks.push_back(a);
    st.task_keys.emplace_back(t.service, t.partition);
    st.direct_tasks.push_back(direct[i]);
    st.joined.push_back(!ctx->exactly_once);
    st.retired.push_back(false);
    bool stateless = ctx->services[t.service].stores.empty();
    st.restored.push_back(stateless);
    if (!stateless) ++st.restoring;
  }
  for (auto& p : plan.partitions) {
    std::vector<task_actor> feeds;
    std::vector<size_t> indices;
    for (auto t : p.tasks) {
      feeds.push_back(st.tasks[base + t]);
      indices.push_back(base + t);
    }
    auto a = spawn_partition_actor(sys, ctx, p.queue, std::move(feeds), me,
                                   !ctx->exactly_once);
    self->monitor(a);
    self->link_to(a);
    st.live_children.insert(a.address());
    st.partition_index[p.tp] = st.partitions.size();
    st.partitions.push_back(a);
    st.partition_tps.push_back(p.tp);
    st.partition_tasks.push_back(std::move(indices));
    st.fed.push_back(!ctx->exactly_once);
    st.retired_partitions.push_back(false);
  }
  st.aligned.resize(st.tasks.size(), false);
}

/// Spawns the task and partition actors of `plan` in place of any before.
void spawn_children(supervisor_self self, const assignment_plan& plan) {
  auto& st = self->state;
  st.tasks.clear();
  st.partitions.clear();
  st.partition_tps.clear();
  st.partition_tasks.clear();
  st.partition_index.clear();
  st.task_of.clear();
  st.task_keys.clear();
  st.reported.clear();
  st.direct_tasks.clear();
  st.direct_partitions.clear();
  st.joined.clear();
  st.fed.clear();
  st.aligned.clear();
  st.retired.clear();
  st.retired_partitions.clear();
  st.restored.clear();
  st.drained.clear();
  st.restoring = 0;
  st.feeding = !st.ctx->exactly_once;
  add_children(self, plan);
}

/// exactly_once: releases the held partition actors once no shard restores,
/// between two epochs (their tasks take part from the next epoch on).
void maybe_feed(supervisor_self self) {
  auto& st = self->state;
  if (st.restoring > 0 || st.rolling_back || st.collecting || st.failed || st.failing)
    return;
  if (st.stopping && st.feeding) return; // nothing new once the final epoch is due
  st.feeding = true;
  for (size_t p = 0; p < st.partitions.size(); ++p)
    if (!st.fed[p]) {
      st.fed[p] = true;
      self->send(st.partitions[p], restored_atom::value);
    }
  for (size_t t = 0; t < st.tasks.size(); ++t) {
    const bool joins = !st.retired[t];
    if (joins && !st.joined[t]) self->send(st.tasks[t], restored_atom::value);
    st.joined[t] = joins;
  }
}

/// Tells the task manager that this node cannot go on: a fenced producer
/// (`producer_dead`: a clustered node drops its tasks and rejoins) or an
/// unrecoverable error (the node stops).
void alarm(supervisor_self self, const std::string& why, bool producer_dead) {
  self->send(self->state.manager, alarm_atom::value, why, producer_dead);
}

/// Fatal for this supervisor: nothing more is committed.
void fail_node(supervisor_self self, const std::string& why, bool producer_dead = false) {
  auto& st = self->state;
  if (st.failed) return;
  st.failed = true;
  st.collecting = false;
  if (st.releasing) {
    st.releasing->rp.deliver(false, partition_offsets{});
    st.releasing.reset();
  }
  alarm(self, why, producer_dead);
  answer_stop(self);
}

void start_epoch(supervisor_self self) {
  auto& st = self->state;
  st.epoch = weft::epoch{st.epoch.value() + 1};
  st.collecting = true;
  st.aligned.assign(st.tasks.size(), false);
  st.aligned_count = 0;
  st.epoch_tasks =
      static_cast<size_t>(std::count(st.joined.begin(), st.joined.end(), true));
  st.epoch_start = caf::make_timestamp();
  for (size_t p = 0; p < st.partitions.size(); ++p)
    if (st.fed[p] && !st.direct_partitions[p] && !st.retired_partitions[p])
      self->send(st.partitions[p], marker_atom::value, st.epoch);
  for (size_t t = 0; t < st.tasks.size(); ++t)
    if (st.joined[t] && st.direct_tasks[t])
      self->send<caf::message_priority::high>(st.tasks[t], marker_atom::value, st.epoch);
  self->delayed_send(self, st.epoch_timeout, timeout_atom::value, st.epoch);
}

void roll_back(supervisor_self self, const std::string& why);
void restart_after_roll_back(supervisor_self self);
void add_plan(supervisor_self self, const plan_ptr& plan, uint64_t version);
void maybe_quit(supervisor_self self);

caf::actor_addr sender_of(supervisor_self self) {
  return caf::actor_cast<caf::actor_addr>(self->current_sender());
}

/// A release is done once every leaving task retired and every retired actor
/// is down (its shard closed: a standby here may open the same folder next).
void maybe_release_done(supervisor_self self) {
  auto& st = self->state;
  if (!st.releasing || !st.releasing->tasks.empty() || !st.retiring.empty()) return;
  st.releasing->rp.deliver(true, std::move(st.releasing->final));
  st.releasing.reset();
}

/// A release that cannot go on: the task manager restarts the supervisor
/// instead (its stop drains and commits whatever the release left).
void give_up_release(supervisor_self self, const std::string& why) {
  auto& st = self->state;
  if (!st.releasing) return;
  log::warn("releasing tasks: {} ({} tasks not settled, {} partitions not drained, {} "
            "actors not down); restarting them instead",
            why, st.releasing->tasks.size(), st.releasing->draining.size(),
            st.retiring.size());
  st.releasing->rp.deliver(false, partition_offsets{});
  st.releasing.reset();
}

/// Every partition of this supervisor that is not retired has drained.
bool all_drained(const supervisor_state& st) {
  for (size_t p = 0; p < st.partitions.size(); ++p)
    if (!st.retired_partitions[p] && !st.drained.count(p)) return false;
  return true;
}

/// Takes task `t` of a release out of everything (epochs, ticks, commits,
/// stops) with the partitions that fed only retired tasks, which exit now;
/// what they fed is forgotten, so no commit (not even an idle epoch's resend)
/// names their offsets again: the next owner's are theirs. The task itself
/// exits now (`exit_now`) or when the caller tells it to; the release is done
/// once it is down (its shard closed: a standby here may open the same folder
/// next).
void retire(supervisor_self self, size_t t, bool exit_now) {
  auto& st = self->state;
  if (t >= st.tasks.size() || st.retired[t]) return;
  st.retired[t] = true;
  st.joined[t] = false;
  if (!st.restored[t]) {
    st.restored[t] = true;
    if (st.restoring > 0) --st.restoring;
  }
  auto& task = st.tasks[t];
  st.task_of.erase(task.address());
  st.retiring.insert(task.address());
  self->unlink_from(task);
  if (exit_now) self->send_exit(task, caf::exit_reason::user_shutdown);
  if (st.releasing) st.releasing->tasks.erase(t);
  for (size_t p = 0; p < st.partitions.size(); ++p) {
    if (st.retired_partitions[p]) continue;
    auto& feeds = st.partition_tasks[p];
    if (std::find(feeds.begin(), feeds.end(), t) == feeds.end()) continue;
    if (!std::all_of(feeds.begin(), feeds.end(), [&](size_t f) { return st.retired[f]; }))
      continue;
    st.retired_partitions[p] = true;
    st.fed[p] = true; // never released again
    for (auto f : feeds)
      st.reported.erase({p, f});
    feeds.clear();
    st.committed.erase(st.partition_tps[p]);
    st.partition_index.erase(st.partition_tps[p]);
    auto& part = st.partitions[p];
    // at_least_once: a drained partition actor quits by itself; if its down
    // message came already, there is nothing to wait for.
    if (st.live_children.count(part.address())) st.retiring.insert(part.address());
    self->unlink_from(part);
    self->send_exit(part, caf::exit_reason::user_shutdown);
  }
  log::debug("task {} ({}[{}]) released", t, st.ctx->services[st.task_keys[t].first].name,
             st.task_keys[t].second);
}

/// A leaving task cut in the epoch that just committed: it handles nothing
/// more (halted), writes the epoch's state to its stores, then exits. It is
/// retired at once, so no later epoch waits for it; the requests hold its
/// handle, not its index (a roll-back may replace the children meanwhile).
void hand_off(supervisor_self self, size_t t) {
  auto& st = self->state;
  auto task = st.tasks[t];
  auto epoch = st.epoch;
  retire(self, t, false);
  auto go = [self, task]() { self->send_exit(task, caf::exit_reason::user_shutdown); };
  self->request<caf::message_priority::high>(task, std::chrono::seconds(30),
                                             halt_atom::value)
      .then(
          [self, task, epoch, go](bool) {
            self->request<caf::message_priority::high>(
                    task, std::chrono::seconds(30), committed_atom::value, epoch, false)
                .then([go]() { go(); }, [go](caf::error&) { go(); });
          },
          [go](caf::error&) { go(); });
}

/// at_least_once release, once every leaving partition drained: asks each
/// leaving task whether it settled (stores flushed, everything it produced
/// acknowledged by Kafka). Once all have, their final offsets are kept for
/// the answer and they retire (exit, closing their shards); until then it
/// asks again every 20 ms, and gives up at the bound (the task manager then
/// restarts the supervisor, whose stop drains and commits the rest).
void settle_release(supervisor_self self) {
  auto& st = self->state;
  if (!st.releasing || st.ctx->exactly_once) return;
  auto& op = *st.releasing;
  if (std::chrono::steady_clock::now() >= op.deadline)
    return give_up_release(self, "they did not drain and settle within " +
                                     std::to_string(st.release_timeout.count()) +
                                     " ms (shutdown.timeout.ms / 2)");
  if (!op.draining.empty() || op.asked > 0) return;
  op.unsettled = false;
  op.asked = op.tasks.size();
  auto id = op.id;
  auto answered = [self, id](size_t t, bool settled, const task_offsets& offs) {
    auto& st = self->state;
    if (!st.releasing || st.releasing->id != id) return; // given up meanwhile
    auto& op = *st.releasing;
    record_offsets(self, t, offs);
    if (!settled) op.unsettled = true;
    if (--op.asked > 0) return;
    if (op.unsettled) {
      self->delayed_send(self, std::chrono::milliseconds(20), settle_atom::value);
      return;
    }
    // Committed already or not, the final offsets go in the answer: the
    // task manager commits them synchronously before the next owner starts.
    for (auto p : op.parts)
      if (auto low = agreed_offset(st, p); low >= 0)
        op.final.emplace_back(st.partition_tps[p], weft::offset{low});
    log::info("releasing {} tasks: settled, {} partitions to commit", op.tasks.size(),
              op.final.size());
    std::set<size_t> leaving = op.tasks;
    for (auto t : leaving)
      retire(self, t, true);
    maybe_release_done(self);
  };
  for (auto t : std::set<size_t>{op.tasks})
    self->request(st.tasks[t], std::chrono::seconds(10), settle_atom::value)
        .then([answered, t](bool settled,
                            const task_offsets& offs) { answered(t, settled, offs); },
              [answered, t](caf::error&) { answered(t, false, {}); });
}

/// at_least_once: starts releasing the leaving tasks of st.releasing: their
/// partitions stop fetching and drain (every batch handed out handled), the
/// tasks stop waiting for input; settle_release goes on once all drained.
/// False if a leaving task shares a partition with one that stays.
bool start_release_at_least_once(supervisor_self self) {
  auto& st = self->state;
  auto& op = *st.releasing;
  for (size_t p = 0; p < st.partitions.size(); ++p) {
    if (st.retired_partitions[p]) continue;
    auto& feeds = st.partition_tasks[p];
    auto leaving = std::count_if(feeds.begin(), feeds.end(),
                                 [&](size_t f) { return op.tasks.count(f) > 0; });
    if (leaving == 0) continue;
    if (static_cast<size_t>(leaving) != feeds.size()) return false;
    op.parts.push_back(p);
  }
  op.deadline = std::chrono::steady_clock::now() + st.release_timeout;
  log::info("releasing {} tasks: their {} partitions drain, then the tasks settle and go",
            op.tasks.size(), op.parts.size());
  for (auto p : op.parts) {
    if (!st.drained.count(p)) op.draining.insert(p);
    self->send(st.partitions[p], stop_atom::value);
  }
  for (auto t : op.tasks)
    self->send(st.tasks[t], stop_atom::value);
  self->delayed_send(self, st.release_timeout, settle_atom::value);
  settle_release(self);
  return true;
}

/// Every task reached epoch N's markers: commit the transaction.
/// Not once the supervisor is exiting: its exit handler has killed the
/// tasks, and every transaction call (commit, abort, and the flush before
/// them) serves delivery reports on this thread — reports for records of
/// dead tasks, whose slots are gone. A roll-back's halt answers arriving
/// after the exit (the tasks died) once led to exactly that: a SIGSEGV in a
/// delivery report inside abort_and_replace's flush, in a chaos run where
/// the node was dropped (fenced) during a roll-back.
void commit_epoch(supervisor_self self) {
  auto& st = self->state;
  auto* ctx = st.ctx;
  if (st.exiting) return; // its tasks are dead: no transaction call (above)
  auto offs = commit_candidates(self);
  // An idle node's empty transactions never reach the broker, so a fenced
  // node would not find out until input arrives. Once a second, an idle
  // epoch sends the committed offsets again: the coordinator then answers a
  // fenced producer with a fatal error.
  auto now = std::chrono::steady_clock::now();
  if (offs.empty() && now - st.last_broker_commit > std::chrono::seconds(1))
    for (auto& [tp, off] : st.committed)
      offs.emplace_back(tp, weft::offset{off});
  if (!offs.empty()) st.last_broker_commit = now;
  auto txn_start = caf::make_timestamp();
  status s;
  if (!offs.empty())
    s = ctx->producer->send_offsets_to_transaction(offs, *ctx->consumer,
                                                   st.txn_timeout_ms);
  auto offsets_done = caf::make_timestamp();
  if (s) s = ctx->producer->commit_transaction(st.txn_timeout_ms);
  log::debug(
      "epoch {}: send_offsets {} us, commit {} us", st.epoch.value(),
      std::chrono::duration_cast<std::chrono::microseconds>(offsets_done - txn_start)
          .count(),
      std::chrono::duration_cast<std::chrono::microseconds>(caf::make_timestamp() -
                                                            offsets_done)
          .count());
  if (!s) {
    if (s.code() == errc::kafka_fatal)
      return fail_node(self,
                       "epoch " + std::to_string(st.epoch.value()) +
                           ": the transaction cannot commit, this node is fenced "
                           "or its producer failed (another process with the same "
                           "application.id and node.id took over?): " +
                           s.message(),
                       true);
    return roll_back(self, "commit of epoch " + std::to_string(st.epoch.value()) +
                               " failed: " + s.message());
  }
  for (auto& [tp, off] : offs)
    st.committed[tp] = off.value();
  st.collecting = false;
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(caf::make_timestamp() -
                                                                  st.epoch_start)
                .count();
  auto& c = ctx->counters;
  c.epochs_committed.fetch_add(1, std::memory_order_relaxed);
  c.commits.fetch_add(1, std::memory_order_relaxed);
  c.commit_us_total.fetch_add(static_cast<uint64_t>(us), std::memory_order_relaxed);
  c.epoch_commit.observe_us(static_cast<uint64_t>(us));
  auto max = c.commit_us_max.load(std::memory_order_relaxed);
  while (static_cast<uint64_t>(us) > max &&
         !c.commit_us_max.compare_exchange_weak(max, static_cast<uint64_t>(us)))
    ;
  log::debug("epoch {} committed in {} us ({} partitions)", st.epoch.value(), us,
             offs.size());
  if (!st.final_epoch) {
    if (auto b = ctx->producer->begin_transaction(); !b)
      return fail_node(self, "cannot begin the next transaction: " + b.message(), true);
  }
  c.txn_us_total.fetch_add(
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                caf::make_timestamp() - txn_start)
                                .count()),
      std::memory_order_relaxed);
  if (!st.final_epoch) {
    // Urgent like the direct markers, so the next marker cannot overtake it.
    for (size_t t = 0; t < st.tasks.size(); ++t) {
      if (st.retired[t]) continue;
      if (st.releasing && st.releasing->tasks.count(t) && st.aligned[t]) {
        hand_off(self, t); // its last state and offsets are in this transaction
        continue;
      }
      self->send<caf::message_priority::high>(st.tasks[t], committed_atom::value,
                                              st.epoch, true);
    }
    // Between two epochs: tasks added since (grow) may start.
    maybe_feed(self);
    return;
  }
  // The node stops after this epoch: answer once every task has written its
  // state (else the next start would replay the epoch's changelog records).
  auto left = std::make_shared<size_t>(
      static_cast<size_t>(std::count(st.retired.begin(), st.retired.end(), false)));
  if (*left == 0) return answer_stop(self);
  auto done = [self, left]() {
    if (--*left == 0) answer_stop(self);
  };
  for (size_t t = 0; t < st.tasks.size(); ++t)
    if (!st.retired[t])
      self->request<caf::message_priority::high>(st.tasks[t], std::chrono::seconds(30),
                                                 committed_atom::value, st.epoch, false)
          .then([done]() mutable { done(); }, [done](caf::error&) mutable { done(); });
}

/// Halts every task (a request each, answered once the task is outside its
/// handler), then calls `then`. A task that does not answer within 10 s
/// counts as halted (the abort that follows may then race its records).
template <class Fn>
void halt_tasks(supervisor_self self, Fn then) {
  auto& st = self->state;
  auto live =
      static_cast<size_t>(std::count(st.retired.begin(), st.retired.end(), false));
  if (live == 0) return then();
  auto left = std::make_shared<size_t>(live);
  auto done = [left, then]() mutable {
    if (--*left == 0) then();
  };
  for (size_t t = 0; t < st.tasks.size(); ++t)
    if (!st.retired[t])
      self->request<caf::message_priority::high>(st.tasks[t], std::chrono::seconds(10),
                                                 halt_atom::value)
          .then([done](bool) mutable { done(); },
                [done](caf::error&) mutable { done(); });
}

/// exactly_once: every task is halted after one failed. Deliver what the
/// producer holds (no AddPartitionsToTxn in flight), abort the transaction
/// so nothing of the open epoch becomes visible, then stop the node.
void abort_and_fail(supervisor_self self) {
  auto& st = self->state;
  if (st.failed || st.exiting) return; // see commit_epoch
  log::info("tasks halted; aborting the open transaction");
  (void)st.ctx->producer->flush(st.txn_timeout_ms);
  if (auto s = st.ctx->producer->abort_transaction(st.txn_timeout_ms); !s)
    log::warn("stopping: cannot abort the transaction ({}); nothing of it commits, and "
              "the next start with this transactional.id aborts it",
              s.message());
  else
    log::info("transaction aborted: nothing after the last committed epoch is visible");
  // The aborted records' delivery reports reach their tasks before they go.
  (void)st.ctx->producer->flush(st.txn_timeout_ms);
  st.failed = true;
  st.failing = false;
  alarm(self, st.failing_why, false);
  if (st.stopping) answer_stop(self);
}

/// exactly_once, one node: a task failed (bad.record.policy=fail, a failed
/// flush or delivery), so the node stops without committing anything of the
/// open epoch. As in a roll-back, every task is halted before the abort:
/// aborting while other tasks still produce raced their AddPartitionsToTxn
/// and librdkafka 2.0.2 failed the abort with a fatal INVALID_TXN_STATE
/// (confluentinc/librdkafka#4849) in about one stop in eight.
void fail_after_abort(supervisor_self self, const std::string& why) {
  auto& st = self->state;
  if (st.failed || st.failing) return;
  st.failing = true;
  st.failing_why = why;
  st.collecting = false;
  // A roll-back in progress halts and aborts already: it ends the node
  // instead of restarting it (abort_and_replace).
  if (st.rolling_back) return;
  halt_tasks(self, [self] { abort_and_fail(self); });
}

void abort_and_replace(supervisor_self self);

/// Rolls the node back to its last committed epoch (see the header). First
/// every task is halted, so nothing is produced while the transaction aborts:
/// librdkafka 2.0.2 may fail an abort that races an AddPartitionsToTxn with a
/// fatal INVALID_TXN_STATE (confluentinc/librdkafka#4849), which ended the
/// node about once in three roll-backs.
void roll_back(supervisor_self self, const std::string& why) {
  auto& st = self->state;
  if (st.rolling_back || st.failed || st.failing) return;
  log::warn("aborting epoch {}: {}", st.epoch.value(), why);
  st.ctx->counters.epochs_aborted.fetch_add(1, std::memory_order_relaxed);
  st.collecting = false;
  st.rolling_back = true;
  halt_tasks(self, [self] { abort_and_replace(self); });
}

/// Every task is halted: deliver what the producer holds (so no
/// AddPartitionsToTxn is in flight), abort, and replace the actors.
void abort_and_replace(supervisor_self self) {
  auto& st = self->state;
  auto* ctx = st.ctx;
  if (st.failed || st.exiting) return; // see commit_epoch
  (void)ctx->producer->flush(st.txn_timeout_ms);
  if (auto s = ctx->producer->abort_transaction(st.txn_timeout_ms); !s) {
    // A fenced producer may first report an abortable error and then fail
    // the abort with a fatal one: either way it can never commit again.
    return fail_node(self,
                     "cannot abort the transaction (" + s.message() +
                         "); this node is fenced or its producer failed",
                     true);
  }
  // Serve the delivery reports of the purged records before their tasks die.
  (void)ctx->producer->flush(st.txn_timeout_ms);
  if (st.failing) {
    // A task failed during the roll-back: stop instead of restarting.
    log::info("transaction aborted: nothing after the last committed epoch is visible");
    st.failed = true;
    st.failing = false;
    alarm(self, st.failing_why, false);
    if (st.stopping) answer_stop(self);
    return;
  }
  for (size_t t = 0; t < st.tasks.size(); ++t) {
    if (st.retired[t]) continue; // going already
    auto& a = st.tasks[t];
    st.dying.insert(a.address());
    self->unlink_from(a);
    self->send_exit(a, caf::exit_reason::user_shutdown);
  }
  for (size_t p = 0; p < st.partitions.size(); ++p) {
    if (st.retired_partitions[p]) continue;
    auto& a = st.partitions[p];
    st.dying.insert(a.address());
    self->unlink_from(a);
    self->send_exit(a, caf::exit_reason::user_shutdown);
  }
  // A release in progress is complete with the roll-back: the re-plan holds
  // only the units that stay (the task manager set them first), and the
  // leaving tasks' last commit is the last committed epoch.
  if (st.releasing) st.releasing->tasks.clear();
  st.tasks.clear();
  st.partitions.clear();
  st.task_of.clear();
  if (st.dying.empty()) restart_after_roll_back(self);
}

/// The replaced actors are gone (their shards closed): ask the task manager
/// to re-assign the input at the committed offsets.
void restart_after_roll_back(supervisor_self self) {
  auto& st = self->state;
  self->request(st.manager, std::chrono::milliseconds(st.txn_timeout_ms),
                replan_atom::value)
      .then(
          [self](plan_ptr& plan, uint64_t version) {
            auto& st = self->state;
            if (st.failed) return;
            if (auto b = st.ctx->producer->begin_transaction(); !b)
              return fail_node(
                  self, "cannot begin a transaction after an abort: " + b.message(),
                  true);
            st.rolling_back = false;
            st.plan_version = version;
            spawn_children(self, *plan);
            log::info("rolled back to the last committed epoch; {} tasks restarted",
                      st.tasks.size());
            maybe_release_done(self);
            if (st.stopping) {
              // Nothing after the committed epoch is needed to stop.
              for (auto& p : st.partitions)
                self->send(p, stop_atom::value);
              st.final_epoch = true;
              answer_stop(self);
              return;
            }
            maybe_feed(self);
            // Units added during the roll-back that the full plan does not hold.
            auto adds = std::move(st.pending_adds);
            st.pending_adds.clear();
            for (auto& [p, v] : adds)
              add_plan(self, p, v);
          },
          [self](caf::error& e) {
            fail_node(self,
                      "re-assigning input after an abort: " + self->system().render(e));
          });
}

/// The node gained units: spawn their tasks (after a roll-back in progress).
void add_plan(supervisor_self self, const plan_ptr& plan, uint64_t version) {
  auto& st = self->state;
  if (st.failed || st.failing || st.stopping || version <= st.plan_version) return;
  if (st.rolling_back) {
    st.pending_adds.emplace_back(plan, version);
    return;
  }
  if (plan->tasks.empty()) return;
  log::debug("{} tasks and {} partitions added", plan->tasks.size(),
             plan->partitions.size());
  add_children(self, *plan);
  maybe_feed(self);
}

/// Exiting: every child down, then quit.
void maybe_quit(supervisor_self self) {
  auto& st = self->state;
  if (st.exiting && st.live_children.empty()) self->quit(*st.exiting);
}

supervisor_actor::behavior_type supervisor_behavior(supervisor_self self,
                                                    node_context* ctx, plan_ptr plan,
                                                    uint64_t version,
                                                    task_manager_actor manager) {
  auto& st = self->state;
  st.ctx = ctx;
  st.manager = std::move(manager);
  st.plan_version = version;
  st.interval = std::chrono::milliseconds(ctx->cfg.get_int("commit.interval.ms"));
  st.epoch_timeout = std::chrono::milliseconds(ctx->cfg.get_int("epoch.timeout.ms"));
  st.txn_timeout_ms = static_cast<int>(ctx->cfg.get_int("epoch.timeout.ms"));
  st.release_timeout =
      std::chrono::milliseconds(ctx->cfg.get_int("shutdown.timeout.ms") / 2);
  st.last_progress = std::chrono::steady_clock::now();
  spawn_children(self, *plan);
  maybe_feed(self);
  // A detached actor needs an exit handler to stop with the node (FACTS.md).
  // (As CAF's default, a linked child ending normally is no reason to stop.)
  // It quits once its children are gone, so their shards are closed.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    if (msg.reason == caf::exit_reason::normal) return;
    auto& st = self->state;
    if (st.exiting) return;
    if (st.live_children.count(msg.source) && !st.stopping) {
      // A linked child failed: the node cannot go on with this supervisor.
      auto why = "an actor of this node died: " + self->system().render(msg.reason);
      log::error("{}", why);
      st.failed = true;
      alarm(self, why, false);
    }
    st.exiting = msg.reason;
    // Retired ones too: a task handing off may still wait for its commit.
    for (auto& a : st.tasks)
      self->send_exit(a, msg.reason);
    for (auto& a : st.partitions)
      self->send_exit(a, msg.reason);
    maybe_quit(self);
  });
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    st.live_children.erase(msg.source);
    if (st.exiting) return maybe_quit(self);
    if (st.retiring.erase(msg.source)) return maybe_release_done(self);
    if (st.dying.erase(msg.source)) {
      if (st.dying.empty() && st.rolling_back) restart_after_roll_back(self);
      return;
    }
    if (msg.reason == caf::exit_reason::normal) return;
    if (st.stopping && msg.reason == caf::exit_reason::user_shutdown) return;
    auto why = "an actor of this node died: " + self->system().render(msg.reason);
    log::error("{}", why);
    st.failed = true;
    alarm(self, why, false);
    if (st.stopping) answer_stop(self);
  });
  self->delayed_send(self, st.interval, tick_atom::value);
  return {
      [self](tick_atom) {
        auto& st = self->state;
        if (st.ctx->exactly_once) maybe_feed(self);
        if (!st.ctx->exactly_once) {
          commit(self);
        } else if (!st.collecting && st.feeding && !st.rolling_back && !st.failed &&
                   !st.failing && !st.final_epoch &&
                   std::find(st.joined.begin(), st.joined.end(), true) !=
                       st.joined.end()) {
          if (st.stopping) {
            st.final_epoch = true;
            log::debug("stopping: final epoch {}", st.epoch.value() + 1);
          }
          start_epoch(self);
        }
        for (size_t t = 0; t < st.tasks.size(); ++t)
          if (st.joined[t]) self->send(st.tasks[t], tick_atom::value);
        log_progress(self);
        if (!st.stopping || (st.ctx->exactly_once && !st.final_epoch && !st.failed))
          self->delayed_send(self, st.interval, tick_atom::value);
      },
      [self](aligned_atom, size_t task, weft::epoch epoch, const task_offsets& offs) {
        auto& st = self->state;
        auto i = st.task_of.find(sender_of(self));
        if (i == st.task_of.end() || i->second != task) return; // replaced
        if (!st.collecting || epoch != st.epoch || st.aligned[task] || !st.joined[task])
          return;
        st.aligned[task] = true;
        record_offsets(self, task, offs);
        if (++st.aligned_count == st.epoch_tasks) commit_epoch(self);
      },
      [self](timeout_atom, weft::epoch epoch) {
        auto& st = self->state;
        if (!st.collecting || epoch != st.epoch) return;
        std::string late;
        for (size_t t = 0; t < st.aligned.size(); ++t)
          if (st.joined[t] && !st.aligned[t])
            late += (late.empty() ? "" : ", ") + std::to_string(t);
        roll_back(self, "tasks " + late + " did not reach the marker of epoch " +
                            std::to_string(epoch.value()) + " within epoch.timeout.ms");
      },
      [self](abort_atom, const std::string& why) {
        auto& st = self->state;
        if (!st.task_of.count(sender_of(self))) return; // replaced
        roll_back(self, why);
      },
      [self](restored_atom, size_t) {
        auto& st = self->state;
        auto i = st.task_of.find(sender_of(self));
        if (i == st.task_of.end()) return; // replaced
        if (!st.restored[i->second]) {
          st.restored[i->second] = true;
          if (st.restoring > 0) --st.restoring;
        }
        maybe_feed(self);
      },
      [self](add_atom, plan_ptr& plan, uint64_t version) -> bool {
        add_plan(self, plan, version);
        return true;
      },
      [self](release_atom, plan_ptr& plan) -> caf::result<bool, partition_offsets> {
        auto& st = self->state;
        if (st.failed || st.failing || st.rolling_back || st.stopping || st.releasing)
          return {false, partition_offsets{}};
        std::set<task_key> keys;
        for (auto& t : plan->tasks)
          keys.emplace(t.service, t.partition);
        std::set<size_t> leaving;
        for (size_t t = 0; t < st.tasks.size(); ++t)
          if (!st.retired[t] && keys.count(st.task_keys[t])) leaving.insert(t);
        if (leaving.empty()) return {true, partition_offsets{}};
        auto rp = self->make_response_promise<bool, partition_offsets>();
        st.releasing = supervisor_state::release_op{};
        st.releasing->tasks = leaving;
        st.releasing->rp = rp;
        st.releasing->id = ++st.releases;
        if (!st.ctx->exactly_once) {
          if (!start_release_at_least_once(self)) {
            st.releasing.reset();
            return {false, partition_offsets{}};
          }
          return rp;
        }
        log::info("releasing {} tasks: each goes once an epoch it was cut in committed",
                  leaving.size());
        // Tasks in no epoch yet were never fed: nothing of theirs to commit.
        for (auto t : leaving)
          if (!st.joined[t]) retire(self, t, true);
        maybe_release_done(self);
        return rp;
      },
      [self](offsets_atom, size_t task, const task_offsets& offs) {
        record_offsets(self, task, offs);
      },
      [self](failed_atom, const std::string& why) {
        auto& st = self->state;
        if (st.ctx->exactly_once) {
          if (!st.task_of.count(sender_of(self))) return; // replaced
          // Clustered: a zombie's records fail once it is fenced; the
          // roll-back finds out (its abort fails) and the node rejoins.
          if (st.ctx->clustered) return roll_back(self, why);
          // Nothing of the open epoch may become visible.
          return fail_after_abort(self, why);
        }
        st.failed = true;
        give_up_release(self, "a task failed");
        alarm(self, why, false);
        if (st.stopping) answer_stop(self);
      },
      [self](settle_atom) { settle_release(self); },
      [self](stop_atom) -> caf::result<void> {
        auto& st = self->state;
        st.stopping = true;
        give_up_release(self, "the node stops");
        st.stop_promise = self->make_response_promise();
        for (size_t p = 0; p < st.partitions.size(); ++p)
          if (!st.retired_partitions[p]) self->send(st.partitions[p], stop_atom::value);
        for (size_t t = 0; t < st.tasks.size(); ++t)
          if (!st.retired[t]) self->send(st.tasks[t], stop_atom::value);
        if (st.failed || st.partitions.empty() ||
            (!st.ctx->exactly_once && all_drained(st)))
          answer_stop(self);
        if (st.ctx->exactly_once && !st.feeding && !st.rolling_back && !st.failing) {
          // Nothing was handed to a task yet: nothing to commit.
          st.final_epoch = true;
          answer_stop(self);
        }
        // Under exactly_once the ticks go on until the final epoch committed;
        // a failure's abort in progress answers once it is done
        // (abort_and_fail), so the node never stops with it half done.
        return st.stop_promise;
      },
      [self](drained_atom, const topic_partition& tp) {
        auto& st = self->state;
        if (st.ctx->exactly_once) return; // the final epoch answers
        auto i = st.partition_index.find(tp);
        if (i == st.partition_index.end()) return; // retired
        st.drained.insert(i->second);
        log::debug("drained {} ({}/{})", to_string(tp), st.drained.size(),
                   st.partitions.size());
        if (st.releasing && st.releasing->draining.erase(i->second) > 0 &&
            st.releasing->draining.empty())
          settle_release(self);
        if (st.stopping && all_drained(st)) answer_stop(self);
      },
      [self](final_atom, bool flush) -> caf::result<partition_offsets> {
        // Ask every task for what is safe to commit now, then answer with the
        // offsets per partition.
        auto rp = self->make_response_promise<partition_offsets>();
        auto& st = self->state;
        auto left = std::make_shared<size_t>(
            static_cast<size_t>(std::count(st.retired.begin(), st.retired.end(), false)));
        auto finish = [self, rp]() mutable { rp.deliver(commit_candidates(self)); };
        if (*left == 0) {
          finish();
          return rp;
        }
        for (size_t i = 0; i < st.tasks.size(); ++i)
          if (!st.retired[i])
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

supervisor_actor spawn_supervisor(caf::actor_system& sys, node_context* ctx,
                                  plan_ptr plan, uint64_t version,
                                  task_manager_actor manager) {
  if (ctx->exactly_once)
    return sys.spawn<caf::detached>(supervisor_behavior, ctx, std::move(plan), version,
                                    std::move(manager));
  return sys.spawn(supervisor_behavior, ctx, std::move(plan), version,
                   std::move(manager));
}

} // namespace weft::detail
