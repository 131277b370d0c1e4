"""Networks by name: the architectures of :data:`~ganforge.nets.architectures.ARCHITECTURES` or a
user's ``module:callable``, built for an image shape, with their initialisation, conditioning and
spectral normalisation.

All networks take and return images in the layout PyTorch uses for convolutions, ``(N, C, H, W)``:

* generators map noise of shape ``(N, noise_dim)`` to images with values in ``[-1, 1]`` (a
  final ``tanh``);
* discriminators map images to one unbounded score per image, shape ``(N, 1)``: a logit for the
  BCE loss, a raw score for the LSGAN loss.

What conditioning and the VAE need of them beyond that is :mod:`ganforge.nets.contract`.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Collection

from torch import nn

from ganforge.nets.architectures import ARCHITECTURES, ImageShape
from ganforge.nets.classic import xavier_init_
from ganforge.nets.conditional import (
    AuxiliaryClassifierDiscriminator,
    ConditionalGenerator,
    ProjectionDiscriminator,
)
from ganforge.nets.contract import check_networks


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

#: Architecture name → the one image shape ``(C, H, W)`` its networks take, or ``None`` when
#: they are built for a shape chosen at construction: a view of :data:`ARCHITECTURES`.
NATIVE_IMAGE_SHAPE: dict[str, ImageShape | None] = {
    name: spec.native_shape for name, spec in ARCHITECTURES.items()
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
    images to one unbounded score per image, ``(N, 1)`` or ``(N,)`` (conditioning and the VAE
    need more: :mod:`ganforge.nets.contract`). The module is looked up
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


def _needs(conditioning: str, needs: Collection[str] = ()) -> tuple[str, ...]:
    """What a pair must offer (keys of :data:`~ganforge.nets.contract.NEEDS`) for
    ``conditioning`` and the caller's ``needs``."""
    return (*needs, "conditioning") if conditioning != "none" else tuple(needs)


def _user_networks(
    architecture: str,
    noise_dim: int,
    image_shape: ImageShape,
    trust_code: bool,
    needs: Collection[str] = (),
) -> tuple[nn.Module, nn.Module]:
    if not trust_code:
        raise UntrustedCode(architecture)
    networks = import_user_architecture(architecture)(
        noise_dim=noise_dim, image_shape=tuple(image_shape)
    )
    if not (isinstance(networks, tuple) and len(networks) == 2):
        raise ValueError(
            f"architecture {architecture} must return (generator, discriminator), two "
            f"torch.nn.Module, not {type(networks).__name__}"
        )
    check_networks(*networks, needs=needs, source=f"architecture {architecture}")
    return networks


def check_image_shape(architecture: str, image_shape: ImageShape) -> None:
    """``ValueError`` unless the architecture's networks draw and read ``image_shape`` (a
    user's networks take whatever shape they are built for)."""
    spec = ARCHITECTURES.get(architecture)
    if spec is not None:
        spec.check_shape(tuple(image_shape))


def _network(
    architecture: str, image_shape: ImageShape, width: float, noise_dim: int | None = None
) -> nn.Module:
    """The generator (given ``noise_dim``) or the discriminator of a built-in architecture."""
    spec = ARCHITECTURES[architecture]
    spec.check_shape(tuple(image_shape))
    if noise_dim is None:
        return spec.discriminator(tuple(image_shape), width)
    return spec.generator(noise_dim, tuple(image_shape), width)


def build_generator(
    architecture: str,
    noise_dim: int,
    conditioning: str = "none",
    num_classes: int = 0,
    image_shape: ImageShape = (1, 28, 28),
    trust_code: bool = False,
    width: float = 1.0,
) -> nn.Module:
    """The generator of an architecture in :data:`ARCHITECTURES` (or a user's, ``module:
    callable``, imported only with ``trust_code``: :class:`UntrustedCode` otherwise) drawing
    ``image_shape`` ``(C, H, W)`` images, conditional on a class label unless ``conditioning``
    is ``none``; ``width`` scales its hidden sizes (1: the architecture's own). ``ValueError``
    when a user's networks do not keep :mod:`ganforge.nets.contract`."""
    if is_user_architecture(architecture):
        generator = _user_networks(
            architecture, noise_dim, image_shape, trust_code, _needs(conditioning)
        )[0]
    else:
        generator = _network(architecture, image_shape, width, noise_dim)
    if conditioning == "none":
        return generator
    return ConditionalGenerator(generator, num_classes)


def build_models(
    architecture: str,
    noise_dim: int,
    init: str = "default",
    conditioning: str = "none",
    num_classes: int = 0,
    image_shape: ImageShape = (1, 28, 28),
    trust_code: bool = False,
    g_width: float = 1.0,
    d_width: float = 1.0,
    needs: Collection[str] = (),
) -> tuple[nn.Module, nn.Module]:
    """Return ``(generator, discriminator)`` for an architecture name in :data:`ARCHITECTURES`
    (or a user's, as :func:`build_generator` says), a conditioning in :data:`CONDITIONINGS`
    (over ``num_classes`` labels) and images of shape ``image_shape`` ``(C, H, W)`` (see
    :data:`NATIVE_IMAGE_SHAPE`); ``g_width`` and ``d_width`` scale the hidden sizes of each.

    The pair is checked against :func:`~ganforge.nets.contract.check_networks` for
    ``conditioning`` and for ``needs`` (``vae``: the caller turns the discriminator into a
    :class:`~ganforge.nets.vae.VAEEncoder`): ``ValueError`` naming what is missing."""
    needs = _needs(conditioning, needs)
    if is_user_architecture(architecture):
        generator, discriminator = _user_networks(
            architecture, noise_dim, image_shape, trust_code, needs
        )
        if conditioning != "none":
            generator = ConditionalGenerator(generator, num_classes)
    else:
        # The conditional generator's embedding is drawn before D's weights, as it always was.
        generator = build_generator(
            architecture, noise_dim, conditioning, num_classes, image_shape, width=g_width
        )
        discriminator = _network(architecture, image_shape, d_width)
        check_networks(generator, discriminator, needs, source=f"architecture {architecture}")
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
