"""``folder:PATH``: every PNG/JPEG under PATH, a first-level sub-folder naming an image's class,
converted to grayscale or RGB and resized while it is read (files of any size can then share
one tensor); transparent images are composited onto a background first.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ganforge.data.images import (
    DEFAULT_BACKGROUND,
    ImageData,
    ImageShape,
    decode_image,
    resize_images,
)
from ganforge.errors import GanforgeError

PREFIX = "folder:"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
#: Pillow modes without colour; every other mode (RGB, RGBA, P, CMYK, ...) counts as colour.
GRAYSCALE_MODES = {"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}


def folder_path(name: str) -> Path:
    """``folder:PATH`` → PATH, ``~`` expanded."""
    return Path(name.removeprefix(PREFIX)).expanduser()


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )


def load_image_folder(
    folder: Path, image_shape: ImageShape, background: str = DEFAULT_BACKGROUND
) -> ImageData:
    """Read every PNG/JPEG under ``folder`` as uint8 ``image_shape`` (C, H, W).

    Images are converted to grayscale (C = 1) or RGB (C = 3), those with transparency composited
    onto ``background`` (``white``, ``black`` or ``#RRGGBB``; see
    :func:`~ganforge.data.images.decode_image`), resized so the short side is max(H, W) and
    centre-cropped to H × W. A first-level sub-folder names an image's class; images directly in
    ``folder`` get class 0. Unreadable files are skipped; no readable image at all is an error.
    """
    from PIL import Image, UnidentifiedImageError

    if not folder.is_dir():
        raise GanforgeError(f"image folder not found: {folder}")
    channels, height, width = image_shape
    images, classes = [], []
    for path in _image_files(folder):
        try:
            with Image.open(path) as img:
                tensor = decode_image(img, channels, background)
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


def load_folder(
    name: str,
    split: str,
    *,
    root: Path,
    download: bool,
    image_shape: ImageShape,
    background: str = DEFAULT_BACKGROUND,
) -> ImageData:
    """The images of ``folder:PATH`` at ``image_shape``, transparent ones composited onto
    ``background`` (:func:`load_image_folder`); a folder has one split, so ``split``, ``root``
    and ``download`` are not used."""
    return load_image_folder(folder_path(name), image_shape, background)


def folder_image_shape(name: str) -> ImageShape:
    """``(3, 0, 0)`` if any readable image under ``folder:PATH`` has a colour Pillow mode
    (anything but :data:`GRAYSCALE_MODES`; an RGB file whose channels happen to be equal still
    counts as colour), else ``(1, 0, 0)``; H = W = 0 means any size, since the folder loader
    resizes every image to the size asked for. Only image headers are read, stopping at the
    first colour one."""
    from PIL import Image, UnidentifiedImageError

    folder = folder_path(name)
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
