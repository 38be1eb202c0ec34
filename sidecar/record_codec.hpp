#pragma once
// Keys, values and whole records between Kafka's bytes and the HTTP API's
// JSON, by the topic's serdes (sidecar_config.hpp: json, string, bytes).
// Pure functions; any thread.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <weft/record.hpp>
#include <weft/status.hpp>

#include "sidecar_config.hpp"

namespace sidecar {

using json = nlohmann::json;

std::string base64_encode(std::string_view bytes);
/// nullopt when `text` is not padded standard base64.
std::optional<std::string> base64_decode(std::string_view text);

/// Bytes as the API shows them: null for a null (tombstone), the JSON value
/// for json, a JSON string for string, base64 for bytes. errc::bad_record
/// when the bytes are not what the serde says (invalid JSON, invalid UTF-8).
weft::result<json> to_api(serde_kind k, std::optional<std::string_view> bytes);

/// The API's JSON as bytes: nullopt for null (a tombstone), the JSON text for
/// json, the string for string, the decoded base64 for bytes. errc::invalid_argument
/// naming `field` (e.g. "records[2].value") when the JSON does not fit the serde.
weft::result<std::optional<std::string>> from_api(serde_kind k, const json& v,
                                                  const std::string& field);

/// A consumed record as subscriptions deliver it:
///   {"topic","partition","offset","timestamp","key","value","headers":{k: v}}
/// Header values are shown as strings when UTF-8, else base64 under
/// "headers_base64". errc::bad_record when key or value do not decode.
weft::result<json> record_to_api(const weft::record_view& r, const topic_spec& t);

} // namespace sidecar
