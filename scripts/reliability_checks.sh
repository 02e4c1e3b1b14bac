#!/usr/bin/env bash
# Command-line reliability checks of the `weights` tool, the cases easier to show from a shell than in a
# test: a convert onto a full disk (tmpfs, needs root), temporaries left by killed converts and removed
# by the next run, convert onto its own input, and a FIFO given as input.
#
# Usage (after `swift build -c release`): sudo scripts/reliability_checks.sh [.build/release]
set -u
BIN=${1:-.build/release}
W="$BIN/weights"
WORK=$(mktemp -d /tmp/sightline-reliability-XXXXXX)
trap 'umount "$WORK/small" 2>/dev/null; rm -rf "$WORK"' EXIT

python3 - "$WORK" <<'EOF'
import sys, numpy as np
from safetensors.numpy import save_file
d = sys.argv[1]
rng = np.random.default_rng(0)
save_file({f"layers.{i}.weight": rng.standard_normal((256, 256)).astype("f4") for i in range(8)}, d + "/big.safetensors")
save_file({"w": np.ones((4, 4), dtype="f4")}, d + "/small.safetensors")
EOF

echo "== convert onto a full disk (256 KiB tmpfs; the output needs 2 MiB)"
mkdir -p "$WORK/small"
if mount -t tmpfs -o size=256k tmpfs "$WORK/small" 2>/dev/null; then
    "$W" convert "$WORK/small.safetensors" "$WORK/small/out.h5" >/dev/null && echo "previous out.h5 written"
    before=$(sha256sum "$WORK/small/out.h5" | cut -d' ' -f1)
    "$W" convert "$WORK/big.safetensors" "$WORK/small/out.h5"
    echo "exit status: $?"
    after=$(sha256sum "$WORK/small/out.h5" | cut -d' ' -f1)
    [ "$before" = "$after" ] && echo "previous out.h5 unchanged" || echo "PREVIOUS out.h5 CHANGED"
    echo "files left: $(ls -A "$WORK/small" | tr '\n' ' ')"
    umount "$WORK/small"
else
    echo "skipped (cannot mount tmpfs: not root?)"
fi

echo "== 30 converts killed at random moments, then one more run in the same directory"
mkdir -p "$WORK/kill"
for i in $(seq 1 30); do
    "$W" convert "$WORK/big.safetensors" "$WORK/kill/out.h5" >/dev/null 2>&1 &
    pid=$!
    sleep "0.$((RANDOM % 30))"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
done
echo "temporaries after the kills: $(ls -A "$WORK/kill" | grep -c '\.tmp-')"
"$W" convert "$WORK/small.safetensors" "$WORK/kill/other.h5" >/dev/null
echo "temporaries after the next run: $(ls -A "$WORK/kill" | grep -c '\.tmp-')"

echo "== convert --dtype float16 onto its own input"
cp "$WORK/small.safetensors" "$WORK/self.safetensors"
"$W" convert --dtype float16 "$WORK/self.safetensors" "$WORK/self.safetensors"
echo "exit status: $?"
ln "$WORK/self.safetensors" "$WORK/hardlink.safetensors"
"$W" convert --dtype float16 "$WORK/self.safetensors" "$WORK/hardlink.safetensors"
echo "exit status (hard link): $?"

echo "== a FIFO as input"
mkfifo "$WORK/pipe.safetensors" "$WORK/pipe.h5"
timeout 10 "$W" inspect "$WORK/pipe.safetensors"; echo "exit status: $? (124 would be a hang)"
timeout 10 "$W" inspect "$WORK/pipe.h5"; echo "exit status: $? (124 would be a hang)"
