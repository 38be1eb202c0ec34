# cmake --install: weft's libraries, headers and tools, and a CMake package
# (weftConfig.cmake, its version file and exported targets), so that a
# project elsewhere writes
#
#   find_package(weft 0.2 CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE weft::weft)
#
# and nothing else: the config finds weft's own dependencies (the Debian
# packages tools/setup.sh installs). examples/template is such a project.
include(CMakePackageConfigHelpers)

set(WEFT_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/weft)

# Exported as weft::runtime, weft::control, weft::services, weft::weft;
# weft::warnings is linked privately by each (compile flags only) and goes
# with them because a static library's private links are its users' links.
set_target_properties(weft_runtime PROPERTIES EXPORT_NAME runtime)
set_target_properties(weft_control PROPERTIES EXPORT_NAME control)
set_target_properties(weft_services PROPERTIES EXPORT_NAME services)
set_target_properties(weft_warnings PROPERTIES EXPORT_NAME warnings)
install(TARGETS weft_runtime weft_control weft_services weft weft_warnings
  EXPORT weftTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS weft-cluster weft-trace weft-sidecar
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The headers of the three source trees, which share the weft/ namespace
# folder, and the generated weft/version.hpp.
foreach(tree runtime actors services)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${tree}/weft
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
    FILES_MATCHING PATTERN "*.hpp" PATTERN "map" EXCLUDE)
endforeach()
install(FILES ${PROJECT_BINARY_DIR}/generated/weft/version.hpp
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/weft)

install(EXPORT weftTargets NAMESPACE weft:: DESTINATION ${WEFT_INSTALL_CMAKEDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/weftConfig.cmake.in
  ${PROJECT_BINARY_DIR}/weftConfig.cmake
  INSTALL_DESTINATION ${WEFT_INSTALL_CMAKEDIR})
# 0.x: a minor version may break its users, so 0.2 accepts 0.2.* only.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/weftConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/weftConfig.cmake
              ${PROJECT_BINARY_DIR}/weftConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/FindCAF.cmake
  DESTINATION ${WEFT_INSTALL_CMAKEDIR})
