"""Images from a trained run: rebuild its generator from a checkpoint and draw samples."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ganforge.checkpoint import load_checkpoint, load_weights, sampling_weights
from ganforge.data import to_uint8
from ganforge.errors import GanforgeError
from ganforge.files import atomic_write_bytes
from ganforge.models import ARCHITECTURES, sample_noise


def load_generator(
    run_or_checkpoint: str | os.PathLike, device: torch.device | str = "cpu"
) -> tuple[nn.Module, dict]:
    """The generator of a run folder's newest checkpoint (or of a checkpoint file), in eval mode,
    with the EMA weights when the run kept an EMA.

    Returns ``(generator, config)``; BatchNorm layers use their running statistics.
    """
    checkpoint = load_checkpoint(run_or_checkpoint)
    config = checkpoint["config"]
    architecture, noise_dim = config.get("architecture"), config.get("noise_dim")
    if architecture not in ARCHITECTURES or not isinstance(noise_dim, int):
        raise GanforgeError(f"{checkpoint['path']}: its config names no known architecture")
    generator = ARCHITECTURES[architecture][0](noise_dim)
    load_weights(generator, sampling_weights(checkpoint), "generator", checkpoint["path"])
    return generator.to(device).eval(), config


@torch.inference_mode()
def generate(
    generator: nn.Module,
    num: int,
    noise_dim: int,
    *,
    seed: int = 0,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``num`` images ``(num, C, H, W)`` in ``[-1, 1]``, from noise seeded by ``seed``."""
    rng = torch.Generator().manual_seed(seed)
    noise = sample_noise(num, noise_dim, generator=rng)
    return torch.cat([generator(chunk.to(device)).cpu() for chunk in noise.split(batch_size)])


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
