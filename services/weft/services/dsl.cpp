#include "weft/services/dsl.hpp"

#include <algorithm>
#include <sstream>

namespace weft {

namespace detail::dsl {

namespace {

[[noreturn]] void invalid(std::string message) {
  throw weft_error{status{errc::invalid_argument, std::move(message)}};
}

/// What an embedded operator sees of the runtime: the host's task, except
/// that its outputs are routed into the host's steps instead of to topics.
class op_context final : public context {
 public:
  op_context(context& outer, embedded_op& op) : outer_(outer), op_(op) {}

  const record_view& current() const override { return outer_.current(); }
  const std::string& application_id() const override { return outer_.application_id(); }
  state::kv_store& kv_store(std::string_view name) override {
    return outer_.kv_store(name);
  }
  state::window_store& window_store(std::string_view name) override {
    return outer_.window_store(name);
  }
  state::session_store& session_store(std::string_view name) override {
    return outer_.session_store(name);
  }
  const state::kv_store& global_store(std::string_view name) override {
    return outer_.global_store(name);
  }
  timestamp_ms stream_time() const override { return outer_.stream_time(); }
  timestamp_ms wall_time() const override { return outer_.wall_time(); }

  // The partition and headers an operator asks for are not carried on: the
  // operators of aggregate.hpp and join.hpp use neither, and the steps
  // downstream decide where their own records go.
  void emit_bytes(size_t output_index, std::optional<std::string> key,
                  std::optional<std::string> value, int32_t, timestamp_ms ts,
                  std::vector<header>) override {
    if (output_index < op_.routes.size() && op_.routes[output_index])
      op_.routes[output_index](std::move(key), std::move(value), ts, outer_);
  }

 private:
  context& outer_;
  embedded_op& op_;
};

} // namespace

// -- embedded_op ------------------------------------------------------------------

void embedded_op::feed(const std::string& topic, std::optional<std::string> key,
                       std::optional<std::string> value, timestamp_ms ts, context& ctx) {
  const auto& current = ctx.current();
  record_view r;
  r.topic = topic;
  r.partition = current.partition;
  r.offset = current.offset;
  r.timestamp = ts != 0 ? ts : current.timestamp;
  if (key) r.key = std::string_view{*key};
  if (value) r.value = std::string_view{*value};
  r.headers_ = current.headers_;
  op_context oc{ctx, *this};
  service->on_record(r, oc);
}

void embedded_op::table_update(const record_view& r, std::optional<std::string_view> old,
                               context& ctx) {
  op_context oc{ctx, *this};
  service->on_table_update(r, old, oc);
}

void embedded_op::punctuate(context& ctx) {
  op_context oc{ctx, *this};
  service->on_punctuate(oc);
}

void op_node::instantiate(host& h) const {
  h.op(id);
}

// -- host -------------------------------------------------------------------------

host::host(std::string name, std::shared_ptr<const topology> t,
           const std::vector<size_t>& nodes)
  : operator_base(std::move(name)), topology_(std::move(t)) {
  for (auto id : nodes)
    topology_->at(id).instantiate(*this);
}

void host::add_source(input_ref in, source_fn fn) {
  auto index = add_input_ref(std::move(in));
  if (sources_.size() <= index) sources_.resize(index + 1);
  sources_[index] = std::move(fn);
}

size_t host::output(const std::string& name, output_kind kind, uint8_t key_suffix) {
  auto& outs = outputs();
  for (size_t i = 0; i < outs.size(); ++i)
    if (outs[i].name == name && outs[i].kind == kind && outs[i].key_suffix == key_suffix)
      return i;
  return add_output(name, kind, key_suffix);
}

embedded_op& host::op(size_t id) {
  if (auto i = ops_.find(id); i != ops_.end()) return *i->second;
  auto& n = static_cast<const op_node&>(topology_->at(id));
  auto e = std::make_unique<embedded_op>();
  e->service = n.factory();
  auto& svc = *e->service;
  // The host is the service the runtime sees, so it declares what the
  // operator would have: its tables (each also a store) and its stores.
  for (auto& t : svc.tables()) {
    if (t.global) {
      // Global stores are named after their topic and shared: declare once.
      if (globals_.emplace(t.topic, t.store).second) add_global_table(t.topic, t.store);
    } else {
      // A table topic fills one store per task (test_driver and the runtime
      // route it to one), so two joins cannot each have their own copy.
      for (auto& mine : tables())
        if (!mine.global && mine.topic == t.topic)
          invalid("streams DSL: service '" + name() + "' would read table '" + t.topic +
                  "' twice (" + mine.store + ", " + t.store +
                  "); join the table once and branch the result");
      add_table(t.topic, t.store);
      table_stores_.insert(t.store);
    }
  }
  // The operator's stream-time store is the host's (the task's time).
  for (auto& s : svc.stores())
    if (!s.internal && !table_stores_.count(s.name)) add_store(s);
  if (auto every = svc.punctuate_interval_ms();
      every > 0 && (punctuate_interval_ms() == 0 || every < punctuate_interval_ms()))
    set_punctuate_interval(every);

  auto* raw = e.get();
  ops_.emplace(id, std::move(e));
  order_.push_back(raw);
  // Wiring the routes may create the operators downstream, which therefore
  // come after this one in order_ (and are punctuated after it).
  raw->routes.resize(svc.outputs().size());
  for (size_t i = 0; i < n.routes.size() && i < raw->routes.size(); ++i)
    raw->routes[i] = n.routes[i](*this);
  return *raw;
}

std::vector<const service_base*> host::operators() const {
  std::vector<const service_base*> out;
  for (auto* e : order_)
    out.push_back(e->service.get());
  return out;
}

void host::init(partition_id p) {
  for (auto* e : order_)
    e->service->init(p);
}

void host::on_record(const record_view& r, context& ctx) {
  auto index = input_index(r, ctx);
  if (index < 0) return; // a table topic: on_table_update handled it
  auto& fn = sources_[static_cast<size_t>(index)];
  if (fn) fn(r, ctx);
}

void host::on_table_update(const record_view& r, std::optional<std::string_view> old,
                           context& ctx) {
  for (auto* e : order_)
    for (auto& t : e->service->tables())
      if (!t.global && t.topic == r.topic) {
        e->table_update(r, old, ctx);
        break;
      }
}

void host::on_punctuate(context& ctx) {
  for (auto* e : order_)
    e->punctuate(ctx);
}

// -- topology ---------------------------------------------------------------------

topology::topology(std::string prefix) : prefix_(std::move(prefix)) {
  if (prefix_.empty()) invalid("streams_builder: the prefix must not be empty");
}

void topology::check_open() const {
  if (built_)
    invalid("streams DSL: the topology was built already; define it whole before "
            "build()");
}

void topology::add(const std::shared_ptr<node>& n) {
  check_open();
  n->id = nodes_.size();
  nodes_.push_back(n);
  parent_.push_back(n->id);
}

size_t topology::find(size_t id) const {
  while (parent_[id] != id) {
    parent_[id] = parent_[parent_[id]];
    id = parent_[id];
  }
  return id;
}

void topology::link(const node& a, const node& b) {
  check_open();
  auto ra = find(a.id);
  auto rb = find(b.id);
  if (ra != rb) parent_[std::max(ra, rb)] = std::min(ra, rb);
}

void topology::claim(const std::string& name) {
  if (!names_.insert(name).second)
    invalid("streams DSL: the name '" + name +
            "' is given twice; stores and internal topics are named after it");
}

std::string topology::op_name(const named& n, const char* kind) {
  check_open();
  auto name = n.name.empty() ? prefix_ + "-" + kind + "-" + std::to_string(++unnamed_)
                             : prefix_ + "-" + n.name;
  claim(name);
  return name;
}

std::string topology::repartition_name(const named& n) {
  return op_name(n, "repartition");
}

std::shared_ptr<node> topology::find_source(const std::string& topic) const {
  auto i = sources_.find(topic);
  return i == sources_.end() ? nullptr : i->second;
}

void topology::remember_source(const std::string& topic, std::shared_ptr<node> n) {
  sources_[topic] = std::move(n);
}

std::vector<topology::part> topology::parts() const {
  std::vector<part> all;
  std::map<size_t, size_t> index; // union-find root -> position in `all`
  for (size_t id = 0; id < nodes_.size(); ++id) {
    auto [i, fresh] = index.emplace(find(id), all.size());
    if (fresh) all.emplace_back();
    all[i->second].nodes.push_back(id);
  }
  std::vector<part> out;
  std::set<std::string> taken;
  for (auto& p : all) {
    // Every node descends from a source or an operator; the first of them
    // names the service.
    const node* first = nullptr;
    for (auto id : p.nodes)
      if (nodes_[id]->kind == node_kind::source || nodes_[id]->kind == node_kind::op) {
        first = nodes_[id].get();
        break;
      }
    if (!first) continue;
    p.name = first->service_name;
    for (int n = 2; !taken.insert(p.name).second; ++n)
      p.name = first->service_name + "-" + std::to_string(n);
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<service_factory>
topology::build(const std::shared_ptr<const topology>& self) {
  built_ = true;
  std::vector<service_factory> out;
  for (auto& p : parts()) {
    // Made once here, so that what only shows in a whole service (a table
    // read twice) throws from build() rather than from node::add.
    host probe{p.name, self, p.nodes};
    out.emplace_back([self, name = p.name, nodes = p.nodes] {
      return std::unique_ptr<service_base>{std::make_unique<host>(name, self, nodes)};
    });
  }
  return out;
}

std::string topology::describe(const std::shared_ptr<const topology>& self) const {
  std::ostringstream os;
  auto line = [&os](const char* what, const std::vector<std::string>& items) {
    if (items.empty()) return;
    os << "  " << what;
    for (size_t i = 0; i < items.size(); ++i)
      os << (i ? ", " : " ") << items[i];
    os << "\n";
  };
  for (auto& p : parts()) {
    host h{p.name, self, p.nodes};
    std::vector<std::string> reads, tables, steps, stores, writes;
    for (auto& in : h.inputs())
      reads.push_back(in.internal ? in.name + " (repartition)" : in.name);
    for (auto& t : h.tables())
      tables.push_back(t.topic + (t.global ? " (global)" : ""));
    for (auto id : p.nodes) {
      auto& n = *nodes_[id];
      // Sources are listed as reads; an operator's result port has nothing
      // to say beyond the operator.
      if (n.kind == node_kind::source ||
          (n.kind == node_kind::step && n.label == "table"))
        continue;
      steps.push_back(n.label);
    }
    for (auto& s : h.stores()) {
      if (s.internal) continue;
      const char* kind = s.type == store_decl::kind::kv       ? "kv"
                         : s.type == store_decl::kind::window ? "window"
                                                              : "session";
      stores.push_back(s.name + " (" + kind + ")");
    }
    for (auto& o : h.outputs())
      writes.push_back(o.kind == output_kind::repartition ? o.name + " (repartition)"
                                                          : o.name);
    os << "service " << p.name << "\n";
    line("reads   ", reads);
    line("tables  ", tables);
    line("steps   ", steps);
    line("stores  ", stores);
    line("writes  ", writes);
  }
  return os.str();
}

} // namespace detail::dsl

drop_counts streams_drops(const service_base& s) {
  auto total = drops_of(s);
  if (auto* h = dynamic_cast<const detail::dsl::host*>(&s))
    for (auto* op : h->operators()) {
      auto d = drops_of(*op);
      total.null_key += d.null_key;
      total.null_value += d.null_value;
      total.late += d.late;
      total.negative_timestamp += d.negative_timestamp;
    }
  return total;
}

streams_builder::streams_builder(std::string prefix)
  : t_(std::make_shared<detail::dsl::topology>(std::move(prefix))) {}

std::vector<service_factory> streams_builder::build() {
  return t_->build(t_);
}

std::string streams_builder::describe() const {
  return t_->describe(t_);
}

} // namespace weft
