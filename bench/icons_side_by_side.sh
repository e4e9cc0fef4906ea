#!/usr/bin/env bash
# Issue 23's side by side on real colour pictures: for each likelihood and seed, `vae` and
# PyTorch (bench/torch_colour.py) train the same resnet on the same split for the same
# epochs, and each reports the test set's IWAE-1000 bound in bits per dimension.
#
#   python3 bench/icon_folder.py /tmp/icons       # the pictures (see its header)
#   VAE=target/release/vae ICONS=/tmp/icons OUT=/tmp/side bench/icons_side_by_side.sh
#
# Environment: VAE (a built binary; default target/release/vae), ICONS, OUT (results: one run
# directory and one PyTorch log per likelihood and seed, and table.md), EPOCHS (30), K (1000,
# importance samples of the test bound), SEEDS ("1 2 3"), LIKELIHOODS ("logistic-mixture gaussian"), THREADS (2), PYTHON (python3, with
# torch), SAME_NOISE (1: common random numbers. PyTorch starts from vae's initial weights for
# the seed, draws what vae draws (bench/vae_rng.py: shuffle, noise, dequantization), and its
# trained weights are evaluated by `vae eval` with the same evaluation noise as vae's, so the
# two figures differ only by the frameworks' rounding; PyTorch's weights go to
# OUT/torch-LIK-SEED/, a run directory). Finished pieces are kept: run it again to go on
# where it stopped. KL_WARMUP (0; N: both train with the KL term's weight warmed up over N
# epochs, `vae train --kl-warmup N` and torch_colour.py's KL_WARMUP=N). LR_SCHEDULE (constant;
# step:N:F: both multiply the learning rate by F every N epochs, `vae train --lr-schedule`
# and torch_colour.py's LR_SCHEDULE). Each run trains
# alone on THREADS threads, vae's and PyTorch's one after the other.
set -euo pipefail

vae=${VAE:-target/release/vae}
icons=${ICONS:-/tmp/icons}
out=${OUT:-/tmp/side}
epochs=${EPOCHS:-30}
k=${K:-1000}
seeds=${SEEDS:-"1 2 3"}
likelihoods=${LIKELIHOODS:-"logistic-mixture gaussian"}
threads=${THREADS:-2}
python=${PYTHON:-python3}
same=${SAME_NOISE:-0}
warmup=${KL_WARMUP:-0}
schedule=${LR_SCHEDULE:-constant}
here=$(cd "$(dirname "$0")" && pwd)

[ -d "$icons/train" ] && [ -d "$icons/test" ] || { echo "error: $icons has no train/ and test/: run bench/icon_folder.py $icons first" >&2; exit 2; }
"$python" -c "import torch" 2>/dev/null || { echo "error: $python cannot import torch (pip install torch)" >&2; exit 2; }
mkdir -p "$out"
model="--data-dir $icons --image-size 32 --arch resnet --batch-size 32 --threads $threads"
# Always passed, so both sides train alike whatever vae's defaults (the mixture's warm-up is 5).
anneal="--kl-warmup $warmup --lr-schedule $schedule"

for lik in $likelihoods; do
  for seed in $seeds; do
    run=$out/vae-$lik-$seed
    if [ ! -f "$run/eval.json" ]; then
      rm -rf "$run"
      echo "$(date +%T) vae     $lik seed $seed"
      # shellcheck disable=SC2086
      "$vae" train $model $anneal --epochs "$epochs" --likelihood "$lik" --seed "$seed" --out "$run" > "$run.log" 2>&1
      "$vae" eval "$run" --k "$k" --generated 0 --threads "$threads" >> "$run.log" 2>&1
    fi
    if [ ! -f "$out/data/test.npy" ]; then
      # The split is the folder's (train/, test/), the same for every seed and likelihood.
      (cd "$here/.." && cargo run --release --quiet --example run_data_npy -- "$run" "$out/data")
    fi
    log=$out/torch-$lik-$seed.log
    if [ "$same" = 1 ]; then
      init=$out/vae-init-$lik-$seed trun=$out/torch-$lik-$seed
      if [ ! -f "$init/model.safetensors" ]; then
        # One epoch at a learning rate of 1e-30 leaves the seed's initial weights as they were.
        # shellcheck disable=SC2086
        "$vae" train $model --epochs 1 --lr 1e-30 --likelihood "$lik" --seed "$seed" --out "$init" > "$init.log" 2>&1
      fi
      if [ ! -f "$trun/eval.json" ]; then
        echo "$(date +%T) PyTorch $lik seed $seed (vae's noise)"
        rm -rf "$trun" && mkdir -p "$trun" && cp "$run/config.json" "$trun/"
        DATA=$out/data LIKELIHOOD=$lik ARCH=resnet EPOCHS=$epochs BATCH=32 K_EVAL=0 THREADS=$threads SEED=$seed \
          KL_WARMUP=$warmup LR_SCHEDULE=$schedule SAME_NOISE=1 LOAD=$init SAVE=$trun/model.safetensors "$python" "$here/torch_colour.py" > "$log" 2>&1
        "$vae" eval "$trun" --k "$k" --generated 0 --threads "$threads" >> "$log" 2>&1
      fi
    elif ! grep -q "^IWAE-" "$log" 2>/dev/null; then
      echo "$(date +%T) PyTorch $lik seed $seed"
      DATA=$out/data LIKELIHOOD=$lik ARCH=resnet EPOCHS=$epochs BATCH=32 K_EVAL=$k THREADS=$threads SEED=$seed \
        KL_WARMUP=$warmup LR_SCHEDULE=$schedule "$python" "$here/torch_colour.py" > "$log" 2>&1
    fi
  done
done

# The table: bits per dimension of each run, the mean over seeds, and seconds per epoch.
"$python" - "$out" "$likelihoods" "$seeds" > "$out/table.md" <<'EOF'
import json, re, statistics as st, sys
out, liks, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
def vae(lik, seed):
    run = f"{out}/vae-{lik}-{seed}"
    bits = json.load(open(f"{run}/eval.json"))["bits_per_dim"]["value"]
    epochs = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
    return bits, st.median(e["seconds"] for e in epochs), epochs[-1]["test_kl"]
def torch(lik, seed):
    text = open(f"{out}/torch-{lik}-{seed}.log").read()
    try:  # SAME_NOISE=1: PyTorch's weights evaluated by `vae eval`
        bits = json.load(open(f"{out}/torch-{lik}-{seed}/eval.json"))["bits_per_dim"]["value"]
    except FileNotFoundError:
        bits = float(re.search(r"^IWAE-\d+ .* ([0-9.]+) bits/dim", text, re.M).group(1))
    secs = [float(s) for s in re.findall(r"^epoch .*?([0-9.]+) s ", text, re.M)]
    kl = float(re.findall(r"^epoch .* kl +([0-9.]+)", text, re.M)[-1])  # the last epoch's test KL
    return bits, st.median(secs), kl
def mean(xs):
    return f"{st.mean(xs):.3f}" + (f" ± {st.stdev(xs) / len(xs) ** 0.5:.3f}" if len(xs) > 1 else "")
print("| likelihood | seed | vae bits/dim (test KL) | PyTorch bits/dim (test KL) | vae − PyTorch | s/epoch vae / PyTorch |")
print("|---|---|---|---|---|---|")
for lik in liks:
    rows = [(s, vae(lik, s), torch(lik, s)) for s in seeds]
    for s, (vb, vs, vk), (tb, ts, tk) in rows:
        print(f"| {lik} | {s} | {vb:.3f} ({vk:.1f}) | {tb:.3f} ({tk:.1f}) | {vb - tb:+.3f} | {vs:.2f} / {ts:.2f} ({ts / vs:.2f}×) |")
    vb, tb = [r[1][0] for r in rows], [r[2][0] for r in rows]
    print(f"| {lik} | mean ± s.e. | {mean(vb)} | {mean(tb)} | {mean([a - b for a, b in zip(vb, tb)])} | |")
EOF
cat "$out/table.md"
