#include "system.hpp"

#include <algorithm>
#include <fstream>

#include <weft/log.hpp>

#include "customer_check.hpp"
#include "customer_orders.hpp"
#include "fraud.hpp"
#include "inventory.hpp"
#include "notifications.hpp"
#include "order_details.hpp"
#include "orders_service.hpp"
#include "payment_gate.hpp"
#include "rekey.hpp"
#include "shipping.hpp"
#include "validation_gate.hpp"

namespace orders {

std::vector<weft::service_factory> services(const settings& s, bool rewrite_repeats,
                                            std::shared_ptr<outbox> box) {
  auto t = topic_names::with_prefix(s.topic_prefix);
  std::vector<weft::service_factory> out;
  auto add = [&](auto make) {
    out.push_back([make] { return std::unique_ptr<weft::service_base>{make()}; });
  };
  add([t, rewrite_repeats] { return new orders_service(t, rewrite_repeats); });
  add([t] { return new order_details_service(t); });
  add([t] {
    return new rekey_by<order_serde>(
        "orders-by-product", t.orders, inventory_service::repartition_name,
        [](const order& o) { return o.product; },
        [](const order& o) { return o.state != validated && o.state != paid; });
  });
  add([t] { return new inventory_service(t); });
  add([t] {
    return new rekey_by<order_serde>(
        "orders-by-customer", t.orders, fraud_service::repartition_name,
        [](const order& o) { return std::to_string(o.customer_id); },
        [](const order&) { return true; });
  });
  add([t] { return new fraud_service(t); });
  add([] { return new customer_orders_view(); });
  add([t, timeout = s.validation_timeout_ms] { return new validation_gate(t, timeout); });
  add([t] {
    return new rekey_by<payment_serde>(
        "payments-by-order", t.payments, payment_gate::repartition_name,
        [](const payment& p) { return p.order_id; }, [](const payment&) { return true; });
  });
  add([t] { return new payment_gate(t); });
  add([t, delay = s.shipping_delay_ms] { return new shipping_service(t, delay); });
  add([t] { return new notification_join(t); });
  add([t, box] { return new notification_sender(t, box); });
  add([t] { return new customer_check(t); });
  if (!s.skip.empty())
    out.erase(std::remove_if(out.begin(), out.end(),
                             [&](const weft::service_factory& f) {
                               auto name = f()->name();
                               return std::find(s.skip.begin(), s.skip.end(), name) !=
                                      s.skip.end();
                             }),
              out.end());
  return out;
}

const std::vector<service_policy>& bad_record_policies() {
  static const std::vector<service_policy> all = {
      {"orders", "park",
       "an order's commands decide its outcome in order: a command that cannot be "
       "read or applied holds that order's later commands behind it (parked, listed "
       "on the node endpoint's /parked) while every other order goes on, until an "
       "operator retries, skips or drops it"},
      {"order-details", "dead_letter",
       "an unreadable order gets no details check; the validation gate then fails it "
       "by timeout, so the order still settles"},
      {"orders-by-product", "dead_letter",
       "a re-key: nothing to decide without the order"},
      {"inventory", "dead_letter",
       "reservations are per order and idempotent; parking would hold every order of "
       "a product behind one unreadable record (each failing by validation timeout), "
       "so the bad one waits in the DLQ instead"},
      {"orders-by-customer", "dead_letter",
       "a re-key: nothing to decide without the order"},
      {"fraud", "dead_letter",
       "an unreadable order gets no fraud check (timeout, FAILED)"},
      {"customer-orders", "dead_letter",
       "a read view: a record it cannot show is skipped"},
      {"validation-gate", "dead_letter",
       "an unreadable check result or order: the gate's timeout still decides"},
      {"payments-by-order", "dead_letter",
       "an unreadable payment is kept, with the error, to be paid again"},
      {"payment-gate", "dead_letter",
       "the order stays VALIDATED until a readable payment comes"},
      {"shipping", "dead_letter", "a PAID order it cannot read is not shipped, not lost"},
      {"notification-join", "dead_letter", "a notification is not worth an outage"},
      {"notification-sender", "dead_letter", "a notification is not worth an outage"},
      {"customer-check", "dead_letter",
       "its whole job: the customers GlobalKTable has no policy of its own"},
  };
  return all;
}

weft::result<weft::config> with_bad_record_policies(const weft::config& cfg,
                                                    const settings& s) {
  weft::config out = cfg;
  for (auto& p : bad_record_policies()) {
    if (std::find(s.skip.begin(), s.skip.end(), p.service) != s.skip.end()) continue;
    auto key = "service." + p.service + ".bad.record.policy";
    if (out.values().count(key)) continue;
    auto next = out.with(key, p.policy);
    if (!next) return next.error();
    out = std::move(*next);
  }
  return out;
}

void add_services(weft::node& n, const settings& s, std::shared_ptr<outbox> box) {
  if (!box) box = make_outbox(s);
  const bool rewrite = n.cfg().get_string("processing.guarantee") != "exactly_once";
  for (auto& f : services(s, rewrite, box))
    n.add(f);
  // For node::describe(): what the code does not say on its own.
  auto t = topic_names::with_prefix(s.topic_prefix);
  // Commands to the orders service and the notifications on their way to
  // the sender stay inside the system; the rest is its narrative.
  n.mark_intermediate(t.commands);
  n.mark_intermediate(t.notifications);
  n.add_client({"rest-api",
                "REST API (every node)",
                {t.commands, t.payments, t.customers, t.stock},
                {store_names::orders, store_names::stock, store_names::customer_orders}});
}

weft::status create_topics(weft::kafka::admin& admin, const settings& s) {
  auto t = topic_names::with_prefix(s.topic_prefix);
  std::vector<weft::kafka::new_topic> topics;
  for (auto& name : t.all()) {
    weft::kafka::new_topic nt{name, s.partitions, 1, {}};
    // customers is a table: its latest value per key is what matters.
    if (name == t.customers) nt.configs["cleanup.policy"] = "compact";
    topics.push_back(std::move(nt));
  }
  return admin.ensure_topics(topics, 30000);
}

weft::status delete_topics(weft::kafka::admin& admin, const settings& s,
                           const std::string& app_id) {
  auto t = topic_names::with_prefix(s.topic_prefix);
  std::vector<std::string> names = t.all();
  for (auto& f : services(s, true, std::make_shared<outbox>(""))) {
    auto svc = f();
    for (auto& st : svc->stores())
      names.push_back(app_id + "-" + st.name + "-changelog");
    for (auto& o : svc->outputs())
      if (o.kind == weft::output_kind::repartition)
        names.push_back(weft::repartition_topic(app_id, o.name));
  }
  return admin.delete_topics(names, 30000);
}

std::shared_ptr<outbox> make_outbox(const settings& s) {
  return std::make_shared<outbox>(s.outbox);
}

uint64_t sent_notifications(const outbox& box) {
  return box.sent();
}

// -- outbox ---------------------------------------------------------------------

outbox::outbox(std::string path) : path_(std::move(path)) {
  writer_ = std::thread{[this] { run(); }};
}

outbox::~outbox() {
  {
    std::lock_guard<std::mutex> lock{mu_};
    stop_ = true;
  }
  cv_.notify_all();
  writer_.join();
}

void outbox::send(const notification& n) {
  {
    std::lock_guard<std::mutex> lock{mu_};
    queue_.push_back(nlohmann::json(n).dump());
  }
  cv_.notify_one();
}

void outbox::run() {
  std::ofstream file;
  if (!path_.empty()) {
    file.open(path_, std::ios::app);
    if (!file) weft::log::warn("notification outbox: cannot open {}", path_);
  }
  std::unique_lock<std::mutex> lock{mu_};
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty() && stop_) return;
    auto batch = std::move(queue_);
    queue_.clear();
    lock.unlock();
    for (auto& line : batch) {
      if (file) file << line << '\n';
      weft::log::debug("notification sent: {}", line);
    }
    if (file) file.flush();
    sent_ += batch.size();
    lock.lock();
  }
}

} // namespace orders
