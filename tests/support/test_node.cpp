// weft-test-node: a node process for integration tests. Test options come as
// --test.<name>=<value> and are removed before weft parses the rest:
//   --test.service=map|slow|json   which service to run
//   --test.in=TOPIC --test.out=TOPIC
//   --test.delay.us=N              slow: busy time per record
#include <weft/node.hpp>
#include <weft/services/stateless.hpp>

#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

struct payload {
  int64_t n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(payload, n)

using str = weft::string_serde;

/// Appends ":mapped" to each value; optionally spends `delay` per record.
struct mapper : weft::stateless<str, str> {
  weft::output<str, str> out;
  std::chrono::microseconds delay;
  mapper(std::string in, std::string out_topic, std::chrono::microseconds d)
    : stateless("mapper", in), delay(d) {
    out = to<str, str>(out_topic);
  }
  void process(const std::string& k, const std::string& v, weft::context& ctx) override {
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    out.emit(ctx, k, v + ":mapped");
  }
};

/// Doubles the `n` of JSON values; anything else is a bad record.
struct doubler : weft::stateless<str, weft::json_serde<payload>> {
  weft::output<str, weft::json_serde<payload>> out;
  doubler(std::string in, std::string out_topic) : stateless("doubler", in) {
    out = to<str, weft::json_serde<payload>>(out_topic);
  }
  void process(const std::string& k, const payload& p, weft::context& ctx) override {
    out.emit(ctx, k, payload{p.n * 2});
  }
};

} // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> test;
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--test.", 7) == 0) {
      std::string a = argv[i] + 7;
      auto eq = a.find('=');
      test[a.substr(0, eq)] = eq == std::string::npos ? "" : a.substr(eq + 1);
    } else {
      rest.push_back(argv[i]);
    }
  }
  auto service = test["service"];
  auto in = test["in"], out = test["out"];
  auto delay = std::chrono::microseconds(
      test.count("delay.us") ? std::stoll(test["delay.us"]) : 0);
  return weft::run_main(static_cast<int>(rest.size()), rest.data(), [&](weft::node& n) {
    if (service == "json")
      n.add<doubler>(in, out);
    else
      n.add<mapper>(in, out, service == "slow" ? delay : std::chrono::microseconds{0});
  });
}
