#include "record_codec.hpp"

#include <array>

#include <weft/serde.hpp>

namespace sidecar {

namespace {

constexpr char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

bool is_utf8(std::string_view s) {
  return bool(weft::string_serde::deserialize(s));
}

} // namespace

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += alphabet[(n >> 18) & 63];
    out += alphabet[(n >> 12) & 63];
    out += alphabet[(n >> 6) & 63];
    out += alphabet[n & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t n = uint8_t(in[i]) << 16;
    out += alphabet[(n >> 18) & 63];
    out += alphabet[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += alphabet[(n >> 18) & 63];
    out += alphabet[(n >> 12) & 63];
    out += alphabet[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  static const std::array<int8_t, 256> table = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    for (int i = 0; i < 64; ++i)
      t[static_cast<uint8_t>(alphabet[i])] = static_cast<int8_t>(i);
    return t;
  }();
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int j = 0; j < 4; ++j) {
      char c = in[i + j];
      if (c == '=' && i + 4 == in.size() && j >= 2) {
        v[j] = 0;
        ++pad;
        continue;
      }
      if (pad) return std::nullopt; // data after padding
      v[j] = table[static_cast<uint8_t>(c)];
      if (v[j] < 0) return std::nullopt;
    }
    uint32_t n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out += static_cast<char>((n >> 16) & 0xff);
    if (pad < 2) out += static_cast<char>((n >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(n & 0xff);
  }
  return out;
}

weft::result<json> to_api(serde_kind k, std::optional<std::string_view> bytes) {
  if (!bytes) return json(nullptr);
  switch (k) {
  case serde_kind::json: {
    auto v = json::parse(bytes->begin(), bytes->end(), nullptr, false);
    if (v.is_discarded())
      return weft::make_error(weft::errc::bad_record, "not JSON (serde json)");
    return v;
  }
  case serde_kind::string:
    if (!is_utf8(*bytes))
      return weft::make_error(weft::errc::bad_record, "not UTF-8 (serde string)");
    return json(std::string{*bytes});
  case serde_kind::bytes: return json(base64_encode(*bytes));
  }
  return weft::make_error(weft::errc::internal, "unknown serde");
}

weft::result<std::optional<std::string>> from_api(serde_kind k, const json& v,
                                                  const std::string& field) {
  if (v.is_null()) return std::optional<std::string>{};
  auto wrong = [&](const std::string& why) {
    return weft::make_error(weft::errc::invalid_argument, field + ": " + why);
  };
  switch (k) {
  case serde_kind::json: return std::optional<std::string>{v.dump()};
  case serde_kind::string:
    if (!v.is_string()) return wrong("must be a string (the topic's serde is string)");
    return std::optional<std::string>{v.get<std::string>()};
  case serde_kind::bytes: {
    if (!v.is_string())
      return wrong("must be a base64 string (the topic's serde is bytes)");
    auto b = base64_decode(v.get_ref<const std::string&>());
    if (!b) return wrong("is not padded standard base64 (the topic's serde is bytes)");
    return std::optional<std::string>{std::move(*b)};
  }
  }
  return wrong("unknown serde");
}

weft::result<json> record_to_api(const weft::record_view& r, const topic_spec& t) {
  auto key = to_api(t.key, r.key);
  if (!key) return weft::make_error(weft::errc::bad_record, "key " + key.error().message());
  auto value = to_api(t.value, r.value);
  if (!value)
    return weft::make_error(weft::errc::bad_record, "value " + value.error().message());
  json out{{"topic", std::string{r.topic}},
           {"partition", r.partition.value()},
           {"offset", r.offset.value()},
           {"timestamp", r.timestamp},
           {"key", std::move(*key)},
           {"value", std::move(*value)}};
  json headers = json::object(), binary = json::object();
  for (auto& h : r.headers())
    if (is_utf8(h.value))
      headers[h.key] = h.value;
    else
      binary[h.key] = base64_encode(h.value);
  out["headers"] = std::move(headers);
  if (!binary.empty()) out["headers_base64"] = std::move(binary);
  return out;
}

} // namespace sidecar
