"""Networks by name: the architectures a config names, built for an image shape, with their
initialisation, conditioning and spectral normalisation.

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

import importlib
import os
import re
import sys
from collections.abc import Callable

from torch import nn

from ganforge.nets.classic import (
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    scaled,
    xavier_init_,
)
from ganforge.nets.conditional import (
    AuxiliaryClassifierDiscriminator,
    ConditionalGenerator,
    ProjectionDiscriminator,
)
from ganforge.nets.radford import (
    RADFORD_WIDTH,
    RadfordDiscriminator,
    RadfordGenerator,
    _radford_blocks,
)


def apply_spectral_norm(model: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every linear and convolutional layer of
    ``model``, in place: each weight is divided by its largest singular value, estimated by one
    power iteration per training forward. Returns ``model``."""
    for module in list(model.modules()):
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.utils.parametrizations.spectral_norm(module)
    return model


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

#: A user's networks: ``package.module:callable`` (see :func:`import_user_architecture`).
USER_ARCHITECTURE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class UntrustedCode(ValueError):
    """Building these networks would import a user's module, which the caller did not allow."""


def is_user_architecture(architecture: str) -> bool:
    """Whether ``architecture`` names a user's networks (``module:callable``)."""
    return bool(USER_ARCHITECTURE.match(architecture))


def import_user_architecture(architecture: str) -> Callable[..., tuple[nn.Module, nn.Module]]:
    """The callable ``module:callable`` names, imported (which runs that module's code).

    The contract: ``build(noise_dim=int, image_shape=(C, H, W))`` returns
    ``(generator, discriminator)``, two ``nn.Module``: the generator maps noise
    ``(N, noise_dim)`` to images ``(N, C, H, W)`` in ``[-1, 1]``, the discriminator maps such
    images to one unbounded score per image, ``(N, 1)`` or ``(N,)``. The module is looked up
    on the Python path and in the current folder, as ``python -m`` would find it. ``ValueError``
    when it cannot be imported."""
    module_name, _, attribute = architecture.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        target = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(
            f"architecture {architecture}: cannot import {module_name} ({exc})"
        ) from None
    for part in attribute.split("."):
        target = getattr(target, part, None)
    if not callable(target):
        raise ValueError(f"architecture {architecture}: {module_name} has no callable {attribute}")
    return target


def _user_networks(
    architecture: str, noise_dim: int, image_shape: tuple[int, int, int], trust_code: bool
) -> tuple[nn.Module, nn.Module]:
    if not trust_code:
        raise UntrustedCode(architecture)
    networks = import_user_architecture(architecture)(
        noise_dim=noise_dim, image_shape=tuple(image_shape)
    )
    if not (
        isinstance(networks, tuple)
        and len(networks) == 2
        and all(isinstance(n, nn.Module) for n in networks)
    ):
        raise ValueError(
            f"architecture {architecture} must return (generator, discriminator), two "
            f"torch.nn.Module, not {type(networks).__name__}"
        )
    return networks


def check_image_shape(architecture: str, image_shape: tuple[int, int, int]) -> None:
    """``ValueError`` unless the architecture's networks draw and read ``image_shape`` (a
    user's networks take whatever shape they are built for)."""
    if architecture not in NATIVE_IMAGE_SHAPE:
        return
    native = NATIVE_IMAGE_SHAPE[architecture]
    if native is None:
        _radford_blocks(tuple(image_shape))
    elif tuple(image_shape) != native:
        raise ValueError(
            f"the {architecture} networks work on {'×'.join(map(str, native))} images, not "
            f"{'×'.join(map(str, image_shape))}: use the radford architecture for 32 or 64 "
            "pixels and for colour"
        )


def _network(
    architecture: str, which: int, image_shape: tuple[int, int, int], width: float, *args
) -> nn.Module:
    check_image_shape(architecture, image_shape)
    cls = ARCHITECTURES[architecture][which]
    if NATIVE_IMAGE_SHAPE[architecture] is None:  # radford counts its width in channels
        return cls(*args, image_shape=tuple(image_shape), width=scaled(RADFORD_WIDTH, width))
    return cls(*args, width=width)


def build_generator(
    architecture: str,
    noise_dim: int,
    conditioning: str = "none",
    num_classes: int = 0,
    image_shape: tuple[int, int, int] = (1, 28, 28),
    trust_code: bool = False,
    width: float = 1.0,
) -> nn.Module:
    """The generator of an architecture in :data:`ARCHITECTURES` (or a user's, ``module:
    callable``, imported only with ``trust_code``: :class:`UntrustedCode` otherwise) drawing
    ``image_shape`` ``(C, H, W)`` images, conditional on a class label unless ``conditioning``
    is ``none``; ``width`` scales its hidden sizes (1: the architecture's own)."""
    if is_user_architecture(architecture):
        return _user_networks(architecture, noise_dim, image_shape, trust_code)[0]
    generator = _network(architecture, 0, image_shape, width, noise_dim)
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
    trust_code: bool = False,
    g_width: float = 1.0,
    d_width: float = 1.0,
) -> tuple[nn.Module, nn.Module]:
    """Return ``(generator, discriminator)`` for an architecture name in :data:`ARCHITECTURES`
    (or a user's, as :func:`build_generator` says), a conditioning in :data:`CONDITIONINGS`
    (over ``num_classes`` labels) and images of shape ``image_shape`` ``(C, H, W)`` (see
    :data:`NATIVE_IMAGE_SHAPE`); ``g_width`` and ``d_width`` scale the hidden sizes of each."""
    if is_user_architecture(architecture):
        generator, discriminator = _user_networks(architecture, noise_dim, image_shape, trust_code)
    else:
        generator = build_generator(
            architecture, noise_dim, conditioning, num_classes, image_shape, width=g_width
        )
        discriminator = _network(architecture, 1, image_shape, d_width)
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
