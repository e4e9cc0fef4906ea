"""Checks and conversions of the arrays handed to vae: images, labels, and an array dataset
written as the arrays folder the Rust library reads (train/test images and labels ``.npy``,
``classes.json``)."""
from __future__ import annotations

import json
import os
from typing import Any, Optional, Sequence, Tuple

import numpy as np


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"{x.dtype} array of shape {list(x.shape)}"
    return type(x).__name__


def _flat(x: Any, shape: Tuple[int, int, int], what: str) -> np.ndarray:
    """``x`` as ``[N, D]`` (a view where it can be), checked against the run's image shape."""
    c, h, w = shape
    d = c * h * w
    want = f"[N, {c}, {h}, {w}] or [N, {d}]"
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{what} must be a NumPy array {want}, got {_describe(x)}")
    if x.dtype not in (np.float32, np.uint8):
        raise ValueError(f"{what} must be float32 (values in [0, 1]) or uint8, got {x.dtype}; use {what}.astype(np.float32)")
    ok = (x.ndim == 4 and x.shape[1:] == (c, h, w)) or (x.ndim == 2 and x.shape[1] == d) or (
        c == 1 and x.ndim == 3 and x.shape[1:] == (h, w))
    if not ok:
        raise ValueError(f"{what} must be {want} for this run's images, got {list(x.shape)}")
    return x.reshape(x.shape[0], d)


def as_images(x: Any, shape: Tuple[int, int, int], what: str = "x") -> np.ndarray:
    """float32 ``[N, D]``, C-contiguous: float32 input unchanged (no copy when contiguous),
    uint8 divided by 255."""
    flat = _flat(x, shape, what)
    if flat.dtype == np.uint8:
        return flat.astype(np.float32) / np.float32(255)
    return np.ascontiguousarray(flat)


def as_bytes(x: Any, shape: Tuple[int, int, int], what: str = "x") -> np.ndarray:
    """uint8 ``[N, D]`` of 8-bit images: uint8 as is, float32 times 255, which must be whole."""
    flat = _flat(x, shape, what)
    if flat.dtype == np.uint8:
        return np.ascontiguousarray(flat)
    return quantize(flat, what)


def quantize(x: np.ndarray, what: str) -> np.ndarray:
    """float32 in [0, 1] with whole multiples of 1/255 as uint8, or a ValueError saying why not."""
    if not np.all(np.isfinite(x)) or x.min(initial=0.0) < 0 or x.max(initial=0.0) > 1:
        raise ValueError(f"{what} must hold values in [0, 1] (8-bit pictures divided by 255)")
    scaled = x * np.float32(255)
    v = np.rint(scaled)
    if np.max(np.abs(scaled - v), initial=0.0) > 1e-3:
        raise ValueError(f"{what} must be 8-bit pictures: x·255 must be whole numbers (pass uint8, or np.round(x * 255) / 255)")
    return np.ascontiguousarray(v.astype(np.uint8))


def as_labels(labels: Any, n: int, classes: Sequence[str]) -> np.ndarray:
    """uint8 ``[n]`` class indices from ints or class names, one per image or one for all."""
    if isinstance(labels, (int, np.integer, str)):
        labels = [labels] * n
    values = list(labels.tolist() if isinstance(labels, np.ndarray) else labels)
    if len(values) != n:
        raise ValueError(f"{len(values)} labels for {n} images: pass one label per image, or one for all")
    out = np.empty(n, dtype=np.uint8)
    for i, v in enumerate(values):
        if isinstance(v, str):
            if v not in classes:
                raise ValueError(f"label {v!r} is not a class of this run; its classes are {list(classes)}")
            out[i] = classes.index(v)
        elif isinstance(v, (int, np.integer)) and 0 <= v < len(classes):
            out[i] = v
        else:
            raise ValueError(f"label {v!r} is out of range: the run knows {len(classes)} classes, 0 to {len(classes) - 1}")
    return out


def _dataset_images(x: Any, what: str) -> np.ndarray:
    """An array dataset's images as uint8 ``[N, C, H, W]``."""
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.uint8):
        raise ValueError(f"{what} must be a float32 (in [0, 1]) or uint8 NumPy array [N, C, H, W], got {_describe(x)}")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"{what} must be [N, C, H, W] with C = 1 or 3 (or [N, H, W] for grey), got {list(x.shape)}")
    if x.dtype == np.float32:
        x = quantize(x, what).reshape(x.shape)
    return np.ascontiguousarray(x)


def _dataset_labels(labels: Any, n: int, classes: Optional[Sequence[str]], what: str) -> Tuple[np.ndarray, list]:
    """Integer labels (and the class names) of an array dataset: names become their index in
    ``classes`` (default: the names sorted)."""
    if labels is None:
        return np.zeros(n, dtype=np.uint8), list(classes or [])
    values = labels.tolist() if isinstance(labels, np.ndarray) else list(labels)
    if len(values) != n:
        raise ValueError(f"{what} holds {len(values)} labels for {n} images: pass one label per image")
    if values and all(isinstance(v, str) for v in values):
        names = list(classes) if classes is not None else sorted(set(values))
        missing = sorted(set(values) - set(names))
        if missing:
            raise ValueError(f"{what} holds names missing from classes: {missing}")
        index = {name: i for i, name in enumerate(names)}
        return np.array([index[v] for v in values], dtype=np.uint8), names
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{what} must be ints or class names, one per image")
    if values and (min(values) < 0 or max(values) > 255):
        raise ValueError(f"{what} must be 0 to 255, got {min(values)} to {max(values)}")
    return np.asarray(values, dtype=np.uint8), list(classes or [])


def write_arrays(folder: str, x: Any, labels: Any, test_x: Any, test_labels: Any,
                 classes: Optional[Sequence[str]], test_fraction: float, seed: int) -> None:
    """Writes an array dataset as the arrays folder ``folder``: the given test split, or
    ``test_fraction`` of ``x`` held out by a permutation seeded by ``seed``."""
    images = _dataset_images(x, "data")
    y, names = _dataset_labels(labels, len(images), classes, "labels")
    if test_x is not None:
        test = _dataset_images(test_x, "test_data")
        if test.shape[1:] != images.shape[1:]:
            raise ValueError(f"test_data's images are {list(test.shape[1:])} but data's are {list(images.shape[1:])}")
        if test_labels is not None and all(isinstance(v, str) for v in list(test_labels)) and not names:
            raise ValueError("test_labels are names but labels are not")
        ty, _ = _dataset_labels(test_labels, len(test), names or None, "test_labels")
    elif test_labels is not None:
        raise ValueError("test_labels need test_data")
    else:
        if not 0 <= test_fraction < 1:
            raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
        order = np.random.default_rng(seed).permutation(len(images))
        n_test = int(round(len(images) * test_fraction))
        test, ty = images[order[:n_test]], y[order[:n_test]]
        images, y = images[order[n_test:]], y[order[n_test:]]
    os.makedirs(folder, exist_ok=True)
    for name, array in (("train-images", images), ("train-labels", y), ("test-images", test), ("test-labels", ty)):
        np.save(os.path.join(folder, name + ".npy"), array)
    if names:
        with open(os.path.join(folder, "classes.json"), "w") as f:
            json.dump(names, f)
