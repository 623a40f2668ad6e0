#!/usr/bin/env bash
# Installs the Debian 12 packages txcoord needs to build, run and test. Idempotent and quiet:
# it runs apt-get only when something is missing, and fails loudly if that fails.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config protobuf-compiler protobuf-compiler-grpc libprotobuf-dev
  libgrpc++-dev librocksdb-dev libabsl-dev libyaml-cpp-dev libgtest-dev libgmock-dev libpq-dev
  libmariadb-dev libmongoc-dev libcpp-httplib-dev libssl-dev
  # databases the agents and tests drive
  postgresql postgresql-client mariadb-server mariadb-client
  # test harness, model checking and demo client
  spin python3 python3-grpcio python3-protobuf python3-yaml python3-jsonschema
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get update -qq >/tmp/txcoord-apt.log 2>&1 ||
   ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >>/tmp/txcoord-apt.log 2>&1; then
  echo "install-deps: apt-get failed; last lines of /tmp/txcoord-apt.log:" >&2
  tail -20 /tmp/txcoord-apt.log >&2
  exit 1
fi
