#!/usr/bin/env bash
# Trains and scores docs/disentanglement.md's table: five models × three seeds on dSprites,
# 4,000 steps of 64 each, two runs at a time on one thread each, then prints the table.
#
#   docs/disentanglement.sh [RUNS_DIR]        (default runs/disentanglement)
#
# Set VAE to a built binary to skip cargo (VAE=target/release/vae docs/disentanglement.sh),
# JOBS to run more or fewer at once. A run already scored is kept; one trained but not
# scored is scored. About 90 minutes on two cores (AMD EPYC Zen 4).
set -euo pipefail

runs=${1:-runs/disentanglement}
export VAE=${VAE:-cargo run --release --quiet --}
export RUNS=$runs
mkdir -p "$runs"

one() {
  local name=$1; shift
  local dir=$RUNS/$name
  if [ ! -f "$dir/evals.jsonl" ] || ! grep -q dci "$dir/evals.jsonl"; then
    if [ ! -f "$dir/model.safetensors" ]; then
      rm -rf "$dir"
      # shellcheck disable=SC2086
      $VAE train --dataset dsprites --batch-size 64 --lr 5e-4 --epochs 1 --threads 1 \
        --train-limit 256000 "$@" --out "$dir" > "$RUNS/$name.train.log" 2>&1
    fi
    # shellcheck disable=SC2086
    $VAE disentanglement "$dir" --points 500 --repeats 2 --dci-points 10000 --threads 1 \
      > "$RUNS/$name.score.log" 2>&1
  fi
  echo "$(date +%H:%M:%S) $name scored"
}
export -f one

for seed in 1 2 3; do
  echo "b1-s$seed --beta 1 --seed $seed"
  echo "b4-s$seed --beta 4 --seed $seed"
  echo "b16-s$seed --beta 16 --seed $seed"
  echo "tcvae-s$seed --objective tcvae --beta 6 --seed $seed"
  echo "factorvae-s$seed --objective factorvae --gamma 35 --seed $seed"
done | xargs -P "${JOBS:-2}" -L 1 bash -c 'one "$@"' _

python3 "$(dirname "$0")/disentanglement_table.py" "$runs"
