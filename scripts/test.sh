#!/usr/bin/env bash
# The whole test suite: install what is missing (the interop stack included), then build and run every
# package's tests in release (numeric Swift in debug is too slow for the gradient checks).
# Under CI (CI=true) a skipped test fails the run: every HF/PEFT/Python interop test must execute.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --interop
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
# One test at a time: OpenBLAS's thread count is process-wide, and the kernels switch it to one thread
# around small products (`BLAS.withSingleThread`), so suites running side by side in one process change
# each other's GEMM threading; the bit-for-bit resume tests then fail now and then under load.
swift test -c release --no-parallel "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then exit "$status"; fi
# The PyTorch side (python/sightline_torch), from the source tree.
set +e
"${SIGHTLINE_PYTHON:-python3}" -m pytest python/tests -q -rs 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then exit "$status"; fi
if [ "${CI:-}" = true ]; then
  # Swift Testing's lines start with a status symbol ("➜ Test name() skipped: ..."); pytest's with
  # SKIPPED (-rs) and its summary counts them. Log lines of the tests themselves never start so.
  skipped="$(grep -E '^[^[:alnum:][:space:]]+ (Test|Suite) .* skipped|^SKIPPED|^=* ?[0-9]+ (passed|failed)[^=]*[0-9]+ skipped' "$log" || true)"
  if [ -n "$skipped" ]; then
    echo "test.sh: CI requires every test to run; these were skipped:" >&2
    echo "$skipped" >&2
    exit 1
  fi
  echo "test.sh: no test was skipped"
fi
