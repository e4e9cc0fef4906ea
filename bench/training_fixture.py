"""Writes tests/fixtures/train-steps.safetensors for tests/interop.rs's
`training_matches_pytorch_step_by_step`: a small colour folder's pictures (uint8
[N, 3, 32, 32], one batch) and the training loss per image PyTorch (bench/torch_colour.py)
reaches at each of the first STEPS steps from vae's initial weights for seed 1, drawing
vae's shuffle, noise and dequantization (SAME_NOISE=1), for the dequantized Gaussian and
the logistic mixture. vae, trained on the same pictures with the same seed, must give the
same losses to float rounding.

    python3 bench/training_fixture.py PICTURES.npy OUT.safetensors   # needs torch, a built vae

PICTURES.npy is uint8 [32, 3, 32, 32] (a run's train.npy from examples/run_data_npy.rs).
The script writes the pictures as a folder (one class, 00.png …), trains vae one epoch at a
learning rate of 1e-30 on it (its initial weights, unchanged), then runs PyTorch from them.
"""
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image
from safetensors.numpy import save_file

STEPS = 8
HERE = os.path.dirname(os.path.abspath(__file__))
VAE = os.environ.get("VAE", os.path.join(HERE, "..", "target", "release", "vae"))


def main(pictures, out):
    x = np.load(pictures)
    assert x.dtype == np.uint8 and x.shape[1:] == (3, 32, 32), x.shape
    tensors = {"pictures": x}
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "pictures", "train", "all")
        os.makedirs(folder)
        os.makedirs(os.path.join(tmp, "pictures", "test", "all"))
        for i, img in enumerate(x):
            Image.fromarray(img.transpose(1, 2, 0)).save(os.path.join(folder, f"{i:02}.png"))
        # A test set is required; the first picture serves (the training never reads it).
        Image.fromarray(x[0].transpose(1, 2, 0)).save(os.path.join(tmp, "pictures", "test", "all", "00.png"))
        np.save(os.path.join(tmp, "train.npy"), x)
        np.save(os.path.join(tmp, "test.npy"), x[:1])
        for lik in ("gaussian", "logistic-mixture"):
            init = os.path.join(tmp, f"init-{lik}")
            subprocess.run([VAE, "train", "--data-dir", os.path.join(tmp, "pictures"), "--image-size", "32",
                            "--arch", "resnet", "--batch-size", str(len(x)), "--epochs", "1", "--lr", "1e-30",
                            "--likelihood", lik, "--seed", "1", "--threads", "1", "--out", init],
                           check=True, capture_output=True)
            env = dict(os.environ, DATA=tmp, LIKELIHOOD=lik, ARCH="resnet", EPOCHS=str(STEPS),
                       BATCH=str(len(x)), K_EVAL="0", THREADS="1", SEED="1", SAME_NOISE="1", LOAD=init)
            log = subprocess.run([sys.executable, os.path.join(HERE, "torch_colour.py")], env=env,
                                 check=True, capture_output=True, text=True).stdout
            losses = [float(v) for v in re.findall(r"^epoch +\d+ +train +(\S+)", log, re.M)]
            assert len(losses) == STEPS, log
            tensors[f"loss.{lik}"] = np.array(losses, np.float64)
            print(lik, losses)
    save_file(tensors, out, metadata={"steps": str(STEPS), "seed": "1", "made_by": "bench/training_fixture.py"})


if __name__ == "__main__":
    main(*sys.argv[1:])
