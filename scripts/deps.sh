#!/usr/bin/env bash
# Installs every Debian package racefree needs to build, test and benchmark.
# One list, idempotent: apt-get runs only when something is missing.
set -euo pipefail

PACKAGES=(
    # build
    build-essential pkg-config
    libmicrohttpd-dev libjansson-dev libsqlite3-dev libsodium-dev libpq-dev
    # racefree probe: https:// (OpenSSL) and HTTP/2 framing (nghttp2)
    libssl-dev libnghttp2-dev
    # tests: sqlite shell, PostgreSQL server (started per test run), valgrind,
    # clang + libFuzzer for the fuzz targets
    sqlite3 postgresql valgrind clang libfuzzer-14-dev libclang-rt-14-dev
    # tools, data; clang-format for make format-check
    clang-format curl ca-certificates unicode-data jq python3 python3-jsonschema
    # tests: headless browser that renders the probe's HTML race report
    chromium
    # tests: the probe over TLS and HTTP/2 (openssl makes the test certificate,
    # nghttpx fronts the fixture with h2, h2c and HTTP/1.1 over TLS)
    openssl nghttp2-proxy
    # benchmarks (bench/run): HTTP load generator, the nginx reference
    wrk nginx-light
    # benchmarks (bench/probe): Node for Promise.all and the Node fixture, Go for
    # the Go fixture
    nodejs golang-go
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
