"""Images in memory, the one form every dataset module loads into: :class:`ImageData` (uint8
``(N, C, H, W)``), the conversions between stored pixels and the networks' ``[-1, 1]``, resizing,
the batches training draws, and where datasets live on disk.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ganforge.errors import GanforgeError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

#: An image shape ``(channels, height, width)``.
ImageShape = tuple[int, int, int]

#: What transparent pixels are composited onto unless ``--background`` says otherwise.
DEFAULT_BACKGROUND = "white"
#: The backgrounds named in words; any other is written ``#RRGGBB``.
BACKGROUND_NAMES: dict[str, tuple[int, int, int]] = {"white": (255, 255, 255), "black": (0, 0, 0)}
#: Pillow modes that carry an alpha channel (premultiplied ones included).
ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


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

    def held_out(self, every: int, split: str) -> ImageData:
        """A split stratified by class: ``test`` is the ``every``-th, ``2·every``-th, … image of
        each class in file order (about ``1/every`` of each), ``train`` the rest, both kept in
        file order. The same files give the same split on every machine."""
        rank = torch.zeros(len(self), dtype=torch.long)
        for label in self.labels.unique():
            (indices,) = torch.nonzero(self.labels == label, as_tuple=True)
            rank[indices] = torch.arange(1, len(indices) + 1)
        test = rank % every == 0
        keep = test if split == "test" else ~test
        return ImageData(self.name, self.images[keep], self.labels[keep], self.classes)

    def pick(self, how: str, n: int) -> ImageData:
        """``n`` images chosen as ``how`` says: ``balanced`` (:meth:`balanced`) or ``spread``
        (:meth:`spread`)."""
        return self.balanced(n) if how == "balanced" else self.spread(n)

    def spread(self, n: int) -> ImageData:
        """``n`` images evenly spaced over the file order: image ``⌊i·N/n⌋`` for ``i`` in
        ``0 .. n-1``, so each part of the order gives its share (a folder sorted by name, a
        category sorted by kind). With no more than ``n`` images, all of them."""
        if n >= len(self):
            return self
        keep = torch.arange(n) * len(self) // n
        return ImageData(self.name, self.images[keep], self.labels[keep], self.classes)

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


def parse_background(text: str) -> tuple[int, int, int]:
    """``white``, ``black`` or ``#RRGGBB`` (hex digits, either case) → ``(R, G, B)``, each
    0-255; :class:`GanforgeError` in one line for anything else."""
    if text in BACKGROUND_NAMES:
        return BACKGROUND_NAMES[text]
    digits = text[1:]
    if len(text) == 7 and text[0] == "#" and all(c in "0123456789abcdefABCDEF" for c in digits):
        return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))
    raise GanforgeError(f"background must be white, black or #RRGGBB (e.g. #808080), got {text!r}")


def check_background(text: str) -> None:
    """Raise :class:`GanforgeError` unless ``text`` is a background :func:`parse_background`
    reads."""
    parse_background(text)


def decode_image(
    img: PILImage, channels: int, background: str = DEFAULT_BACKGROUND
) -> torch.Tensor:
    """A Pillow image → uint8 ``(channels, h, w)``, grayscale (1) or RGB (3), values 0-255.

    An image with an alpha channel or a transparency table (a palette, grayscale or RGB PNG's
    ``tRNS``) is first alpha-composited onto the solid ``background`` (:func:`parse_background`):
    ``out = round((alpha · colour + (255 − alpha) · background) / 255)`` in 8 bits, so what lies
    under transparent pixels never shows; grayscale then takes the composite's luma. Other
    images are converted as they are."""
    from PIL import Image
    from torchvision.transforms.v2 import functional as TF

    if img.mode in ALPHA_MODES or "transparency" in img.info:
        # Straight to RGBA: palette transparency given as bytes is read (and Pillow does not
        # warn), where converting to RGB first would drop it.
        rgba = img.convert("RGBA")
        solid = Image.new("RGBA", rgba.size, (*parse_background(background), 255))
        img = Image.alpha_composite(solid, rgba)
    return TF.pil_to_tensor(img.convert("L" if channels == 1 else "RGB"))


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
