#include "weft/cluster/membership_logic.hpp"

#include <algorithm>
#include <functional>

namespace weft::cluster {

namespace {

std::string join(const std::vector<std::string>& ids) {
  std::string out;
  for (auto& id : ids)
    out += (out.empty() ? "" : ", ") + id;
  return out;
}

std::string describe(const assignment& a) {
  std::string out;
  for (auto& [node, load] : cluster::load(a))
    out += (out.empty() ? "" : ", ") + node + ": " + std::to_string(load.first) +
           " active/" + std::to_string(load.second) + " standby";
  size_t warm = 0;
  for (auto& w : a.warmup)
    warm += !w.empty();
  if (warm) out += "; " + std::to_string(warm) + " warming up";
  return out;
}

} // namespace

membership_logic::membership_logic(membership_settings s)
  : s_(std::move(s)),
    rng_(static_cast<unsigned>(std::hash<std::string>{}(s_.self.id) ^
                               static_cast<size_t>(s_.self.incarnation))) {}

void membership_logic::say(log_level level, const std::string& line) {
  if (s_.log) s_.log(level, line);
}

time_ms membership_logic::backoff(int failures) {
  time_ms base = s_.retry_min_ms;
  for (int i = 1; i < failures && base < s_.retry_max_ms; ++i)
    base *= 2;
  base = std::min(base, s_.retry_max_ms);
  // Jitter, so that two nodes that failed together do not retry together.
  std::uniform_int_distribution<time_ms> jitter{0, base / 2};
  return base / 2 + jitter(rng_) + base / 4;
}

std::vector<std::string> membership_logic::live_members() const {
  std::vector<std::string> out{s_.self.id};
  for (auto& [id, m] : connected_)
    if (m.topology == s_.self.topology) out.push_back(id);
  std::sort(out.begin(), out.end());
  return out;
}

void membership_logic::start(time_ms now) {
  started_ = true;
  quiet_until_ = now + s_.quiet_ms;
  evaluate(now);
}

void membership_logic::log_read(const std::map<std::string, member_record>& announced,
                                const std::vector<assignment>& fresh, int64_t position,
                                time_ms now) {
  announced_ = announced;
  log_position_ = std::max(log_position_, position);
  for (auto& a : fresh) {
    if (latest_ && a.generation <= latest_->generation) continue;
    if (role_ == role::leader && a.leader != s_.self.id)
      say(log_level::info, "cluster: generation " + std::to_string(a.generation) +
                               " published by " + a.leader);
    latest_ = a;
  }
  if (awaiting_ && latest_ && latest_->generation >= awaiting_->first) awaiting_.reset();
  evaluate(now);
}

void membership_logic::peer_up(const member_record& peer, time_ms now) {
  if (peer.id == s_.self.id) return;
  connected_[peer.id] = peer;
  fence_retry_.erase(peer.id);
  evaluate(now);
}

void membership_logic::peer_down(const std::string& id, time_ms now) {
  if (connected_.erase(id) == 0) return;
  evaluate(now);
}

void membership_logic::status(const node_status& s, time_ms now) {
  auto& known = statuses_[s.node];
  // A status of an older incarnation arriving late changes nothing.
  if (s.incarnation < known.incarnation) return;
  bool lags_changed = known.standby_lag != s.standby_lag;
  known = s;
  // Warm-ups move once their lag is reported caught up.
  if (lags_changed && role_ == role::leader) evaluate(now);
}

void membership_logic::tick(time_ms now) {
  evaluate(now);
}

void membership_logic::lease_taken(int64_t log_end, time_ms now) {
  if (role_ != role::claiming) return;
  role_ = role::syncing;
  sync_to_ = log_end;
  claim_failures_ = 0;
  evaluate(now);
}

void membership_logic::lease_failed(const std::string& why, time_ms now) {
  if (role_ != role::claiming) return;
  role_ = role::follower;
  ++claim_failures_;
  claim_at_ = now + backoff(claim_failures_);
  say(log_level::warn, "cluster: cannot take the leader lease (attempt " +
                           std::to_string(claim_failures_) + "): " + why +
                           "; retrying in " + std::to_string(claim_at_ - now) + " ms");
}

void membership_logic::fence_done(const std::string& node, time_ms now) {
  auto i = fencing_.find(node);
  if (i == fencing_.end()) return;
  // (A node that came back meanwhile was fenced in its new incarnation: it
  // finds out when its producer fails, drops its tasks and rejoins.)
  fenced_.insert({node, i->second});
  fencing_.erase(i);
  fence_retry_.erase(node);
  evaluate(now);
}

void membership_logic::fence_failed(const std::string& node, const std::string& why,
                                    time_ms now) {
  fencing_.erase(node);
  auto& [failures, at] = fence_retry_[node];
  ++failures;
  at = now + backoff(failures);
  say(log_level::warn, "cluster: cannot fence node " + node + " (attempt " +
                           std::to_string(failures) + "): " + why +
                           "; its units stay put, retrying in " +
                           std::to_string(at - now) + " ms");
}

void membership_logic::publish_done(int64_t generation, time_ms now) {
  if (!publishing_ || *publishing_ != generation) return;
  publishing_.reset();
  publish_failures_ = 0;
  if (!latest_ || latest_->generation < generation)
    awaiting_ = std::make_pair(generation, now + s_.readback_ms);
  evaluate(now);
}

void membership_logic::publish_failed(int64_t generation, const std::string& why,
                                      bool lease_lost, time_ms now) {
  if (!publishing_ || *publishing_ != generation) return;
  publishing_.reset();
  ++publish_failures_;
  publish_at_ = now + backoff(publish_failures_);
  if (lease_lost) {
    step_down("the lease was taken by another node (" + why + ")", now);
    ++claim_failures_;
    claim_at_ = now + backoff(claim_failures_);
    return;
  }
  say(log_level::warn, "cluster: publishing generation " + std::to_string(generation) +
                           " failed: " + why + "; retrying in " +
                           std::to_string(publish_at_ - now) + " ms");
}

void membership_logic::frozen(time_ms now) {
  quiet_until_ = now + s_.quiet_ms;
  step_down("frozen", now);
}

void membership_logic::rejoined(int64_t incarnation, time_ms now) {
  s_.self.incarnation = incarnation;
  // As at start: the peers drop the old incarnation and connect to the new
  // one meanwhile; claiming the lease before that took it from the node with
  // the smallest id, which took it back (lease thrash after a broker restart).
  quiet_until_ = now + s_.quiet_ms;
  evaluate(now);
}

std::vector<membership_command> membership_logic::take_commands() {
  std::vector<membership_command> out;
  out.swap(commands_);
  return out;
}

void membership_logic::step_down(const std::string& why, time_ms now) {
  (void)now;
  if (role_ == role::follower) return;
  bool was_leader = role_ == role::leader;
  role_ = role::follower;
  publishing_.reset();
  awaiting_.reset();
  commands_.push_back({membership_command::kind::drop_lease, {}, {}});
  if (was_leader)
    say(log_level::info, "cluster: this node no longer leads (" + why + ")");
}

void membership_logic::evaluate(time_ms now) {
  if (!started_ || now < quiet_until_) return;
  auto members = live_members();
  if (members.front() != s_.self.id) {
    step_down("node " + members.front() + " has the smallest id", now);
    return;
  }
  switch (role_) {
  case role::follower:
    if (now < claim_at_) return;
    role_ = role::claiming;
    commands_.push_back({membership_command::kind::claim_lease, {}, {}});
    return;
  case role::claiming:
    return;
  case role::syncing:
    // Everything earlier leaders committed is final now: act on it only
    // once it is read.
    if (log_position_ < sync_to_) return;
    role_ = role::leader;
    say(log_level::info, "cluster: this node leads (members: " + join(members) + ")");
    break;
  case role::leader:
    break;
  }
  if (publishing_) return;
  if (awaiting_) {
    if (now < awaiting_->second) return;
    say(log_level::warn, "cluster: generation " + std::to_string(awaiting_->first) +
                             " not read back from the log within " +
                             std::to_string(s_.readback_ms) + " ms; deciding on");
    awaiting_.reset();
  }
  if (now < publish_at_) return;

  assignor_input in;
  in.members = members;
  in.incarnations[s_.self.id] = s_.self.incarnation;
  for (auto& [id, m] : connected_)
    in.incarnations[id] = m.incarnation;
  in.stateful = s_.stateful;
  in.previous = latest_ ? &*latest_ : nullptr;
  in.num_standbys = s_.num_standbys;
  in.acceptable_lag = s_.acceptable_lag;
  std::set<std::string> live{members.begin(), members.end()};
  for (auto& [node, st] : statuses_) {
    if (!live.count(node)) continue;
    for (auto& [u, lag] : st.standby_lag)
      if (lag >= 0) in.standby_lag[{u, node}] = lag;
  }
  auto a = assign(in);
  if (latest_ && a == *latest_) return;

  if (s_.exactly_once && latest_) {
    // Every member the new generation leaves out must never commit again
    // before anyone relies on its absence.
    bool waiting = false;
    for (auto& node : latest_->members) {
      auto incarnation = latest_->incarnation_of(node);
      if (live.count(node) || fenced_.count({node, incarnation})) continue;
      waiting = true;
      if (fencing_.count(node)) continue;
      auto retry = fence_retry_.find(node);
      if (retry != fence_retry_.end() && now < retry->second.second) continue;
      fencing_[node] = incarnation;
      commands_.push_back({membership_command::kind::fence, node, {}});
    }
    if (waiting) return;
  }
  a.generation = std::max(latest_ ? latest_->generation : 0, last_published_) + 1;
  a.leader = s_.self.id;
  last_published_ = a.generation;
  publishing_ = a.generation;
  say(log_level::info, "cluster: publishing generation " + std::to_string(a.generation) +
                           " for members [" + join(a.members) + "]: " + describe(a));
  commands_.push_back({membership_command::kind::publish, {}, std::move(a)});
}

} // namespace weft::cluster
