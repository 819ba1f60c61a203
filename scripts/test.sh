#!/usr/bin/env bash
# test.sh — set up, build and run the whole suite twice: a normal build, then
# an AddressSanitizer + UndefinedBehaviorSanitizer build; then a short libFuzzer
# run over each venue parser (clang). Exits non-zero if
# any test fails in either. Artifacts (screenshots, logs) go to artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
mkdir -p artifacts
jobs=$(nproc)

run_suite() { # name, build dir, cmake args...
  local name=$1 dir=$2; shift 2
  echo "=== $name build ===" >&2
  cmake -S . -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  echo "=== $name suite ===" >&2
  # --repeat until-pass:2: a test that fails is run once more, a safety net for
  # timing on a loaded 2-core box under ASan (a real failure fails twice; the
  # retries are visible in the log). The browser tests' own flake was a test
  # race, fixed; prefer fixing a flaky test to leaning on this.
  (cd "$dir" && ctest --output-on-failure -j"$jobs" --repeat until-pass:2)
}

run_suite release build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTICKERD_SANITIZE=OFF -DTICKERD_BUILD_BENCH=ON
# halt_on_error makes any sanitizer report fail the process, so the tests
# that check exit codes and liveness see it.
export ASAN_OPTIONS=halt_on_error=1:abort_on_error=0:detect_leaks=1:exitcode=86
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
run_suite sanitize build-asan -DCMAKE_BUILD_TYPE=Debug -DTICKERD_SANITIZE=ON -DTICKERD_BUILD_BENCH=ON
unset ASAN_OPTIONS UBSAN_OPTIONS
# A short libFuzzer run per venue parser: libFuzzer needs clang, so its own build.
echo "=== fuzz build (clang) ===" >&2
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DTICKERD_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_venue_binance fuzz_venue_coinbase fuzz_venue_kraken fuzz_venue_coingecko fuzz_venue_okx fuzz_venue_bybit fuzz_venue_bitstamp fuzz_venue_generic fuzz_sio fuzz_guard_head fuzz_ws_rx fuzz_session fuzz_auth fuzz_http_query
echo "=== fuzz suite ===" >&2
(cd build-fuzz && ctest --output-on-failure -R '^fuzz_')
echo "test.sh: all suites passed" >&2
