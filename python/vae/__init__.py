"""Variational autoencoders on images, trained and evaluated by vae's Rust CPU core, with NumPy
in and out.

    import vae
    run = vae.train(out="runs/digits", epochs=10)          # the tutorial's VAE on MNIST
    mu, logvar = run.encode(images)                          # float32 [N, 1, 28, 28] in [0, 1]
    pictures = run.sample(16, seed=1)                        # float32 [16, 1, 28, 28]
    report = vae.evaluate(run, k=1000)                       # dict: ELBO, IWAE-1000, bits/dim...

Images are float32 arrays ``[N, C, H, W]`` (or ``[N, D]`` with D = C·H·W; ``uint8`` 0-255 is
accepted too) with values in [0, 1]; codes are float32 ``[N, latent_dim]``; labels are ints or
class names. A run is a directory, the same one the ``vae`` command reads and writes.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _vae
from ._arrays import as_bytes, as_images, as_labels, write_arrays
from ._progress import Lines, Progress, Silent, default_progress
from ._vae import VaeError

__version__ = _vae.__version__
__all__ = ["Run", "load", "train", "evaluate", "VaeError", "Progress", "Lines", "Silent"]

Labels = Union[None, int, str, Sequence[Union[int, str]], np.ndarray]


class Run:
    """A trained run, loaded from its directory (what ``vae train`` or :func:`train` wrote).

    ``threads`` is how many cores its computations use (0: all)."""

    def __init__(self, path: Union[str, os.PathLike], threads: int = 0):
        self._run = _vae.Run(os.fspath(path), threads)
        self._config: Optional[Dict[str, Any]] = None

    def __repr__(self) -> str:
        c, h, w = self.shape
        return f"vae.Run({self.path!r}: {self.config['model'].get('kind', 'vae')}, {c}x{h}x{w}, latent {self.latent_dim})"

    # What the run is.

    @property
    def path(self) -> str:
        """The run directory."""
        return self._run.path

    @property
    def config(self) -> Dict[str, Any]:
        """``config.json``: the model (``config["model"]``) and how it was trained (``config["train"]``)."""
        if self._config is None:
            self._config = json.loads(self._run.config_json())
        return self._config

    @property
    def metrics(self) -> List[Dict[str, Any]]:
        """One dict per completed epoch (``metrics.jsonl``): ``epoch``, ``train_objective``,
        ``test_loss``, ``test_reconstruction``, ``test_kl``, ``seconds``, ...; read afresh each time."""
        return json.loads(self._run.metrics_json())

    @property
    def classes(self) -> List[str]:
        """The class names a conditional model's labels index (empty for unlabelled data)."""
        return self._run.classes

    @property
    def shape(self) -> Tuple[int, int, int]:
        """``(channels, height, width)`` of the run's images."""
        return self._run.shape

    @property
    def latent_dim(self) -> int:
        """Dimensions of the latent code z."""
        return self._run.latent_dim

    @property
    def conditional(self) -> bool:
        """Whether the model takes a label (a cvae)."""
        return self._run.conditional

    def images(self, split: str = "test", limit: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """The run's own pictures: ``(x, labels)``, x float32 ``[N, C, H, W]`` in [0, 1] and labels
        int64 ``[N]`` (indices into :attr:`classes`), of the "test" or "train" split, read from
        its data as ``vae eval`` reads it; ``limit`` takes a sample of that many, stratified
        across classes (seeded by the run's seed)."""
        data, labels = self._run.images(split, limit)
        x = data.astype(np.float32)
        x /= np.float32(255)
        return self._pictures(x), labels.astype(np.int64)

    # The model.

    def _labels(self, labels: Labels, n: int) -> Optional[np.ndarray]:
        if labels is None:
            if self.conditional:
                raise ValueError(f"this run's model is conditional: pass labels (ints or names of {self.classes})")
            return None
        if not self.conditional:
            raise ValueError("this run's model is unconditional: it takes no labels (pass labels=None)")
        return as_labels(labels, n, self.classes)

    def _pictures(self, flat: np.ndarray) -> np.ndarray:
        return flat.reshape((flat.shape[0],) + tuple(self.shape))

    def encode(self, x: np.ndarray, labels: Labels = None) -> Tuple[np.ndarray, np.ndarray]:
        """The posterior q(z|x) of each image: ``(mu, logvar)``, float32 ``[N, latent_dim]`` each.

        ``x``: float32 ``[N, C, H, W]`` or ``[N, D]`` in [0, 1] (or uint8). ``labels``: one per
        image (ints or class names), or one for all, for a conditional model only."""
        flat = as_images(x, self.shape)
        return self._run.encode(flat, self._labels(labels, flat.shape[0]))

    def decode(self, z: np.ndarray, labels: Labels = None) -> np.ndarray:
        """The decoder's mean image for each code: float32 ``[N, C, H, W]`` in [0, 1].

        ``z``: float32 ``[N, latent_dim]``."""
        if not isinstance(z, np.ndarray) or z.dtype != np.float32:
            raise ValueError(f"z must be a float32 NumPy array [N, {self.latent_dim}], got {_describe(z)}")
        if z.ndim == 1:
            z = z[None, :]
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be [N, {self.latent_dim}] (the run's latent dimension), got {list(z.shape)}")
        z = np.ascontiguousarray(z)
        return self._pictures(self._run.decode(z, self._labels(labels, z.shape[0])))

    def reconstruct(self, x: np.ndarray, labels: Labels = None) -> np.ndarray:
        """Each image through the model: the decoder's mean at z = mu, ``[N, C, H, W]``."""
        mu, _ = self.encode(x, labels)
        return self.decode(mu, labels)

    def sample(self, n: int, label: Labels = None, temperature: float = 1.0, seed: int = 0,
               sampler: str = "auto") -> np.ndarray:
        """``n`` new images ``[n, C, H, W]``: codes drawn by ``sampler``, decoded to means.

        ``sampler``: "prior" (z from the model's prior, at ``temperature``), "gmm" (the Gaussian
        mixture fitted to the training codes at the end of training), or "auto" (the mixture
        when the run has one, else the prior), as ``vae sample --sampler``. ``label``: one class
        (int or name) for all, or one per image; a conditional model without it cycles through
        its classes. The same seed gives the same images as ``vae sample --seed``."""
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        if sampler not in ("auto", "prior", "gmm"):
            raise ValueError(f'sampler must be "auto", "prior" or "gmm", got {sampler!r}')
        if self.conditional and label is None:
            label = np.arange(n) % len(self.classes)
        labels = self._labels(label, int(n))
        return self._pictures(self._run.sample(int(n), labels, float(temperature), int(seed), sampler))

    def interpolate(self, a: np.ndarray, b: np.ndarray, steps: int = 10, labels: Labels = None) -> np.ndarray:
        """The images along the straight path between the codes (mu) of images ``a`` and ``b``
        (each ``[C, H, W]`` or ``[D]``): ``[steps, C, H, W]``, ``a``'s reconstruction first."""
        if steps < 2:
            raise ValueError(f"steps must be at least 2, got {steps}")
        pair = np.stack([as_images(a[None], self.shape)[0], as_images(b[None], self.shape)[0]])
        label = None if labels is None else as_labels(labels, 2, self.classes)[:1]
        mu, _ = self.encode(pair, None if label is None else np.repeat(label, 2))
        t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
        path = (1 - t) * mu[0] + t * mu[1]
        return self.decode(path.astype(np.float32), None if label is None else np.repeat(label, steps))

    def elbo(self, x: np.ndarray, labels: Labels = None, samples: int = 1, seed: int = 0) -> np.ndarray:
        """The ELBO of each image in nats, float64 ``[N]``: E_q[log p(x|z)] - KL(q(z|x) || p(z))
        (Kingma & Welling 2014, eq. 3), the reconstruction term at ``samples`` draws of z. The
        images are taken as 8-bit data (x·255 must be whole: pictures, not arbitrary floats)."""
        data = as_bytes(x, self.shape)
        return self._run.elbo(data, self._labels(labels, data.shape[0]), int(samples), int(seed))

    def iwae(self, x: np.ndarray, k: int = 100, labels: Labels = None, seed: int = 0) -> np.ndarray:
        """The importance-weighted bound IWAE_k of each image in nats, float64 ``[N]`` (Burda et
        al. 2015, eq. 8): a lower bound on log p(x) that tightens as k grows; ``vae eval``'s
        figure with the same seed. The images are taken as 8-bit data, as for :meth:`elbo`."""
        data = as_bytes(x, self.shape)
        return self._run.iwae(data, int(k), self._labels(labels, data.shape[0]), int(seed))

    def to_torch(self):
        """The run's model as the reference PyTorch ``nn.Module`` (the tutorial's VAE, or the conv
        reference), its weights loaded: train in vae, continue in PyTorch. Needs ``torch`` and
        ``safetensors``."""
        from ._torch import to_torch

        return to_torch(self)


def load(path: Union[str, os.PathLike], threads: int = 0) -> Run:
    """The run in directory ``path``, made by ``vae train`` or :func:`train`."""
    return Run(path, threads)


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"{x.dtype} array of shape {list(x.shape)}"
    return type(x).__name__


def _flag(name: str, value: Any) -> List[str]:
    """``batch_size=32`` as ``["--batch-size", "32"]``; True as the bare flag; lists joined by commas."""
    flag = "--" + name.replace("_", "-")
    if value is None or value is False:
        return []
    if value is True:
        return [flag]
    if isinstance(value, (list, tuple)):
        return [flag, ",".join(str(v) for v in value)]
    return [flag, os.fspath(value) if isinstance(value, os.PathLike) else str(value)]


class _Observer:
    """What the Rust trainer calls: progress hooks, then the user's callback."""

    def __init__(self, progress: Progress, callback: Optional[Callable[[int, Dict[str, Any]], Any]]):
        self.progress, self.callback = progress, callback

    def epoch_start(self, epoch: int, total: int, steps: int) -> None:
        self.progress.epoch_start(epoch, total, steps)

    def step(self, step: int, running: float) -> None:
        self.progress.step(step, running)

    def epoch_end(self, metrics_json: str, total: int, next_lr: float) -> None:
        metrics = json.loads(metrics_json)
        self.progress.epoch_end(metrics, total)
        if self.callback is not None:
            self.callback(metrics["epoch"], metrics)


def train(out: Optional[Union[str, os.PathLike]] = None, data: Any = "mnist", labels: Labels = None, *,
          test_data: Optional[np.ndarray] = None, test_labels: Labels = None,
          classes: Optional[Sequence[str]] = None, test_fraction: float = 0.1,
          resume: Optional[Union[str, os.PathLike]] = None,
          callback: Optional[Callable[[int, Dict[str, Any]], Any]] = None,
          progress: Union[bool, Progress] = True, **options: Any) -> Run:
    """Trains a model as ``vae train`` does and returns the run.

    out: the run directory to create [default: runs/<model>-<UTC time>].
    data: "mnist" (embedded), "fashion-mnist" (Debian's dataset-fashion-mnist), "dsprites"
        (generated, with its five factors; see ``vae disentanglement``), a folder (of
        pictures, or of MNIST-format files), or a NumPy array of images ``[N, C, H, W]`` or
        ``[N, H, W]`` (float32 in [0, 1], or uint8) with ``labels`` (ints or names, or None),
        written into ``out/arrays`` as the run's data.
    test_data, test_labels: an array's test split; without them ``test_fraction`` of the array
        (seeded by ``seed``) is held out.
    classes: the names of an array's integer labels.
    resume: a run directory to continue (``epochs`` = the new total, ``lr``, ``threads`` may change).
    callback: ``fn(epoch, metrics)`` after each epoch (saved by then); an exception it raises
        stops training and is raised here, every completed epoch kept.
    progress: True (a tqdm bar when tqdm is installed, else a line per epoch), False, or an
        object with ``epoch_start(epoch, total, steps)``, ``step(step, loss)`` and
        ``epoch_end(metrics, total)`` (see :class:`Progress`).
    options: every option of ``vae train``, by its long name with ``_`` for ``-``:
        ``epochs=10, batch_size=32, arch="conv", widths=[32, 64], likelihood="logistic-mixture",
        precision="bf16", ...`` (see ``vae train --help``, below).

    Ctrl-C stops before the next step and raises KeyboardInterrupt; the run keeps every
    completed epoch, and ``train(resume=run.path)`` continues it. The GIL is released while it
    computes.
    """
    args: List[str] = []
    if resume is not None:
        if out is not None or not isinstance(data, str) or data != "mnist":
            raise ValueError("resume continues a run on its own data into its own directory: drop out and data")
        args += ["--resume", os.fspath(resume)]
    else:
        if out is None:
            kind = options.get("model", "vae")
            out = os.path.join("runs", f"{kind}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}")
        args += ["--out", os.fspath(out)]
        args += _data_flags(os.fspath(out), data, labels, test_data, test_labels, classes, test_fraction,
                            int(options.get("seed", 1)))
    for name, value in options.items():
        args += _flag(name, value)
    if progress is False:
        args.append("--quiet")
    bar = default_progress() if progress is True else (Silent() if progress is False else progress)
    path = _vae.train(args, _Observer(bar, callback))
    return Run(path, int(options.get("threads", 0) or 0))


def _data_flags(out: str, data: Any, labels: Labels, test_data: Any, test_labels: Labels,
                classes: Optional[Sequence[str]], test_fraction: float, seed: int) -> List[str]:
    if isinstance(data, np.ndarray):
        if os.path.exists(os.path.join(out, "config.json")):
            # Checked before the arrays are written: they would replace that run's data.
            raise VaeError(f"{out} already holds a run; continue it with vae.train(resume={out!r}) or choose another out")
        folder = os.path.abspath(os.path.join(out, "arrays"))
        write_arrays(folder, data, labels, test_data, test_labels, classes, test_fraction, seed)
        return ["--data-dir", folder]
    if labels is not None or test_data is not None or test_labels is not None or classes is not None:
        raise ValueError("labels, test_data, test_labels and classes go with an array as data; "
                         "a folder or dataset brings its own")
    if isinstance(data, str) and data in ("mnist", "fashion-mnist", "dsprites"):
        return [] if data == "mnist" else ["--dataset", data]
    if isinstance(data, (str, os.PathLike)):
        return ["--data-dir", os.fspath(data)]
    raise ValueError(f'data must be "mnist", "fashion-mnist", "dsprites", a folder, or a NumPy array of images; '
                     f'got {_describe(data)}')


def evaluate(run: Union[Run, str, os.PathLike], **options: Any) -> Dict[str, Any]:
    """Evaluates a run as ``vae eval`` does and returns the report as a dict (also added to
    the run's ``evals.jsonl`` and ``eval.json``, unless ``output`` names another file).

    options: every option of ``vae eval`` by its long name: ``k=1000`` (importance samples),
    ``limit=1000`` (images), ``generated=0`` (skip the sample scores), ``split="train"``, ...
    Progress and the table are printed unless ``quiet=True``."""
    path = run.path if isinstance(run, Run) else os.fspath(run)
    args = [path]
    for name, value in options.items():
        args += _flag(name, value)
    return json.loads(_vae.evaluate(args))


def _with_cli_help(f: Callable, command: str) -> None:
    text = _vae.help(command)
    if text and f.__doc__:
        f.__doc__ += f"\n    The options of ``vae {command}``:\n\n" + "\n".join("    " + l for l in text.splitlines())


_with_cli_help(train, "train")
_with_cli_help(evaluate, "eval")
