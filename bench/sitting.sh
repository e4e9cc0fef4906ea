#!/bin/bash
# One sitting beside PyTorch (BENCHMARKS.md, session 14): for each workload PyTorch f32, vae
# f32, vae bf16, PyTorch bf16 (AUTOCAST=bf16), seconds per epoch. Run from the repository
# root after `cargo build --release`, with PyTorch installed: bench/sitting.sh
set -euo pipefail
V=${VAE:-$PWD/target/release/vae}
cd reference
t() { python3 "$@" 2>&1 | grep -oE "secs [0-9.]+" | tr "\n" " "; echo; }
colour=(--arch conv --shape 3,64 --latent-dim 128 --steps 40)
colour_env=(SHAPE=3,64 CHANNELS=32,64,128,256 LATENT=128 STEPS=40)
echo "== mlp"
echo "torch f32: $(THREADS=2 EPOCHS=3 t torch_reference.py)"
echo "vae f32: $($V bench --epochs 3 | grep 'seconds per')"
echo "vae bf16: $($V bench --epochs 3 --precision bf16 | grep 'seconds per')"
echo "torch bf16: $(AUTOCAST=bf16 THREADS=2 EPOCHS=3 t torch_reference.py)"
echo "== conv"
echo "torch f32: $(THREADS=2 EPOCHS=2 t torch_conv_reference.py)"
echo "vae f32: $($V bench --arch conv --epochs 2 | grep 'seconds per')"
echo "vae bf16: $($V bench --arch conv --epochs 2 --precision bf16 | grep 'seconds per')"
echo "torch bf16: $(AUTOCAST=bf16 THREADS=2 EPOCHS=2 t torch_conv_reference.py)"
echo "== colour"
echo "torch f32: $(env "${colour_env[@]}" EPOCHS=2 THREADS=2 bash -c 'python3 torch_conv_reference.py' 2>&1 | grep -oE "secs [0-9.]+" | tr "\n" " ")"
echo "vae f32: $($V bench "${colour[@]}" --epochs 2 | grep 'seconds per')"
echo "vae bf16: $($V bench "${colour[@]}" --epochs 2 --precision bf16 | grep 'seconds per')"
echo "torch bf16: $(env "${colour_env[@]}" AUTOCAST=bf16 EPOCHS=2 THREADS=2 bash -c 'python3 torch_conv_reference.py' 2>&1 | grep -oE "secs [0-9.]+" | tr "\n" " ")"
