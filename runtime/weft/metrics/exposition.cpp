#include "weft/metrics/exposition.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace weft::metrics {

histogram::histogram(std::vector<double> upper_bounds)
  : bounds_(std::move(upper_bounds)),
    counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i)
    counts_[i].store(0, std::memory_order_relaxed);
  for (auto b : bounds_)
    bounds_us_.push_back(static_cast<uint64_t>(std::llround(b * 1e6)));
}

std::vector<double> histogram::latency_bounds() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

void histogram::observe_us(uint64_t micros) {
  size_t i = 0;
  while (i < bounds_us_.size() && micros > bounds_us_[i])
    ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(micros, std::memory_order_relaxed);
}

uint64_t histogram::count() const {
  uint64_t n = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i)
    n += bucket(i);
  return n;
}

std::string escape_label_value(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

namespace {

const char* type_name(metric_type t) {
  switch (t) {
  case metric_type::counter:
    return "counter";
  case metric_type::gauge:
    return "gauge";
  case metric_type::histogram:
    return "histogram";
  }
  return "untyped";
}

std::string escape_help(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

} // namespace

void exposition::family(std::string_view name, metric_type type, std::string_view help) {
  name_ = std::string{name};
  skipping_ = std::find(written_.begin(), written_.end(), name_) != written_.end();
  if (skipping_) return;
  written_.push_back(name_);
  out_ += "# HELP ";
  out_ += name_;
  out_ += ' ';
  out_ += escape_help(help);
  out_ += "\n# TYPE ";
  out_ += name_;
  out_ += ' ';
  out_ += type_name(type);
  out_ += '\n';
}

void exposition::write_labels(const label* begin, const label* end,
                              std::string_view extra_name, std::string_view extra_value) {
  if (begin == end && extra_name.empty()) return;
  out_ += '{';
  bool first = true;
  for (auto* l = begin; l != end; ++l) {
    if (!first) out_ += ',';
    first = false;
    out_ += l->first;
    out_ += "=\"";
    out_ += escape_label_value(l->second);
    out_ += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out_ += ',';
    out_ += extra_name;
    out_ += "=\"";
    out_ += extra_value;
    out_ += '"';
  }
  out_ += '}';
}

void exposition::write_value(double v) {
  char buf[64];
  if (std::isnan(v))
    out_ += "NaN";
  else if (std::isinf(v))
    out_ += v > 0 ? "+Inf" : "-Inf";
  else if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
    out_ += buf;
  } else {
    std::snprintf(buf, sizeof buf, "%.9g", v);
    out_ += buf;
  }
  out_ += '\n';
}

void exposition::sample(labels ls, double value) {
  if (skipping_) return;
  out_ += name_;
  write_labels(ls.begin(), ls.end());
  out_ += ' ';
  write_value(value);
}

void exposition::sample(const std::vector<std::pair<std::string, std::string>>& ls,
                        double value) {
  std::vector<label> views;
  for (auto& [k, v] : ls)
    views.emplace_back(k, v);
  if (skipping_) return;
  out_ += name_;
  write_labels(views.data(), views.data() + views.size());
  out_ += ' ';
  write_value(value);
}

void exposition::sample(labels ls, const histogram& h) {
  if (skipping_) return;
  uint64_t cumulative = 0;
  char le[32];
  for (size_t i = 0; i <= h.bounds().size(); ++i) {
    cumulative += h.bucket(i);
    if (i < h.bounds().size())
      std::snprintf(le, sizeof le, "%g", h.bounds()[i]);
    else
      std::snprintf(le, sizeof le, "+Inf");
    out_ += name_;
    out_ += "_bucket";
    write_labels(ls.begin(), ls.end(), "le", le);
    out_ += ' ';
    write_value(static_cast<double>(cumulative));
  }
  out_ += name_;
  out_ += "_sum";
  write_labels(ls.begin(), ls.end());
  out_ += ' ';
  write_value(h.sum_seconds());
  out_ += name_;
  out_ += "_count";
  write_labels(ls.begin(), ls.end());
  out_ += ' ';
  write_value(static_cast<double>(cumulative));
}

} // namespace weft::metrics
