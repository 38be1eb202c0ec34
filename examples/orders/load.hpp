#pragma once
// A load generator for the order system's REST API, shared by the demo and
// the benchmark: `clients` threads, each placing its share of `orders`
// orders one after another (POST, then long-poll /validated, then pay or
// cancel), so `clients` orders are in flight at any time.
//
// The mix (when `mix` is set) exercises every rule: most orders are valid
// and paid in full; some have quantity 0, an unknown customer, a price that
// trips the fraud limit or a scarce product; some are cancelled after
// validation; some are paid short first and then in full.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace orders {

struct load_options {
  std::string host = "127.0.0.1";
  int port = 7070;
  size_t orders = 3000;
  int clients = 64;
  int customers = 1000; ///< ids 1..customers, seeded by seed_reference_data
  int products = 20;    ///< "product-00".., two of them scarce
  std::string id_prefix = "order-";
  bool mix = true;
};

/// Counters the generator updates while it runs (read them from any thread).
struct load_progress {
  std::atomic<uint64_t> posted{0};
  std::atomic<uint64_t> validated{0};
  std::atomic<uint64_t> failed{0};
  std::atomic<uint64_t> paid{0}; ///< payments accepted (202) for valid orders
  std::atomic<uint64_t> cancelled{0};
  std::atomic<uint64_t> errors{0};
};

struct load_report {
  double seconds = 0;                      ///< first POST to last answer
  std::vector<double> validated_ms;        ///< POST -> past validation, per order
  std::map<std::string, uint64_t> outcome; ///< state seen by /validated
  std::vector<std::string> errors;         ///< first few unexpected answers
  /// The p-th percentile (0..100) of validated_ms; 0 when empty.
  double percentile(double p) const;
};

/// Seeds customers (PUT /v1/customers, levels mixed) and stock (POST
/// /v1/stock) through the REST API. Returns the stock seeded per product.
std::map<std::string, int64_t> seed_reference_data(const load_options& o);

/// Runs the load; blocks until every client is done.
load_report run_load(const load_options& o, load_progress& progress);

} // namespace orders
