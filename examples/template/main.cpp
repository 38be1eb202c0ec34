// visits: the visit counter as a weft node. Topics page-views and
// visit-counts must exist. --help lists the keys, --version weft's version.
//
//   ./build/visits --application.id=visits --bootstrap.servers=127.0.0.1:9092
#include <weft/node.hpp>

#include "visits.hpp"

int main(int argc, char** argv) {
  return weft::run_main(argc, argv,
                        [](weft::node& n) { n.add<visits::visit_counter>(); });
}
