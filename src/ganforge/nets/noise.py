"""The noise a generator starts from."""

from __future__ import annotations

import torch

#: The noise a generator starts from: the assignment's uniform on ``[-1, 1)``, or a standard
#: normal (a VAE's prior, and what many GAN papers use).
NOISE_DISTRIBUTIONS = ("uniform", "normal")


def sample_noise(
    batch_size: int,
    dim: int,
    *,
    distribution: str = "uniform",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Noise of shape ``(batch_size, dim)``: uniform in ``[-1, 1)`` or standard normal."""
    if distribution == "normal":
        return torch.randn(batch_size, dim, generator=generator, device=device, dtype=dtype)
    if distribution != "uniform":
        raise ValueError(f"unknown noise distribution {distribution!r}")
    noise = torch.rand(batch_size, dim, generator=generator, device=device, dtype=dtype)
    return noise.mul_(2).sub_(1)
