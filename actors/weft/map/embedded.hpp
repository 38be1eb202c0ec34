#pragma once
// Files built into the binary (cmake/WeftEmbed.cmake generates their
// definitions from the checked-in sources at build time), so an installed
// weft program serves its live map with no file beside it.

#include <cstddef>
#include <string_view>

namespace weft::detail::embedded {

struct embedded_file {
  const char* name;      ///< the file's base name, e.g. "map.js"
  std::string_view body; ///< its bytes; static storage, never freed
};

/// The live map's page: map.html, map.js, map.css (actors/weft/map).
extern const embedded_file map_page[];
extern const size_t map_page_count;

/// The file of `map_page` named `name`, or null.
inline const embedded_file* find_map_file(std::string_view name) {
  for (size_t i = 0; i < map_page_count; ++i)
    if (map_page[i].name == name) return &map_page[i];
  return nullptr;
}

} // namespace weft::detail::embedded
