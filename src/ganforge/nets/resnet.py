"""The residual GAN of Miyato et al. 2018 (``resnet``): square images of 32 or 64 pixels with 1
or 3 channels, the image shape chosen at construction.

Sources: the CIFAR-10 ResNet networks of SNGAN (Miyato, Kataoka, Koyama & Yoshida, "Spectral
Normalization for Generative Adversarial Networks", ICLR 2018, after the ResNet of Gulrajani
et al. 2017's WGAN-GP), the small-image networks the BigGAN family (Brock et al. 2019) grew
from; class-conditional BatchNorm in the generator as in Miyato & Koyama 2018 ("cGANs
with Projection Discriminator"), whose projection discriminator ganforge's
``--conditioning projection`` already is. The ``colour`` preset trains them with the hinge
loss, spectral normalisation of D (``--spectral-norm``, applied to every convolution and
linear layer of D by :func:`ganforge.nets.build.apply_spectral_norm`) and DiffAugment (Zhao et
al. 2020).

Two changes from the papers, both for CPUs: the width, SNGAN's 256 channels in G and 128 in D,
is :data:`RESNET_WIDTH` = 32 for both (``--g-width 8 --d-width 4`` give SNGAN's); and each 1×1
shortcut convolution runs on the smaller side of its up- or down-sampling (it commutes with
nearest upsampling and average pooling, so the result is the same at a quarter of the cost).

The width was timed against ``radford`` (width 64) on a shared AMD EPYC (AVX-512), one thread,
batch 64, 3×32×32, hinge loss, spectral norm and DiffAugment, the settings alternating in 3
rounds of 6 s (median): 0.67 s per iteration at width 32 (``radford``: 0.57, or 0.54 with the
dcgan recipe), 1.27 at 48, 2.82 at 64; in short equal-time runs on Twemoji width 32 led 48.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

#: Image sizes (height = width) and channel counts the ``resnet`` networks are built for.
RESNET_SIZES = (32, 64)
RESNET_CHANNELS = (1, 3)
#: The channels of every block, generator and discriminator, at width 1 (see the module's
#: docstring for how it was chosen).
RESNET_WIDTH = 32


def _resnet_blocks(image_shape: tuple[int, int, int]) -> int:
    """The number of 2× resamplings between a 4×4 map and ``image_shape`` (3 for 32 px, 4 for
    64 px); ``ValueError`` for shapes the ``resnet`` networks are not built for."""
    channels, height, width = image_shape
    if height != width or height not in RESNET_SIZES or channels not in RESNET_CHANNELS:
        raise ValueError(
            f"the resnet networks need square images of {' or '.join(map(str, RESNET_SIZES))} "
            f"pixels with 1 or 3 channels, not {channels}×{height}×{width}"
        )
    return int(math.log2(height // 4))


def _conv3x3(channels_in: int, channels_out: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(channels_in, channels_out, kernel_size=3, padding=1, bias=bias)


def _init_weights(model: nn.Module, residual: tuple[nn.Module, ...]) -> None:
    """SNGAN's initialisation: Xavier-uniform weights, gain √2 in the residual branches (they
    feed a ReLU), 1 elsewhere; zero biases."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            gain = math.sqrt(2) if module in residual else 1.0
            nn.init.xavier_uniform_(module.weight, gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class ClassBatchNorm2d(nn.Module):
    """BatchNorm over ``channels``, whose learned scale and shift become one pair per class
    once :meth:`condition_on` is called (conditional BatchNorm: de Vries et al. 2017, Dumoulin
    et al. 2017; the generator of Miyato & Koyama 2018).

    ``(N, channels, H, W)`` (and labels ``(N,)`` in ``[0, num_classes)`` once conditioned) →
    the same shape, normalised over the batch in training and by running statistics in eval.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)
        self.scale: nn.Embedding | None = None
        self.shift: nn.Embedding | None = None

    def condition_on(self, num_classes: int) -> None:
        """Give each of ``num_classes`` classes its own scale (1 at first) and shift (0)."""
        channels = self.norm.num_features
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Embedding(num_classes, channels)
        self.shift = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm(x)
        if self.scale is None:
            return x
        if labels is None:
            raise ValueError("a class-conditional BatchNorm needs labels")
        scale, shift = self.scale(labels).to(x.dtype), self.shift(labels).to(x.dtype)
        return x * scale[:, :, None, None] + shift[:, :, None, None]


class UpBlock(nn.Module):
    """SNGAN's generator block: BN → ReLU → nearest 2× upsampling → conv 3×3 → BN → ReLU →
    conv 3×3, plus a shortcut of a 1×1 conv and the same upsampling.

    ``(N, channels_in, H, W)`` (and labels when conditioned) → ``(N, channels_out, 2H, 2W)``.
    """

    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.norm1 = ClassBatchNorm2d(channels_in)
        # No bias before a BatchNorm: its shift would cancel it.
        self.conv1 = _conv3x3(channels_in, channels_out, bias=False)
        self.norm2 = ClassBatchNorm2d(channels_out)
        self.conv2 = _conv3x3(channels_out, channels_out)
        self.shortcut = nn.Conv2d(channels_in, channels_out, kernel_size=1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(_upsample(F.relu(self.norm1(x, labels))))
        h = self.conv2(F.relu(self.norm2(h, labels)))
        return h + _upsample(self.shortcut(x))


class ResNetGenerator(nn.Module):
    """The ResNet generator of Miyato et al. 2018 (SNGAN, CIFAR-10), for 32 or 64 pixel images
    with 1 or 3 channels.

    noise ``(N, noise_dim)`` → linear → ``width``@4×4, then ``k`` :class:`UpBlock` of ``width``
    channels (4→8→16→32, and →64 at 64 px: ``k`` is 3 or 4), then BN → ReLU → conv 3×3 to
    ``image_shape[0]`` channels → tanh. Output: images ``(N, *image_shape)`` in ``[-1, 1]``.

    Unconditional until :meth:`condition_on` gives every BatchNorm per-class scales and shifts;
    then it is called ``generator(noise, labels)`` with labels ``(N,)``
    (:class:`~ganforge.nets.conditional.ConditionalGenerator` does both).

    Width 32, noise_dim 128: 125,923 parameters at (3, 32, 32), 145,571 at (3, 64, 64)
    (BatchNorm statistics, buffers, not counted).
    """

    def __init__(
        self,
        noise_dim: int = 128,
        image_shape: tuple[int, int, int] = (3, 32, 32),
        width: int = RESNET_WIDTH,
    ) -> None:
        super().__init__()
        blocks = _resnet_blocks(image_shape)
        self.noise_dim, self.image_shape, self.width = noise_dim, tuple(image_shape), width
        self.linear = nn.Linear(noise_dim, width * 4 * 4)
        self.blocks = nn.ModuleList(UpBlock(width, width) for _ in range(blocks))
        self.norm = ClassBatchNorm2d(width)
        self.to_image = _conv3x3(width, image_shape[0])
        _init_weights(self, tuple(c for b in self.blocks for c in (b.conv1, b.conv2)))

    def condition_on(self, num_classes: int) -> None:
        """Make every BatchNorm class-conditional over ``num_classes`` labels, in place."""
        for module in self.modules():
            if isinstance(module, ClassBatchNorm2d):
                module.condition_on(num_classes)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, noise_dim)`` (and labels ``(N,)`` once conditioned) → images
        ``(N, *image_shape)`` in ``[-1, 1]``."""
        x = self.linear(noise).view(-1, self.width, 4, 4)
        for block in self.blocks:
            x = block(x, labels)
        return torch.tanh(self.to_image(F.relu(self.norm(x, labels))))


class DownBlock(nn.Module):
    """SNGAN's discriminator block: ReLU → conv 3×3 → ReLU → conv 3×3 (→ 2×2 average pooling
    when ``down``), plus a shortcut: a 1×1 conv (and the same pooling) when the shape changes,
    the input itself otherwise. ``first``: SNGAN's optimised first block, which reads the
    images without a ReLU before its first conv and pools before its shortcut conv.

    ``(N, channels_in, H, W)`` → ``(N, channels_out, H/2, W/2)`` when ``down``, else
    ``(N, channels_out, H, W)``.
    """

    def __init__(
        self, channels_in: int, channels_out: int, down: bool = True, first: bool = False
    ) -> None:
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = _conv3x3(channels_in, channels_out)
        self.conv2 = _conv3x3(channels_out, channels_out)
        learned = down or channels_in != channels_out
        self.shortcut = nn.Conv2d(channels_in, channels_out, kernel_size=1) if learned else None

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.down else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x if self.first else F.relu(x))
        h = self._pool(self.conv2(F.relu(h)))
        if self.shortcut is None:
            return h + x
        return h + self.shortcut(self._pool(x))


class SumPool(nn.Module):
    """Global sum pooling: ``(N, C, H, W)`` → ``(N, C)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=(2, 3))


class ResNetDiscriminator(nn.Module):
    """The ResNet discriminator of Miyato et al. 2018 (SNGAN, CIFAR-10), for 32 or 64 pixel
    images with 1 or 3 channels.

    The optimised first block and ``k - 2`` more :class:`DownBlock` halve the size down to
    8×8 (32→16→8, or 64→32→16→8), two blocks keep it, then ReLU → global sum pooling → linear
    to one score; every block has ``width`` channels. Spectral normalisation is not built in:
    ``--spectral-norm`` applies it to every convolution and linear layer.

    Images ``(N, *image_shape)`` (or flat ``(N, C·H·W)``) → scores ``(N, 1)``; ``net`` ends in
    the linear score layer and :meth:`features` is what it reads, so projection, AC-GAN and
    the VAE use it as they use ``radford``'s.

    Width 32: 66,849 parameters at (3, 32, 32), 86,401 at (3, 64, 64).
    """

    def __init__(
        self, image_shape: tuple[int, int, int] = (3, 32, 32), width: int = RESNET_WIDTH
    ) -> None:
        super().__init__()
        blocks = _resnet_blocks(image_shape)
        self.image_shape = tuple(image_shape)
        layers: list[nn.Module] = [DownBlock(image_shape[0], width, first=True)]
        layers += [DownBlock(width, width) for _ in range(blocks - 2)]
        layers += [DownBlock(width, width, down=False) for _ in range(2)]
        residual = tuple(c for b in layers for c in (b.conv1, b.conv2))
        # The conditional wrappers and the VAE read the score layer as ``net[-1]``.
        layers += [nn.ReLU(), SumPool(), nn.Linear(width, 1)]
        self.net = nn.Sequential(*layers)
        _init_weights(self, residual)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, *image_shape)`` or ``(N, C·H·W)`` → scores ``(N, 1)``."""
        return self.net(images.reshape(-1, *self.image_shape))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """What the last layer scores: the summed activations ``(N, width)``."""
        return self.net[:-1](images.reshape(-1, *self.image_shape))
