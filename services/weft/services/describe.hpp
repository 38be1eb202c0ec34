#pragma once
// The picture of an application, drawn from its declarations alone (no
// broker): every service with its pattern, every topic — the facts the
// application shares apart from its intermediate topics and weft's internal
// ones (repartition, changelog, dead-letter) — every store, the clients
// outside the services (a REST API), and the edges between them.
//
//   auto d = weft::describe_topology(factories, cfg, extras);
//   std::cout << weft::render(d, weft::describe_format::dot);
//
// node::describe() and `--describe=text|dot|mermaid|json` on any weft
// program call this; the node's HTTP endpoint serves it at GET /topology
// (JSON, or ?format=dot|mermaid|text), for tools and the map page.
//
// Output is deterministic: services in the order they were added, topics and
// stores by kind then name, so the picture only changes when the code does
// (the README's SVG is checked against it).

#include <optional>
#include <string>
#include <vector>

#include "weft/config.hpp"
#include "weft/services/service.hpp"

namespace weft {

/// What a topic is to the application.
enum class topic_kind {
  fact,         ///< a topic of the shared narrative (the default for user topics)
  intermediate, ///< a user topic the application keeps between its own services
  repartition,  ///< <application.id>-<name>-repartition, made by weft
  changelog,    ///< <application.id>-<store>-changelog, made by weft
  dead_letter,  ///< where a service's bad records go (bad.record.policy=dead_letter;
                ///< park: a record too large to hold behind its key)
};
const char* to_string(topic_kind k);

/// A client of the application beside its services (e.g. a REST API): the
/// topics it writes and the stores it queries, so the picture shows where
/// records enter and where state is read.
struct client_decl {
  std::string name;
  std::string kind; ///< e.g. "REST API"
  std::vector<std::string> writes;
  std::vector<std::string> queries;
};

/// What the declarations do not say: the user topics that are intermediate,
/// and the clients.
struct describe_extras {
  std::vector<std::string> intermediate_topics;
  std::vector<client_decl> clients;
};

struct topology_description {
  struct service {
    std::string name;
    service_pattern pattern = service_pattern::stateless;
    std::string detail;
    std::vector<std::string> inputs;        ///< stream inputs (topics)
    std::vector<std::string> tables;        ///< co-partitioned table topics (KTable)
    std::vector<std::string> global_tables; ///< GlobalKTable topics
    std::vector<std::string> outputs;
    /// Its stores (tables', timers' and, under park, the parked store
    /// included).
    std::vector<std::string> stores;
    std::string dead_letter_topic; ///< empty unless bad.record.policy=dead_letter or park
    std::string bad_record_policy;
  };
  struct topic {
    std::string name;
    topic_kind kind = topic_kind::fact;
    bool internal = false; ///< a changelog of weft's own store, left out of pictures
  };
  struct store {
    std::string name;
    std::string type; ///< kv, window, session, global
    std::string service;
    std::string changelog; ///< empty for a global table (its topic is the source)
    bool internal = false; ///< weft's own (stream time), left out of pictures
    std::string topic;     ///< global: the topic it replicates
  };
  std::string application;
  std::vector<service> services;
  std::vector<topic> topics;
  std::vector<store> stores;
  std::vector<client_decl> clients;

  const topic* find_topic(const std::string& name) const;
};

/// Builds the description. Instantiates one service of each factory (their
/// constructors declare the inputs, outputs and stores). `cfg` gives
/// application.id (a placeholder when unset) and the bad-record policies.
result<topology_description>
describe_topology(const std::vector<service_factory>& factories, const config& cfg,
                  const describe_extras& extras = {});

enum class describe_format { text, dot, mermaid, json };
/// "text", "dot", "mermaid", "json" (errc::invalid_argument otherwise).
result<describe_format> parse_describe_format(std::string_view s);

/// The description as text (Kafka Streams' describe(), grouped by service),
/// Graphviz dot, Mermaid flowchart or JSON.
std::string render(const topology_description& d, describe_format f);

/// The dead-letter topic of `service` under `cfg` (empty when its
/// bad.record.policy is neither dead_letter nor park).
std::string dead_letter_topic_of(const config& cfg, const std::string& application,
                                 const std::string& service);

} // namespace weft
