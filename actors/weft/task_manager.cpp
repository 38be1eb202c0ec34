#include "weft/task_manager.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <thread>

#include "weft/actors/delivery_tracker.hpp"
#include "weft/actors/node_context.hpp"
#include "weft/actors/standby.hpp"
#include "weft/actors/supervisor.hpp"
#include "weft/log.hpp"
#include "weft/protocol.hpp"
#include "weft/topology.hpp"

namespace weft::detail {

using cluster::call_result;
using cluster::unit_id;

status make_producer(node_context& ctx, const std::string& transactional_id,
                     std::function<void(const std::string&)> on_fenced) {
  auto pprops = ctx.cfg.kafka_properties(client_kind::producer);
  // Partition keys like Kafka's Java client, so Java and weft services agree.
  pprops.emplace("partitioner", "murmur2_random");
  if (ctx.exactly_once) pprops["transactional.id"] = transactional_id;
  auto producer = kafka::producer::create(
      std::move(pprops),
      [](void* opaque, const status& st, int64_t offset) {
        if (st.ok()) {
          on_delivered(opaque, nullptr, offset);
        } else {
          auto m = st.message();
          on_delivered(opaque, &m, -1);
        }
      },
      [on_fenced = std::move(on_fenced)](const status& st) {
        if (st.code() == errc::kafka_fatal)
          on_fenced(st.message());
        else
          log::warn("{}", st.message());
      });
  if (!producer) return producer.error();
  ctx.producer = std::move(*producer);
  return {};
}

status begin_first_transaction(node_context& ctx, const std::string& transactional_id,
                               int timeout_ms) {
  // Fence any earlier incarnation with our transactional.id (aborting its
  // open transaction) before reading committed offsets or restoring
  // changelogs, so neither can change under us. A broker that moves its
  // coordinator answers NOT_COORDINATOR for a while: retriable, retried.
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int attempt = 0;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    auto st =
        ctx.producer->init_transactions(static_cast<int>(std::max<int64_t>(left, 100)));
    if (st) break;
    ++attempt;
    bool again = (st.code() == errc::kafka_retriable || st.code() == errc::timed_out) &&
                 std::chrono::steady_clock::now() < deadline;
    if (!again)
      return make_error(st.code(), "exactly_once: initialising transactional.id '" +
                                       transactional_id + "': " + st.message());
    log::warn(
        "exactly_once: initialising transactional.id '{}' (attempt {}): {}; retrying",
        transactional_id, attempt, st.message());
    // librdkafka's own retries wait inside init_transactions; this only
    // spaces out whole attempts, on the task manager's own thread.
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(100 * attempt, 1000)));
  }
  if (auto st = ctx.producer->begin_transaction(); !st) return st;
  log::info("exactly_once: transactional.id {}", transactional_id);
  return {};
}

namespace {

struct manager_state {
  task_manager_settings s;
  supervisor_actor supervisor;
  /// A supervisor going down: its address, the timer's token, what then.
  struct pending_down {
    caf::actor_addr addr;
    uint64_t token = 0;
    std::function<void(bool)> done;
  };
  std::optional<pending_down> going_down;
  uint64_t down_tokens = 0;
  std::set<size_t> owned;
  uint64_t version = 0; ///< of the plans handed to the supervisor
  bool busy = false;
  std::deque<std::function<void()>> queue;
  std::chrono::milliseconds bound{30000};
  static inline const char* name = "weft.task_manager";
};

using manager_actor = task_manager_actor::stateful_pointer<manager_state>;

node_context& ctx_of(manager_actor self) {
  return *self->state.s.ctx;
}

void set_owned(manager_actor self, std::set<size_t> units) {
  auto& st = self->state;
  st.owned = units;
  std::lock_guard<std::mutex> guard{st.s.ctx->owned_mu};
  st.s.ctx->owned = std::move(units);
}

/// Runs `op` now, or once the commands before it are done.
void enqueue(manager_actor self, std::function<void()> op) {
  auto& st = self->state;
  if (st.busy) {
    st.queue.push_back(std::move(op));
    return;
  }
  st.busy = true;
  op();
}

void next(manager_actor self) {
  auto& st = self->state;
  st.busy = false;
  if (st.queue.empty()) return;
  auto op = std::move(st.queue.front());
  st.queue.pop_front();
  st.busy = true;
  op();
}

call_result failure(errc code, std::string why) {
  return call_result{static_cast<int32_t>(code), std::move(why), 0};
}

/// Where an assignment's time went (the node log's "applied in" line).
struct plan_timing {
  int64_t offsets_ms = 0; ///< reading the committed offsets
  int64_t assign_ms = 0;  ///< the consumer's (incremental) assign
};

int64_t ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now() - t)
      .count();
}

/// The committed offsets of `tps` (-1: none), read again after a failure
/// (100 ms, doubling to 2 s, each attempt logged) until startup.timeout.ms
/// passed. Never left to librdkafka: when its own lookup after assign() is
/// answered NOT_COORDINATOR for the whole request (a coordinator still
/// loading, right after a broker start), librdkafka 2.0.2 never retries and
/// the partition never starts fetching (confluentinc/librdkafka#5586; seen
/// here as a single node whose inventory service never read its input).
/// Runs on the task manager, a detached actor: blocking is its job.
result<std::vector<int64_t>> read_committed(node_context& ctx,
                                            const std::vector<topic_partition>& tps) {
  const auto budget = std::chrono::milliseconds(ctx.cfg.get_int("startup.timeout.ms"));
  const auto start = std::chrono::steady_clock::now();
  auto backoff = std::chrono::milliseconds(100);
  for (int attempt = 1;; ++attempt) {
    auto committed = ctx.consumer->committed(tps, 5000);
    if (committed) {
      if (attempt > 1)
        log::info("read the committed offsets of the assignment at attempt {}", attempt);
      return committed;
    }
    auto spent = std::chrono::steady_clock::now() - start;
    if (spent + backoff >= budget)
      return make_error(committed.error().code(),
                        "reading the committed offsets of the assignment failed for " +
                            std::to_string(ms_since(start)) +
                            " ms (startup.timeout.ms): " + committed.error().message());
    log::warn("reading the committed offsets of the assignment (attempt {}): {}; again "
              "in {} ms",
              attempt, committed.error().message(), backoff.count());
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }
}

/// Where a partition with no committed offset starts: the consumer's
/// auto.offset.reset (weft's default earliest) as an explicit logical
/// offset, so librdkafka never looks the committed offset up itself (see
/// read_committed). "error" (or anything else) leaves it to librdkafka.
int64_t start_without_commit(node_context& ctx) {
  auto props = ctx.cfg.kafka_properties(client_kind::consumer);
  auto reset = props.count("auto.offset.reset") ? props["auto.offset.reset"] : "earliest";
  if (reset == "earliest" || reset == "smallest" || reset == "beginning")
    return RD_KAFKA_OFFSET_BEGINNING;
  if (reset == "latest" || reset == "largest" || reset == "end")
    return RD_KAFKA_OFFSET_END;
  return kafka::consumer::committed_offset;
}

/// The plan of `units`' tasks: takes each partition's queue and assigns the
/// partitions at their committed offsets — replacing the assignment, or
/// (incremental) adding to it.
result<plan_ptr> make_plan(manager_actor self, const std::set<size_t>& units,
                           bool incremental, plan_timing* timing = nullptr) {
  auto& ctx = ctx_of(self);
  auto& topo = *self->state.s.topo;
  auto plan = std::make_shared<assignment_plan>();
  std::map<task_key, size_t> task_index;
  std::map<topic_partition, std::vector<size_t>> feeds;
  for (size_t s = 0; s < ctx.services.size(); ++s)
    for (auto& topic : ctx.services[s].input_topics)
      for (int32_t p = 0; p < topo.input_partitions.at(topic); ++p) {
        auto key = std::make_pair(s, p);
        if (!units.count(topo.unit_of.at(key))) continue;
        if (!task_index.count(key)) {
          task_index[key] = plan->tasks.size();
          plan->tasks.push_back({s, p});
        }
        feeds[{topic, partition_id{p}}].push_back(task_index[key]);
      }
  std::vector<topic_partition> tps;
  for (auto& [tp, tasks] : feeds) {
    tps.push_back(tp);
    auto q = ctx.consumer->take_queue(tp);
    if (!q) return make_error(errc::internal, "no queue for " + to_string(tp));
    plan->partitions.push_back({tp, std::move(q), tasks});
  }
  // Records below the committed offsets are done: a fetch left over from an
  // earlier assignment of a partition (librdkafka delivered one twice after
  // an incremental assignment was replaced) must not hand them on. Without
  // an answer the queues still drop any offset delivered twice.
  // The fetches start there too: left to look the offsets up again itself,
  // librdkafka once started a re-added partition at offset 0 (its lookup
  // failed under load; the floor kept the records from being handed on).
  auto offsets_start = std::chrono::steady_clock::now();
  std::vector<std::pair<topic_partition, weft::offset>> starts;
  for (auto& tp : tps)
    starts.emplace_back(tp, weft::offset{kafka::consumer::committed_offset});
  if (!tps.empty()) {
    auto committed = read_committed(ctx, tps);
    if (!committed) return committed.error();
    const auto uncommitted = start_without_commit(ctx);
    for (size_t i = 0; i < tps.size(); ++i)
      if ((*committed)[i] >= 0) {
        plan->partitions[i].queue->set_floor((*committed)[i]);
        starts[i].second = weft::offset{(*committed)[i]};
      } else {
        starts[i].second = weft::offset{uncommitted};
      }
  }
  // Units share no partition: added tasks' partitions are new to the
  // consumer, and the running ones' go on where they are.
  auto assign_start = std::chrono::steady_clock::now();
  if (timing) timing->offsets_ms = ms_since(offsets_start);
  if (incremental) {
    if (auto s = ctx.consumer->incremental_assign_at(starts); !s) return s;
    if (timing) timing->assign_ms = ms_since(assign_start);
    return plan;
  }
  if (auto s = ctx.consumer->assign_at(starts); !s) return s;
  // A partition paused by the previous partition actor's flow control stays
  // paused in librdkafka across the re-assignment: the new partition actor
  // starts with full credit and would never resume it. (Only those: resuming
  // a partition that was never paused right after assign() is not a no-op.)
  std::set<topic_partition> paused;
  {
    std::lock_guard<std::mutex> guard{ctx.paused_mu};
    paused.swap(ctx.paused);
  }
  for (auto& tp : paused)
    if (auto s = ctx.consumer->resume(tp); !s) return s;
  return plan;
}

/// Resumes the partitions in `leaving` that flow control left paused: a
/// partition's pause outlives its unassignment in librdkafka, so when this
/// node is given it back the new partition actor — starting with full credit,
/// never having paused it — would wait for records forever.
void resume_leaving(node_context& ctx, const std::set<topic_partition>& leaving) {
  std::vector<topic_partition> paused;
  {
    std::lock_guard<std::mutex> guard{ctx.paused_mu};
    for (auto& tp : leaving)
      if (ctx.paused.erase(tp)) paused.push_back(tp);
  }
  for (auto& tp : paused) {
    if (auto s = ctx.consumer->resume(tp); !s)
      log::warn("resuming {}, paused by flow control, as it leaves this node: {}",
                to_string(tp), s.message());
    else
      log::info("resumed {}, paused by flow control, as it leaves this node",
                to_string(tp));
  }
}

void set_standbys(manager_actor self, const std::vector<unit_id>& units) {
  auto& st = self->state;
  if (!st.s.standbys) return;
  std::vector<size_t> us{units.begin(), units.end()};
  st.s.standbys->set(st.s.topo->stateful_tasks(us, ctx_of(self).services));
}

/// Waits (bounded) until `sup` is down — its children gone and their shards
/// closed — then calls `done` with whether it went down in time.
void await_down(manager_actor self, supervisor_actor sup,
                std::function<void(bool)> done) {
  auto& st = self->state;
  auto token = ++st.down_tokens;
  st.going_down = manager_state::pending_down{sup.address(), token, std::move(done)};
  self->monitor(sup);
  self->delayed_send(self, st.bound, down_timeout_atom::value, token);
}

void down_seen(manager_actor self, const caf::actor_addr& addr, uint64_t token,
               bool in_time) {
  auto& st = self->state;
  if (!st.going_down) return;
  if (in_time ? st.going_down->addr != addr : st.going_down->token != token) return;
  auto done = std::move(st.going_down->done);
  st.going_down.reset();
  if (!in_time) log::warn("the supervisor did not stop within shutdown.timeout.ms");
  done(in_time);
}

/// Stops the running supervisor: `graceful` drains and commits first (the
/// final epoch under exactly_once); otherwise every task dies at once and
/// nothing more is committed. Then waits until its children are gone.
void stop_supervisor(manager_actor self, bool graceful, std::function<void(status)> done,
                     bool final_stop = false) {
  auto& st = self->state;
  if (!st.supervisor) return done({});
  auto sup = st.supervisor;
  st.supervisor = nullptr;
  auto* ctx = &ctx_of(self);
  auto finish = [self, sup, done, final_stop, ctx](status result) {
    // The node stops: no delivery report may touch a task from here on.
    if (final_stop) ctx->producer->stop_polling();
    self->send_exit(sup, caf::exit_reason::user_shutdown);
    await_down(self, sup, [self, done, result](bool down) {
      if (!down) {
        // Its tasks may still use the producer and the partitions' queues:
        // nothing may be re-created under them. The node stops.
        auto why = std::string{"the tasks did not stop within shutdown.timeout.ms + 2 x "
                               "epoch.timeout.ms"};
        if (self->state.s.on_alarm) self->state.s.on_alarm(why, false);
        return done(make_error(errc::timed_out, why));
      }
      done(result);
    });
  };
  if (!graceful) return finish({});
  auto bound = st.bound;
  // 1. Stop fetching and wait until in-flight records are handled (under
  // exactly_once: the final epoch committed).
  self->request(sup, bound, stop_atom::value)
      .then(
          [self, sup, bound, finish, ctx]() {
            if (ctx->exactly_once) return finish({});
            // 2. Flush the stores' caches into their changelogs.
            self->request(sup, bound, final_atom::value, true)
                .then(
                    [self, sup, bound, finish, ctx](const partition_offsets&) {
                      // 3. Wait until Kafka acknowledged everything produced.
                      if (auto s = ctx->producer->flush(static_cast<int>(bound.count()));
                          !s)
                        log::warn("{}", s.message());
                      // 4. Commit what is now safe, synchronously.
                      self->request(sup, bound, final_atom::value, false)
                          .then(
                              [finish, bound, ctx](const partition_offsets& offs) {
                                if (auto s = ctx->consumer->commit_sync(
                                        offs, static_cast<int>(bound.count()));
                                    !s) {
                                  log::warn("final commit failed: {}", s.message());
                                } else if (!offs.empty()) {
                                  ctx->counters.commits.fetch_add(1);
                                  log::info("committed final offsets of {} partitions",
                                            offs.size());
                                }
                                finish({});
                              },
                              [self, finish](caf::error& e) {
                                log::warn("final offsets: {}", self->system().render(e));
                                finish({});
                              });
                    },
                    [self, finish](caf::error& e) {
                      log::warn("flushing state: {}", self->system().render(e));
                      finish({});
                    });
          },
          [self, finish](caf::error& e) {
            auto why = "drain did not finish: " + self->system().render(e);
            log::warn("{}", why);
            finish(make_error(errc::timed_out, why));
          });
}

/// Starts a supervisor for `units` (none: no supervisor) after a stop.
status start_units(manager_actor self, const std::set<size_t>& units) {
  auto& st = self->state;
  auto& ctx = ctx_of(self);
  set_owned(self, units);
  if (auto s = ctx.consumer->assign_at({}); !s) log::warn("{}", s.message());
  if (units.empty()) return {};
  auto plan = make_plan(self, units, false);
  if (!plan)
    return make_error(plan.error().code(),
                      "assigning input partitions: " + plan.error().message());
  st.supervisor = spawn_supervisor(self->system(), &ctx, std::move(*plan), ++st.version,
                                   caf::actor_cast<task_manager_actor>(self));
  return {};
}

using reply_fn = std::function<void(status)>;

/// Stops every task (committing: a final epoch) and starts `desired` anew.
void restart(manager_actor self, std::set<size_t> desired, std::vector<unit_id> standbys,
             reply_fn reply) {
  auto* ctxp = &ctx_of(self);
  stop_supervisor(self, true, [self, desired, standbys, reply, ctxp](status s) mutable {
    if (!s) return reply(s);
    if (ctxp->exactly_once) {
      // The final epoch committed; a roll-back during the stop may have left
      // an empty transaction open.
      (void)ctxp->producer->abort_transaction(5000);
      if (auto b = ctxp->producer->begin_transaction(); !b)
        return reply(make_error(b.code(), "beginning a transaction: " + b.message()));
    }
    set_standbys(self, standbys);
    reply(start_units(self, desired));
  });
}

/// Adds `added`'s tasks to the running supervisor (their standby shards here
/// close first: the tasks open the same folders).
void add_units(manager_actor self, const std::set<size_t>& added,
               std::vector<unit_id> standbys, int64_t generation, reply_fn reply) {
  auto& st = self->state;
  auto standbys_start = std::chrono::steady_clock::now();
  set_standbys(self, standbys);
  auto standbys_ms = ms_since(standbys_start);
  if (added.empty()) return reply({});
  plan_timing timing;
  auto plan = make_plan(self, added, true, &timing);
  log::debug("cluster: generation {}: standby shards set in {} ms, committed offsets "
             "read in {} ms, partitions added in {} ms",
             generation, standbys_ms, timing.offsets_ms, timing.assign_ms);
  if (!plan)
    return reply(make_error(plan.error().code(), "assigning the input of added units: " +
                                                     plan.error().message()));
  self->request(st.supervisor, st.bound, add_atom::value, *plan, ++st.version)
      .then([reply](bool) { reply({}); },
            [self, reply](caf::error& e) {
              reply(make_error(errc::timed_out,
                               "adding tasks: " + self->system().render(e)));
            });
}

/// The units that move away leave the running supervisor, the gained ones
/// are added, and the units that stay run on without a pause — Kafka
/// Streams' cooperative rebalancing. The leaving units' last state and
/// offsets commit first: under exactly_once in an epoch; under
/// at_least_once their input drains, their stores flush, what they produced
/// is acknowledged, and their final offsets are committed here,
/// synchronously (this actor is detached), before their partitions are
/// unassigned — the next owner starts only once this node reports them
/// gone. Whatever goes wrong falls back to a restart.
void hand_off(manager_actor self, std::set<size_t> desired, std::vector<unit_id> standbys,
              int64_t generation, reply_fn reply) {
  auto& st = self->state;
  auto& ctx = ctx_of(self);
  auto& topo = *st.s.topo;
  std::set<size_t> removed, added;
  for (auto u : st.owned)
    if (!desired.count(u)) removed.insert(u);
  for (auto u : desired)
    if (!st.owned.count(u)) added.insert(u);
  auto leaving = std::make_shared<assignment_plan>();
  std::set<topic_partition> unassign; // once each: several services may read one
  std::set<task_key> seen;
  for (size_t s = 0; s < ctx.services.size(); ++s)
    for (auto& topic : ctx.services[s].input_topics)
      for (int32_t p = 0; p < topo.input_partitions.at(topic); ++p) {
        if (!removed.count(topo.unit_of.at({s, p}))) continue;
        if (seen.insert({s, p}).second) leaving->tasks.push_back({s, p});
        unassign.insert({topic, partition_id{p}});
      }
  // From here a roll-back re-plans only the units that stay.
  set_owned(self, desired);
  auto started = std::chrono::steady_clock::now();
  self->request(st.supervisor, st.bound, release_atom::value, leaving)
      .then(
          [self, desired, standbys, generation, reply, added, unassign, started,
           n = leaving->tasks.size()](bool released, const partition_offsets& final) {
            if (!released) {
              log::info("cluster: generation {}: the tasks cannot be released now; "
                        "restarting them instead",
                        generation);
              return restart(self, desired, standbys, reply);
            }
            auto& ctx = ctx_of(self);
            if (!final.empty()) {
              // at_least_once: what the leaving tasks finished, committed
              // before anyone else may start them.
              if (auto s = ctx.consumer->commit_sync(
                      final, static_cast<int>(self->state.bound.count()));
                  !s) {
                log::warn("cluster: generation {}: committing the released units' final "
                          "offsets failed ({}); their next owner re-reads from the last "
                          "commit (at_least_once: repeats, nothing lost)",
                          generation, s.message());
              } else {
                ctx.counters.commits.fetch_add(1, std::memory_order_relaxed);
                for (auto& [tp, off] : final)
                  log::debug("released {} committed at {}", to_string(tp), off.value());
              }
            }
            if (n > 0)
              log::info("cluster: generation {}: {} tasks released in {} ms", generation,
                        n, ms_since(started));
            resume_leaving(ctx, unassign);
            if (auto s = ctx.consumer->incremental_unassign(
                    {unassign.begin(), unassign.end()});
                !s)
              log::warn("unassigning the released units' input: {}", s.message());
            add_units(self, added, standbys, generation, reply);
          },
          [self, desired, standbys, reply, generation](caf::error& e) {
            log::warn(
                "cluster: generation {}: releasing tasks: {}; restarting them instead",
                generation, self->system().render(e));
            restart(self, desired, standbys, reply);
          });
}

void run(manager_actor self, std::set<size_t> desired, bool only_add,
         std::vector<unit_id> standbys, int64_t generation,
         caf::typed_response_promise<call_result> rp) {
  auto& st = self->state;
  auto start = std::chrono::steady_clock::now();
  auto& topo = *st.s.topo;
  if (st.s.standbys) { // clustered: say what moves
    for (auto u : st.owned)
      if (!desired.count(u))
        log::info("cluster: generation {}: unit {} ({}) moves away from here", generation,
                  u, topo.units[u].name);
    for (auto u : desired)
      if (!st.owned.count(u))
        log::info("cluster: generation {}: unit {} ({}) starts here", generation, u,
                  topo.units[u].name);
  }
  auto reply = [self, rp, start, generation, only_add, n = desired.size(),
                sb = standbys.size()](status s) mutable {
    if (s && self->state.s.standbys)
      log::info(
          "cluster: generation {} applied in {} ms{}: {} units active, {} standby here",
          generation,
          std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::steady_clock::now() - start)
              .count(),
          only_add ? " without a restart" : "", n, sb);
    if (s) {
      auto& c = ctx_of(self).counters;
      c.rebalances.fetch_add(1, std::memory_order_relaxed);
      c.generation.store(generation, std::memory_order_relaxed);
      c.rebalance.observe_us(
          static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                    std::chrono::steady_clock::now() - start)
                                    .count()));
    }
    rp.deliver(s ? call_result{} : failure(s.code(), s.message()));
    next(self);
  };
  if (st.supervisor && only_add) {
    // Only gains: the running tasks go on.
    std::set<size_t> added;
    for (auto u : desired)
      if (!st.owned.count(u)) added.insert(u);
    set_owned(self, desired);
    return add_units(self, added, standbys, generation, reply);
  }
  if (st.supervisor) return hand_off(self, desired, standbys, generation, reply);
  restart(self, desired, standbys, reply);
}

void drop(manager_actor self, caf::typed_response_promise<call_result> rp) {
  auto* ctxp = &ctx_of(self);
  // No delivery report may reach a task from here on; the fenced producer's
  // records never commit.
  ctxp->producer->stop_polling();
  stop_supervisor(self, false, [self, rp, ctxp](status s) mutable {
    auto& st = self->state;
    auto& ctx = *ctxp;
    if (!s) log::warn("dropping the tasks: {}", s.message());
    set_owned(self, {});
    (void)ctx.consumer->assign_at({});
    ctx.producer.reset();
    auto on_fenced = [self](const std::string& why) {
      caf::anon_send(caf::actor_cast<task_manager_actor>(self), alarm_atom::value,
                     "the producer is fenced: " + why, true);
    };
    auto made = make_producer(ctx, st.s.transactional_id, on_fenced);
    if (made && ctx.exactly_once)
      made = begin_first_transaction(ctx, st.s.transactional_id,
                                     static_cast<int>(st.bound.count()));
    rp.deliver(made ? call_result{} : failure(made.code(), made.message()));
    next(self);
  });
}

} // namespace

caf::actor spawn_task_manager(caf::actor_system& sys, task_manager_settings settings) {
  auto fn = [](manager_actor self,
               task_manager_settings s) -> task_manager_actor::behavior_type {
    auto& st = self->state;
    st.s = std::move(s);
    // A supervisor may sit in a transaction call for up to epoch.timeout.ms
    // (commit, then abort) before it sees a stop.
    st.bound = std::chrono::milliseconds(st.s.ctx->cfg.get_int("shutdown.timeout.ms") +
                                         2 * st.s.ctx->cfg.get_int("epoch.timeout.ms"));
    // A detached actor needs an exit handler to stop with the node (FACTS.md).
    self->set_exit_handler([self](caf::exit_msg& msg) {
      if (self->state.supervisor) self->send_exit(self->state.supervisor, msg.reason);
      self->quit(msg.reason);
    });
    self->set_down_handler(
        [self](caf::down_msg& msg) { down_seen(self, msg.source, 0, true); });
    return {
        [self](run_atom, std::vector<unit_id>& units, bool only_add,
               std::vector<unit_id>& standbys,
               int64_t generation) -> caf::result<call_result> {
          auto rp = self->make_response_promise<call_result>();
          std::set<size_t> desired{units.begin(), units.end()};
          enqueue(self, [self, desired, only_add, standbys, generation, rp]() mutable {
            run(self, desired, only_add, standbys, generation, rp);
          });
          return rp;
        },
        [self](drop_atom) -> caf::result<call_result> {
          auto rp = self->make_response_promise<call_result>();
          enqueue(self, [self, rp]() mutable { drop(self, rp); });
          return rp;
        },
        [self](standbys_atom, std::vector<unit_id>& units) -> caf::result<call_result> {
          auto rp = self->make_response_promise<call_result>();
          enqueue(self, [self, units, rp]() mutable {
            set_standbys(self, units);
            rp.deliver(call_result{});
            next(self);
          });
          return rp;
        },
        [self](shutdown_atom) -> caf::result<call_result> {
          auto rp = self->make_response_promise<call_result>();
          enqueue(self, [self, rp]() mutable {
            stop_supervisor(
                self, true,
                [self, rp](status s) mutable {
                  set_owned(self, {});
                  rp.deliver(s ? call_result{} : failure(s.code(), s.message()));
                  next(self);
                },
                true);
          });
          return rp;
        },
        [self](replan_atom) -> caf::result<plan_ptr, uint64_t> {
          // A roll-back: drop what was fetched and assign again at the
          // committed offsets. Not queued: the supervisor waits for it, and
          // a stop in progress may be waiting for the supervisor.
          auto& st = self->state;
          auto& ctx = ctx_of(self);
          if (auto s = ctx.consumer->assign_at({}); !s)
            return caf::make_error(caf::sec::runtime_error, s.message());
          auto plan = make_plan(self, st.owned, false);
          if (!plan)
            return caf::make_error(caf::sec::runtime_error, plan.error().message());
          return {std::move(*plan), ++st.version};
        },
        [self](alarm_atom, std::string& why, bool producer_fenced) {
          auto& st = self->state;
          if (st.s.on_alarm) st.s.on_alarm(why, producer_fenced);
        },
        [self](down_timeout_atom, uint64_t token) { down_seen(self, {}, token, false); },
    };
  };
  return caf::actor_cast<caf::actor>(sys.spawn<caf::detached>(fn, std::move(settings)));
}

} // namespace weft::detail
