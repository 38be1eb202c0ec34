#pragma once
// Helpers for integration tests against the test run's local Kafka broker
// (started by the CTest fixture kafka_broker; its address is in
// WEFT_TEST_BOOTSTRAP) and for running weft nodes as child processes.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "weft/kafka/admin.hpp"
#include "weft/kafka/consumer.hpp"
#include "weft/kafka/producer.hpp"
#include "weft/record.hpp"

namespace weft::test {

/// The broker address; fails the test when the fixture did not set it.
/// Tests on the mock cluster point every helper at it with use_bootstrap().
std::string bootstrap();
void use_bootstrap(std::string servers);

/// A name unique to this process and call, e.g. "words-4711-9f3a61c0-3" (process
/// id, a random token drawn once per process, a counter).
std::string unique_name(const std::string& prefix);

/// An admin client on the test broker.
std::unique_ptr<kafka::admin> admin();

/// Creates topics with `partitions` partitions each (REQUIREs success).
void create_topics(const std::vector<std::string>& names, int partitions);

/// Produces records with a producer of its own and waits for every delivery.
/// `make(i)` gives record i; `partition` -1 hashes the key.
void produce(const std::string& topic, size_t count,
             const std::function<std::pair<std::string, std::string>(size_t)>& make,
             int32_t partition = -1);

/// A consumed record, owned.
struct owned_record {
  int32_t partition;
  int64_t offset;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<header> headers;
  int64_t timestamp = 0; ///< CreateTime, or LogAppendTime if the topic says so
};

/// Reads every partition of `topic` from the beginning (read_committed) until
/// `expected` records arrived, or until nothing new arrived for `quiet` after
/// at least `expected` was reached, or `limit` passed. Never waits unbounded.
std::vector<owned_record>
consume_all(const std::string& topic, size_t expected, std::chrono::milliseconds limit,
            std::chrono::milliseconds quiet = std::chrono::milliseconds{0});

/// Sum of high watermarks of every partition: records written so far.
int64_t end_offsets(const std::string& topic);

/// Sum of `group`'s committed offsets on partitions 0..parts-1 of `topic` (a
/// partition without a commit counts 0): the records the group finished.
/// -1 when the broker does not answer within 10 s.
int64_t committed_total(const std::string& group, const std::string& topic, int parts);

/// A TCP port on 127.0.0.1 nobody listens on right now (bound to 0 and
/// released): for a child process's endpoint.
int free_port();

/// Waits until `pred` holds, polling every 50 ms, up to `limit`. Returns
/// whether it held.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds limit);

/// A child process running a program with arguments; killed (SIGKILL) when the
/// handle dies if still running.
class child_process {
 public:
  child_process(const std::string& program, const std::vector<std::string>& args,
                const std::string& log_file);
  ~child_process();
  pid_t pid() const { return pid_; }
  /// Once the process is found ended (running()), append how it ended (exit
  /// status or signal) to its log: a node killed by a signal says nothing
  /// itself. Off by default, since tools' logs are their checked output.
  void note_end_in_log() { note_end_ = true; }
  bool running();
  void kill_hard();                                   ///< SIGKILL and reap
  int stop(int sig, std::chrono::milliseconds limit); ///< signal, wait; exit code or -1
  /// Resident memory in bytes (from /proc), 0 if gone.
  int64_t rss_bytes() const;

 private:
  pid_t pid_ = -1;
  std::string log_;
  bool note_end_ = false;
  bool reaped_ = false;
  int status_ = 0;
};

/// Path of a binary built by this build tree, e.g. built("tests/weft-test-node").
std::string built(const std::string& relative);

/// Removes `paths` (a node's state folder: RocksDB files, tens of MB) when it
/// goes out of scope, passed or failed. Declare it before the processes that
/// use them, so that they are gone first.
class removed_at_exit {
 public:
  explicit removed_at_exit(std::vector<std::string> paths) : paths_(std::move(paths)) {}
  removed_at_exit(const removed_at_exit&) = delete;
  removed_at_exit& operator=(const removed_at_exit&) = delete;
  ~removed_at_exit();

 private:
  std::vector<std::string> paths_;
};

} // namespace weft::test
