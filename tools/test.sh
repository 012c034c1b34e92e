#!/usr/bin/env bash
# pykd's test command (README): installs what it needs (idempotent), lints, runs the test suite,
# including the tiny end-to-end recipe run (--run-slow). Extra arguments go to pytest.
#   tools/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install.sh
. ./path.sh
echo "== ruff"
ruff check .
ruff format --check .
echo "== pytest"
python -m pytest -q --run-slow "$@"
