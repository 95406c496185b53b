#!/usr/bin/env bash
# Regenerate the runs behind docs/benchmark.md on the two shipped toy models (CPU, offline):
#   runs/bench-speed  the speed figure: 3 methods x 2 targets x 3 attacks x 4 photos x 1 seed
#   runs/bench-toy    the table: every method x 2 targets x 5 attacks x 2 photos x 1 seed
#   the face metric's seconds per frame at 256 px
# Usage: scripts/reproduce_benchmark.sh   (from the repository root, after ./run.sh test)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
SG=".venv/bin/stillguard"
TARGETS=cogvideox-i2v:toy,wan-i2v:toy-wan
mkdir -p runs
time nice -n 10 $SG bench -o runs/bench-speed --targets $TARGETS \
  --methods vid-freeze,rollout-freeze:unroll=2,noise --attacks none,jpeg75,resize \
  --photos builtin:4 --seeds 0 --steps 25
time nice -n 10 $SG bench -o runs/bench-toy --targets $TARGETS \
  --methods vid-freeze,rollout-freeze:unroll=2,anti-i2v,rollout-collapse:unroll=2,i2vguard,photoguard,advdm,mist,sds,noise \
  --attacks none,jpeg75,resize,blur,noisy-upscale --photos builtin:2 --seeds 0 --steps 25
nice -n 10 .venv/bin/python benchmarks/face_speed.py --frames 16 --size 256
