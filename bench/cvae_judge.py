"""Independent check of `vae eval`'s CVAE label accuracy with a different judge: a small CNN
trained here in PyTorch (conv 32@5x5, pool, conv 64@5x5, pool, fc 256, fc 10; ~99% test
accuracy after 3 epochs), scoring 1,000 samples per label (z ~ N(0, I), Bernoulli means).

    pip install torch numpy safetensors
    python bench/cvae_judge.py RUN_DIR [RUN_DIR ...]

Each RUN_DIR is a `vae train --model cvae` run (config.json + model.safetensors); the weights
load by their PyTorch names. Results are in BENCHMARKS.md (issue 3)."""
import gzip, json, os, sys, time
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from safetensors.torch import load_file

torch.manual_seed(0)
torch.set_num_threads(os.cpu_count())
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "mnist")


def idx(name, offset, shape):
    raw = np.frombuffer(gzip.open(os.path.join(DATA, name)).read(), np.uint8, offset=offset)
    return raw.reshape(shape)


xtr = torch.tensor(idx("train-images-idx3-ubyte.gz", 16, (-1, 1, 28, 28)) / 255.0, dtype=torch.float32)
ytr = torch.tensor(idx("train-labels-idx1-ubyte.gz", 8, (-1,)).astype(np.int64))
xte = torch.tensor(idx("t10k-images-idx3-ubyte.gz", 16, (-1, 1, 28, 28)) / 255.0, dtype=torch.float32)
yte = torch.tensor(idx("t10k-labels-idx1-ubyte.gz", 8, (-1,)).astype(np.int64))


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 32, 5), nn.Conv2d(32, 64, 5)
        self.f1, self.f2 = nn.Linear(64 * 4 * 4, 256), nn.Linear(256, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.f2(F.relu(self.f1(x.flatten(1))))


judge = Cnn()
opt = torch.optim.Adam(judge.parameters(), 1e-3)
for epoch in range(3):
    t0, perm = time.time(), torch.randperm(60000)
    for b in range(0, 60000, 128):
        i = perm[b : b + 128]
        loss = F.cross_entropy(judge(xtr[i]), ytr[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = (judge(xte).argmax(1) == yte).float().mean().item()
    print(f"judge epoch {epoch + 1}: test accuracy {100 * acc:.2f}% ({time.time() - t0:.0f} s)", flush=True)


def decode(w, cfg, z, labels):
    act = torch.tanh if cfg.get("activation", "relu") == "tanh" else torch.relu
    h = torch.cat((z, F.one_hot(labels, 10).float()), 1)
    names = ["fc2"] + [f"fc2_{i}" for i in range(2, cfg.get("hidden_layers", 1) + 1)]
    for n in names:
        h = act(F.linear(h, w[f"{n}.weight"], w[f"{n}.bias"]))
    return torch.sigmoid(F.linear(h, w["fc3.weight"], w["fc3.bias"])).reshape(-1, 1, 28, 28)


for run in sys.argv[1:]:
    cfg = json.load(open(os.path.join(run, "config.json")))["model"]
    assert cfg["kind"] == "cvae", f"{run} is a {cfg['kind']} run; label accuracy needs a cvae"
    w = load_file(os.path.join(run, "model.safetensors"))
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(10).repeat_interleave(1000)
    with torch.no_grad():
        images = decode(w, cfg, torch.randn(10000, cfg["latent_dim"], generator=g), labels)
        ok = (judge(images).argmax(1) == labels).float()
    per = " ".join(f"{k}:{100 * ok[labels == k].mean().item():.1f}" for k in range(10))
    print(f"{run}: label accuracy {100 * ok.mean().item():.2f}%  per label {per}")
