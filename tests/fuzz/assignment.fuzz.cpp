// The assignment codec (weft/cluster/assignor.hpp): nodes read assignments
// from the cluster topic, so assignment_from_json takes any bytes. It never
// throws; a failure is errc::invalid_argument; what it accepts has one entry
// per unit in every per-unit list and survives to_json and back unchanged.

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "weft/cluster/assignor.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in{reinterpret_cast<const char*>(data), size};
  auto a = weft::cluster::assignment_from_json(in);
  if (!a) {
    WEFT_FUZZ_CHECK(a.error().code() == weft::errc::invalid_argument, "code %d",
                    static_cast<int>(a.error().code()));
    WEFT_FUZZ_CHECK(!a.error().message().empty(), "no message");
    return 0;
  }
  auto n = a->active.size();
  WEFT_FUZZ_CHECK(a->standbys.size() == n && a->warmup.size() == n &&
                      a->previous.size() == n,
                  "per-unit lists of different lengths");
  auto text = weft::cluster::to_json(*a);
  auto b = weft::cluster::assignment_from_json(text);
  WEFT_FUZZ_CHECK(b.ok(), "to_json wrote what assignment_from_json refuses: %s",
                  b.error().message().c_str());
  WEFT_FUZZ_CHECK(*b == *a && b->generation == a->generation && b->leader == a->leader,
                  "the round trip changed the assignment");
  (void)weft::cluster::load(*a);
  return 0;
}
