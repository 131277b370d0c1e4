"""CIFAR-10: 60,000 colour images of 32×32 pixels in 10 classes, read from torchvision's
``<root>/cifar-10-batches-py`` (the unpacked ``cifar-10-python.tar.gz``) after torchvision
checks every file's MD5 sum against the official release, or downloaded by torchvision when
asked for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ganforge.data.images import ImageData, ImageShape
from ganforge.errors import GanforgeError, first_line

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")


def load_cifar10(root: Path, split: str = "train", download: bool = False) -> ImageData:
    """CIFAR-10's training (50,000) or ``test`` (10,000) images as uint8 ``(N, 3, 32, 32)``.

    Read by ``torchvision.datasets.CIFAR10`` from ``root/cifar-10-batches-py``, or downloaded
    there first with ``download``. torchvision unpickles the files only once their MD5 sums
    match the official release's, so a tampered file is refused rather than run.
    """
    folder = root / CIFAR10_FOLDER
    if not download and not all((folder / name).is_file() for name in CIFAR10_FILES):
        raise GanforgeError(
            f"CIFAR-10 not found: unpack cifar-10-python.tar.gz so that {folder} holds its "
            "batch files, or pass --download"
        )
    import torchvision

    try:
        dataset = torchvision.datasets.CIFAR10(
            root=str(root), train=split != "test", download=download
        )
    except Exception as exc:
        # torchvision's messages speak of its own API (download=True) and span several lines.
        action = "download" if download else "read"
        raise GanforgeError(
            f"torchvision could not {action} CIFAR-10 in {folder}: {first_line(exc)}"
        ) from None
    images = torch.from_numpy(np.ascontiguousarray(dataset.data))
    labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
    classes = [str(c) for c in dataset.classes]
    if images.dtype != torch.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != (32, 32, 3):
        raise GanforgeError(f"{folder}: images have shape {tuple(images.shape)}, not N×32×32×3")
    if labels.shape != images.shape[:1] or (
        len(labels) and (labels.min() < 0 or labels.max() >= len(classes))
    ):
        raise GanforgeError(
            f"{folder}: labels do not match the images or the {len(classes)} classes"
        )
    # The pickles hold channels last; the models want (N, C, H, W).
    return ImageData("cifar10", images.permute(0, 3, 1, 2).contiguous(), labels, classes)


def load_cifar10_split(
    name: str, split: str, *, root: Path, download: bool, image_shape: ImageShape
) -> ImageData:
    """:func:`load_cifar10` as the dataset table calls loaders; ``image_shape`` is not used
    (the caller converts)."""
    return load_cifar10(root, split, download)
