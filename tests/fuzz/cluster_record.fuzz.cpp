// The cluster log's records (weft/cluster/cluster_log.hpp) as every node
// applies them: a key ("assignment", "member/<id>", anything) and a value,
// maybe null, from a topic any client with write access can append to.
// apply_record never throws; an unreadable record only adds a warning; an
// announcement it keeps survives encode_member and decode_member unchanged;
// the latest assignment's generation never goes down. Input: the key, a
// newline, the value (a leading 0x00 byte instead: a null value).

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "weft/cluster/cluster_log.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in{reinterpret_cast<const char*>(data), size};
  auto nl = in.find('\n');
  if (nl == std::string_view::npos) return 0;
  auto key = in.substr(0, nl);
  std::optional<std::string_view> value = in.substr(nl + 1);
  if (!value->empty() && (*value)[0] == '\0') value = std::nullopt;

  using namespace weft::cluster;
  log_state state;
  // A state with an assignment and a member already in it, as a running
  // node has.
  assignment a;
  a.generation = 5;
  a.members = {"n1"};
  a.active = {"n1"};
  a.standbys = {{}};
  a.warmup = {""};
  a.previous = {""};
  apply_record(state, assignment_key, to_json(a), 0);
  member_record n1{"n1", "127.0.0.1", 4000, "", 1, "t"};
  apply_record(state, "member/n1", encode_member(n1), 1);
  WEFT_FUZZ_CHECK(state.latest && state.announced.count("n1") && state.warnings.empty(),
                  "the starting state");

  std::vector<assignment> fresh;
  const auto warnings = state.warnings.size();
  apply_record(state, key, value, 2, &fresh);
  WEFT_FUZZ_CHECK(state.latest && state.latest->generation >= 5, "generation went down");
  WEFT_FUZZ_CHECK(fresh.size() <= 1, "one record, %zu fresh assignments", fresh.size());
  for (auto& f : fresh)
    WEFT_FUZZ_CHECK(f.generation > 5 && f == *state.latest, "a stale assignment was fresh");
  for (auto& [id, m] : state.announced) {
    auto back = decode_member(encode_member(m));
    WEFT_FUZZ_CHECK(back.ok() && *back == m, "announcement of %s does not round-trip",
                    id.c_str());
  }
  WEFT_FUZZ_CHECK(state.warnings.size() <= warnings + 1, "more than one warning");
  // The same record again changes nothing more.
  auto before = state.announced;
  auto generation = state.latest->generation;
  apply_record(state, key, value, 3);
  WEFT_FUZZ_CHECK(state.announced == before && state.latest->generation == generation,
                  "applying the same record twice differs");
  return 0;
}
