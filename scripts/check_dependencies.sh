#!/usr/bin/env bash
# Fails when a target imports a module its manifest does not declare, declares one it never imports,
# or when anything outside Checkpoint uses HDF5; prints the package graph. Run by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/check_dependencies.py
