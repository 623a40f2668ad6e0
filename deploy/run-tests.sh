#!/usr/bin/env bash
# Installs what is needed, builds, and runs the whole test suite (unit, integration against real
# PostgreSQL, crash recovery, deploy checks, proto contract). Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTXN_WERROR=ON >/dev/null
cmake --build build -j2
ctest --test-dir build --output-on-failure "$@"
