// weft-timer-node: a node process for the timer tests (timers.test.cpp), which
// start it, kill it with SIGKILL, fail it over and start it again. Its own
// options come as --timers.<name>=<value> and are removed before weft parses
// the rest:
//   --timers.prefix=P   reads P-requests, writes P-fired
// Service "timer-svc", one durable timer "t" per key:
//   P-requests value "e:<time>" / "w:<time>": set the key's timer at <time> on
//   event time / the wall clock (replacing it); "cancel": cancel it; anything
//   else ("tick"): nothing (its timestamp still moves stream time).
//   When a timer fires: P-fired, key = the timer's key, value
//   "<e|w>:<time>:<clock when fired>" (stream time, or wall time), so a
//   reader sees every firing and whether it was early.
#include <weft/node.hpp>
#include <weft/services/operator_base.hpp>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

using str = weft::string_serde;

struct timer_service : weft::operator_base {
  weft::timer_handle<str> event = add_timer<str>("t", weft::timer_clock::event_time);
  weft::timer_handle<str> wall = add_timer<str>("t", weft::timer_clock::wall_clock);
  weft::output<str, str> fired;

  explicit timer_service(const std::string& p) : operator_base("timer-svc") {
    add_input_ref(p + "-requests");
    fired = to<str, str>(p + "-fired");
  }

  void on_record(const weft::record_view& r, weft::context& ctx) override {
    if (!r.key || !r.value) return;
    auto key = decode_or_throw<str>(r.key, "key");
    auto v = decode_or_throw<str>(r.value, "value");
    if (v == "cancel") {
      event.cancel(ctx, key); // one timer per key: the name is shared
    } else if (v.size() > 2 && (v[0] == 'e' || v[0] == 'w') && v[1] == ':') {
      (v[0] == 'e' ? event : wall).set(ctx, key, std::stoll(v.substr(2)));
    }
  }

  void on_timer(const weft::timer& t, weft::context& ctx) override {
    const bool ev = t.clock == weft::timer_clock::event_time;
    const auto now = ev ? ctx.stream_time() : ctx.wall_time();
    fired.emit(ctx, event.key_of(t),
               std::string{ev ? "e:" : "w:"} + std::to_string(t.time) + ":" +
                   std::to_string(now));
  }
};

} // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> opts;
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--timers.", 9) == 0) {
      std::string a = argv[i] + 9;
      auto eq = a.find('=');
      opts[a.substr(0, eq)] = eq == std::string::npos ? "" : a.substr(eq + 1);
    } else {
      rest.push_back(argv[i]);
    }
  }
  auto cfg = weft::config::load(static_cast<int>(rest.size()), rest.data());
  if (!cfg) {
    std::fprintf(stderr, "%s\n", cfg.error().message().c_str());
    return 2;
  }
  weft::node n{*cfg};
  n.add<timer_service>(opts["prefix"]);
  return n.run();
}
