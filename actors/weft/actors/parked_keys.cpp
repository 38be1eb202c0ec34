#include "weft/actors/parked_keys.hpp"

#include <librdkafka/rdkafka.h>

#include <nlohmann/json.hpp>

namespace weft::detail {

namespace {

constexpr char meta_tag = 'm';
constexpr char record_tag = 'r';
constexpr uint8_t format_version = 1;

void put_u32(std::string& out, uint32_t v) {
  for (int i = 3; i >= 0; --i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u64(std::string& out, uint64_t v) {
  for (int i = 7; i >= 0; --i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_bytes(std::string& out, std::string_view b) {
  put_u32(out, static_cast<uint32_t>(b.size()));
  out.append(b);
}
void put_opt(std::string& out, std::optional<std::string_view> b) {
  out.push_back(b ? 1 : 0);
  if (b) put_bytes(out, *b);
}

/// Reads what the put_* functions wrote; every read checks the bytes left.
struct reader {
  std::string_view in;
  bool ok = true;
  uint64_t uint(int bytes) {
    if (in.size() < static_cast<size_t>(bytes)) return ok = false, 0;
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i)
      v = (v << 8) | static_cast<uint8_t>(in[static_cast<size_t>(i)]);
    in.remove_prefix(static_cast<size_t>(bytes));
    return v;
  }
  std::string bytes() {
    auto n = uint(4);
    if (!ok || in.size() < n) return ok = false, std::string{};
    std::string s{in.substr(0, n)};
    in.remove_prefix(n);
    return s;
  }
  std::optional<std::string> opt() {
    auto flag = uint(1);
    if (!ok || flag == 0) return std::nullopt;
    return bytes();
  }
};

std::string meta_key(const std::string& id) {
  std::string k;
  k.reserve(id.size() + 1);
  k.push_back(meta_tag);
  k += id;
  return k;
}

std::string record_key(const std::string& id, uint64_t seq) {
  std::string k;
  k.reserve(id.size() + 9);
  k.push_back(record_tag);
  k += id;
  put_u64(k, seq);
  return k;
}

/// The id of a stored key ('m' or 'r' + id [+ seq]); false if malformed.
bool split_id(std::string_view k, std::string& id) {
  if (k.size() < 6) return false;
  auto len = (uint32_t(uint8_t(k[2])) << 24) | (uint32_t(uint8_t(k[3])) << 16) |
             (uint32_t(uint8_t(k[4])) << 8) | uint32_t(uint8_t(k[5]));
  if (k.size() < 6 + size_t{len}) return false;
  id.assign(k.substr(1, 5 + size_t{len}));
  return true;
}

/// Raises the key's highest held offset of `topic`/`partition` to `offset`.
void mark_held(parked_entry& e, std::string_view topic, int32_t partition,
               int64_t offset) {
  for (auto& m : e.held_upto)
    if (m.partition == partition && m.topic == topic) {
      m.offset = std::max(m.offset, offset);
      return;
    }
  e.held_upto.push_back({std::string{topic}, partition, offset});
}

} // namespace

std::string encode_held(const record_view& r) {
  std::string out;
  out.reserve(64 + r.topic.size() + (r.key ? r.key->size() : 0) +
              (r.value ? r.value->size() : 0));
  out.push_back(static_cast<char>(format_version));
  put_bytes(out, r.topic);
  put_u32(out, static_cast<uint32_t>(r.partition.value()));
  put_u64(out, static_cast<uint64_t>(r.offset.value()));
  put_u64(out, static_cast<uint64_t>(r.timestamp));
  put_opt(out, r.key);
  put_opt(out, r.value);
  auto hs = r.headers();
  put_u32(out, static_cast<uint32_t>(hs.size()));
  for (auto& h : hs) {
    put_bytes(out, h.key);
    put_bytes(out, h.value);
  }
  return out;
}

result<held_record> decode_held(std::string_view bytes) {
  reader in{bytes};
  held_record r;
  if (in.uint(1) != format_version || !in.ok)
    return make_error(errc::internal, "parked store: a held record of an unknown format");
  r.topic = in.bytes();
  r.partition = static_cast<int32_t>(in.uint(4));
  r.offset = static_cast<int64_t>(in.uint(8));
  r.timestamp = static_cast<timestamp_ms>(in.uint(8));
  r.key = in.opt();
  r.value = in.opt();
  auto n = in.uint(4);
  for (uint64_t i = 0; in.ok && i < n; ++i) {
    header h;
    h.key = in.bytes();
    h.value = in.bytes();
    r.headers.push_back(std::move(h));
  }
  if (!in.ok || !in.in.empty())
    return make_error(errc::internal, "parked store: a held record is truncated");
  return r;
}

held_view::held_view(held_record r) : rec_(std::move(r)) {
  if (!rec_.headers.empty()) {
    auto* hs = rd_kafka_headers_new(rec_.headers.size());
    for (auto& h : rec_.headers)
      rd_kafka_header_add(hs, h.key.data(), static_cast<ssize_t>(h.key.size()),
                          h.value.data(), static_cast<ssize_t>(h.value.size()));
    headers_ = hs;
  }
  view_.topic = rec_.topic;
  view_.partition = partition_id{rec_.partition};
  view_.offset = weft::offset{rec_.offset};
  view_.timestamp = rec_.timestamp;
  if (rec_.key) view_.key = std::string_view{*rec_.key};
  if (rec_.value) view_.value = std::string_view{*rec_.value};
  view_.headers_ = headers_;
}

held_view::~held_view() {
  if (headers_) rd_kafka_headers_destroy(static_cast<rd_kafka_headers_t*>(headers_));
}

std::string parked_keys::key_id(std::optional<std::string_view> key) {
  std::string id;
  key_id_into(id, key);
  return id;
}

void parked_keys::key_id_into(std::string& out, std::optional<std::string_view> key) {
  out.clear();
  out.push_back(key ? 1 : 0);
  put_u32(out, static_cast<uint32_t>(key ? key->size() : 0));
  if (key) out.append(*key);
}

std::optional<std::string> parked_keys::key_of(std::string_view id) {
  if (id.size() < 5 || id[0] == 0) return std::nullopt;
  return std::string{id.substr(5)};
}

status parked_keys::load(state::kv_store* store) {
  store_ = store;
  index_.clear();
  held_ = 0;
  next_seq_ = 0;
  status bad;
  std::string id;
  std::vector<std::string> stray_meta;
  auto st = store->all([&](std::string_view k, std::string_view v) {
    if (!split_id(k, id)) return true; // not ours: left alone
    if (k[0] == record_tag) {
      if (k.size() != 1 + id.size() + 8) return true;
      uint64_t seq = 0;
      for (size_t i = 1 + id.size(); i < k.size(); ++i)
        seq = (seq << 8) | static_cast<uint8_t>(k[i]);
      auto& e = index_[id];
      if (auto r = decode_held(v)) {
        if (e.seqs.empty()) {
          e.head_topic = r->topic;
          e.head_partition = r->partition;
          e.head_offset = r->offset;
        }
        mark_held(e, r->topic, r->partition, r->offset);
      }
      e.seqs.push_back(seq);
      ++held_;
      next_seq_ = std::max(next_seq_, seq + 1);
    } else if (k[0] == meta_tag) {
      auto& e = index_[id];
      auto j = nlohmann::json::parse(v, nullptr, false);
      if (j.is_object()) {
        e.error = j.value("error", std::string{});
        e.since = j.value("since", timestamp_ms{0});
        e.attempts = j.value("attempts", 0);
        e.retriable = j.value("retriable", true);
        e.retry_at = j.value("retry_at", timestamp_ms{0});
      }
    }
    return true;
  });
  if (!st) return st;
  for (auto i = index_.begin(); i != index_.end();) {
    if (i->second.seqs.empty()) {
      stray_meta.push_back(meta_key(i->first));
      i = index_.erase(i);
      continue;
    }
    if (i->second.error.empty())
      i->second.error = "(unknown: the key's error entry was lost in a crash)";
    ++i;
  }
  for (auto& k : stray_meta)
    if (auto s = store_->remove(k); !s) return s;
  return bad;
}

result<parked_entry*> parked_keys::park(const std::string& id, const record_view& r,
                                        const std::string& error, bool retriable,
                                        timestamp_ms now) {
  auto [i, fresh] = index_.try_emplace(id);
  auto& e = i->second;
  if (fresh) {
    e.since = now;
    if (auto s = hold(id, e, r); !s) return s;
  }
  e.error = error;
  e.retriable = retriable;
  e.attempts += 1;
  e.head_topic = std::string{r.topic};
  e.head_partition = r.partition.value();
  e.head_offset = r.offset.value();
  if (auto s = save(id, e); !s) return s;
  return &e;
}

status parked_keys::hold(const std::string& id, parked_entry& e, const record_view& r) {
  auto seq = next_seq_++;
  if (auto s = store_->put(record_key(id, seq), encode_held(r)); !s) return s;
  e.seqs.push_back(seq);
  ++held_;
  mark_held(e, r.topic, r.partition.value(), r.offset.value());
  return {};
}

bool parked_keys::already_held(const parked_entry& e, const record_view& r) {
  if (r.offset.value() < 0) return false;
  for (auto& m : e.held_upto)
    if (m.partition == r.partition.value() && m.topic == r.topic)
      return r.offset.value() <= m.offset && !before_head(e, r);
  return false;
}

bool parked_keys::before_head(const parked_entry& e, const record_view& r) {
  return r.partition.value() == e.head_partition && r.topic == e.head_topic &&
         r.offset.value() < e.head_offset;
}

result<held_record> parked_keys::head(const std::string& id,
                                      const parked_entry& e) const {
  if (e.seqs.empty()) return make_error(errc::not_found, "no held record");
  auto v = store_->get(record_key(id, e.seqs.front()));
  if (!v) return v.error();
  if (!*v) return make_error(errc::internal, "parked store: a held record is missing");
  return decode_held(**v);
}

result<held_record> parked_keys::tail(const std::string& id,
                                      const parked_entry& e) const {
  if (e.seqs.empty()) return make_error(errc::not_found, "no held record");
  auto v = store_->get(record_key(id, e.seqs.back()));
  if (!v) return v.error();
  if (!*v) return make_error(errc::internal, "parked store: a held record is missing");
  return decode_held(**v);
}

bool parked_keys::fits(const record_view& r, size_t max_bytes) {
  size_t size = r.topic.size() + (r.key ? 2 * r.key->size() : 0) +
                (r.value ? r.value->size() : 0) + 1024;
  if (r.headers_)
    for (auto& h : r.headers())
      size += h.key.size() + h.value.size() + 8;
  return size <= max_bytes;
}

result<bool> parked_keys::pop_head(const std::string& id,
                                   std::vector<std::string>* removals) {
  auto i = index_.find(id);
  if (i == index_.end() || i->second.seqs.empty()) return false;
  auto k = record_key(id, i->second.seqs.front());
  if (removals)
    removals->push_back(std::move(k));
  else if (auto s = store_->remove(k); !s)
    return s;
  i->second.seqs.pop_front();
  --held_;
  if (!i->second.seqs.empty()) return true;
  index_.erase(i);
  auto m = meta_key(id);
  if (removals)
    removals->push_back(std::move(m));
  else if (auto s = store_->remove(m); !s)
    return s;
  return false;
}

result<uint64_t> parked_keys::drop(const std::string& id,
                                   std::vector<std::string>* removals) {
  uint64_t n = 0;
  if (!index_.count(id)) return n;
  while (true) {
    auto more = pop_head(id, removals);
    if (!more) return more.error();
    ++n;
    if (!*more) return n;
  }
}

status parked_keys::save(const std::string& id, const parked_entry& e) {
  nlohmann::json j{{"error", e.error},
                   {"since", e.since},
                   {"attempts", e.attempts},
                   {"retriable", e.retriable},
                   {"retry_at", e.retry_at}};
  return store_->put(meta_key(id),
                     j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

status parked_keys::apply_removals(const std::vector<std::string>& removals) {
  for (auto& k : removals) {
    if (k.empty()) continue;
    if (k[0] == meta_tag && index_.count(k.substr(1))) continue; // parked again
    if (auto s = store_->remove(k); !s) return s;
  }
  return {};
}

} // namespace weft::detail
