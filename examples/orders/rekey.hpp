#pragma once
// Re-keying services: copy a topic's records into a repartition topic keyed
// by another field, so that a stateful service downstream sees every record
// of that field's value in one task (inventory by product, fraud and the
// customer view by customer, the payment gate's payments by order).

#include <functional>
#include <string>

#include <weft/services/stateless.hpp>

#include "serdes.hpp"

namespace orders {

/// Writes the records of `in` for which keep(value) holds to the repartition
/// `repartition`, keyed by key_of(value).
template <class VS>
class rekey_by : public weft::stateless<str, VS> {
 public:
  using value_type = typename VS::value_type;
  rekey_by(std::string name, std::string in, std::string repartition,
           std::function<std::string(const value_type&)> key_of,
           std::function<bool(const value_type&)> keep)
    : weft::stateless<str, VS>(std::move(name), std::move(in)),
      key_of_(std::move(key_of)), keep_(std::move(keep)) {
    out_ = this->template repartition<str, VS>(std::move(repartition));
  }

  void process(const std::string&, const value_type& v, weft::context& ctx) override {
    if (keep_(v)) out_.emit(ctx, key_of_(v), v);
  }

 private:
  std::function<std::string(const value_type&)> key_of_;
  std::function<bool(const value_type&)> keep_;
  weft::output<str, VS> out_;
};

} // namespace orders
