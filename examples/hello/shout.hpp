#pragma once
// The smallest useful weft service: read words, write them upper-cased.

#include <algorithm>
#include <cctype>
#include <string>

#include <weft/services/stateless.hpp>

namespace hello {

struct shout : weft::stateless<weft::string_serde, weft::string_serde> {
  weft::output<weft::string_serde, weft::string_serde> loud =
      to<weft::string_serde, weft::string_serde>("loud-words");

  shout() : stateless("shout", "words") {}

  void process(const std::string& key, const std::string& word,
               weft::context& ctx) override {
    std::string out = word;
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    loud.emit(ctx, key, out);
  }
};

} // namespace hello
