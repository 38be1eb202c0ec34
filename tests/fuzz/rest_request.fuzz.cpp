// The order system's REST request parsing (examples/orders/request_parsing.hpp)
// on any body or parameter: it throws rest::bad_request and nothing else; the
// reason is non-empty and can be sent back as JSON; and what it accepts is a
// valid request (an order id fit for a URL path, a known customer level, a
// timeout within bounds) that survives the topic's JSON round trip. The
// first byte picks the request.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz_check.hpp"
#include "model.hpp"
#include "request_parsing.hpp"

namespace {

using namespace orders;

template <class T>
void round_trip(const T& v) {
  auto text = nlohmann::json(v).dump();
  auto back = nlohmann::json::parse(text).get<T>();
  WEFT_FUZZ_CHECK(nlohmann::json(back).dump() == text, "the topic's JSON changed it: %s",
                  text.substr(0, 200).c_str());
}

void parse(uint8_t which, std::string_view in) {
  switch (which % 6) {
  case 0: {
    auto o = rest::parse_order(in);
    rest::check_id(o.id, "id"); // accepted ids are fit for a path
    WEFT_FUZZ_CHECK(o.state == created, "state %s", o.state.c_str());
    round_trip(o);
    break;
  }
  case 1:
    round_trip(rest::parse_payment(in));
    break;
  case 2:
    round_trip(rest::parse_stock_adjustment(in));
    break;
  case 3: {
    // "<path id>\n<body>"
    auto nl = in.find('\n');
    if (nl == std::string_view::npos) return;
    auto id = rest::parse_customer_id(in.substr(0, nl));
    auto c = rest::parse_customer(in.substr(nl + 1), id);
    WEFT_FUZZ_CHECK(c.id == id, "id");
    WEFT_FUZZ_CHECK(fraud_limit(c.level).has_value(), "level %s", c.level.c_str());
    round_trip(c);
    break;
  }
  case 4: {
    auto ms = rest::parse_timeout(std::string{in}, 10000);
    WEFT_FUZZ_CHECK(ms.count() >= 0 && ms.count() <= 300000, "timeout %lld",
                    static_cast<long long>(ms.count()));
    break;
  }
  default:
    (void)rest::parse_customer_id(in);
    break;
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in{reinterpret_cast<const char*>(data) + 1, size - 1};
  try {
    parse(data[0], in);
  } catch (const rest::bad_request& e) {
    WEFT_FUZZ_CHECK(!e.reason.empty(), "a 400 without a reason");
    // The API sends the reason as {"error": reason}: strict UTF-8 here, so a
    // reason quoting invalid bytes shows up.
    std::string body;
    try {
      body = nlohmann::json{{"error", e.reason}}.dump();
    } catch (const std::exception& x) {
      WEFT_FUZZ_CHECK(false, "the reason cannot be sent as JSON: %s", x.what());
    }
  }
  return 0;
}
