#pragma once
// Strong types for the numbers weft passes around: offsets, partitions,
// epochs, generations and node ids. A named_type wraps one value so that a
// partition can never be passed where an offset is expected.

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

namespace weft {

/// A value of type T tagged with Tag. Comparable, hashable, printable; the raw
/// value is reachable through value() where a C API needs it.
template <class T, class Tag>
class named_type {
 public:
  using value_type = T;
  constexpr named_type() = default;
  constexpr explicit named_type(T v) : value_(v) {}
  constexpr T value() const { return value_; }
  constexpr bool operator==(named_type o) const { return value_ == o.value_; }
  constexpr bool operator!=(named_type o) const { return value_ != o.value_; }
  constexpr bool operator<(named_type o) const { return value_ < o.value_; }
  constexpr bool operator<=(named_type o) const { return value_ <= o.value_; }
  constexpr bool operator>(named_type o) const { return value_ > o.value_; }
  constexpr bool operator>=(named_type o) const { return value_ >= o.value_; }
  friend std::ostream& operator<<(std::ostream& os, named_type v) {
    return os << v.value_;
  }

  template <class Inspector>
  friend auto inspect(Inspector& f, named_type& x) {
    return f(x.value_);
  }

 private:
  T value_{};
};

struct partition_tag {};
struct offset_tag {};
struct epoch_tag {};
struct generation_tag {};

/// A Kafka partition number.
using partition_id = named_type<int32_t, partition_tag>;
/// A Kafka offset (of a record, or the next offset to consume).
using offset = named_type<int64_t, offset_tag>;
/// The number of a commit interval on one node (exactly-once).
using epoch = named_type<int64_t, epoch_tag>;
/// The number of a published assignment (clustering).
using generation = named_type<int64_t, generation_tag>;

/// A node's id inside a cluster: a short printable string.
struct node_id {
  std::string value;
  bool operator==(const node_id& o) const { return value == o.value; }
  bool operator!=(const node_id& o) const { return value != o.value; }
  bool operator<(const node_id& o) const { return value < o.value; }
};

/// A topic and one of its partitions.
struct topic_partition {
  std::string topic;
  partition_id partition;
  bool operator==(const topic_partition& o) const {
    return partition == o.partition && topic == o.topic;
  }
  bool operator<(const topic_partition& o) const {
    return topic < o.topic || (topic == o.topic && partition < o.partition);
  }
};

std::string to_string(const topic_partition& tp);

} // namespace weft

template <class T, class Tag>
struct std::hash<weft::named_type<T, Tag>> {
  size_t operator()(weft::named_type<T, Tag> v) const noexcept {
    return std::hash<T>{}(v.value());
  }
};

template <>
struct std::hash<weft::topic_partition> {
  size_t operator()(const weft::topic_partition& tp) const noexcept {
    return std::hash<std::string>{}(tp.topic) * 31u +
           std::hash<int32_t>{}(tp.partition.value());
  }
};
