#!/usr/bin/env bash
# setup.sh — install what building, running and testing tickerd needs, and
# only what is missing. Usage: scripts/setup.sh [run|test]   (default: run)
#   run:  compiler toolchain and the libraries tickerd links
#   test: the above plus Node.js, Chromium and the npm test tools (tests/node_modules)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}

pkgs=(build-essential cmake pkg-config libwebsockets-dev libjansson-dev libcurl4-openssl-dev libsqlite3-dev)
pkgs+=(libssl-dev)  # server.tls: certificate checks and the SSL_CTX defaults
pkgs+=(libsystemd-dev)  # sd_notify for the Type=notify unit
pkgs+=(libhiredis-dev)  # the cluster roles' Redis client (docs/cluster.md)
pkgs+=(dpkg-dev)  # dpkg-shlibdeps: the .deb's Depends (CPACK_DEBIAN_PACKAGE_SHLIBDEPS)
pkgs+=(libuv1-dev libwebsockets-evlib-uv)  # epoll event loop for lws (tickerd falls back to poll() without)
if [ "$mode" = test ]; then
  pkgs+=(openssl)  # the TLS tests make their certificates with the CLI
  pkgs+=(chromium)  # the dashboard's real-browser tests (driven by playwright-core)
  pkgs+=(clang libclang-rt-14-dev)  # libFuzzer targets over the venue parsers
  pkgs+=(redis-server)  # a real Redis for the cluster tests
  command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
  command -v npm >/dev/null 2>&1 || pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$mode" = test ]; then
  # npm ci when node_modules is missing or older than the lock file.
  stamp=tests/node_modules/.package-lock.json
  if [ ! -f "$stamp" ] || [ tests/package-lock.json -nt "$stamp" ]; then
    echo "setup: npm ci (tests/)" >&2
    (cd tests && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
