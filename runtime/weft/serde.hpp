#pragma once
// Typed serdes: how a key or value type becomes the bytes of a Kafka record
// (or of a state store entry) and back.
//
// A serde is a stateless class of static functions:
//
//   struct my_serde {
//     using value_type = T;
//     static constexpr const char* name = "my";    // prefixes every error message
//     static std::string serialize(const T&);       // never fails
//     static weft::result<T> deserialize(std::string_view bytes);
//   };
//
// - serialize returns bytes the caller owns. It cannot fail for a value of T
//   (only a user's own to_json/serialize function may throw).
// - deserialize never throws: malformed bytes give status{errc::bad_record,
//   "<name>: <what is wrong>"}, e.g. "int64: expected 8 bytes, got 3". The
//   returned value owns its data; `bytes` may die right after the call.
// - Everything here is thread-safe: serdes hold no state.
//
// Null keys and values (tombstones). Kafka records may carry no key or no
// value, which is not the same as empty bytes. Plain serdes never see null:
// decode<S>() reports "<name>: unexpected null" for them. A *nullable* serde
// maps null to a value of its own: its serialize returns
// std::optional<std::string> (nullopt = null) and it has
// `static value_type null_value()`. weft ships two: optional_serde<S>
// (std::optional<T>, nullopt ⇄ null) and void_serde (always null, like
// Kafka's VoidSerde). Decode record fields with decode<S>(), encode with
// encode<S>(); both work for every serde, nullable or not.
//
// Which serde for what:
// - string_serde, int32_serde, int64_serde, double_serde, bytes_serde: the
//   same bytes as Kafka's StringSerde, IntegerSerde, LongSerde, DoubleSerde,
//   ByteArraySerde, so weft interoperates with Java clients and Kafka Streams.
// - json_serde<T>: JSON at the edges, readable by anyone (nlohmann-json).
// - cereal_binary_serde<T>: compact, fast; for data weft services write and
//   read themselves (state, changelogs, internal topics).
// - cereal_json_serde<T>: cereal's JSON form of the same types, for debugging
//   or when a type already has cereal functions but the bytes must be text.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <istream>
#include <limits>
#include <new>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include <cereal/archives/json.hpp>
#include <cereal/archives/portable_binary.hpp>
#include <nlohmann/json.hpp>

#include "weft/status.hpp"

namespace weft {

/// The status a serde returns for malformed bytes:
/// {errc::bad_record, "<serde_name>: <what>"}. For writers of serdes.
status decode_error(std::string_view serde_name, std::string_view what);

// -- the serde concept ------------------------------------------------------

namespace detail {

template <class S>
using serde_name_t = decltype(S::name);
template <class S>
using serialize_result_t =
    decltype(S::serialize(std::declval<const typename S::value_type&>()));
template <class S>
using deserialize_result_t = decltype(S::deserialize(std::declval<std::string_view>()));
template <class S>
using null_value_t = decltype(S::null_value());

template <class S, class = void>
struct has_null_value : std::false_type {};
template <class S>
struct has_null_value<S, std::void_t<null_value_t<S>>>
  : std::is_same<null_value_t<S>, typename S::value_type> {};

template <class S, class = void>
struct serde_shape : std::false_type {};
template <class S>
struct serde_shape<S, std::void_t<typename S::value_type, serde_name_t<S>,
                                  serialize_result_t<S>, deserialize_result_t<S>>>
  : std::bool_constant<
        std::is_convertible_v<serde_name_t<S>, const char*> &&
        std::is_same_v<deserialize_result_t<S>, result<typename S::value_type>> &&
        (std::is_same_v<serialize_result_t<S>, std::string> ||
         (std::is_same_v<serialize_result_t<S>, std::optional<std::string>> &&
          has_null_value<S>::value))> {};

} // namespace detail

/// True if S is a serde as described at the top of this file. Templates taking
/// serdes static_assert on it, so a wrong argument fails with one clear line.
template <class S>
struct is_serde : detail::serde_shape<S> {};
template <class S>
inline constexpr bool is_serde_v = is_serde<S>::value;

/// True if S is a serde that maps null bytes to a value (see the top of this file).
template <class S>
struct is_nullable_serde
  : std::bool_constant<is_serde_v<S> && detail::has_null_value<S>::value> {};
template <class S>
inline constexpr bool is_nullable_serde_v = is_nullable_serde<S>::value;

/// How many bytes at the end of a key serialized with S the partitioner
/// ignores: a serde of windowed keys declares
/// `static constexpr uint8_t partition_key_suffix` (windows.hpp: 8 for a
/// time window's start, 16 for a session's end and start), so a record keyed
/// by it lands on the partition of its plain key, as Kafka Streams'
/// WindowedStreamPartitioner puts it. 0 for every other serde.
template <class S, class = void>
struct partition_key_suffix : std::integral_constant<uint8_t, 0> {};
template <class S>
struct partition_key_suffix<S, std::void_t<decltype(S::partition_key_suffix)>>
  : std::integral_constant<uint8_t, S::partition_key_suffix> {};
template <class S>
inline constexpr uint8_t partition_key_suffix_v = partition_key_suffix<S>::value;

/// Decodes a record's key or value, which is nullopt when Kafka has none.
/// Null gives S::null_value() for a nullable serde and a bad_record
/// "<name>: unexpected null" otherwise; bytes go to S::deserialize.
template <class S>
result<typename S::value_type> decode(const std::optional<std::string_view>& bytes) {
  static_assert(is_serde_v<S>, "decode<S>: S must be a weft serde (see weft/serde.hpp)");
  if (bytes) return S::deserialize(*bytes);
  if constexpr (is_nullable_serde_v<S>)
    return S::null_value();
  else
    return decode_error(S::name, "unexpected null");
}

/// Encodes a key or value for a record; nullopt means a null key or value
/// (only a nullable serde produces it).
template <class S>
std::optional<std::string> encode(const typename S::value_type& value) {
  static_assert(is_serde_v<S>, "encode<S>: S must be a weft serde (see weft/serde.hpp)");
  return S::serialize(value);
}

// -- Kafka's primitive serdes -----------------------------------------------

namespace detail {

/// The status for a fixed-size value given the wrong number of bytes.
status wrong_size(const char* serde_name, size_t expected, size_t got);

template <class U>
inline void store_big_endian(char* out, U v) {
  for (size_t i = 0; i < sizeof(U); ++i)
    out[i] = static_cast<char>(v >> (8 * (sizeof(U) - 1 - i)));
}

template <class U>
inline U load_big_endian(const char* in) {
  U v = 0;
  for (size_t i = 0; i < sizeof(U); ++i)
    v = static_cast<U>((v << 8) | static_cast<unsigned char>(in[i]));
  return v;
}

/// A big-endian two's-complement integer, as Java's DataOutput writes it.
template <class Int, class Derived>
struct big_endian_int_serde {
  using value_type = Int;
  using bits = std::make_unsigned_t<Int>;

  static std::string serialize(Int v) {
    char buf[sizeof(Int)];
    store_big_endian(buf, static_cast<bits>(v));
    return std::string(buf, sizeof(Int)); // fits the small-string buffer: no allocation
  }

  static result<Int> deserialize(std::string_view bytes) {
    if (bytes.size() != sizeof(Int))
      return wrong_size(Derived::name, sizeof(Int), bytes.size());
    return static_cast<Int>(load_big_endian<bits>(bytes.data()));
  }
};

} // namespace detail

/// UTF-8 text, bytes as-is (Kafka's StringSerde with UTF-8). deserialize
/// rejects invalid UTF-8 — overlong forms, surrogates and code points above
/// U+10FFFF included — naming the byte where the bad sequence starts; use
/// bytes_serde for text you do not want checked.
struct string_serde {
  using value_type = std::string;
  static constexpr const char* name = "string";

  static std::string serialize(const std::string& v) { return v; }
  static result<std::string> deserialize(std::string_view bytes);
};

/// Raw bytes in a std::string, unchecked (Kafka's ByteArraySerde).
/// deserialize always succeeds.
struct bytes_serde {
  using value_type = std::string;
  static constexpr const char* name = "bytes";

  static std::string serialize(const std::string& v) { return v; }
  static result<std::string> deserialize(std::string_view bytes) {
    return std::string{bytes};
  }
};

/// A 4-byte big-endian int32 (Kafka's IntegerSerde).
struct int32_serde : detail::big_endian_int_serde<int32_t, int32_serde> {
  static constexpr const char* name = "int32";
};

/// An 8-byte big-endian int64 (Kafka's LongSerde).
struct int64_serde : detail::big_endian_int_serde<int64_t, int64_serde> {
  static constexpr const char* name = "int64";
};

/// An 8-byte big-endian IEEE 754 double (Kafka's DoubleSerde). Like Java's
/// Double.doubleToLongBits, every NaN is written as the canonical
/// 7f f8 00 00 00 00 00 00, so equal values give equal bytes (and keys).
struct double_serde {
  using value_type = double;
  static constexpr const char* name = "double";

  static std::string serialize(double v) {
    static_assert(std::numeric_limits<double>::is_iec559 && sizeof(double) == 8,
                  "double_serde needs IEEE 754 doubles");
    uint64_t bits = 0x7ff8000000000000ULL;
    if (!std::isnan(v)) std::memcpy(&bits, &v, sizeof bits);
    char buf[8];
    detail::store_big_endian(buf, bits);
    return std::string(buf, 8);
  }

  static result<double> deserialize(std::string_view bytes) {
    if (bytes.size() != 8) return detail::wrong_size(name, 8, bytes.size());
    auto bits = detail::load_big_endian<uint64_t>(bytes.data());
    double v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }
};

// -- null ----------------------------------------------------------------------

/// Always null, like Kafka's VoidSerde: for topics without keys. serialize
/// gives nullopt; bytes (even empty ones) are a bad record.
struct void_serde {
  using value_type = std::monostate;
  static constexpr const char* name = "void";

  static std::optional<std::string> serialize(std::monostate) { return std::nullopt; }
  static result<std::monostate> deserialize(std::string_view bytes) {
    return decode_error(name,
                        "expected null, got " + std::to_string(bytes.size()) + " bytes");
  }
  static std::monostate null_value() { return {}; }
};

/// std::optional<T> over serde S: nullopt is a null key or value (a tombstone),
/// anything else is S's bytes. Empty bytes stay S's business (for
/// string_serde, ""), so an empty string and a tombstone remain distinct.
/// Errors carry S's name.
template <class S>
struct optional_serde {
  static_assert(is_serde_v<S>, "optional_serde<S>: S must be a weft serde");
  static_assert(!is_nullable_serde_v<S>,
                "optional_serde<S>: S already handles null; use it directly");

  using value_type = std::optional<typename S::value_type>;
  static constexpr const char* name = S::name;

  static std::optional<std::string> serialize(const value_type& v) {
    if (!v) return std::nullopt;
    return S::serialize(*v);
  }
  static result<value_type> deserialize(std::string_view bytes) {
    auto r = S::deserialize(bytes);
    if (!r) return r.error();
    return value_type{std::move(r).value()};
  }
  static value_type null_value() { return std::nullopt; }
};

// -- cereal --------------------------------------------------------------------

namespace detail {

/// Reads a string_view through std::istream without copying it.
class view_streambuf : public std::streambuf {
 public:
  explicit view_streambuf(std::string_view bytes) {
    // streambuf wants char*; the get area is never written to.
    auto* p = const_cast<char*>(bytes.data());
    setg(p, p, p + bytes.size());
  }
  size_t remaining() const { return static_cast<size_t>(egptr() - gptr()); }
};

/// Appends what an std::ostream writes to a std::string, through a small
/// buffer so per-character writes (cereal's JSON writer) stay cheap.
class string_streambuf : public std::streambuf {
 public:
  explicit string_streambuf(std::string& out) : out_(out) {
    setp(buf_, buf_ + sizeof buf_);
  }
  /// Moves the buffered tail into the string; call before reading it.
  void flush_to_string() {
    out_.append(pbase(), static_cast<size_t>(pptr() - pbase()));
    setp(buf_, buf_ + sizeof buf_);
  }

 protected:
  int_type overflow(int_type c) override;
  std::streamsize xsputn(const char* s, std::streamsize n) override;
  int sync() override {
    flush_to_string();
    return 0;
  }

 private:
  std::string& out_;
  char buf_[256];
};

/// Drops whitespace outside strings from JSON text, in place. cereal's JSON
/// writer always pretty-prints; this makes its output one compact line.
void compact_json(std::string& json);

/// What guard_json_numbers makes of a JSON text.
struct json_number_guard {
  std::optional<std::string> text; ///< the text to parse instead, if changed
  std::string error;               ///< non-empty: refuse the text (a bad record)
};

/// Keeps rapidjson 1.1.0 (cereal's JSON archive, full-precision mode) away
/// from the numbers it misreads: the cereal_serde fuzz target found a zero
/// with an exponent or many digits ("0e99" came back as 6.5e296), a
/// significand whose first 20 digits wrap 64 bits to zero, and numbers far
/// outside a double's range (read past the end of a table of powers), all in
/// its full-precision path. So only what rapidjson reads without that path
/// reaches it as written (integers that fit 64 bits; at most 15 digits and
/// no exponent); every other number is read here with std::from_chars,
/// which rounds correctly, and handed on as the shortest text of that
/// double, which rapidjson reads right. Zeros become "0.0 " (or "-0.0 "),
/// numbers below 1e-400 zero, and a number beyond a double's range is
/// refused, as rapidjson means to do.
json_number_guard guard_json_numbers(std::string_view json);

/// Why `bytes` cannot be the root of a cereal JSON document ("invalid value at
/// byte 3", "expected a JSON object or array, got a number"), or "" if it can.
std::string describe_cereal_json_root(std::string_view bytes);

/// cereal's exception text, with rapidjson's type assertions ("data_.f.flags &
/// kIntFlag") turned into what was expected ("wrong JSON type: expected an
/// integer that fits in 32 bits").
std::string describe_cereal_json_exception(std::string_view what);

/// cereal's portable binary format, read with every length checked against
/// the bytes left: cereal's own PortableBinaryInputArchive sizes a string or
/// container from its length prefix before it reads the elements, so eight
/// bytes of garbage could make it allocate (and zero) gigabytes. A length
/// larger than the bytes left fails at once: every element takes at least a
/// byte, except elements of an empty type, of which a container here cannot
/// hold more than bytes remain. Reads what PortableBinaryOutputArchive writes,
/// in either byte order.
class bounded_binary_input_archive
  : public cereal::InputArchive<bounded_binary_input_archive,
                                cereal::AllowEmptyClassElision> {
 public:
  explicit bounded_binary_input_archive(view_streambuf& buf)
    : cereal::InputArchive<bounded_binary_input_archive, cereal::AllowEmptyClassElision>(
          this),
      buf_(buf) {
    uint8_t little = 0;
    (*this)(little);
    swap_ = (little != 0) != host_is_little_endian();
  }

  /// Reads `size` bytes of elements of DataSize bytes, in host byte order.
  template <std::streamsize DataSize>
  void load_binary(void* data, std::streamsize size) {
    if (static_cast<size_t>(size) > buf_.remaining())
      throw cereal::Exception("expected " + std::to_string(size) + " more bytes, only " +
                              std::to_string(buf_.remaining()) + " left");
    buf_.sgetn(static_cast<char*>(data), size);
    if (swap_) {
      auto* p = static_cast<uint8_t*>(data);
      for (std::streamsize i = 0; i < size; i += DataSize)
        std::reverse(p + i, p + i + DataSize);
    }
  }

  /// Throws if a container of `n` elements cannot fit in the bytes left.
  void check_length(uint64_t n) const {
    if (n > buf_.remaining())
      throw cereal::Exception("a length of " + std::to_string(n) + " where only " +
                              std::to_string(buf_.remaining()) + " bytes are left");
  }

 private:
  static bool host_is_little_endian() {
    const uint16_t one = 1;
    uint8_t first;
    std::memcpy(&first, &one, 1);
    return first == 1;
  }
  view_streambuf& buf_;
  bool swap_ = false;
};

template <class T>
std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>>
CEREAL_LOAD_FUNCTION_NAME(bounded_binary_input_archive& ar, T& t) {
  static_assert(!std::is_floating_point_v<T> || std::numeric_limits<T>::is_iec559,
                "portable binary needs IEEE 754 floating point");
  ar.template load_binary<sizeof(T)>(std::addressof(t), sizeof(t));
}

/// A bool is one byte, 0 or 1: cereal's own archive copies any byte into the
/// bool, and reading a bool that holds 48 is undefined behaviour (found by
/// the cereal_serde fuzz target).
inline void CEREAL_LOAD_FUNCTION_NAME(bounded_binary_input_archive& ar, bool& t) {
  static_assert(sizeof(bool) == 1, "portable binary writes a bool as one byte");
  uint8_t byte = 0;
  ar.template load_binary<1>(&byte, 1);
  if (byte > 1)
    throw cereal::Exception("a bool must be 0 or 1, got " + std::to_string(byte));
  t = byte == 1;
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(bounded_binary_input_archive& ar,
                               cereal::NameValuePair<T>& t) {
  ar(t.value);
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(bounded_binary_input_archive& ar, cereal::SizeTag<T>& t) {
  ar(t.size);
  ar.check_length(static_cast<uint64_t>(t.size));
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(bounded_binary_input_archive& ar,
                               cereal::BinaryData<T>& bd) {
  using element = std::remove_pointer_t<T>;
  ar.template load_binary<sizeof(element)>(bd.data,
                                           static_cast<std::streamsize>(bd.size));
}

template <class T, class Archive>
inline constexpr bool cereal_saves =
    cereal::traits::is_output_serializable<T, Archive>::value;
template <class T, class Archive>
inline constexpr bool cereal_loads =
    cereal::traits::is_input_serializable<T, Archive>::value;

} // namespace detail

/// cereal's portable binary archive. Always written little-endian, so equal
/// values give equal bytes on every host (they may be keys); a leading flag
/// byte records the byte order. T needs cereal functions (serialize, or
/// save/load), and the cereal/types/*.hpp headers for the std types it holds.
/// Use fixed-width integers in T: cereal writes a `long` as 4 or 8 bytes
/// depending on the platform.
///
/// deserialize requires the bytes to hold exactly one T: trailing bytes are a
/// bad record (they mean a different type wrote them). Evolve T with
/// CEREAL_CLASS_VERSION. Length prefixes are checked against the bytes left
/// (detail::bounded_binary_input_archive), so corrupt bytes cannot make it
/// allocate more than about their own size. T's load functions must be
/// generic in the archive (template <class Archive>), as cereal's own are.
template <class T>
struct cereal_binary_serde {
  static_assert(detail::cereal_saves<T, cereal::PortableBinaryOutputArchive> &&
                    detail::cereal_loads<T, detail::bounded_binary_input_archive>,
                "cereal_binary_serde<T>: cereal cannot serialize T; give T a serialize() "
                "(or save/load) and include cereal/types/<std type>.hpp for its members");

  using value_type = T;
  static constexpr const char* name = "cereal binary";

  static std::string serialize(const T& v) {
    std::string out;
    out.reserve(64);
    detail::string_streambuf buf{out};
    std::ostream os{&buf};
    {
      cereal::PortableBinaryOutputArchive ar{
          os, cereal::PortableBinaryOutputArchive::Options::LittleEndian()};
      ar(v);
    }
    buf.flush_to_string();
    return out;
  }

  static result<T> deserialize(std::string_view bytes) {
    detail::view_streambuf buf{bytes};
    try {
      T v{}; // cereal loads into an existing object
      {
        detail::bounded_binary_input_archive ar{buf};
        ar(v);
      }
      if (auto left = buf.remaining(); left > 0)
        return decode_error(name,
                            std::to_string(left) + " trailing bytes after the value");
      return v;
    } catch (const std::bad_alloc&) {
      return decode_error(name, "a length in the data is too large to allocate");
    } catch (const std::length_error&) {
      return decode_error(name, "a length in the data is too large to allocate");
    } catch (const std::exception& e) {
      return decode_error(name, e.what());
    } catch (...) {
      return decode_error(name, "unknown exception while decoding");
    }
  }
};

/// cereal's JSON archive, written compact on one line. cereal wraps the value
/// in an object: an int 5 is {"value0":5}; a struct whose serialize uses
/// CEREAL_NVP is {"value0":{"field":...}}. NaN and infinities are written as
/// NaN/Infinity/-Infinity (not standard JSON, but cereal reads them back).
template <class T>
struct cereal_json_serde {
  static_assert(detail::cereal_saves<T, cereal::JSONOutputArchive> &&
                    detail::cereal_loads<T, cereal::JSONInputArchive>,
                "cereal_json_serde<T>: cereal cannot serialize T; give T a serialize() "
                "(or save/load) and include cereal/types/<std type>.hpp for its members");

  using value_type = T;
  static constexpr const char* name = "cereal json";

  static std::string serialize(const T& v) {
    std::string out;
    out.reserve(128);
    detail::string_streambuf buf{out};
    std::ostream os{&buf};
    {
      // Indent 0 leaves only newlines and ": " to strip; the archive writes
      // its closing brace when destroyed, hence the scope.
      cereal::JSONOutputArchive ar{os, cereal::JSONOutputArchive::Options::NoIndent()};
      ar(v);
    }
    buf.flush_to_string();
    detail::compact_json(out);
    return out;
  }

  static result<T> deserialize(std::string_view bytes) {
    auto guard = detail::guard_json_numbers(bytes);
    if (!guard.error.empty()) return decode_error(name, guard.error);
    if (guard.text) bytes = *guard.text;
    detail::view_streambuf buf{bytes};
    std::istream is{&buf};
    try {
      T v{};
      cereal::JSONInputArchive ar{is};
      ar(v);
      return v;
    } catch (const std::exception& e) {
      // cereal reports syntax errors as a failed assertion on the root
      // ("IsObject()"); parse again to say what and where.
      if (auto why = detail::describe_cereal_json_root(bytes); !why.empty())
        return decode_error(name, why);
      return decode_error(name, detail::describe_cereal_json_exception(e.what()));
    } catch (...) {
      return decode_error(name, "unknown exception while decoding");
    }
  }
};

// -- nlohmann-json ---------------------------------------------------------------

namespace detail {

template <class T, class = void>
struct has_nlohmann_from_json : std::false_type {};
template <class T>
struct has_nlohmann_from_json<
    T, std::void_t<decltype(std::declval<const nlohmann::json&>().template get<T>())>>
  : std::true_type {};

} // namespace detail

/// The JSON value `v` as an integer of type Int, for from_json functions of
/// types that json_serde reads from outside: unlike nlohmann's get<Int>(), it
/// refuses a number with a fraction (1.5, and 2.0 too) or out of Int's range
/// (1e30, -9223372036854775809, 300 for a uint8_t), which get<Int>()
/// converts silently — and, for a floating-point number out of range, with
/// undefined behaviour. Throws std::out_of_range naming `what` (json_serde
/// turns it into a bad record); a non-number throws nlohmann's type_error.
template <class Int>
Int json_integer(const nlohmann::json& v, std::string_view what) {
  static_assert(std::is_integral_v<Int> && !std::is_same_v<Int, bool>,
                "json_integer reads integers");
  using limits = std::numeric_limits<Int>;
  auto refuse = [&]() -> Int {
    throw std::out_of_range(std::string{what} + ": " + v.dump() +
                            " is not an integer from " + std::to_string(limits::min()) +
                            " to " + std::to_string(limits::max()));
  };
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(limits::max())) return refuse();
    return static_cast<Int>(u);
  }
  if (v.is_number_integer()) {
    auto i = v.get<int64_t>();
    if constexpr (std::is_signed_v<Int>) {
      if (i < limits::min() || i > limits::max()) return refuse();
    } else {
      if (i < 0 || static_cast<uint64_t>(i) > limits::max()) return refuse();
    }
    return static_cast<Int>(i);
  }
  if (v.is_number_float()) return refuse();
  return v.get<Int>(); // not a number: nlohmann's type_error
}

/// Member `key` of JSON object `j` into `out`, as json_integer reads it.
template <class Int>
void json_get_integer(const nlohmann::json& j, const char* key, Int& out) {
  out = json_integer<Int>(j.at(key), std::string{"field '"} + key + "'");
}

/// JSON through nlohmann-json: T needs to_json/from_json, e.g. from
/// NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(T, fields...). For integer fields of a
/// type read from outside, write from_json with json_integer (above):
/// the macro's get_to converts 1e30 into an int64_t with undefined behaviour. A struct
/// becomes a plain object ({"id":7,"name":"x"}), written compact. Strings in T that are
/// not valid UTF-8 are written with U+FFFD in place of the bad bytes, because serialize
/// has no way to fail. deserialize reports nlohmann's message for syntax errors, wrong
/// types and missing keys, and anything from_json throws.
template <class T>
struct json_serde {
  static_assert(std::is_constructible_v<nlohmann::json, const T&> &&
                    detail::has_nlohmann_from_json<T>::value,
                "json_serde<T>: T needs nlohmann to_json/from_json, e.g. "
                "NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(T, fields...)");

  using value_type = T;
  static constexpr const char* name = "json";

  static std::string serialize(const T& v) {
    return nlohmann::json(v).dump(-1, ' ', false,
                                  nlohmann::json::error_handler_t::replace);
  }

  static result<T> deserialize(std::string_view bytes) {
    try {
      return nlohmann::json::parse(bytes.begin(), bytes.end()).template get<T>();
    } catch (const std::exception& e) {
      return decode_error(name, e.what());
    } catch (...) {
      return decode_error(name, "unknown exception while decoding");
    }
  }
};

} // namespace weft

// The bounded archive reads what PortableBinaryOutputArchive writes (for
// types with load_minimal, cereal needs to know the pair).
namespace cereal::traits::detail {
template <>
struct get_output_from_input<weft::detail::bounded_binary_input_archive> {
  using type = cereal::PortableBinaryOutputArchive;
};
} // namespace cereal::traits::detail
