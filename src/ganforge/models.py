"""The generator and discriminator networks (the assignment's and DCGAN's), and their noise.

All networks take and return images in the layout PyTorch uses for convolutions, ``(N, C, H, W)``:

* generators map noise of shape ``(N, noise_dim)`` to images with values in ``[-1, 1]`` (a
  final ``tanh``);
* discriminators map images to one unbounded score per image, shape ``(N, 1)``: a logit for the
  BCE loss, a raw score for the LSGAN loss.

Two families:

* ``mlp`` and ``dcgan``, the assignment's networks, work on 28×28 grayscale images only,
  ``(N, 1, 28, 28)`` (their discriminators also accept flat ``(N, 784)``). Their layer lists
  follow the assignment's architecture text; the README lists where they differ from the blog
  code that accompanies it.
* ``radford``, the DCGAN of Radford et al. 2016, works on square images of 32 or 64 pixels with
  1 or 3 channels, ``image_shape`` chosen at construction (:data:`NATIVE_IMAGE_SHAPE` says which
  shapes each architecture takes).
"""

from __future__ import annotations

import torch
from torch import nn

IMAGE_SHAPE = (1, 28, 28)
IMAGE_SIZE = 28 * 28


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


def xavier_init_(module: nn.Module) -> None:
    """Xavier-uniform init of Linear and ConvTranspose2d weights, as the assignment's
    ``initialize_weights``; biases and every other layer keep PyTorch's defaults.

    Use with ``model.apply(xavier_init_)``.
    """
    if isinstance(module, (nn.Linear, nn.ConvTranspose2d)):
        nn.init.xavier_uniform_(module.weight)


class MLPDiscriminator(nn.Module):
    """784 → 256 → 256 → 1 with LeakyReLU(0.01) between (267,009 parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(IMAGE_SIZE, 256),
            nn.LeakyReLU(0.01),
            nn.Linear(256, 256),
            nn.LeakyReLU(0.01),
            nn.Linear(256, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 1, 28, 28)`` or ``(N, 784)`` → scores ``(N, 1)``."""
        return self.net(images)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """What the last layer scores: ``(N, 256)``."""
        return self.net[:-1](images)


class MLPGenerator(nn.Module):
    """noise_dim → 1024 → 1024 → 784 with ReLU, ReLU, tanh."""

    def __init__(self, noise_dim: int = 96) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        self.net = nn.Sequential(
            nn.Linear(noise_dim, 1024),
            nn.ReLU(),
            nn.Linear(1024, 1024),
            nn.ReLU(),
            nn.Linear(1024, IMAGE_SIZE),
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
    can share one forward pass.
    """

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=5, stride=1),
            nn.LeakyReLU(0.01),
            nn.MaxPool2d(2, stride=2),
            nn.Conv2d(32, 64, kernel_size=5, stride=1),
            nn.LeakyReLU(0.01),
            nn.MaxPool2d(2, stride=2),
            nn.Flatten(),
            nn.Linear(4 * 4 * 64, 4 * 4 * 64),
            nn.LeakyReLU(0.01),
            nn.Linear(4 * 4 * 64, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 1, 28, 28)`` or ``(N, 784)`` → scores ``(N, 1)``."""
        return self.net(images.reshape(-1, *IMAGE_SHAPE))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """What the last layer scores: ``(N, 1024)``."""
        return self.net[:-1](images.reshape(-1, *IMAGE_SHAPE))


class DCGANGenerator(nn.Module):
    """The InfoGAN MNIST generator (Chen et al. 2016, appendix C.1).

    FC 1024 → ReLU → BatchNorm → FC 7·7·128 → ReLU → BatchNorm → reshape 128×7×7 →
    ConvTranspose 64@4×4 stride 2 → ReLU → BatchNorm → ConvTranspose 1@4×4 stride 2 → tanh.
    """

    def __init__(self, noise_dim: int = 96) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        self.net = nn.Sequential(
            nn.Linear(noise_dim, 1024),
            nn.ReLU(),
            nn.BatchNorm1d(1024),
            nn.Linear(1024, 7 * 7 * 128),
            nn.ReLU(),
            nn.BatchNorm1d(7 * 7 * 128),
            nn.Unflatten(1, (128, 7, 7)),
            nn.ConvTranspose2d(128, 64, kernel_size=4, stride=2, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(64),
            nn.ConvTranspose2d(64, 1, kernel_size=4, stride=2, padding=1),
            nn.Tanh(),
        )

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        """``(N, noise_dim)`` → images ``(N, 1, 28, 28)`` in ``[-1, 1]``."""
        return self.net(noise)


#: Image sizes (height = width) and channel counts the ``radford`` networks are built for.
RADFORD_SIZES = (32, 64)
RADFORD_CHANNELS = (1, 3)


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
        width: int = 64,
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

    def __init__(self, image_shape: tuple[int, int, int] = (3, 32, 32), width: int = 64) -> None:
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


def apply_spectral_norm(model: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every linear and convolutional layer of
    ``model``, in place: each weight is divided by its largest singular value, estimated by one
    power iteration per training forward. Returns ``model``."""
    for module in list(model.modules()):
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.utils.parametrizations.spectral_norm(module)
    return model


class ConditionalGenerator(nn.Module):
    """``G(z, y)``: an unconditional generator fed the noise times a learned embedding of the
    class label ``y``, element by element (the conditioning of the PyTorch-GAN AC-GAN).

    The product, unlike the concatenation ``[z, e(y)]`` of Mirza & Osindero 2014, leaves G no
    input that carries the label without the noise: with the concatenation, ganforge's DCGAN
    generators learned to ignore ``z`` and drew one image per class on MNIST (pixel std across
    noise 0.005, recall 0).

    ``noise (N, noise_dim)`` and ``labels (N,)`` in ``[0, num_classes)`` → images
    ``(N, C, H, W)`` in ``[-1, 1]``.
    """

    def __init__(self, body: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.noise_dim, self.num_classes = body.noise_dim, num_classes
        self.embed = nn.Embedding(num_classes, body.noise_dim)
        self.body = body

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.body(noise * self.embed(labels).to(noise.dtype))


class ProjectionDiscriminator(nn.Module):
    """``D(x, y) = ψ(φ(x)) + ⟨e(y), φ(x)⟩`` (Miyato & Koyama 2018): an unconditional
    discriminator's features φ and last layer ψ, plus the inner product of the features with a
    learned embedding of the label. Images and labels ``(N,)`` → scores ``(N, 1)``."""

    def __init__(self, body: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.body, self.num_classes = body, num_classes
        self.embed = nn.Embedding(num_classes, body.net[-1].in_features)
        nn.init.xavier_uniform_(self.embed.weight)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        features = self.body.features(images)
        projection = (self.embed(labels).to(features.dtype) * features).sum(dim=1, keepdim=True)
        return self.body.net[-1](features) + projection


class AuxiliaryClassifierDiscriminator(nn.Module):
    """AC-GAN's discriminator (Odena et al. 2017): from an unconditional discriminator's
    features, its real/fake score ``(N, 1)`` and class logits ``(N, num_classes)``; the label
    is not an input (it is what the second head predicts)."""

    def __init__(self, body: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.body, self.num_classes = body, num_classes
        self.classifier = nn.Linear(body.net[-1].in_features, num_classes)

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body.features(images)
        return self.body.net[-1](features), self.classifier(features)


#: Conditioning name → the discriminator wrapper that adds the labels (``none``: unconditional).
CONDITIONINGS = {
    "none": None,
    "projection": ProjectionDiscriminator,
    "acgan": AuxiliaryClassifierDiscriminator,
}

#: Architecture name → (generator class, discriminator class). Presets name an architecture.
ARCHITECTURES: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "mlp": (MLPGenerator, MLPDiscriminator),
    "dcgan": (DCGANGenerator, DCGANDiscriminator),
    "radford": (RadfordGenerator, RadfordDiscriminator),
}

#: Architecture name → the one image shape ``(C, H, W)`` its networks take, or ``None`` when
#: the networks are built for a shape chosen at construction (``radford``: 32 or 64 pixels
#: square, 1 or 3 channels, see :data:`RADFORD_SIZES` and :data:`RADFORD_CHANNELS`).
NATIVE_IMAGE_SHAPE: dict[str, tuple[int, int, int] | None] = {
    "mlp": (1, 28, 28),
    "dcgan": (1, 28, 28),
    "radford": None,
}

#: Weight-init name → function applied with ``module.apply``; ``default`` keeps PyTorch's.
INITS = {"default": None, "xavier": xavier_init_}


def check_image_shape(architecture: str, image_shape: tuple[int, int, int]) -> None:
    """``ValueError`` unless the architecture's networks draw and read ``image_shape``."""
    native = NATIVE_IMAGE_SHAPE[architecture]
    if native is None:
        _radford_blocks(tuple(image_shape))
    elif tuple(image_shape) != native:
        raise ValueError(
            f"the {architecture} networks work on {'×'.join(map(str, native))} images, not "
            f"{'×'.join(map(str, image_shape))}: use the radford architecture for 32 or 64 "
            "pixels and for colour"
        )


def _network(architecture: str, which: int, image_shape: tuple[int, int, int], *args) -> nn.Module:
    check_image_shape(architecture, image_shape)
    cls = ARCHITECTURES[architecture][which]
    if NATIVE_IMAGE_SHAPE[architecture] is None:
        return cls(*args, image_shape=tuple(image_shape))
    return cls(*args)


def build_generator(
    architecture: str,
    noise_dim: int,
    conditioning: str = "none",
    num_classes: int = 0,
    image_shape: tuple[int, int, int] = (1, 28, 28),
) -> nn.Module:
    """The generator of an architecture in :data:`ARCHITECTURES` drawing ``image_shape``
    ``(C, H, W)`` images, conditional on a class label unless ``conditioning`` is ``none``."""
    generator = _network(architecture, 0, image_shape, noise_dim)
    if conditioning == "none":
        return generator
    return ConditionalGenerator(generator, num_classes)


def build_models(
    architecture: str,
    noise_dim: int,
    init: str = "default",
    conditioning: str = "none",
    num_classes: int = 0,
    image_shape: tuple[int, int, int] = (1, 28, 28),
) -> tuple[nn.Module, nn.Module]:
    """Return ``(generator, discriminator)`` for an architecture name in :data:`ARCHITECTURES`,
    a conditioning in :data:`CONDITIONINGS` (over ``num_classes`` labels) and images of shape
    ``image_shape`` ``(C, H, W)`` (see :data:`NATIVE_IMAGE_SHAPE`)."""
    generator = build_generator(architecture, noise_dim, conditioning, num_classes, image_shape)
    discriminator = _network(architecture, 1, image_shape)
    if conditioning != "none":
        discriminator = CONDITIONINGS[conditioning](discriminator, num_classes)
    init_fn = INITS[init]
    if init_fn is not None:
        generator.apply(init_fn)
        discriminator.apply(init_fn)
    return generator, discriminator


def count_parameters(model: nn.Module) -> int:
    """Number of scalars in a model's parameters (buffers such as BatchNorm statistics excluded)."""
    return sum(p.numel() for p in model.parameters())
