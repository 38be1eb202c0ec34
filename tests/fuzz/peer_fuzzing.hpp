#pragma once
// The set-up the fuzz targets of peer messages share: one actor system for
// the process (made once: about 20 ms and threads), with the types a
// clustered node registers (wire_types.hpp), and an execution context whose
// proxy registry makes no proxies (actor handles of other nodes decode to
// null), as a stand-in for the BASP broker's. Everything here runs on
// libFuzzer's thread.

#include <caf/all.hpp>

#include <vector>

#include "weft/cluster/wire_types.hpp"

namespace weft::fuzz {

class peer_environment {
 public:
  /// The process's environment, made on the first call and never
  /// destroyed: an actor system torn down among the static destructors at
  /// exit ran into CAF's own, already gone (a heap corruption report).
  static peer_environment& get() {
    static auto* env = new peer_environment;
    return *env;
  }

  caf::execution_unit* context() { return &context_; }

  /// The bytes of the payload a node would send for (stages, msg).
  std::vector<char> encode(std::vector<caf::strong_actor_ptr> stages, caf::message msg) {
    std::vector<char> out;
    caf::binary_serializer sink{&context_, out};
    if (auto err = sink(stages, msg)) out.clear();
    return out;
  }

  /// Drops what the last input put in the proxy registry (memory stays
  /// bounded over millions of inputs).
  void forget_proxies() { registry_.clear(); }

 private:
  struct config : caf::actor_system_config {
    config() {
      weft::cluster::add_wire_types(*this);
      set("scheduler.max-threads", 1);
      set("logger.file-verbosity", caf::atom("quiet"));
      set("logger.console-verbosity", caf::atom("quiet"));
    }
  };
  struct no_proxies : caf::proxy_registry::backend {
    caf::strong_actor_ptr make_proxy(caf::node_id, caf::actor_id) override {
      return nullptr;
    }
    void set_last_hop(caf::node_id*) override {}
  };

  peer_environment() { context_.proxy_registry_ptr(&registry_); }

  config cfg_;
  caf::actor_system sys_{cfg_};
  no_proxies backend_;
  caf::proxy_registry registry_{sys_, backend_};
  caf::scoped_execution_unit context_{&sys_};
};

} // namespace weft::fuzz
