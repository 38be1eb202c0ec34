#include "weft/cluster/status_gossip.hpp"

#include <algorithm>
#include <tuple>
#include <utility>

namespace weft::cluster {

status_gossip::status_gossip(gossip_settings s) : s_(std::move(s)) {}

bool status_gossip::take(const stamped_status& s, const std::string& sender,
                         time_ms now) {
  if (auto d = direct_.find(sender); d != direct_.end()) d->second = now;
  if (s.status.node == s_.self) return false;
  auto [i, fresh] = heard_.try_emplace(s.status.node);
  auto& known = i->second.latest;
  if (!fresh && std::tie(s.status.incarnation, s.beat) <=
                    std::tie(known.status.incarnation, known.beat))
    return false;
  known = s;
  i->second.advanced_at = now;
  return true;
}

void status_gossip::linked(const std::string& peer, time_ms now) {
  direct_[peer] = now;
}

void status_gossip::unlinked(const std::string& peer) {
  direct_.erase(peer);
}

void status_gossip::forget(const std::string& node) {
  heard_.erase(node);
  direct_.erase(node);
}

void status_gossip::stalled(time_ms now) {
  for (auto& [peer, last] : direct_)
    last = std::max(last, now);
}

std::vector<stamped_status> status_gossip::relay_to(const std::string& peer,
                                                    time_ms now) const {
  std::vector<stamped_status> out;
  for (auto& [node, h] : heard_)
    if (node != peer && now - h.advanced_at <= s_.relay_fresh_ms) out.push_back(h.latest);
  return out;
}

std::vector<peer_silence> status_gossip::silent(time_ms now) const {
  std::vector<peer_silence> out;
  for (auto& [peer, last] : direct_) {
    if (now - last <= s_.silence_ms) continue;
    auto h = heard_.find(peer);
    bool through_others =
        h != heard_.end() && now - h->second.advanced_at <= s_.silence_ms;
    out.push_back({peer, now - last, through_others});
  }
  return out;
}

} // namespace weft::cluster
