// Benchmark (not a test): the state store layer on RocksDB, no broker.
//
//   (a) memory: 24 stores under one rocksdb_env (64 MiB cache, 32 MiB of
//       memtables charged to it) after writing 50 MB into them: resident
//       memory of the process, cache usage, memtable usage
//   (b) restore: 1,000,000 changelog-like changes (100,000 distinct 16-byte
//       keys, 100-byte values) in batches of 10,000 into a RocksDB kv store
//   (c) put: 1,000,000 writes of 100-byte values to random keys through the
//       full stack (metered -> caching -> changelogging -> RocksDB), flushing
//       every 10,000 writes as a task does at each commit; without the cache
//       for comparison; over 100,000 keys and over a hot set of 1,000
//
// Memory runs first, so that the restore's batches do not inflate the
// resident size. Prints the figures.
//
//   weft-bench-store [--dir=/tmp]

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "weft/state/layered_store.hpp"
#include "weft/state/rocksdb_env.hpp"
#include "weft/state/rocksdb_store.hpp"

using namespace weft::state;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr size_t total_changes = 1'000'000;
constexpr size_t distinct_keys = 100'000;
constexpr size_t batch_size = 10'000;
constexpr size_t value_size = 100;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// Resident set size of this process in bytes (VmRSS).
size_t rss_bytes() {
  std::ifstream in{"/proc/self/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

double mib(size_t bytes) {
  return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

/// A 16-byte key for index i.
std::string key_of(size_t i) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "key-%012zu", i % distinct_keys);
  return std::string{buf, 16};
}

/// A 100-byte value that differs per write.
std::string value_of(size_t i) {
  std::string v(value_size, 'v');
  std::snprintf(v.data(), v.size(), "%012zu", i);
  v[12] = 'v';
  return v;
}

void fail(const weft::status& st) {
  std::fprintf(stderr, "error: %s\n", st.to_string().c_str());
  std::exit(1);
}

template <class T>
T must(weft::result<T> r) {
  if (!r) fail(r.error());
  return std::move(*r);
}

struct counting_sink : changelog_sink {
  size_t records = 0;
  size_t bytes = 0;
  void log_change(std::string_view, std::string_view key,
                  std::optional<std::string_view> v, weft::timestamp_ms) override {
    ++records;
    bytes += key.size() + (v ? v->size() : 0);
  }
};

void bench_memory(const std::string& root) {
  size_t rss0 = rss_bytes();
  rocksdb_env env; // 64 MiB cache, 32 MiB memtables
  std::vector<std::unique_ptr<kv_store>> stores;
  for (int i = 0; i < 24; ++i)
    stores.push_back(
        must(open_rocksdb_kv(env, root + "/mem/" + std::to_string(i), "kv")));
  size_t rss_open = rss_bytes();
  constexpr size_t target = 50'000'000;
  size_t written = 0, n = 0;
  auto t0 = clock_type::now();
  while (written < target) {
    auto& s = stores[n % stores.size()];
    auto k = key_of(n * 7919);                              // spread over the key space
    k[0] = 'a' + static_cast<char>(n / distinct_keys % 26); // ~all distinct
    auto v = value_of(n);
    if (auto st = s->put(k, v); !st.ok()) fail(st);
    written += k.size() + v.size();
    if (++n % (1000 * stores.size()) == 0)
      for (auto& st : stores)
        if (auto f = st->flush(); !f.ok()) fail(f);
  }
  for (auto& s : stores)
    if (auto f = s->flush(); !f.ok()) fail(f);
  double dt = seconds_since(t0);
  size_t rss1 = rss_bytes();
  std::printf("memory: 24 stores, %.1f MB written (%zu records) in %.2f s\n",
              written / 1e6, n, dt);
  std::printf("  RSS before open %.1f MiB, after open %.1f MiB, after writes %.1f MiB "
              "(+%.1f MiB for the stores)\n",
              mib(rss0), mib(rss_open), mib(rss1), mib(rss1 - rss0));
  std::printf("  block cache usage %.1f MiB of %.1f MiB (pinned %.1f MiB); memtables "
              "%.1f MiB of %.1f MiB budget\n",
              mib(env.cache_usage()), mib(env.cache_capacity()),
              mib(env.cache_pinned_usage()), mib(env.write_buffer_usage()),
              mib(env.config().write_buffer_bytes));
}

void bench_restore(const std::string& root) {
  rocksdb_env env;
  auto s = must(open_rocksdb_kv(env, root + "/restore", "kv"));
  std::vector<change> batch(batch_size);
  double in_restore = 0;
  auto t0 = clock_type::now();
  for (size_t i = 0; i < total_changes; i += batch_size) {
    for (size_t j = 0; j < batch_size; ++j) { // build the batch (not timed)
      batch[j].key = key_of(i + j);
      batch[j].value = value_of(i + j);
    }
    auto t = clock_type::now();
    if (auto st = s->restore(batch, static_cast<int64_t>(i + batch_size)); !st.ok())
      fail(st);
    in_restore += seconds_since(t);
  }
  auto t = clock_type::now();
  if (auto st = s->flush(); !st.ok()) fail(st); // make it durable
  double flush = seconds_since(t);
  double wall = seconds_since(t0);
  std::printf(
      "restore: %zu changes (%zu keys, 16 B keys, 100 B values), batches of %zu\n",
      total_changes, distinct_keys, batch_size);
  std::printf(
      "  %.0f records/s in restore() (%.2f s); %.0f records/s including the final "
      "durable flush (%.2f s flush); %.2f s wall with batch building\n",
      total_changes / in_restore, in_restore, total_changes / (in_restore + flush), flush,
      wall);
  std::printf("  checkpoint %lld, ~%llu keys\n", static_cast<long long>(s->checkpoint()),
              static_cast<unsigned long long>(s->approximate_size()));
}

void bench_put(const std::string& root, bool caching, size_t key_count) {
  rocksdb_env env;
  counting_sink sink;
  auto base = must(open_rocksdb_kv(
      env, root + "/put-" + std::to_string(caching) + "-" + std::to_string(key_count),
      "kv"));
  auto s = make_kv_stack(std::move(base), &sink, {caching, 10'000});
  std::vector<std::string> keys(key_count);
  for (size_t i = 0; i < key_count; ++i)
    keys[i] = key_of(i);
  uint64_t rng = 88172645463325252ull; // xorshift: keys in random order
  std::string v = value_of(0);
  auto t0 = clock_type::now();
  for (size_t i = 0; i < total_changes; ++i) {
    std::memcpy(v.data(), &i, sizeof i);
    set_record_timestamp(*s, static_cast<weft::timestamp_ms>(i));
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    if (auto st = s->put(keys[rng % key_count], v); !st.ok()) fail(st);
    if ((i + 1) % batch_size == 0)
      if (auto st = s->flush(); !st.ok()) fail(st);
  }
  if (auto st = s->flush(); !st.ok()) fail(st);
  double dt = seconds_since(t0);
  auto m = s->metrics();
  std::printf("put (%s): %zu puts over %zu keys, flush every %zu: %.0f puts/s; "
              "%zu changelog records; mean put %.0f ns, mean flush %.2f ms\n",
              caching ? "metered->caching->changelogging->rocksdb"
                      : "metered->changelogging->rocksdb",
              total_changes, key_count, batch_size, total_changes / dt, sink.records,
              static_cast<double>(m.put_ns) / m.puts,
              static_cast<double>(m.flush_ns) / m.flushes / 1e6);
}

} // namespace

int main(int argc, char** argv) {
  std::string base = "/tmp";
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], "--dir=", 6) == 0) base = argv[i] + 6;
  std::string tmpl = base + "/weft-store-bench-XXXXXX";
  if (!mkdtemp(tmpl.data())) {
    std::perror("mkdtemp");
    return 1;
  }
  bench_memory(tmpl);
  bench_restore(tmpl);
  bench_put(tmpl, true, distinct_keys);
  bench_put(tmpl, false, distinct_keys);
  bench_put(tmpl, true, 1000); // a hot key set: the cache dedupes
  bench_put(tmpl, false, 1000);
  std::filesystem::remove_all(tmpl);
  return 0;
}
