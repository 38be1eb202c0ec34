#pragma once
// A fluent streams DSL in the manner of Kafka Streams' StreamsBuilder,
// KStream, KTable and KGroupedStream. It adds no new operator: it composes the
// operator services of aggregate.hpp and join.hpp, and stateless steps, into
// as few weft services as the data flow allows, and hands back their
// factories for node::add.
//
//   using str = weft::string_serde;
//   weft::streams_builder b{"shop"};                 // prefixes every name it makes
//   auto orders = b.stream<str, weft::json_serde<order>>("orders");
//   orders.filter([](auto& id, auto& o) { return o.amount > 0; })
//       .map_values<weft::double_serde>([](auto& id, auto& o) { return o.amount; })
//       .to("amounts");
//   orders.group_by<str>([](auto& id, auto& o) { return o.region; })
//       .count("orders-per-region")
//       .to_stream()
//       .to("region-counts");
//   for (auto& f : b.build()) node.add(f);
//
// makes two services (b.describe() prints this):
//
//   service shop-orders
//     reads    orders
//     steps    filter, map_values, to(amounts), group_by,
//              repartition(shop-orders-per-region)
//     writes   amounts, shop-orders-per-region (repartition)
//   service shop-orders-per-region
//     reads    shop-orders-per-region (repartition)
//     steps    count(shop-orders-per-region), to(region-counts)
//     stores   shop-orders-per-region-store (kv)
//     writes   region-counts
//
// The second reads <application.id>-shop-orders-per-region-repartition.
//
// What fuses. Everything connected in-process runs in ONE service, one
// record at a time, in the order the DSL calls were made: stateless steps
// (filter, filter_not, map, map_values, flat_map, flat_map_values,
// select_key, peek, branch, merge), the stateful operators (count, reduce,
// aggregate, windowed or not; every join) and the stateless steps after
// them (ktable::to_stream()). A stateful operator is an instance of the
// operator service of aggregate.hpp / join.hpp, embedded in the fused service
// (the "host"): the host declares the operator's stores and tables as its
// own, re-encodes each record that reaches the operator with the stream's
// serdes and calls the operator's on_record, and routes what the operator
// emits into the steps downstream of it instead of to a topic. So
//   orders.filter(..).group_by_key().windowed_by(w).count("n").to_stream()
//         .map_values(..).to("out")
// is one service with one window store, reading "orders", writing "out".
// Two streams that meet (a stream-stream join, merge) are read by the same
// service, as Kafka Streams puts co-partitioned inputs in one sub-topology;
// a stream used twice is read once, by one service, and each record goes
// through the first consumer's steps before the second's.
//
// Where topics appear. Only at:
// - to(topic): a sink, the user's topic (it must exist).
// - a repartition boundary: a stateful operator (aggregation, stream-table or
//   stream-stream join) on a stream whose key was changed (map, flat_map,
//   select_key, group_by) since it was last read from a topic. The upstream
//   service writes the internal topic <application.id>-<name>-repartition
//   (weft creates it) and a new service reads it; <name> is the operator's
//   name, with "-left"/"-right" for the two sides of a stream-stream join.
//   kstream::repartition() forces one. A global table join needs no
//   repartition (every task holds the whole table), and a stream whose key
//   did not change needs none either (group_by_key).
// - tables: stream-table and table-table joins read the table's topic as a
//   table input of the service that runs the join; global tables are read
//   by every node. Both must be source tables (streams_builder::table /
//   global_table); a table made by an aggregation has no topic to read, so
//   joining with it throws: write it with to_stream().to(topic) and read it
//   back with streams_builder::table(topic).
//
// Names, all deterministic:
// - a service reading user topic T: "<prefix>-T"; one reading repartition R:
//   "R"; a table-table join's: its operator's name ("-2", "-3" on clashes);
// - operators: "<prefix>-<name>" for a name given as weft::named (or a
//   string), else "<prefix>-<kind>-<n>" (kind: count, reduce, aggregate,
//   join, left-join, outer-join; n counts the builder's unnamed operators).
//   Stores and changelogs are named after the operator (aggregations:
//   "<op>-store", joins: see join.hpp), so an unnamed operator's state moves
//   when operators are added before it: name stateful operators.
// - repartitions: the operator's name (see above); repartition(): "<prefix>-
//   <name>" or "<prefix>-repartition-<n>".
//
// Types. Handles carry serdes, not just types: kstream<KS, VS>,
// ktable<KS, VS>, ... Steps that make new keys or values take the new serde
// as a template argument, which may be left out for std::string, int32_t,
// int64_t and double results (string_serde, int32_serde, int64_serde,
// double_serde): map_values<weft::json_serde<total>>(fn), map_values(fn).
// Functions take (key, value); filter, filter_not, peek, map_values and
// flat_map_values also accept (value). Windowed tables have windowed<K>
// keys (windows.hpp) with both ends set; session-windowed tables and
// table-table joins have optional values, because they emit tombstones.
//
// Records. A record whose key or value is null when its serde cannot hold a
// null (use optional_serde to see tombstones) is dropped at the source and
// counted (streams_drops()), as operators do; a record that fails to decode,
// and any exception from a user function, is a bad record for the whole
// service (bad.record.policy). Timestamps pass through stateless steps
// unchanged; operator results carry the operator's timestamps (join.hpp,
// aggregate.hpp). Headers are not forwarded.
//
// Lifecycle. A builder and its handles are used on one thread while the
// topology is defined. build() freezes it (later DSL calls throw
// weft_error(invalid_argument)); the factories it returns share the frozen
// topology and may be called from any thread, each call making an
// independent service instance. DSL calls check what they can at once: an
// operator that refuses its arguments (a bad window, a self-joined table), a
// duplicate name or a topic read with two sets of serdes throws
// weft_error(invalid_argument) from the call.
//
// Limitations.
// - Inputs that meet in one service must be co-partitioned (same key bytes,
//   same partition count), as for join.hpp's services.
// - Stream time is the fused service's task's (the largest timestamp of any
//   of its inputs), as in Kafka Streams, so a service reading several topics
//   closes windows by the fastest one.
// - Two aggregations of one re-keyed grouped stream each write their own
//   repartition topic (Kafka Streams without topology optimization does the
//   same); to share one, repartition() before group_by_key().
// - Two joins with the same source table in one service are refused by
//   build(): a table topic fills one store per task. Join once and branch.
// - An operator's explicit partition or headers are not carried on: a sink
//   partitions by the hash of the key, of the plain key for windowed keys
//   (as Kafka Streams' WindowedStreamPartitioner).

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/services/aggregate.hpp"
#include "weft/services/join.hpp"

namespace weft {

/// Names a stateful operator or a repartition, like Kafka Streams' Named.as:
/// count("per-region") or count(weft::named{"per-region"}); {} for a
/// counter-based name.
struct named {
  named() = default;
  named(const char* n) : name(n) {}
  named(std::string n) : name(std::move(n)) {}
  std::string name;
};

/// The serde a DSL step uses for results of type T when none is given;
/// `type` is void for types without one (give the serde explicitly).
template <class T>
struct default_serde {
  using type = void;
};
template <>
struct default_serde<std::string> {
  using type = string_serde;
};
template <>
struct default_serde<int64_t> {
  using type = int64_serde;
};
template <>
struct default_serde<int32_t> {
  using type = int32_serde;
};
template <>
struct default_serde<double> {
  using type = double_serde;
};

template <class KS, class VS>
class kstream;
template <class KS, class VS>
class ktable;
template <class KS, class VS>
class global_ktable;
template <class KS, class VS>
class grouped_stream;
template <class KS, class VS>
class time_windowed_stream;
template <class KS, class VS>
class session_windowed_stream;

/// Drop counts of a service made by streams_builder::build(): its own (null
/// keys and values at its sources) plus those of every operator it embeds.
/// For any other service, drops_of(s).
drop_counts streams_drops(const service_base& s);

namespace detail::dsl {

// -- types ------------------------------------------------------------------------

/// S, or T's default serde when S is void.
template <class S, class T>
struct pick_serde {
  static_assert(is_serde_v<S>, "streams DSL: the serde argument must be a weft serde");
  using type = S;
};
template <class T>
struct pick_serde<void, T> {
  static_assert(!std::is_void_v<typename default_serde<T>::type>,
                "streams DSL: no default serde for this result type; give it as the "
                "first template argument, e.g. map_values<weft::json_serde<T>>(fn)");
  using type = typename default_serde<T>::type;
};
template <class S, class T>
using pick_serde_t = typename pick_serde<S, T>::type;

/// Calls fn(key, value), or fn(value) for a function of the value only.
template <class Fn, class K, class V>
decltype(auto) call_kv(const Fn& fn, const K& k, const V& v) {
  if constexpr (std::is_invocable_v<const Fn&, const K&, const V&>)
    return fn(k, v);
  else
    return fn(v);
}
template <class Fn, class K, class V>
using kv_result_t = std::decay_t<decltype(call_kv(
    std::declval<const Fn&>(), std::declval<const K&>(), std::declval<const V&>()))>;

template <class Fn, class... Args>
using result_t = std::decay_t<std::invoke_result_t<const Fn&, const Args&...>>;

// -- the graph ----------------------------------------------------------------------

class host;

/// Passes one typed record downstream; timestamp 0 means "the current
/// record's", as for context::emit_bytes.
template <class K, class V>
using push_fn = std::function<void(const K&, const V&, timestamp_ms, context&)>;
/// Takes what an embedded operator emitted to one of its outputs.
using route_fn = std::function<void(std::optional<std::string>,
                                    std::optional<std::string>, timestamp_ms, context&)>;
/// Handles a record of one of the host's inputs.
using source_fn = std::function<void(const record_view&, context&)>;

enum class node_kind { source, step, sink, op };

/// A point of the topology. Nodes are created by DSL calls, owned by the
/// topology and never change once it is built; a host instance reads them to
/// wire its own copy of the data flow.
struct node {
  node(node_kind k, std::string l) : kind(k), label(std::move(l)) {}
  virtual ~node() = default;
  /// Sources and operators: sets the node up in a new host instance. Called
  /// once per host instance, in node order.
  virtual void instantiate(host&) const {}

  node_kind kind;
  std::string label;        ///< for describe()
  size_t id = 0;            ///< set by topology::add
  std::string service_name; ///< sources and operators: the name of a host they start
};

/// A typed stream position: what was computed there, and what consumes it.
template <class K, class V>
struct port : node {
  using node::node;
  /// The key changed since it was read from a topic: a stateful operator
  /// needs a repartition first.
  bool key_changed = false;
  /// Each consumer, as a function wiring it into a host instance.
  std::vector<std::function<push_fn<K, V>(host&)>> downstream;

  /// This port's push function in host `h`: calls every consumer in order.
  push_fn<K, V> make(host& h) const {
    std::vector<push_fn<K, V>> fns;
    for (auto& d : downstream)
      fns.push_back(d(h));
    if (fns.empty()) return [](const K&, const V&, timestamp_ms, context&) {};
    if (fns.size() == 1) return fns.front();
    return [fns](const K& k, const V& v, timestamp_ms ts, context& ctx) {
      for (auto& f : fns)
        f(k, v, ts, ctx);
    };
  }
};

/// Reads a topic (or a repartition) and decodes with KS and VS.
template <class KS, class VS>
struct source_port final : port<typename KS::value_type, typename VS::value_type> {
  source_port(input_ref i, std::string label)
    : port<typename KS::value_type, typename VS::value_type>(node_kind::source,
                                                             std::move(label)),
      in(std::move(i)) {}
  void instantiate(host& h) const override;
  input_ref in;
};

/// A stateful operator: the factory of an aggregate.hpp / join.hpp service,
/// made with placeholder input and output names the host maps.
struct op_node final : node {
  op_node(std::string label, service_factory f)
    : node(node_kind::op, std::move(label)), factory(std::move(f)) {}
  void instantiate(host& h) const override;
  service_factory factory;
  /// By the operator's output index: wires where its results go.
  std::vector<std::function<route_fn(host&)>> routes;
};

/// An operator service running inside a host.
struct embedded_op {
  std::unique_ptr<service_base> service;
  std::vector<route_fn> routes; ///< by output index; empty: results are dropped

  /// Calls on_record with a record of input `topic` (one of the operator's
  /// placeholder inputs); ts 0: the current record's timestamp.
  void feed(const std::string& topic, std::optional<std::string> key,
            std::optional<std::string> value, timestamp_ms ts, context& ctx);
  void table_update(const record_view& r, std::optional<std::string_view> old,
                    context& ctx);
  void punctuate(context& ctx);
};

class topology;

/// The service streams_builder::build() makes for each connected part of
/// the topology (see the top of this file).
class host final : public operator_base {
 public:
  host(std::string name, std::shared_ptr<const topology> t,
       const std::vector<size_t>& nodes);

  /// Declares input `in`; `fn` handles its records.
  void add_source(input_ref in, source_fn fn);
  /// The index of output `name` (keys partitioned without their last
  /// `key_suffix` bytes, see output_decl), declared on first use.
  size_t output(const std::string& name, output_kind kind, uint8_t key_suffix = 0);
  /// The embedded operator of op node `id`, created on first use.
  embedded_op& op(size_t id);
  /// The embedded operators, in creation order.
  std::vector<const service_base*> operators() const;

  using operator_base::drop_null_key;
  using operator_base::drop_null_value;

  void init(partition_id p) override;
  void on_record(const record_view& r, context& ctx) override;
  void on_table_update(const record_view& r, std::optional<std::string_view> old,
                       context& ctx) override;
  void on_punctuate(context& ctx) override;

 private:
  std::shared_ptr<const topology> topology_;
  std::vector<source_fn> sources_; ///< by input index
  std::map<size_t, std::unique_ptr<embedded_op>> ops_;
  std::vector<embedded_op*> order_;
  std::set<std::string> table_stores_;
  std::set<std::pair<std::string, std::string>> globals_;
};

/// The graph a builder and its handles share.
class topology {
 public:
  explicit topology(std::string prefix);

  const std::string& prefix() const { return prefix_; }
  /// Adds a node (assigning its id). Throws once the topology is built.
  void add(const std::shared_ptr<node>& n);
  /// Puts a and b in the same service.
  void link(const node& a, const node& b);
  const node& at(size_t id) const { return *nodes_.at(id); }
  /// Throws weft_error(invalid_argument) once the topology is built.
  void check_open() const;

  /// A fresh operator name (see the top of this file).
  std::string op_name(const named& n, const char* kind);
  /// A fresh name for an explicit repartition.
  std::string repartition_name(const named& n);

  /// The source node of user topic `topic`, if any.
  std::shared_ptr<node> find_source(const std::string& topic) const;
  void remember_source(const std::string& topic, std::shared_ptr<node> n);

  /// One factory per service; freezes the topology.
  std::vector<service_factory> build(const std::shared_ptr<const topology>& self);
  std::string describe(const std::shared_ptr<const topology>& self) const;

 private:
  struct part {
    std::string name;
    std::vector<size_t> nodes;
  };
  size_t find(size_t id) const;
  std::vector<part> parts() const;
  void claim(const std::string& name);

  std::string prefix_;
  std::vector<std::shared_ptr<node>> nodes_;
  mutable std::vector<size_t> parent_; ///< union-find over in-process links
  std::set<std::string> names_;
  std::map<std::string, std::shared_ptr<node>> sources_;
  size_t unnamed_ = 0;
  bool built_ = false;
};

// -- typed wiring -------------------------------------------------------------------

template <class S>
typename S::value_type decode_field(const std::optional<std::string_view>& bytes,
                                    const char* what) {
  auto v = decode<S>(bytes);
  if (!v)
    throw weft_error{
        status{errc::bad_record, std::string{what} + ": " + v.error().message()}};
  return std::move(v).value();
}

template <class KS, class VS>
void source_port<KS, VS>::instantiate(host& h) const {
  auto push = this->make(h);
  host* self = &h;
  h.add_source(in, [push, self](const record_view& r, context& ctx) {
    if (!r.key && !is_nullable_serde_v<KS>) return self->drop_null_key(r);
    if (!r.value && !is_nullable_serde_v<VS>) return self->drop_null_value(r);
    auto k = decode_field<KS>(r.key, "key");
    auto v = decode_field<VS>(r.value, "value");
    push(k, v, r.timestamp, ctx);
  });
}

template <class K, class V>
std::shared_ptr<port<K, V>> add_port(topology& t, std::string label, bool key_changed) {
  auto p = std::make_shared<port<K, V>>(node_kind::step, std::move(label));
  p->key_changed = key_changed;
  t.add(p);
  return p;
}

/// A step after `from`: wrap(next) turns the step's downstream push function
/// into a push function for `from`'s records.
template <class K2, class V2, class K, class V, class Wrap>
std::shared_ptr<port<K2, V2>> add_step(topology& t, port<K, V>& from, std::string label,
                                       bool key_changed, Wrap wrap) {
  auto to = add_port<K2, V2>(t, std::move(label), key_changed);
  t.link(from, *to);
  from.downstream.push_back(
      [to, wrap](host& h) -> push_fn<K, V> { return wrap(to->make(h)); });
  return to;
}

/// The source of `in`, read with KS and VS; one per user topic.
template <class KS, class VS>
std::shared_ptr<port<typename KS::value_type, typename VS::value_type>>
source(topology& t, input_ref in) {
  using src = source_port<KS, VS>;
  if (!in.internal) {
    if (auto existing = t.find_source(in.name)) {
      auto typed = std::dynamic_pointer_cast<src>(existing);
      if (!typed)
        throw weft_error{
            status{errc::invalid_argument, "streams_builder: topic '" + in.name +
                                               "' is read twice with different serdes"}};
      return typed;
    }
  }
  auto label = in.internal ? in.name + " (repartition)" : in.name;
  auto s = std::make_shared<src>(in, label);
  s->service_name = in.internal ? in.name : t.prefix() + "-" + in.name;
  t.add(s);
  if (!in.internal) t.remember_source(in.name, s);
  return s;
}

/// Writes `from`'s records to output `name` (a user topic, or a repartition).
template <class KS, class VS>
void add_sink(topology& t, port<typename KS::value_type, typename VS::value_type>& from,
              const std::string& name, output_kind kind) {
  using K = typename KS::value_type;
  using V = typename VS::value_type;
  auto label =
      kind == output_kind::repartition ? "repartition(" + name + ")" : "to(" + name + ")";
  auto sink = std::make_shared<node>(node_kind::sink, std::move(label));
  t.add(sink);
  t.link(from, *sink);
  from.downstream.push_back([name, kind](host& h) -> push_fn<K, V> {
    const size_t index = h.output(name, kind, partition_key_suffix_v<KS>);
    return [index](const K& k, const V& v, timestamp_ms ts, context& ctx) {
      ctx.emit_bytes(index, encode<KS>(k), encode<VS>(v), -1, ts);
    };
  });
}

/// A repartition through internal topic `name`: the stream as read back.
template <class KS, class VS>
std::shared_ptr<port<typename KS::value_type, typename VS::value_type>>
repartition(topology& t, port<typename KS::value_type, typename VS::value_type>& from,
            const std::string& name) {
  add_sink<KS, VS>(t, from, name, output_kind::repartition);
  return source<KS, VS>(t, repartitioned(name));
}

/// `in` itself if its key did not change, else `in` repartitioned through
/// `name`: what a stateful operator may read.
template <class KS, class VS>
std::shared_ptr<port<typename KS::value_type, typename VS::value_type>> co_partition(
    topology& t,
    const std::shared_ptr<port<typename KS::value_type, typename VS::value_type>>& in,
    const std::string& name) {
  if (!in->key_changed) return in;
  return repartition<KS, VS>(t, *in, name);
}

/// An operator's placeholder input and output names: they never reach
/// Kafka, the host maps them ('#' keeps them apart from real topics).
inline std::string op_input(const std::string& op, const char* side = "in") {
  return op + "#" + side;
}
inline std::string op_output(const std::string& op) {
  return op + "#out";
}

/// Makes one instance of an operator, so that an operator refusing its
/// arguments (a bad window, a self-joined table) throws from the DSL call,
/// before anything was added to the topology.
inline service_factory validated(service_factory f) {
  f();
  return f;
}

/// Adds the operator made by `f` (see validated()).
inline std::shared_ptr<op_node> add_op(topology& t, std::string label,
                                       const std::string& name, service_factory f) {
  auto op = std::make_shared<op_node>(std::move(label), std::move(f));
  op->service_name = name;
  t.add(op);
  return op;
}

/// Feeds `from`'s records to `op`'s placeholder input `topic`, encoded with
/// KS and VS.
template <class KS, class VS>
void feed(topology& t, port<typename KS::value_type, typename VS::value_type>& from,
          const op_node& op, std::string topic) {
  using K = typename KS::value_type;
  using V = typename VS::value_type;
  t.link(from, op);
  const size_t id = op.id;
  from.downstream.push_back([id, topic](host& h) -> push_fn<K, V> {
    embedded_op* e = &h.op(id);
    return [e, topic](const K& k, const V& v, timestamp_ms ts, context& ctx) {
      e->feed(topic, encode<KS>(k), encode<VS>(v), ts, ctx);
    };
  });
}

struct no_fix {
  template <class T>
  void operator()(T&) const {}
};

/// The port of `op`'s (next) output, decoded with OKS and OVS; fix(key)
/// completes what the key serde cannot carry.
template <class OKS, class OVS, class Fix = no_fix>
std::shared_ptr<port<typename OKS::value_type, typename OVS::value_type>>
add_output_port(topology& t, op_node& op, bool key_changed, Fix fix = {}) {
  using K = typename OKS::value_type;
  using V = typename OVS::value_type;
  auto out = add_port<K, V>(t, "table", key_changed);
  t.link(op, *out);
  op.routes.push_back([out, fix](host& h) -> route_fn {
    if (out->downstream.empty()) return {}; // nothing reads it: skip decoding
    auto push = out->make(h);
    return [push, fix](std::optional<std::string> kb, std::optional<std::string> vb,
                       timestamp_ms ts, context& ctx) {
      std::optional<std::string_view> kv, vv;
      if (kb) kv = *kb;
      if (vb) vv = *vb;
      auto k = decode_field<OKS>(kv, "operator result key");
      auto v = decode_field<OVS>(vv, "operator result value");
      fix(k);
      push(k, v, ts, ctx);
    };
  });
  return out;
}

/// Fills in the end of a time window, which time_windowed_serde does not carry.
struct window_end {
  timestamp_ms size;
  template <class K>
  void operator()(windowed<K>& k) const {
    k.end = k.start <= std::numeric_limits<timestamp_ms>::max() - size
                ? k.start + size
                : std::numeric_limits<timestamp_ms>::max();
  }
};

/// An operator with one stream input, co-partitioned first; `make(name,
/// input, output)` returns its factory.
template <class KS, class VS, class OKS, class OVS, class Make, class Fix = no_fix>
std::shared_ptr<port<typename OKS::value_type, typename OVS::value_type>> keyed_op(
    topology& t,
    const std::shared_ptr<port<typename KS::value_type, typename VS::value_type>>& in,
    const std::string& name, const char* kind, Make make, Fix fix = {}) {
  auto f = validated(make(name, input_ref{op_input(name)}, op_output(name)));
  auto src = co_partition<KS, VS>(t, in, name);
  auto op = add_op(t, std::string{kind} + "(" + name + ")", name, std::move(f));
  feed<KS, VS>(t, *src, *op, op_input(name));
  return add_output_port<OKS, OVS>(t, *op, false, fix);
}

} // namespace detail::dsl

// -- handles ------------------------------------------------------------------------

/// A record stream (KStream). A cheap handle: copies refer to the same
/// stream position; each call adds a step after it and returns the new
/// position, so one stream may feed several branches.
template <class KS, class VS>
class kstream {
 public:
  static_assert(is_serde_v<KS> && is_serde_v<VS>,
                "kstream<KS, VS>: both parameters must be weft serdes");
  using key_serde = KS;
  using value_serde = VS;
  using key_type = typename KS::value_type;
  using value_type = typename VS::value_type;
  using port_type = detail::dsl::port<key_type, value_type>;
  using predicate = std::function<bool(const key_type&, const value_type&)>;

  /// Made by streams_builder and the other handles.
  kstream(std::shared_ptr<detail::dsl::topology> t, std::shared_ptr<port_type> p)
    : t_(std::move(t)), port_(std::move(p)) {}

  // -- stateless steps (fused) --------------------------------------------------

  /// Keeps records for which pred(key, value) holds.
  template <class Pred>
  kstream filter(Pred pred) const {
    return keep("filter", [pred](auto& k, auto& v) {
      return static_cast<bool>(detail::dsl::call_kv(pred, k, v));
    });
  }

  /// Keeps records for which pred(key, value) does not hold.
  template <class Pred>
  kstream filter_not(Pred pred) const {
    return keep("filter_not", [pred](auto& k, auto& v) {
      return !static_cast<bool>(detail::dsl::call_kv(pred, k, v));
    });
  }

  /// fn(key, value) -> std::pair<K2, V2>: new key and value. Changes the key.
  template <class KS2 = void, class VS2 = void, class Fn>
  auto map(Fn fn) const {
    using r = detail::dsl::result_t<Fn, key_type, value_type>;
    using nks = detail::dsl::pick_serde_t<KS2, typename r::first_type>;
    using nvs = detail::dsl::pick_serde_t<VS2, typename r::second_type>;
    using k2 = typename nks::value_type;
    using v2 = typename nvs::value_type;
    auto p = detail::dsl::add_step<k2, v2>(
        *t_, *port_, "map", true, [fn](detail::dsl::push_fn<k2, v2> next) {
          return [fn, next](const key_type& k, const value_type& v, timestamp_ms ts,
                            context& ctx) {
            auto kv = fn(k, v);
            next(kv.first, kv.second, ts, ctx);
          };
        });
    return kstream<nks, nvs>{t_, p};
  }

  /// fn(key, value) or fn(value) -> V2: a new value, same key.
  template <class VS2 = void, class Fn>
  auto map_values(Fn fn) const {
    using nvs =
        detail::dsl::pick_serde_t<VS2,
                                  detail::dsl::kv_result_t<Fn, key_type, value_type>>;
    using v2 = typename nvs::value_type;
    auto p = detail::dsl::add_step<key_type, v2>(
        *t_, *port_, "map_values", port_->key_changed,
        [fn](detail::dsl::push_fn<key_type, v2> next) {
          return [fn, next](const key_type& k, const value_type& v, timestamp_ms ts,
                            context& ctx) {
            next(k, detail::dsl::call_kv(fn, k, v), ts, ctx);
          };
        });
    return kstream<KS, nvs>{t_, p};
  }

  /// fn(key, value) -> a container of std::pair<K2, V2>: zero or more
  /// records per record. Changes the key.
  template <class KS2 = void, class VS2 = void, class Fn>
  auto flat_map(Fn fn) const {
    using r = typename detail::dsl::result_t<Fn, key_type, value_type>::value_type;
    using nks = detail::dsl::pick_serde_t<KS2, std::decay_t<typename r::first_type>>;
    using nvs = detail::dsl::pick_serde_t<VS2, std::decay_t<typename r::second_type>>;
    using k2 = typename nks::value_type;
    using v2 = typename nvs::value_type;
    auto p = detail::dsl::add_step<k2, v2>(
        *t_, *port_, "flat_map", true, [fn](detail::dsl::push_fn<k2, v2> next) {
          return [fn, next](const key_type& k, const value_type& v, timestamp_ms ts,
                            context& ctx) {
            for (auto& kv : fn(k, v))
              next(kv.first, kv.second, ts, ctx);
          };
        });
    return kstream<nks, nvs>{t_, p};
  }

  /// fn(key, value) or fn(value) -> a container of V2: zero or more records
  /// per record, same key.
  template <class VS2 = void, class Fn>
  auto flat_map_values(Fn fn) const {
    using r = typename detail::dsl::kv_result_t<Fn, key_type, value_type>::value_type;
    using nvs = detail::dsl::pick_serde_t<VS2, std::decay_t<r>>;
    using v2 = typename nvs::value_type;
    auto p = detail::dsl::add_step<key_type, v2>(
        *t_, *port_, "flat_map_values", port_->key_changed,
        [fn](detail::dsl::push_fn<key_type, v2> next) {
          return [fn, next](const key_type& k, const value_type& v, timestamp_ms ts,
                            context& ctx) {
            for (auto& v2v : detail::dsl::call_kv(fn, k, v))
              next(k, v2v, ts, ctx);
          };
        });
    return kstream<KS, nvs>{t_, p};
  }

  /// fn(key, value) -> K2: a new key, same value.
  template <class KS2 = void, class Fn>
  auto select_key(Fn fn) const {
    using nks =
        detail::dsl::pick_serde_t<KS2, detail::dsl::result_t<Fn, key_type, value_type>>;
    return select_key_as<nks>("select_key", std::move(fn));
  }

  /// Calls fn(key, value) (or fn(value)) for each record and passes it on.
  template <class Fn>
  kstream peek(Fn fn) const {
    auto p = detail::dsl::add_step<key_type, value_type>(
        *t_, *port_, "peek", port_->key_changed,
        [fn](detail::dsl::push_fn<key_type, value_type> next) {
          return [fn, next](const key_type& k, const value_type& v, timestamp_ms ts,
                            context& ctx) {
            detail::dsl::call_kv(fn, k, v);
            next(k, v, ts, ctx);
          };
        });
    return kstream{t_, p};
  }

  /// One stream per predicate: each record goes to the first branch whose
  /// predicate holds, and nowhere if none does (end with an always-true
  /// predicate for a default branch).
  std::vector<kstream> branch(std::vector<predicate> preds) const {
    t_->check_open();
    std::vector<std::shared_ptr<port_type>> outs;
    std::vector<kstream> result;
    for (size_t i = 0; i < preds.size(); ++i) {
      auto p = detail::dsl::add_port<key_type, value_type>(
          *t_, "branch-" + std::to_string(i), port_->key_changed);
      t_->link(*port_, *p);
      outs.push_back(p);
      result.emplace_back(t_, p);
    }
    port_->downstream.push_back(
        [preds,
         outs](detail::dsl::host& h) -> detail::dsl::push_fn<key_type, value_type> {
          std::vector<detail::dsl::push_fn<key_type, value_type>> next;
          for (auto& o : outs)
            next.push_back(o->make(h));
          return [preds, next](const key_type& k, const value_type& v, timestamp_ms ts,
                               context& ctx) {
            for (size_t i = 0; i < preds.size(); ++i)
              if (preds[i](k, v)) return next[i](k, v, ts, ctx);
          };
        });
    return result;
  }

  /// The records of both streams, as they come; one service reads both.
  kstream merge(const kstream& other) const {
    auto p = detail::dsl::add_port<key_type, value_type>(
        *t_, "merge", port_->key_changed || other.port_->key_changed);
    for (auto* from : {port_.get(), other.port_.get()}) {
      t_->link(*from, *p);
      from->downstream.push_back(
          [p](detail::dsl::host& h) -> detail::dsl::push_fn<key_type, value_type> {
            return p->make(h);
          });
    }
    return kstream{t_, p};
  }

  // -- boundaries ---------------------------------------------------------------

  /// Writes the records to topic `topic` (which must exist).
  void to(std::string topic) const {
    detail::dsl::add_sink<KS, VS>(*t_, *port_, topic, output_kind::external);
  }

  /// Writes the records to a repartition topic and reads them back in a new
  /// service, partitioned by their (current) key.
  kstream repartition(named n = {}) const {
    auto name = t_->repartition_name(n);
    return kstream{t_, detail::dsl::repartition<KS, VS>(*t_, *port_, name)};
  }

  /// Groups by the current key for an aggregation (repartitioned first if
  /// the key changed).
  grouped_stream<KS, VS> group_by_key() const { return {t_, port_}; }

  /// Groups by key_fn(key, value) -> K2; the aggregation reads a repartition.
  template <class KS2 = void, class Fn>
  auto group_by(Fn key_fn) const {
    using nks =
        detail::dsl::pick_serde_t<KS2, detail::dsl::result_t<Fn, key_type, value_type>>;
    return select_key_as<nks>("group_by", std::move(key_fn)).group_by_key();
  }

  // -- joins --------------------------------------------------------------------

  /// Inner stream-table join (see join.hpp): joiner(const V&, const TV&) -> VR.
  /// `table` must be a source table.
  template <class VRS = void, class TVS, class Joiner>
  auto join(const ktable<KS, TVS>& table, Joiner joiner, named n = {}) const {
    using vrs = detail::dsl::pick_serde_t<
        VRS, detail::dsl::result_t<Joiner, value_type, typename TVS::value_type>>;
    return table_join<vrs>(table, "join", n, [&](auto name, auto in, auto out) {
      return stream_table_join<KS, VS, TVS, vrs>(name, in, table.topic(), out, joiner);
    });
  }

  /// Left stream-table join: joiner(const V&, const std::optional<TV>&) -> VR.
  template <class VRS = void, class TVS, class Joiner>
  auto left_join(const ktable<KS, TVS>& table, Joiner joiner, named n = {}) const {
    using vrs = detail::dsl::pick_serde_t<
        VRS, detail::dsl::result_t<Joiner, value_type,
                                   std::optional<typename TVS::value_type>>>;
    return table_join<vrs>(table, "left-join", n, [&](auto name, auto in, auto out) {
      return stream_table_left_join<KS, VS, TVS, vrs>(name, in, table.topic(), out,
                                                      joiner);
    });
  }

  /// Inner stream-global table join: key_fn(key, value) -> GK (or
  /// std::optional<GK>) picks the row, joiner(const V&, const GV&) -> VR.
  /// Needs no repartition.
  template <class VRS = void, class GKS, class GVS, class KeyFn, class Joiner>
  auto join(const global_ktable<GKS, GVS>& table, KeyFn key_fn, Joiner joiner,
            named n = {}) const {
    using vrs = detail::dsl::pick_serde_t<
        VRS, detail::dsl::result_t<Joiner, value_type, typename GVS::value_type>>;
    return global_join<vrs>("join", n, [&](auto name, auto in, auto out) {
      return global_table_join<KS, VS, GKS, GVS, vrs>(name, in, table.topic(), out,
                                                      key_fn, joiner);
    });
  }

  /// Left stream-global table join: joiner(const V&, const std::optional<GV>&) -> VR.
  template <class VRS = void, class GKS, class GVS, class KeyFn, class Joiner>
  auto left_join(const global_ktable<GKS, GVS>& table, KeyFn key_fn, Joiner joiner,
                 named n = {}) const {
    using vrs = detail::dsl::pick_serde_t<
        VRS, detail::dsl::result_t<Joiner, value_type,
                                   std::optional<typename GVS::value_type>>>;
    return global_join<vrs>("left-join", n, [&](auto name, auto in, auto out) {
      return global_table_left_join<KS, VS, GKS, GVS, vrs>(name, in, table.topic(), out,
                                                           key_fn, joiner);
    });
  }

  /// Inner windowed stream-stream join: joiner(const V&, const RV&) -> VR.
  template <class VRS = void, class RVS, class Joiner>
  auto join(const kstream<KS, RVS>& other, Joiner joiner, join_window w,
            named n = {}) const {
    using vrs = detail::dsl::pick_serde_t<
        VRS, detail::dsl::result_t<Joiner, value_type, typename RVS::value_type>>;
    return stream_join<vrs>(other, "join", n, [&](auto name, auto l, auto r, auto out) {
      return stream_stream_join<KS, VS, RVS, vrs>(name, l, r, out, w, joiner);
    });
  }

  /// Left windowed stream-stream join:
  /// joiner(const V&, const std::optional<RV>&) -> VR.
  template <class VRS = void, class RVS, class Joiner>
  auto left_join(const kstream<KS, RVS>& other, Joiner joiner, join_window w,
                 named n = {}) const {
    using vrs = detail::dsl::pick_serde_t<
        VRS, detail::dsl::result_t<Joiner, value_type,
                                   std::optional<typename RVS::value_type>>>;
    return stream_join<vrs>(
        other, "left-join", n, [&](auto name, auto l, auto r, auto out) {
          return stream_stream_left_join<KS, VS, RVS, vrs>(name, l, r, out, w, joiner);
        });
  }

  /// Outer windowed stream-stream join:
  /// joiner(const std::optional<V>&, const std::optional<RV>&) -> VR.
  template <class VRS = void, class RVS, class Joiner>
  auto outer_join(const kstream<KS, RVS>& other, Joiner joiner, join_window w,
                  named n = {}) const {
    using vrs = detail::dsl::pick_serde_t<
        VRS, detail::dsl::result_t<Joiner, std::optional<value_type>,
                                   std::optional<typename RVS::value_type>>>;
    return stream_join<vrs>(
        other, "outer-join", n, [&](auto name, auto l, auto r, auto out) {
          return stream_stream_outer_join<KS, VS, RVS, vrs>(name, l, r, out, w, joiner);
        });
  }

 private:
  template <class, class>
  friend class kstream;

  template <class Keep>
  kstream keep(const char* label, Keep keep_fn) const {
    auto p = detail::dsl::add_step<key_type, value_type>(
        *t_, *port_, label, port_->key_changed,
        [keep_fn](detail::dsl::push_fn<key_type, value_type> next) {
          return [keep_fn, next](const key_type& k, const value_type& v, timestamp_ms ts,
                                 context& ctx) {
            if (keep_fn(k, v)) next(k, v, ts, ctx);
          };
        });
    return kstream{t_, p};
  }

  template <class NKS, class Fn>
  kstream<NKS, VS> select_key_as(const char* label, Fn fn) const {
    using k2 = typename NKS::value_type;
    auto p = detail::dsl::add_step<k2, value_type>(
        *t_, *port_, label, true, [fn](detail::dsl::push_fn<k2, value_type> next) {
          return [fn, next](const key_type& k, const value_type& v, timestamp_ms ts,
                            context& ctx) { next(fn(k, v), v, ts, ctx); };
        });
    return kstream<NKS, VS>{t_, p};
  }

  template <class VRS, class TVS, class Make>
  kstream<KS, VRS> table_join(const ktable<KS, TVS>& table, const char* kind,
                              const named& n, Make make) const {
    if (!table.is_source())
      throw weft_error{status{
          errc::invalid_argument,
          "streams DSL: a stream can only join a source table (streams_builder::table); "
          "write this table with to_stream().to(topic) and read it back with "
          "streams_builder::table(topic)"}};
    auto name = t_->op_name(n, kind);
    return {t_, detail::dsl::keyed_op<KS, VS, KS, VRS>(*t_, port_, name, kind, make)};
  }

  template <class VRS, class Make>
  kstream<KS, VRS> global_join(const char* kind, const named& n, Make make) const {
    auto name = t_->op_name(n, kind);
    auto f = detail::dsl::validated(
        make(name, input_ref{detail::dsl::op_input(name)}, detail::dsl::op_output(name)));
    auto op = detail::dsl::add_op(*t_, std::string{kind} + "(" + name + ", global)", name,
                                  std::move(f));
    detail::dsl::feed<KS, VS>(*t_, *port_, *op, detail::dsl::op_input(name));
    // Keyed like its input: a changed key stays changed (nothing was repartitioned).
    return {t_, detail::dsl::add_output_port<KS, VRS>(*t_, *op, port_->key_changed)};
  }

  template <class VRS, class RVS, class Make>
  kstream<KS, VRS> stream_join(const kstream<KS, RVS>& other, const char* kind,
                               const named& n, Make make) const {
    auto name = t_->op_name(n, kind);
    const auto left_in = detail::dsl::op_input(name, "left");
    const auto right_in = detail::dsl::op_input(name, "right");
    auto f = detail::dsl::validated(make(name, input_ref{left_in}, input_ref{right_in},
                                         detail::dsl::op_output(name)));
    auto left = detail::dsl::co_partition<KS, VS>(*t_, port_, name + "-left");
    auto right = detail::dsl::co_partition<KS, RVS>(*t_, other.port_, name + "-right");
    auto op = detail::dsl::add_op(*t_, std::string{kind} + "(" + name + ")", name,
                                  std::move(f));
    detail::dsl::feed<KS, VS>(*t_, *left, *op, left_in);
    detail::dsl::feed<KS, RVS>(*t_, *right, *op, right_in);
    return {t_, detail::dsl::add_output_port<KS, VRS>(*t_, *op, false)};
  }

  std::shared_ptr<detail::dsl::topology> t_;
  std::shared_ptr<port_type> port_;
};

/// A changelog table (KTable): a source table (streams_builder::table),
/// which joins read as a table input, or the result of an aggregation or a
/// table-table join, which to_stream() turns into its stream of updates.
template <class KS, class VS>
class ktable {
 public:
  using key_serde = KS;
  using value_serde = VS;
  using key_type = typename KS::value_type;
  using value_type = typename VS::value_type;
  using port_type = detail::dsl::port<key_type, value_type>;

  /// A source table reading `topic`.
  ktable(std::shared_ptr<detail::dsl::topology> t, std::string topic)
    : t_(std::move(t)), topic_(std::move(topic)) {}
  /// A table computed at `p`.
  ktable(std::shared_ptr<detail::dsl::topology> t, std::shared_ptr<port_type> p)
    : t_(std::move(t)), port_(std::move(p)) {}

  bool is_source() const { return !port_; }
  /// A source table's topic ("" for a computed table).
  const std::string& topic() const { return topic_; }

  /// The table's updates as a stream, in the same service. A source table's
  /// topic is read as a stream with streams_builder::stream instead (throws).
  kstream<KS, VS> to_stream() const {
    if (!port_)
      throw weft_error{status{errc::invalid_argument,
                              "streams DSL: to_stream() of source table '" + topic_ +
                                  "': read the topic with "
                                  "streams_builder::stream instead"}};
    return {t_, port_};
  }

  /// Inner table-table join of two source tables (see join.hpp): a table of
  /// joiner(const V&, const RV&) -> VR, nullopt where a row was deleted.
  template <class VRS = void, class RVS, class Joiner>
  auto join(const ktable<KS, RVS>& other, Joiner joiner, named n = {}) const {
    using vrs = detail::dsl::pick_serde_t<
        VRS, detail::dsl::result_t<Joiner, value_type, typename RVS::value_type>>;
    return table_join<vrs>(other, "join", n, [&](auto name, auto out) {
      return table_table_join<KS, VS, RVS, vrs>(name, topic_, other.topic(), out, joiner);
    });
  }

  /// Left table-table join: joiner(const V&, const std::optional<RV>&) -> VR.
  template <class VRS = void, class RVS, class Joiner>
  auto left_join(const ktable<KS, RVS>& other, Joiner joiner, named n = {}) const {
    using vrs = detail::dsl::pick_serde_t<
        VRS, detail::dsl::result_t<Joiner, value_type,
                                   std::optional<typename RVS::value_type>>>;
    return table_join<vrs>(other, "left-join", n, [&](auto name, auto out) {
      return table_table_left_join<KS, VS, RVS, vrs>(name, topic_, other.topic(), out,
                                                     joiner);
    });
  }

  /// Outer table-table join:
  /// joiner(const std::optional<V>&, const std::optional<RV>&) -> VR.
  template <class VRS = void, class RVS, class Joiner>
  auto outer_join(const ktable<KS, RVS>& other, Joiner joiner, named n = {}) const {
    using vrs = detail::dsl::pick_serde_t<
        VRS, detail::dsl::result_t<Joiner, std::optional<value_type>,
                                   std::optional<typename RVS::value_type>>>;
    return table_join<vrs>(other, "outer-join", n, [&](auto name, auto out) {
      return table_table_outer_join<KS, VS, RVS, vrs>(name, topic_, other.topic(), out,
                                                      joiner);
    });
  }

 private:
  template <class VRS, class RVS, class Make>
  ktable<KS, optional_serde<VRS>> table_join(const ktable<KS, RVS>& other,
                                             const char* kind, const named& n,
                                             Make make) const {
    if (!is_source() || !other.is_source())
      throw weft_error{
          status{errc::invalid_argument,
                 "streams DSL: table-table joins take source tables "
                 "(streams_builder::table); write a computed table with "
                 "to_stream().to(topic) and read it back with streams_builder::table"}};
    auto name = t_->op_name(n, kind);
    auto f = detail::dsl::validated(make(name, detail::dsl::op_output(name)));
    auto op = detail::dsl::add_op(*t_, std::string{kind} + "(" + name + ")", name,
                                  std::move(f));
    return {t_, detail::dsl::add_output_port<KS, optional_serde<VRS>>(*t_, *op, false)};
  }

  std::shared_ptr<detail::dsl::topology> t_;
  std::shared_ptr<port_type> port_;
  std::string topic_;
};

/// A table every node holds whole (GlobalKTable), for stream-global joins.
template <class KS, class VS>
class global_ktable {
 public:
  using key_serde = KS;
  using value_serde = VS;
  explicit global_ktable(std::string topic) : topic_(std::move(topic)) {}
  const std::string& topic() const { return topic_; }

 private:
  std::string topic_;
};

/// A stream grouped by its key, for count, reduce and aggregate
/// (KGroupedStream). The aggregation repartitions first if the key changed.
template <class KS, class VS>
class grouped_stream {
 public:
  using key_type = typename KS::value_type;
  using value_type = typename VS::value_type;
  using port_type = detail::dsl::port<key_type, value_type>;

  grouped_stream(std::shared_ptr<detail::dsl::topology> t, std::shared_ptr<port_type> p)
    : t_(std::move(t)), port_(std::move(p)) {}

  /// Records per key: a table key -> int64.
  ktable<KS, int64_serde> count(named n = {}) const {
    return op<KS, int64_serde>("count", n, [](auto name, auto in, auto out) {
      return weft::count<KS, VS>(name, in, out);
    });
  }

  /// Combines each key's values with reducer(agg, value) -> V.
  template <class Reducer>
  ktable<KS, VS> reduce(Reducer reducer, named n = {}) const {
    return op<KS, VS>("reduce", n, [&](auto name, auto in, auto out) {
      return weft::reduce<KS, VS>(name, in, out, reducer);
    });
  }

  /// agg = adder(key, value, agg) from init(); AS defaults to init()'s type's serde.
  template <class AS = void, class Init, class Adder>
  auto aggregate(Init init, Adder adder, named n = {}) const {
    using as = detail::dsl::pick_serde_t<AS, detail::dsl::result_t<Init>>;
    return op<KS, as>("aggregate", n, [&](auto name, auto in, auto out) {
      return weft::aggregate<KS, VS, as>(name, in, out, init, adder);
    });
  }

  /// Per time window (tumbling_window or hopping_window).
  time_windowed_stream<KS, VS> windowed_by(time_windows w) const {
    return {t_, port_, w};
  }
  /// Per session.
  session_windowed_stream<KS, VS> windowed_by(session_window_spec s) const {
    return {t_, port_, s};
  }

 private:
  template <class OKS, class OVS, class Make>
  ktable<OKS, OVS> op(const char* kind, const named& n, Make make) const {
    auto name = t_->op_name(n, kind);
    return {t_, detail::dsl::keyed_op<KS, VS, OKS, OVS>(*t_, port_, name, kind, make)};
  }

  std::shared_ptr<detail::dsl::topology> t_;
  std::shared_ptr<port_type> port_;
};

/// A grouped stream in time windows (TimeWindowedKStream): results are
/// tables keyed by windowed<K> (start and end set).
template <class KS, class VS>
class time_windowed_stream {
 public:
  using key_type = typename KS::value_type;
  using value_type = typename VS::value_type;
  using port_type = detail::dsl::port<key_type, value_type>;
  using key_serde = time_windowed_serde<KS>;

  time_windowed_stream(std::shared_ptr<detail::dsl::topology> t,
                       std::shared_ptr<port_type> p, time_windows w)
    : t_(std::move(t)), port_(std::move(p)), w_(w) {}

  /// Records per key and window. emit::on_window_close: once, when the
  /// window closes (see aggregate.hpp).
  ktable<key_serde, int64_serde> count(named n = {}, emit mode = emit::on_update) const {
    return op<int64_serde>("count", n, [&](auto name, auto in, auto out) {
      return weft::count<KS, VS>(name, in, out, w_, mode);
    });
  }

  template <class Reducer>
  ktable<key_serde, VS> reduce(Reducer reducer, named n = {},
                               emit mode = emit::on_update) const {
    return op<VS>("reduce", n, [&](auto name, auto in, auto out) {
      return weft::reduce<KS, VS>(name, in, out, w_, reducer, mode);
    });
  }

  template <class AS = void, class Init, class Adder>
  auto aggregate(Init init, Adder adder, named n = {},
                 emit mode = emit::on_update) const {
    using as = detail::dsl::pick_serde_t<AS, detail::dsl::result_t<Init>>;
    return op<as>("aggregate", n, [&](auto name, auto in, auto out) {
      return weft::aggregate<KS, VS, as>(name, in, out, w_, init, adder, mode);
    });
  }

 private:
  template <class OVS, class Make>
  ktable<key_serde, OVS> op(const char* kind, const named& n, Make make) const {
    auto name = t_->op_name(n, kind);
    return {t_, detail::dsl::keyed_op<KS, VS, key_serde, OVS>(
                    *t_, port_, name, kind, make, detail::dsl::window_end{w_.size})};
  }

  std::shared_ptr<detail::dsl::topology> t_;
  std::shared_ptr<port_type> port_;
  time_windows w_;
};

/// A grouped stream in session windows (SessionWindowedKStream): results are
/// tables keyed by windowed<K> (the session's first and last timestamps),
/// with optional values: nullopt is the tombstone of a merged-away session.
template <class KS, class VS>
class session_windowed_stream {
 public:
  using key_type = typename KS::value_type;
  using value_type = typename VS::value_type;
  using port_type = detail::dsl::port<key_type, value_type>;
  using key_serde = session_windowed_serde<KS>;

  session_windowed_stream(std::shared_ptr<detail::dsl::topology> t,
                          std::shared_ptr<port_type> p, session_window_spec s)
    : t_(std::move(t)), port_(std::move(p)), s_(s) {}

  ktable<key_serde, optional_serde<int64_serde>>
  count(named n = {}, emit mode = emit::on_update) const {
    return op<int64_serde>("count", n, [&](auto name, auto in, auto out) {
      return weft::count<KS, VS>(name, in, out, s_, mode);
    });
  }

  /// The reducer also merges sessions.
  template <class Reducer>
  ktable<key_serde, optional_serde<VS>> reduce(Reducer reducer, named n = {},
                                               emit mode = emit::on_update) const {
    return op<VS>("reduce", n, [&](auto name, auto in, auto out) {
      return weft::reduce<KS, VS>(name, in, out, s_, reducer, mode);
    });
  }

  /// merger(key, a, b) combines the aggregates of sessions a record bridges.
  template <class AS = void, class Init, class Adder, class Merger>
  auto aggregate(Init init, Adder adder, Merger merger, named n = {},
                 emit mode = emit::on_update) const {
    using as = detail::dsl::pick_serde_t<AS, detail::dsl::result_t<Init>>;
    return op<as>("aggregate", n, [&](auto name, auto in, auto out) {
      return weft::aggregate<KS, VS, as>(name, in, out, s_, init, adder, merger, mode);
    });
  }

 private:
  template <class OVS, class Make>
  ktable<key_serde, optional_serde<OVS>> op(const char* kind, const named& n,
                                            Make make) const {
    auto name = t_->op_name(n, kind);
    return {t_, detail::dsl::keyed_op<KS, VS, key_serde, optional_serde<OVS>>(
                    *t_, port_, name, kind, make)};
  }

  std::shared_ptr<detail::dsl::topology> t_;
  std::shared_ptr<port_type> port_;
  session_window_spec s_;
};

/// Where a topology starts (StreamsBuilder): reads topics as streams and
/// tables, and build()s the services. `prefix` (non-empty) starts the name
/// of every service, operator and repartition it makes, so several builders
/// can share a node and an application.id.
class streams_builder {
 public:
  explicit streams_builder(std::string prefix);

  /// Topic `topic` as a stream; every call for the same topic names the same
  /// stream (and must give the same serdes).
  template <class KS, class VS>
  kstream<KS, VS> stream(std::string topic) {
    return {t_, detail::dsl::source<KS, VS>(*t_, input_ref{std::move(topic)})};
  }

  /// Topic `topic` as a table, for stream-table and table-table joins; the
  /// join's service reads it as a table input (co-partitioned with the
  /// stream side).
  template <class KS, class VS>
  ktable<KS, VS> table(std::string topic) {
    static_assert(detail::store_serde_v<KS> && detail::store_serde_v<VS>,
                  "streams_builder::table<KS, VS>: non-nullable serdes (tables store "
                  "rows; a null value deletes)");
    t_->check_open();
    return {t_, std::move(topic)};
  }

  /// Topic `topic` as a global table, for stream-global joins.
  template <class KS, class VS>
  global_ktable<KS, VS> global_table(std::string topic) {
    t_->check_open();
    return global_ktable<KS, VS>{std::move(topic)};
  }

  /// One factory per service of the topology (add each to a node), in a
  /// fixed order: by the first node of each. Freezes the topology.
  std::vector<service_factory> build();

  /// A description of the services build() makes: names, inputs, fused
  /// steps, stores, outputs (see the top of this file).
  std::string describe() const;

  const std::string& prefix() const { return t_->prefix(); }

 private:
  std::shared_ptr<detail::dsl::topology> t_;
};

} // namespace weft
