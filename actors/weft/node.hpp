#pragma once
// A weft node: one process's actor system running any number of services.
//
//   int main(int argc, char** argv) {
//     return weft::run_main(argc, argv, [](weft::node& n) { n.add<my_service>(); });
//   }
//
// Lifecycle: construct with a config, add() services, start() (validates the
// services against the brokers, creates internal topics, assigns partitions
// and spawns the actors), then wait() until request_stop() or a fatal error.
// run() does start + SIGINT/SIGTERM handling + wait: the first signal stops
// gracefully (stop fetching, drain, commit, close), a second one exits at once.
//
// Thread safety: add/start/wait/run from one thread; request_stop() and
// metrics() from any thread.

#include <cstdint>
#include <functional>
#include <memory>

#include "weft/config.hpp"
#include "weft/services/service.hpp"
#include "weft/status.hpp"

namespace weft {

/// A snapshot of the node's counters.
struct node_metrics {
  uint64_t processed = 0;   ///< records handled by tasks
  uint64_t produced = 0;    ///< records handed to the producer
  uint64_t bad_records = 0; ///< records skipped or dead-lettered
  uint64_t commits = 0;     ///< offset commits issued
  uint64_t pauses = 0;      ///< times a partition was paused for flow control
};

class node {
 public:
  explicit node(config cfg);
  node(const node&) = delete;
  node& operator=(const node&) = delete;
  /// Stops the node if it runs (as request_stop + wait).
  ~node();

  /// Registers a service; one instance is made per task. Before start().
  void add(service_factory factory);

  /// Registers service type S, constructed with copies of `args` per task.
  template <class S, class... Args>
  void add(Args... args) {
    add(service_factory{[=] { return std::make_unique<S>(args...); }});
  }

  /// Brings the node up. Blocks up to startup.timeout.ms for the brokers.
  /// Fails with errc::invalid_config naming the service and topic when an
  /// input or output topic is missing, and with errc::kafka when the brokers
  /// cannot be reached.
  status start();

  /// Asks for a graceful stop; returns at once.
  void request_stop();

  /// Blocks until the node has stopped: after request_stop() or a fatal
  /// error. Returns ok, or the fatal error.
  status wait();

  /// start() + signal handling + wait(); returns a process exit code and logs
  /// the reason of a failure.
  int run();

  node_metrics metrics() const;

  /// The effective configuration.
  const config& cfg() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Parses the command line into a config (printing --help or the config
/// error), builds a node, lets `setup` add services, and runs it.
int run_main(int argc, char** argv, const std::function<void(node&)>& setup);

} // namespace weft
