"""The built-in architectures in one table: :data:`ARCHITECTURES`, name → :class:`ArchitectureSpec`
(its two builders and the image shapes it takes).

A new architecture is one module with its networks and one entry here. Its discriminator
should keep :class:`ganforge.nets.contract.FeatureDiscriminator` (a ``net[-1]`` linear head and
``features()``) so that conditioning and the VAE can use it; a test checks every entry.

Two families today:

* ``mlp`` and ``dcgan``, the assignment's networks, work on 28×28 grayscale images only,
  ``(N, 1, 28, 28)`` (their discriminators also accept flat ``(N, 784)``);
* ``radford``, the DCGAN of Radford et al. 2016, and ``resnet``, the residual GAN of Miyato et
  al. 2018, work on square images of 32 or 64 pixels with 1 or 3 channels, the shape chosen at
  construction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ganforge.nets.classic import (
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    scaled,
)
from ganforge.nets.radford import (
    RADFORD_CHANNELS,
    RADFORD_SIZES,
    RADFORD_WIDTH,
    RadfordDiscriminator,
    RadfordGenerator,
)
from ganforge.nets.resnet import (
    RESNET_CHANNELS,
    RESNET_SIZES,
    RESNET_WIDTH,
    ResNetDiscriminator,
    ResNetGenerator,
)

ImageShape = tuple[int, int, int]

#: ``build_generator(noise_dim, image_shape, width)`` → a generator drawing ``image_shape``
#: images; ``width`` scales its hidden sizes (1: the architecture's own).
GeneratorBuilder = Callable[[int, ImageShape, float], nn.Module]
#: ``build_discriminator(image_shape, width)`` → a discriminator reading ``image_shape`` images.
DiscriminatorBuilder = Callable[[ImageShape, float], nn.Module]


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


@dataclass(frozen=True)
class ArchitectureSpec:
    """What ganforge knows of one built-in architecture.

    * ``name``: as ``--architecture`` spells it;
    * ``generator``, ``discriminator``: the builders (:data:`GeneratorBuilder`,
      :data:`DiscriminatorBuilder`);
    * ``shapes``: the image shapes it takes, in words, as messages quote them;
    * ``native_shape``: the one ``(C, H, W)`` it takes, or ``None`` when it is built for a
      shape chosen at construction, which ``accepts`` then judges;
    * ``accepts``: for a flexible architecture, whether it takes a ``(C, H, W)``;
    * ``default_size``: for a flexible architecture, the height and width a run uses unless
      told otherwise (the channels are then the dataset's).
    """

    name: str
    generator: GeneratorBuilder
    discriminator: DiscriminatorBuilder
    shapes: str
    native_shape: ImageShape | None = None
    accepts: Callable[[ImageShape], bool] | None = None
    default_size: int | None = None

    def __post_init__(self) -> None:
        fixed = self.native_shape is not None
        if fixed == (self.accepts is not None) or fixed == (self.default_size is not None):
            raise ValueError(
                f"architecture {self.name}: give either native_shape, or accepts and default_size"
            )

    def takes(self, image_shape: ImageShape) -> bool:
        """Whether the networks draw and read ``image_shape`` ``(C, H, W)``."""
        if self.native_shape is not None:
            return tuple(image_shape) == self.native_shape
        return self.accepts(tuple(image_shape))  # type: ignore[misc]

    def check_shape(self, image_shape: ImageShape) -> None:
        """``ValueError`` naming the shapes it takes (and which architecture takes
        ``image_shape`` instead) unless :meth:`takes`."""
        if self.takes(image_shape):
            return
        shape = _shape_text(image_shape)
        if self.native_shape is None:
            raise ValueError(f"the {self.name} networks need {self.shapes}, not {shape}")
        others = [s for s in ARCHITECTURES.values() if s.native_shape is None]
        takers = [s.name for s in others if s.takes(image_shape)]
        by_shapes: dict[str, list[str]] = {}
        for spec in others:
            by_shapes.setdefault(spec.shapes, []).append(spec.name)
        hint = (
            f"the {' or '.join(takers)} networks take {shape}"
            if takers
            else "; ".join(
                f"the {' or '.join(names)} networks take {shapes}"
                for shapes, names in by_shapes.items()
            )
        )
        raise ValueError(
            f"the {self.name} networks work on {self.shapes}, not {shape}"
            + (f": {hint}" if hint else "")
        )

    def image_shape(self, channels: int, size: int, data_channels: Callable[[], int]) -> ImageShape:
        """The square ``(C, H, W)`` a run draws: ``channels`` and ``size`` where given (not 0);
        else the native shape's, or for a flexible architecture the dataset's channels
        (``data_channels()``, called only when needed) at :attr:`default_size`. Checked
        (:meth:`check_shape`)."""
        if self.native_shape is not None:
            channels, size = channels or self.native_shape[0], size or self.native_shape[1]
        else:
            channels, size = channels or data_channels(), size or self.default_size
        shape = (channels, size, size)
        self.check_shape(shape)
        return shape


def _mlp_generator(noise_dim: int, image_shape: ImageShape, width: float) -> nn.Module:
    return MLPGenerator(noise_dim, width=width)


def _mlp_discriminator(image_shape: ImageShape, width: float) -> nn.Module:
    return MLPDiscriminator(width=width)


def _dcgan_generator(noise_dim: int, image_shape: ImageShape, width: float) -> nn.Module:
    return DCGANGenerator(noise_dim, width=width)


def _dcgan_discriminator(image_shape: ImageShape, width: float) -> nn.Module:
    return DCGANDiscriminator(width=width)


# radford counts its width in channels of the last hidden layer.
def _radford_generator(noise_dim: int, image_shape: ImageShape, width: float) -> nn.Module:
    return RadfordGenerator(
        noise_dim, image_shape=tuple(image_shape), width=scaled(RADFORD_WIDTH, width)
    )


def _radford_discriminator(image_shape: ImageShape, width: float) -> nn.Module:
    return RadfordDiscriminator(image_shape=tuple(image_shape), width=scaled(RADFORD_WIDTH, width))


def _square_images(sizes: tuple[int, ...], channels: tuple[int, ...]) -> dict[str, Any]:
    """``accepts`` and ``shapes`` of a flexible architecture built for square images of one of
    ``sizes`` pixels with one of ``channels`` channels, to unpack into its spec."""

    def accepts(image_shape: ImageShape) -> bool:
        count, height, width = image_shape
        return height == width and height in sizes and count in channels

    shapes = (
        f"square images of {' or '.join(map(str, sizes))} pixels with "
        f"{' or '.join(map(str, channels))} channels"
    )
    return {"accepts": accepts, "shapes": shapes}


# resnet counts its width in channels of every block.
def _resnet_generator(noise_dim: int, image_shape: ImageShape, width: float) -> nn.Module:
    return ResNetGenerator(
        noise_dim, image_shape=tuple(image_shape), width=scaled(RESNET_WIDTH, width)
    )


def _resnet_discriminator(image_shape: ImageShape, width: float) -> nn.Module:
    return ResNetDiscriminator(image_shape=tuple(image_shape), width=scaled(RESNET_WIDTH, width))


_ASSIGNMENT_SHAPE = (1, 28, 28)

#: Architecture name → spec. Presets name an architecture.
ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "mlp": ArchitectureSpec(
        name="mlp",
        generator=_mlp_generator,
        discriminator=_mlp_discriminator,
        shapes=f"{_shape_text(_ASSIGNMENT_SHAPE)} images",
        native_shape=_ASSIGNMENT_SHAPE,
    ),
    "dcgan": ArchitectureSpec(
        name="dcgan",
        generator=_dcgan_generator,
        discriminator=_dcgan_discriminator,
        shapes=f"{_shape_text(_ASSIGNMENT_SHAPE)} images",
        native_shape=_ASSIGNMENT_SHAPE,
    ),
    "radford": ArchitectureSpec(
        name="radford",
        generator=_radford_generator,
        discriminator=_radford_discriminator,
        default_size=32,
        **_square_images(RADFORD_SIZES, RADFORD_CHANNELS),
    ),
    "resnet": ArchitectureSpec(
        name="resnet",
        generator=_resnet_generator,
        discriminator=_resnet_discriminator,
        default_size=32,
        **_square_images(RESNET_SIZES, RESNET_CHANNELS),
    ),
}


def resolve_image_shape(
    architecture: str,
    channels: int = 0,
    size: int = 0,
    data_shape: Callable[[], ImageShape] = lambda: (0, 0, 0),
) -> ImageShape:
    """The ``(C, H, W)`` a run's networks draw and read: see
    :meth:`ArchitectureSpec.image_shape` for a built-in architecture; a user's networks take
    the dataset's own shape (``data_shape()``, its ``(C, H, W)``), ``channels`` and ``size``
    overriding. ``data_shape`` is called only when needed. ``ValueError`` when a built-in
    architecture does not take the shape."""
    spec = ARCHITECTURES.get(architecture)
    if spec is None:  # a user's networks take whatever shape they are built for
        data_channels, data_size = data_shape()[:2]
        size = size or data_size
        return channels or data_channels, size, size
    return spec.image_shape(channels, size, lambda: data_shape()[0])
