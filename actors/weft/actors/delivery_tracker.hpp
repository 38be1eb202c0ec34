#pragma once
// At-least-once bookkeeping of one task: which input offsets may be committed
// because every record they caused has been acknowledged by Kafka.
//
// The task opens a slot per input batch; each record produced while the
// batch is handled holds the slot (acquire), and the producer's delivery
// thread releases it. A slot is complete when the batch is done and every
// delivery came back. committable() walks complete slots from the oldest and
// returns the next offset to consume after the newest of them: an offset is
// never committed while an earlier record's outputs are still in flight.
//
// Threads: open/close/committable on the task's actor only; release() on the
// producer's delivery thread (it touches nothing but the slot's atomics).

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

namespace weft::detail {

struct delivery_slot {
  std::atomic<int32_t> outstanding{1}; ///< 1 for the open batch + one per record
  std::atomic<bool> failed{false};
  int64_t next_offset = -1; ///< set when the batch is closed
  std::string error;        ///< first delivery error (set before failed=true)

  void acquire() { outstanding.fetch_add(1, std::memory_order_relaxed); }
  /// Called from the delivery thread. `err` is empty on success.
  void release(const std::string* err) {
    if (err && !failed.load(std::memory_order_relaxed)) {
      error = *err;
      failed.store(true, std::memory_order_release);
    }
    outstanding.fetch_sub(1, std::memory_order_acq_rel);
  }
};

class delivery_tracker {
 public:
  /// Starts the slot for a new batch; records produced now should acquire it.
  delivery_slot* open() {
    slots_.push_back(std::make_unique<delivery_slot>());
    return slots_.back().get();
  }

  /// The batch of `slot` is fully handled; its inputs end before next_offset.
  void close(delivery_slot* slot, int64_t next_offset) {
    slot->next_offset = next_offset;
    slot->outstanding.fetch_sub(1, std::memory_order_acq_rel);
  }

  /// The next offset to consume that is safe to commit, or -1 if nothing new.
  /// Sets `error` when a delivery failed (the node must stop: that record's
  /// input is never committed, so a restart processes it again).
  int64_t committable(std::string* error) {
    int64_t out = -1;
    while (!slots_.empty()) {
      auto& s = *slots_.front();
      if (s.failed.load(std::memory_order_acquire)) {
        if (error) *error = s.error;
        break;
      }
      if (s.outstanding.load(std::memory_order_acquire) != 0) break;
      out = s.next_offset;
      slots_.pop_front();
    }
    return out;
  }

  /// Records still waiting for Kafka's acknowledgement (approximately).
  bool idle() const { return slots_.empty(); }

 private:
  std::deque<std::unique_ptr<delivery_slot>> slots_;
};

} // namespace weft::detail
