// The values inside a peer's message, decoded one type at a time as CAF
// decodes them once it has read the type's name: the first byte picks the
// type (node_status, member_record, query_answer, scan_answer, a forwarded
// query's, scan's or park call's arguments), the rest is its encoding.
// Deeper than peer_message per input (no type names to guess); the same
// checks (peer_checks.hpp) and the same round trip.

#include <caf/all.hpp>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "fuzz_check.hpp"
#include "peer_checks.hpp"
#include "peer_fuzzing.hpp"

namespace {

using namespace weft::cluster;

/// Decodes a T from `in`; if it decodes, checks it with `check` and that
/// its encoding decodes to the same encoding.
template <class T, class Check>
void run(weft::fuzz::peer_environment& env, const char* in, size_t size, Check check) {
  T x;
  {
    caf::binary_deserializer source{env.context(), in, size};
    if (source(x)) return;
  }
  auto encode = [&](T& v) {
    std::vector<char> out;
    caf::binary_serializer sink{env.context(), out};
    WEFT_FUZZ_CHECK(!sink(v), "a decoded value does not encode");
    return out;
  };
  auto once = encode(x);
  T y;
  caf::binary_deserializer again{env.context(), once};
  WEFT_FUZZ_CHECK(!again(y), "a decoded value does not decode again");
  WEFT_FUZZ_CHECK(encode(y) == once, "the round trip changed the bytes");
  check(x);
}

struct query_args {
  std::string store, key;
  int64_t max_lag = 0;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, query_args& x) {
  return f(x.store, x.key, x.max_lag);
}

struct scan_args {
  std::string store;
  std::vector<int32_t> partitions;
  std::string from, to;
  uint32_t limit = 0;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, scan_args& x) {
  return f(x.store, x.partitions, x.from, x.to, x.limit);
}

struct park_args {
  std::string service;
  int32_t partition = 0;
  std::string id, action;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, park_args& x) {
  return f(x.service, x.partition, x.id, x.action);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  auto& env = weft::fuzz::peer_environment::get();
  auto* in = reinterpret_cast<const char*>(data) + 1;
  auto n = size - 1;
  switch (data[0] % 7) {
  case 0:
    run<node_status>(env, in, n,
                     [](const node_status& s) { weft::fuzz::check_status(s); });
    break;
  case 1:
    run<member_record>(env, in, n,
                       [](const member_record& m) { weft::fuzz::check_record(m); });
    break;
  case 2:
    run<query_answer>(env, in, n, [](const query_answer& a) {
      auto r = result_of(a);
      if (r && *r) WEFT_FUZZ_CHECK(a.found && **r == a.value, "a value changed");
      if (!r)
        WEFT_FUZZ_CHECK(!r.error().message().empty() &&
                            r.error().message().size() <= 1100,
                        "an error without a reason, or a peer's whole text");
    });
    break;
  case 3:
    run<scan_answer>(env, in, n, [](const scan_answer& a) {
      weft::fuzz::check_scan_answer(a, 1 + (a.keys.size() % 5));
      weft::fuzz::check_scan_answer(a, 100);
    });
    break;
  case 4:
    run<query_args>(env, in, n, [](const query_args& q) {
      auto why = peer_query_violation(q.store, q.key, q.max_lag);
      WEFT_FUZZ_CHECK(!why.empty() || (q.store.size() <= max_peer_text &&
                                       q.key.size() <= max_peer_key && q.max_lag >= -1),
                      "a query beyond the bounds passed");
    });
    break;
  case 5:
    run<scan_args>(env, in, n, [](const scan_args& q) {
      auto why = peer_scan_violation(q.store, q.partitions.size(), q.from, q.to, q.limit);
      WEFT_FUZZ_CHECK(!why.empty() || (q.limit >= 1 && q.limit <= max_scan_rows &&
                                       q.partitions.size() <= 65536),
                      "a scan beyond the bounds passed");
    });
    break;
  case 6:
    run<park_args>(env, in, n, [](const park_args& q) {
      auto why = peer_park_violation(q.service, q.partition, q.id, q.action);
      WEFT_FUZZ_CHECK(
          !why.empty() ||
              (q.service.size() <= max_peer_text && q.partition >= 0 &&
               q.id.size() <= max_peer_key + 5 &&
               (q.action == "retry" || q.action == "skip" || q.action == "drop")),
          "a park call beyond the bounds passed");
    });
    break;
  }
  env.forget_proxies();
  return 0;
}
