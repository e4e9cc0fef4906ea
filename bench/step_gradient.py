"""One training step's gradient at a vae run's trained weights, in PyTorch, against vae's own
(`cargo run --release --example step_gradient -- RUN VAE_GRAD.safetensors`): the first batch
of epoch 1 as `vae train` draws it for the run's seed (bench/vae_rng.py), the -ELBO summed
over the batch, the mixture's likelihood in float64 (as vae computes it) or the dequantized
Gaussian. Prints each tensor's largest gradient and the largest difference, relative to it.
Issue 23: the two trainings are one computation where a trained model's parameters lie
(log-scales near their clamp, far tails), not only at the initial weights that
tests/interop.rs compares.

    cargo run --release --example run_data_npy -- RUN /tmp/data
    cargo run --release --example step_gradient -- RUN /tmp/vae-grad.safetensors
    python3 bench/step_gradient.py RUN /tmp/data /tmp/vae-grad.safetensors
"""
import json, math, os, sys
import numpy as np, torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conv_fixture import ConvVAE, mixture_nll  # noqa: E402
import vae_rng  # noqa: E402

run, data, vae_grad = sys.argv[1:4]
torch.set_num_threads(1)
cfg = json.load(open(os.path.join(run, "config.json")))
model, train = cfg["model"], cfg["train"]
lik = model["likelihood"]
K = lik["logistic-mixture"]["mixtures"] if isinstance(lik, dict) and "logistic-mixture" in lik else 0
xtr = torch.from_numpy(np.load(os.path.join(data, "train.npy")))
N, C, S, _ = xtr.shape
LATENT, SEED, B = model["latent_dim"], train["seed"], train["batch_size"]
P = C * S * S
m = ConvVAE(C, S, model["widths"], LATENT, 0, K, model.get("blocks", 0)).double()
state = load_file(os.path.join(run, "model.safetensors"))
logvar = state.pop("likelihood.logvar", None)
m.load_state_dict({k: v.double() for k, v in state.items()}, strict=True)
if logvar is not None:
    logvar = logvar.double().requires_grad_()

ids = np.array(vae_rng.epoch_order(SEED, 1, N)[:B])
v = xtr[ids].double()
eps = torch.from_numpy(vae_rng.example_normals(vae_rng.Rng.example_key(SEED, "train_noise", 1), ids, LATENT)).double()
if K:
    x = v / 255
else:
    key = vae_rng.Rng.example_key(SEED, "dequantize", 1)
    x = (v + torch.from_numpy(vae_rng.dequantize_u(key, ids, P)).view(B, C, S, S).double()) / 256
mu, lv = m.encode(x, None)
z = mu + eps * torch.exp(lv / 2)
g = m.decode(z, None)
if K:
    rec = mixture_nll(g, x, K, dtype=torch.float64)
else:
    l = logvar.view(1, C, 1, 1)
    rec = (0.5 * (math.log(2 * math.pi) + l + (x - g) ** 2 / l.exp())).sum()
kl = -0.5 * torch.sum(1 + lv - lv.exp() - mu ** 2)
loss = rec + kl
loss.backward()
print(f"loss {loss.item():.6f} (reconstruction {rec.item():.6f}, kl {kl.item():.6f}), float64 throughout")
ours = load_file(vae_grad)
theirs = {n: p.grad for n, p in m.named_parameters()}
if logvar is not None:
    theirs["likelihood.logvar"] = logvar.grad
worst, flips = 0.0, []
print(f"{'tensor':40} {'max |grad|':>12} {'max |diff|':>12} {'relative':>10} {'signs differ':>12}")
for name in sorted(theirs):
    t, o = theirs[name], ours[name].double()
    top, diff = t.abs().max().item(), (t - o).abs().max().item()
    rel = diff / top if top > 0 else diff
    worst = max(worst, rel)
    # Adam's first steps move a weight by about lr·sign(gradient): where the two disagree in
    # sign (or one is exactly 0), the trainings part at once.
    differ = (torch.sign(t) != torch.sign(o)).flatten()
    flips += list(zip(t.flatten()[differ].tolist(), o.flatten()[differ].tolist(), [name] * int(differ.sum())))
    print(f"{name:40} {top:12.4e} {diff:12.4e} {rel:10.2e} {int(differ.sum()):12}")
print(f"largest difference relative to its tensor's largest gradient: {worst:.2e}")
print(f"{len(flips)} weights whose gradients differ in sign (PyTorch, vae), largest first:")
for t, o, name in sorted(flips, key=lambda f: -abs(f[0]))[:10]:
    print(f"  {name:40} {t:+.4e} {o:+.4e}")
