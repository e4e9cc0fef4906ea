"""The reference PyTorch modules a run's weights load into unchanged (the same parameter
names and layouts as ``model.safetensors``): the tutorial's VAE and CVAE (``fc1``, ``fc_mu``,
``fc_logvar``, ``fc2``, ``fc3``, with ``fc1_2``... for more hidden layers) and the conv
reference of reference/torch_conv_reference.py (``encoder.{i}``, ``fc_mu``, ``fc_logvar``,
``decoder_input``, ``decoder.{j}``, with ``encoder_res``/``decoder_res`` for ``--arch
resnet``), with the Bernoulli or PixelCNN++ logistic-mixture output. Each module's
``elbo(x, y)`` is the per-image ELBO with one draw of z, as :meth:`vae.Run.elbo` computes it.
"""
from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F


def mixture_params(C: int, K: int) -> int:
    """Output channels of ``--likelihood logistic-mixture --mixtures K`` on C channels."""
    return K * (1 + C * (3 if C == 3 else 2))


def mixture_nll(l: torch.Tensor, x: torch.Tensor, K: int) -> torch.Tensor:
    """-log p(x) per image of PixelCNN++'s discretized logistic mixture (Salimans et al. 2017)
    in vae's layout: ``l`` [B, P, H, W] holds per position the K logits, then per channel the K
    means, K log-scales (clamped at -7) and, for RGB, K coefficients; ``x`` [B, C, H, W] holds
    v/255. Evaluated in float64, as vae's tests do (bench/conv_fixture.py)."""
    l, x = l.double(), x.double()
    C = x.shape[1]
    per = 3 if C == 3 else 2
    v = torch.round(x * 255)
    xs = v / 255

    def block(c, j):
        return l[:, K + (c * per + j) * K: K + (c * per + j + 1) * K]

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
        mass = torch.where(a > 0, torch.sigmoid(-a) - torch.sigmoid(-b), torch.sigmoid(b) - torch.sigmoid(a))
        mid = torch.log(torch.clamp(mass, min=1e-300))
        total = total + torch.where(vc == 0, F.logsigmoid(b), torch.where(vc == 255, F.logsigmoid(-a), mid))
    return -torch.logsumexp(total, 1).flatten(1).sum(1)


class _Base(nn.Module):
    """What both references share: the reparameterised ELBO per image."""

    K = 0

    def nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per image from the decoder's output."""
        if self.K:
            return mixture_nll(out, x.view(out.shape[0], self.C, self.H, self.W), self.K)
        return F.binary_cross_entropy_with_logits(out.flatten(1), x.flatten(1), reduction="none").sum(1)

    def elbo(self, x: torch.Tensor, y: torch.Tensor = None, eps: torch.Tensor = None) -> torch.Tensor:
        """E_q[log p(x|z)] - KL(q(z|x) || N(0, I)) per image [B] at one draw z = mu + sigma·eps
        (eps ~ N(0, I) unless given), the KL in closed form (Kingma & Welling 2014, eq. 10)."""
        mu, logvar = self.encode(x, y)
        if eps is None:
            eps = torch.randn_like(mu)
        z = mu + eps * torch.exp(logvar / 2)
        kl = -0.5 * torch.sum(1 + logvar - logvar.exp() - mu ** 2, 1)
        return -self.nll(self.decode(z, y), x) - kl.double()

    def forward(self, x: torch.Tensor, y: torch.Tensor = None) -> torch.Tensor:
        """The training loss of a batch: -ELBO summed over it (the tutorial's ``loss_function``)."""
        return -self.elbo(x, y).sum().float()


class TutorialVAE(_Base):
    """The tutorial's VAE (a CVAE with ``classes`` > 0: the one-hot label beside x and z);
    images flattened to [B, D]."""

    def __init__(self, C, H, W, hidden, layers, latent, classes, activation="relu"):
        super().__init__()
        self.C, self.H, self.W, self.classes = C, H, W, classes
        self.act = torch.tanh if activation == "tanh" else torch.relu
        D = C * H * W
        name = lambda base, j: base if j == 0 else f"{base}_{j + 1}"
        for j in range(layers):
            setattr(self, name("fc1", j), nn.Linear((D + classes) if j == 0 else hidden, hidden))
        self.fc_mu = nn.Linear(hidden, latent)
        self.fc_logvar = nn.Linear(hidden, latent)
        for j in range(layers):
            setattr(self, name("fc2", j), nn.Linear((latent + classes) if j == 0 else hidden, hidden))
        self.fc3 = nn.Linear(hidden, D)
        self.encoder_layers = [name("fc1", j) for j in range(layers)]
        self.decoder_layers = [name("fc2", j) for j in range(layers)]

    def encode(self, x, y=None):
        h = x.flatten(1)
        if self.classes:
            h = torch.cat((h, y), 1)
        for n in self.encoder_layers:
            h = self.act(getattr(self, n)(h))
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z, y=None):
        """The Bernoulli logits [B, D] (``torch.sigmoid`` of them: the decoder's means)."""
        h = torch.cat((z, y), 1) if self.classes else z
        for n in self.decoder_layers:
            h = self.act(getattr(self, n)(h))
        return self.fc3(h)


class ResBlock(nn.Module):
    """``--arch resnet``'s block: relu(x + conv2(relu(conv1(x)))), 3×3, channels kept."""

    def __init__(self, w):
        super().__init__()
        self.conv1 = nn.Conv2d(w, w, 3, 1, 1)
        self.conv2 = nn.Conv2d(w, w, 3, 1, 1)

    def forward(self, x):
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class ConvVAE(_Base):
    """The conv reference (``--arch conv``; ``blocks`` > 0: ``--arch resnet``), with the
    logistic-mixture output when ``mixtures`` > 0, and ``hidden`` > 0 a fully connected layer
    after the convolutions and before the transposed ones (``encoder_fc``, ``decoder_fc``:
    disentanglement_lib's model for dSprites)."""

    def __init__(self, C, S, widths, latent, classes, mixtures=0, blocks=0, hidden=0):
        super().__init__()
        self.C, self.H, self.W, self.CH, self.classes, self.K, self.R = C, S, S, list(widths), classes, mixtures, blocks
        self.s = S >> len(widths)
        CH = self.CH
        self.encoder = nn.ModuleList(nn.Conv2d(a, b, 4, 2, 1) for a, b in zip([C] + CH[:-1], CH))
        flat = CH[-1] * self.s * self.s
        self.hidden = hidden
        if hidden:
            self.encoder_fc = nn.Linear(flat, hidden)
            self.decoder_fc = nn.Linear(hidden, flat)
        features = hidden or flat
        self.fc_mu = nn.Linear(features + classes, latent)
        self.fc_logvar = nn.Linear(features + classes, latent)
        self.decoder_input = nn.Linear(latent + classes, features)
        rev = CH[::-1]
        out = mixture_params(C, mixtures) if mixtures else C
        self.decoder = nn.ModuleList(nn.ConvTranspose2d(a, b, 4, 2, 1) for a, b in zip(rev, rev[1:] + [out]))
        if blocks:
            self.encoder_res = nn.ModuleList(nn.Sequential(*[ResBlock(w) for _ in range(blocks)]) for w in CH)
            self.decoder_res = nn.ModuleList(nn.Sequential(*[ResBlock(w) for _ in range(blocks)]) for w in rev)

    def encode(self, x, y=None):
        h = x.view(x.shape[0], self.C, self.H, self.W)
        for i, conv in enumerate(self.encoder):
            h = F.relu(conv(h))
            if self.R:
                h = self.encoder_res[i](h)
        h = h.flatten(1)
        if self.hidden:
            h = F.relu(self.encoder_fc(h))
        if self.classes:
            h = torch.cat((h, y), 1)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z, y=None):
        """The decoder's output [B, P, H, W]: Bernoulli logits, or the mixture's parameters."""
        g = F.relu(self.decoder_input(torch.cat((z, y), 1) if self.classes else z))
        if self.hidden:
            g = F.relu(self.decoder_fc(g))
        g = g.view(-1, self.CH[-1], self.s, self.s)
        for i, dc in enumerate(self.decoder):
            if self.R:
                g = self.decoder_res[i](g)
            g = dc(g)
            g = F.relu(g) if i < len(self.decoder) - 1 else g
        return g


def module_for(model: dict) -> nn.Module:
    """The reference module of a run's ``config["model"]``, or NotImplementedError naming
    what has none."""
    kind = model.get("kind", "vae")
    lik = model.get("likelihood", "bernoulli")
    lik_name = lik if isinstance(lik, str) else next(iter(lik))
    prior = model.get("prior", "standard")
    prior_name = prior if isinstance(prior, str) else next(iter(prior))
    if kind not in ("vae", "cvae") or prior_name != "standard":
        raise NotImplementedError(f"to_torch() has reference modules for vae and cvae with the standard prior; "
                                  f"this run is a {kind} with the {prior_name} prior")
    classes = model.get("classes", 10) if kind == "cvae" else 0
    C, H, W = model.get("channels", 1), model["image_rows"], model["image_cols"]
    arch = model.get("arch", "mlp")
    if arch == "mlp":
        if lik_name != "bernoulli":
            raise NotImplementedError(f"to_torch() has the tutorial's Bernoulli output for an mlp, not {lik_name}")
        return TutorialVAE(C, H, W, model["hidden_dim"], model.get("hidden_layers", 1), model["latent_dim"], classes,
                           model.get("activation", "relu"))
    if lik_name not in ("bernoulli", "logistic-mixture") or model.get("activation", "relu") != "relu" or H != W:
        raise NotImplementedError(f"to_torch() has the conv reference with Bernoulli or logistic-mixture outputs on "
                                  f"square images, not {lik_name}")
    K = lik[lik_name]["mixtures"] if lik_name == "logistic-mixture" else 0
    blocks = model.get("blocks", 0) if arch == "resnet" else 0
    return ConvVAE(C, H, model["widths"], model["latent_dim"], classes, K, blocks, model.get("hidden_dim", 0))


def to_torch(run) -> nn.Module:
    """``run``'s model as its reference module, the weights of ``model.safetensors`` loaded
    strictly (every name and shape must match)."""
    from safetensors.torch import load_file

    m = module_for(run.config["model"])
    d = run.config["model"].get("discriminator")
    if d:
        # FactorVAE's discriminator (Kim & Mnih 2018): Linear and LeakyReLU(0.2), then 2 logits.
        sizes = [run.config["model"]["latent_dim"]] + [d["hidden"]] * d["layers"]
        layers = []
        for i, o in zip(sizes, sizes[1:]):
            layers += [nn.Linear(i, o), nn.LeakyReLU(0.2)]
        m.discriminator = nn.Sequential(*layers, nn.Linear(sizes[-1], 2))
    m.load_state_dict(load_file(os.path.join(run.path, "model.safetensors")), strict=True)
    return m.eval()
