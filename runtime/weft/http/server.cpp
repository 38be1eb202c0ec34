#include "weft/http/server.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace weft::http {

namespace {

using clock_type = std::chrono::steady_clock;

// Why the stream stopped reading the current request; read by the error
// handler, which httplib calls on the same thread while it answers.
enum class cut { none, request_line, headers, timeout };
thread_local cut t_cut = cut::none;
// Set by the pool when it runs a connection only to refuse it.
thread_local bool t_refuse = false;
// Set when an answer leaves the request's body unread: close after it.
thread_local bool t_close = false;

int remaining_ms(clock_type::time_point deadline) {
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now())
          .count();
  return left < 0 ? 0 : static_cast<int>(left);
}

enum class ready { yes, timed_out, failed };

ready wait_until_ready(socket_t sock, short events, int timeout_ms) {
  pollfd p{sock, events, 0};
  int r;
  do {
    r = ::poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return ready::timed_out;
  if (r < 0) return ready::failed;
  return ready::yes; // POLLHUP/POLLERR too: the read or write says what happened
}

bool wait_for(socket_t sock, short events, int timeout_ms) {
  return wait_until_ready(sock, events, timeout_ms) == ready::yes;
}

/// A connection's socket as httplib reads and writes it: buffered reads,
/// each request's headers counted and its whole read bounded in time.
class bounded_stream final : public httplib::Stream {
 public:
  bounded_stream(socket_t sock, const limits& l) : sock_(sock), limits_(l) {}

  /// A new request starts: its header budget and deadline start with its
  /// first byte.
  void next_request() {
    in_headers_ = true;
    header_bytes_ = 0;
    line_empty_ = true;
    first_line_ = true;
    started_ = false;
    written_ = 0;
  }
  bool buffered() const { return pos_ < end_; }
  /// Bytes written since next_request(): none means no answer went out.
  size_t written() const { return written_; }

  bool is_readable() const override {
    return buffered() ||
           wait_for(sock_, POLLIN, static_cast<int>(limits_.request_timeout.count()));
  }
  bool is_writable() const override {
    return wait_for(sock_, POLLOUT, static_cast<int>(limits_.write_timeout.count()));
  }

  ssize_t read(char* ptr, size_t size) override {
    if (!started_) {
      started_ = true;
      deadline_ = clock_type::now() + limits_.request_timeout;
    }
    if (!buffered()) {
      auto r = wait_until_ready(sock_, POLLIN, remaining_ms(deadline_));
      if (r != ready::yes) {
        if (r == ready::timed_out) t_cut = cut::timeout;
        return -1;
      }
      ssize_t n;
      do {
        n = ::recv(sock_, buf_, sizeof buf_, 0);
      } while (n < 0 && errno == EINTR);
      if (n <= 0) return n;
      pos_ = 0;
      end_ = static_cast<size_t>(n);
    }
    size_t n = std::min(size, end_ - pos_);
    if (in_headers_) {
      // Count up to the blank line that ends the headers.
      for (size_t i = 0; i < n; ++i) {
        char c = buf_[pos_ + i];
        if (++header_bytes_ > limits_.max_header_bytes) {
          t_cut = first_line_ ? cut::request_line : cut::headers;
          return -1;
        }
        if (c == '\n') {
          first_line_ = false;
          if (line_empty_) {
            in_headers_ = false;
            n = i + 1; // the body is not counted here
            break;
          }
          line_empty_ = true;
        } else if (c != '\r') {
          line_empty_ = false;
        }
      }
    }
    std::memcpy(ptr, buf_ + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    size_t done = 0;
    while (done < size) {
      if (!wait_for(sock_, POLLOUT, static_cast<int>(limits_.write_timeout.count())))
        return done > 0 ? static_cast<ssize_t>(done) : -1;
      ssize_t n = ::send(sock_, ptr + done, size - done, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return done > 0 ? static_cast<ssize_t>(done) : -1;
      done += static_cast<size_t>(n);
      written_ += static_cast<size_t>(n);
    }
    return static_cast<ssize_t>(done);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    address(::getpeername, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    address(::getsockname, ip, port);
  }
  socket_t socket() const override { return sock_; }

 private:
  template <class Fn>
  void address(Fn fn, std::string& ip, int& port) const {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (fn(sock_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return;
    char host[NI_MAXHOST];
    char serv[NI_MAXSERV];
    if (::getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof host, serv,
                      sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
      ip = host;
      port = std::atoi(serv);
    }
  }

  socket_t sock_;
  const limits& limits_;
  char buf_[4096];
  size_t pos_ = 0, end_ = 0;
  bool in_headers_ = true;
  bool line_empty_ = true;
  bool first_line_ = true;
  bool started_ = false;
  size_t header_bytes_ = 0;
  size_t written_ = 0;
  clock_type::time_point deadline_;
};

std::string error_body(const std::string& reason) {
  return nlohmann::json{{"error", reason}}.dump(-1, ' ', false,
                                                nlohmann::json::error_handler_t::replace);
}

/// A whole response with a JSON error body and Connection: close, for the
/// refusals httplib never gets to answer (the connection was refused before
/// httplib saw it, or the request line itself was cut).
std::string raw_response(int status, const char* text, const std::string& reason,
                         bool retry = false) {
  auto body = error_body(reason);
  return "HTTP/1.1 " + std::to_string(status) + " " + text +
         "\r\nContent-Type: application/json\r\n" + (retry ? "Retry-After: 1\r\n" : "") +
         "Connection: close\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

bool same_token(const std::string& given, const std::string& want) {
  // Constant time in the token's content: no early exit on a mismatch.
  unsigned char diff = given.size() == want.size() ? 0 : 1;
  for (size_t i = 0; i < given.size(); ++i)
    diff |= static_cast<unsigned char>(given[i] ^ want[i % want.size()]);
  return diff == 0;
}

} // namespace

void reply_error(httplib::Response& res, int status, const std::string& reason) {
  res.status = status;
  if (status == 503) res.set_header("Retry-After", "1");
  res.set_content(error_body(reason), "application/json");
}

/// httplib's task queue: a fixed pool, and a bounded wait for it.
class server::pool final : public httplib::TaskQueue {
 public:
  pool(size_t threads, size_t max_waiting) : max_waiting_(max_waiting) {
    for (size_t i = 0; i < threads; ++i)
      threads_.emplace_back([this] { work(); });
  }
  ~pool() override = default;

  void enqueue(std::function<void()> fn) override {
    {
      std::unique_lock<std::mutex> lock{mu_};
      if (jobs_.size() < max_waiting_ && !stop_) {
        jobs_.push_back(std::move(fn));
        waiting_.store(jobs_.size(), std::memory_order_relaxed);
        cv_.notify_one();
        return;
      }
    }
    // Full: serve the connection here, only to refuse it (a short write).
    t_refuse = true;
    fn();
    t_refuse = false;
  }

  void shutdown() override {
    {
      std::unique_lock<std::mutex> lock{mu_};
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_)
      t.join();
  }

  /// Connections waiting for a thread.
  size_t waiting() const { return waiting_.load(std::memory_order_relaxed); }

 private:
  void work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock{mu_};
        cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return; // stopping, nothing left
        fn = std::move(jobs_.front());
        jobs_.pop_front();
        waiting_.store(jobs_.size(), std::memory_order_relaxed);
      }
      fn();
    }
  }

  const size_t max_waiting_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::atomic<size_t> waiting_{0};
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

server::server(limits l) : limits_(std::move(l)), refused_(std::make_unique<refusals>()) {
  if (limits_.threads == 0) limits_.threads = 1;
  new_task_queue = [this] {
    pool_ = new pool(limits_.threads, limits_.max_waiting_connections);
    return pool_;
  };
  set_payload_max_length(limits_.max_body_bytes);
  set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    // Left set: the connection closes after this answer.
    const auto why = t_cut;
    if (why == cut::request_line) {
      refused_->headers_too_large.fetch_add(1, std::memory_order_relaxed);
      res.set_header("Connection", "close");
      return reply_error(res, 414,
                         "request line longer than " +
                             std::to_string(limits_.max_header_bytes) + " bytes");
    }
    if (why == cut::headers) {
      refused_->headers_too_large.fetch_add(1, std::memory_order_relaxed);
      res.set_header("Connection", "close");
      return reply_error(res, 431,
                         "request line and headers larger than " +
                             std::to_string(limits_.max_header_bytes) + " bytes");
    }
    if (why == cut::timeout) {
      refused_->timed_out.fetch_add(1, std::memory_order_relaxed);
      res.set_header("Connection", "close");
      return reply_error(res, 408,
                         "the request was not received within " +
                             std::to_string(limits_.request_timeout.count()) + " ms");
    }
    if (!res.body.empty()) return; // a handler's own answer
    if (res.status == 413) {
      refused_->body_too_large.fetch_add(1, std::memory_order_relaxed);
      return reply_error(res, 413,
                         "request body larger than " +
                             std::to_string(limits_.max_body_bytes) + " bytes");
    }
    if (res.status == 414)
      return reply_error(res, 414, "request line longer than 8192 bytes");
    if (fallback_) {
      fallback_(req, res);
      if (!res.body.empty()) return;
    }
    if (res.body.empty())
      reply_error(res, res.status,
                  res.status == 400
                      ? "malformed request (a header line may be at most "
                        "8192 bytes)"
                      : "request refused (HTTP " + std::to_string(res.status) + ")");
  });
  set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    // Before httplib reads the body: a declared length over the limit is
    // refused without reading it (httplib itself only counts what arrives),
    // and the connection closes, since the body is still in it.
    if (req.has_header("Content-Length")) {
      auto text = req.get_header_value("Content-Length");
      char* end = nullptr;
      errno = 0;
      auto n = std::strtoull(text.c_str(), &end, 10);
      if (errno != 0 || end == text.c_str() || n > limits_.max_body_bytes) {
        refused_->body_too_large.fetch_add(1, std::memory_order_relaxed);
        t_close = true;
        res.set_header("Connection", "close");
        reply_error(res, 413,
                    "request body larger than " + std::to_string(limits_.max_body_bytes) +
                        " bytes");
        return HandlerResponse::Handled;
      }
    }
    if (limits_.bearer_token.empty()) return HandlerResponse::Unhandled;
    auto auth = req.get_header_value("Authorization");
    static const std::string scheme = "Bearer ";
    if (auth.size() > scheme.size() && auth.compare(0, scheme.size(), scheme) == 0 &&
        same_token(auth.substr(scheme.size()), limits_.bearer_token))
      return HandlerResponse::Unhandled;
    refused_->unauthorized.fetch_add(1, std::memory_order_relaxed);
    // A body the request may carry is not read: close after the answer.
    t_close = true;
    res.set_header("Connection", "close");
    res.set_header("WWW-Authenticate", "Bearer realm=\"weft\"");
    reply_error(res, 401,
                auth.empty()
                    ? "this endpoint needs an Authorization: Bearer <token> header"
                    : "the bearer token is not valid");
    return HandlerResponse::Handled;
  });
}

server::~server() = default;

bool server::bind_to_port(const std::string& host, int port, int socket_flags) {
  if (!httplib::Server::bind_to_port(host, port, socket_flags)) return false;
  (void)::listen(svr_sock_, 1024);
  return true;
}

int server::bind_to_any_port(const std::string& host, int socket_flags) {
  int port = httplib::Server::bind_to_any_port(host, socket_flags);
  if (port >= 0) (void)::listen(svr_sock_, 1024);
  return port;
}

bool server::process_and_close_socket(socket_t sock) {
  if (t_refuse) {
    refused_->busy.fetch_add(1, std::memory_order_relaxed);
    auto all =
        raw_response(503, "Service Unavailable",
                     "too many connections waiting (more than " +
                         std::to_string(limits_.max_waiting_connections) + "); try again",
                     true);
    (void)::send(sock, all.data(), all.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return false;
  }
  // Answers go out in a few writes: Nagle would hold the last one back.
  int one = 1;
  (void)::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  bounded_stream strm{sock, limits_};
  bool ok = false;
  size_t served = 0;
  for (;;) {
    if (svr_sock_ == INVALID_SOCKET) break; // stopping
    if (!strm.buffered()) {
      // Idle: wait for the next request in short steps, and give the
      // thread up when another connection waits for one — at once after a
      // request was served, after a second of silence on a new connection
      // (its client may be about to send).
      const auto since = clock_type::now();
      const auto idle_until = since + limits_.idle_timeout;
      const auto grace =
          served > 0 ? std::chrono::milliseconds(0) : std::chrono::milliseconds(1000);
      bool readable = false;
      while (!readable && clock_type::now() < idle_until && svr_sock_ != INVALID_SOCKET) {
        if (pool_ && pool_->waiting() > 0 && clock_type::now() - since >= grace) break;
        readable = wait_for(sock, POLLIN, std::min(100, remaining_ms(idle_until)));
      }
      if (!readable) break;
    }
    strm.next_request();
    t_cut = cut::none;
    t_close = false;
    bool closed = false;
    ok = process_request(strm, false, closed, nullptr);
    ++served;
    if (t_cut != cut::none && strm.written() == 0) {
      // Cut inside the request line: httplib gives up without an answer.
      std::string all;
      if (t_cut == cut::request_line) {
        refused_->headers_too_large.fetch_add(1, std::memory_order_relaxed);
        all = raw_response(414, "URI Too Long",
                           "request line longer than " +
                               std::to_string(limits_.max_header_bytes) + " bytes");
      } else if (t_cut == cut::headers) {
        refused_->headers_too_large.fetch_add(1, std::memory_order_relaxed);
        all = raw_response(431, "Request Header Fields Too Large",
                           "request line and headers larger than " +
                               std::to_string(limits_.max_header_bytes) + " bytes");
      } else {
        refused_->timed_out.fetch_add(1, std::memory_order_relaxed);
        all = raw_response(408, "Request Timeout",
                           "the request was not received within " +
                               std::to_string(limits_.request_timeout.count()) + " ms");
      }
      (void)strm.write(all.data(), all.size());
    }
    if (!ok || closed || t_cut != cut::none || t_close) break;
  }
  t_cut = cut::none;
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ok;
}

limits limits_from(const config& cfg) {
  limits l;
  l.bearer_token = cfg.get_string("http.auth.token");
  l.max_body_bytes = static_cast<size_t>(cfg.get_int("http.max.body.bytes"));
  l.max_header_bytes = static_cast<size_t>(cfg.get_int("http.max.header.bytes"));
  l.request_timeout = std::chrono::milliseconds(cfg.get_int("http.request.timeout.ms"));
  return l;
}

} // namespace weft::http
