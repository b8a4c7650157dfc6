#!/usr/bin/env bash
# The accuracy runs of the README's "Compact state": ADADELTA alone with its state in one format
# (bfloat16 or float8), full MNIST, seeds 0, 1 and 2 as in results/ (Table 2, tanh, Figure
# 1). One thread each, so that formats can run side by side. Then
# benchmarks/compact_accuracy.py compares them with float32 state (results/*.json).
#   results/compact/run.sh bfloat16 ../shared/data/mnist
set -euo pipefail
format=$1
data=$2
export NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
run() { python -m adadelta reproduce "$@" --data "$data" --no-download \
  --no-progress --state-dtype "$format" --out "results/compact/$format"; }
run table2 --seeds 3
run tanh --seeds 3
run figure1 --seeds 3
