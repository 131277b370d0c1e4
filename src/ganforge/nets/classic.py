"""The assignment's networks, ``mlp`` and ``dcgan``, for 28×28 grayscale images only.

Generators map noise ``(N, noise_dim)`` to images ``(N, 1, 28, 28)`` in ``[-1, 1]`` (a final
``tanh``); discriminators map images (or flat ``(N, 784)``) to one unbounded score per image,
``(N, 1)``. Their layer lists follow the assignment's architecture text; the README lists where
they differ from the blog code that accompanies it.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGE_SHAPE = (1, 28, 28)


IMAGE_SIZE = 28 * 28


def scaled(size: int, width: float) -> int:
    """A hidden size of the assignment's networks times ``width`` (at least 1): ``width`` 1
    gives the assignment's networks, 0.5 halves every hidden layer."""
    return max(1, round(size * width))


def xavier_init_(module: nn.Module) -> None:
    """Xavier-uniform init of Linear and ConvTranspose2d weights, as the assignment's
    ``initialize_weights``; biases and every other layer keep PyTorch's defaults.

    Use with ``model.apply(xavier_init_)``.
    """
    if isinstance(module, (nn.Linear, nn.ConvTranspose2d)):
        nn.init.xavier_uniform_(module.weight)


class MLPDiscriminator(nn.Module):
    """784 → 256 → 256 → 1 with LeakyReLU(0.01) between (267,009 parameters); ``width``
    scales the hidden sizes."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        hidden = scaled(256, width)
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(IMAGE_SIZE, hidden),
            nn.LeakyReLU(0.01),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.01),
            nn.Linear(hidden, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 1, 28, 28)`` or ``(N, 784)`` → scores ``(N, 1)``."""
        return self.net(images)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """What the last layer scores: ``(N, 256·width)``."""
        return self.net[:-1](images)


class MLPGenerator(nn.Module):
    """noise_dim → 1024 → 1024 → 784 with ReLU, ReLU, tanh; ``width`` scales the hidden
    sizes."""

    def __init__(self, noise_dim: int = 96, width: float = 1.0) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        hidden = scaled(1024, width)
        self.net = nn.Sequential(
            nn.Linear(noise_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, IMAGE_SIZE),
            nn.Tanh(),
            nn.Unflatten(1, IMAGE_SHAPE),
        )

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        """``(N, noise_dim)`` → images ``(N, 1, 28, 28)`` in ``[-1, 1]``."""
        return self.net(noise)


class DCGANDiscriminator(nn.Module):
    """The assignment's convolutional discriminator (after the TensorFlow MNIST tutorial).

    conv 32@5×5 → LeakyReLU → maxpool 2 → conv 64@5×5 → LeakyReLU → maxpool 2 → flatten →
    FC 1024 → LeakyReLU → FC 1; 1,102,721 parameters. No BatchNorm, so real and fake images
    can share one forward pass. ``width`` scales the channels and the FC layer.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c1, c2, hidden = scaled(32, width), scaled(64, width), scaled(4 * 4 * 64, width)
        self.net = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=5, stride=1),
            nn.LeakyReLU(0.01),
            nn.MaxPool2d(2, stride=2),
            nn.Conv2d(c1, c2, kernel_size=5, stride=1),
            nn.LeakyReLU(0.01),
            nn.MaxPool2d(2, stride=2),
            nn.Flatten(),
            nn.Linear(4 * 4 * c2, hidden),
            nn.LeakyReLU(0.01),
            nn.Linear(hidden, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 1, 28, 28)`` or ``(N, 784)`` → scores ``(N, 1)``."""
        return self.net(images.reshape(-1, *IMAGE_SHAPE))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """What the last layer scores: ``(N, 1024·width)``."""
        return self.net[:-1](images.reshape(-1, *IMAGE_SHAPE))


class DCGANGenerator(nn.Module):
    """The InfoGAN MNIST generator (Chen et al. 2016, appendix C.1).

    FC 1024 → ReLU → BatchNorm → FC 7·7·128 → ReLU → BatchNorm → reshape 128×7×7 →
    ConvTranspose 64@4×4 stride 2 → ReLU → BatchNorm → ConvTranspose 1@4×4 stride 2 → tanh.
    ``width`` scales the FC layer and the channels (1024, 128, 64).
    """

    def __init__(self, noise_dim: int = 96, width: float = 1.0) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        hidden, c1, c2 = scaled(1024, width), scaled(128, width), scaled(64, width)
        self.net = nn.Sequential(
            nn.Linear(noise_dim, hidden),
            nn.ReLU(),
            nn.BatchNorm1d(hidden),
            nn.Linear(hidden, 7 * 7 * c1),
            nn.ReLU(),
            nn.BatchNorm1d(7 * 7 * c1),
            nn.Unflatten(1, (c1, 7, 7)),
            nn.ConvTranspose2d(c1, c2, kernel_size=4, stride=2, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(c2),
            nn.ConvTranspose2d(c2, 1, kernel_size=4, stride=2, padding=1),
            nn.Tanh(),
        )

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        """``(N, noise_dim)`` → images ``(N, 1, 28, 28)`` in ``[-1, 1]``."""
        return self.net(noise)
