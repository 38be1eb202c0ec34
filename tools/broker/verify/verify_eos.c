/* verify_eos: checks that the installed librdkafka (Debian's 2.0.2) and the
 * local broker started by tools/weft-broker agree on everything weft's
 * exactly-once design relies on:
 *
 *   0. protocol feature negotiation: no feature disabled (KIP-896 risk);
 *   1. idempotent produce (enable.idempotence=true): every record acked once,
 *      in order, no duplicates;
 *   2. transactions on a consume -> produce loop, the way weft does it
 *      (manual assign(), send_offsets_to_transaction() with the consumer's
 *      group metadata): commit makes outputs and input offsets visible,
 *      abort hides both; a read_committed consumer never sees aborted
 *      records, a read_uncommitted one does (so the filtering is the
 *      broker's transaction markers, not an accident);
 *   3. zombie fencing: a second producer with the same transactional.id
 *      fences the first, whose next commit fails with a fatal error, and
 *      the zombie's open transaction is aborted (whether the zombie's next
 *      request is a produce or a bare commit);
 *   4. log compaction on a cleanup.policy=compact topic.
 *
 * Usage: verify_eos BOOTSTRAP [CHECK...]   (e.g. 127.0.0.1:19192 fencing)
 * CHECK: features idempotent transactions fencing fencing-commit compaction
 * (default: all). Exit status 0 when every check passes. run.sh builds and
 * runs it.
 */
#include <librdkafka/rdkafka.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TMO 30000 /* ms, for every blocking call */

static const char *bootstrap;
static char suffix[64];
static int failures;

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "verify_eos: FATAL: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(2);
}

static void check(int ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("  [%s] ", ok ? "PASS" : "FAIL");
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
  if (!ok) failures++;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ config -- */

static void set(rd_kafka_conf_t *conf, const char *k, const char *v) {
  char err[512];
  if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK)
    die("config %s=%s: %s", k, v, err);
}

/* Errors reported asynchronously; fatal ones are what fencing looks like. */
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  (void)opaque;
  printf("    (%s error_cb: %s%s: %s)\n", rd_kafka_name(rk),
         err == RD_KAFKA_RESP_ERR__FATAL ? "FATAL " : "", rd_kafka_err2name(err),
         reason);
}

static rd_kafka_conf_t *base_conf(void) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  set(conf, "bootstrap.servers", bootstrap);
  set(conf, "socket.timeout.ms", "10000");
  rd_kafka_conf_set_error_cb(conf, error_cb);
  return conf;
}

static rd_kafka_t *new_client(rd_kafka_type_t type, rd_kafka_conf_t *conf) {
  char err[512];
  rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
  if (!rk) die("rd_kafka_new: %s", err);
  return rk;
}

/* ---------------------------------------------------------- producers -- */

static int dr_ok, dr_failed;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  (void)opaque;
  if (m->err) {
    dr_failed++;
    if (dr_failed <= 3)
      printf("    delivery failed: %s\n", rd_kafka_err2str(m->err));
  } else {
    dr_ok++;
  }
}

static rd_kafka_t *new_producer(const char *txn_id, int idempotent) {
  rd_kafka_conf_t *conf = base_conf();
  if (idempotent) set(conf, "enable.idempotence", "true");
  if (txn_id) {
    set(conf, "transactional.id", txn_id);
    set(conf, "transaction.timeout.ms", "60000");
  }
  set(conf, "linger.ms", "5");
  rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
  return new_client(RD_KAFKA_PRODUCER, conf);
}

/* Returns the produce call's error (not the delivery result). */
static rd_kafka_resp_err_t produce(rd_kafka_t *p, const char *topic, const char *key,
                                   const char *value) {
  rd_kafka_resp_err_t err;
  for (;;) {
    err = rd_kafka_producev(
        p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
        RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
        RD_KAFKA_V_VALUE((void *)value, value ? strlen(value) : 0),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) return err;
    rd_kafka_poll(p, 100);
  }
}

static void produce_or_die(rd_kafka_t *p, const char *topic, const char *key,
                           const char *value) {
  rd_kafka_resp_err_t err = produce(p, topic, key, value);
  if (err) die("produce to %s: %s", topic, rd_kafka_err2str(err));
}

static void txn_or_die(rd_kafka_error_t *error, const char *what) {
  if (error) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s: %s (%s)", what, rd_kafka_error_string(error),
             rd_kafka_error_name(error));
    rd_kafka_error_destroy(error);
    die("%s", msg);
  }
}

/* -------------------------------------------------------------- admin -- */

static void create_topic(const char *name, const char *const *configs) {
  char err[512];
  rd_kafka_t *rk = new_client(RD_KAFKA_PRODUCER, base_conf());
  rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(name, 1, 1, err, sizeof err);
  if (!nt) die("NewTopic %s: %s", name, err);
  for (const char *const *c = configs; c && c[0]; c += 2)
    if (rd_kafka_NewTopic_set_config(nt, c[0], c[1]))
      die("topic config %s=%s rejected", c[0], c[1]);
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, TMO);
  if (!ev) die("CreateTopics %s: no result within %d ms", name, TMO);
  if (rd_kafka_event_error(ev))
    die("CreateTopics %s: %s", name, rd_kafka_event_error_string(ev));
  size_t n;
  const rd_kafka_topic_result_t **res =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
  if (n != 1 || rd_kafka_topic_result_error(res[0]))
    die("CreateTopics %s: %s", name,
        n ? rd_kafka_topic_result_error_string(res[0]) : "no result");
  rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy(nt);
  rd_kafka_destroy(rk);
}

/* ----------------------------------------------------------- consumers -- */

/* A consumer of partition 0 of `topic` from `offset`, with manual assign(). */
static rd_kafka_t *new_consumer(const char *group, const char *isolation,
                                const char *topic, int64_t offset) {
  rd_kafka_conf_t *conf = base_conf();
  set(conf, "group.id", group);
  set(conf, "enable.auto.commit", "false");
  set(conf, "enable.auto.offset.store", "false");
  set(conf, "enable.partition.eof", "true");
  set(conf, "auto.offset.reset", "earliest");
  set(conf, "isolation.level", isolation);
  rd_kafka_t *c = new_client(RD_KAFKA_CONSUMER, conf);
  rd_kafka_poll_set_consumer(c);
  rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(parts, topic, 0)->offset = offset;
  rd_kafka_resp_err_t err = rd_kafka_assign(c, parts);
  if (err) die("assign %s: %s", topic, rd_kafka_err2str(err));
  rd_kafka_topic_partition_list_destroy(parts);
  return c;
}

typedef struct {
  int n;
  char values[256][64];
  char keys[256][32];
  int64_t last_offset;
} records_t;

/* Reads until end of partition (the LSO under read_committed) or `max` records. */
static void read_records(rd_kafka_t *c, records_t *out, int max, int stop_at_eof) {
  double deadline = now_s() + TMO / 1000.0;
  out->n = 0;
  while (now_s() < deadline && out->n < max) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      rd_kafka_message_destroy(m);
      if (stop_at_eof) return;
      continue;
    }
    if (m->err) die("consume: %s", rd_kafka_message_errstr(m));
    if (out->n < 256) {
      snprintf(out->values[out->n], sizeof out->values[0], "%.*s", (int)m->len,
               m->payload ? (const char *)m->payload : "");
      snprintf(out->keys[out->n], sizeof out->keys[0], "%.*s", (int)m->key_len,
               m->key ? (const char *)m->key : "");
    }
    out->last_offset = m->offset;
    out->n++;
    rd_kafka_message_destroy(m);
  }
  if (out->n < max && max != 1 << 30) die("read only %d of %d records in time", out->n, max);
}

static void read_topic(const char *topic, const char *isolation, records_t *out) {
  char group[128];
  snprintf(group, sizeof group, "verify-reader-%s", suffix);
  rd_kafka_t *c = new_consumer(group, isolation, topic, RD_KAFKA_OFFSET_BEGINNING);
  read_records(c, out, 1 << 30, 1);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
}

static int count_prefix(const records_t *r, const char *prefix) {
  int n = 0;
  for (int i = 0; i < r->n && i < 256; i++)
    if (strncmp(r->values[i], prefix, strlen(prefix)) == 0) n++;
  return n;
}

static int64_t committed_offset(rd_kafka_t *c, const char *topic) {
  rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(parts, topic, 0);
  rd_kafka_resp_err_t err = rd_kafka_committed(c, parts, TMO);
  if (err) die("committed: %s", rd_kafka_err2str(err));
  int64_t off = parts->elems[0].offset;
  rd_kafka_topic_partition_list_destroy(parts);
  return off;
}

/* ------------------------------------------------------------- checks -- */

/* librdkafka 2.0.2 gates features on exact old request versions (e.g.
 * MsgVer2 needs Produce v3); a broker without them (Kafka 4.x, KIP-896) makes
 * it silently disable features. Capture the feature negotiation. */
static char features[1024];
static int features_disabled;

static void feature_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  (void)rk;
  (void)level;
  (void)fac;
  const char *on = strstr(buf, "Enabling feature ");
  if (on && strlen(features) + strlen(on) < sizeof features - 2) {
    if (features[0]) strcat(features, ",");
    strcat(features, on + strlen("Enabling feature "));
  }
  if (strstr(buf, "Disabling feature")) features_disabled++;
}

static void check_features(void) {
  printf("0. protocol features librdkafka enables against this broker\n");
  rd_kafka_conf_t *conf = base_conf();
  set(conf, "debug", "feature");
  rd_kafka_conf_set_log_cb(conf, feature_log_cb);
  rd_kafka_t *rk = new_client(RD_KAFKA_PRODUCER, conf);
  const struct rd_kafka_metadata *md;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, NULL, &md, TMO);
  if (err) die("metadata: %s", rd_kafka_err2str(err));
  rd_kafka_metadata_destroy(md);
  rd_kafka_destroy(rk);
  check(features[0] && strstr(features, "MsgVer2") && strstr(features, "IdempotentProducer") &&
            strstr(features, "BrokerBalancedConsumer") && !features_disabled,
        "enabled: %s; disabled: %d", features[0] ? features : "(none seen)", features_disabled);
}

static void check_idempotent(void) {
  char topic[128], key[32], value[64];
  const int n = 1000;
  snprintf(topic, sizeof topic, "verify-idem-%s", suffix);
  printf("1. idempotent producer -> %s\n", topic);
  create_topic(topic, NULL);
  rd_kafka_t *p = new_producer(NULL, 1);
  dr_ok = dr_failed = 0;
  for (int i = 0; i < n; i++) {
    snprintf(key, sizeof key, "k%d", i % 10);
    snprintf(value, sizeof value, "idem-%04d", i);
    produce_or_die(p, topic, key, value);
  }
  rd_kafka_flush(p, TMO);
  char err[512];
  rd_kafka_resp_err_t fatal = rd_kafka_fatal_error(p, err, sizeof err);
  check(dr_ok == n && dr_failed == 0 && !fatal, "%d records acked (%d failed, fatal: %s)",
        dr_ok, dr_failed, fatal ? err : "none");
  rd_kafka_destroy(p);

  /* Read back: exactly n, in order, no duplicates. */
  char group[128];
  snprintf(group, sizeof group, "verify-reader-%s", suffix);
  rd_kafka_t *c = new_consumer(group, "read_uncommitted", topic, RD_KAFKA_OFFSET_BEGINNING);
  int got = 0, in_order = 1;
  double deadline = now_s() + TMO / 1000.0;
  while (now_s() < deadline) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      rd_kafka_message_destroy(m);
      if (got >= n) break;
      continue;
    }
    if (m->err) die("consume: %s", rd_kafka_message_errstr(m));
    snprintf(value, sizeof value, "idem-%04d", got);
    if (m->len != strlen(value) || memcmp(m->payload, value, m->len) != 0 || m->offset != got)
      in_order = 0;
    got++;
    rd_kafka_message_destroy(m);
  }
  check(got == n && in_order, "read back %d records, offsets 0..%d in order, no duplicates",
        got, got - 1);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
}

/* One transaction of the consume -> produce loop: reads `n` inputs, writes
 * "<tag>-<input>" outputs, sends the input offsets, then commits or aborts. */
static void txn_round(rd_kafka_t *p, rd_kafka_t *c, const char *in, const char *out,
                      const char *tag, int n, int commit) {
  records_t batch;
  txn_or_die(rd_kafka_begin_transaction(p), "begin_transaction");
  read_records(c, &batch, n, 0);
  for (int i = 0; i < batch.n; i++) {
    char v[96];
    snprintf(v, sizeof v, "%s-%s", tag, batch.values[i]);
    produce_or_die(p, out, batch.keys[i], v);
  }
  rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(offs, in, 0)->offset = batch.last_offset + 1;
  rd_kafka_consumer_group_metadata_t *gm = rd_kafka_consumer_group_metadata(c);
  txn_or_die(rd_kafka_send_offsets_to_transaction(p, offs, gm, TMO),
             "send_offsets_to_transaction");
  rd_kafka_consumer_group_metadata_destroy(gm);
  rd_kafka_topic_partition_list_destroy(offs);
  if (commit) {
    txn_or_die(rd_kafka_commit_transaction(p, TMO), "commit_transaction");
  } else {
    /* abort_transaction() purges records still queued in the client; flush
     * first so the aborted records really are in the log, to be hidden by
     * the abort marker rather than never sent. */
    rd_kafka_flush(p, TMO);
    txn_or_die(rd_kafka_abort_transaction(p, TMO), "abort_transaction");
  }
}

static void check_transactions(void) {
  char in[128], out[128], group[128], txn_id[128], key[32], value[64];
  snprintf(in, sizeof in, "verify-txn-in-%s", suffix);
  snprintf(out, sizeof out, "verify-txn-out-%s", suffix);
  snprintf(group, sizeof group, "verify-app-%s", suffix);
  snprintf(txn_id, sizeof txn_id, "verify-txn-%s", suffix);
  printf("2. transactions: %s -> %s, group %s, transactional.id %s\n", in, out, group, txn_id);
  create_topic(in, NULL);
  create_topic(out, NULL);

  rd_kafka_t *plain = new_producer(NULL, 1);
  for (int i = 0; i < 30; i++) {
    snprintf(key, sizeof key, "k%d", i);
    snprintf(value, sizeof value, "in%02d", i);
    produce_or_die(plain, in, key, value);
  }
  rd_kafka_flush(plain, TMO);
  rd_kafka_destroy(plain);

  rd_kafka_t *c = new_consumer(group, "read_committed", in, RD_KAFKA_OFFSET_BEGINNING);
  rd_kafka_t *p = new_producer(txn_id, 1);
  double t0 = now_s();
  txn_or_die(rd_kafka_init_transactions(p, TMO), "init_transactions");
  check(1, "init_transactions ok (%.2f s)", now_s() - t0);

  t0 = now_s();
  txn_round(p, c, in, out, "c1", 10, 1);
  int64_t off = committed_offset(c, in);
  check(off == 10, "txn 1 (10 records + send_offsets_to_transaction) committed in %.2f s; "
        "group offset %lld (want 10)", now_s() - t0, (long long)off);

  t0 = now_s();
  txn_round(p, c, in, out, "ab", 10, 0);
  off = committed_offset(c, in);
  check(off == 10, "txn 2 (10 records + offsets) aborted in %.2f s; group offset %lld "
        "(want 10: aborted offsets not committed)", now_s() - t0, (long long)off);

  /* After an abort the application rewinds to the committed position. */
  rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(parts, in, 0)->offset = off;
  rd_kafka_resp_err_t err = rd_kafka_assign(c, parts);
  if (err) die("re-assign: %s", rd_kafka_err2str(err));
  rd_kafka_topic_partition_list_destroy(parts);

  txn_round(p, c, in, out, "c3", 10, 1);
  off = committed_offset(c, in);
  check(off == 20, "txn 3 (re-reads inputs 10..19) committed; group offset %lld (want 20)",
        (long long)off);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  rd_kafka_destroy(p);

  records_t rc, ru;
  read_topic(out, "read_committed", &rc);
  int c1 = count_prefix(&rc, "c1-"), ab = count_prefix(&rc, "ab-"),
      c3 = count_prefix(&rc, "c3-");
  int ordered = rc.n == 20 && strcmp(rc.values[0], "c1-in00") == 0 &&
                strcmp(rc.values[10], "c3-in10") == 0 && strcmp(rc.values[19], "c3-in19") == 0;
  check(rc.n == 20 && c1 == 10 && c3 == 10 && ab == 0 && ordered,
        "read_committed sees %d records: %d from txn 1, %d from txn 3, %d aborted", rc.n, c1,
        c3, ab);
  read_topic(out, "read_uncommitted", &ru);
  check(ru.n == 30 && count_prefix(&ru, "ab-") == 10,
        "read_uncommitted sees %d records incl. %d aborted ones (the log holds them; markers "
        "hide them)", ru.n, count_prefix(&ru, "ab-"));
}

static void check_fencing(void) {
  char topic[128], txn_id[128], v[32], err[512];
  snprintf(topic, sizeof topic, "verify-fence-%s", suffix);
  snprintf(txn_id, sizeof txn_id, "verify-fence-%s", suffix);
  printf("3. zombie fencing: two producers with transactional.id %s\n", txn_id);
  create_topic(topic, NULL);

  rd_kafka_t *a = new_producer(txn_id, 1);
  txn_or_die(rd_kafka_init_transactions(a, TMO), "A init_transactions");
  txn_or_die(rd_kafka_begin_transaction(a), "A begin_transaction");
  for (int i = 0; i < 5; i++) {
    snprintf(v, sizeof v, "zombie-%d", i);
    produce_or_die(a, topic, "k", v);
  }
  rd_kafka_flush(a, TMO); /* A's records are in the log, its transaction open */

  rd_kafka_t *b = new_producer(txn_id, 1);
  double t0 = now_s();
  rd_kafka_error_t *e = rd_kafka_init_transactions(b, TMO);
  check(e == NULL, "B init_transactions with A's transaction open: %s (%.2f s)",
        e ? rd_kafka_error_string(e) : "ok", now_s() - t0);
  if (e) rd_kafka_error_destroy(e);
  txn_or_die(rd_kafka_begin_transaction(b), "B begin_transaction");
  for (int i = 0; i < 5; i++) {
    snprintf(v, sizeof v, "b-%d", i);
    produce_or_die(b, topic, "k", v);
  }
  txn_or_die(rd_kafka_commit_transaction(b, TMO), "B commit_transaction");
  check(1, "B committed 5 records");

  /* The zombie carries on: produce, then try to commit. Kafka 3.9's
   * transaction verification (KIP-890) sometimes answers the zombie's
   * produce with INVALID_TXN_STATE, which librdkafka treats as abortable,
   * not fatal (KAFKA-19690); the zombie then learns it is fenced when it
   * aborts. Either way it must end fatally fenced without committing. */
  rd_kafka_resp_err_t perr = produce(a, topic, "k", "zombie-late");
  printf("    A produce after being fenced: %s\n", rd_kafka_err2name(perr));
  e = rd_kafka_commit_transaction(a, TMO);
  check(e != NULL, "A commit_transaction refused: %s%s: %s",
        e ? rd_kafka_error_name(e) : "(no error!)",
        e ? (rd_kafka_error_is_fatal(e) ? " (fatal)"
             : rd_kafka_error_txn_requires_abort(e) ? " (abortable)" : "")
          : "",
        e ? rd_kafka_error_string(e) : "");
  if (e && !rd_kafka_error_is_fatal(e) && rd_kafka_error_txn_requires_abort(e)) {
    rd_kafka_error_t *e2 = rd_kafka_abort_transaction(a, TMO);
    printf("    A abort_transaction after the abortable error: %s%s\n",
           e2 ? rd_kafka_error_name(e2) : "ok",
           e2 && rd_kafka_error_is_fatal(e2) ? " (fatal)" : "");
    if (e2) rd_kafka_error_destroy(e2);
  }
  rd_kafka_resp_err_t fatal = rd_kafka_fatal_error(a, err, sizeof err);
  check(fatal == RD_KAFKA_RESP_ERR__FENCED || fatal == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
            fatal == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH,
        "A ends with a fatal fencing error: %s (%s)", rd_kafka_err2name(fatal),
        fatal ? err : "none");
  if (e) rd_kafka_error_destroy(e);
  rd_kafka_destroy(a);
  rd_kafka_destroy(b);

  records_t rc;
  read_topic(topic, "read_committed", &rc);
  check(rc.n == 5 && count_prefix(&rc, "b-") == 5 && count_prefix(&rc, "zombie") == 0,
        "read_committed sees %d records: %d from B, %d from the zombie A", rc.n,
        count_prefix(&rc, "b-"), count_prefix(&rc, "zombie"));
}

/* The zombie's next call is a bare commit (nothing new to produce): the
 * EndTxn request itself must be refused. */
static void check_fencing_commit_only(void) {
  char topic[128], txn_id[128], err[512];
  snprintf(topic, sizeof topic, "verify-fence2-%s", suffix);
  snprintf(txn_id, sizeof txn_id, "verify-fence2-%s", suffix);
  printf("3b. zombie fencing, zombie only commits: transactional.id %s\n", txn_id);
  create_topic(topic, NULL);
  rd_kafka_t *a = new_producer(txn_id, 1);
  txn_or_die(rd_kafka_init_transactions(a, TMO), "A init_transactions");
  txn_or_die(rd_kafka_begin_transaction(a), "A begin_transaction");
  produce_or_die(a, topic, "k", "zombie-0");
  rd_kafka_flush(a, TMO);
  rd_kafka_t *b = new_producer(txn_id, 1);
  txn_or_die(rd_kafka_init_transactions(b, TMO), "B init_transactions");
  rd_kafka_error_t *e = rd_kafka_commit_transaction(a, TMO);
  rd_kafka_resp_err_t fatal = rd_kafka_fatal_error(a, err, sizeof err);
  check(e != NULL && rd_kafka_error_is_fatal(e) && fatal == RD_KAFKA_RESP_ERR__FENCED,
        "A commit_transaction after B's init_transactions: %s (fatal %d): %s",
        e ? rd_kafka_error_name(e) : "(no error!)", e ? rd_kafka_error_is_fatal(e) : 0,
        e ? rd_kafka_error_string(e) : "");
  if (e) rd_kafka_error_destroy(e);
  rd_kafka_destroy(a);
  rd_kafka_destroy(b);
  records_t rc;
  read_topic(topic, "read_committed", &rc);
  check(rc.n == 0, "read_committed sees %d of the zombie's records", rc.n);
}

static void check_compaction(void) {
  char topic[128], key[32], value[64];
  snprintf(topic, sizeof topic, "verify-compact-%s", suffix);
  printf("4. compaction -> %s (cleanup.policy=compact, segment.ms=100)\n", topic);
  const char *const configs[] = {"cleanup.policy", "compact", "segment.ms", "100",
                                 "min.cleanable.dirty.ratio", "0.01",
                                 "delete.retention.ms", "100", NULL};
  create_topic(topic, configs);
  rd_kafka_t *p = new_producer(NULL, 1);
  dr_ok = dr_failed = 0;
  const int rounds = 5, keys = 10;
  for (int r = 0; r < rounds; r++) {
    for (int k = 0; k < keys; k++) {
      snprintf(key, sizeof key, "key%d", k);
      snprintf(value, sizeof value, "r%d-key%d", r, k);
      produce_or_die(p, topic, key, value);
    }
    rd_kafka_flush(p, TMO);
    nanosleep(&(struct timespec){0, 250 * 1000 * 1000}, NULL); /* next append rolls */
  }
  produce_or_die(p, topic, "roll", "roll"); /* rolls the last round's segment */
  rd_kafka_flush(p, TMO);
  rd_kafka_destroy(p);
  const int total = rounds * keys + 1;

  double t0 = now_s();
  records_t r;
  r.n = total;
  while (now_s() - t0 < 60 && r.n > keys + 1) {
    sleep(1);
    read_topic(topic, "read_uncommitted", &r);
  }
  int latest_ok = 1;
  for (int k = 0; k < keys; k++) {
    snprintf(key, sizeof key, "key%d", k);
    snprintf(value, sizeof value, "r%d-key%d", rounds - 1, k);
    const char *last = NULL;
    for (int i = 0; i < r.n && i < 256; i++)
      if (strcmp(r.keys[i], key) == 0) last = r.values[i];
    if (!last || strcmp(last, value) != 0) latest_ok = 0;
  }
  check(r.n == keys + 1 && latest_ok,
        "compacted from %d to %d records in %.1f s; every key keeps its latest value", total,
        r.n, now_s() - t0);
}

int main(int argc, char **argv) {
  static const struct {
    const char *name;
    void (*run)(void);
  } checks[] = {{"features", check_features},           {"idempotent", check_idempotent},
                {"transactions", check_transactions},   {"fencing", check_fencing},
                {"fencing-commit", check_fencing_commit_only}, {"compaction", check_compaction}};
  const size_t n_checks = sizeof checks / sizeof checks[0];
  if (argc < 2) {
    fprintf(stderr, "usage: %s BOOTSTRAP [CHECK...]\nchecks:", argv[0]);
    for (size_t i = 0; i < n_checks; i++) fprintf(stderr, " %s", checks[i].name);
    fprintf(stderr, " (default: all)\n");
    return 2;
  }
  bootstrap = argv[1];
  snprintf(suffix, sizeof suffix, "%ld-%d", (long)time(NULL), (int)getpid());
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("verify_eos: librdkafka %s, broker %s\n", rd_kafka_version_str(), bootstrap);
  double t0 = now_s();
  for (size_t i = 0; i < n_checks; i++) {
    int selected = argc == 2;
    for (int a = 2; a < argc; a++) selected |= strcmp(argv[a], checks[i].name) == 0;
    if (!selected) continue;
    double t = now_s();
    checks[i].run();
    printf("  (%.1f s)\n", now_s() - t);
  }
  printf("verify_eos: %s (%d failed check%s, %.1f s)\n", failures ? "FAILED" : "ALL PASSED",
         failures, failures == 1 ? "" : "s", now_s() - t0);
  return failures ? 1 : 0;
}
