#pragma once
// The serdes of the order system's topics and stores.

#include <weft/serde.hpp>

#include "model.hpp"

namespace orders {

using str = weft::string_serde;
using order_serde = weft::json_serde<order>;
using validation_serde = weft::json_serde<validation>;
using payment_serde = weft::json_serde<payment>;
using customer_serde = weft::json_serde<customer>;
using stock_serde = weft::json_serde<stock_adjustment>;
using notification_serde = weft::json_serde<notification>;
using command_serde = weft::json_serde<order_command>;
using report_serde = weft::json_serde<payment_report>;

} // namespace orders
