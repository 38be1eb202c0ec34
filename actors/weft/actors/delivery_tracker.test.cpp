// The at-least-once bookkeeping of a task (delivery_tracker.hpp): offsets
// become committable in order, only once every record of their batch (and,
// with caching stores, a later flush) is delivered; a failure stops them;
// delivery reports of one slot arriving on several threads at once.

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "weft/actors/delivery_tracker.hpp"

using namespace weft::detail;

TEST_CASE("a batch's offset is committable once its records are delivered, in order") {
  delivery_tracker t;
  auto* a = t.open("in");
  a->acquire(); // one record produced while handling the batch
  t.close(a, 10);
  auto* b = t.open("in");
  t.close(b, 20);                        // produced nothing
  CHECK(t.committable(nullptr).empty()); // a's record is in flight, b waits behind it
  on_delivered(&a->ref, nullptr, 5);
  auto offs = t.committable(nullptr);
  REQUIRE(offs.count("in"));
  CHECK(offs["in"] == 20);
  CHECK(t.idle());
}

TEST_CASE("with caching stores a batch waits for the next flush slot") {
  delivery_tracker t{true};
  auto* a = t.open("in");
  t.close(a, 10);
  CHECK(t.committable(nullptr).empty());
  auto* f = t.open_flush();
  f->acquire(); // a changelog record of the flush
  t.close(f);
  CHECK(t.committable(nullptr).empty());
  on_delivered(&f->ref, nullptr, 1);
  auto offs = t.committable(nullptr);
  CHECK(offs["in"] == 10);
  CHECK(t.take_flushed());
  CHECK(t.idle());
}

TEST_CASE("a failed delivery stops the offsets and names the first error") {
  delivery_tracker t;
  auto* a = t.open("in");
  a->acquire();
  t.close(a, 10);
  std::string err = "deliver to out: broker down";
  on_delivered(&a->ref, &err, -1);
  std::string got;
  CHECK(t.committable(&got).empty());
  CHECK(got == err);
}

TEST_CASE("failures of one slot reported on several threads at once record one whole "
          "error") {
  // Two delivery threads (the producer's poller and a transaction commit
  // flushing on the supervisor's thread) fail records of one slot together,
  // as a fenced producer does; once, both wrote the slot's error string at
  // the same time and corrupted the heap. Both threads wait at a line and
  // fail their record at once, many times.
  const std::vector<std::string> errors{
      std::string(200, 'a') + ": the producer is fenced (first thread)",
      std::string(300, 'b') + ": the producer is fenced (second thread)"};
  const int rounds = 50000;
  std::vector<slot_ptr> slots;
  for (int r = 0; r < rounds; ++r) {
    slots.emplace_back(new delivery_slot);
    slots.back()->acquire();
    slots.back()->acquire();
  }
  // A two-thread line per round: each waits until both arrived, then fails
  // its record of that round's slot.
  std::atomic<int> arrived{0};
  std::vector<std::thread> threads;
  for (size_t k = 0; k < 2; ++k)
    threads.emplace_back([&, k] {
      for (int r = 0; r < rounds; ++r) {
        arrived.fetch_add(1, std::memory_order_acq_rel);
        while (arrived.load(std::memory_order_acquire) < 2 * (r + 1))
          std::this_thread::yield();
        slots[static_cast<size_t>(r)]->release(&errors[k]);
      }
    });
  for (auto& th : threads)
    th.join();
  int torn = 0;
  for (auto& slot : slots) {
    REQUIRE(slot->failed.load());
    if (slot->error != errors[0] && slot->error != errors[1]) ++torn;
    REQUIRE(slot->outstanding.load() == 1); // the open batch's own count
  }
  CHECK(torn == 0);
}

TEST_CASE("a delivery report after its task is gone finds its slot and its store's "
          "delivered offset alive, and the last one frees them") {
  // The task's shard: the delivered offset of one store's changelog.
  auto delivered = std::make_shared<std::atomic<int64_t>>(-1);
  std::weak_ptr<std::atomic<int64_t>> offset_alive = delivered;
  delivery_slot* slot = nullptr;
  delivery_ref* output = nullptr;
  delivery_ref* changelog = nullptr;
  {
    delivery_tracker t;
    slot = t.open_flush();
    slot->changelog_refs.push_back({slot, delivered});
    changelog = &slot->changelog_refs.back();
    output = &slot->ref;
    slot->acquire(); // a changelog record, in the producer
    slot->acquire(); // an output record, in the producer
    slot->acquire(); // a record waiting for the producer when the task goes
    t.close(slot);
    // The task goes: its tracker, its shard, its waiting record.
    slot->abandon();
  }
  delivered.reset();
  // The records in the producer still hold the slot and the offset.
  CHECK(slot->holders.load() == 2);
  CHECK(!offset_alive.expired());
  // A fenced producer fails them on its poller thread.
  std::string fenced{"fenced"};
  on_delivered(changelog, nullptr, 41);
  CHECK(offset_alive.lock()->load() == 41);
  CHECK(slot->holders.load() == 1);
  std::thread poller{[&] { on_delivered(output, &fenced, -1); }};
  poller.join();
  // The last report freed the slot, and with it the last hold on the offset.
  CHECK(offset_alive.expired());
}
