#include "pull_subscription.hpp"

#include <weft/kafka/consumer.hpp>
#include <weft/log.hpp>

#include "record_codec.hpp"
#include "subscription_source.hpp"

namespace sidecar {

pull_subscription::pull_subscription(subscription_spec s, topic_spec t,
                                     const weft::config& cfg, std::string static_member_id)
  : spec_(std::move(s)), topic_(std::move(t)),
    consumer_props_(cfg.kafka_properties(weft::client_kind::consumer)),
    application_id_(cfg.get_string("application.id")),
    member_(std::move(static_member_id)) {}

pull_subscription::~pull_subscription() {
  close();
}

weft::status pull_subscription::open() {
  std::lock_guard<std::mutex> lock{mu_};
  if (source_)
    return weft::make_error(weft::errc::invalid_argument,
                            "subscription " + spec_.name +
                                " has an open event stream on this node; close it first");
  auto src = subscription_source::create(spec_, consumer_props_, application_id_, member_);
  if (!src) return src.error();
  source_ = std::move(*src);
  delivered_upto_.clear();
  weft::log::info("subscription {}: event stream opened (group {})", spec_.name,
                  source_->group());
  return {};
}

weft::result<std::vector<nlohmann::json>> pull_subscription::next(size_t max) {
  std::lock_guard<std::mutex> lock{mu_};
  if (!source_) return weft::make_error(weft::errc::not_found, "no open stream");
  weft::kafka::message_batch batch;
  source_->poll(batch, max, 100);
  std::vector<nlohmann::json> out;
  for (size_t i = 0; i < batch.size(); ++i) {
    auto v = batch.view(i);
    auto j = record_to_api(v, topic_);
    if (!j) {
      j = nlohmann::json{{"topic", std::string{v.topic}},
                         {"partition", v.partition.value()},
                         {"offset", v.offset.value()},
                         {"error", j.error().message()}};
    }
    (*j)["subscription"] = spec_.name;
    delivered_upto_[v.partition.value()] = v.offset.value();
    out.push_back(std::move(*j));
  }
  delivered_ += out.size();
  return out;
}

weft::status pull_subscription::commit(const nlohmann::json& offsets) {
  std::lock_guard<std::mutex> lock{mu_};
  if (!source_)
    return weft::make_error(weft::errc::not_found,
                            "subscription " + spec_.name +
                                " has no open event stream on this node: open "
                                "GET /v1/subscriptions/" + spec_.name +
                                "/events; records not committed come again there");
  auto bad = [](const std::string& field, const std::string& why) {
    return weft::make_error(weft::errc::invalid_argument, field + ": " + why);
  };
  if (!offsets.is_array() || offsets.empty())
    return bad("offsets", "must be a non-empty array of {\"partition\", \"offset\"}");
  std::vector<std::pair<int32_t, int64_t>> marks;
  for (size_t i = 0; i < offsets.size(); ++i) {
    const auto& o = offsets[i];
    const std::string f = "offsets[" + std::to_string(i) + "]";
    if (!o.is_object()) return bad(f, "must be an object {\"partition\", \"offset\"}");
    auto p = o.find("partition");
    if (p == o.end() || !p->is_number_integer())
      return bad(f + ".partition", "must be an integer");
    auto off = o.find("offset");
    if (off == o.end() || !off->is_number_integer())
      return bad(f + ".offset", "must be an integer");
    const auto part = p->get<int64_t>();
    const auto at = off->get<int64_t>();
    auto d = delivered_upto_.find(static_cast<int32_t>(part));
    if (part < 0 || part > INT32_MAX || d == delivered_upto_.end())
      return bad(f + ".partition", "no record of partition " + std::to_string(part) +
                                       " was delivered on this stream");
    if (at < 0 || at > d->second)
      return bad(f + ".offset", std::to_string(at) +
                                    " was not delivered on this stream (last delivered: " +
                                    std::to_string(d->second) + ")");
    marks.emplace_back(static_cast<int32_t>(part), at);
  }
  for (auto& [p, o] : marks)
    source_->mark(p, o);
  return source_->commit_sync(10000);
}

void pull_subscription::close() {
  std::unique_ptr<subscription_source> src;
  {
    std::lock_guard<std::mutex> lock{mu_};
    src = std::move(source_);
  }
  if (src) weft::log::info("subscription {}: event stream closed", spec_.name);
  // Destroyed outside the lock: it commits (bounded) and leaves the group.
}

uint64_t pull_subscription::delivered() const {
  std::lock_guard<std::mutex> lock{mu_};
  return delivered_;
}

} // namespace sidecar
