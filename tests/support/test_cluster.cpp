#include "test_cluster.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

namespace weft::test {

using namespace std::chrono_literals;

namespace {
std::string& bootstrap_override() {
  static std::string s;
  return s;
}
} // namespace

void use_bootstrap(std::string servers) {
  bootstrap_override() = std::move(servers);
}

std::string bootstrap() {
  if (!bootstrap_override().empty()) return bootstrap_override();
  auto* b = std::getenv("WEFT_TEST_BOOTSTRAP");
  if (!b || !*b)
    FAIL("WEFT_TEST_BOOTSTRAP is not set: run broker tests through ctest, which starts "
         "the local broker (fixture kafka_broker)");
  return b;
}

std::string unique_name(const std::string& prefix) {
  // The process id alone repeats: pid_max is 32,768 here and a suite run
  // (a build, a JVM broker, librdkafka's and CAF's threads, which take ids
  // from the same space) wraps it. Two processes with one id made the same
  // names: the later one found the earlier one's topics, records, committed
  // offsets and /tmp state dir, and a test failed on data it never wrote.
  // A random token drawn once per process makes them differ.
  static const std::string token = [] {
    std::random_device rd;
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(rd()));
    return std::string{buf};
  }();
  static std::atomic<int> n{0};
  return prefix + "-" + std::to_string(::getpid()) + "-" + token + "-" + std::to_string(++n);
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::unique_ptr<kafka::admin> admin() {
  auto a = kafka::admin::create({{"bootstrap.servers", bootstrap()}});
  REQUIRE(a.ok());
  return std::move(*a);
}

void create_topics(const std::vector<std::string>& names, int partitions) {
  std::vector<kafka::new_topic> ts;
  for (auto& n : names)
    ts.push_back({n, partitions, 1, {}});
  auto st = admin()->ensure_topics(ts, 30000);
  INFO(st.to_string());
  REQUIRE(st.ok());
}

void produce(const std::string& topic, size_t count,
             const std::function<std::pair<std::string, std::string>(size_t)>& make,
             int32_t partition) {
  std::atomic<size_t> failed{0};
  auto p = kafka::producer::create({{"bootstrap.servers", bootstrap()},
                                    {"partitioner", "murmur2_random"},
                                    {"linger.ms", "20"},
                                    {"batch.num.messages", "10000"},
                                    {"queue.buffering.max.messages", "500000"}},
                                   [&](void*, const status& st, int64_t) {
                                     if (!st.ok()) ++failed;
                                   });
  REQUIRE(p.ok());
  for (size_t i = 0; i < count; ++i) {
    auto [k, v] = make(i);
    while (true) {
      auto st = (*p)->send(topic, partition, k, v);
      if (st.ok()) break;
      REQUIRE(st.code() == errc::queue_full);
      std::this_thread::sleep_for(1ms);
    }
  }
  REQUIRE((*p)->flush(120000).ok());
  REQUIRE(failed == 0);
}

std::vector<owned_record> consume_all(const std::string& topic, size_t expected,
                                      std::chrono::milliseconds limit,
                                      std::chrono::milliseconds quiet) {
  auto c = kafka::consumer::create({{"bootstrap.servers", bootstrap()},
                                    {"group.id", unique_name("reader")},
                                    {"isolation.level", "read_committed"}});
  REQUIRE(c.ok());
  auto n = (*c)->partition_count(topic, 10000);
  REQUIRE(n.ok());
  std::vector<topic_partition> tps;
  for (int p = 0; p < *n; ++p)
    tps.push_back({topic, partition_id{p}});
  std::vector<std::unique_ptr<kafka::partition_queue>> qs;
  for (auto& tp : tps)
    qs.push_back((*c)->take_queue(tp));
  REQUIRE((*c)->assign(tps).ok());
  std::vector<owned_record> out;
  auto deadline = std::chrono::steady_clock::now() + limit;
  auto last_new = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < deadline) {
    bool got = false;
    for (auto& q : qs) {
      kafka::message_batch b;
      q->drain(b, 10000);
      for (size_t i = 0; i < b.size(); ++i) {
        auto v = b.view(i);
        owned_record r{v.partition.value(), v.offset.value(), std::nullopt, std::nullopt,
                       v.headers()};
        if (v.key) r.key = std::string{*v.key};
        r.timestamp = v.timestamp;
        if (v.value) r.value = std::string{*v.value};
        out.push_back(std::move(r));
        got = true;
      }
    }
    auto now = std::chrono::steady_clock::now();
    if (got) last_new = now;
    if (out.size() >= expected && now - last_new >= quiet) break;
    if (!got) std::this_thread::sleep_for(10ms);
  }
  return out;
}

int64_t end_offsets(const std::string& topic) {
  auto c = kafka::consumer::create(
      {{"bootstrap.servers", bootstrap()}, {"group.id", unique_name("watermarks")}});
  REQUIRE(c.ok());
  auto n = (*c)->partition_count(topic, 10000);
  REQUIRE(n.ok());
  int64_t sum = 0;
  for (int p = 0; p < *n; ++p) {
    auto w = (*c)->watermarks({topic, partition_id{p}}, 10000);
    REQUIRE(w.ok());
    sum += w->second;
  }
  return sum;
}

int64_t committed_total(const std::string& group, const std::string& topic, int parts) {
  auto c =
      kafka::consumer::create({{"bootstrap.servers", bootstrap()}, {"group.id", group}});
  REQUIRE(c.ok());
  std::vector<topic_partition> tps;
  for (int p = 0; p < parts; ++p)
    tps.push_back({topic, partition_id{p}});
  auto offs = (*c)->committed(tps, 10000);
  if (!offs) return -1;
  int64_t sum = 0;
  for (auto o : *offs)
    sum += std::max<int64_t>(o, 0);
  return sum;
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return pred();
}

child_process::child_process(const std::string& program,
                             const std::vector<std::string>& args,
                             const std::string& log_file)
  : log_(log_file) {
  pid_ = ::fork();
  REQUIRE(pid_ >= 0);
  if (pid_ == 0) {
    int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(program.c_str()));
    for (auto& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
}

child_process::~child_process() {
  if (pid_ > 0 && running()) kill_hard();
}

bool child_process::running() {
  if (reaped_) return false;
  auto r = ::waitpid(pid_, &status_, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    if (std::FILE* f = note_end_ ? std::fopen(log_.c_str(), "a") : nullptr) {
      if (WIFSIGNALED(status_))
        std::fprintf(f, "[test harness] process %d ended by signal %d\n", pid_,
                     WTERMSIG(status_));
      else
        std::fprintf(f, "[test harness] process %d exited with status %d\n", pid_,
                     WEXITSTATUS(status_));
      std::fclose(f);
    }
  }
  return !reaped_;
}

void child_process::kill_hard() {
  if (!running()) return; // ended on its own: running() says how, in the log
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status_, 0);
  reaped_ = true;
}

int child_process::stop(int sig, std::chrono::milliseconds limit) {
  if (!reaped_) ::kill(pid_, sig);
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  if (!reaped_) return -1;
  return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
}

int64_t child_process::rss_bytes() const {
  std::ifstream f{"/proc/" + std::to_string(pid_) + "/status"};
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return 0;
}

std::string built(const std::string& relative) {
  return std::string{WEFT_BUILD_DIR} + "/" + relative;
}

removed_at_exit::~removed_at_exit() {
  for (auto& path : paths_) {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
}

} // namespace weft::test
