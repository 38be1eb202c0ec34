#include "weft/state/store.hpp"

namespace weft::state {

changelog_sink::~changelog_sink() = default;
kv_store::~kv_store() = default;
window_store::~window_store() = default;
session_store::~session_store() = default;

} // namespace weft::state
