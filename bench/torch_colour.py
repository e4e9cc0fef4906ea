"""The same colour model, data and training as `vae train --arch conv|resnet` on a run's own
pictures, in PyTorch: bench/conv_fixture.py's ConvVAE (the module vae's weights load into),
trained as vae trains it, then the test set's IWAE-k bound in bits per dimension, as
`vae eval RUN --k K` reports it. For issue 23's side-by-side (BENCHMARKS.md).

    vae train --data-dir DIR --image-size 32 --arch resnet --likelihood logistic-mixture --epochs 60 --out RUN
    cargo run --release --example run_data_npy -- RUN /tmp/data        # the run's exact split
    DATA=/tmp/data LIKELIHOOD=logistic-mixture ARCH=resnet EPOCHS=60 K_EVAL=1000 THREADS=2 \\
        python bench/torch_colour.py

Environment (defaults as `vae train`'s): DATA (train.npy, test.npy: uint8 [N, C, S, S]),
LIKELIHOOD (logistic-mixture | gaussian), MIXTURES (10), ARCH (conv | resnet), BLOCKS (1),
WIDTHS (vae's default for the side: 32,64,128 at 32), LATENT (20), EPOCHS, BATCH (128),
LR (1e-3), SEED (1), K_EVAL (importance samples for the test bound, 0 to skip), THREADS,
LOAD (a vae run directory: its model.safetensors, `likelihood.logvar` included, replaces the
initial weights, so that EPOCHS=0 evaluates vae's trained model with this script's bound),
SAME_NOISE=1 (draw what `vae train --seed SEED` draws: its shuffle, each example's N(0, 1)
noise and each value's dequantization u, through bench/vae_rng.py; with LOAD= a run that
holds vae's initial weights for that seed, the two trainings differ only by rounding),
SAVE (a file: the trained weights in vae's safetensors names, for `vae eval`),
MIXTURE_DTYPE (float32, or float64: the mixture's training likelihood computed exactly),
STEPS_LOG (a file: one line per training step, `epoch step loss`, the step's -ELBO per
image, as `cargo run --release --example step_losses` prints vae's),
KL_WARMUP (0: as `vae train --kl-warmup N`, the KL term weighted min(epoch/N, 1) in training),
LR_SCHEDULE (constant, or step:N:F: as `vae train --lr-schedule step:N:F`, the rate of epoch
e is LR·F^((e−1) div N), PyTorch's StepLR).

What matches vae: PyTorch's default initialisation, with vae's two exceptions (the mixture's
log-scale biases start at -2.5, a learned Gaussian log-variance per channel at -4); the
loss summed over the batch (-log p(x|z) + the analytic KL); Adam(1e-3, eps 1e-8); a fresh
shuffle per epoch with the last incomplete batch dropped; the Gaussian fitted to dequantized
values x = (v + u)/256 with a fresh u at every use, and evaluated with one seeded u per test
image; the mixture on v/255, its bins as vae's. Prints per epoch the training loss per
image, the test ELBO and KL per image and the seconds of the training steps alone."""
import math, os, sys, time
import numpy as np, torch, torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conv_fixture import ConvVAE, mixture_nll  # noqa: E402
import vae_rng  # noqa: E402

env = os.environ.get
AUTOCAST = env("AUTOCAST") == "bf16"  # AUTOCAST=bf16: PyTorch's own bf16 for training (oneDNN)
torch.set_num_threads(int(env("THREADS", torch.get_num_threads())))
torch.manual_seed(int(env("SEED", "1")))
D = env("DATA", "/tmp/data")
xtr, xte = (torch.from_numpy(np.load(os.path.join(D, f"{s}.npy"))) for s in ("train", "test"))
N, C, S, _ = xtr.shape
LIK = env("LIKELIHOOD", "logistic-mixture")
K = int(env("MIXTURES", "10")) if LIK == "logistic-mixture" else 0
BLOCKS = int(env("BLOCKS", "1")) if env("ARCH", "resnet") == "resnet" else 0
default_widths = [min(32 << i, 256) for i in range(5) if S % (2 << i) == 0 and S >> (i + 1) >= 4]
WIDTHS = [int(w) for w in env("WIDTHS", "").split(",") if w] or default_widths
LATENT, EPOCHS, BATCH = int(env("LATENT", "20")), int(env("EPOCHS", "60")), int(env("BATCH", "128"))
P = C * S * S

m = ConvVAE(C, S, WIDTHS, LATENT, 0, K, BLOCKS)
logvar = torch.nn.Parameter(torch.full((C,), -4.0))
if K:
    with torch.no_grad():  # vae's MIXTURE_LOG_SCALE_INIT on every log-scale channel
        per = 3 if C == 3 else 2
        for c in range(C):
            m.decoder[-1].bias[K + (c * per + 1) * K: K + (c * per + 2) * K] = -2.5
if env("LOAD"):
    from safetensors.torch import load_file
    state = load_file(os.path.join(env("LOAD"), "model.safetensors"))
    lv = state.pop("likelihood.logvar", None)
    m.load_state_dict(state, strict=True)
    if not K:
        logvar.data.copy_(lv)
params = list(m.parameters()) + ([] if K else [logvar])
LR = float(np.float32(env("LR", "1e-3")))  # vae keeps --lr in f32
opt = torch.optim.Adam(params, lr=LR, eps=1e-8)


def parse_schedule(schedule):
    """vae's `--lr-schedule` forms ported here, as (N, F) for step:N:F; constant is (1, 1)."""
    if schedule == "constant":
        return 1, 1.0
    try:
        kind, every, factor = schedule.split(":")
        if kind == "step" and int(every) >= 1 and float(factor) > 0:
            return int(every), float(factor)
    except ValueError:
        pass
    sys.exit(f"error: LR_SCHEDULE={schedule}: use constant or step:N:F (N ≥ 1 epochs, F > 0), "
             "the forms of `vae train --lr-schedule` ported here")


LR_EVERY, LR_FACTOR = parse_schedule(env("LR_SCHEDULE", "constant"))  # before any training


def lr_factor(ep):
    """vae's LrSchedule::factor: F^((ep − 1) div N)."""
    return LR_FACTOR ** ((ep - 1) // LR_EVERY)


print(f"{env('ARCH', 'resnet')} {WIDTHS} blocks {BLOCKS}, {LIK} (K={K}), latent {LATENT}: "
      f"{sum(p.numel() for p in params):,} parameters; {N} train / {len(xte)} test images {C}x{S}x{S}")


SAME_NOISE = env("SAME_NOISE") == "1"
# The mixture's training likelihood: float32 as a PyTorch user writes it (bin masses floored
# at 1e-12, so a value far out in a narrow component's tail stops giving a gradient), or
# MIXTURE_DTYPE=float64, computed from the definition as vae computes it.
TRAIN_DTYPE = {"float32": torch.float32, "float64": torch.float64}[env("MIXTURE_DTYPE", "float32")]
SEED = int(env("SEED", "1"))


def inputs(v, u=None):
    """The values the likelihood sees: v/255 for the mixture, (v + u)/256 for the Gaussian."""
    v = v.float()
    if K:
        return v / 255
    return (v + (torch.rand_like(v) if u is None else u)) / 256


def vae_draws(ep, ids):
    """vae's dequantization u [B, C, S, S] (None for the mixture) and noise eps [B, LATENT]
    for the training examples `ids` in epoch `ep` (bench/vae_rng.py)."""
    u = None
    if not K:
        key = vae_rng.Rng.example_key(SEED, "dequantize", ep)
        u = torch.from_numpy(vae_rng.dequantize_u(key, ids, P)).view(len(ids), C, S, S)
    key = vae_rng.Rng.example_key(SEED, "train_noise", ep)
    return u, torch.from_numpy(vae_rng.example_normals(key, ids, LATENT))


def log_px(g, x):
    """log p(x|z) per image [B], from the decoder's output g: the mixture in float32 (float64
    at evaluation, as conv_fixture's port), the Gaussian with its learned log-variance."""
    if K:
        return -mixture_nll(g, x, K, per_image=True, dtype=TRAIN_DTYPE if torch.is_grad_enabled() else torch.float64)
    lv = logvar.view(1, C, 1, 1)
    return (-0.5 * (math.log(2 * math.pi) + lv + (x - g) ** 2 / lv.exp())).flatten(1).sum(1)


def batch_loss(x, eps=None, beta=1.0):
    """-ELBO summed over the batch (one draw of z, `eps` or a fresh one; the analytic KL,
    weighted by `beta`)."""
    mu, lv = m.encode(x, None)
    z = mu + (torch.randn_like(mu) if eps is None else eps) * torch.exp(lv / 2)
    kl = -0.5 * torch.sum(1 + lv - lv.exp() - mu ** 2)
    return -log_px(m.decode(z, None), x).sum().float() + (kl if beta == 1.0 else beta * kl)


@torch.no_grad()
def iwae(x, k, chunk=100):
    """log (1/k) sum_s p(x, z_s)/q(z_s|x) per image, k draws in chunks."""
    mu, lv = m.encode(x, None)
    out = []
    for i in range(len(x)):
        logs = []
        for start in range(0, k, chunk):
            n = min(chunk, k - start)
            eps = torch.randn(n, LATENT)
            z = mu[i] + eps * torch.exp(lv[i] / 2)
            g = m.decode(z, None)
            lp = log_px(g, x[i:i + 1].expand(n, -1, -1, -1)).double()
            log_pz = -0.5 * (z.double() ** 2 + math.log(2 * math.pi)).sum(1)
            log_q = -0.5 * (eps.double() ** 2 + lv[i].double() + math.log(2 * math.pi)).sum(1)
            logs.append(lp + log_pz - log_q)
        out.append(torch.logsumexp(torch.cat(logs), 0) - math.log(k))
    return torch.stack(out)


def bits_per_dim(log_lik):
    """vae eval's figure: -(log p - D ln 256)/(D ln 2) for a density on dequantized values,
    -log p/(D ln 2) for a probability of the 8-bit values."""
    nll = -log_lik.double().mean().item()
    return (nll + (0 if K else P * math.log(256))) / (P * math.log(2))


g = torch.Generator().manual_seed(12345)
u_test = torch.rand(xte.shape, generator=g)
steps = N // BATCH
steps_log = open(env("STEPS_LOG"), "w") if env("STEPS_LOG") else None
KL_WARMUP = int(env("KL_WARMUP", "0"))
for ep in range(1, EPOCHS + 1):
    # vae's Trainer::beta_at: the weight computed in f64, used in f32
    beta = float(np.float32(min(ep / KL_WARMUP, 1.0))) if KL_WARMUP else 1.0
    for group in opt.param_groups:  # vae's Trainer::adam_config: the f64 product, used in f32
        group["lr"] = float(np.float32(LR * lr_factor(ep)))
    perm = torch.tensor(vae_rng.epoch_order(SEED, ep, N)) if SAME_NOISE else torch.randperm(N)
    total, t0 = 0.0, time.perf_counter()
    m.train()
    for s in range(steps):
        ids = perm[s * BATCH:(s + 1) * BATCH]
        u, eps = vae_draws(ep, ids.numpy()) if SAME_NOISE else (None, None)
        x = inputs(xtr[ids], u)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=AUTOCAST):
            loss = batch_loss(x, eps, beta)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item()
        if steps_log:
            print(f"{ep} {s + 1} {loss.item() / BATCH:.6f}", file=steps_log, flush=True)
    secs = time.perf_counter() - t0
    with torch.no_grad():
        xt = inputs(xte, u_test)
        test = batch_loss(xt).item() / len(xte)
        mu, lv = m.encode(xt, None)  # the test KL: near 0 when the code has collapsed
        test_kl = (-0.5 * torch.sum(1 + lv - lv.exp() - mu ** 2)).item() / len(xte)
    print(f"epoch {ep:3}  train {total / (steps * BATCH):10.2f}  test {test:10.2f} kl {test_kl:7.2f}  {secs:6.2f} s  "
          f"{steps * BATCH / secs:7.0f} img/s", flush=True)

if env("SAVE"):
    from safetensors.torch import save_file
    state = {n: t.detach().contiguous() for n, t in m.state_dict().items()}
    if not K:
        state["likelihood.logvar"] = logvar.detach().clone()
    save_file(state, env("SAVE"))

k = int(env("K_EVAL", "1000"))
if k:
    t0 = time.perf_counter()
    ll = iwae(inputs(xte, u_test), k)
    print(f"IWAE-{k} on {len(xte)} test images: {ll.double().mean().item():.2f} nats per image, "
          f"{bits_per_dim(ll):.4f} bits/dim ({time.perf_counter() - t0:.0f} s)")
