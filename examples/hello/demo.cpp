// weft-hello-demo: the quick start's main job until the order system lands.
// Against the local broker it creates the topics `words` and `loud-words`,
// writes 200,000 words, runs the `shout` service on a node, and shows what
// happens: progress while the node works, a sample of its output, and a
// summary (records/s, output complete and in per-key order).
//
//   weft-hello-demo [--bootstrap.servers=127.0.0.1:9092] [--demo.records=N]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>

#include <weft/kafka/admin.hpp>
#include <weft/kafka/consumer.hpp>
#include <weft/kafka/producer.hpp>
#include <weft/node.hpp>
#include <weft/version.hpp>

#include "shout.hpp"

using namespace std::chrono;

namespace {

const char* const words[] = {"order", "payment", "stock", "event", "actor",
                             "state", "stream",  "table", "shard", "epoch"};

int64_t end_offsets(weft::kafka::consumer& c, const std::string& topic, int parts) {
  int64_t sum = 0;
  for (int p = 0; p < parts; ++p)
    if (auto w = c.watermarks({topic, weft::partition_id{p}}, 5000)) sum += w->second;
  return sum;
}

int fail(const std::string& what) {
  std::fprintf(stderr, "weft-hello-demo: %s\n", what.c_str());
  return 1;
}

} // namespace

int main(int argc, char** argv) {
  // The demo's own key, and a default of its own for weft's application.id.
  weft::app_schema app;
  app.keys.push_back({"demo.records", weft::config_key::kind::integer, "200000",
                      "Records the demo writes and counts.", false, 1, 1000000000});
  app.defaults["application.id"] = "hello-demo";
  auto cfg = weft::config::load(argc, argv, app);
  if (!cfg) return fail(cfg.error().message());
  if (cfg->help_requested()) {
    std::printf("%s", weft::config::help_text(argv[0], app).c_str());
    return 0;
  }
  if (cfg->version_requested()) {
    std::printf("weft-hello-demo (weft %s)\n", weft::version);
    return 0;
  }
  const auto records = static_cast<size_t>(cfg->app_int("demo.records"));
  auto servers = cfg->get_string("bootstrap.servers");
  const int parts = 6;
  auto admin = weft::kafka::admin::create({{"bootstrap.servers", servers}});
  if (!admin) return fail(admin.error().message());
  if (auto s = (*admin)->wait_for_brokers(10000); !s)
    return fail("no Kafka at " + servers + ": " + s.message() +
                " (tools/weft-broker start starts the local one)");
  (void)(*admin)->delete_topics({"words", "loud-words"}, 30000);
  std::this_thread::sleep_for(milliseconds(500));
  if (auto s = (*admin)->ensure_topics(
          {{"words", parts, 1, {}}, {"loud-words", parts, 1, {}}}, 30000);
      !s)
    return fail(s.message());
  std::printf("== weft hello demo ==\n"
              "topics: words -> [shout service, %d tasks] -> loud-words\n",
              parts);

  std::printf("writing %zu words to `words` (keys user-0 .. user-999)...\n", records);
  {
    auto p = weft::kafka::producer::create({{"bootstrap.servers", servers}});
    if (!p) return fail(p.error().message());
    for (size_t i = 0; i < records; ++i) {
      auto key = "user-" + std::to_string(i % 1000);
      auto value = std::string{words[i % 10]} + " #" + std::to_string(i);
      while ((*p)->send("words", -1, key, value).code() == weft::errc::queue_full)
        std::this_thread::sleep_for(milliseconds(1));
    }
    if (auto s = (*p)->flush(60000); !s) return fail(s.message());
  }

  weft::node node{*cfg};
  node.add<hello::shout>();
  auto start = steady_clock::now();
  if (auto s = node.start(); !s) return fail(s.message());
  auto probe = weft::kafka::consumer::create(
      {{"bootstrap.servers", servers}, {"group.id", "hello-demo-probe"}});
  if (!probe) return fail(probe.error().message());
  int64_t out = 0;
  while (out < static_cast<int64_t>(records)) {
    std::this_thread::sleep_for(milliseconds(500));
    out = end_offsets(**probe, "loud-words", parts);
    auto m = node.metrics();
    std::printf("  %6.1f s  processed %8llu  written to loud-words %8lld  paused %llu\n",
                duration<double>(steady_clock::now() - start).count(),
                static_cast<unsigned long long>(m.processed), static_cast<long long>(out),
                static_cast<unsigned long long>(m.pauses));
    if (steady_clock::now() - start > minutes(5))
      return fail("no progress for 5 minutes");
  }
  auto secs = duration<double>(steady_clock::now() - start).count();
  node.request_stop();
  if (auto s = node.wait(); !s) return fail(s.message());

  // Read the output back: every word once, per key in the order written.
  auto reader = weft::kafka::consumer::create(
      {{"bootstrap.servers", servers}, {"group.id", "hello-demo-reader"}});
  if (!reader) return fail(reader.error().message());
  std::vector<weft::topic_partition> tps;
  for (int p = 0; p < parts; ++p)
    tps.push_back({"loud-words", weft::partition_id{p}});
  std::vector<std::unique_ptr<weft::kafka::partition_queue>> queues;
  for (auto& tp : tps)
    queues.push_back((*reader)->take_queue(tp));
  (void)(*reader)->assign(tps);
  std::map<std::string, long> last;
  size_t seen = 0, out_of_order = 0;
  std::vector<std::string> sample;
  for (size_t pi = 0; pi < tps.size(); ++pi) {
    auto& tp = tps[pi];
    auto& q = queues[pi];
    auto deadline = steady_clock::now() + seconds(30);
    size_t want = 0;
    if (auto w = (*reader)->watermarks(tp, 5000)) want = static_cast<size_t>(w->second);
    size_t got = 0;
    while (got < want && steady_clock::now() < deadline) {
      weft::kafka::message_batch b;
      if (q->drain(b, 10000) == 0) {
        std::this_thread::sleep_for(milliseconds(10));
        continue;
      }
      for (size_t i = 0; i < b.size(); ++i) {
        auto v = b.view(i);
        std::string key{*v.key}, value{*v.value};
        auto seq = std::stol(value.substr(value.find('#') + 1));
        auto& l = last.try_emplace(key, -1).first->second;
        if (seq <= l) ++out_of_order;
        l = seq;
        if (sample.size() < 5) sample.push_back(key + " -> " + value);
      }
      got += b.size();
    }
    seen += got;
  }
  std::printf("sample of loud-words:\n");
  for (auto& s : sample)
    std::printf("  %s\n", s.c_str());
  std::printf("summary: %zu words in, %zu out, %zu out of per-key order; %.0f records/s "
              "through the node (%.2f s)\n",
              records, seen, out_of_order, records / secs, secs);
  return seen == records && out_of_order == 0 ? 0 : 1;
}
