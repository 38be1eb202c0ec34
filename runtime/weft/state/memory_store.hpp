#pragma once
// In-memory twins of the RocksDB stores, for tests and for stores that do not
// need to survive a restart (their changelog rebuilds them). Same interfaces,
// same key layout (key_encoding.hpp), same retention rules, so a changelog
// written by one restores into the other.
//
// Data lives in a std::map guarded by a std::shared_mutex: reads take it
// shared, writes exclusive. Scans copy entries out in chunks of 128 and call
// the visitor without holding the lock, so a visitor may write to the store
// and a long scan never blocks the writer for long; a scan therefore is not a
// point-in-time snapshot (RocksDB's is), but each entry it shows was a value
// of that key at some point during the scan.
//
// Ownership: the caller owns the returned store. restore() and
// write_checkpoint() keep the checkpoint in memory only.

#include <memory>
#include <string>

#include "weft/state/store.hpp"

namespace weft::state {

class epoch_group;

/// An empty in-memory kv store called `name`. With `epochs` it is
/// transactional, as the RocksDB stores (rocksdb_store.hpp, epoch_group.hpp).
std::unique_ptr<kv_store> make_memory_kv(std::string name, epoch_group* epochs = nullptr);

/// An empty in-memory window store; invalid_argument if retention_ms <= 0.
result<std::unique_ptr<window_store>> make_memory_window(std::string name,
                                                         timestamp_ms retention_ms,
                                                         epoch_group* epochs = nullptr);

/// An empty in-memory session store; invalid_argument if retention_ms <= 0.
result<std::unique_ptr<session_store>> make_memory_session(std::string name,
                                                           timestamp_ms retention_ms,
                                                           epoch_group* epochs = nullptr);

} // namespace weft::state
