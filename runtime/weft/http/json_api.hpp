#pragma once
// What the JSON APIs served by weft::http::server share (the order system's
// REST API, weft-sidecar's API): a JSON answer, and a route handler that
// turns a refusal into 400 and a failure into 500, so no exception leaves a
// handler and every refusal names what was wrong.
//
// Any thread: these run on the server's threads.

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <exception>

#include "weft/http/bad_request.hpp"
#include "weft/http/server.hpp"

namespace weft::http {

/// Answers `status` with `body` as JSON; invalid UTF-8 in its strings (a
/// client's bytes quoted back) is replaced, never a reason to fail.
inline void reply_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "application/json");
}

/// A route handler calling `fn` of `self` (which must outlive the server):
/// a bad_request becomes 400 with its reason, any other exception 500 with
/// its text.
template <class T>
httplib::Server::Handler guarded(T* self, void (T::*fn)(const httplib::Request&,
                                                        httplib::Response&)) {
  return [self, fn](const httplib::Request& req, httplib::Response& res) {
    try {
      (self->*fn)(req, res);
    } catch (const bad_request& e) {
      reply_error(res, 400, e.reason);
    } catch (const std::exception& e) {
      reply_error(res, 500, e.what());
    }
  };
}

} // namespace weft::http
