#include "load.hpp"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace orders {

using json = nlohmann::json;
using namespace std::chrono;

namespace {

const char* level_of(int customer) {
  switch (customer % 10) {
  case 0:
    return "platinum";
  case 1:
  case 2:
    return "gold";
  case 3:
  case 4:
  case 5:
    return "silver";
  default:
    return "bronze";
  }
}

std::string product_name(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "product-%02d", i);
  return buf;
}

/// A cheap deterministic hash, so a run's mix is reproducible.
uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

/// Sends a request, up to 3 times more if the connection failed before an
/// answer:
/// every write of the load is idempotent (the same order body again is a
/// 200, a repeated payment id is ignored, a cancel of a cancelled order 200).
template <class Fn>
httplib::Result retry(Fn fn) {
  auto r = fn();
  for (int attempt = 1; !r && attempt < 4; ++attempt) {
    std::this_thread::sleep_for(milliseconds(50 * attempt));
    r = fn();
  }
  return r;
}

} // namespace

double load_report::percentile(double p) const {
  if (validated_ms.empty()) return 0;
  auto v = validated_ms;
  std::sort(v.begin(), v.end());
  auto i = static_cast<size_t>(std::ceil(p / 100.0 * v.size()));
  return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
}

std::map<std::string, int64_t> seed_reference_data(const load_options& o) {
  httplib::Client http{o.host, o.port};
  http.set_read_timeout(30, 0);
  http.set_tcp_nodelay(true);
  for (int c = 1; c <= o.customers; ++c) {
    json body{{"id", c},
              {"firstName", "Customer"},
              {"lastName", std::to_string(c)},
              {"email", "customer" + std::to_string(c) + "@example.com"},
              {"address", std::to_string(c) + " Main Street"},
              {"level", level_of(c)}};
    auto r = http.Put(("/v1/customers/" + std::to_string(c)).c_str(), body.dump(),
                      "application/json");
    if (!r || r->status != 202)
      throw std::runtime_error("seeding customer " + std::to_string(c) + " failed: " +
                               (r ? r->body : httplib::to_string(r.error())));
  }
  std::map<std::string, int64_t> stock;
  for (int p = 0; p < o.products; ++p) {
    // Two scarce products, so some orders fail for want of stock.
    int64_t units = p < 2 ? 40 : 100000;
    json body{{"product", product_name(p)}, {"delta", units}};
    auto r = http.Post("/v1/stock", body.dump(), "application/json");
    if (!r || r->status != 202)
      throw std::runtime_error("seeding stock failed: " +
                               (r ? r->body : httplib::to_string(r.error())));
    stock[product_name(p)] = units;
  }
  return stock;
}

load_report run_load(const load_options& o, load_progress& progress) {
  load_report report;
  std::mutex mu;
  const auto start = steady_clock::now();
  auto client = [&](int index) {
    httplib::Client http{o.host, o.port};
    http.set_read_timeout(120, 0);
    http.set_keep_alive(true);
    // Headers and body go out in two writes: without TCP_NODELAY, Nagle
    // and delayed ACKs add about 40 ms to each request.
    http.set_tcp_nodelay(true);
    std::vector<double> latencies;
    std::map<std::string, uint64_t> outcome;
    auto error = [&](const std::string& what) {
      ++progress.errors;
      std::lock_guard<std::mutex> lock{mu};
      if (report.errors.size() < 10) report.errors.push_back(what);
    };
    for (size_t k = static_cast<size_t>(index); k < o.orders;
         k += static_cast<size_t>(o.clients)) {
      const uint64_t h = mix64(k + 1);
      const std::string id = o.id_prefix + std::to_string(k);
      int64_t customer = 1 + static_cast<int64_t>(h % static_cast<uint64_t>(o.customers));
      int64_t quantity = 1 + static_cast<int64_t>((h >> 8) % 3);
      double price = 5 + static_cast<double>((h >> 16) % 9000) / 100.0;
      int product =
          2 + static_cast<int>((h >> 32) % static_cast<uint64_t>(o.products - 2));
      if (o.mix) {
        if (k % 89 == 5) quantity = 0;
        if (k % 97 == 11) customer = 999999;
        if (k % 151 == 17) price = 2600; // over bronze and silver limits
        if (k % 23 == 3) product = static_cast<int>(k % 2); // scarce
      }
      json body{{"id", id},
                {"customerId", customer},
                {"product", product_name(product)},
                {"quantity", quantity},
                {"price", price},
                {"currency", "EUR"}};
      const auto t0 = steady_clock::now();
      auto r =
          retry([&] { return http.Post("/v1/orders", body.dump(), "application/json"); });
      if (!r || (r->status != 201 && r->status != 200)) {
        error("POST " + id + ": " +
              (r ? std::to_string(r->status) + " " + r->body
                 : httplib::to_string(r.error())));
        continue;
      }
      ++progress.posted;
      auto v = retry([&] {
        return http.Get(("/v1/orders/" + id + "/validated?timeout=60000").c_str());
      });
      if (!v || v->status != 200) {
        error("GET validated " + id + ": " +
              (v ? std::to_string(v->status) + " " + v->body
                 : httplib::to_string(v.error())));
        continue;
      }
      latencies.push_back(duration<double, std::milli>(steady_clock::now() - t0).count());
      auto state = json::parse(v->body).value("state", "");
      ++outcome[state];
      if (state != "VALIDATED") {
        ++progress.failed;
        continue;
      }
      ++progress.validated;
      if (o.mix && k % 41 == 7) {
        auto c =
            http.Post(("/v1/orders/" + id + "/cancel").c_str(), "", "application/json");
        if (!c || c->status != 200)
          error("cancel " + id + ": " +
                (c ? std::to_string(c->status) + " " + c->body
                   : httplib::to_string(c.error())));
        else
          ++progress.cancelled;
        continue;
      }
      const double total = static_cast<double>(quantity) * price;
      auto pay = [&](const std::string& pid, double amount) {
        json p{{"id", pid}, {"orderId", id}, {"currency", "EUR"}, {"amount", amount}};
        auto pr = retry(
            [&] { return http.Post("/v1/payments", p.dump(), "application/json"); });
        if (!pr || pr->status != 202) {
          error("payment " + pid + ": " +
                (pr ? std::to_string(pr->status) + " " + pr->body
                    : httplib::to_string(pr.error())));
          return false;
        }
        return true;
      };
      if (o.mix && k % 37 == 19) pay("short-" + id, total / 2); // reported, order waits
      if (pay("pay-" + id, total)) ++progress.paid;
    }
    std::lock_guard<std::mutex> lock{mu};
    report.validated_ms.insert(report.validated_ms.end(), latencies.begin(),
                               latencies.end());
    for (auto& [s, n] : outcome)
      report.outcome[s] += n;
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < o.clients; ++i)
    threads.emplace_back(client, i);
  for (auto& t : threads)
    t.join();
  report.seconds = duration<double>(steady_clock::now() - start).count();
  return report;
}

} // namespace orders
