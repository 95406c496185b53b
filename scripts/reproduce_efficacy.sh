#!/usr/bin/env bash
# Regenerate every efficacy document under docs/ on the shipped toy model, the way they were made:
#   docs/efficacy.md/.json      headline + transfer, rollout-collapse, baselines, ablations
#                               (rollout-freeze: eps, eot, steps, unroll, spaces; vid-freeze: layers,
#                               attention)
#   docs/latent-bound*.md/.json the latent-space bounds (freeze, collapse)
#   docs/attention-effect.md    Vid-Freeze's attention loss vs the rollout motion loss
#   docs/seed-variants-*.md     the seed methods' variants (docs/fidelity.md): Dual-Space vs RGB,
#                               Anti-I2V's terms removed, Vid-Freeze's budget (about 4 h more)
#   docs/attention-estimates.md each attention estimate's gradient vs the exact maps'
# Independent runs go two at a time, one CPU thread each: about 2.5 h on 2 cores, plus about 1 h
# to train the second toy model for the transfer rows if runs/toy/seed1/export does not exist yet.
# Usage: scripts/reproduce_efficacy.sh   (from the repository root, after ./run.sh test or ./run.sh demo)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export OMP_NUM_THREADS=1
mkdir -p runs
if [ ! -f runs/toy/seed1/export/model_index.json ]; then
  $PY -m stillguard.toy.training.train --out runs/toy/seed1 --minutes-vae 15 --minutes-transformer 40 \
    --seed 1 --device cpu --threads 1 --export runs/toy/seed1/export
fi
EFF=(benchmarks/efficacy.py --model toy --work runs/efficacy --threads 1)
RF=(--no-headline --ablation-method rollout-freeze)
run() { local name=$1; shift; $PY "${EFF[@]}" --out "runs/eff-$name" "$@" > "runs/eff-$name.log" 2>&1; }

$PY "${EFF[@]}" --out docs/ --transfer-model runs/toy/seed1/export > runs/eff-A.log 2>&1 &
a=$!
run B "${RF[@]}" --ablation eps --ablation eot
run D --only rollout-collapse --section collapse
wait $a
run C "${RF[@]}" --images 4 --steps 50 --ablation steps --ablation unroll &
c=$!
run E --no-headline --ablation baselines
wait $c
run F "${RF[@]}" --images 4 --steps 50 --ablation spaces &
f=$!
run G --no-headline --images 4 --ablation layers --ablation attention
wait $f
$PY benchmarks/latent_bound.py --model toy --out docs/ --threads 1 > runs/bound-freeze.log 2>&1 &
b=$!
$PY benchmarks/latent_bound.py --model toy --out docs/ --threads 1 --objective collapse --eps 8,16,inf \
  --images 4 --steps 60 > runs/bound-collapse.log 2>&1
wait $b
$PY benchmarks/attention_effect.py --model toy --images 4 --steps 100 --draws 16 --out docs/ \
  > runs/attn.log 2>&1
merge=()
for x in B C D E F G; do merge+=(--merge-from "runs/eff-$x/efficacy.json"); done
$PY "${EFF[@]}" --out docs/ --no-headline --merge "${merge[@]}"
SV=(benchmarks/seed_variants.py --out docs/ --work runs/seed-variants)
$PY "${SV[@]}" --study dsp --only 0,1,2,4,5 > runs/sv-dsp.log 2>&1 &
s=$!
$PY "${SV[@]}" --study terms --images 4 > runs/sv-terms.log 2>&1
$PY "${SV[@]}" --study vf-budget --images 4 > runs/sv-vfb.log 2>&1
wait $s
$PY benchmarks/attention_estimates.py --real --out docs/ > runs/attention-estimates.log 2>&1
echo "done: docs/efficacy.md docs/latent-bound.md docs/latent-bound-collapse.md docs/attention-effect.md"
echo "      docs/seed-variants-*.md docs/attention-estimates.md"
