"""Image files a person opens: PNG grids, animated GIFs, and ``.npz`` arrays of samples, each
written atomically (a kill never leaves half a file).

Images come as ``(N, C, H, W)`` tensors in ``[-1, 1]``, the generators' range.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ganforge.data import to_uint8
from ganforge.errors import GanforgeError
from ganforge.files import atomic_write_bytes


def image_grid(images: torch.Tensor, nrow: int, padding: int = 2) -> torch.Tensor:
    """Images ``(N, C, H, W)`` in ``[-1, 1]`` → one grid ``(3 or C, H', W')`` in ``[0, 1]``:
    ``nrow`` images a row, ``padding`` white pixels around each, grayscale as RGB.

    The same pixels as ``torchvision.utils.make_grid(images, nrow, padding, normalize=True,
    value_range=(-1, 1), pad_value=1)`` (a test compares them), without importing torchvision,
    which costs every ``ganforge train`` 1.4 s of start-up on a 2-core CPU for this one function.
    """
    images = (images.detach().float().cpu().clamp(-1, 1) + 1) / 2
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    count, channels, height, width = images.shape
    if count == 1:  # as make_grid: a single image comes back without a frame
        return images[0].clone()
    columns = min(nrow, count)
    rows = math.ceil(count / columns)
    # White padding above and left of every image, blank cells to fill the last row, then the
    # tiles side by side and white padding once more below and right of the whole grid.
    tiles = F.pad(images, (padding, 0, padding, 0), value=1.0)
    blanks = tiles.new_ones(rows * columns - count, *tiles.shape[1:])
    tiles = torch.cat([tiles, blanks]).reshape(rows, columns, channels, *tiles.shape[2:])
    grid = tiles.permute(2, 0, 3, 1, 4).reshape(
        channels, rows * (height + padding), columns * (width + padding)
    )
    return F.pad(grid, (0, padding, 0, padding), value=1.0)


def grid_png(grid: torch.Tensor) -> bytes:
    """A grid ``(C, H, W)`` in ``[0, 1]`` (from :func:`image_grid`) as PNG bytes, rounded to
    bytes as ``torchvision.utils.save_image`` rounds them."""
    from PIL import Image

    array = grid.mul(255).add(0.5).clamp(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(buffer, format="png")
    return buffer.getvalue()


def save_grid(images: torch.Tensor, path: Path, nrow: int | None = None) -> None:
    """Save images ``(N, C, H, W)`` in ``[-1, 1]`` as one PNG grid (√N per row by default)."""
    nrow = nrow or max(1, math.isqrt(images.shape[0] - 1) + 1)
    png = grid_png(image_grid(images, nrow))
    atomic_write_bytes(path, png)  # a kill never leaves half a picture


def write_gif(pictures: list, path: Path, frame_ms: int = 200) -> None:
    """An animated, looping GIF of PIL images, written atomically."""
    buffer = io.BytesIO()
    pictures[0].save(
        buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=frame_ms, loop=0
    )
    atomic_write_bytes(path, buffer.getvalue())


def save_timeline_gif(samples: Path, path: Path) -> bool:
    """The fixed-noise grids of a run (``samples/step_*.png``, then ``final.png``) as one
    animated GIF; False when there are none."""
    from PIL import Image

    frames = sorted(samples.glob("step_*.png"))
    frames += [samples / "final.png"] if (samples / "final.png").is_file() else []
    if not frames:
        return False
    pictures = []
    for frame in frames:
        with Image.open(frame) as picture:
            pictures.append(picture.convert("RGB"))
    write_gif(pictures, path, frame_ms=300)
    return True


def save_gif(frames: list[torch.Tensor], path: Path, frame_ms: int = 200) -> None:
    """An animated GIF, looping, of ``frames``: each an image grid ``(C, H, W)`` with values in
    ``[0, 1]`` (as :func:`image_grid` returns it). Written atomically."""
    from PIL import Image

    pictures = []
    for frame in frames:
        array = (frame.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        pictures.append(Image.fromarray(array[..., 0] if array.shape[2] == 1 else array))
    try:
        write_gif(pictures, path, frame_ms)
    except OSError as exc:
        raise GanforgeError(f"cannot write {path}: {exc.strerror or exc}") from None


def save_npz(images: torch.Tensor, path: Path) -> None:
    """Save ``(N, C, H, W)`` images in ``[-1, 1]`` as uint8 under key ``images``:
    ``N×H×W`` for grayscale, ``N×H×W×C`` for colour. Written atomically."""
    array = to_uint8(images).permute(0, 2, 3, 1).numpy()
    if array.shape[-1] == 1:
        array = array[..., 0]
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=array)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        raise GanforgeError(f"cannot write {path}: {exc.strerror or exc}") from None
