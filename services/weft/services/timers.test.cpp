// Durable per-key timers through the test driver: set, replace, cancel,
// both clocks, never early, the timer store left empty.

#include <catch2/catch.hpp>

#include "weft/services/operator_base.hpp"
#include "weft/services/test_driver.hpp"
#include "weft/services/timers.hpp"

namespace {

using str = weft::string_serde;
using out_t = std::vector<weft::test_record<std::string, std::string>>;

/// "remind <key> <ms> <payload>" on input: a reminder `ms` after the record
/// (event time, or wall clock for "wall <key> <ms>"); "cancel <key>" cancels.
struct reminders : weft::operator_base {
  weft::timer_handle<str> event = add_timer<str>("remind", weft::timer_clock::event_time);
  weft::timer_handle<str> wall = add_timer<str>("wall", weft::timer_clock::wall_clock);
  weft::output<str, str> out = to<str, str>("reminded");

  reminders() : operator_base("reminders") { add_input_ref(weft::input_ref{"asks"}); }

  void on_record(const weft::record_view& r, weft::context& ctx) override {
    auto key = decode_or_throw<str>(r.key, "key");
    auto v = decode_or_throw<str>(r.value, "value");
    auto sp = v.find(' ');
    auto verb = v.substr(0, sp);
    auto arg = sp == std::string::npos ? std::string{} : v.substr(sp + 1);
    if (verb == "cancel") {
      event.cancel(ctx, key);
      wall.cancel(ctx, key);
    } else if (verb == "remind") {
      event.set(ctx, key, r.timestamp + std::stoll(arg), "at " + arg);
    } else if (verb == "wall") {
      wall.set(ctx, key, ctx.wall_time() + std::stoll(arg), "wall " + arg);
    }
  }

  void on_timer(const weft::timer& t, weft::context& ctx) override {
    // Never early: the clock has reached the timer's time.
    auto now =
        t.clock == weft::timer_clock::event_time ? ctx.stream_time() : ctx.wall_time();
    if (now < t.time) throw std::runtime_error("fired early");
    out.emit(ctx, (event.is(t) ? event : wall).key_of(t), t.payload);
  }
};

weft::service_factory make() {
  return [] { return std::make_unique<reminders>(); };
}

} // namespace

TEST_CASE("an event-time timer fires once stream time reaches it, in time order, with "
          "its payload and time",
          "[operators][timers]") {
  weft::test_driver d{make()};
  d.pipe<str, str>("asks", "a", "remind 500", 1000); // due 1500
  d.pipe<str, str>("asks", "b", "remind 100", 1000); // due 1100
  d.pipe<str, str>("asks", "x", "noop", 1099);
  CHECK(d.output_size("reminded") == 0);
  d.pipe<str, str>("asks", "x", "noop", 1600);
  CHECK(d.read_output<str, str>("reminded") ==
        out_t{{"b", "at 100", 1100}, {"a", "at 500", 1500}});
  CHECK(d.kv("reminders-timers").approximate_size() == 0);
}

TEST_CASE("a timer set again replaces the first, and a cancelled one never fires",
          "[operators][timers]") {
  weft::test_driver d{make()};
  d.pipe<str, str>("asks", "a", "remind 100", 0);
  d.pipe<str, str>("asks", "a", "remind 300", 50); // replaces: due 350
  d.pipe<str, str>("asks", "c", "remind 10", 60);
  d.pipe<str, str>("asks", "c", "cancel", 61);
  d.pipe<str, str>("asks", "x", "noop", 200);
  CHECK(d.output_size("reminded") == 0);
  d.pipe<str, str>("asks", "x", "noop", 400);
  CHECK(d.read_output<str, str>("reminded") == out_t{{"a", "at 300", 350}});
}

TEST_CASE("a wall-clock timer fires when the wall clock reaches it, not with stream "
          "time",
          "[operators][timers]") {
  weft::test_driver d{make(), 2, "app", 10'000};
  d.pipe<str, str>("asks", "w1", "wall 1000", 1);
  d.pipe<str, str>("asks", "w2", "wall 2000", 1);
  d.pipe<str, str>("asks", "x", "noop", 1'000'000);
  CHECK(d.output_size("reminded") == 0);
  d.advance_wall_clock(999);
  CHECK(d.output_size("reminded") == 0);
  d.advance_wall_clock(1);
  CHECK(d.read_output<str, str>("reminded") == out_t{{"w1", "wall 1000", 11'000}});
  d.advance_wall_clock(5000);
  CHECK(d.read_output<str, str>("reminded") == out_t{{"w2", "wall 2000", 16'000}});
}

TEST_CASE("a service without timers that sets one gets a clear error",
          "[operators][timers]") {
  struct no_timers : weft::operator_base {
    no_timers() : operator_base("plain") { add_input_ref(weft::input_ref{"asks"}); }
    void on_record(const weft::record_view& r, weft::context& ctx) override {
      ctx.set_timer("k", "t", weft::timer_clock::event_time, 1);
    }
  };
  weft::test_driver d{[] { return std::make_unique<no_timers>(); }};
  try {
    d.pipe<str, str>("asks", "k", "v", 1);
    FAIL("no error");
  } catch (const weft::weft_error& e) {
    CHECK(e.error().code() == weft::errc::not_found);
    CHECK_THAT(e.error().message(), Catch::Contains("enable_timers()"));
  }
}
