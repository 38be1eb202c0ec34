// The configuration parser (weft/config.hpp) on any input: properties text,
// a command line, or key/value pairs. It never throws; it fails only with
// errc::invalid_config and a message; and a config it accepts holds only
// valid values: every integer key within its bounds, every choice one of its
// choices, every boolean true or false, every required key set (unless
// --help or --describe asked for no run). The first byte picks the form.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "weft/config.hpp"

namespace {

using weft::config;
using weft::config_key;

/// `runs`: the config is for a run (no --describe), so every required key
/// is set.
void check_valid(const config& c, bool runs = true) {
  for (auto& k : config::keys()) {
    auto& v = c.get_string(k.name);
    if (k.required && runs)
      WEFT_FUZZ_CHECK(!v.empty(), "required %s empty", k.name.c_str());
    switch (k.type) {
    case config_key::kind::integer: {
      char* end = nullptr;
      long long n = std::strtoll(v.c_str(), &end, 10);
      WEFT_FUZZ_CHECK(end != v.c_str() && *end == '\0', "%s='%s' is no integer",
                      k.name.c_str(), v.c_str());
      WEFT_FUZZ_CHECK(n >= k.min && n <= k.max, "%s=%lld out of bounds", k.name.c_str(),
                      n);
      WEFT_FUZZ_CHECK(c.get_int(k.name) == n, "get_int(%s)", k.name.c_str());
      break;
    }
    case config_key::kind::boolean:
      WEFT_FUZZ_CHECK(v == "true" || v == "false", "%s='%s'", k.name.c_str(), v.c_str());
      break;
    case config_key::kind::choice:
      WEFT_FUZZ_CHECK(std::find(k.choices.begin(), k.choices.end(), v) != k.choices.end(),
                      "%s='%s' is not a choice", k.name.c_str(), v.c_str());
      break;
    case config_key::kind::string:
      break;
    }
  }
  // Per-service overrides are validated like their node-wide keys.
  for (auto& svc : c.mentioned_services()) {
    auto& p = c.service_value(svc, "bad.record.policy");
    WEFT_FUZZ_CHECK(p == "fail" || p == "skip" || p == "dead_letter" || p == "park",
                    "service.%s.bad.record.policy='%s'", svc.c_str(), p.c_str());
  }
  (void)c.kafka_properties(weft::client_kind::consumer);
  (void)c.kafka_properties(weft::client_kind::producer);
}

template <class T>
void check_result(const weft::result<T>& r) {
  if (r) return;
  WEFT_FUZZ_CHECK(r.error().code() == weft::errc::invalid_config, "code %d",
                  static_cast<int>(r.error().code()));
  WEFT_FUZZ_CHECK(!r.error().message().empty(), "an error without a message");
}

std::vector<std::string> split(std::string_view in, char sep) {
  std::vector<std::string> out;
  while (true) {
    auto i = in.find(sep);
    out.emplace_back(in.substr(0, i));
    if (i == std::string_view::npos) return out;
    in.remove_prefix(i + 1);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in{reinterpret_cast<const char*>(data) + 1, size - 1};
  switch (data[0] % 3) {
  case 0: { // a properties file, then the config it makes
    auto props = config::parse_properties(in, "fuzz.properties");
    check_result(props);
    if (!props) return 0;
    for (auto& [k, v] : *props) {
      WEFT_FUZZ_CHECK(!k.empty(), "an empty key");
      WEFT_FUZZ_CHECK(k.find_first_of("=:") == std::string::npos, "key '%s'", k.c_str());
    }
    auto c = config::from_map(*props);
    check_result(c);
    if (c) check_valid(*c);
    break;
  }
  case 1: { // a command line; --config (a file) is the properties case above
    auto args = split(in, '\n');
    std::vector<const char*> argv{"weft-fuzz"};
    for (size_t i = 0; i < args.size(); ++i) {
      if (args[i].rfind("--config", 0) == 0) return 0;
      argv.push_back(args[i].c_str());
    }
    auto c = config::load(static_cast<int>(argv.size()), argv.data());
    check_result(c);
    if (c && !c->help_requested())
      check_valid(*c, c->describe_format().empty() && !c->version_requested());
    // The same command line with keys of a program's own, one of which
    // takes weft's http.port (weft's is node.http.port there).
    static const weft::app_schema app = [] {
      weft::app_schema a;
      a.keys.push_back(
          {"http.port", config_key::kind::integer, "7070", "app port", false, 0, 65535});
      a.keys.push_back({"app.mode",
                        config_key::kind::choice,
                        "a",
                        "app mode",
                        false,
                        0,
                        0,
                        {"a", "b"}});
      a.renamed["http.port"] = "node.http.port";
      a.defaults["processing.guarantee"] = "exactly_once";
      return a;
    }();
    auto with_app = config::load(static_cast<int>(argv.size()), argv.data(), app);
    check_result(with_app);
    if (with_app && !with_app->help_requested()) {
      check_valid(*with_app,
                  with_app->describe_format().empty() && !with_app->version_requested());
      auto port = with_app->app_int("http.port");
      WEFT_FUZZ_CHECK(port >= 0 && port <= 65535, "app http.port=%lld",
                      static_cast<long long>(port));
      auto& mode = with_app->app_string("app.mode");
      WEFT_FUZZ_CHECK(mode == "a" || mode == "b", "app.mode='%s'", mode.c_str());
    }
    break;
  }
  default: { // key=value pairs, then one more through with()
    std::map<std::string, std::string> kv;
    for (auto& line : split(in, '\n')) {
      auto eq = line.find('=');
      if (eq == std::string::npos) continue;
      kv[line.substr(0, eq)] = line.substr(eq + 1);
    }
    auto c = config::from_map(kv);
    check_result(c);
    if (!c) return 0;
    check_valid(*c);
    if (kv.empty()) return 0;
    auto last = *kv.rbegin();
    auto d = c->with(last.first + "x", last.second);
    check_result(d);
    if (d) check_valid(*d);
    break;
  }
  }
  return 0;
}
