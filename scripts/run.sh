#!/usr/bin/env bash
# run.sh — set up, build and run tickerd. Without arguments it runs the
# embedded default (simulated market, page at http://127.0.0.1:8080/);
# arguments go to tickerd (e.g. -c etc/tickerd.json --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh run
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target tickerd
exec build/tickerd "$@"
