// weft-time-node: a node process for the time tests (time.test.cpp), which
// start it, kill it with SIGKILL and start it again. Its own options come as
// --time.<name>=<value> and are removed before weft parses the rest:
//   --time.prefix=P        every topic is P-<name>
//   --time.out.suffix=S    output topics are P-<name>S (a run of its own)
//   --time.services=LIST   comma-separated, of:
//     join          stream-table inner join: P-orders (key customer id) with the
//                   table P-customers -> P-joined, value "<order>|<customer>"
//     table-join    table-table inner join: P-left-t with P-right-t ->
//                   P-tt-out, value "<left>|<right>" (a tombstone when a side
//                   is deleted while the other is there)
//     stream-join   windowed stream-stream inner join: P-left-s with P-right-s
//                   (|t_left - t_right| <= --time.join.window.ms, grace
//                   --time.join.grace.ms) -> P-ss-out, value "<left>|<right>"
//     gate          a gate on stream time: parts P-gate-a and P-gate-b, timeout
//                   --time.gate.timeout.ms -> P-gate-out, "ready:<a>+<b>" once
//                   both came, "timeout:<a>+<b>" ('-' for a missing part)
//     window        count per key in tumbling windows of --time.window.ms with
//                   grace --time.window.grace.ms, once per closed window:
//                   P-clicks -> P-win-out (TimeWindowedSerde key, int64 count)
#include <weft/node.hpp>
#include <weft/services/aggregate.hpp>
#include <weft/services/gate.hpp>
#include <weft/services/join.hpp>

#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

using str = weft::string_serde;

/// "ready" once a key has an a and a b, "timeout" when its deadline (stream
/// time) passed first.
struct time_gate : weft::gate<str> {
  part<str> a, b;
  weft::output<str, str> out;
  time_gate(const std::string& prefix, const std::string& suffix,
            weft::timestamp_ms timeout)
    : gate("time-gate", timeout, weft::gate_clock::stream, 1000) {
    a = when<str>(prefix + "-gate-a");
    b = when<str>(prefix + "-gate-b");
    out = to<str, str>(prefix + "-gate-out" + suffix);
  }
  void on_ready(const std::string& key, const correlation& c,
                weft::context& ctx) override {
    out.emit(ctx, key, "ready:" + *c.get(a) + "+" + *c.get(b));
  }
  void on_timeout(const std::string& key, const correlation& c,
                  weft::context& ctx) override {
    out.emit(ctx, key,
             "timeout:" + c.get(a).value_or("-") + "+" + c.get(b).value_or("-"));
  }
};

int64_t option(std::map<std::string, std::string>& opts, const std::string& name,
               int64_t fallback) {
  auto i = opts.find(name);
  return i == opts.end() ? fallback : std::stoll(i->second);
}

} // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> opts;
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--time.", 7) == 0) {
      std::string a = argv[i] + 7;
      auto eq = a.find('=');
      opts[a.substr(0, eq)] = eq == std::string::npos ? "" : a.substr(eq + 1);
    } else {
      rest.push_back(argv[i]);
    }
  }
  const auto p = opts["prefix"];
  const auto sfx = opts["out.suffix"];
  std::vector<std::string> services;
  {
    std::stringstream list{opts.count("services") ? opts["services"]
                                                  : "join,table-join,stream-join,gate"};
    for (std::string s; std::getline(list, s, ',');)
      services.push_back(s);
  }
  auto cfg = weft::config::load(static_cast<int>(rest.size()), rest.data());
  if (!cfg) {
    std::fprintf(stderr, "%s\n", cfg.error().message().c_str());
    return 2;
  }
  auto joiner = [](const std::string& l, const std::string& r) { return l + "|" + r; };
  weft::node n{*cfg};
  for (auto& s : services) {
    if (s == "join") {
      n.add(weft::stream_table_join<str, str, str, str>(
          "st-join", p + "-orders", p + "-customers", p + "-joined" + sfx, joiner));
    } else if (s == "table-join") {
      n.add(weft::table_table_join<str, str, str, str>(
          "tt-join", p + "-left-t", p + "-right-t", p + "-tt-out" + sfx, joiner));
    } else if (s == "stream-join") {
      auto w = option(opts, "join.window.ms", 1000);
      n.add(weft::stream_stream_join<str, str, str, str>(
          "ss-join", p + "-left-s", p + "-right-s", p + "-ss-out" + sfx,
          weft::join_window{w, w, option(opts, "join.grace.ms", 0)}, joiner));
    } else if (s == "gate") {
      n.add<time_gate>(p, sfx, option(opts, "gate.timeout.ms", 1000));
    } else if (s == "window") {
      n.add(
          weft::count<str, str>("win-count", p + "-clicks", p + "-win-out" + sfx,
                                weft::tumbling_window{option(opts, "window.ms", 1000),
                                                      option(opts, "window.grace.ms", 0)},
                                weft::emit::on_window_close));
    } else {
      std::fprintf(stderr, "weft-time-node: unknown service '%s'\n", s.c_str());
      return 2;
    }
  }
  return n.run();
}
