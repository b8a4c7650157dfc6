#!/usr/bin/env bash
# The runs behind results/async/ (async.md, async.json, the figures, runs/*.json), in the order
# they were run. Every run is kept in results/async/runs/ under a hash of its whole
# configuration, so this script reuses them all and only rewrites the report; delete runs/ to
# train them again (about 2 hours on a shared 2-core machine). Some of these commands ran at
# the same time with other --out directories whose runs/ were then copied here: a run's file
# depends on its configuration only, not on where it was written.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=(--data "${ADADELTA_DATA:-$HOME/.cache/adadelta/mnist}")
out=(--out results/async)
# every method setting, simulated, 2000 updates, 3 seeds
adadelta async --ray none --simulate 1,4,16,100,200 --seeds 3 "${data[@]}" "${out[@]}"
# 100 and 200 simulated replicas for 10000 updates, 3 seeds
adadelta async --ray none --simulate 100,200 --updates 10000 --seeds 3 "${data[@]}" "${out[@]}"
# real Ray: 16 replicas (timed: the command took 2 min 8 s), then 4 and 1
adadelta async --ray 16 --simulate none --methods ADADELTA "${data[@]}" "${out[@]}"
adadelta async --ray 4,1 --simulate none --methods ADADELTA,ADAGRAD "${data[@]}" "${out[@]}"
# the simulator at two more step-time spreads, to set against the real staleness
for jitter in 0 0.1; do
  adadelta async --ray none --simulate 4,16 --jitter "$jitter" --methods ADADELTA,ADAGRAD \
    "${data[@]}" "${out[@]}"
done
adadelta async --ray 16 --simulate none --methods ADAGRAD "${data[@]}" "${out[@]}"
# MOMENTUM on real Ray at 4 and 16 replicas, its three learning rates
adadelta async --ray 4,16 --simulate none --methods MOMENTUM "${data[@]}" "${out[@]}"
