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
from torchvision.utils import save_image

from ganforge.data import to_uint8
from ganforge.errors import GanforgeError
from ganforge.files import atomic_write_bytes


def save_grid(images: torch.Tensor, path: Path, nrow: int | None = None) -> None:
    """Save images ``(N, C, H, W)`` in ``[-1, 1]`` as one PNG grid (√N per row by default)."""
    nrow = nrow or max(1, math.isqrt(images.shape[0] - 1) + 1)
    buffer = io.BytesIO()
    save_image(
        images.detach().float().cpu(),
        buffer,
        format="png",
        nrow=nrow,
        padding=2,
        normalize=True,
        value_range=(-1, 1),
        pad_value=1.0,
    )
    atomic_write_bytes(path, buffer.getvalue())  # a kill never leaves half a picture


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
    ``[0, 1]`` (as :func:`torchvision.utils.make_grid` returns it). Written atomically."""
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
