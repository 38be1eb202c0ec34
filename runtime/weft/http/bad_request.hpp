#pragma once
// A request refused by the code that reads it: thrown by request parsers,
// answered 400 with `reason` by weft::http::guarded (json_api.hpp). Kept
// apart so that parsers need not include httplib (the fuzz tree builds them
// alone).

#include <string>

namespace weft::http {

/// A request that is not what the API says; `reason` names the field.
struct bad_request {
  std::string reason;
};

} // namespace weft::http
