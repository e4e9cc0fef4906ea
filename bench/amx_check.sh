#!/bin/bash
# On an Intel Xeon with AMX (amx_bf16 in /proc/cpuinfo): the checks that take the tile path
# (`VAE_SIMD=amx`, src/core/bf16/amx.rs and src/core/conv/tiles.rs, written and tested on
# emulated tiles on a Zen 4 in session 26) from opt-in to the default (issue 25). Run from the
# repository root: bench/amx_check.sh (about 10 minutes on two cores); then, with PyTorch
# installed, `VAE_SIMD=amx bench/sitting.sh` beside `bench/sitting.sh` for the tables.
set -euo pipefail
if ! grep -qw amx_bf16 /proc/cpuinfo; then
    echo "no amx_bf16 in /proc/cpuinfo: the tile path cannot run here (its emulation is in cargo test)" >&2
    exit 1
fi
grep -m1 'model name' /proc/cpuinfo
cargo build --release --examples --bins
echo "== 1. the tile instructions against their emulation, and every conv path against the naive loops"
VAE_TEST_AMX=1 cargo test --release --lib -- amx:: conv:: --nocapture
echo "== 2. every kernel and layer test with the tiles engaged (the linear layers' products and the paired convolutions)"
VAE_SIMD=amx cargo test --release --lib -- core:: nn::
echo "== 3. the peaks: vdpbf16ps, then tdpbf16ps"
cargo run --release --example bf16_peak
VAE_SIMD=amx cargo run --release --example bf16_peak
echo "== 4. seconds per epoch, vdpbf16ps then tiles (tutorial, conv MNIST, colour 64x64)"
colour=(--arch conv --shape 3,64 --latent-dim 128 --steps 40)
for simd in avx512bf16 amx; do
    echo "-- VAE_SIMD=$simd"
    VAE_SIMD=$simd target/release/vae bench --epochs 3 --precision bf16 | grep -E 'precision|seconds per|peak'
    VAE_SIMD=$simd target/release/vae bench --arch conv --epochs 2 --precision bf16 | grep -E 'seconds per|peak'
    VAE_SIMD=$simd target/release/vae bench "${colour[@]}" --epochs 2 --precision bf16 | grep -E 'seconds per|peak'
done
echo "== 5. quality: the tutorial VAE after 10 epochs, f32 against the tiles (issue 25: within 0.3 nats)"
out=$(mktemp -d)
target/release/vae train --epochs 10 --out "$out/f32" --quiet 2>&1 | tail -1
VAE_SIMD=amx target/release/vae train --epochs 10 --precision bf16 --out "$out/amx" --quiet 2>&1 | tail -1
for run in f32 amx; do
    echo "$run: $(tail -1 "$out/$run/metrics.jsonl" | grep -oE '"test_loss":[0-9.]+')"
done
