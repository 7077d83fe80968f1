#!/usr/bin/env bash
# Create .venv (if missing) and install requirements.txt into it: ppt_ms itself, editable, with its
# dependencies and test extra (pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip "setuptools>=64" wheel
.venv/bin/python -m pip install --quiet --no-build-isolation -r requirements.txt
