#include "settings.hpp"

#include <cstdlib>
#include <sstream>

namespace orders {

using kind = weft::config_key::kind;

weft::app_schema order_system_schema() {
  weft::app_schema app;
  auto& k = app.keys;
  k.push_back({"orders.topic.prefix", kind::string, "",
               "Prefix of every topic of the order system (empty: the contract's "
               "names orders, payments, ...); lets systems share a broker."});
  k.push_back({"orders.partitions", kind::integer, "4",
               "Partitions of the topics the order system creates.", false, 1, 256});
  k.push_back({"validation.timeout.ms", kind::integer, "30000",
               "An order whose three checks are not all in by then FAILs with "
               "\"validation timeout\".",
               false, 1, 86400000});
  k.push_back({"shipping.delay.ms", kind::integer, "1000",
               "How long after PAID an order is SHIPPED.", false, 0, 86400000});
  k.push_back({"http.port", kind::integer, "7070",
               "Port of the REST API (which binds http.host); 0 picks a free one. "
               "weft's own http.port, listed above, is node.http.port here.",
               false, 0, 65535});
  k.push_back({"http.auth.token", kind::string, "",
               "Non-empty: every REST request needs 'Authorization: Bearer <token>' "
               "(401 without it). Prefer WEFT_HTTP_AUTH_TOKEN to the command line."});
  k.push_back({"http.max.body.bytes", kind::integer, "65536",
               "Largest REST request body (413 beyond): every record the API "
               "writes comes from one.",
               false, 1024, 1 << 30});
  k.push_back({"http.request.timeout.ms", kind::integer, "10000",
               "How long a REST client may take to send a whole request once it "
               "started (408 beyond).",
               false, 100, 3600000});
  k.push_back({"notifications.outbox", kind::string, "",
               "File the notification sender appends each sent notification to; "
               "empty: count and log them only."});
  k.push_back({"orders.services.skip", kind::string, "",
               "Comma-separated services not to run on this node (e.g. fraud)."});
  for (auto* key : {"http.port", "http.auth.token", "http.max.body.bytes",
                    "http.max.header.bytes", "http.request.timeout.ms"})
    app.renamed[key] = std::string{"node."} + key;
  return app;
}

settings settings::from(const weft::config& c) {
  settings s;
  s.topic_prefix = c.app_string("orders.topic.prefix");
  s.partitions = static_cast<int>(c.app_int("orders.partitions"));
  s.validation_timeout_ms = c.app_int("validation.timeout.ms");
  s.shipping_delay_ms = c.app_int("shipping.delay.ms");
  s.http_host = c.get_string("http.host"); // weft's: the node endpoint's too
  s.http_port = static_cast<int>(c.app_int("http.port"));
  s.node_http_port = static_cast<int>(c.get_int("http.port")); // node.http.port
  s.rest_limits.bearer_token = c.app_string("http.auth.token");
  s.rest_limits.max_body_bytes = static_cast<size_t>(c.app_int("http.max.body.bytes"));
  s.rest_limits.request_timeout =
      std::chrono::milliseconds(c.app_int("http.request.timeout.ms"));
  s.outbox = c.app_string("notifications.outbox");
  std::stringstream skip{c.app_string("orders.services.skip")};
  for (std::string name; std::getline(skip, name, ',');)
    if (!name.empty()) s.skip.push_back(name);
  return s;
}

} // namespace orders
