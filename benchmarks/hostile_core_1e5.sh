#!/usr/bin/env bash
# The back-to-back 1e5 ADADELTA step before (commit BASE, default f0bc8c8) and after issue 12's checks,
# interleaved: [BASE=commit] [PYTHON=python] bash benchmarks/hostile_core_1e5.sh [ROUNDS] (from the repository root).
set -euo pipefail
before=$(mktemp -d)
git archive "${BASE:-f0bc8c8}" src | tar -x -C "$before"
for r in $(seq 1 "${1:-2}"); do
  for v in before after; do
    src=src; [ "$v" = before ] && src="$before/src"
    PYTHONPATH="$src" "${PYTHON:-python}" -m adadelta bench --sizes 1e5 --mix 0 \
      --only ours,ours-unchecked,torch-foreach --no-progress --out "$before/$v-$r" > /dev/null
    echo "$v $r $(grep '^| 1e5' "$before/$v-$r/bench.md")"
  done
done
rm -rf "$before"
