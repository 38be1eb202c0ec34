#pragma once
// Errors as values. Every failure that crosses a weft boundary is a `status`
// (a code from weft::errc plus a human-readable message); functions that
// produce a value return `result<T>`. Errors from librdkafka and RocksDB are
// converted to a status once, in their adapter, keeping the library's text.

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace weft {

/// What went wrong, coarsely: enough for a caller to decide what to do.
enum class errc {
  ok = 0,
  invalid_config,   ///< a configuration key is unknown, missing or malformed
  invalid_argument, ///< a caller passed something unusable
  kafka,            ///< a librdkafka error; the message holds its name and text
  kafka_fatal,      ///< a fatal client error (e.g. fenced producer): the client is dead
  kafka_retriable,  ///< a transient broker error (e.g. NOT_COORDINATOR): call again
  kafka_abortable,  ///< the open transaction failed: abort it, then go on
  queue_full,       ///< the producer's queue is full: retry once deliveries drain it
  timed_out,        ///< a bounded wait passed its limit
  not_found,        ///< a topic, partition, key or file does not exist
  bad_record,       ///< a record could not be decoded or its handler threw
  io,               ///< a local I/O failure (files, RocksDB)
  state_not_ready,  ///< a state store is restoring and cannot serve queries yet
  shutting_down,    ///< the node is stopping
  internal,         ///< a bug in weft
};

const char* to_string(errc code);

/// An error code with a message, or success. Cheap to copy when ok.
class [[nodiscard]] status {
 public:
  status() = default;
  status(errc code, std::string message) : code_(code), message_(std::move(message)) {}

  static status ok_status() { return {}; }

  bool ok() const { return code_ == errc::ok; }
  explicit operator bool() const { return ok(); }
  errc code() const { return code_; }
  const std::string& message() const { return message_; }
  /// "kafka: Local: Broker transport failure" — the code's name and the message.
  std::string to_string() const;

 private:
  errc code_ = errc::ok;
  std::string message_;
};

inline status make_error(errc code, std::string message) {
  return status{code, std::move(message)};
}

/// A value or the status that explains why there is none.
template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : value_(std::move(value)) {}
  result(status error) : error_(std::move(error)) {}

  bool ok() const { return value_.has_value(); }
  explicit operator bool() const { return ok(); }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  const status& error() const { return error_; }

 private:
  std::optional<T> value_;
  status error_;
};

/// Thrown only inside weft where an exception is the natural way to unwind a
/// user callback (e.g. a decoding failure inside a typed handler); caught at
/// the task boundary and turned into a bad-record decision.
class weft_error : public std::exception {
 public:
  explicit weft_error(status s) : status_(std::move(s)), what_(status_.to_string()) {}
  const char* what() const noexcept override { return what_.c_str(); }
  const weft::status& error() const { return status_; }

 private:
  weft::status status_;
  std::string what_;
};

} // namespace weft
