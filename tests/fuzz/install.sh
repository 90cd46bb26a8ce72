#!/usr/bin/env bash
# Installs schemathesis (pinned in tests/fuzz/requirements.txt) from PyPI into a virtualenv of its own
# (default ~/.cache/cloudtuner/schemathesis; FUZZ_VENV overrides), for the OpenAPI fuzz pass
# (tests/host/tests/fuzz.rs). Safe to start several times at once: one installs under a lock while the
# others wait, then find the finished venv. Prints the venv path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${FUZZ_VENV:-$HOME/.cache/cloudtuner/schemathesis}"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
ready() { [ -x "$venv/bin/schemathesis" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; }
if ready; then echo "$venv"; exit 0; fi
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if ready; then echo "$venv"; exit 0; fi
rm -rf "$venv"
py="${PYTHON:-$(command -v python3)}"
"$py" -m venv "$venv"
"$venv/bin/pip" install --quiet -r "$here/requirements.txt" >&2
echo "$want" > "$stamp"
echo "$venv"
