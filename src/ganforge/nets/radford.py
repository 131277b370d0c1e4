"""The DCGAN of Radford et al. 2016 (``radford``): square images of 32 or 64 pixels with 1
or 3 channels, the image shape chosen at construction.
"""

from __future__ import annotations

import torch
from torch import nn

#: Image sizes (height = width) and channel counts the ``radford`` networks are built for.
RADFORD_SIZES = (32, 64)


RADFORD_CHANNELS = (1, 3)
#: The channels of the last hidden layer (the first of the discriminator) at width 1.
RADFORD_WIDTH = 64


def _radford_blocks(image_shape: tuple[int, int, int]) -> int:
    """The number of stride-2 layers between a 4×4 map and ``image_shape`` (3 for 32 px, 4 for
    64 px); ``ValueError`` for shapes the ``radford`` networks are not built for."""
    channels, height, width = image_shape
    if height != width or height not in RADFORD_SIZES or channels not in RADFORD_CHANNELS:
        raise ValueError(
            f"the radford networks need square images of {' or '.join(map(str, RADFORD_SIZES))} "
            f"pixels with 1 or 3 channels, not {channels}×{height}×{width}"
        )
    return (height // 4).bit_length() - 1


class RadfordGenerator(nn.Module):
    """The DCGAN generator of Radford et al. 2016, for 32 or 64 pixel images with 1 or 3 channels.

    noise ``(N, noise_dim)`` as a 1×1 map → ConvTranspose 4×4 to ``width·2^(k-1)``@4×4 →
    BatchNorm → ReLU, then ``k - 1`` blocks of ConvTranspose 4×4 stride 2 (halving the channels,
    doubling the size) → BatchNorm → ReLU, then a last ConvTranspose 4×4 stride 2 to
    ``image_shape[0]`` channels → tanh; ``k`` is 3 for 32 px (4→8→16→32) and 4 for 64 px, so
    the last hidden layer has ``width`` channels and 64 px with width 64 is the paper's
    1024-512-256-128 stack halved, as in PyTorch's DCGAN example. Output: images
    ``(N, *image_shape)`` in ``[-1, 1]``.

    Width 64, noise_dim 100: 1,068,931 parameters at (3, 32, 32), 1,066,881 at (1, 32, 32),
    3,576,707 at (3, 64, 64) (BatchNorm statistics, buffers, not counted).
    """

    def __init__(
        self,
        noise_dim: int = 100,
        image_shape: tuple[int, int, int] = (3, 32, 32),
        width: int = RADFORD_WIDTH,
    ) -> None:
        super().__init__()
        blocks = _radford_blocks(image_shape)
        self.noise_dim, self.image_shape = noise_dim, tuple(image_shape)
        channels = width * 2 ** (blocks - 1)
        # No bias before a BatchNorm: its shift would cancel it.
        layers: list[nn.Module] = [
            nn.Unflatten(1, (noise_dim, 1, 1)),
            nn.ConvTranspose2d(noise_dim, channels, kernel_size=4, stride=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        ]
        for _ in range(blocks - 1):
            layers += [
                nn.ConvTranspose2d(
                    channels, channels // 2, kernel_size=4, stride=2, padding=1, bias=False
                ),
                nn.BatchNorm2d(channels // 2),
                nn.ReLU(),
            ]
            channels //= 2
        layers += [
            nn.ConvTranspose2d(channels, image_shape[0], kernel_size=4, stride=2, padding=1),
            nn.Tanh(),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        """``(N, noise_dim)`` → images ``(N, *image_shape)`` in ``[-1, 1]``."""
        return self.net(noise)


class RadfordDiscriminator(nn.Module):
    """The DCGAN discriminator of Radford et al. 2016, for 32 or 64 pixel images with 1 or 3
    channels, without its BatchNorm.

    ``k`` blocks of Conv 4×4 stride 2 (``width`` channels first, then doubling; halving the
    size down to 4×4) → LeakyReLU(0.2), then flatten → FC 1; ``k`` is 3 for 32 px and 4 for
    64 px, mirroring :class:`RadfordGenerator`. Radford et al. also batch-normalise every
    layer but the first; leaving that out makes each image's score independent of the rest of
    the batch, so real and fake images can share one forward pass, DDP needs no synchronised
    statistics, and gradient penalties (R1, WGAN-GP) are well defined.

    Images ``(N, *image_shape)`` (or flat ``(N, C·H·W)``) → scores ``(N, 1)``.

    Width 64: 662,977 parameters at (3, 32, 32), 660,929 at (1, 32, 32), 2,764,737 at
    (3, 64, 64).
    """

    def __init__(
        self, image_shape: tuple[int, int, int] = (3, 32, 32), width: int = RADFORD_WIDTH
    ) -> None:
        super().__init__()
        blocks = _radford_blocks(image_shape)
        self.image_shape = tuple(image_shape)
        layers: list[nn.Module] = []
        channels_in, channels = image_shape[0], width
        for _ in range(blocks):
            layers += [
                nn.Conv2d(channels_in, channels, kernel_size=4, stride=2, padding=1),
                nn.LeakyReLU(0.2),
            ]
            channels_in, channels = channels, channels * 2
        # The conditional wrappers read the score layer as ``net[-1]`` and its input size.
        layers += [nn.Flatten(), nn.Linear(channels_in * 4 * 4, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, *image_shape)`` or ``(N, C·H·W)`` → scores ``(N, 1)``."""
        return self.net(images.reshape(-1, *self.image_shape))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """What the last layer scores: ``(N, 16·width·2^(k-1))``, e.g. ``(N, 4096)`` for
        width 64 at 32 px."""
        return self.net[:-1](images.reshape(-1, *self.image_shape))
