"""The assignment's generator and discriminator networks, and the noise they start from.

All networks take and return images in the layout PyTorch uses for convolutions:

* generators map noise of shape ``(N, noise_dim)`` with values in ``[-1, 1]`` to images of shape
  ``(N, 1, 28, 28)`` with values in ``[-1, 1]`` (a final ``tanh``);
* discriminators map images of shape ``(N, 1, 28, 28)`` (or flat ``(N, 784)``) to one unbounded
  score per image, shape ``(N, 1)``: a logit for the BCE loss, a raw score for the LSGAN loss.

The layer lists follow the assignment's architecture text; the README lists where they differ
from the blog code that accompanies it.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGE_SHAPE = (1, 28, 28)
IMAGE_SIZE = 28 * 28


def sample_noise(
    batch_size: int,
    dim: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Uniform noise in ``[-1, 1)``, shape ``(batch_size, dim)``."""
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


def apply_spectral_norm(model: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every linear and convolutional layer of
    ``model``, in place: each weight is divided by its largest singular value, estimated by one
    power iteration per training forward. Returns ``model``."""
    for module in list(model.modules()):
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.utils.parametrizations.spectral_norm(module)
    return model


LABEL_EMBEDDING = 32


class ConditionalGenerator(nn.Module):
    """``G(z, y)``: a learned embedding of the class label ``y`` joins the noise at the input of
    an unconditional generator (Mirza & Osindero 2014).

    ``noise (N, noise_dim)`` in ``[-1, 1]`` and ``labels (N,)`` in ``[0, num_classes)`` →
    images ``(N, 1, 28, 28)`` in ``[-1, 1]``.
    """

    def __init__(self, generator_cls: type[nn.Module], noise_dim: int, num_classes: int) -> None:
        super().__init__()
        self.noise_dim, self.num_classes = noise_dim, num_classes
        self.embed = nn.Embedding(num_classes, LABEL_EMBEDDING)
        self.body = generator_cls(noise_dim + LABEL_EMBEDDING)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([noise, self.embed(labels).to(noise.dtype)], dim=1))


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
}

#: Weight-init name → function applied with ``module.apply``; ``default`` keeps PyTorch's.
INITS = {"default": None, "xavier": xavier_init_}


def build_generator(
    architecture: str, noise_dim: int, conditioning: str = "none", num_classes: int = 0
) -> nn.Module:
    """The generator of an architecture in :data:`ARCHITECTURES`, conditional on a class label
    unless ``conditioning`` is ``none``."""
    generator_cls = ARCHITECTURES[architecture][0]
    if conditioning == "none":
        return generator_cls(noise_dim)
    return ConditionalGenerator(generator_cls, noise_dim, num_classes)


def build_models(
    architecture: str,
    noise_dim: int,
    init: str = "default",
    conditioning: str = "none",
    num_classes: int = 0,
) -> tuple[nn.Module, nn.Module]:
    """Return ``(generator, discriminator)`` for an architecture name in :data:`ARCHITECTURES`
    and a conditioning in :data:`CONDITIONINGS` (over ``num_classes`` labels)."""
    generator = build_generator(architecture, noise_dim, conditioning, num_classes)
    discriminator = ARCHITECTURES[architecture][1]()
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
