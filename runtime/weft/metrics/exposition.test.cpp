#include "weft/metrics/exposition.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "weft/http/request_metrics.hpp"
#include "weft/http/server.hpp"

using weft::metrics::exposition;
using weft::metrics::histogram;
using weft::metrics::metric_type;

namespace {

/// Runs `promtool check metrics` on `page`; returns its exit code and output
/// (-1: promtool is not installed).
std::pair<int, std::string> promtool_check(const std::string& page) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) return {-1, ""};
  char path[] = "/tmp/weft-metrics-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, page.data(), page.size()) == static_cast<ssize_t>(page.size()));
  ::close(fd);
  std::string cmd = std::string{"promtool check metrics < "} + path + " 2>&1";
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p);
  char buf[512];
  while (auto n = std::fread(buf, 1, sizeof buf, p))
    out.append(buf, n);
  int rc = ::pclose(p);
  ::unlink(path);
  return {WEXITSTATUS(rc), out};
}

} // namespace

TEST_CASE("a metrics page has HELP and TYPE before its samples, values and labels "
          "escaped") {
  exposition page;
  page.family("weft_records_processed_total", metric_type::counter, "Records handled.");
  page.sample({{"service", "orders"}, {"partition", "0"}}, 12);
  page.sample({{"service", "a \"quoted\"\\name\nline"}, {"partition", "1"}}, 0.5);
  page.family("weft_generation", metric_type::gauge, "The generation.");
  page.sample({}, -1);
  const auto& s = page.str();
  CHECK(s == "# HELP weft_records_processed_total Records handled.\n"
             "# TYPE weft_records_processed_total counter\n"
             "weft_records_processed_total{service=\"orders\",partition=\"0\"} 12\n"
             "weft_records_processed_total{service=\"a \\\"quoted\\\"\\\\name\\nline\","
             "partition=\"1\"} 0.5\n"
             "# HELP weft_generation The generation.\n"
             "# TYPE weft_generation gauge\n"
             "weft_generation -1\n");
}

TEST_CASE("a family written twice keeps the page valid: the second one's samples are "
          "dropped") {
  exposition page;
  page.family("weft_x_total", metric_type::counter, "x");
  page.sample({}, 1);
  page.family("weft_x_total", metric_type::counter, "x");
  page.sample({}, 2);
  CHECK(page.str().find("weft_x_total 2") == std::string::npos);
  CHECK(page.str().find("weft_x_total 1") != std::string::npos);
}

TEST_CASE("a histogram counts each observation in its bucket and writes cumulative "
          "buckets, sum and count") {
  histogram h{{0.001, 0.01, 0.1}};
  h.observe_us(500);     // <= 1 ms
  h.observe_us(1000);    // <= 1 ms (bounds are inclusive)
  h.observe_us(5000);    // <= 10 ms
  h.observe_us(2000000); // +Inf
  CHECK(h.bucket(0) == 2);
  CHECK(h.bucket(1) == 1);
  CHECK(h.bucket(2) == 0);
  CHECK(h.bucket(3) == 1);
  CHECK(h.count() == 4);
  CHECK(h.sum_seconds() == Approx(2.0065));
  exposition page;
  page.family("weft_epoch_commit_duration_seconds", metric_type::histogram, "Latency.");
  page.sample({{"node", "n1"}}, h);
  const auto& s = page.str();
  CHECK(
      s.find("weft_epoch_commit_duration_seconds_bucket{node=\"n1\",le=\"0.001\"} 2\n") !=
      std::string::npos);
  CHECK(
      s.find("weft_epoch_commit_duration_seconds_bucket{node=\"n1\",le=\"0.01\"} 3\n") !=
      std::string::npos);
  CHECK(s.find("weft_epoch_commit_duration_seconds_bucket{node=\"n1\",le=\"0.1\"} 3\n") !=
        std::string::npos);
  CHECK(
      s.find("weft_epoch_commit_duration_seconds_bucket{node=\"n1\",le=\"+Inf\"} 4\n") !=
      std::string::npos);
  CHECK(s.find("weft_epoch_commit_duration_seconds_sum{node=\"n1\"} 2.0065\n") !=
        std::string::npos);
  CHECK(s.find("weft_epoch_commit_duration_seconds_count{node=\"n1\"} 4\n") !=
        std::string::npos);
}

TEST_CASE("a histogram observed from several threads loses no observation") {
  histogram h{histogram::latency_bounds()};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 100000; ++i)
        h.observe_us(static_cast<uint64_t>((i * 37 + t) % 70000000));
    });
  for (auto& t : threads)
    t.join();
  CHECK(h.count() == 400000);
}

TEST_CASE("an HTTP API's request metrics count per route and status and pass promtool") {
  weft::http::request_metrics m{"api"};
  auto orders = m.route("POST", "/v1/orders");
  auto order = m.route("GET", "/v1/orders/{id}");
  for (int i = 0; i < 3; ++i)
    m.done(orders, m.start(), 201);
  m.done(orders, m.start(), 400);
  m.done(order, m.start(), 404);
  weft::http::refusals refused;
  refused.body_too_large = 2;
  exposition page;
  m.write(page, &refused);
  const auto& s = page.str();
  CHECK(s.find("weft_http_requests_total{server=\"api\",route=\"/v1/orders\",method="
               "\"POST\",code=\"201\"} 3\n") != std::string::npos);
  CHECK(s.find("weft_http_requests_total{server=\"api\",route=\"/v1/orders\",method="
               "\"POST\",code=\"400\"} 1\n") != std::string::npos);
  CHECK(s.find("code=\"404\"} 1\n") != std::string::npos);
  CHECK(s.find("weft_http_request_duration_seconds_count{server=\"api\",route=\"/v1/"
               "orders\",method=\"POST\"} 4\n") != std::string::npos);
  CHECK(s.find("weft_http_refused_total{server=\"api\",reason=\"body_too_large\"} 2\n") !=
        std::string::npos);
  auto [rc, out] = promtool_check(s);
  if (rc == -1) {
    WARN("promtool is not installed (Debian package prometheus; tools/setup.sh "
         "installs it): the page's syntax was not checked by it");
    return;
  }
  INFO(out);
  CHECK(rc == 0);
}

TEST_CASE("promtool flags a page that breaks the conventions (the check can fail)") {
  exposition page;
  page.family("weft_records_processed", metric_type::counter, "no _total suffix");
  page.sample({}, 1);
  auto [rc, out] = promtool_check(page.str());
  if (rc == -1) return;
  INFO(out);
  CHECK(out.find("_total") != std::string::npos);
}
