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

# The browser tests drive Debian's chromium with playwright-core, and prettier
# checks the UI's formatting (both pinned in tests/ui/package-lock.json; never
# a browser download).
if [ ! -d tests/ui/node_modules/playwright-core ] || [ ! -d tests/ui/node_modules/prettier ]; then
  echo "==> npm ci --prefix tests/ui (playwright-core, prettier)"
  npm ci --prefix tests/ui --no-audit --no-fund
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "tests need Debian's chromium: apt-get install -y chromium (.ci/run installs it)" >&2
  exit 1
fi

# The storage tests drive the endpoint with real boto3 and the AWS CLI (pinned in tests/requirements.txt).
if ! python3 -c "import boto3, awscli" 2>/dev/null || ! command -v aws >/dev/null; then
  echo "==> installing tests/requirements.txt (boto3, awscli)"
  python3 -m pip install --quiet -r tests/requirements.txt
fi

echo "==> building components: ${components[*]}"
cargo build --target wasm32-wasip2 --release "${components[@]}"

echo "==> running tests: ${native[*]}"
cargo test "${native[@]}"
