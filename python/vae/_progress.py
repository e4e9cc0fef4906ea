"""How :func:`vae.train` shows its progress: a tqdm bar per epoch where tqdm is installed, a
line per epoch otherwise, or nothing; or any object with the three methods of
:class:`Progress`."""
from __future__ import annotations

import sys
from typing import Any, Dict


class Progress:
    """The hooks :func:`vae.train` calls; subclass it (or write any object with these methods)
    to replace the progress display."""

    def epoch_start(self, epoch: int, total: int, steps: int) -> None:
        """Epoch ``epoch`` of ``total`` starts, with ``steps`` optimisation steps."""

    def step(self, step: int, loss: float) -> None:
        """Step ``step`` (from 1) is done; ``loss`` is the epoch's mean training loss so far."""

    def epoch_end(self, metrics: Dict[str, Any], total: int) -> None:
        """The epoch is done and saved; ``metrics`` is its record in ``metrics.jsonl``."""


class Silent(Progress):
    """Shows nothing."""


def line(m: Dict[str, Any], total: int) -> str:
    """The command line's report of an epoch."""
    test = m.get("test_loss")
    test_text = (f"test {test:8.3f} [rec {m.get('test_reconstruction', 0):.2f} kl {m.get('test_kl', 0):.2f}]"
                 if test is not None else "no test images")
    return (f"epoch {m['epoch']:>3}/{total}  train {m['train_objective']:8.3f}  {test_text}  "
            f"{m['seconds']:6.2f} s  {m['images_per_sec']:7.0f} img/s")


class Lines(Progress):
    """One line per epoch on stdout, as ``vae train`` prints."""

    def __init__(self, file: Any = None):
        self.file = file

    def epoch_end(self, metrics: Dict[str, Any], total: int) -> None:
        print(line(metrics, total), file=self.file or sys.stdout, flush=True)


class Tqdm(Progress):
    """A tqdm bar over each epoch's steps, the running loss beside it, and the epoch's line
    written above it when the epoch ends."""

    def __init__(self) -> None:
        from tqdm.auto import tqdm

        self.tqdm, self.bar = tqdm, None

    def epoch_start(self, epoch: int, total: int, steps: int) -> None:
        self.bar = self.tqdm(total=steps, desc=f"epoch {epoch}/{total}", unit="step", leave=False)

    def step(self, step: int, loss: float) -> None:
        if self.bar is not None and (step % 4 == 0 or step == self.bar.total):
            self.bar.n = step
            self.bar.set_postfix(loss=f"{loss:.2f}", refresh=False)
            self.bar.refresh()

    def epoch_end(self, metrics: Dict[str, Any], total: int) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.tqdm.write(line(metrics, total))


def default_progress() -> Progress:
    """A tqdm bar when tqdm is installed, else a line per epoch."""
    try:
        return Tqdm()
    except ImportError:
        return Lines()
