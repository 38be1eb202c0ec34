#pragma once
// Notifications, in two services (stream-aside: the side effect lives in a
// consumer of its own, not inside the business flow).
//
// notification_join: when an order becomes PAID (its PAID record in
// `orders`), join it with the payment that paid it (carried by the PAID
// command in `order-commands`, co-partitioned by order id) and the
// customer's email (customers GlobalKTable) into `notifications`. Either
// side may come first; "notifications-store" keeps what arrived until both
// are there, then remembers that it sent.
//
// notification_sender: reads `notifications` and sends each one. Sending is
// the side effect: here, a line appended to an outbox file by a thread of
// its own (blocking I/O stays off CAF's scheduler threads), and a counter.

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include <weft/services/operator_base.hpp>
#include <weft/services/stateless.hpp>
#include <weft/services/store_handle.hpp>

#include "customer_lookup.hpp"
#include "serdes.hpp"

namespace orders {

struct notification_entry {
  std::optional<order> paid_order;
  std::optional<payment> paid_with;
  bool sent = false;
};
void to_json(nlohmann::json& j, const notification_entry& e);
void from_json(const nlohmann::json& j, notification_entry& e);

class notification_join : public weft::operator_base {
 public:
  explicit notification_join(const topic_names& t)
    : operator_base("notification-join"), customers_(t.customers) {
    describe_as(weft::service_pattern::stateful, "join: order, payment, customer");
    treat_nulls_as_bad();
    add_input_ref(t.orders);
    add_input_ref(t.commands);
    // Reads the customers GlobalKTable that order_details_service declares:
    // the node opens one store per declaration, and two declarations of one
    // topic collide on its RocksDB lock (see the runtime note in README).
    add_store({entries_.name(), weft::store_decl::kind::kv});
    out_ = to<str, notification_serde>(t.notifications);
  }

  void on_record(const weft::record_view& r, weft::context& ctx) override {
    const int input = input_index(r, ctx);
    if (input < 0) return;
    if (!r.key) return drop_null_key(r);
    if (!r.value) return drop_null_value(r);
    const auto id = decode_or_throw<str>(r.key, "key");
    std::optional<notification_entry> e;
    if (input == 0) {
      auto o = decode_or_throw<order_serde>(r.value, "value");
      if (o.state == shipped || o.state == cancelled) {
        entries_.remove(ctx, id); // nothing more to send for it
        return;
      }
      if (o.state != paid) return;
      e = entries_.get(ctx, id).value_or(notification_entry{});
      e->paid_order = o;
    } else {
      auto c = decode_or_throw<command_serde>(r.value, "value");
      if (c.type != paid || !c.paid_with) return;
      e = entries_.get(ctx, id).value_or(notification_entry{});
      if (!e->paid_with) e->paid_with = c.paid_with;
    }
    if (!e->sent && e->paid_order && e->paid_with) {
      out_.emit(ctx, id, compose(ctx, *e->paid_order, *e->paid_with));
      e->sent = true;
    }
    entries_.put(ctx, id, *e);
  }

 private:
  notification compose(weft::context& ctx, const order& o, const payment& p) {
    // An unknown or unreadable customer still gets the notification, with
    // no address: the sender's outbox shows it, and the payment stands.
    auto c = read_customer(ctx, customers_, std::to_string(o.customer_id)).found;
    char amount[64];
    std::snprintf(amount, sizeof amount, "%.2f %s", p.amount, p.currency.c_str());
    std::string text = "Dear " + (c ? c->first_name : std::string{"customer"}) +
                       ", we received your payment " + p.id + " of " + amount +
                       " for order " + o.id + " (" + std::to_string(o.quantity) + " x " +
                       o.product + "). It ships soon.";
    return notification{o.id, c ? c->email : std::string{}, std::move(text)};
  }

  std::string customers_;
  weft::kv_handle<str, weft::json_serde<notification_entry>> entries_{
      "notifications-store"};
  weft::output<str, notification_serde> out_;
};

/// Where sent notifications go: an outbox file written by its own thread.
/// Shared by every task of the sender (thread-safe).
class outbox {
 public:
  /// `path` empty: count only.
  explicit outbox(std::string path);
  ~outbox();
  outbox(const outbox&) = delete;
  outbox& operator=(const outbox&) = delete;

  /// Queues a notification for sending; never blocks on I/O.
  void send(const notification& n);
  /// Notifications sent so far.
  uint64_t sent() const { return sent_.load(); }

 private:
  void run();
  std::string path_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  bool stop_ = false;
  std::atomic<uint64_t> sent_{0};
  std::thread writer_;
};

class notification_sender : public weft::stateless<str, notification_serde> {
 public:
  notification_sender(const topic_names& t, std::shared_ptr<outbox> box)
    : stateless("notification-sender", t.notifications), box_(std::move(box)) {
    describe_as(weft::service_pattern::stream_aside, "sends e-mails to an outbox");
  }

  void process(const std::string&, const notification& n, weft::context&) override {
    box_->send(n);
  }

 private:
  std::shared_ptr<outbox> box_;
};

inline void to_json(nlohmann::json& j, const notification_entry& e) {
  j = nlohmann::json{{"sent", e.sent}};
  if (e.paid_order) j["order"] = *e.paid_order;
  if (e.paid_with) j["payment"] = *e.paid_with;
}

inline void from_json(const nlohmann::json& j, notification_entry& e) {
  j.at("sent").get_to(e.sent);
  if (j.contains("order")) e.paid_order = j.at("order").get<order>();
  if (j.contains("payment")) e.paid_with = j.at("payment").get<payment>();
}

} // namespace orders
