#include "weft/node_metrics_page.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>

namespace weft::detail {

namespace {

using metrics::metric_type;

double d(uint64_t v) {
  return static_cast<double>(v);
}
double d(int64_t v) {
  return static_cast<double>(v);
}
uint64_t get(const std::atomic<uint64_t>& a) {
  return a.load(std::memory_order_relaxed);
}
int64_t get(const std::atomic<int64_t>& a) {
  return a.load(std::memory_order_relaxed);
}

void write_tasks(metrics::exposition& page, const metrics_sources& src) {
  auto& ctx = *src.ctx;
  struct row {
    size_t service_index;
    std::string service, partition;
    const task_counters* c;
  };
  std::vector<row> rows;
  ctx.counters.tasks.visit([&](size_t s, int32_t p, const task_counters& c) {
    rows.push_back({s, ctx.services[s].name, std::to_string(p), &c});
  });
  auto family = [&](const char* name, const char* help,
                    const std::atomic<uint64_t> task_counters::*field, double scale) {
    page.family(name, metric_type::counter, help);
    for (auto& r : rows)
      page.sample({{"service", r.service}, {"partition", r.partition}},
                  d(get(r.c->*field)) * scale);
  };
  family("weft_records_processed_total",
         "Input records a task handled (bad ones included).", &task_counters::processed,
         1);
  // Per topic: the edges of the live map (a service -> its topics, a topic ->
  // the services reading it).
  page.family("weft_records_produced_total", metric_type::counter,
              "Records a task emitted to an output topic (repartitions included).");
  for (auto& r : rows) {
    auto& outs = ctx.services[r.service_index].output_topics;
    for (size_t i = 0; i < outs.size() && i < r.c->outputs; ++i)
      page.sample(
          {{"service", r.service}, {"partition", r.partition}, {"topic", outs[i]}},
          d(get(r.c->written[i])));
  }
  page.family("weft_records_read_total", metric_type::counter,
              "Records a task took from an input topic (tables included; a parked "
              "key's replays not again).");
  for (auto& r : rows) {
    auto& ins = ctx.services[r.service_index].input_topics;
    for (size_t i = 0; i < ins.size() && i < r.c->inputs; ++i)
      page.sample({{"service", r.service}, {"partition", r.partition}, {"topic", ins[i]}},
                  d(get(r.c->read[i])));
  }
  family("weft_changelog_records_produced_total",
         "Changelog records a task's stores wrote.", &task_counters::changelog, 1);
  page.family("weft_bad_records_total", metric_type::counter,
              "Bad records (undecodable, or the handler threw), by what "
              "bad.record.policy did with them.");
  for (auto& r : rows) {
    page.sample({{"service", r.service}, {"partition", r.partition}, {"action", "skip"}},
                d(get(r.c->skipped)));
    page.sample(
        {{"service", r.service}, {"partition", r.partition}, {"action", "dead_letter"}},
        d(get(r.c->dead_lettered)));
    if (ctx.services[r.service_index].policy == bad_record_policy::park)
      page.sample(
          {{"service", r.service}, {"partition", r.partition}, {"action", "park"}},
          d(get(r.c->parked)));
  }
  if (ctx.exactly_once)
    family("weft_task_input_held_seconds_total",
           "exactly_once: time a task held its input at epoch markers, until its "
           "caches were flushed and the producer held everything of the epoch.",
           &task_counters::held_us, 1e-6);
  if (ctx.exactly_once)
    family("weft_task_records_ahead_total",
           "exactly_once: records a task handled while the transaction of its "
           "previous epoch committed (its outputs wait in the task until the next "
           "transaction begins).",
           &task_counters::ahead, 1);
  if (ctx.exactly_once)
    family("weft_task_work_ahead_pauses_total",
           "exactly_once: epochs in which a task working ahead held "
           "epoch.work.ahead.bytes of output and paused until its previous epoch "
           "committed.",
           &task_counters::ahead_pauses, 1);
}

void write_parked(metrics::exposition& page, const metrics_sources& src) {
  auto& ctx = *src.ctx;
  page.family("weft_parked_keys", metric_type::gauge,
              "bad.record.policy=park: keys a task has parked now (their later "
              "records wait behind the failed one).");
  for (auto& [task, n] : src.parked)
    page.sample({{"service", ctx.services.at(task.first).name},
                 {"partition", std::to_string(task.second)}},
                d(n.first));
  page.family("weft_parked_records", metric_type::gauge,
              "bad.record.policy=park: records the parked keys hold now (each "
              "key's failed head record included).");
  for (auto& [task, n] : src.parked)
    page.sample({{"service", ctx.services.at(task.first).name},
                 {"partition", std::to_string(task.second)}},
                d(n.second));
}

void write_lags(metrics::exposition& page, const metrics_sources& src) {
  auto& ctx = *src.ctx;
  page.family("weft_consumer_lag_records", metric_type::gauge,
              "Records on the broker this node has not fetched yet, per input "
              "partition it owns (high watermark - position; -1 before the first "
              "fetch).");
  if (!ctx.consumer) return;
  std::set<topic_partition> inputs;
  for (auto u : ctx.owned_units())
    if (u < src.topo->units.size())
      for (auto& tp : src.topo->units[u].inputs)
        inputs.insert(tp);
  for (auto& tp : inputs) {
    int64_t lo = 0, hi = -1;
    // librdkafka's cached watermarks (from the fetches): no broker round trip.
    if (rd_kafka_get_watermark_offsets(ctx.consumer->handle(), tp.topic.c_str(),
                                       tp.partition.value(), &lo,
                                       &hi) != RD_KAFKA_RESP_ERR_NO_ERROR)
      hi = -1;
    auto pos = ctx.consumer->position(tp);
    int64_t lag = hi < 0 || pos < 0 ? -1 : std::max<int64_t>(0, hi - pos);
    page.sample(
        {{"topic", tp.topic}, {"partition", std::to_string(tp.partition.value())}},
        d(lag));
  }
}

void write_epochs(metrics::exposition& page, const metrics_sources& src) {
  auto& c = src.ctx->counters;
  page.family("weft_offset_commits_total", metric_type::counter,
              "Offset commits (under exactly_once: epoch transactions) this node made.");
  page.sample({}, d(get(c.commits)));
  page.family("weft_epochs_committed_total", metric_type::counter,
              "exactly_once: epochs whose transaction committed.");
  page.sample({}, d(get(c.epochs_committed)));
  page.family("weft_epochs_aborted_total", metric_type::counter,
              "exactly_once: epochs aborted and rolled back.");
  page.sample({}, d(get(c.epochs_aborted)));
  page.family("weft_epoch_commit_duration_seconds", metric_type::histogram,
              "exactly_once: from an epoch's snapshot marker to its transaction's "
              "commit.");
  page.sample({}, c.epoch_commit);
  page.family("weft_transaction_seconds_total", metric_type::counter,
              "exactly_once: time in the transaction calls (send offsets, commit, "
              "begin).");
  page.sample({}, d(get(c.txn_us_total)) * 1e-6);
  page.family("weft_enforced_processing_total", metric_type::counter,
              "Times a task processed ahead of an empty input (max.task.idle.ms).");
  page.sample({}, d(get(c.enforced_processing)));
}

void write_flow(metrics::exposition& page, const metrics_sources& src) {
  auto& ctx = *src.ctx;
  page.family("weft_partition_pauses_total", metric_type::counter,
              "Times flow control paused an input partition (its tasks fell behind).");
  for (auto& [tp, n] : ctx.counters.paused_partitions.read())
    page.sample(
        {{"topic", tp.topic}, {"partition", std::to_string(tp.partition.value())}}, d(n));
  page.family("weft_partitions_paused", metric_type::gauge,
              "Input partitions paused by flow control now.");
  size_t paused = 0;
  {
    std::lock_guard<std::mutex> guard{const_cast<node_context&>(ctx).paused_mu};
    paused = ctx.paused.size();
  }
  page.sample({}, d(static_cast<uint64_t>(paused)));
}

void write_restores(metrics::exposition& page, const metrics_sources& src) {
  auto& r = src.ctx->counters.restore;
  page.family("weft_restore_records_total", metric_type::counter,
              "Changelog records read by restores of this node's shards (rate() of it "
              "is the restore rate).");
  page.sample({}, d(get(r.records)));
  page.family("weft_restore_remaining_records", metric_type::gauge,
              "Changelog records the running restore still has to read.");
  page.sample({}, d(get(r.remaining)));
  page.family("weft_restoring_shards", metric_type::gauge, "Shards being restored now.");
  page.sample({}, d(get(r.shards_active)));
  page.family("weft_restored_shards_total", metric_type::counter,
              "Shards brought up to their changelogs' end.");
  page.sample({}, d(get(r.shards_done)));
  page.family("weft_restore_retries_total", metric_type::counter,
              "Restores tried again with new Kafka clients after failing on Kafka "
              "(e.g. a broker restarting).");
  page.sample({}, d(src.restore_retries));
}

void write_cluster(metrics::exposition& page, const metrics_sources& src) {
  auto& ctx = *src.ctx;
  auto& c = ctx.counters;
  page.family("weft_rebalances_total", metric_type::counter,
              "Assignments (generations) this node applied (1 for a node without a "
              "cluster).");
  page.sample({}, d(get(c.rebalances)));
  page.family("weft_generation", metric_type::gauge,
              "The cluster generation this node applied last.");
  page.sample({}, d(get(c.generation)));
  page.family("weft_rebalance_duration_seconds", metric_type::histogram,
              "Time to apply a generation (stop what moves away, start what comes).");
  page.sample({}, c.rebalance);
  page.family("weft_units_active", metric_type::gauge,
              "Units of work running on this node.");
  page.sample({}, d(static_cast<uint64_t>(ctx.owned_units().size())));
  page.family("weft_units", metric_type::gauge, "Units of work of the application.");
  page.sample({}, d(static_cast<uint64_t>(src.topo->units.size())));
  page.family("weft_standby_lag_records", metric_type::gauge,
              "Changelog records a standby shard on this node is behind its active "
              "(-1: not known yet).");
  for (auto& [task, lag] : src.standby_lags)
    page.sample({{"service", ctx.services.at(task.first).name},
                 {"partition", std::to_string(task.second)}},
                d(lag));
  page.family("weft_peer_messages_dropped_total", metric_type::counter,
              "Messages from other nodes dropped for exceeding their bounds "
              "(peer_bounds.hpp: too many units, an id or host too long); 0 "
              "without a cluster.");
  page.sample({}, d(get(c.peer_messages_dropped)));
}

void write_stores(metrics::exposition& page, const metrics_sources& src) {
  auto& ctx = *src.ctx;
  if (!ctx.stores) return;
  auto f = ctx.stores->stats();
  page.family("weft_store_shards", metric_type::gauge,
              "RocksDB instances open for a store (active, standby and global).");
  for (auto& [name, z] : f.stores)
    page.sample({{"store", name}}, d(z.shards));
  page.family("weft_store_sst_bytes", metric_type::gauge,
              "Table files of a store on disk, over its open shards.");
  for (auto& [name, z] : f.stores)
    page.sample({{"store", name}}, d(z.sst_bytes));
  page.family("weft_store_memtable_bytes", metric_type::gauge,
              "Memtables of a store, over its open shards.");
  for (auto& [name, z] : f.stores)
    page.sample({{"store", name}}, d(z.memtable_bytes));
  page.family("weft_store_keys", metric_type::gauge,
              "Keys in a store, RocksDB's estimate, over its open shards.");
  for (auto& [name, z] : f.stores)
    page.sample({{"store", name}}, d(z.keys));
  page.family("weft_rocksdb_block_cache_capacity_bytes", metric_type::gauge,
              "The node's shared RocksDB block cache (statestore.cache.max.bytes).");
  page.sample({}, d(f.cache_capacity_bytes));
  page.family("weft_rocksdb_block_cache_usage_bytes", metric_type::gauge,
              "Bytes held by the block cache: blocks and memtable reservations.");
  page.sample({}, d(f.cache_usage_bytes));
  page.family("weft_rocksdb_block_cache_pinned_bytes", metric_type::gauge,
              "Bytes of cache entries in use right now.");
  page.sample({}, d(f.cache_pinned_bytes));
  page.family("weft_rocksdb_write_buffer_bytes", metric_type::gauge,
              "Memtables of every store (rocksdb.write.buffer.max.bytes bounds them).");
  page.sample({}, d(f.write_buffer_bytes));
  page.family("weft_state_value_cache_bytes", metric_type::gauge,
              "Clean values the key-value stores' caches keep "
              "(statestore.value.cache.max.bytes bounds them).");
  page.sample({}, d(f.value_cache_bytes));
}

} // namespace

void write_node_metrics(metrics::exposition& page, const metrics_sources& src) {
  auto& ctx = *src.ctx;
  page.family("weft_node_info", metric_type::gauge,
              "Always 1; the labels say which node and application this is.");
  page.sample({{"node", src.node_id},
               {"application", ctx.application_id},
               {"guarantee", ctx.exactly_once ? "exactly_once" : "at_least_once"},
               {"clustered", ctx.clustered ? "true" : "false"}},
              1);
  write_tasks(page, src);
  write_parked(page, src);
  write_lags(page, src);
  write_epochs(page, src);
  write_flow(page, src);
  write_restores(page, src);
  write_cluster(page, src);
  write_stores(page, src);
  for (auto& fn : src.extra)
    fn(page);
}

} // namespace weft::detail
