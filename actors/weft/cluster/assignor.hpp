#pragma once
// The cluster assignor: places work units (a service's partitions, numbered
// 0..n-1 the same way on every node) on the live nodes. The leader calls
// assign() whenever membership or standby lags change and publishes the result
// with a new generation; every node then runs its actives, keeps its standbys
// (and warm-ups) up to date from the changelogs, and hands units off as told.
//
// The rules follow Kafka Streams' HighAvailabilityTaskAssignor (KIP-441):
// - sticky: a unit stays on its previous active while that node lives;
// - failover is immediate: a unit whose active died goes at once to a node
//   holding a standby of it (the least-lagging one), else to the least loaded;
// - balance without downtime: stateful actives end up within 1 of each other
//   per node, then stateless ones even out the totals (as Kafka Streams
//   balances stateful tasks first), so that restores, standbys and a dead
//   node's stateful work spread evenly; but a stateful unit moves only to a
//   node whose standby of it is caught up.
//   Otherwise the unit stays where it is and the target gets a warm-up copy; a
//   later assign(), once that copy's lag is reported caught up, moves it. Until
//   then actives may be unbalanced on purpose. Stateless units move at once;
// - standbys: each stateful unit gets min(num_standbys, members - 1) standbys
//   on distinct nodes other than its active (a warm-up comes on top). They
//   stay where they were while valid (and the node holds no more than its fair
//   share); a node that just handed a unit off is a preferred standby of it;
//   the rest go to the nodes with the fewest standbys;
// - handoffs: previous[u] names the node that ran u before when u moved
//   between two live nodes; it is "" for a new unit and after a failover.
//
// assign() is a pure function of its input: the same input (whatever the order
// of members) gives the same assignment, so any node computes what the leader
// would. Thread-safe: it shares nothing.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "weft/status.hpp"

namespace weft::cluster {

/// Where every unit runs. Units are numbered 0..n-1 (the same numbering on
/// every node); every per-unit vector has n entries.
struct assignment {
  int64_t generation = 0;
  std::string leader;               ///< node id of the leader that published it
  std::vector<std::string> members; ///< sorted node ids this assignment is for
  /// Per member: the incarnation (process start or rejoin) the leader saw.
  /// A node acts only on an assignment that names its current incarnation:
  /// one published before it (re)started may predate a fence against it.
  std::vector<int64_t> incarnations;
  std::vector<std::string> active; ///< per unit: owning node id ("" = none)
  /// Per unit, sorted: nodes keeping a standby copy (never the active's node).
  /// Includes the warm-up node, if any.
  std::vector<std::vector<std::string>> standbys;
  /// Per unit: the node catching up to take the unit over ("" = none).
  std::vector<std::string> warmup;
  /// Per unit: the previous active if the unit changed hands between two live
  /// nodes (a handoff: it should flush and release the unit); "" otherwise,
  /// also after a failover from a dead node.
  std::vector<std::string> previous;

  /// The incarnation this assignment names for `node`; -1 if not a member.
  int64_t incarnation_of(const std::string& node) const;

  /// Compares everything but generation and leader.
  bool operator==(const assignment& other) const;
  bool operator!=(const assignment& other) const { return !(*this == other); }
};

/// What assign() decides from.
struct assignor_input {
  std::vector<std::string> members; ///< live node ids (any order, a set; "" is ignored)
  /// Their incarnations (absent: 0).
  std::map<std::string, int64_t> incarnations;
  std::vector<bool> stateful; ///< per unit: has state (only those get standbys/warm-ups)
  /// The last published assignment, or null. Ignored when its unit count
  /// differs from stateful.size(). Not owned; read only during assign().
  const assignment* previous = nullptr;
  int num_standbys = 1; ///< num.standby.replicas
  /// How far behind each node's standby copy of a unit is, in records, keyed by
  /// (unit, node). Absent means unknown, which counts as not caught up. A
  /// reported lag is taken as proof that the node holds a copy.
  std::map<std::pair<size_t, std::string>, int64_t> standby_lag;
  int64_t acceptable_lag = 10000; ///< a copy at most this far behind is caught up
};

/// Places every unit of `in` (see the rules above). Leaves generation and
/// leader at 0 and "" for the caller to set.
assignment assign(const assignor_input& in);

/// The assignment as a JSON object with the fields of `assignment`.
std::string to_json(const assignment& a);

/// Parses what to_json() wrote. Fails with errc::invalid_argument naming the
/// problem (not JSON, a missing or mistyped field, per-unit arrays of
/// different lengths).
result<assignment> assignment_from_json(std::string_view text);

/// Per node: how many actives and standbys (warm-ups included) it holds. Every
/// member appears, with {0, 0} if it holds nothing. For logs and tests.
std::map<std::string, std::pair<int, int>> load(const assignment& a);

} // namespace weft::cluster
