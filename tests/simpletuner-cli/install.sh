#!/usr/bin/env bash
# Installs SimpleTuner 4.10.1's own CLI, unmodified, from PyPI into a virtualenv (default
# ~/.cache/cloudtuner/simpletuner-cli; ST_CLI_VENV overrides), for the tests that drive it against
# cloudtuner. The wheel declares Python >= 3.12 but its CLI runs on 3.11; it is installed without its
# training stack (--no-deps) plus the two packages the `cloud` commands import. Prints the venv path.
set -euo pipefail
venv="${ST_CLI_VENV:-$HOME/.cache/cloudtuner/simpletuner-cli}"
if [ -x "$venv/bin/simpletuner" ]; then echo "$venv"; exit 0; fi
# Tests start this at once (two in simpletuner_cli.rs): one installs while the others wait on the
# lock, then find the finished venv. A venv left half-made by a killed run is made again.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ -x "$venv/bin/simpletuner" ]; then echo "$venv"; exit 0; fi
rm -rf "$venv"
py="${PYTHON:-$(command -v python3.11 || command -v python3)}"
"$py" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
mkdir -p "$venv.dl"
[ -f "$venv.dl/simpletuner-4.10.1-py3-none-any.whl" ] || \
  "$py" -m pip download --quiet simpletuner==4.10.1 --no-deps --python-version 3.12 \
    --only-binary=:all: -d "$venv.dl" >&2
"$py" -m venv "$venv"
"$venv/bin/pip" install --quiet fastapi==0.165.0 httpx==0.28.1 >&2
"$venv/bin/pip" install --quiet --no-deps --ignore-requires-python \
  "$venv.dl/simpletuner-4.10.1-py3-none-any.whl" >&2
[ -x "$venv/bin/simpletuner" ] || { echo "install.sh: $venv/bin/simpletuner missing after install" >&2; exit 1; }
echo "$venv"
