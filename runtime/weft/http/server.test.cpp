// weft::http::server against real sockets on 127.0.0.1: every limit refuses
// with its status and a reason, and the server keeps serving afterwards.

#include "weft/http/server.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using weft::http::limits;
using weft::http::server;

namespace {

/// A server on a free port with GET /hello and POST /echo, stopped with the
/// fixture.
struct running {
  std::unique_ptr<server> srv;
  std::thread thread;
  int port = 0;

  explicit running(limits l) : srv(std::make_unique<server>(std::move(l))) {
    srv->Get("/hello", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("hi", "text/plain");
    });
    srv->Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.body, "text/plain");
    });
    port = srv->bind_to_any_port("127.0.0.1");
    REQUIRE(port > 0);
    thread = std::thread{[this] { srv->listen_after_bind(); }};
  }
  ~running() {
    srv->stop();
    thread.join();
  }
  httplib::Client client(std::chrono::seconds read = 10s) const {
    httplib::Client c{"127.0.0.1", port};
    c.set_connection_timeout(2);
    c.set_read_timeout(read.count());
    return c;
  }
};

/// A raw TCP connection, for what an HTTP client library would not send.
struct raw_connection {
  int fd = -1;
  explicit raw_connection(int port) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~raw_connection() {
    if (fd >= 0) ::close(fd);
  }
  bool send_all(const std::string& s) {
    size_t done = 0;
    while (done < s.size()) {
      auto n = ::send(fd, s.data() + done, s.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }
  /// What the server sent until it closed or `limit` passed.
  std::string receive(std::chrono::milliseconds limit) {
    std::string out;
    auto until = std::chrono::steady_clock::now() + limit;
    char buf[4096];
    while (std::chrono::steady_clock::now() < until) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
};

limits small() {
  limits l;
  l.max_header_bytes = 4096;
  l.max_body_bytes = 1000;
  l.request_timeout = 500ms;
  l.idle_timeout = 5s;
  l.threads = 2;
  l.max_waiting_connections = 4;
  return l;
}

} // namespace

TEST_CASE("an http server answers within its limits like any httplib server") {
  running r{small()};
  auto c = r.client();
  for (int i = 0; i < 20; ++i) { // one keep-alive connection
    auto res = c.Get("/hello");
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->body == "hi");
  }
  auto echo = c.Post("/echo", std::string(1000, 'x'), "text/plain");
  REQUIRE(echo);
  CHECK(echo->status == 200);
  CHECK(echo->body.size() == 1000);
  auto missing = c.Get("/nope");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  CHECK_THAT(missing->body, Catch::Contains("\"error\""));
}

TEST_CASE(
    "an http server refuses a body over max_body_bytes with 413 and keeps serving") {
  running r{small()};
  auto c = r.client();
  auto res = c.Post("/echo", std::string(1001, 'x'), "text/plain");
  REQUIRE(res);
  CHECK(res->status == 413);
  CHECK_THAT(res->body, Catch::Contains("request body larger than 1000 bytes"));
  // A declared length is refused before the body is read.
  raw_connection raw{r.port};
  REQUIRE(raw.send_all(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n"));
  CHECK_THAT(raw.receive(2s), Catch::StartsWith("HTTP/1.1 413"));
  CHECK(r.srv->refused().body_too_large == 2);
  auto after = r.client().Get("/hello");
  REQUIRE(after);
  CHECK(after->status == 200);
}

TEST_CASE("an http server refuses headers over max_header_bytes with 431, however many "
          "lines they take, and keeps serving") {
  running r{small()};
  raw_connection raw{r.port};
  // 8-KiB lines pass httplib's own per-line check; there is no end to them.
  std::string req = "GET /hello HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 64; ++i)
    req += "X-Pad-" + std::to_string(i) + ": " + std::string(1000, 'p') + "\r\n";
  req += "\r\n";
  raw.send_all(req); // the server may close before it read everything
  auto got = raw.receive(2s);
  CHECK_THAT(got, Catch::StartsWith("HTTP/1.1 431"));
  CHECK_THAT(got, Catch::Contains("request line and headers larger than 4096 bytes"));
  CHECK(r.srv->refused().headers_too_large == 1);
  auto after = r.client().Get("/hello");
  REQUIRE(after);
  CHECK(after->status == 200);
}

TEST_CASE("an http server refuses a request line over max_header_bytes with 414") {
  running r{small()};
  raw_connection raw{r.port};
  raw.send_all("GET /hello?" + std::string(9000, 'q') + " HTTP/1.1\r\nHost: x\r\n\r\n");
  auto got = raw.receive(2s);
  CHECK_THAT(got, Catch::StartsWith("HTTP/1.1 414"));
  CHECK_THAT(got, Catch::Contains("request line longer than 4096 bytes"));
  auto after = r.client().Get("/hello");
  REQUIRE(after);
  CHECK(after->status == 200);
}

TEST_CASE("an http server answers 408 to a request not sent whole within "
          "request_timeout, slow drip or not, and keeps serving") {
  running r{small()};
  raw_connection stalled{r.port};
  REQUIRE(stalled.send_all("GET /hello HTTP/1.1\r\nHost: x\r\n")); // and then nothing
  raw_connection drip{r.port};
  auto start = std::chrono::steady_clock::now();
  // A byte every 100 ms never trips a per-read timeout; the request's does.
  std::thread dripper{[&] {
    std::string req = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n";
    for (char ch : req + std::string(50, 'd')) {
      if (!drip.send_all(std::string(1, ch))) return;
      std::this_thread::sleep_for(100ms);
    }
  }};
  auto got = stalled.receive(3s); // returns once the server closes
  CHECK(std::chrono::steady_clock::now() - start < 2s);
  CHECK_THAT(got, Catch::StartsWith("HTTP/1.1 408"));
  CHECK_THAT(got, Catch::Contains("not received within 500 ms"));
  auto dripped = drip.receive(3s);
  CHECK_THAT(dripped, Catch::StartsWith("HTTP/1.1 408"));
  CHECK(std::chrono::steady_clock::now() - start < 4s);
  dripper.join();
  CHECK(r.srv->refused().timed_out == 2);
  auto after = r.client().Get("/hello");
  REQUIRE(after);
  CHECK(after->status == 200);
}

TEST_CASE("an http server flooded with idle connections refuses the surplus with 503 "
          "at once and still serves a client that comes after the flood") {
  auto l = small();
  running r{l};
  // threads + waiting room: 6 connections are taken; the rest are refused.
  std::vector<std::unique_ptr<raw_connection>> flood;
  for (int i = 0; i < 30; ++i)
    flood.push_back(std::make_unique<raw_connection>(r.port));
  size_t refused = 0, other = 0;
  for (auto& c : flood) {
    auto got = c->receive(200ms);
    if (got.rfind("HTTP/1.1 503", 0) == 0) {
      CHECK_THAT(got, Catch::Contains("Retry-After: 1"));
      CHECK_THAT(got, Catch::Contains("too many connections waiting"));
      ++refused;
    } else if (!got.empty()) {
      ++other; // an idle connection gets no answer, only closed
    }
  }
  CHECK(other == 0);
  CHECK(refused >= 20);
  CHECK(r.srv->refused().busy >= 20);
  // The idle ones that hold threads or wait give them up to others (after a
  // second of silence each): a real client that retries as told (503,
  // Retry-After) is served while the flood's connections stay open.
  auto start = std::chrono::steady_clock::now();
  int status = 0, busy = 0;
  while (std::chrono::steady_clock::now() - start < 10s) {
    auto res = r.client().Get("/hello");
    REQUIRE(res);
    status = res->status;
    if (status != 503) break;
    ++busy;
    std::this_thread::sleep_for(200ms);
  }
  CHECK(status == 200);
  CHECK(std::chrono::steady_clock::now() - start < 8s);
  WARN("flood of 30 idle connections: "
       << refused << " refused at once; a client "
       << "retrying every 200 ms was served after " << busy << " 503s in "
       << std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::steady_clock::now() - start)
              .count()
       << " ms");
}

TEST_CASE("an http server with a bearer token answers 401 without it or with another, "
          "and serves with it") {
  auto l = small();
  l.bearer_token = "s3cret-token";
  running r{l};
  auto c = r.client();
  auto none = c.Get("/hello");
  REQUIRE(none);
  CHECK(none->status == 401);
  CHECK(none->get_header_value("WWW-Authenticate") == "Bearer realm=\"weft\"");
  CHECK_THAT(none->body, Catch::Contains("Authorization: Bearer"));
  auto wrong = c.Get("/hello", {{"Authorization", "Bearer s3cret-tokeN"}});
  REQUIRE(wrong);
  CHECK(wrong->status == 401);
  auto shorter = c.Get("/hello", {{"Authorization", "Bearer s3cret"}});
  REQUIRE(shorter);
  CHECK(shorter->status == 401);
  auto basic = c.Get("/hello", {{"Authorization", "Basic czNjcmV0LXRva2Vu"}});
  REQUIRE(basic);
  CHECK(basic->status == 401);
  auto right = c.Get("/hello", {{"Authorization", "Bearer s3cret-token"}});
  REQUIRE(right);
  CHECK(right->status == 200);
  // A POST without the token is refused before its body is used.
  auto post = c.Post("/echo", "x", "text/plain");
  REQUIRE(post);
  CHECK(post->status == 401);
  CHECK(r.srv->refused().unauthorized == 5);
}

TEST_CASE("http limits come from the node's http.* keys") {
  auto cfg = weft::config::from_map({{"application.id", "a"},
                                     {"http.auth.token", "t"},
                                     {"http.max.body.bytes", "100"},
                                     {"http.max.header.bytes", "2048"},
                                     {"http.request.timeout.ms", "250"}});
  REQUIRE(cfg);
  auto l = weft::http::limits_from(*cfg);
  CHECK(l.bearer_token == "t");
  CHECK(l.max_body_bytes == 100);
  CHECK(l.max_header_bytes == 2048);
  CHECK(l.request_timeout == 250ms);
  auto bad =
      weft::config::from_map({{"application.id", "a"}, {"http.max.header.bytes", "10"}});
  REQUIRE(!bad);
  CHECK_THAT(bad.error().message(), Catch::Contains("http.max.header.bytes"));
}
