#pragma once
// An HTTP server with bounds on what a client can make it do: the node's
// HTTP endpoint (http.port) and the order system's REST API run on it.
//
// cpp-httplib (0.11, Debian's) serves each connection on a pool thread and
// bounds little on its own: a request's headers may grow without end (only
// each line is capped, at 8 KiB), a client that sends a byte every few
// seconds holds its thread for as long as it likes, an idle keep-alive
// connection holds one for the keep-alive timeout, and connections beyond
// the pool wait in an unbounded queue. weft::http::server is an
// httplib::Server that serves each connection itself (process_and_close_socket)
// through a stream that enforces `limits`:
//
//   request line + headers > max_header_bytes      431, connection closed
//   body > max_body_bytes (Content-Length, chunks)  413 (httplib's own check)
//   request line > 8 KiB                            414 (httplib's own)
//   a request not received whole within
//     request_timeout of its first byte             408, connection closed
//   more than max_waiting_connections accepted
//     connections waiting for a thread              503 + Retry-After at once
//   bearer_token set and no "Authorization:
//     Bearer <token>"                               401 + WWW-Authenticate
// An idle keep-alive connection gives its thread up at once when another
// connection waits for one (a server may close an idle connection; clients
// reconnect), and after idle_timeout anyway. Every refusal carries a JSON
// body {"error": reason} that names the limit and its value.
//
// Use it as an httplib::Server (Get, Post, bind_to_port, listen_after_bind,
// stop), but set the error handler for other statuses with
// set_error_fallback(), not set_error_handler() (the server's own handler
// writes the bodies of the refusals above), and no pre-routing handler
// (the token check is one).
//
// Threads: handlers run on the server's pool (`threads` of them); the
// counters may be read from any thread.

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "weft/config.hpp"

namespace weft::http {

struct limits {
  size_t max_header_bytes = 64 * 1024; ///< request line and headers together
  size_t max_body_bytes = 1024 * 1024;
  /// From a request's first byte until it is read whole (headers and body);
  /// handlers may then take as long as they need (long polls).
  std::chrono::milliseconds request_timeout{10000};
  /// How long an idle keep-alive connection is kept while no other waits.
  std::chrono::milliseconds idle_timeout{30000};
  /// Bound on each write of a response to a client that does not read.
  std::chrono::milliseconds write_timeout{10000};
  size_t threads = 8; ///< connections served at once
  /// Accepted connections waiting for a thread; more are refused with 503.
  size_t max_waiting_connections = 64;
  /// Non-empty: every request needs "Authorization: Bearer <token>".
  std::string bearer_token;
};

/// weft's http.* limits from a node configuration: http.auth.token,
/// http.max.body.bytes, http.max.header.bytes, http.request.timeout.ms.
limits limits_from(const config& cfg);

/// What the server refused, since it started.
struct refusals {
  std::atomic<uint64_t> headers_too_large{0}; ///< 431
  std::atomic<uint64_t> body_too_large{0};    ///< 413
  std::atomic<uint64_t> timed_out{0};         ///< 408
  std::atomic<uint64_t> busy{0};              ///< 503: too many waiting connections
  std::atomic<uint64_t> unauthorized{0};      ///< 401
};

class server : public httplib::Server {
 public:
  explicit server(limits l);
  ~server() override;
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// httplib's bind_to_port and bind_to_any_port, then a listen backlog of
  /// 1024: Debian's libcpp-httplib is compiled with a backlog of 5, so a
  /// burst of clients beyond it waited a second for a SYN retry (or was
  /// reset) before this server could even refuse or serve them.
  bool bind_to_port(const std::string& host, int port, int socket_flags = 0);
  int bind_to_any_port(const std::string& host, int socket_flags = 0);

  const limits& bounds() const { return limits_; }
  const refusals& refused() const { return *refused_; }

  /// Called for error responses the server did not write itself (e.g. 404
  /// for an unknown path), on a pool thread.
  void set_error_fallback(Handler h) { fallback_ = std::move(h); }

 private:
  bool process_and_close_socket(socket_t sock) override;
  class pool;
  limits limits_;
  std::unique_ptr<refusals> refused_;
  pool* pool_ = nullptr; ///< owned by httplib (new_task_queue)
  Handler fallback_;
};

/// Sends {"error": reason} with `status` (and Retry-After: 1 for 503).
void reply_error(httplib::Response& res, int status, const std::string& reason);

} // namespace weft::http
