#include "weft/cluster/lease_keeper.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <memory>

#include "weft/actors/node_context.hpp"
#include "weft/cluster/cluster_log.hpp"
#include "weft/kafka/producer.hpp"
#include "weft/log.hpp"
#include "weft/protocol.hpp"

namespace weft::cluster {

namespace {

struct keeper_state {
  detail::node_context* ctx = nullptr;
  cluster_log_reader* reader = nullptr;
  std::string topic;
  int timeout_ms = 1000;
  std::unique_ptr<kafka::producer> lease;
  std::unique_ptr<kafka::producer> announcer;
  static inline const char* name = "weft.lease_keeper";
};

using keeper_actor = lease_keeper_actor::stateful_pointer<keeper_state>;

call_result to_result(const status& s, int64_t value = 0) {
  if (s) return {0, {}, value};
  return {static_cast<int32_t>(s.code()), s.message(), 0};
}

int64_t ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now() - t)
      .count();
}

} // namespace

caf::actor spawn_lease_keeper(caf::actor_system& sys, detail::node_context* ctx,
                              const cluster_log_reader* reader, std::string topic,
                              int timeout_ms) {
  auto fn = [](keeper_actor self, detail::node_context* ctx, cluster_log_reader* reader,
               std::string topic, int timeout_ms) -> lease_keeper_actor::behavior_type {
    auto& st = self->state;
    st.ctx = ctx;
    st.reader = reader;
    st.topic = std::move(topic);
    st.timeout_ms = timeout_ms;
    // A detached actor needs an exit handler to stop with the node (FACTS.md).
    self->set_exit_handler([self](caf::exit_msg& msg) { self->quit(msg.reason); });
    return {
        [self](claim_atom) -> call_result {
          auto& st = self->state;
          st.lease.reset();
          auto props = st.ctx->cfg.kafka_properties(client_kind::producer);
          props["transactional.id"] = st.ctx->application_id + ".cluster.leader";
          props["transaction.timeout.ms"] = "10000";
          auto p = kafka::producer::create(std::move(props));
          if (!p) return to_result(p.error());
          auto start = std::chrono::steady_clock::now();
          if (auto s = (*p)->init_transactions(st.timeout_ms * 10); !s)
            return to_result(s);
          // Everything earlier leaders committed is final now: the new
          // leader reads up to here before it decides.
          auto end = st.reader->end_offset(st.timeout_ms * 10);
          if (!end) return to_result(end.error());
          st.lease = std::move(*p);
          log::info("cluster: lease taken in {} ms (cluster log ends at {})",
                    ms_since(start), *end);
          return to_result({}, *end);
        },
        [self](drop_lease_atom) { self->state.lease.reset(); },
        [self](fence_atom, const std::string& node) -> call_result {
          auto& st = self->state;
          auto props = st.ctx->cfg.kafka_properties(client_kind::producer);
          auto txn = st.ctx->application_id + "-" + node;
          props["transactional.id"] = txn;
          auto p = kafka::producer::create(std::move(props));
          if (!p) return to_result(p.error());
          auto start = std::chrono::steady_clock::now();
          if (auto s = (*p)->init_transactions(st.timeout_ms * 30); !s)
            return to_result(s);
          log::info("cluster: fenced node {} (transactional.id {}) in {} ms", node, txn,
                    ms_since(start));
          return {};
        },
        [self](publish_atom, const assignment& a) -> call_result {
          auto& st = self->state;
          if (!st.lease)
            return {static_cast<int32_t>(errc::kafka_fatal), "the lease is not held", 0};
          auto text = to_json(a);
          auto s = st.lease->begin_transaction();
          if (s)
            s = st.lease->send(st.topic, 0, std::string{assignment_key},
                               std::string_view{text});
          if (s) s = st.lease->commit_transaction(st.timeout_ms * 10);
          if (!s) {
            if (s.code() == errc::kafka_fatal) {
              st.lease.reset();
            } else if (auto a2 = st.lease->abort_transaction(st.timeout_ms * 10); !a2) {
              // Neither committed nor aborted: the lease producer is unusable.
              log::warn("cluster: aborting the failed publish: {}", a2.message());
              st.lease.reset();
              return {static_cast<int32_t>(errc::kafka_fatal), s.message(), 0};
            }
          }
          return to_result(s);
        },
        [self](announce_atom, const member_record& m) -> call_result {
          auto& st = self->state;
          if (!st.announcer) {
            auto props = st.ctx->cfg.kafka_properties(client_kind::producer);
            props["linger.ms"] = "0";
            auto p = kafka::producer::create(std::move(props));
            if (!p) return to_result(p.error());
            st.announcer = std::move(*p);
          }
          auto value = encode_member(m);
          if (auto s = st.announcer->send(st.topic, 0, member_key(m.id),
                                          std::string_view{value});
              !s)
            return to_result(s);
          return to_result(st.announcer->flush(st.timeout_ms * 5));
        },
    };
  };
  return caf::actor_cast<caf::actor>(sys.spawn<caf::detached>(
      fn, ctx, const_cast<cluster_log_reader*>(reader), std::move(topic), timeout_ms));
}

} // namespace weft::cluster
