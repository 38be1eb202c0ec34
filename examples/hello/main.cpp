// weft-hello: runs the `shout` service as a node. Topics `words` and
// `loud-words` must exist. Try:
//   build/examples/hello/weft-hello --application.id=hello
#include <weft/node.hpp>

#include "shout.hpp"

int main(int argc, char** argv) {
  return weft::run_main(argc, argv, [](weft::node& n) { n.add<hello::shout>(); });
}
