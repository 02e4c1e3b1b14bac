#!/usr/bin/env bash
# The main job: install what is missing, build in release, run the trainer's smoke run
# (a GEMM through Tensor: GFLOP/s and the BLAS kernel in use).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product trainer
.build/release/trainer smoke "$@"
