#include "weft/actors/dead_letter.hpp"

#include <algorithm>
#include <cstdlib>

namespace weft::detail {

namespace {

// What librdkafka adds per header beyond name and value (two varint
// lengths), and a margin for the rest of its per-message accounting.
constexpr size_t header_overhead = 10;
constexpr size_t record_overhead = 512;

size_t headers_size(const std::vector<header>& hs) {
  size_t n = 0;
  for (auto& h : hs)
    n += h.key.size() + h.value.size() + header_overhead;
  return n;
}

size_t record_size(const record& r) {
  return (r.key ? r.key->size() : 0) + (r.value ? r.value->size() : 0) +
         headers_size(r.headers) + record_overhead;
}

} // namespace

std::string cap_error(std::string_view error) {
  if (error.size() <= max_error_length) return std::string{error};
  return std::string{error.substr(0, max_error_length)} + "... (" +
         std::to_string(error.size()) + " bytes)";
}

size_t max_message_bytes(const config& cfg) {
  auto props = cfg.kafka_properties(client_kind::producer);
  auto i = props.find("message.max.bytes");
  // librdkafka's default; its own check refuses anything larger.
  size_t max = 1000000;
  if (i != props.end()) {
    char* end = nullptr;
    auto v = std::strtoull(i->second.c_str(), &end, 10);
    if (end != i->second.c_str() && *end == '\0' && v > 0) max = v;
  }
  return max;
}

record dead_letter_record(const record_view& r, std::string_view error,
                          const std::string& service, const std::string& topic,
                          size_t max_bytes) {
  record dl;
  dl.topic = topic;
  dl.partition = -1;
  if (r.key) dl.key = std::string{*r.key};
  if (r.value) dl.value = std::string{*r.value};
  dl.timestamp = r.timestamp;
  std::vector<header> own{{"weft.error", cap_error(error)},
                          {"weft.service", service},
                          {"weft.topic", std::string{r.topic}},
                          {"weft.partition", std::to_string(r.partition.value())},
                          {"weft.offset", std::to_string(r.offset.value())}};
  dl.headers = r.headers();
  dl.headers.insert(dl.headers.end(), own.begin(), own.end());
  if (record_size(dl) <= max_bytes) return dl;

  // Too large: make room, and say what was cut. The budget keeps space for
  // weft's own headers and the weft.truncated header itself.
  std::string cut;
  auto note = [&](const std::string& what) { cut += (cut.empty() ? "" : "; ") + what; };
  const size_t original_headers = dl.headers.size() - own.size();
  if (original_headers > 0) {
    note(std::to_string(original_headers) + " original headers (" +
         std::to_string(headers_size(r.headers())) + " bytes) dropped");
    dl.headers = own;
  }
  const size_t reserve = headers_size(own) + record_overhead + 256 + header_overhead;
  const size_t budget = max_bytes > reserve ? max_bytes - reserve : 0;
  auto shrink = [&](std::optional<std::string>& field, const char* name, size_t room) {
    if (!field || field->size() <= room) return;
    note(std::string{name} + " cut from " + std::to_string(field->size()) + " to " +
         std::to_string(room) + " bytes");
    field->resize(room);
  };
  const size_t key_size = dl.key ? dl.key->size() : 0;
  shrink(dl.value, "value", budget > key_size ? budget - key_size : 0);
  const size_t value_size = dl.value ? dl.value->size() : 0;
  shrink(dl.key, "key", budget > value_size ? budget - value_size : 0);
  if (!cut.empty()) dl.headers.push_back({"weft.truncated", cut});
  return dl;
}

} // namespace weft::detail
