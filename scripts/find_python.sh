#!/usr/bin/env bash
# Print the path of a Python >= 3.12 interpreter, or fail loudly.
# On these machines python3 is 3.11 and pyenv keeps newer versions installed but inactive, so we
# prefer 3.12 (the version CI and the pins are tested with) and look beyond PATH: explicit $PYTHON, versioned names on PATH, then pyenv's versions directory.
set -u
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
candidates=()
[ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
for v in 3.12 3.13 3.14; do
    p=$(command -v "python$v" 2>/dev/null) && candidates+=("$p")
done
pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
if command -v pyenv >/dev/null 2>&1; then pyenv_root=$(pyenv root 2>/dev/null || echo "$pyenv_root"); fi
for d in $(ls -d "$pyenv_root"/versions/3.1[2-9]* 2>/dev/null | sort -V); do
    candidates+=("$d/bin/python3")
done
candidates+=("$(command -v python3 2>/dev/null)")
for c in "${candidates[@]}"; do
    [ -n "$c" ] && [ -x "$c" ] && ok "$c" && { echo "$c"; exit 0; }
done
echo "error: bayescale needs Python >= 3.12 and none was found (tried: ${candidates[*]}). Install one (e.g. 'pyenv install 3.12') or set PYTHON=/path/to/python3.12." >&2
exit 1
