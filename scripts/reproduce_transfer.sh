#!/usr/bin/env bash
# Regenerate docs/transfer.md and docs/transfer.json (the transfer matrix between the two shipped
# toys, cogvideox-i2v "toy" and wan-i2v "toy-wan", and their ensemble) the way they were made.
# The rows run as three processes, one CPU thread each, sharing one cache (runs/transfer); the last
# call reads every cached cell and writes the documents. About 1 h on 2 busy cores.
# Usage: scripts/reproduce_transfer.sh   (from the repository root, after ./run.sh test or ./run.sh demo)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1
mkdir -p runs/transfer
TR=(benchmarks/transfer.py --images 8 --seeds 0,1 --steps 25 --work runs/transfer --threads 1)
$PY "${TR[@]}" --sources cogvideox-toy,noise --no-render > runs/transfer/cog.log 2>&1 &
a=$!
$PY "${TR[@]}" --sources wan-toy --no-render > runs/transfer/wan.log 2>&1 &
b=$!
$PY "${TR[@]}" --sources ensemble --no-render > runs/transfer/ensemble.log 2>&1
wait $a $b
$PY "${TR[@]}" --out docs/
echo "done: docs/transfer.md docs/transfer.json"
