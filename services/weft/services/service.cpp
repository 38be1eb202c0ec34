#include "weft/services/service.hpp"

namespace weft {

context::~context() = default;
service_base::~service_base() = default;

state::timer_index& context::timers_or_throw() {
  if (auto* t = timers()) return *t;
  throw weft_error{status{errc::not_found,
                          "this service has no timers: call enable_timers() (or "
                          "operator_base::add_timer) in its constructor"}};
}

void context::set_timer(std::string_view key, std::string_view name, timer_clock clock,
                        timestamp_ms time, std::string_view payload) {
  auto st = timers_or_throw().set(
      timer{std::string{key}, std::string{name}, clock, time, std::string{payload}});
  if (!st) throw weft_error{st};
}

bool context::cancel_timer(std::string_view key, std::string_view name) {
  auto r = timers_or_throw().cancel(key, name);
  if (!r) throw weft_error{r.error()};
  return *r;
}

std::optional<timer> context::find_timer(std::string_view key, std::string_view name) {
  auto r = timers_or_throw().get(key, name);
  if (!r) throw weft_error{r.error()};
  return std::move(r).value();
}

const char* to_string(service_pattern p) {
  switch (p) {
  case service_pattern::stateless:
    return "stateless";
  case service_pattern::enricher:
    return "enricher";
  case service_pattern::gate:
    return "gate";
  case service_pattern::stateful:
    return "stateful";
  case service_pattern::stream_aside:
    return "stream-aside";
  case service_pattern::sidecar:
    return "sidecar";
  }
  return "stateless";
}

service_pattern service_base::pattern() const {
  if (has_pattern_) return pattern_;
  if (!stores_.empty()) return service_pattern::stateful;
  for (auto& t : tables_)
    if (t.global) return service_pattern::enricher;
  return service_pattern::stateless;
}

std::string repartition_topic(std::string_view app, std::string_view name) {
  std::string s{app};
  s += '-';
  s += name;
  s += "-repartition";
  return s;
}

} // namespace weft
