"""What calling vae from Python costs over the command line (issue 26: at most 5%), measured
alternately in one sitting:

  * training: `vae train` and `vae.train` on the same flags, seconds per epoch from each run's
    metrics.jsonl, and whether the figures are the same to the last bit;
  * encode and decode of 10,000 images end to end: `vae encode RUN -o codes.npy` against
    `vae.load(RUN)`, `run.images()`, `run.encode()`, `np.save`; `vae sample -n 10000 -o x.npy`
    against `run.sample(10000)` and `np.save`, each a fresh process, so start-up and loading
    count on both sides.

    python bench/python_overhead.py [EPOCHS] [THREADS]      (after `pip install ./python`)

Env: VAE (the binary, default target/release/vae), ROUNDS (alternations, default 3)."""
import json
import os
import subprocess
import sys
import tempfile
import time

VAE = os.environ.get("VAE", "target/release/vae")
EPOCHS = sys.argv[1] if len(sys.argv) > 1 else "3"
THREADS = sys.argv[2] if len(sys.argv) > 2 else "2"
ROUNDS = int(os.environ.get("ROUNDS", "3"))
FLAGS = dict(epochs=int(EPOCHS), threads=int(THREADS), fit_sampler=0)


def cli_flags():
    return [f"--{k.replace('_', '-')}={v}" for k, v in FLAGS.items()]


def metrics(run):
    return [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]


def timed(argv):
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


PY_TRAIN = "import sys, vae; vae.train(sys.argv[1], progress=False, **{k: int(v) for k, v in (a.split('=') for a in sys.argv[2:])})"
PY_ENCODE = ("import sys, numpy as np, vae; run = vae.load(sys.argv[1]); x, _ = run.images('test'); "
             "np.save(sys.argv[2], run.encode(x)[0])")
PY_SAMPLE = "import sys, numpy as np, vae; np.save(sys.argv[2], vae.load(sys.argv[1]).sample(10000, seed=1))"


def main():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"CPU: {cpu}; {EPOCHS} epochs on {THREADS} threads, {ROUNDS} rounds alternating")
    tmp = tempfile.mkdtemp()
    kv = [f"{k}={v}" for k, v in FLAGS.items()]
    rows = {"cli": [], "python": []}
    for r in range(ROUNDS):
        for side in ("cli", "python") if r % 2 == 0 else ("python", "cli"):
            out = os.path.join(tmp, f"{side}-{r}")
            if side == "cli":
                timed([VAE, "train", "--out", out, "--quiet"] + cli_flags())
            else:
                timed([sys.executable, "-c", PY_TRAIN, out] + kv)
            rows[side].append(metrics(out))
    for side, runs in rows.items():
        per_epoch = [round(m["seconds"], 3) for run in runs for m in run[1:]]  # epoch 1 warms up
        print(f"train {side:6}: s/epoch after the first {per_epoch}, median {sorted(per_epoch)[len(per_epoch) // 2]}")
    same = all(a["test_loss"] == b["test_loss"] and a["train_objective"] == b["train_objective"]
               for ca, cb in zip(rows["cli"], rows["python"]) for a, b in zip(ca, cb))
    print("the same figures to the last bit:", same, [m["test_loss"] for m in rows["python"][0]])
    run = os.path.join(tmp, "cli-0")
    times = {k: [] for k in ("encode cli", "encode python", "sample cli", "sample python", "python -c 'import vae'")}
    for r in range(ROUNDS):
        times["python -c 'import vae'"].append(timed([sys.executable, "-c", "import vae"]))
        times["encode cli"].append(timed([VAE, "encode", run, "-o", os.path.join(tmp, "c.npy")]))
        times["encode python"].append(timed([sys.executable, "-c", PY_ENCODE, run, os.path.join(tmp, "p.npy")]))
        times["sample cli"].append(timed([VAE, "sample", run, "-n", "10000", "--seed", "1", "-o", os.path.join(tmp, "c.npy")]))
        times["sample python"].append(timed([sys.executable, "-c", PY_SAMPLE, run, os.path.join(tmp, "p.npy")]))
    for k, v in times.items():
        print(f"{k:14}: {', '.join(f'{t:.3f}' for t in v)} s (best {min(v):.3f})")
    # The calls alone, in this process: what Python adds per call is the rest.
    import numpy as np
    import vae
    loaded = vae.load(run, threads=int(THREADS))
    x, _ = loaded.images("test")
    for name, call in (("encode 10,000", lambda: loaded.encode(x)), ("decode 10,000", lambda: loaded.decode(z)),
                       ("sample 10,000", lambda: loaded.sample(10000, seed=1))):
        z = loaded.encode(x)[0]
        best = min(timer(call) for _ in range(5))
        print(f"{name} in-process: best of 5 {best * 1000:.1f} ms")


def timer(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
