// The cluster's own defences against the real broker [broker][cluster], with
// weft-test-node processes running the exactly-once pipeline (pipeline.hpp):
// - TLS (cluster.tls.*): two nodes with certificates from the application's
//   CA (made at test time by tools/weft-certs, i.e. the openssl command line)
//   share the work and forward queries to each other; strangers on
//   cluster.port — plain TCP, TLS without a certificate, TLS with a
//   certificate of another CA — are refused, each refusal is in the node's
//   log, and every result is still committed exactly once.
// - Forwarded queries are bounded (cluster.query.max.in.flight): a flood for
//   keys of a frozen owner is refused at once as retriable (503) beyond the
//   bound, the forwarded ones end within their timeout, and the node keeps
//   answering for its own keys.

#include <catch2/catch.hpp>

#include <httplib.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "pipeline.hpp"
#include "test_cluster.hpp"
#include "weft/services/partitioner.hpp"

using namespace weft;
using namespace weft::test::pipeline;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

size_t count_lines(const std::string& path, const std::string& what) {
  std::ifstream f{path};
  size_t n = 0;
  for (std::string line; std::getline(f, line);)
    n += line.find(what) != std::string::npos;
  return n;
}

/// Nodes of one application, each with fixed HTTP and cluster ports.
struct nodes_fixture {
  pipeline_topics topics;
  std::string app;
  std::string dir; ///< certificates, state folders and logs
  struct node {
    int http_port = 0, cluster_port = 0;
    std::string log;
    std::vector<std::string> extra;
    std::unique_ptr<test::child_process> proc;
  };
  std::map<std::string, node> nodes;
  int next_port = 0;

  explicit nodes_fixture(const std::string& name)
    : topics(make_topics(name)), app(test::unique_name(name)), dir("/tmp/" + app) {
    std::filesystem::create_directories(dir);
  }
  ~nodes_fixture() {
    for (auto& [id, n] : nodes)
      if (n.proc && n.proc->running()) n.proc->kill_hard();
    std::filesystem::remove_all(dir);
  }

  node& start(const std::string& id, const std::vector<std::string>& extra) {
    auto& n = nodes[id];
    n.http_port = test_port(next_port++);
    n.cluster_port = test_port(next_port++);
    n.log = dir + "/" + id + ".log";
    std::vector<std::string> args{"--num.standby.replicas=0",
                                  "--cluster.port=" + std::to_string(n.cluster_port)};
    args.insert(args.end(), extra.begin(), extra.end());
    n.proc = start_cluster_node(topics, app, id, dir + "/state-" + id, n.http_port, args,
                                n.log);
    return n;
  }

  /// Node `id` sees exactly `members` connected and every unit running on
  /// one of them.
  bool settled(const std::string& id, const std::set<std::string>& members) {
    auto v = get_json(nodes[id].http_port, "/cluster");
    if (!v || !v->contains("units")) return false;
    std::set<std::string> connected;
    for (auto& m : (*v)["members"])
      if (m["connected"].get<bool>()) connected.insert(m["id"].get<std::string>());
    if (connected != members) return false;
    for (auto& u : (*v)["units"])
      if (!members.count(u["active"].get<std::string>()) || u["active_lag"].is_null())
        return false;
    return true;
  }

  /// The node that runs the counter's partition `p`, as `id` sees it.
  std::string owner_of_counter(const std::string& id, int32_t p) {
    auto v = get_json(nodes[id].http_port, "/cluster");
    if (!v) return "";
    for (auto& u : (*v)["units"])
      if (u["tasks"].get<std::string>().find("counter/" + std::to_string(p)) !=
          std::string::npos)
        return u["active"].get<std::string>();
    return "";
  }
};

/// Connects to 127.0.0.1:`port` over plain TCP; -1 on failure.
int tcp_connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// How many sockets process `pid` has open.
int open_sockets(int pid) {
  int n = 0;
  auto dir = "/proc/" + std::to_string(pid) + "/fd";
  for (auto& e : std::filesystem::directory_iterator{dir}) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(e.path(), ec);
    if (!ec && target.string().rfind("socket:", 0) == 0) ++n;
  }
  return n;
}

/// Whether the other end closes `fd` (EOF or reset) within `limit`; data
/// sent before the close is skipped.
bool closed_by_peer(int fd, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 1))) <= 0)
      continue;
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return true;
  }
  return false;
}

/// A TLS client with `cert`/`key` (none if empty) that trusts `ca`: connects
/// to `port`, sends a line, and reports whether the node let it exchange
/// data. Returns what happened, for the test's messages.
struct tls_attempt {
  bool handshake = false; ///< the client's side of the handshake finished
  bool refused = false;   ///< the node closed or alerted before any data came back
  std::string detail;
};

tls_attempt tls_client(int port, const std::string& ca, const std::string& cert,
                       const std::string& key) {
  tls_attempt out;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  REQUIRE(ctx);
  REQUIRE(SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr) == 1);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (!cert.empty()) {
    REQUIRE(SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) == 1);
  }
  int fd = tcp_connect(port);
  REQUIRE(fd >= 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  ERR_clear_error();
  out.handshake = SSL_connect(ssl) == 1;
  if (out.handshake) {
    // TLS 1.3: the server judges the client's certificate after the client
    // is done; its verdict arrives with the next read.
    const char line[] = "hello\n";
    SSL_write(ssl, line, sizeof line - 1);
    char buf[256];
    int n = SSL_read(ssl, buf, sizeof buf);
    out.refused = n <= 0;
  } else {
    out.refused = true;
  }
  char err[256] = "";
  if (auto e = ERR_peek_last_error()) ERR_error_string_n(e, err, sizeof err);
  out.detail = err;
  ERR_clear_error();
  SSL_free(ssl);
  ::close(fd);
  SSL_CTX_free(ctx);
  return out;
}

void run(const std::string& cmd) {
  INFO(cmd);
  REQUIRE(std::system((cmd + " >/dev/null 2>&1").c_str()) == 0);
}

std::vector<std::string> tls_args(const std::string& certs, const std::string& id) {
  return {"--cluster.tls.enabled=true", "--cluster.tls.ca=" + certs + "/ca.pem",
          "--cluster.tls.certificate=" + certs + "/" + id + ".pem",
          "--cluster.tls.key=" + certs + "/" + id + ".key"};
}

/// Every key's count through node `id` equals the reference (retrying 503s).
size_t wrong_counts(nodes_fixture& f, const std::string& id, const reference& ref,
                    std::string& first) {
  httplib::Client h{"127.0.0.1", f.nodes[id].http_port};
  h.set_connection_timeout(1);
  h.set_read_timeout(5);
  size_t wrong = 0;
  for (auto& [key, want] : ref.counts) {
    std::string got = "no answer";
    test::wait_until(
        [&] {
          auto res = h.Get(("/state/counts/" + key).c_str());
          if (!res || res->status == 503) return false;
          got = res->status == 200 ? std::to_string(*int64_serde::deserialize(res->body))
                                   : std::to_string(res->status) + " " + res->body;
          return true;
        },
        10s);
    if (got != std::to_string(want)) {
      ++wrong;
      if (first.empty()) first = key + " through " + id + ": " + got;
    }
  }
  return wrong;
}

} // namespace

TEST_CASE("cluster TLS: nodes with the application's certificates share the work, "
          "strangers on cluster.port are refused and logged, and nothing is lost",
          "[broker][cluster]") {
  nodes_fixture f{"tls"};
  auto certs = f.dir + "/certs", other = f.dir + "/other";
  auto tool = std::string{WEFT_SOURCE_DIR} + "/tools/weft-certs";
  run(tool + " ca " + certs);
  run(tool + " node " + certs + " n1 127.0.0.1");
  run(tool + " node " + certs + " n2 127.0.0.1");
  run(tool + " ca " + other + " 'weft cluster CA'"); // same name, another key
  run(tool + " node " + other + " n3 127.0.0.1");

  const size_t keys = 200, total = 4000;
  test::produce(f.topics.in, total / 2, [&](size_t i) { return event(i, keys); });
  f.start("n1", tls_args(certs, "n1"));
  f.start("n2", tls_args(certs, "n2"));
  auto& n1 = f.nodes["n1"];
  INFO("logs: " << n1.log << ", " << f.nodes["n2"].log);
  REQUIRE(test::wait_until([&] { return f.settled("n1", {"n1", "n2"}); }, 90s));
  CHECK(count_lines(n1.log, "(TLS, peers need a certificate signed by") == 1);

  // 1. Plain TCP that talks: a BASP-like header, then HTTP.
  for (const std::string& bytes :
       {std::string("\x00\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00", 12),
        std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")}) {
    int fd = tcp_connect(n1.cluster_port);
    REQUIRE(fd >= 0);
    REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
    CHECK(closed_by_peer(fd, 5s));
    ::close(fd);
  }
  // Refused connections leave no descriptor behind (and none is closed
  // twice: a double close can take another thread's socket or file).
  {
    auto before = open_sockets(n1.proc->pid());
    for (int i = 0; i < 30; ++i) {
      int fd = tcp_connect(n1.cluster_port);
      REQUIRE(fd >= 0);
      const std::string bytes = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
      REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
              static_cast<ssize_t>(bytes.size()));
      CHECK(closed_by_peer(fd, 5s));
      ::close(fd);
    }
    auto after = open_sockets(n1.proc->pid());
    INFO("sockets of n1 before 30 refused connections: " << before
                                                         << ", after: " << after);
    CHECK(after < before + 10);
  }
  // A silent one is closed too, once the handshake deadline (10 s) passed.
  {
    int fd = tcp_connect(n1.cluster_port);
    REQUIRE(fd >= 0);
    auto t0 = std::chrono::steady_clock::now();
    CHECK(closed_by_peer(fd, 20s));
    INFO("a silent connection was closed after "
         << std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - t0)
                .count()
         << " ms");
    CHECK(std::chrono::steady_clock::now() - t0 >= 9s);
    ::close(fd);
  }
  // 2. TLS without a certificate, and with one of another CA (which even
  //    trusts the node: only the node's judgement is tested).
  auto anonymous = tls_client(n1.cluster_port, certs + "/ca.pem", "", "");
  INFO("TLS without a certificate: " << anonymous.detail);
  CHECK(anonymous.refused);
  auto foreign = tls_client(n1.cluster_port, certs + "/ca.pem", other + "/n3.pem",
                            other + "/n3.key");
  INFO("TLS with another CA's certificate: " << foreign.detail);
  CHECK(foreign.refused);
  // 3. A node's own certificate opens the door: the node answers (CAF's
  //    handshake comes back), though the test's client is no CAF node.
  auto member = tls_client(n1.cluster_port, certs + "/ca.pem", certs + "/n2.pem",
                           certs + "/n2.key");
  INFO("TLS with a node's certificate: " << member.detail);
  CHECK(member.handshake);
  CHECK_FALSE(member.refused);

  // Each refusal is in the log, with the stranger's address and why.
  REQUIRE(test::wait_until(
      [&] { return count_lines(n1.log, "refused a connection from 127.0.0.1:") >= 5; },
      10s));
  CHECK(count_lines(n1.log, "does not speak TLS") >= 2);
  CHECK(count_lines(n1.log, "presented no certificate") +
            count_lines(n1.log, "certificate required") >=
        1);
  CHECK(count_lines(n1.log, "is not trusted") >= 1);
  CHECK(count_lines(n1.log, "to the cluster port: no TLS handshake within 10 s") >= 1);
  CHECK(count_lines(n1.log, "an unknown address") == 0);
  CHECK(count_lines(n1.log, "CN = weft cluster CA") + count_lines(n1.log, "CN=n3") +
            count_lines(n1.log, "CN = n3") >=
        1);

  // The nodes kept serving: still one cluster, the rest of the input
  // processed, every count committed once and answered through either node
  // (half the keys forwarded over TLS).
  CHECK(f.settled("n1", {"n1", "n2"}));
  CHECK(f.settled("n2", {"n1", "n2"}));
  test::produce(f.topics.in, total - total / 2,
                [&](size_t i) { return event(total / 2 + i, keys); });
  auto ref = expected(total, keys);
  CHECK(test::wait_until(
      [&] { return test::consume_all(f.topics.counts(), total, 5s).size() >= total; },
      120s));
  std::string first;
  CHECK(wrong_counts(f, "n1", ref, first) == 0);
  CHECK(wrong_counts(f, "n2", ref, first) == 0);
  INFO("first wrong count: " << first);
  for (auto& [id, n] : f.nodes)
    CHECK(n.proc->stop(SIGTERM, 60s) == 0);
  check_outputs(f.topics, ref);
}

TEST_CASE("cluster: a flood of queries for a frozen owner's keys is refused as "
          "retriable beyond cluster.query.max.in.flight, and the node keeps serving",
          "[broker][cluster]") {
  nodes_fixture f{"qflood"};
  const size_t keys = 200, total = 2000;
  test::produce(f.topics.in, total, [&](size_t i) { return event(i, keys); });
  // A frozen peer is taken for dead after cluster.timeout.ms (5 s here), a
  // forwarded query waits at most twice that.
  std::vector<std::string> common{"--cluster.timeout.ms=5000"};
  auto with = [&](std::vector<std::string> v) {
    v.insert(v.end(), common.begin(), common.end());
    return v;
  };
  f.start("n1", with({"--cluster.query.max.in.flight=2"}));
  f.start("n2", with({}));
  auto& n1 = f.nodes["n1"];
  INFO("logs: " << n1.log << ", " << f.nodes["n2"].log);
  REQUIRE(test::wait_until([&] { return f.settled("n1", {"n1", "n2"}); }, 90s));
  REQUIRE(test::wait_until(
      [&] { return test::consume_all(f.topics.counts(), total, 5s).size() >= total; },
      120s));

  // The counter's owner of each partition, read until both nodes name the
  // same one. (Read once per key before, a /cluster read that failed under
  // load filed an n1 key as n2's, which n1 answers itself with a 200: the
  // likeliest cause of rare 200s below. The example names the key and when
  // it was asked, should another one come.)
  std::map<int32_t, std::string> owner_of;
  REQUIRE(test::wait_until(
      [&] {
        owner_of.clear();
        for (int32_t p = 0; p < partitions; ++p) {
          auto o = f.owner_of_counter("n1", p);
          if ((o != "n1" && o != "n2") || f.owner_of_counter("n2", p) != o) return false;
          owner_of[p] = o;
        }
        return true;
      },
      30s));
  std::vector<std::string> own, theirs;
  for (size_t k = 0; k < keys; ++k) {
    auto key = "k" + std::to_string(k);
    (owner_of[partition_for(key, partitions)] == "n1" ? own : theirs).push_back(key);
  }
  REQUIRE(!own.empty());
  REQUIRE(!theirs.empty());

  ::kill(f.nodes["n2"].proc->pid(), SIGSTOP);
  struct answer {
    int status = 0;
    std::string body;
    std::string key;
    std::chrono::milliseconds took{}, began{};
  };
  const int clients = 40;
  std::vector<answer> answers(clients);
  std::vector<std::thread> threads;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < clients; ++i)
    threads.emplace_back([&, i] {
      httplib::Client h{"127.0.0.1", n1.http_port};
      h.set_connection_timeout(5);
      h.set_read_timeout(30);
      auto t0 = std::chrono::steady_clock::now();
      answers[i].began =
          std::chrono::duration_cast<std::chrono::milliseconds>(t0 - start);
      answers[i].key = theirs[i % theirs.size()];
      auto res = h.Get(("/state/counts/" + answers[i].key).c_str());
      answers[i].took = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - t0);
      if (res) answers[i].status = res->status, answers[i].body = res->body;
    });
  // Meanwhile the node answers for its own keys, at once.
  std::this_thread::sleep_for(200ms); // the flood is under way (a bounded pause)
  httplib::Client mine{"127.0.0.1", n1.http_port};
  mine.set_read_timeout(10);
  int own_ok = 0;
  int64_t own_worst_ms = 0;
  for (size_t i = 0; i < 5; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto res = mine.Get(("/state/counts/" + own[i % own.size()]).c_str());
    own_worst_ms = std::max<int64_t>(
        own_worst_ms, std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - t0)
                          .count());
    own_ok += res && res->status == 200;
  }
  for (auto& t : threads)
    t.join();
  auto flood_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  ::kill(f.nodes["n2"].proc->pid(), SIGCONT);

  int refused_at_bound = 0, timed_out = 0, busy = 0, other = 0;
  std::string example;
  for (auto& a : answers) {
    if (a.status != 503) {
      ++other;
      if (example.empty())
        example = std::to_string(a.status) + " for " + a.key + " (" +
                  std::to_string(a.body.size()) + " bytes), asked at +" +
                  std::to_string(a.began.count()) + " ms, took " +
                  std::to_string(a.took.count()) + " ms";
      continue;
    }
    if (a.body.find("too many queries in flight to other nodes (2)") !=
        std::string::npos) {
      ++refused_at_bound;
      CHECK(a.took < 2s); // refused at once, not after the owner's timeout
    } else if (a.body.find("node n2") != std::string::npos) {
      ++timed_out; // forwarded, and ended by its bound (or n2 taken for dead)
    } else {
      ++busy; // the HTTP endpoint's own bound: every thread busy
    }
  }
  INFO("refused at the bound " << refused_at_bound << ", forwarded then ended "
                               << timed_out << ", HTTP busy " << busy << ", other "
                               << other << " (e.g. " << example << "); flood took "
                               << flood_ms << " ms");
  CHECK(other == 0);               // every answer a retriable 503
  CHECK(refused_at_bound >= 1);    // the bound was hit
  CHECK(timed_out >= 1);           // and the ones within it were forwarded
  CHECK(timed_out <= 2 * clients); // (sanity)
  CHECK(flood_ms < 30000);         // each bounded: 2 x cluster.timeout.ms
  CHECK(own_ok == 5);
  CHECK(own_worst_ms < 3000);

  // Both nodes carry on once n2 thaws.
  CHECK(test::wait_until([&] { return f.settled("n1", {"n1", "n2"}); }, 60s));
  for (auto& [id, n] : f.nodes)
    CHECK(n.proc->stop(SIGTERM, 60s) == 0);
}
