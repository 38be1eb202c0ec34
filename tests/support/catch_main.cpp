// Catch2's main for every test binary.
//
// Catch2 2.13's console reporter indents the wrapped lines of a test's name
// to follow its first ": " — and when that is further right than the
// console width (79 by default), it throws std::out_of_range while printing
// the failure's header: the test process ends in std::terminate, the
// failure is never shown, and child processes the test started are never
// stopped. Many names here say "situation: outcome" after a long situation,
// so the width is wide enough for any of them.
#define CATCH_CONFIG_CONSOLE_WIDTH 400
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
