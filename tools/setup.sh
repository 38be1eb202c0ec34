#!/usr/bin/env bash
# Idempotent set-up of a Debian 12 machine for weft: installs the missing
# Debian packages (apt-get update only when something is missing), then the
# local Kafka broker's jars (tools/weft-broker install). A re-run with
# everything present takes well under a second and changes nothing.
#
# Runs as root, or through sudo when it is available. Set WEFT_SKIP_SETUP=1
# to skip it entirely (e.g. on a machine prepared some other way).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [[ ${WEFT_SKIP_SETUP:-0} == 1 ]]; then
  exit 0
fi

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libcaf-dev librdkafka-dev librocksdb-dev libcereal-dev catch2
  libssl-dev openssl libjemalloc-dev
  libcpp-httplib-dev libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  clang-format
  clang-14 libclang-rt-14-dev
  default-jdk-headless maven
  python3 time
  prometheus graphviz
  chromium chromium-driver
)

say() { printf 'setup: %s\n' "$*"; }

installed() {
  [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# Any JDK 11+ already on the PATH (e.g. openjdk-17-jdk-headless) stands in for
# default-jdk-headless; Kafka 3.9 brokers run on Java 11, 17 and 21.
have_jdk() {
  command -v java >/dev/null && command -v javac >/dev/null || return 1
  local v
  v=$(java -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p')
  [[ $v =~ ^[0-9]+$ ]] && ((v >= 11))
}

missing=()
for p in "${PACKAGES[@]}"; do
  if [[ $p == default-jdk-headless ]] && have_jdk; then
    continue
  fi
  installed "$p" || missing+=("$p")
done

if ((${#missing[@]})); then
  command -v apt-get >/dev/null || { say "error: no apt-get; install by hand: ${missing[*]}" >&2; exit 1; }
  SUDO=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || { say "error: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
    SUDO=(sudo)
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq "${missing[@]}"
fi

"$ROOT/tools/weft-broker" install
say "ok: ${#PACKAGES[@]} Debian packages and the Kafka jars are present"
