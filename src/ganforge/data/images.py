"""Images in memory, the one form every dataset module loads into: :class:`ImageData` (uint8
``(N, C, H, W)``), the conversions between stored pixels and the networks' ``[-1, 1]``, resizing,
the batches training draws, and where datasets live on disk.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ganforge.errors import GanforgeError

#: An image shape ``(channels, height, width)``.
ImageShape = tuple[int, int, int]


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


def shape_text(shape: tuple[int, ...]) -> str:
    """``(3, 32, 32)`` → ``3×32×32``, as messages write shapes."""
    return "×".join(map(str, shape))
