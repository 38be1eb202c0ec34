// json_serde<T> (nlohmann-json) on bytes from outside: it never throws, a
// failure is a bad_record "json: ...", and whatever it accepts survives a
// round trip — serialize, then deserialize again, gives an equal value — so
// a record a service accepted and wrote on is readable downstream. The first
// byte picks the type: a struct of the usual field types, or any JSON
// document (nlohmann::json).

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "weft/serde.hpp"

namespace fuzz {

struct inner {
  std::string name;
  double weight = 0;
  bool operator==(const inner& o) const { return name == o.name && weight == o.weight; }
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(inner, name, weight)

struct record {
  std::string id;
  int64_t count = 0;
  uint32_t small = 0;
  double amount = 0;
  bool flag = false;
  std::vector<int32_t> values;
  std::map<std::string, std::string> labels;
  inner nested;
  std::vector<inner> items;
  bool operator==(const record& o) const {
    return id == o.id && count == o.count && small == o.small && amount == o.amount &&
           flag == o.flag && values == o.values && labels == o.labels &&
           nested == o.nested && items == o.items;
  }
};
void to_json(nlohmann::json& j, const record& r) {
  j = nlohmann::json{{"id", r.id},         {"count", r.count},   {"small", r.small},
                     {"amount", r.amount}, {"flag", r.flag},     {"values", r.values},
                     {"labels", r.labels}, {"nested", r.nested}, {"items", r.items}};
}
// Integers through weft::json_integer, as serde.hpp advises for types read
// from outside (nlohmann's get_to converts 1e30 to an int64_t with undefined
// behaviour: what this target found first).
void from_json(const nlohmann::json& j, record& r) {
  j.at("id").get_to(r.id);
  weft::json_get_integer(j, "count", r.count);
  weft::json_get_integer(j, "small", r.small);
  j.at("amount").get_to(r.amount);
  j.at("flag").get_to(r.flag);
  if (!j.at("values").is_array()) throw std::out_of_range("values: not an array");
  r.values.clear();
  for (auto& v : j.at("values"))
    r.values.push_back(weft::json_integer<int32_t>(v, "values[]"));
  j.at("labels").get_to(r.labels);
  j.at("nested").get_to(r.nested);
  j.at("items").get_to(r.items);
}

template <class T>
void check(std::string_view in) {
  using serde = weft::json_serde<T>;
  auto r = serde::deserialize(in);
  if (!r) {
    WEFT_FUZZ_CHECK(r.error().code() == weft::errc::bad_record, "wrong error code");
    WEFT_FUZZ_CHECK(r.error().message().rfind("json: ", 0) == 0, "message: %s",
                    r.error().message().c_str());
    return;
  }
  auto bytes = serde::serialize(*r);
  auto again = serde::deserialize(bytes);
  WEFT_FUZZ_CHECK(again.ok(), "accepted, written as %s, and that is unreadable: %s",
                  bytes.substr(0, 200).c_str(), again.error().message().c_str());
  WEFT_FUZZ_CHECK(*again == *r, "the round trip changed the value: %s",
                  bytes.substr(0, 200).c_str());
  WEFT_FUZZ_CHECK(serde::serialize(*again) == bytes, "serialize is not stable");
}

} // namespace fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in{reinterpret_cast<const char*>(data) + 1, size - 1};
  if (data[0] & 1)
    fuzz::check<nlohmann::json>(in);
  else
    fuzz::check<fuzz::record>(in);
  return 0;
}
