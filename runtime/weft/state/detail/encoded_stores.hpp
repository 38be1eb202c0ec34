#pragma once
// Internal: window and session stores on top of any byte_store, using the
// key layout of key_encoding.hpp. rocksdb_store.cpp and memory_store.cpp wrap
// their base stores with these, so retention and encoding exist once.
//
// When `base` is an epoch_buffer (a transactional store, epoch_buffer.hpp),
// the store's event-time clock follows it: an aborted epoch sets the clock
// back to the marks saved in the base's metadata, which flush() writes into
// the epoch, so flush before each commit.

#include <memory>

#include "weft/state/detail/byte_store.hpp"
#include "weft/state/store.hpp"

namespace weft::state::detail {

/// A window store over `base`; windows with start < (newest start seen −
/// retention_ms) are invisible at once and deleted lazily. Fails with
/// invalid_argument if retention_ms <= 0, or io if the base's metadata is
/// unreadable.
result<std::unique_ptr<window_store>> make_window_store(std::unique_ptr<byte_store> base,
                                                        timestamp_ms retention_ms);

/// A session store over `base`; sessions with end < (newest end seen −
/// retention_ms) are invisible at once and deleted lazily.
result<std::unique_ptr<session_store>>
make_session_store(std::unique_ptr<byte_store> base, timestamp_ms retention_ms);

} // namespace weft::state::detail
