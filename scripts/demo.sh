#!/usr/bin/env bash
# The main job: install what is missing, build in release, run `trainer demo` (the Chain-of-Sight recipe
# in miniature on the built-in synthetic world: clip -> pretrain at 32 tokens -> scale-tokens ->
# LoRA finetune -> held-out evaluation; table and PASS/FAIL criteria; runs/demo/summary.json).
# Extra arguments go to `trainer demo` (e.g. --compare, --quick, --output DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product trainer
.build/release/trainer demo "$@"
