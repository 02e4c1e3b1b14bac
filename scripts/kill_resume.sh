#!/usr/bin/env bash
# Kills a tiny training run with SIGKILL at random moments, resumes it each time (resume: auto), and
# checks that every logged loss equals the uninterrupted run's, bit for bit.
#
#   scripts/kill_resume.sh [kills=100] [steps=300]
#
# Needs the release build of the TrainingProbe test executable:
#   swift build -c release --build-tests
set -euo pipefail
kills=${1:-100}
steps=${2:-300}
root=$(cd "$(dirname "$0")/.." && pwd)
probe="$root/.build/release/TrainingProbe"
[ -x "$probe" ] || { echo "missing $probe: run swift build -c release --build-tests" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$probe" "$work/reference" "$steps" 1 "$work/data" >/dev/null 2>&1
[ "$(wc -l < "$work/reference/losses.txt")" -eq "$steps" ] || { echo "reference run incomplete" >&2; exit 1; }

landed=0
launches=0
while [ "$landed" -lt "$kills" ]; do
    "$probe" "$work/run" "$steps" 1 "$work/data" >/dev/null 2>&1 &
    pid=$!
    launches=$((launches + 1))
    # A random moment between 0.05 s and 0.8 s after launch (start-up, mid-step or mid-checkpoint).
    sleep "0.$(printf '%02d' $((RANDOM % 76 + 5)))"
    if kill -KILL "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null || true
        landed=$((landed + 1))
    else
        wait "$pid" || { echo "probe failed (exit $?)" >&2; exit 1; }
        echo "the run finished before $kills kills landed ($landed); use more steps" >&2
        exit 1
    fi
done
# Let the last launch finish the run.
"$probe" "$work/run" "$steps" 1 "$work/data" >/dev/null 2>&1

awk -v kills="$landed" -v launches="$launches" '
    NR == FNR { want[$1] = $2 " " $3; next }
    { n++; if (want[$1] != $2 " " $3) { bad++; if (bad <= 5) print "step " $1 ": " $2 " " $3 " vs " want[$1] } seen[$1] = 1 }
    END {
        missing = 0; for (s in want) if (!(s in seen)) missing++
        printf "%d SIGKILLs over %d launches; %d logged steps (%d distinct, %d re-done after kills); %d differ from the uninterrupted run; %d missing\n", kills, launches + 1, n, length(seen), n - length(seen), bad, missing
        exit (bad > 0 || missing > 0)
    }' "$work/reference/losses.txt" "$work/run/losses.txt"
