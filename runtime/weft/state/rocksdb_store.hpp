#pragma once
// RocksDB stores: one RocksDB instance per store per task, in the folder the
// caller passes (by convention <state.dir>/<application.id>/<task>/<store>).
//
// Each instance has two column families: "default" holds the store's entries
// (for window and session stores, keys laid out as in key_encoding.hpp — the
// same bytes as the changelog keys), and "weft.meta" holds the changelog
// checkpoint and retention marks. Iteration only ever reads "default".
//
// Checkpoint guarantee: the checkpoint never claims data that is not there.
//   - restore(batch, next_offset) writes the batch and the checkpoint in one
//     WriteBatch (atomic), without the WAL (disableWAL, sync=false) for speed.
//     atomic_flush keeps both column families' memtables reaching disk
//     together, so a crash mid-restore loses the tail of the restore *and*
//     the checkpoint that claims it: the store reopens at an older checkpoint
//     whose data is on disk, and replaying the changelog from there again is
//     idempotent (changes are key → latest value).
//   - Restored data is made durable (memtables flushed, waiting) at the
//     store's next flush(), before its next WAL-logged write (put, remove,
//     write_checkpoint), or at close — so a WAL-logged write, which a crash
//     would replay, never lands on top of restored data the crash lost.
//     A standby that only restores should call flush() now and then.
//   - Ordinary writes and write_checkpoint() go through the WAL (sync=false):
//     RocksDB recovers a prefix of them, so a checkpoint written after
//     flush() is never recovered without the writes before it. A process
//     crash loses nothing; a machine crash may lose a suffix of both.
//   - Not covered by the plain store: writes after the checkpoint that the
//     changelog never got (an aborted exactly-once epoch). Kafka Streams
//     wipes the store then; weft opens the stores of exactly-once tasks with
//     an epoch_group instead (epoch_group.hpp), which keeps each epoch's
//     writes in memory and writes them with their checkpoint in one
//     WAL-logged batch once the epoch's transaction committed: on disk a
//     store is always exactly at a committed epoch and its checkpoint.
//
// Threads: one writer (the owning task) and any number of concurrent readers;
// RocksDB makes that safe, and scans read an implicit snapshot (a visitor may
// write to the store it scans). A store must be destroyed before its folder is
// removed. Opening a folder that is already open fails (RocksDB's LOCK file).
//
// Every call returns errors as values: RocksDB failures are errc::io with
// RocksDB's text.

#include <memory>
#include <string>

#include "weft/state/rocksdb_env.hpp"
#include "weft/state/store.hpp"

namespace weft::state {

class epoch_group;

/// Opens (creating if missing, with parent folders) the kv store in `dir`.
/// Its checkpoint is the one last written, or -1. With `epochs`, the store is
/// transactional: its writes wait in an epoch buffer registered with
/// `epochs` until epochs->commit(name, ...) (epoch_group.hpp); `epochs` must
/// outlive the store or be destroyed first.
result<std::unique_ptr<kv_store>> open_rocksdb_kv(const rocksdb_env& env,
                                                  const std::string& dir,
                                                  const std::string& name,
                                                  epoch_group* epochs = nullptr);

/// Opens the window store in `dir`. Windows whose start is older than the
/// newest start seen minus `retention_ms` are hidden at once and deleted
/// lazily (on put and flush, about every retention/4 of event time).
/// invalid_argument if retention_ms <= 0. `epochs` as for open_rocksdb_kv
/// (the buffer sits below the window encoding, so retention marks and purges
/// are part of the epoch too).
result<std::unique_ptr<window_store>> open_rocksdb_window(const rocksdb_env& env,
                                                          const std::string& dir,
                                                          const std::string& name,
                                                          timestamp_ms retention_ms,
                                                          epoch_group* epochs = nullptr);

/// Opens the session store in `dir`; retention counts from session ends.
result<std::unique_ptr<session_store>>
open_rocksdb_session(const rocksdb_env& env, const std::string& dir,
                     const std::string& name, timestamp_ms retention_ms,
                     epoch_group* epochs = nullptr);

/// Deletes the store in `dir` (close it first), e.g. to rebuild it from its
/// changelog. Ok if there is nothing to delete.
status destroy_rocksdb_store(const rocksdb_env& env, const std::string& dir);

} // namespace weft::state
