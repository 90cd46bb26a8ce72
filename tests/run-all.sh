#!/usr/bin/env bash
# The one test command: builds every component (wasm32-wasip2, release, as
# spin.toml expects them) and runs every native and host test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Component crates are the cdylib crates; everything else without spin-sdk is native.
components=()
native=()
for toml in components/*/Cargo.toml tests/*/Cargo.toml; do
  name=$(basename "$(dirname "$toml")")
  if grep -q 'crate-type = \["cdylib"\]' "$toml"; then
    components+=(-p "$name")
  elif ! grep -q '^spin-sdk' "$toml"; then
    native+=(-p "$(sed -n 's/^name = "\(.*\)"/\1/p' "$toml" | head -n1)")
  fi
done

# What the tests need from the machine, installed when we can (root with apt,
# as on CI), or named exactly when we cannot.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  echo "==> rustup target add wasm32-wasip2"
  rustup target add wasm32-wasip2
fi
# Debian's chromium (browser tests, driven by playwright-core: never a browser
# download), redis-server (the scale-out tests and the suite's Redis pass).
packages=()
[ -x /usr/bin/chromium ] || packages+=(chromium)
command -v redis-server >/dev/null || packages+=(redis-server)
# curl and jq: the README's shell blocks run verbatim in a test.
command -v curl >/dev/null || packages+=(curl)
command -v jq >/dev/null || packages+=(jq)
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> apt-get install ${packages[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
  else
    echo "tests need Debian's ${packages[*]}: sudo apt-get install -y ${packages[*]}" >&2
    exit 1
  fi
fi
# playwright-core and prettier, pinned in tests/ui/package-lock.json.
if [ ! -d tests/ui/node_modules/playwright-core ] || [ ! -d tests/ui/node_modules/prettier ]; then
  echo "==> npm ci --prefix tests/ui (playwright-core, prettier)"
  npm ci --prefix tests/ui --no-audit --no-fund
fi

# The OpenAPI fuzz pass (tests/host/tests/fuzz.rs) installs pinned schemathesis into its own
# virtualenv (tests/fuzz/install.sh), under a lock, when it first runs.
# The storage tests drive the endpoint with real boto3 and the AWS CLI (pinned in tests/requirements.txt).
if ! python3 -c "import boto3, awscli" 2>/dev/null || ! command -v aws >/dev/null; then
  echo "==> installing tests/requirements.txt (boto3, awscli)"
  python3 -m pip install --quiet -r tests/requirements.txt
fi

echo "==> building components: ${components[*]}"
cargo build --target wasm32-wasip2 --release "${components[@]}"

# The same components built for Fermyon Cloud (spin.fermyon-cloud.toml: the store on Spin's SQLite,
# no wasi:keyvalue imports) and for Akamai Functions (spin.akamai.toml: Redis only), each in a target
# dir of its own; .cargo/config.toml's build-dir shares the compiled dependencies with the build above.
platform_packages=()
for p in $(grep -o 'release -p [a-z0-9-]*' spin.toml | awk '{print $3}' | sort -u); do platform_packages+=(-p "$p"); done
for platform in fermyon-cloud akamai; do
  echo "==> building the $platform variant"
  cargo build --target wasm32-wasip2 --release --target-dir "target/$platform" \
    --no-default-features --features "$platform" "${platform_packages[@]}"
done

# The test host on its own: built alone it has the feature set `cargo run -p cloudtuner-testhost`
# (the README's run command) has, so that command reuses this build instead of making another.
others=()
for p in "${native[@]}"; do [ "$p" = cloudtuner-testhost ] || [ "$p" = -p ] || others+=(-p "$p"); done
echo "==> running tests: ${others[*]}"
cargo test "${others[@]}"
echo "==> running tests: -p cloudtuner-testhost"
cargo test -p cloudtuner-testhost

# The same integration suites again with every app's data in a real Redis
# (one redis-server for the pass, each app under a key prefix of its own), so
# both stores are held to the same behaviour.
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis_dir=$(mktemp -d)
redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$redis_dir" --save "" --appendonly no \
  --daemonize no --logfile "$redis_dir/redis.log" &
redis_pid=$!
# Wait for it to exit before removing its folder: a redis-server still shutting down writes its
# log there, and `rm -rf` then fails with "Directory not empty" (it did, once, after a green run).
trap 'kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; rm -rf "$redis_dir"' EXIT
for _ in $(seq 100); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.05
done
suites=(--test jobs --test auth --test costs --test live --test storage --test endpoints --test served
  --test attacks)
echo "==> the integration suites again, on Redis (127.0.0.1:$redis_port)"
CLOUDTUNER_TEST_REDIS="127.0.0.1:$redis_port" cargo test -p cloudtuner-testhost "${suites[@]}"

# The platform passes: each platform's build under the host's profile of that platform (what it
# links, its limits, no scheduler). Fermyon Cloud's store (SQLite) is the one no other pass runs:
# the same suites as the Redis pass. Akamai's store is the Redis above: the racing, jobs and
# attacker's suites (tests/host/tests/platforms.rs races both builds in every pass).
echo "==> the integration suites on the Fermyon Cloud build (--platform fermyon-cloud)"
CLOUDTUNER_TEST_PLATFORM=fermyon-cloud cargo test -p cloudtuner-testhost "${suites[@]}"
echo "==> the jobs and attacker's suites on the Akamai build (--platform akamai, Redis)"
CLOUDTUNER_TEST_PLATFORM=akamai CLOUDTUNER_TEST_REDIS="127.0.0.1:$redis_port" \
  cargo test -p cloudtuner-testhost --test jobs --test attacks
