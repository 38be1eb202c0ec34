#pragma once
// Which values read from below a caching layer keeps (layered_store.cpp):
// only a key missed twice within a window — TinyLFU's "doorkeeper" (Einziger
// et al.; Caffeine's admission filter). A key space that churns through the
// clean values, each key coming back only after they forgot it, then costs a
// bit test per miss instead of an insert and an eviction; keys that come back
// soon get in on their second read and hit after that.
//
// Measured on the count-by-key bench (bench/scaling.sh): at 10^6 keys, where
// keeping every value read cost more than it saved, and at 10^5 keys, where
// the values fit and keeping them pays (README, statestore.value.cache.max.bytes).
//
// Two Bloom filters of 16 bits per key of the window, two bits per key from
// one hash: a key counts as seen when either holds both its bits; after
// `window` marks the older is cleared and becomes the newer. A key is admitted
// if it was missed in the last `window` to 2 × `window` misses (false
// admissions: about 1 in 40 of the keys never seen).
//
// Threads: none of its own; the caller serialises (the layer's unique lock).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace weft::state::detail {

class admission_filter {
 public:
  explicit admission_filter(size_t window) { resize(window); }

  /// Whether the key with `hash` was marked in this window or the last; marks it.
  bool seen_before(size_t hash) {
    size_t a = hash & mask_;
    size_t b = (static_cast<uint64_t>(hash) * 0x9E3779B97F4A7C15ull >> 24) & mask_;
    bool in_newer = test(newer(), a) && test(newer(), b);
    bool seen = in_newer || (test(older(), a) && test(older(), b));
    if (!in_newer) {
      set(newer(), a);
      set(newer(), b);
      if (++marks_ >= window_) turn();
    }
    return seen;
  }

  /// Starts over with a new window (the sets are sized to it).
  void resize(size_t window) {
    window_ = window < min_window ? min_window : window;
    size_t bits = 1024;
    while (bits < 16 * window_)
      bits <<= 1;
    mask_ = bits - 1;
    sets_[0].assign(bits / 64, 0);
    sets_[1].assign(bits / 64, 0);
    marks_ = 0;
  }

  size_t window() const { return window_; }

 private:
  static constexpr size_t min_window = 128;

  static bool test(const std::vector<uint64_t>& set, size_t bit) {
    return (set[bit >> 6] >> (bit & 63)) & 1;
  }
  static void set(std::vector<uint64_t>& set, size_t bit) {
    set[bit >> 6] |= uint64_t{1} << (bit & 63);
  }
  std::vector<uint64_t>& newer() { return sets_[current_]; }
  std::vector<uint64_t>& older() { return sets_[current_ ^ 1]; }
  void turn() {
    current_ ^= 1;
    std::fill(newer().begin(), newer().end(), 0);
    marks_ = 0;
  }

  std::vector<uint64_t> sets_[2];
  size_t current_ = 0;
  size_t mask_ = 0;
  size_t window_ = 0;
  size_t marks_ = 0;
};

} // namespace weft::state::detail
