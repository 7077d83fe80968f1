#!/usr/bin/env bash
# Install into .venv, then run the quick start on the built-in digits example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/python tools/quickstart.py "$@"
