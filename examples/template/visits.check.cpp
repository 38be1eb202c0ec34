// The visit counter's test on weft's test driver: no broker, no threads.
#include <cstdio>

#include <weft/services/test_driver.hpp>

#include "visits.hpp"

int main() {
  using str = weft::string_serde;
  weft::test_driver d{[] { return std::make_unique<visits::visit_counter>(); }, 2};
  d.pipe<str, str>("page-views", "ada", "/home", 1000);
  d.pipe<str, str>("page-views", "bob", "/home", 2000);
  d.pipe<str, str>("page-views", "ada", "/cart", 3000);
  auto out = d.read_output<str, weft::int64_serde>("visit-counts");
  using rec = weft::test_record<std::string, int64_t>;
  const std::vector<rec> want{{"ada", 1, 1000}, {"bob", 1, 2000}, {"ada", 2, 3000}};
  if (out != want) {
    std::fprintf(stderr, "visits: unexpected counts (%zu records)\n", out.size());
    for (auto& r : out)
      std::fprintf(stderr, "  %s=%lld @%lld\n", r.key.c_str(),
                   static_cast<long long>(r.value), static_cast<long long>(r.timestamp));
    return 1;
  }
  std::printf("visits: counts as expected\n");
  return 0;
}
