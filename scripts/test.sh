#!/usr/bin/env bash
# The whole test suite: install what is missing, then build and run every package's tests in
# release (numeric Swift in debug is too slow for the gradient checks).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift test -c release "$@"
