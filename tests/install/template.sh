#!/usr/bin/env bash
# Installs weft from BUILD_DIR to a temporary prefix, then configures, builds
# and tests examples/template against it as a project elsewhere would
# (find_package(weft 0.2 CONFIG REQUIRED), weft::weft), and runs the
# service's --version and --help. No broker: the template's test uses the
# test driver.
#
#   tests/install/template.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=${1:?usage: template.sh BUILD_DIR SOURCE_DIR}
src=${2:?usage: template.sh BUILD_DIR SOURCE_DIR}
work=$(mktemp -d /tmp/weft-install-XXXXXX)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" >"$work/install.log"
for f in lib/cmake/weft/weftConfig.cmake lib/cmake/weft/weftConfigVersion.cmake \
  include/weft/node.hpp include/weft/version.hpp include/weft/services/test_driver.hpp \
  bin/weft-cluster bin/weft-sidecar; do
  [[ -e $work/prefix/$f ]] || { echo "template.sh: $f was not installed" >&2; exit 1; }
done

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cp -r "$src/examples/template" "$work/project"
cmake -S "$work/project" -B "$work/project/build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$work/prefix" "${launcher[@]}" >"$work/configure.log" ||
  { cat "$work/configure.log" >&2; exit 1; }
cmake --build "$work/project/build" >"$work/build.log" ||
  { tail -50 "$work/build.log" >&2; exit 1; }
ctest --test-dir "$work/project/build" --output-on-failure

version=$("$work/project/build/visits" --version)
echo "$version"
want=$(sed -n 's/^project(weft VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
[[ $version == *"weft $want"* ]] ||
  { echo "template.sh: --version said '$version', not weft $want" >&2; exit 1; }
help=$("$work/project/build/visits" --help)
[[ $help == *--application.id* ]] ||
  { echo "template.sh: --help does not list application.id" >&2; exit 1; }

# A version the package does not offer is refused by find_package.
sed -i 's/find_package(weft 0.2 /find_package(weft 9.9 /' "$work/project/CMakeLists.txt"
if cmake -S "$work/project" -B "$work/project/build-9" -G Ninja \
  -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/configure-9.log" 2>&1; then
  echo "template.sh: find_package(weft 9.9) was accepted" >&2
  exit 1
fi
grep -q 'weft' "$work/configure-9.log"
echo "template.sh: installed weft found, the template built, its test and --version passed"
