#pragma once
// At-least-once bookkeeping of one task: which input offsets may be committed
// because every effect of the records before them is durable in Kafka.
//
// The task opens a slot per input batch; each record produced while the batch
// is handled (outputs, dead letters, changelog records of uncached stores)
// holds the slot (acquire), and the producer's delivery thread releases it.
// State kept in a write-back cache is not in Kafka until the stores flush, so
// a task with caching stores also opens a *flush* slot at each commit
// interval, holding the changelog records the flush produced. A batch's
// offset becomes committable only when its slot and every slot before it are
// complete and, for a task with stores, a flush slot after it completed too.
//
// Threads: open/close/committable on the task's actor only; the delivery
// thread only touches a slot's atomics through delivery_ref.
//
// Lifetime: a slot lives until the tracker let go of it and every record
// that holds it was reported (or abandoned). A delivery report may come
// after its task is gone — a fenced producer fails what it still holds, on
// its poller thread, while the node drops the task — and used to write into
// the freed slot (and the freed shard's delivered offset): a chaos run's
// node then crashed in malloc while closing a store. The slot and the
// delivered offset are shared with the records that can still report.

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace weft::detail {

struct delivery_slot;

/// What a produced record's opaque pointer points to.
struct delivery_ref {
  delivery_slot* slot = nullptr;
  /// For changelog records: the highest delivered offset of that changelog
  /// partition (the store's next checkpoint, shared with its shard), else
  /// null.
  std::shared_ptr<std::atomic<int64_t>> max_offset;
};

struct delivery_slot {
  std::atomic<int32_t> outstanding{1}; ///< 1 for the open batch + one per record
  /// Who keeps the slot alive: its tracker (until it lets go) and each
  /// record acquired and not yet released or abandoned. The last one
  /// deletes it.
  std::atomic<int32_t> holders{1};
  std::atomic<bool> failed{false};
  /// Taken by the one caller of release() that records `error`: delivery
  /// reports of one slot may come on several threads at once (the producer's
  /// poller, and a transaction commit flushing on the supervisor's thread),
  /// and the task's own thread releases records the producer refused.
  std::atomic<bool> error_taken{false};
  std::string topic;        ///< input topic of the batch; empty otherwise
  bool barrier = false;     ///< a flush slot: caches were emptied into it
  int64_t next_offset = -1; ///< set when the batch is closed
  /// A slot over records of several inputs (a task taking them in timestamp
  /// order): the next offset per input topic, replacing topic/next_offset.
  std::vector<std::pair<std::string, int64_t>> offsets;
  /// Durable timers fired into this slot (at_least_once): removed from
  /// their store once the slot completed. 0: none.
  uint64_t timer_round = 0;
  std::string error; ///< first delivery error (set before failed=true)
  delivery_ref ref{this, nullptr};
  /// Refs for changelog records (stable addresses), one per store flushed.
  std::deque<delivery_ref> changelog_refs;

  /// A record produced for this slot: it holds the slot until released.
  void acquire() {
    holders.fetch_add(1, std::memory_order_relaxed);
    outstanding.fetch_add(1, std::memory_order_relaxed);
  }
  /// Called from a delivery thread (or the task's, for a refused record).
  /// `err` is null on success. Only the first failure writes `error`, before
  /// `failed` is set (readers check `failed` first): two failures of one slot
  /// on two threads once wrote the string at the same time. The slot may be
  /// gone when this returns.
  void release(const std::string* err) {
    if (err && !error_taken.exchange(true, std::memory_order_acq_rel)) {
      error = *err;
      failed.store(true, std::memory_order_release);
    }
    outstanding.fetch_sub(1, std::memory_order_acq_rel);
    let_go();
  }
  /// A record that will never be reported (it waited for the producer when
  /// its task went): it holds the slot no longer.
  void abandon() { let_go(); }
  /// One holder less; the last deletes the slot.
  void let_go() {
    if (holders.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};

/// Lets go of a slot for its tracker.
struct slot_release {
  void operator()(delivery_slot* s) const { s->let_go(); }
};
using slot_ptr = std::unique_ptr<delivery_slot, slot_release>;

/// Called by the producer's delivery thread with a record's opaque pointer.
inline void on_delivered(void* opaque, const std::string* err, int64_t offset) {
  auto* ref = static_cast<delivery_ref*>(opaque);
  if (!ref) return;
  if (ref->max_offset && !err) {
    // (The slot, holding the ref, lives until release() below.)
    auto cur = ref->max_offset->load(std::memory_order_relaxed);
    while (offset > cur && !ref->max_offset->compare_exchange_weak(
                               cur, offset, std::memory_order_relaxed))
      ;
  }
  ref->slot->release(err);
}

class delivery_tracker {
 public:
  /// `barriers`: the task has caching stores; offsets wait for a flush slot.
  explicit delivery_tracker(bool barriers = false) : barriers_(barriers) {}

  /// Starts the slot for a new batch of `topic`.
  delivery_slot* open(const std::string& topic) {
    slots_.emplace_back(new delivery_slot);
    slots_.back()->topic = topic;
    return slots_.back().get();
  }

  /// Starts a flush slot (topic empty): holds the changelog records of a
  /// store flush; completing it makes earlier batches committable.
  delivery_slot* open_flush() {
    slots_.emplace_back(new delivery_slot);
    slots_.back()->barrier = true;
    return slots_.back().get();
  }

  /// Starts a slot for records produced outside any batch (punctuation).
  delivery_slot* open_other() {
    slots_.emplace_back(new delivery_slot);
    return slots_.back().get();
  }

  /// The batch (or flush) of `slot` is fully handed over; a batch's inputs end
  /// before next_offset.
  void close(delivery_slot* slot, int64_t next_offset = -1) {
    slot->next_offset = next_offset;
    slot->outstanding.fetch_sub(1, std::memory_order_acq_rel);
  }

  /// Closes a slot that took records of several inputs: `offsets` are the
  /// next offsets, per input topic, after the records handled in it.
  void close(delivery_slot* slot, std::vector<std::pair<std::string, int64_t>> offsets) {
    slot->offsets = std::move(offsets);
    slot->outstanding.fetch_sub(1, std::memory_order_acq_rel);
  }

  /// Next offsets to consume, per input topic, that are safe to commit now
  /// and newer than the last answer. Sets `error` when a delivery failed (the
  /// node must stop: that record's input is never committed).
  std::map<std::string, int64_t> committable(std::string* error) {
    std::map<std::string, int64_t> out;
    while (!slots_.empty()) {
      auto& s = *slots_.front();
      if (s.failed.load(std::memory_order_acquire)) {
        if (error) *error = s.error;
        break;
      }
      if (s.outstanding.load(std::memory_order_acquire) != 0) break;
      if (s.timer_round != 0) timer_rounds_.push_back(s.timer_round);
      if (s.barrier) {
        for (auto& [t, o] : pending_)
          out[t] = o;
        pending_.clear();
        flushed_ = true;
      } else if (!s.offsets.empty()) {
        for (auto& [t, o] : s.offsets)
          (barriers_ ? pending_ : out)[t] = o;
      } else if (s.topic.empty()) {
        // punctuation output: nothing to commit
      } else if (barriers_) {
        pending_[s.topic] = s.next_offset;
      } else {
        out[s.topic] = s.next_offset;
      }
      slots_.pop_front();
    }
    return out;
  }

  bool idle() const { return slots_.empty(); }

  /// Timer rounds (delivery_slot::timer_round) whose slots committable()
  /// found complete since the last call.
  std::vector<uint64_t> take_timer_rounds() { return std::exchange(timer_rounds_, {}); }

  /// Whether a flush slot completed since the last call (checkpoints may be
  /// written: everything they cover is in Kafka).
  bool take_flushed() { return std::exchange(flushed_, false); }

 private:
  bool barriers_;
  std::deque<slot_ptr> slots_;
  /// Complete batches waiting for the next complete flush slot.
  std::map<std::string, int64_t> pending_;
  bool flushed_ = false;
  std::vector<uint64_t> timer_rounds_;
};

} // namespace weft::detail
