#!/usr/bin/env bash
# pykd's test command (README): installs what it needs (idempotent), lints, runs the test suite,
# including the tiny end-to-end recipe run (--run-slow). Extra arguments go to pytest.
#   tools/test.sh [pytest args]
# The Kaldi tier (tests marked `kaldi`) runs against the built Kaldi in $PYKD_TEST_KALDI_ROOT,
# by default ../shared/kaldi when that exists; otherwise those tests skip with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install.sh
. ./path.sh
echo "== ruff"
ruff check .
ruff format --check .
if [ -z "${PYKD_TEST_KALDI_ROOT:-}" ] && [ -x ../shared/kaldi/src/bin/latgen-faster-mapped ]; then
  PYKD_TEST_KALDI_ROOT=$(cd ../shared/kaldi && pwd)
  export PYKD_TEST_KALDI_ROOT
fi
echo "== pytest (Kaldi tier: ${PYKD_TEST_KALDI_ROOT:-not run, PYKD_TEST_KALDI_ROOT unset})"
python -m pytest -q --run-slow "$@"
