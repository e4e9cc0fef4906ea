"""The tutorial's VAE trained on the importance-weighted bound (Burda, Grosse & Salakhutdinov
2015) in PyTorch, written as a careful user would (data preloaded, k draws as one batched
decoder pass), to time against `vae bench --objective iwae --k K`.

    pip install torch numpy
    EPOCHS=3 K=5 THREADS=2 python bench/torch_iwae.py

Prints per epoch: the mean training loss per example (−IWAE_k) and seconds."""
import gzip, math, os, time
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F

torch.set_num_threads(int(os.environ.get("THREADS", torch.get_num_threads())))
torch.manual_seed(1)
D = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "mnist")
K = int(os.environ.get("K", "5"))
raw = np.frombuffer(gzip.open(os.path.join(D, "train-images-idx3-ubyte.gz")).read(), np.uint8, offset=16)
xtr = torch.tensor(raw.reshape(-1, 784) / 255.0, dtype=torch.float32)


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc_mu, self.fc_logvar = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc2, self.fc3 = nn.Linear(20, 400), nn.Linear(400, 784)

    def loss(self, x):
        h = torch.relu(self.fc1(x))
        mu, lv = self.fc_mu(h), self.fc_logvar(h)
        eps = torch.randn(K, *mu.shape)
        z = mu + eps * torch.exp(lv / 2)  # [K, B, 20]
        logits = self.fc3(torch.relu(self.fc2(z)))
        log_px = -F.binary_cross_entropy_with_logits(logits, x.expand(K, -1, -1), reduction="none").sum(-1)
        log_w = log_px + (0.5 * (eps**2 - z**2 + lv)).sum(-1)  # log p(z) − log q(z|x), 2π cancels
        return -(torch.logsumexp(log_w, 0) - math.log(K)).sum()


m = VAE()
opt = torch.optim.Adam(m.parameters(), lr=1e-3)
for ep in range(int(os.environ.get("EPOCHS", "3"))):
    t0, perm, tot, nb = time.perf_counter(), torch.randperm(60000), 0.0, 60000 // 128
    for b in range(nb):
        loss = m.loss(xtr[perm[b * 128 : (b + 1) * 128]])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item()
    print(f"epoch {ep + 1} train_loss {tot / (nb * 128):.3f} secs {time.perf_counter() - t0:.3f}", flush=True)
