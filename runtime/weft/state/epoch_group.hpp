#pragma once
// Transactional (epoch-buffered) stores, for exactly-once processing.
//
// Under exactly-once a task works in epochs (one Kafka transaction each, about
// 100 ms): its outputs, changelog records and input offsets commit together
// or not at all. Its state writes must follow the same fate: they may only
// reach RocksDB once the transaction of their epoch committed, and an aborted
// epoch must leave no trace. Otherwise a crash or an abort would leave the
// store ahead of its changelog, with writes of an epoch that is then
// processed again (Kafka Streams wipes the store and restores it then; weft
// keeps the epoch in memory instead).
//
// So a transactional store has an epoch buffer (detail/epoch_buffer.hpp)
// directly above its base byte store, below the window/session encoding and
// below the changelogging, caching and metered layers:
//
//   metered -> caching -> changelogging -> [window|session encoding]
//     -> epoch buffer -> rocksdb | memory
//
// The buffer keeps every write of the current epoch (data and metadata such
// as retention marks) in an ordered in-memory overlay that reads see first.
// It holds at most two epochs: the sealed one, whose transaction is
// committing, and the open one the task works on meanwhile (reads see the
// open one, then the sealed one, then the store).
// commit() writes the overlay and the changelog checkpoint that covers it in
// one atomic RocksDB WriteBatch, through the WAL; abort() drops the overlay.
// After a crash the store on disk is therefore exactly at its last committed
// epoch, with the checkpoint of that epoch: restoring from the changelog
// (read_committed) brings it forward from there.
//
// Several stores of one shard commit one after the other, not atomically
// together; that is fine because each store's data and checkpoint are
// consistent on their own, and the changelog (committed first) is the truth
// each store catches up from.
//
// An epoch_group is one shard's set of epoch buffers: the store factories
// register each buffer they make with the group passed to them
// (store_factory in shard.hpp; open_rocksdb_* and make_memory_* take one
// too), and the shard commits or aborts them by store name. A null group
// means the non-transactional stacks of at-least-once.
//
// Threads: the group is the writer's (the task's actor): registration,
// commit(), abort(), pending(), like the stores' writes. Readers of the
// stores may run concurrently on any thread, during commits too.

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "weft/status.hpp"

namespace weft::state {

namespace detail {
class epoch_buffer;
}

class epoch_group {
 public:
  epoch_group() = default;
  epoch_group(const epoch_group&) = delete;
  epoch_group& operator=(const epoch_group&) = delete;
  /// Detaches the buffers still registered (their stores keep working and
  /// just stop being reachable from here).
  ~epoch_group();

  /// Closes the open epoch of every store: its writes wait for commit() as
  /// the sealed epoch, and later writes open the next one, read above the
  /// sealed one (a task works on while its epoch's transaction commits).
  /// errc::internal if an epoch is sealed and not committed yet.
  status seal();

  /// Writes the sealed epoch of `store` (the open one if none is sealed) to
  /// its base store in one atomic batch, with checkpoint `next_offset` (nullopt keeps the
  /// checkpoint it has), and empties the buffer. With nothing buffered and no new
  /// checkpoint it writes nothing. errc::not_found if no buffer has that
  /// name; on an error the buffer keeps its writes.
  status commit(std::string_view store, std::optional<int64_t> next_offset);

  /// Drops the buffered epochs (sealed and open) of every store (and rolls back the
  /// event-time clocks of window and session stores to their last committed marks).
  void abort();

  /// Entries (data and metadata) buffered for `store`; 0 for an unknown one.
  size_t pending(std::string_view store) const;

  /// Whether a buffer of that name is registered.
  bool contains(std::string_view store) const;

  /// Registration, called by the buffers themselves.
  void add(detail::epoch_buffer* b);
  void remove(detail::epoch_buffer* b);

 private:
  detail::epoch_buffer* find(std::string_view store) const;
  std::vector<detail::epoch_buffer*> buffers_;
};

} // namespace weft::state
