#pragma once
// The order system as a whole: which services run on a node, which topics
// they need, and the names of the stores the REST API reads.
//
// Every service is keyed so that any number of nodes can share the work
// (each task owns a partition's state; nothing is shared in-process except
// the notification outbox and the REST API's reads through the node), so the
// same add_services() serves one process or every node of a cluster
// (cluster.enabled=true: the nodes split the tasks; give each node its own
// notifications.outbox file).

#include <memory>
#include <string>
#include <vector>

#include <weft/kafka/admin.hpp>
#include <weft/node.hpp>

#include "model.hpp"
#include "settings.hpp"

namespace orders {

class outbox;

/// Store names the REST API queries (node::get).
struct store_names {
  static constexpr const char* orders = "orders-store";
  static constexpr const char* stock = "inventory-store";
  static constexpr const char* customer_orders = "customer-orders-store";
};

/// The bad-record policy a service of the order system runs with, and why
/// (README, "The order system": bad input).
struct service_policy {
  std::string service;
  std::string policy; ///< a bad.record.policy value
  std::string why;
};

/// One entry per service (services() below). No policy stops the order
/// system on one malformed record, and the record stays, with the error, for
/// someone to fix and replay: the orders service parks the order (its
/// commands must apply in order), every other service dead-letters.
const std::vector<service_policy>& bad_record_policies();

/// `cfg` with service.<name>.bad.record.policy set to the order system's
/// choice for every service the node runs (those s.skip does not name) whose
/// policy the configuration does not set itself (a user's
/// --service.<name>.bad.record.policy wins; the node-wide bad.record.policy
/// does not).
weft::result<weft::config> with_bad_record_policies(const weft::config& cfg,
                                                    const settings& s);

/// The services of the order system, as factories for a node.
std::vector<weft::service_factory> services(const settings& s, bool rewrite_repeats,
                                            std::shared_ptr<outbox> box);

/// Adds every service to `n`. `box` receives sent notifications; null makes
/// one from s.outbox. Under at_least_once the orders service rewrites
/// repeated states (see orders_service.hpp).
/// Also tells the node what describe() cannot see in the services: the
/// intermediate topics and the REST API as a client.
void add_services(weft::node& n, const settings& s, std::shared_ptr<outbox> box = {});

/// Creates the system's topics (s.partitions each; customers compacted).
weft::status create_topics(weft::kafka::admin& admin, const settings& s);

/// Deletes the system's topics and the internal topics (changelogs,
/// repartitions) of application `app_id`: a clean slate for the demo.
weft::status delete_topics(weft::kafka::admin& admin, const settings& s,
                           const std::string& app_id);

/// The outbox of a node's notification sender, for counting what was sent.
std::shared_ptr<outbox> make_outbox(const settings& s);
uint64_t sent_notifications(const outbox& box);

} // namespace orders
