#include "weft/kafka/mock_cluster.hpp"

#include <librdkafka/rdkafka_mock.h>

#include "weft/kafka/error.hpp"

namespace weft::kafka {

result<std::unique_ptr<mock_cluster>> mock_cluster::create(int brokers) {
  char err[512];
  auto* conf = rd_kafka_conf_new();
  // The mock needs a handle to live in; it never produces anything.
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  std::unique_ptr<mock_cluster> m{new mock_cluster};
  m->rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!m->rk_) {
    rd_kafka_conf_destroy(conf);
    return make_error(errc::internal, std::string{"mock cluster handle: "} + err);
  }
  m->mc_ = rd_kafka_mock_cluster_new(m->rk_, brokers);
  if (!m->mc_) return make_error(errc::internal, "cannot start the mock cluster");
  return m;
}

mock_cluster::~mock_cluster() {
  if (mc_) rd_kafka_mock_cluster_destroy(mc_);
  if (rk_) rd_kafka_destroy(rk_);
}

std::string mock_cluster::bootstrap_servers() const {
  return rd_kafka_mock_cluster_bootstraps(mc_);
}

status mock_cluster::create_topic(const std::string& name, int partitions,
                                  int replication_factor) {
  return from_rd(
      rd_kafka_mock_topic_create(mc_, name.c_str(), partitions, replication_factor),
      "mock create topic '" + name + "'");
}

status mock_cluster::broker_down(int32_t id) {
  return from_rd(rd_kafka_mock_broker_set_down(mc_, id), "mock broker down");
}

status mock_cluster::broker_up(int32_t id) {
  return from_rd(rd_kafka_mock_broker_set_up(mc_, id), "mock broker up");
}

status mock_cluster::broker_rtt(int32_t id, int rtt_ms) {
  return from_rd(rd_kafka_mock_broker_set_rtt(mc_, id, rtt_ms), "mock broker rtt");
}

void mock_cluster::push_request_errors(int16_t api_key,
                                       const std::vector<rd_kafka_resp_err_t>& errs) {
  rd_kafka_mock_push_request_errors_array(mc_, api_key, errs.size(), errs.data());
}

} // namespace weft::kafka
