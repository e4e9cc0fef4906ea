#!/usr/bin/env bash
# Reproduces one row of docs/reproduction.md: trains the run (or resumes it where it
# stopped) and evaluates it as the table does.
#
#   docs/reproduce.sh ROW [RUNS_DIR]       e.g. docs/reproduce.sh burda-vae-k1
#
# ROW is one of the names below; runs go to RUNS_DIR/ROW (default runs/ROW). Set VAE to a
# built binary to skip cargo (VAE=target/release/vae docs/reproduce.sh ...), and THREADS to
# train on fewer cores (THREADS=1 runs two rows side by side). Every run uses seed 1; its
# wall-clock time is the sum of the "seconds" of metrics.jsonl.
set -euo pipefail

row=${1:-}
runs=${2:-runs}
vae=${VAE:-cargo run --release --quiet --}

# Burda, Grosse & Salakhutdinov (2015), table 1, one stochastic layer: 784-200-200-50 tanh,
# dynamically binarized MNIST, Adam (ε 1e-4) on batches of 20, 3^i epochs at 1e-3·10^(−i/7)
# for i = 0…7 (3,280 epochs), Glorot's initialisation. Their code also starts the output bias
# at the logit of the training set's mean pixel (--output-bias data-mean); burda-vae-k1 and
# burda-iwae-k5 were trained before that option existed, and keep the flags they were trained
# with; burda-vae-k1-data-mean is the k = 1 row retrained with it, to measure what it is worth.
burda="--hidden-dim 200 --hidden-layers 2 --latent-dim 50 --activation tanh --binarize dynamic
       --batch-size 20 --lr-schedule burda --adam-eps 1e-4 --init glorot --seed 1"

case "$row" in
  burda-vae-k1)   flags="$burda" ;;
  # The same row with its products in bf16 (issue 25: within 0.3 nats of the f32 row).
  burda-vae-k1-bf16) flags="$burda --precision bf16" ;;
  burda-vae-k1-data-mean) flags="$burda --output-bias data-mean" ;;
  burda-vae-k5)   flags="$burda --k 5 --output-bias data-mean" ;;
  burda-vae-k5-init-bias) flags="$burda --k 5" ;;
  burda-iwae-k5)  flags="$burda --objective iwae --k 5" ;;
  burda-vae-k50)  flags="$burda --k 50 --output-bias data-mean" ;;
  burda-iwae-k50) flags="$burda --objective iwae --k 50 --output-bias data-mean" ;;
  # Tomczak & Welling (2018)'s VampPrior on the same architecture and data, with their batch
  # of 100, 500 pseudo-inputs and 100 epochs of KL warm-up (without it the tanh encoder
  # collapses onto the prior in the first epoch), beside the standard prior trained the same way.
  vamp)           flags="${burda/--batch-size 20/--batch-size 100} --kl-warmup 100 --prior vamp --pseudo-inputs 500" ;;
  vamp-baseline)  flags="${burda/--batch-size 20/--batch-size 100} --kl-warmup 100" ;;
  vamp-baseline-nowarmup) flags="${burda/--batch-size 20/--batch-size 100}" ;;
  # The tutorial's models as they are, sampled from the prior and from a per-label mixture.
  tutorial-vae)   flags="--model vae --seed 1" ;;
  tutorial-cvae)  flags="--model cvae --seed 1" ;;
  *)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
    echo "rows: burda-vae-k1 burda-vae-k1-bf16 burda-vae-k1-data-mean burda-vae-k5 burda-vae-k5-init-bias burda-iwae-k5 burda-vae-k50 burda-iwae-k50 vamp vamp-baseline vamp-baseline-nowarmup tutorial-vae tutorial-cvae" >&2
    exit 2
    ;;
esac

dir="$runs/$row"
if [ -f "$dir/config.json" ]; then
  # shellcheck disable=SC2086
  $vae train --resume "$dir"
else
  # shellcheck disable=SC2086
  $vae train $flags ${THREADS:+--threads $THREADS} --out "$dir"
fi

case "$row" in
  tutorial-*)
    # Sample scores from the prior and from a 10-component mixture per label.
    [ -f "$runs/classifier-mnist/config.json" ] || $vae classifier train --out "$runs/classifier-mnist"
    $vae fit-sampler "$dir" --gmm 10
    for sampler in prior gmm; do
      $vae eval "$dir" --sampler "$sampler" --k 10 --limit 1000 --generated 10000 -o "$dir/eval-$sampler.json"
    done
    ;;
  *)
    # The papers' test NLL: IWAE with k = 5000 on the 10,000 test images.
    $vae eval "$dir" --k 5000 --generated 0
    ;;
esac
