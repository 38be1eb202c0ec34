// cereal_binary_serde<T> and cereal_json_serde<T> on bytes from outside:
// they never throw or crash, a failure is a bad_record, no input makes them
// allocate far more than its own size (libFuzzer's -malloc_limit_mb turns a
// huge allocation into a crash), and what they accept round-trips. The first
// byte picks the archive.

#include <cereal/types/map.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "weft/serde.hpp"

namespace fuzz {

bool same(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0 || (std::isnan(a) && std::isnan(b));
}

struct point {
  int32_t x = 0;
  double w = 0;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(x), CEREAL_NVP(w));
  }
  bool operator==(const point& o) const { return x == o.x && same(w, o.w); }
};

struct record {
  std::string id;
  int64_t count = 0;
  uint8_t flags = 0;
  bool on = false;
  double amount = 0;
  std::vector<std::string> tags;
  std::map<std::string, int64_t> totals;
  std::vector<point> points;
  template <class A>
  void serialize(A& a) {
    a(CEREAL_NVP(id), CEREAL_NVP(count), CEREAL_NVP(flags), CEREAL_NVP(on),
      CEREAL_NVP(amount), CEREAL_NVP(tags), CEREAL_NVP(totals), CEREAL_NVP(points));
  }
  bool operator==(const record& o) const {
    return id == o.id && count == o.count && flags == o.flags && on == o.on &&
           same(amount, o.amount) && tags == o.tags && totals == o.totals &&
           points == o.points;
  }
};

template <class Serde>
void check(std::string_view in, const char* name) {
  auto r = Serde::deserialize(in);
  if (!r) {
    WEFT_FUZZ_CHECK(r.error().code() == weft::errc::bad_record, "wrong error code");
    WEFT_FUZZ_CHECK(r.error().message().rfind(name, 0) == 0, "message: %s",
                    r.error().message().c_str());
    return;
  }
  auto bytes = Serde::serialize(*r);
  auto again = Serde::deserialize(bytes);
  WEFT_FUZZ_CHECK(again.ok(), "accepted, written again, unreadable: %s",
                  again.error().message().c_str());
  WEFT_FUZZ_CHECK(*again == *r, "the round trip changed the value");
}

} // namespace fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in{reinterpret_cast<const char*>(data) + 1, size - 1};
  if (data[0] & 1)
    fuzz::check<weft::cereal_json_serde<fuzz::record>>(in, "cereal json: ");
  else
    fuzz::check<weft::cereal_binary_serde<fuzz::record>>(in, "cereal binary: ");
  return 0;
}
