"""Interop fixtures for `--arch conv`, made once with PyTorch from the reference module of
reference/torch_conv_reference.py (the class below is that module, with the noise
passed in instead of drawn, and the image shape, widths, latent size and label count as
arguments).

    python bench/conv_fixture.py make tests/fixtures     # writes conv-vae.safetensors, conv-cvae.safetensors
    python bench/conv_fixture.py make-mixture tests/fixtures   # conv-vae-mixture.safetensors
    python bench/conv_fixture.py make-resnet tests/fixtures    # conv-resnet.safetensors (--arch resnet)
    python bench/conv_fixture.py check RUN_DIR           # loads vae's weights into the module, strict

`make` writes, per fixture: the module's state_dict under its own names, the input batch
`x` [B, C, S, S], the one-hot labels `y` [B, K], the noise `eps` [B, L], and the reference's
loss (BCE summed over pixels + KL, summed over the batch) as `loss` [1], in float32;
`tests/interop.rs` loads them into vae's conv model and compares the loss.

`check` builds the module for a run directory's config.json, loads its model.safetensors
with `load_state_dict(strict=True)`, and prints the loss of the first test batch, so the two
implementations can be compared on vae's own weights."""
import json, os, sys
import torch, torch.nn as nn, torch.nn.functional as F
from safetensors.torch import save_file, load_file


def mixture_params(C, K):
    """Output channels of vae's `--likelihood logistic-mixture --mixtures K` on C channels."""
    return K * (1 + C * (3 if C == 3 else 2)) if K else C


def mixture_nll(l, x, K, per_image=False, dtype=torch.float64):
    """-log p(x) summed over the batch, of PixelCNN++'s discretized logistic mixture in vae's
    layout and convention (src/core/likelihood/mixture.rs), computed in float64 from the
    definition: l [B, P, H, W] holds per position the K logits, then per channel c the K
    means, K log-scales (clamped at -7) and, for RGB, K coefficients (c = 0: G on R, 1: B on R,
    2: B on G); x [B, C, H, W] holds values v/255; bin v is [(v - 1/2)/255, (v + 1/2)/255], the
    edge bins open. With per_image, the [B] values instead of their sum; dtype float32 trains
    as a PyTorch user would (bins' masses floored at 1e-12, as PixelCNN++'s code)."""
    l, x = l.to(dtype), x.to(dtype)
    C = x.shape[1]
    per = 3 if C == 3 else 2
    v = torch.round(x * 255)
    xs = v / 255
    block = lambda c, j: l[:, K + (c * per + j) * K: K + (c * per + j + 1) * K]
    total = torch.log_softmax(l[:, :K], 1)
    for c in range(C):
        mu = block(c, 0)
        if C == 3 and c == 1:
            mu = mu + torch.tanh(block(0, 2)) * xs[:, 0:1]
        if C == 3 and c == 2:
            mu = mu + torch.tanh(block(1, 2)) * xs[:, 0:1] + torch.tanh(block(2, 2)) * xs[:, 1:2]
        inv = torch.exp(-torch.clamp(block(c, 1), min=-7.0))
        vc = v[:, c:c + 1]
        a, b = ((vc - 0.5) / 255 - mu) * inv, ((vc + 0.5) / 255 - mu) * inv
        # sigma(b) - sigma(a), from the upper tails right of the mean (no cancellation near 1).
        mass = torch.where(a > 0, torch.sigmoid(-a) - torch.sigmoid(-b), torch.sigmoid(b) - torch.sigmoid(a))
        mid = torch.log(torch.clamp(mass, min=1e-300 if dtype == torch.float64 else 1e-12))
        total = total + torch.where(vc == 0, F.logsigmoid(b), torch.where(vc == 255, F.logsigmoid(-a), mid))
    nll = -torch.logsumexp(total, 1).flatten(1).sum(1)
    return nll if per_image else nll.sum()


class ResBlock(nn.Module):
    """vae's `--arch resnet` block (He et al. 2016, without batch normalisation):
    relu(x + conv2(relu(conv1(x)))), 3x3 convolutions keeping the channels and the side."""
    def __init__(m, w):
        super().__init__()
        m.conv1 = nn.Conv2d(w, w, 3, 1, 1)
        m.conv2 = nn.Conv2d(w, w, 3, 1, 1)

    def forward(m, x):
        return F.relu(x + m.conv2(F.relu(m.conv1(x))))


class ConvVAE(nn.Module):
    """The reference conv VAE; with R > 0, vae's `--arch resnet --blocks R`: R residual blocks
    after each encoder convolution (`encoder_res.{i}`) and before each transposed one
    (`decoder_res.{j}`)."""
    def __init__(m, C, S, CH, L, NC, K=0, R=0):
        super().__init__()
        m.C, m.S, m.CH, m.L, m.NC, m.K, m.R = C, S, CH, L, NC, K, R
        m.s = S >> len(CH)
        m.encoder = nn.ModuleList(nn.Conv2d(a, b, 4, 2, 1) for a, b in zip([C] + CH[:-1], CH))
        flat = CH[-1] * m.s * m.s
        m.fc_mu = nn.Linear(flat + NC, L)
        m.fc_logvar = nn.Linear(flat + NC, L)
        m.decoder_input = nn.Linear(L + NC, flat)
        rev = CH[::-1]
        m.decoder = nn.ModuleList(nn.ConvTranspose2d(a, b, 4, 2, 1) for a, b in zip(rev, rev[1:] + [mixture_params(C, K)]))
        if R:
            m.encoder_res = nn.ModuleList(nn.Sequential(*[ResBlock(w) for _ in range(R)]) for w in CH)
            m.decoder_res = nn.ModuleList(nn.Sequential(*[ResBlock(w) for _ in range(R)]) for w in rev)

    def forward(m, x, y, eps):
        g, mu, lv = m.decoder_output(x, y, eps)
        return m.loss(g, x, -0.5 * torch.sum(1 + lv - lv.exp() - mu ** 2))

    def encode(m, x, y):
        h = x
        for i, conv in enumerate(m.encoder):
            h = F.relu(conv(h))
            if m.R:
                h = m.encoder_res[i](h)
        h = h.flatten(1)
        h = torch.cat((h, y), 1) if m.NC else h
        return m.fc_mu(h), m.fc_logvar(h)

    def decode(m, z, y):
        """The decoder's output: Bernoulli logits, or the mixture's parameters."""
        g = F.relu(m.decoder_input(torch.cat((z, y), 1) if m.NC else z)).view(-1, m.CH[-1], m.s, m.s)
        for i, dc in enumerate(m.decoder):
            if m.R:
                g = m.decoder_res[i](g)
            g = dc(g)
            g = F.relu(g) if i < len(m.decoder) - 1 else g
        return g

    def decoder_output(m, x, y, eps):
        mu, lv = m.encode(x, y)
        z = eps * torch.exp(lv / 2) + mu
        return m.decode(z, y), mu, lv

    def loss(m, g, x, kl):
        if m.K:
            return mixture_nll(g, x, m.K).float() + kl
        return F.binary_cross_entropy_with_logits(g, x, reduction="sum") + kl


def make(out):
    os.makedirs(out, exist_ok=True)
    # The reference's own MNIST model (258,025 parameters), and a small colour cvae with a
    # non-default class count.
    for name, (C, S, CH, L, NC, B) in {"conv-vae": (1, 28, [32, 64], 20, 0, 4), "conv-cvae": (3, 16, [4, 8], 5, 6, 3)}.items():
        torch.manual_seed(7)
        m = ConvVAE(C, S, CH, L, NC)
        x = torch.rand(B, C, S, S)
        labels = torch.arange(B) % max(NC, 1)
        y = F.one_hot(labels, NC).float() if NC else torch.zeros(B, 0)
        eps = torch.randn(B, L)
        with torch.no_grad():
            loss = m(x, y, eps)
        tensors = {k: v.contiguous() for k, v in m.state_dict().items()}
        tensors.update({"x": x, "y": y.contiguous(), "eps": eps, "loss": loss.reshape(1)})
        meta = {"channels": str(C), "side": str(S), "widths": ",".join(map(str, CH)), "latent": str(L), "classes": str(NC)}
        save_file(tensors, os.path.join(out, name + ".safetensors"), metadata=meta)
        print(name, "loss", loss.item(), "parameters", sum(p.numel() for p in m.parameters()))


def make_mixture(out):
    """conv-vae-mixture.safetensors: an RGB conv VAE with vae's logistic-mixture output (K = 3)
    on 8-bit values, its loss from `mixture_nll`."""
    C, S, CH, L, K, B = 3, 16, [4, 8], 5, 3, 3
    torch.manual_seed(11)
    m = ConvVAE(C, S, CH, L, 0, K)
    with torch.no_grad():  # a spread of scales, so tails and edge bins all count
        m.decoder[-1].bias[K:].uniform_(-3.0, 0.5)
    x = torch.randint(0, 256, (B, C, S, S)).float() / 255
    x[:, :, 0, :4] = 0.0
    x[:, :, 1, :4] = 1.0
    eps = torch.randn(B, L)
    with torch.no_grad():
        loss = m(x, torch.zeros(B, 0), eps)
    tensors = {k: v.contiguous() for k, v in m.state_dict().items()}
    tensors.update({"x": x, "y": torch.zeros(B, 0), "eps": eps, "loss": loss.reshape(1)})
    meta = {"channels": str(C), "side": str(S), "widths": ",".join(map(str, CH)), "latent": str(L), "classes": "0",
            "mixtures": str(K)}
    save_file(tensors, os.path.join(out, "conv-vae-mixture.safetensors"), metadata=meta)
    print("conv-vae-mixture loss", loss.item())


def make_resnet(out):
    """conv-resnet.safetensors: an RGB cvae with two residual blocks per resolution, widths
    8,16 (past the AVX-512 kernels' channel thresholds), three classes."""
    C, S, CH, L, NC, R, B = 3, 16, [8, 16], 5, 3, 2, 3
    torch.manual_seed(13)
    m = ConvVAE(C, S, CH, L, NC, 0, R)
    x = torch.rand(B, C, S, S)
    y = F.one_hot(torch.arange(B) % NC, NC).float()
    eps = torch.randn(B, L)
    with torch.no_grad():
        loss = m(x, y, eps)
    tensors = {k: v.contiguous() for k, v in m.state_dict().items()}
    tensors.update({"x": x, "y": y, "eps": eps, "loss": loss.reshape(1)})
    meta = {"channels": str(C), "side": str(S), "widths": ",".join(map(str, CH)), "latent": str(L), "classes": str(NC),
            "blocks": str(R)}
    save_file(tensors, os.path.join(out, "conv-resnet.safetensors"), metadata=meta)
    print("conv-resnet loss", loss.item(), "parameters", sum(p.numel() for p in m.parameters()))


def check(run):
    cfg = json.load(open(os.path.join(run, "config.json")))["model"]
    NC = cfg.get("classes", 10) if cfg["kind"] == "cvae" else 0
    lik = cfg.get("likelihood", {})
    K = lik.get("mixtures", 0) if isinstance(lik, dict) else 0
    m = ConvVAE(cfg.get("channels", 1), cfg["image_rows"], cfg["widths"], cfg["latent_dim"], NC, K, cfg.get("blocks", 0))
    state = load_file(os.path.join(run, "model.safetensors"))
    m.load_state_dict(state, strict=True)
    torch.manual_seed(0)
    B = 8
    x = torch.rand(B, m.C, m.S, m.S)
    y = F.one_hot(torch.arange(B) % max(NC, 1), NC).float() if NC else torch.zeros(B, 0)
    with torch.no_grad():
        loss = m(x, y, torch.zeros(B, m.L))
    print(f"loaded {len(state)} tensors strictly; loss of a random batch at z = mu: {loss.item():.4f}")


if __name__ == "__main__":
    {"make": make, "make-mixture": make_mixture, "make-resnet": make_resnet, "check": check}[sys.argv[1]](sys.argv[2])
