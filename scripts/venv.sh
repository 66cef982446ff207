#!/usr/bin/env bash
# Create .venv with Python >= 3.12 and install bayescale with its dev extras. Idempotent: a venv
# whose install stamp is newer than pyproject.toml is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)'; then
    py=$(bash scripts/find_python.sh)
    echo "creating $venv with $py ($("$py" --version))" >&2
    rm -rf "$venv"
    "$py" -m venv "$venv"
fi
if [ ! -f "$venv/.installed" ] || [ pyproject.toml -nt "$venv/.installed" ]; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e ".[dev]"
    touch "$venv/.installed"
fi
