#include "weft/cluster/rebalance_logic.hpp"

#include <algorithm>

namespace weft::cluster {

namespace {

std::string list(const std::set<unit_id>& us) {
  std::string out;
  for (auto u : us)
    out += (out.empty() ? "" : ",") + std::to_string(u);
  return out.empty() ? "none" : out;
}

} // namespace

bool node_status::clear_of(unit_id unit, int64_t since) const {
  return applied >= since && !std::binary_search(holding.begin(), holding.end(), unit);
}

rebalance_logic::rebalance_logic(rebalance_settings s) : s_(std::move(s)) {}

void rebalance_logic::say(log_level level, const std::string& line) {
  if (s_.log) s_.log(level, line);
}

void rebalance_logic::start(time_ms now) {
  started_ = true;
  evaluate(now);
}

void rebalance_logic::generations(const std::vector<assignment>& fresh, time_ms now) {
  for (auto& a : fresh) {
    if (target_ && a.generation <= target_->generation) continue;
    if (a.active.size() != s_.stateful.size()) {
      say(log_level::warn,
          "cluster: generation " + std::to_string(a.generation) + " has " +
              std::to_string(a.active.size()) + " units, this node " +
              std::to_string(s_.stateful.size()) +
              ": is another version of the application running? Ignored");
      continue;
    }
    for (unit_id u = 0; u < a.active.size(); ++u) {
      if (a.active[u] == s_.self) {
        since_.emplace(u, a.generation);
      } else {
        since_.erase(u);
        waiting_.erase(u);
      }
    }
    target_ = a;
  }
  evaluate(now);
}

void rebalance_logic::status(const node_status& s, time_ms now) {
  if (s.node == s_.self) return;
  auto i = peers_.find(s.node);
  if (i != peers_.end() && s.incarnation < i->second.incarnation) return;
  peers_[s.node] = s;
  if (!waiting_.empty()) evaluate(now);
}

void rebalance_logic::task_done(uint64_t id, time_ms now) {
  if (!op_ || op_->id != id) return;
  auto op = std::move(*op_);
  op_.reset();
  switch (op.what) {
  case task_command::kind::run:
    running_ = {op.units.begin(), op.units.end()};
    standbys_ = {op.standbys.begin(), op.standbys.end()};
    standbys_set_ = true;
    break;
  case task_command::kind::drop:
    running_.clear();
    drop_failures_ = 0;
    say(log_level::info, "cluster: every task dropped; back as incarnation " +
                             std::to_string(s_.incarnation) +
                             ", waiting for an assignment that names it");
    break;
  case task_command::kind::standbys:
    standbys_ = {op.standbys.begin(), op.standbys.end()};
    standbys_set_ = true;
    break;
  }
  evaluate(now);
}

void rebalance_logic::task_failed(uint64_t id, const std::string& why, time_ms now) {
  if (!op_ || op_->id != id) return;
  auto op = std::move(*op_);
  op_.reset();
  switch (op.what) {
  case task_command::kind::run:
    // What runs now is unknown: hold all of it until the drop.
    running_.insert(op.units.begin(), op.units.end());
    say(log_level::warn, "cluster: applying generation " + std::to_string(op.generation) +
                             " failed (" + why + "); dropping every task");
    drop_pending_ = true;
    drop_at_ = now;
    break;
  case task_command::kind::drop: {
    ++drop_failures_;
    time_ms wait = s_.retry_min_ms;
    for (int i = 1; i < drop_failures_ && wait < s_.retry_max_ms; ++i)
      wait *= 2;
    wait = std::min(wait, s_.retry_max_ms);
    drop_pending_ = true;
    drop_at_ = now + wait;
    say(log_level::warn, "cluster: dropping the tasks failed (attempt " +
                             std::to_string(drop_failures_) + "): " + why +
                             "; retrying in " + std::to_string(wait) + " ms");
    break;
  }
  case task_command::kind::standbys:
    standbys_set_ = false;
    standbys_at_ = now + s_.retry_min_ms;
    say(log_level::warn, "cluster: setting the standbys failed: " + why);
    break;
  }
  evaluate(now);
}

void rebalance_logic::fenced(const std::string& why, time_ms now) {
  if (drop_pending_ || (op_ && op_->what == task_command::kind::drop)) return;
  say(log_level::warn, "cluster: this node was fenced or stalled (" + why +
                           "); it drops its tasks, commits nothing more and rejoins as a "
                           "new incarnation");
  drop_pending_ = true;
  drop_at_ = now;
  evaluate(now);
}

void rebalance_logic::dropped(uint64_t id, int64_t incarnation, time_ms now) {
  if (!op_ || op_->id != id || op_->what != task_command::kind::drop) return;
  s_.incarnation = incarnation;
  task_done(id, now);
}

void rebalance_logic::tick(time_ms now) {
  evaluate(now);
}

std::vector<task_command> rebalance_logic::take_commands() {
  std::vector<task_command> out;
  out.swap(commands_);
  return out;
}

std::optional<int64_t> rebalance_logic::applied() const {
  if (!target_) return std::nullopt;
  return target_->generation;
}

node_status rebalance_logic::status() const {
  node_status out;
  out.node = s_.self;
  out.incarnation = s_.incarnation;
  out.applied = target_ ? target_->generation : 0;
  std::set<unit_id> holding = running_;
  if (op_) holding.insert(op_->units.begin(), op_->units.end());
  out.holding.assign(holding.begin(), holding.end());
  return out;
}

std::map<unit_id, std::string> rebalance_logic::waiting() const {
  return waiting_;
}

std::optional<std::string> rebalance_logic::blocker(unit_id u, int64_t since) const {
  for (auto& m : target_->members) {
    if (m == s_.self) continue;
    auto i = peers_.find(m);
    // A later incarnation than the one named never acts on this assignment
    // (and its start fenced the named one).
    if (i == peers_.end() || i->second.incarnation < target_->incarnation_of(m) ||
        !i->second.clear_of(u, since))
      return m;
  }
  return std::nullopt;
}

void rebalance_logic::evaluate(time_ms now) {
  if (!started_ || op_) return;
  if (drop_pending_) {
    if (now < drop_at_) return;
    drop_pending_ = false;
    op_ = task_command{task_command::kind::drop, next_id_++, {}, false, {}, 0};
    op_->units.assign(running_.begin(), running_.end());
    commands_.push_back(*op_);
    return;
  }
  if (!target_) return;
  auto& a = *target_;
  // An assignment for another incarnation of this node gives it nothing.
  bool named = a.incarnation_of(s_.self) == s_.incarnation;
  std::set<unit_id> desired;
  std::set<unit_id> copies;
  for (unit_id u = 0; u < a.active.size(); ++u) {
    bool stateful = s_.stateful[u];
    if (a.active[u] == s_.self && named) {
      if (running_.count(u)) {
        desired.insert(u);
        continue;
      }
      if (auto b = blocker(u, since_.at(u))) {
        auto& logged = waiting_[u];
        if (logged != *b)
          say(log_level::info, "cluster: generation " + std::to_string(a.generation) +
                                   ": unit " + std::to_string(u) + " waits for node " +
                                   *b + " to be clear of it");
        logged = *b;
        // Its copy here keeps up meanwhile.
        if (stateful) copies.insert(u);
        continue;
      }
      waiting_.erase(u);
      desired.insert(u);
      continue;
    }
    if (stateful && std::find(a.standbys[u].begin(), a.standbys[u].end(), s_.self) !=
                        a.standbys[u].end())
      copies.insert(u);
  }
  if (desired != running_) {
    bool only_add =
        std::includes(desired.begin(), desired.end(), running_.begin(), running_.end());
    task_command c{task_command::kind::run, next_id_++, {}, only_add, {}, a.generation};
    c.units.assign(desired.begin(), desired.end());
    c.standbys.assign(copies.begin(), copies.end());
    say(log_level::info, "cluster: generation " + std::to_string(a.generation) +
                             ": running units " + list(desired) +
                             (only_add ? " (adding to " : " (restarting from ") +
                             list(running_) + ")");
    op_ = c;
    commands_.push_back(std::move(c));
    return;
  }
  if ((!standbys_set_ || copies != standbys_) && now >= standbys_at_) {
    task_command c{task_command::kind::standbys, next_id_++, {}, false, {}, a.generation};
    c.units.assign(running_.begin(), running_.end());
    c.standbys.assign(copies.begin(), copies.end());
    op_ = c;
    commands_.push_back(std::move(c));
  }
}

} // namespace weft::cluster
