"""The README's "From Python" example, run as written on a generated folder of pictures, so
that it cannot rot."""
import os
import re

import numpy as np
import pytest

from test_vae import png

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def readme_example():
    text = open(README, encoding="utf-8").read()
    section = text[text.index("## From Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def shapes_folder(root, per_class=40, side=24):
    """pictures/{circles,squares,stripes}: coloured shapes on noise, side × side."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:side, :side]
    for name in ("circles", "squares", "stripes"):
        os.makedirs(os.path.join(root, name))
        for i in range(per_class):
            picture = rng.uniform(0, 60, (side, side, 3))
            cy, cx, r = rng.uniform(8, side - 8, 2).tolist() + [rng.uniform(4, 7)]
            mask = {"circles": (yy - cy) ** 2 + (xx - cx) ** 2 < r * r,
                    "squares": (abs(yy - cy) < r) & (abs(xx - cx) < r),
                    "stripes": (xx // 3) % 2 == 0}[name]
            picture[mask] = rng.uniform(150, 255, 3)
            png(os.path.join(root, name, f"{i:02}.png"), picture.astype(np.uint8))


def test_the_readme_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install matplotlib)")
    monkeypatch.chdir(tmp_path)
    shapes_folder("pictures")
    exec(compile(readme_example(), "README.md", "exec"), {"__name__": "readme"})
    for name in ("loss.png", "codes.png", "path.png"):
        assert os.path.getsize(name) > 1000, name
    assert len(os.listdir("runs/shapes/samples")) >= 1
