#!/usr/bin/env bash
# The OpenAPI document's tests (check.py), with an interpreter that has
# Debian's python3-jsonschema: /usr/bin/python3 first, since a python3 found
# earlier on PATH (pyenv, a venv) may lack it or carry another version.
# usage: tests/openapi/run.sh [--bin build/racefree] [--db URL] [--only SUBSTR]
cd "$(dirname "$0")/../.." || exit 2
. tests/support/lib.sh
for py in /usr/bin/python3 python3; do
    if "$py" -c 'import jsonschema' 2>/dev/null; then
        exec timeout 600 "$py" tests/openapi/check.py "$@"
    fi
done
echo "!! no python3 with jsonschema: apt-get install python3-jsonschema" >&2
rf_bad python3-jsonschema
rf_summary
