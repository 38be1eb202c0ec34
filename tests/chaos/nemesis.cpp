#include "nemesis.hpp"

#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <deque>
#include <fstream>
#include <sstream>
#include <thread>

namespace weft::test::chaos {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

int64_t env_int(const char* name, int64_t fallback) {
  auto* v = std::getenv(name);
  return v && *v ? std::strtoll(v, nullptr, 10) : fallback;
}

int64_t ms_since(clock_type::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t)
      .count();
}

std::string tail_of(const std::string& path, size_t lines) {
  std::ifstream f{path};
  std::deque<std::string> last;
  for (std::string line; std::getline(f, line);) {
    last.push_back(std::move(line));
    if (last.size() > lines) last.pop_front();
  }
  std::string out;
  for (auto& l : last)
    out += l + "\n";
  return out;
}

} // namespace

options options::from_env() {
  options o;
  o.storm_ms = env_int("WEFT_CHAOS_SECONDS", o.storm_ms / 1000) * 1000;
  o.every_ms = env_int("WEFT_CHAOS_EVERY_MS", o.every_ms);
  o.seed = static_cast<uint64_t>(env_int("WEFT_CHAOS_SEED", 0));
  o.broker_restarts = env_int("WEFT_CHAOS_BROKER", 1) != 0;
  o.settle_bound_ms = env_int("WEFT_CHAOS_SETTLE_MS", o.settle_bound_ms);
  if (auto* d = std::getenv("WEFT_CHAOS_LOG_DIR"); d && *d) o.log_dir = d;
  return o;
}

// -- cluster -------------------------------------------------------------------

cluster::cluster(
    std::string name, std::string program, std::vector<std::string> common_args,
    std::function<std::vector<std::string>(const std::string&, int)> node_args, int nodes,
    int base_port)
  : name_(std::move(name)), program_(std::move(program)),
    common_(std::move(common_args)) {
  for (int i = 0; i < nodes; ++i) {
    auto id = "n" + std::to_string(i + 1);
    auto& n = nodes_[id];
    n.id = id;
    n.http_port = base_port + i;
    n.log = "/tmp/" + name_ + "-" + id + ".log";
    n.args = common_;
    for (auto& a : node_args(id, n.http_port))
      n.args.push_back(a);
  }
}

cluster::~cluster() {
  for (auto& [id, n] : nodes_)
    if (n.proc && n.proc->running()) {
      if (n.frozen) ::kill(n.proc->pid(), SIGCONT);
      n.proc->kill_hard();
    }
}

void cluster::start(const std::string& id) {
  auto& n = nodes_.at(id);
  // Appends: a restarted node's log follows its previous life's.
  n.proc = std::make_unique<child_process>(program_, n.args, n.log);
  n.proc->note_end_in_log();
  n.frozen = false;
}

void cluster::kill(const std::string& id) {
  auto& n = nodes_.at(id);
  if (!n.proc) return;
  if (n.frozen) ::kill(n.proc->pid(), SIGCONT);
  n.proc->kill_hard();
  n.frozen = false;
}

void cluster::restart(const std::string& id) {
  kill(id);
  ++nodes_.at(id).restarts;
  start(id);
}

void cluster::freeze(const std::string& id) {
  auto& n = nodes_.at(id);
  if (n.proc && n.proc->running() && ::kill(n.proc->pid(), SIGSTOP) == 0) n.frozen = true;
}

void cluster::thaw(const std::string& id) {
  auto& n = nodes_.at(id);
  if (n.proc && n.frozen) ::kill(n.proc->pid(), SIGCONT);
  n.frozen = false;
}

std::set<std::string> cluster::live() {
  std::set<std::string> out;
  for (auto& [id, n] : nodes_)
    if (n.running() && !n.frozen) out.insert(id);
  return out;
}

std::optional<json> cluster::get(const std::string& id, const std::string& path,
                                 int timeout_s) {
  httplib::Client c{"127.0.0.1", nodes_.at(id).http_port};
  c.set_connection_timeout(1);
  c.set_read_timeout(timeout_s);
  auto res = c.Get(path.c_str());
  if (!res || res->status != 200) return std::nullopt;
  auto j = json::parse(res->body, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

std::optional<std::string> cluster::leader() {
  for (auto& id : live()) {
    auto v = get(id, "/cluster");
    if (v && v->value("leads", false)) return id;
  }
  return std::nullopt;
}

bool cluster::settled(std::string* why) {
  auto say = [&](const std::string& w) {
    if (why) *why = w;
    return false;
  };
  auto alive = live();
  if (alive.empty()) return say("no node runs");
  std::optional<int64_t> generation;
  std::string leads;
  for (auto& id : alive) {
    auto v = get(id, "/cluster");
    if (!v) return say(id + " does not answer GET /cluster");
    if (!v->contains("units")) return say(id + " has no assignment yet");
    if (v->value("leads", false)) leads = id;
    auto g = (*v)["generation"].get<int64_t>();
    if (generation && *generation != g)
      return say("nodes are at generations " + std::to_string(*generation) + " and " +
                 std::to_string(g));
    generation = g;
    std::set<std::string> connected;
    std::map<std::string, std::set<int64_t>> holding;
    for (auto& m : (*v)["members"]) {
      auto mid = m["id"].get<std::string>();
      if (m["connected"].get<bool>()) connected.insert(mid);
      if (m.contains("holding"))
        for (auto& u : m["holding"])
          holding[mid].insert(u.get<int64_t>());
    }
    if (connected != alive) return say(id + " is connected to other nodes");
    for (auto& u : (*v)["units"]) {
      auto owner = u["active"].get<std::string>();
      auto unit = u["unit"].get<int64_t>();
      if (!alive.count(owner))
        return say("unit " + std::to_string(unit) + " is assigned to " + owner +
                   ", which is not live");
      if (!holding[owner].count(unit))
        return say("unit " + std::to_string(unit) + " does not run on its owner " +
                   owner + " (as " + id + " sees it)");
      for (auto& [other, units] : holding)
        if (other != owner && units.count(unit))
          return say("unit " + std::to_string(unit) + " is also held by " + other);
    }
  }
  if (leads.empty()) return say("no live node leads");
  return true;
}

std::optional<int64_t> cluster::wait_settled(std::chrono::milliseconds bound,
                                             std::string* why) {
  auto start = clock_type::now();
  while (true) {
    if (settled(why)) return ms_since(start);
    if (clock_type::now() - start > bound) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void cluster::dump_views(const std::string& path) {
  std::ofstream out{path};
  for (auto& id : live()) {
    auto v = get(id, "/cluster");
    out << json{{"node", id}, {"view", v ? *v : json{}}}.dump() << "\n";
  }
}

std::string cluster::log_tails(size_t lines) {
  std::string out;
  for (auto& [id, n] : nodes_)
    out += "--- " + id + " (" + n.log + ")\n" + tail_of(n.log, lines);
  return out;
}

// -- broker ----------------------------------------------------------------------

int64_t restart_broker(int64_t down_ms) {
  // The test run's broker (cmake/WeftBrokerFixture.cmake), unless the
  // environment names another.
  const char* tool = std::getenv("WEFT_TEST_BROKER_TOOL");
  const char* data = std::getenv("WEFT_TEST_BROKER_DATA");
  if (!tool || !*tool) tool = WEFT_BROKER_TOOL;
  if (!data || !*data) data = WEFT_BROKER_DATA;
  auto boot = bootstrap();
  auto port = boot.substr(boot.rfind(':') + 1);
  auto start = clock_type::now();
  auto run = [&](const std::string& verb) {
    // A start waits up to 120 s for the broker (it recovers its logs first).
    std::string cmd = "WEFT_BROKER_START_TIMEOUT=120 " + std::string{tool} + " " + verb +
                      " --port " + port + " --data " + data +
                      " >>/tmp/weft-chaos-broker-" + port + ".log 2>&1";
    return std::system(cmd.c_str());
  };
  // A stop that had to kill the JVM still stopped it: start regardless, and
  // try again if the start fails (the JVM competes with three nodes for two
  // cores).
  (void)run("stop");
  std::this_thread::sleep_for(std::chrono::milliseconds(down_ms));
  for (int attempt = 0; attempt < 3; ++attempt)
    if (run("start") == 0) return ms_since(start);
  return -1;
}

// -- nemesis ---------------------------------------------------------------------

nemesis::nemesis(cluster& c, options o, std::string fault_log,
                 std::function<void(fault&)> note)
  : c_(c), o_(std::move(o)), log_path_(std::move(fault_log)), note_(std::move(note)),
    seed_(o_.seed ? o_.seed
                  : static_cast<uint64_t>(clock_type::now().time_since_epoch().count())),
    rng_(seed_) {}

std::vector<fault> nemesis::run() {
  std::vector<fault> out;
  std::ofstream log{log_path_, std::ios::app};
  auto start = clock_type::now();
  auto pick = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>{lo, hi}(rng_);
  };
  int node_faults = 0, leader_faults = 0, broker_faults = 0;
  std::string last_victim;
  while (ms_since(start) < o_.storm_ms) {
    auto gap = o_.every_ms / 2 + pick(0, o_.every_ms);
    // No fault fits before the storm's end: it ends now, and the checks
    // start at once. (Waiting out the quiet tail made the settle time, which
    // counts from the last fault, up to a whole interval longer: 16 of 20
    // runs at one fault every 10 s reported exactly their tail.)
    const auto wake_ms = ms_since(start) + gap;
    if (wake_ms >= o_.storm_ms) break;
    std::this_thread::sleep_until(start + std::chrono::milliseconds(wake_ms));
    fault f;
    auto k = pick(0, 99);
    bool leader_due = leader_faults * 3 < node_faults + 1; // a third at least
    if (o_.broker_restarts && broker_faults == 0 && k < 8 && ms_since(start) > 10000) {
      f.kind = "broker";
    } else if (leader_due || k < 40) {
      f.kind = "leader-kill";
    } else if (k < 60) {
      f.kind = "kill";
    } else if (k < 75) {
      f.kind = "freeze-long";
    } else if (k < 87) {
      f.kind = "freeze-short";
    } else {
      f.kind = "handoff-kill";
    }
    f.at_ms = ms_since(start);
    inject(f);
    if (f.kind == "broker") ++broker_faults;
    if (f.kind != "broker") ++node_faults;
    if (f.was_leader) ++leader_faults;
    log << json{{"at_ms", f.at_ms},
                {"kind", f.kind},
                {"target", f.target},
                {"was_leader", f.was_leader},
                {"duration_ms", f.duration_ms},
                {"detail", f.detail},
                {"seed", seed_}}
               .dump()
        << std::endl;
    out.push_back(f);
    // Two faults close together now and then.
    if (f.kind != "broker" && pick(0, 99) < 20 && ms_since(start) < o_.storm_ms) {
      std::this_thread::sleep_for(std::chrono::milliseconds(pick(0, 300)));
      fault g;
      g.kind = pick(0, 1) ? "kill" : "freeze-long";
      g.at_ms = ms_since(start);
      inject(g);
      g.detail["close_to"] = f.at_ms;
      ++node_faults;
      if (g.was_leader) ++leader_faults;
      log << json{{"at_ms", g.at_ms},
                  {"kind", g.kind},
                  {"target", g.target},
                  {"was_leader", g.was_leader},
                  {"duration_ms", g.duration_ms},
                  {"detail", g.detail},
                  {"seed", seed_}}
                 .dump()
          << std::endl;
      out.push_back(g);
    }
  }
  // Nothing stays frozen after the storm.
  for (auto& [id, n] : c_.nodes())
    if (n.frozen) c_.thaw(id);
  return out;
}

void nemesis::inject(fault& f) {
  auto pick = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>{lo, hi}(rng_);
  };
  if (f.kind == "broker") {
    if (note_) note_(f);
    f.duration_ms = restart_broker(pick(1000, 3000));
    return;
  }
  auto live = c_.live();
  if (live.empty()) return;
  auto leader = c_.leader();
  // Kills and freezes go to nodes with work when there are some: a node
  // that just restarted and holds nothing yet is a cheap victim.
  std::vector<std::string> ids;
  for (auto& id : live)
    if (auto v = c_.get(id, "/cluster", 1))
      for (auto& m : (*v)["members"])
        if (m["id"] == id && m.contains("holding") && !m["holding"].empty())
          ids.push_back(id);
  if (ids.empty()) ids.assign(live.begin(), live.end());
  std::string target =
      ids[static_cast<size_t>(pick(0, static_cast<int64_t>(ids.size()) - 1))];
  if (f.kind == "leader-kill" && leader) target = *leader;
  if (f.kind == "leader-kill" && !leader) f.kind = "kill";
  if (f.kind == "handoff-kill") {
    // Membership changes right after a fault: kill again while units move.
    std::this_thread::sleep_for(std::chrono::milliseconds(pick(100, 800)));
  }
  f.target = target;
  f.was_leader = leader && *leader == target;
  if (note_) note_(f);
  if (f.kind == "freeze-long" || f.kind == "freeze-short") {
    // cluster.timeout.ms is 1 s in the chaos runs.
    f.duration_ms = f.kind == "freeze-long" ? pick(1500, 4000) : pick(200, 700);
    c_.freeze(target);
    std::this_thread::sleep_for(std::chrono::milliseconds(f.duration_ms));
    c_.thaw(target);
    return;
  }
  c_.restart(target); // kill -9 and start again at once
}

// -- summary -----------------------------------------------------------------------

void summary::row(const std::string& what, const std::string& value) {
  rows_.emplace_back(what, value);
}

void summary::check(const std::string& what, bool ok, const std::string& detail) {
  rows_.emplace_back((ok ? "PASS " : "FAIL ") + what, detail);
  (ok ? passed_ : failed_)++;
}

std::string summary::text() const {
  size_t width = 0;
  for (auto& [w, v] : rows_)
    width = std::max(width, w.size());
  std::ostringstream out;
  for (auto& [w, v] : rows_)
    out << "| " << w << std::string(width - w.size(), ' ') << " | " << v << "\n";
  out << passed_ << " passed, " << failed_ << " failed\n";
  return out.str();
}

std::string fmt_ms(int64_t ms) {
  return std::to_string(ms) + " ms";
}

std::optional<int64_t> check_liveness(cluster& c, summary& sum, const options& o,
                                      const std::string& app,
                                      std::chrono::steady_clock::time_point last_fault,
                                      const std::function<void()>& then) {
  std::string why;
  const auto views = o.log_dir + "/" + app + "-views.jsonl";
  auto settle = c.wait_settled(std::chrono::milliseconds(o.settle_bound_ms), &why);
  auto settled_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - last_fault)
                        .count();
  sum.check("settled after the last fault", settle.has_value(),
            settle ? fmt_ms(settled_ms)
                   : "not within " + fmt_ms(o.settle_bound_ms) + ": " + why +
                         " (views: " + views + ")");
  if (!settle) c.dump_views(views);
  if (then) then();
  int crashed = 0;
  for (auto& [id, n] : c.nodes())
    crashed += !n.running();
  sum.check("no node died on its own", crashed == 0, std::to_string(crashed) + " died");
  if (!settle) return std::nullopt;
  return settled_ms;
}

} // namespace weft::test::chaos
