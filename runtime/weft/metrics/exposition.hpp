#pragma once
// Prometheus' text exposition format (version 0.0.4), written by hand: what
// every weft node serves on GET /metrics, and what applications add to it
// (node::add_metrics).
//
//   weft::metrics::exposition page;
//   page.family("weft_records_processed_total", metric_type::counter,
//               "Records handled by a task.");
//   page.sample({{"service", "orders"}, {"partition", "3"}}, 1234);
//   std::string text = page.str();
//
// Conventions (https://prometheus.io/docs/practices/naming/): the prefix
// weft_, base units in the name (_seconds, _bytes, _records), counters end in
// _total. A family is written once, its samples right after it (promtool
// refuses a family split in two); label values are escaped here.
//
// histogram: a fixed-bucket latency histogram for hot-ish paths. observe()
// is lock-free (relaxed atomics: a bucket search over a handful of bounds
// and two fetch_adds); write() reads it on a scrape. Counts read during an
// observe() may be one apart between buckets and _count, which Prometheus
// tolerates.
//
// Threads: an exposition is one scrape's page, used by one thread. A
// histogram may be observed from any thread and written from another.

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace weft::metrics {

enum class metric_type { counter, gauge, histogram };

/// Label name and value. Names must match [a-zA-Z_][a-zA-Z0-9_]*.
using label = std::pair<std::string_view, std::string_view>;
using labels = std::initializer_list<label>;

/// A latency histogram in seconds, buckets fixed at construction.
class histogram {
 public:
  /// `upper_bounds` in seconds, rising; +Inf is added.
  explicit histogram(std::vector<double> upper_bounds);
  /// Bounds for latencies from 1 ms to 60 s (1, 2.5, 5, 10, ... ms).
  static std::vector<double> latency_bounds();

  /// Records one observation of `micros` microseconds.
  void observe_us(uint64_t micros);

  const std::vector<double>& bounds() const { return bounds_; }
  /// Observations in bucket i (not cumulative); i == bounds().size() is +Inf.
  uint64_t bucket(size_t i) const { return counts_[i].load(std::memory_order_relaxed); }
  uint64_t count() const;
  double sum_seconds() const {
    return static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1e6;
  }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> bounds_us_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<uint64_t> sum_us_{0};
};

class exposition {
 public:
  /// Starts a family: # HELP and # TYPE lines. Every sample until the next
  /// family() belongs to it. A name already written is a programming error
  /// and is ignored (its samples are dropped) rather than making the page
  /// invalid.
  void family(std::string_view name, metric_type type, std::string_view help);
  /// A sample of the current counter or gauge family.
  void sample(labels ls, double value);
  void sample(const std::vector<std::pair<std::string, std::string>>& ls, double value);
  /// The current family's samples from histogram `h` (_bucket, _sum, _count).
  void sample(labels ls, const histogram& h);

  const std::string& str() const { return out_; }
  /// Content-Type of the page.
  static constexpr const char* content_type = "text/plain; version=0.0.4; charset=utf-8";

 private:
  void write_labels(const label* begin, const label* end,
                    std::string_view extra_name = {}, std::string_view extra_value = {});
  void write_value(double v);
  std::string out_;
  std::string name_;
  bool skipping_ = false;
  std::vector<std::string> written_;
};

/// `s` escaped as a label value (backslash, double quote, newline).
std::string escape_label_value(std::string_view s);

} // namespace weft::metrics
